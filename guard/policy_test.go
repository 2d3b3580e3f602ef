package guard_test

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/authmesh/authmesh/guard"
)

// mustParsePolicy parses annotations that a test expects to be valid.
func mustParsePolicy(t testing.TB, public, roles string) *guard.Policy {
	t.Helper()
	p, err := guard.ParsePolicy(public, roles)
	if err != nil {
		t.Fatalf("ParsePolicy(%q, %q): got error %v, want none", public, roles, err)
	}
	return p
}

func TestParsePolicyCanonical(t *testing.T) {
	tests := map[string]struct {
		public, roles         string
		wantPublic, wantRoles string
	}{
		"empty annotations mean no rules": {},
		"white space only": {
			public: " \n\t ", roles: "  ",
		},
		"the design's example": {
			public:     "/healthz, /public/**, GET /docs/**",
			roles:      "/admin/**=admin; POST /reports/**=manager,admin",
			wantPublic: "GET /docs/**, /healthz, /public/**",
			wantRoles:  "/admin/**=admin; POST /reports/**=manager,admin",
		},
		"white space around items, roles, method and path is tolerated": {
			public:     "  /a ,\n\tGET    /b  ",
			roles:      " PUT\t/c = manager , admin ;\n /d=user ",
			wantPublic: "/a, GET /b",
			wantRoles:  "PUT /c=manager,admin; /d=user",
		},
		"empty items and trailing separators are ignored": {
			public:     ",/a,, ,/b,",
			roles:      ";/c=x;; ;/d=y,,z,;",
			wantPublic: "/a, /b",
			wantRoles:  "/c=x; /d=y,z",
		},
		"multi-line YAML block": {
			roles:     "/admin/**=admin;\nPOST /reports/**=manager,admin;\n",
			wantRoles: "/admin/**=admin; POST /reports/**=manager,admin",
		},
		"rules are ordered most specific first": {
			roles: "/**=a; /x/**=b; /x/*=c; /x/*/z=d; /x/y=e; GET /x/y=f; /x/y/**=g; /*/y=h; /=i; HEAD /x/y=j",
			wantRoles: "HEAD /x/y=j; GET /x/y=f; /x/y=e; /x/y/**=g; /x/*/z=d; /x/*=c; /x/**=b; " +
				"/*/y=h; /=i; /**=a",
		},
		"role order inside a rule is kept": {
			roles:     "/r=manager,admin,user",
			wantRoles: "/r=manager,admin,user",
		},
		"root, catch-all and one-segment patterns": {
			public:     "/, /**, /*",
			wantPublic: "/*, /, /**",
		},
		"the same pattern may be public and a role route": {
			public:     "/x",
			roles:      "/x=admin",
			wantPublic: "/x",
			wantRoles:  "/x=admin",
		},
		"the same path with different methods are different patterns": {
			public:     "GET /x, POST /x, /x",
			wantPublic: "GET /x, POST /x, /x",
		},
		"RFC 9110 token methods and path characters": {
			public:     "M-SEARCH /a, PROPFIND /b, GET /~user/a.b_c-d!$&'()+:x@y, /café/.well-known/...",
			wantPublic: "M-SEARCH /a, PROPFIND /b, /café/.well-known/..., GET /~user/a.b_c-d!$&'()+:x@y",
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			p := mustParsePolicy(t, tc.public, tc.roles)
			gotPublic, gotRoles := p.Annotations()
			if gotPublic != tc.wantPublic {
				t.Errorf("public: got %q, want %q", gotPublic, tc.wantPublic)
			}
			if gotRoles != tc.wantRoles {
				t.Errorf("roles: got %q, want %q", gotRoles, tc.wantRoles)
			}
			again := mustParsePolicy(t, gotPublic, gotRoles)
			if got, want := again.String(), p.String(); got != want {
				t.Errorf("re-parsed canonical form: got %s, want %s", got, want)
			}
		})
	}
}

func TestParsePolicyErrors(t *testing.T) {
	tests := map[string]struct {
		public, roles string
		want          []string // the error's lines
	}{
		"the spec's example: no roles": {
			roles: "/admin/**=admin; POST /reports/**=",
			want:  []string{`roles rule 2 ("POST /reports/**="): no roles listed`},
		},
		"only commas in the role list": {
			roles: "/a= , ,",
			want:  []string{`roles rule 1 ("/a= , ,"): no roles listed`},
		},
		"missing equals sign": {
			roles: "/admin/**",
			want:  []string{`roles rule 1 ("/admin/**"): missing "=": write PATTERN=role1,role2`},
		},
		"missing pattern": {
			roles: "=admin",
			want:  []string{`roles rule 1 ("=admin"): no pattern before "="`},
		},
		"invalid roles are all reported with the pattern problem": {
			roles: "/a*=Admin,ok,1x,ok",
			want: []string{
				`roles rule 1 ("/a*=Admin,ok,1x,ok"): segment "a*": "*" and "**" must be whole segments`,
				`roles rule 1 ("/a*=Admin,ok,1x,ok"): role "Admin" is not valid: a role is 1 to 32 characters of a-z, 0-9, "_" and "-", starting with a letter`,
				`roles rule 1 ("/a*=Admin,ok,1x,ok"): role "1x" is not valid: a role is 1 to 32 characters of a-z, 0-9, "_" and "-", starting with a letter`,
				`roles rule 1 ("/a*=Admin,ok,1x,ok"): role "ok" is listed twice`,
			},
		},
		"role too long, bad characters": {
			roles: "/a=abcdefghijklmnopqrstuvwxyz0123456, a.b, a b",
			want: []string{
				`roles rule 1 ("/a=abcdefghijklmnopqrstuvwxyz0123456, a.b, a b"): role "abcdefghijklmnopqrstuvwxyz0123456" is not valid: a role is 1 to 32 characters of a-z, 0-9, "_" and "-", starting with a letter`,
				`roles rule 1 ("/a=abcdefghijklmnopqrstuvwxyz0123456, a.b, a b"): role "a.b" is not valid: a role is 1 to 32 characters of a-z, 0-9, "_" and "-", starting with a letter`,
				`roles rule 1 ("/a=abcdefghijklmnopqrstuvwxyz0123456, a.b, a b"): role "a b" is not valid: a role is 1 to 32 characters of a-z, 0-9, "_" and "-", starting with a letter`,
			},
		},
		"every problem of both annotations at once, numbered among non-empty items": {
			public: "/ok,, healthz, /a/**/b",
			roles:  "/ok=admin;; /x=; /y",
			want: []string{
				`public route 2 ("healthz"): expected "/path" or "METHOD /path"`,
				`public route 3 ("/a/**/b"): "**" must be the last segment`,
				`roles rule 2 ("/x="): no roles listed`,
				`roles rule 3 ("/y"): missing "=": write PATTERN=role1,role2`,
			},
		},
		"partial wildcards": {
			public: "/a*b, /**x, /x/***, /*a",
			want: []string{
				`public route 1 ("/a*b"): segment "a*b": "*" and "**" must be whole segments`,
				`public route 2 ("/**x"): segment "**x": "*" and "**" must be whole segments`,
				`public route 3 ("/x/***"): segment "***": "*" and "**" must be whole segments`,
				`public route 4 ("/*a"): segment "*a": "*" and "**" must be whole segments`,
			},
		},
		"dot segments, empty segments, trailing slash": {
			public: "/a/./b, /a/../b, /., /a//b, /a/, //, GET /x/*/",
			want: []string{
				`public route 1 ("/a/./b"): "." and ".." segments are not allowed`,
				`public route 2 ("/a/../b"): "." and ".." segments are not allowed`,
				`public route 3 ("/."): "." and ".." segments are not allowed`,
				`public route 4 ("/a//b"): empty segment ("//")`,
				`public route 5 ("/a/"): trailing "/": write "/a" (it also matches "/a/") or "/a/**"`,
				`public route 6 ("//"): empty segment ("//")`,
				`public route 7 ("GET /x/*/"): trailing "/": write "/x/*" (it also matches "/x/*/") or "/x/*/**"`,
			},
		},
		"backslashes and percent-encodings": {
			public: `/a\b, /a%2Fb, /%61`,
			want: []string{
				`public route 1 ("/a\\b"): backslashes are not allowed`,
				`public route 2 ("/a%2Fb"): percent-encoding is not allowed: patterns match the decoded path, write the character itself`,
				`public route 3 ("/%61"): percent-encoding is not allowed: patterns match the decoded path, write the character itself`,
			},
		},
		"methods": {
			public: "get /a, * /b, GET/c, G\"T /d, 1GET /e, GET, GET x",
			want: []string{
				`public route 1 ("get /a"): method "get" must be upper case`,
				`public route 2 ("* /b"): method "*" must start with a letter; leave the method out to match every method`,
				`public route 3 ("GET/c"): expected "/path" or "METHOD /path": put a space between the method and the path`,
				`public route 4 ("G\"T /d"): method "G\"T" is not an HTTP method token`,
				`public route 5 ("1GET /e"): method "1GET" must start with a letter; leave the method out to match every method`,
				`public route 6 ("GET"): expected "/path" or "METHOD /path"`,
				`public route 7 ("GET x"): path "x" must start with "/"`,
			},
		},
		"white space inside a pattern": {
			public: "GET /a /b, /a b, healthz/x",
			want: []string{
				`public route 1 ("GET /a /b"): white space is not allowed in a path`,
				`public route 2 ("/a b"): white space is not allowed in a path`,
				`public route 3 ("healthz/x"): the path must start with "/"`,
			},
		},
		"separators, queries and parameters inside a pattern": {
			public: "/a=admin, /x?y, /f#g, /users/:id, /users/{id}, /t\x01",
			roles:  "/a,/b=admin",
			want: []string{
				`public route 1 ("/a=admin"): "=" is not allowed in a pattern (role rules belong in authmesh.dev/roles)`,
				`public route 2 ("/x?y"): '?' is not allowed: a pattern matches the path only`,
				`public route 3 ("/f#g"): '#' is not allowed: a pattern matches the path only`,
				`public route 4 ("/users/:id"): segment ":id": write a path parameter as "*"`,
				`public route 5 ("/users/{id}"): segment "{id}": write a path parameter as "*"`,
				`public route 6 ("/t\x01"): control character '\x01' is not allowed`,
				`roles rule 1 ("/a,/b=admin"): ',' is not allowed in a pattern (it separates items)`,
			},
		},
		"invalid UTF-8 and non-printing characters": {
			public: "/a\xff, /b\u200b, /c\u00a0d",
			want: []string{
				`public route 1 ("/a\xff"): the pattern is not valid UTF-8`,
				`public route 2 ("/b\u200b"): character '\u200b' is not allowed in a path`,
				`public route 3 ("/c\u00a0d"): white space is not allowed in a path`,
			},
		},
		"duplicates": {
			public: "/a, GET /a, /a",
			roles:  "/x=a; /x = b",
			want: []string{
				`public route 3 ("/a"): same pattern as route 1`,
				`roles rule 2 ("/x = b"): same pattern as rule 1`,
			},
		},
		"long items are shortened in messages": {
			public: "/" + strings.Repeat("x", 200) + "?",
			want: []string{
				`public route 1 ("/` + strings.Repeat("x", 95) + `..."): '?' is not allowed: a pattern matches the path only`,
			},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			p, err := guard.ParsePolicy(tc.public, tc.roles)
			if err == nil {
				t.Fatalf("got policy %s and no error, want %q", p, tc.want)
			}
			if p != nil {
				t.Errorf("got policy %s with the error, want nil", p)
			}
			got := strings.Split(err.Error(), "\n")
			if !slices.Equal(got, tc.want) {
				t.Errorf("got errors\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(tc.want, "\n"))
			}
			var joined interface{ Unwrap() []error }
			if !errors.As(err, &joined) {
				t.Fatalf("got %T, want a joined error", err)
			}
			for _, e := range joined.Unwrap() {
				var pe *guard.PolicyError
				if !errors.As(e, &pe) {
					t.Errorf("got %T (%v), want *guard.PolicyError", e, e)
				}
			}
		})
	}
}

func TestPolicyErrorFields(t *testing.T) {
	_, err := guard.ParsePolicy("/ok, /a//b", "")
	var pe *guard.PolicyError
	if !errors.As(err, &pe) {
		t.Fatalf("got %v, want a *guard.PolicyError", err)
	}
	want := guard.PolicyError{Annotation: "authmesh.dev/public", Index: 2, Item: "/a//b", Problem: `empty segment ("//")`}
	if *pe != want {
		t.Errorf("got %+v, want %+v", *pe, want)
	}
}

// decideCase is a request and what the policy must decide for it.
type decideCase struct {
	method, path string
	wantPublic   bool
	wantRoles    []string // nil: no role needed
	wantRule     string
}

func runDecideCases(t *testing.T, p *guard.Policy, tests map[string]decideCase) {
	t.Helper()
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			d := p.Decide(tc.method, tc.path)
			if d.InvalidPath {
				t.Fatalf("Decide(%q, %q): got InvalidPath, want a decision", tc.method, tc.path)
			}
			if d.Public != tc.wantPublic {
				t.Errorf("Decide(%q, %q).Public: got %v, want %v", tc.method, tc.path, d.Public, tc.wantPublic)
			}
			if !slices.Equal(d.Roles, tc.wantRoles) || (d.Roles == nil) != (tc.wantRoles == nil) {
				t.Errorf("Decide(%q, %q).Roles: got %#v, want %#v", tc.method, tc.path, d.Roles, tc.wantRoles)
			}
			if d.Rule != tc.wantRule {
				t.Errorf("Decide(%q, %q).Rule: got %q, want %q", tc.method, tc.path, d.Rule, tc.wantRule)
			}
			if d.NeedsToken() == d.Public {
				t.Errorf("Decide(%q, %q).NeedsToken(): got %v with Public %v", tc.method, tc.path, d.NeedsToken(), d.Public)
			}
		})
	}
}

func TestDecideDesignExample(t *testing.T) {
	p := mustParsePolicy(t, "/healthz, /public/**, GET /docs/**", "/admin/**=admin; POST /reports/**=manager,admin")
	runDecideCases(t, p, map[string]decideCase{
		"public exact":              {method: "GET", path: "/healthz", wantPublic: true, wantRule: "/healthz"},
		"public exact, any method":  {method: "POST", path: "/healthz", wantPublic: true, wantRule: "/healthz"},
		"public exact, no prefix":   {method: "GET", path: "/healthz/x", wantRule: ""},
		"not a prefix of a segment": {method: "GET", path: "/healthzx", wantRule: ""},
		"public tree":               {method: "GET", path: "/public/a/b", wantPublic: true, wantRule: "/public/**"},
		"public tree root":          {method: "GET", path: "/public", wantPublic: true, wantRule: "/public/**"},
		"public method route":       {method: "GET", path: "/docs/x", wantPublic: true, wantRule: "GET /docs/**"},
		"public method route, HEAD": {method: "HEAD", path: "/docs/x", wantPublic: true, wantRule: "GET /docs/**"},
		"other method needs token":  {method: "POST", path: "/docs/x", wantRule: ""},
		"admin":                     {method: "GET", path: "/admin/users", wantRoles: []string{"admin"}, wantRule: "/admin/**=admin"},
		"admin root":                {method: "DELETE", path: "/admin", wantRoles: []string{"admin"}, wantRule: "/admin/**=admin"},
		"reports POST":              {method: "POST", path: "/reports/q3", wantRoles: []string{"manager", "admin"}, wantRule: "POST /reports/**=manager,admin"},
		"reports GET needs token":   {method: "GET", path: "/reports/q3", wantRule: ""},
		"everything else":           {method: "GET", path: "/", wantRule: ""},
	})
}

func TestDecideWildcardSemantics(t *testing.T) {
	p := mustParsePolicy(t, "/one/*, /tree/**, /mid/*/end, /a/*/*", "")
	runDecideCases(t, p, map[string]decideCase{
		"* matches one segment":                    {method: "GET", path: "/one/x", wantPublic: true, wantRule: "/one/*"},
		"* matches one segment with trailing /":    {method: "GET", path: "/one/x/", wantPublic: true, wantRule: "/one/*"},
		"* does not match zero segments":           {method: "GET", path: "/one", wantRule: ""},
		"* does not match an empty segment":        {method: "GET", path: "/one/", wantRule: ""},
		"* does not match two segments":            {method: "GET", path: "/one/x/y", wantRule: ""},
		"* in the middle":                          {method: "GET", path: "/mid/x/end", wantPublic: true, wantRule: "/mid/*/end"},
		"* in the middle, no match":                {method: "GET", path: "/mid/x/y/end", wantRule: ""},
		"* in the middle, missing segment":         {method: "GET", path: "/mid/end", wantRule: ""},
		"two stars":                                {method: "GET", path: "/a/b/c", wantPublic: true, wantRule: "/a/*/*"},
		"two stars, one segment":                   {method: "GET", path: "/a/b", wantRule: ""},
		"** matches zero segments":                 {method: "GET", path: "/tree", wantPublic: true, wantRule: "/tree/**"},
		"** matches zero segments, trailing slash": {method: "GET", path: "/tree/", wantPublic: true, wantRule: "/tree/**"},
		"** matches one segment":                   {method: "GET", path: "/tree/x", wantPublic: true, wantRule: "/tree/**"},
		"** matches many segments":                 {method: "GET", path: "/tree/x/y/z/", wantPublic: true, wantRule: "/tree/**"},
		"** is not a prefix match of a segment":    {method: "GET", path: "/treex", wantRule: ""},
		"literals are compared decoded":            {method: "GET", path: "/%74ree/x", wantPublic: true, wantRule: "/tree/**"},
	})
}

func TestDecideRootAndCatchAll(t *testing.T) {
	p := mustParsePolicy(t, "/", "/**=user")
	runDecideCases(t, p, map[string]decideCase{
		"root matches the catch-all role rule": {method: "GET", path: "/", wantRoles: []string{"user"}, wantRule: "/**=user"},
		"anything matches the catch-all":       {method: "GET", path: "/a/b", wantRoles: []string{"user"}, wantRule: "/**=user"},
	})
	p = mustParsePolicy(t, "/", "/*=user")
	runDecideCases(t, p, map[string]decideCase{
		"root pattern matches only the root": {method: "GET", path: "/", wantPublic: true, wantRule: "/"},
		"one segment":                        {method: "GET", path: "/a", wantRoles: []string{"user"}, wantRule: "/*=user"},
		"two segments":                       {method: "GET", path: "/a/b", wantRule: ""},
	})
}

func TestDecideSpecificity(t *testing.T) {
	p := mustParsePolicy(t, "",
		"/**=a; /api/**=b; /api/v1/**=c; /api/*/users=d; /api/v1/users=e; GET /api/v1/users=f; "+
			"/api/*=g; /api/*/**=h; GET /api/**=i; /x/*/c/*=j; /x/*/*/d=k; HEAD /api/v1/users=l")
	runDecideCases(t, p, map[string]decideCase{
		"method wins at equal literal prefix (**)":    {method: "GET", path: "/api/v2/x/y", wantRoles: []string{"i"}, wantRule: "GET /api/**=i"},
		"* beats ** at equal prefix and no method":    {method: "POST", path: "/api/v2/x/y", wantRoles: []string{"h"}, wantRule: "/api/*/**=h"},
		"longer literal prefix wins":                  {method: "POST", path: "/api/v1/x", wantRoles: []string{"c"}, wantRule: "/api/v1/**=c"},
		"exact literal beats everything":              {method: "POST", path: "/api/v1/users", wantRoles: []string{"e"}, wantRule: "/api/v1/users=e"},
		"method-specific beats method-less":           {method: "GET", path: "/api/v1/users", wantRoles: []string{"f"}, wantRule: "GET /api/v1/users=f"},
		"HEAD pattern beats GET pattern for HEAD":     {method: "HEAD", path: "/api/v1/users", wantRoles: []string{"l"}, wantRule: "HEAD /api/v1/users=l"},
		"literal beats * at the first difference":     {method: "POST", path: "/api/v2/users", wantRoles: []string{"d"}, wantRule: "/api/*/users=d"},
		"* beats ** at equal literal prefix":          {method: "POST", path: "/api/v2", wantRoles: []string{"g"}, wantRule: "/api/*=g"},
		"method beats * at equal literal prefix":      {method: "GET", path: "/api/v2", wantRoles: []string{"i"}, wantRule: "GET /api/**=i"},
		"method ** beats method-less ** of same path": {method: "GET", path: "/api", wantRoles: []string{"i"}, wantRule: "GET /api/**=i"},
		"ended pattern beats **":                      {method: "POST", path: "/api", wantRoles: []string{"b"}, wantRule: "/api/**=b"},
		"earlier literal wins at equal counts":        {method: "GET", path: "/x/1/c/d", wantRoles: []string{"j"}, wantRule: "/x/*/c/*=j"},
		"fallback to the catch-all":                   {method: "GET", path: "/other", wantRoles: []string{"a"}, wantRule: "/**=a"},
	})
}

func TestDecideRoleBeatsPublic(t *testing.T) {
	p := mustParsePolicy(t, "/api/public/**, GET /api/open, /api/health", "/api/**=user; POST /api/health=admin")
	runDecideCases(t, p, map[string]decideCase{
		"a broader role rule beats a more specific public route": {method: "GET", path: "/api/public/x", wantRoles: []string{"user"}, wantRule: "/api/**=user"},
		"a method-less role rule beats a method public route":    {method: "GET", path: "/api/open", wantRoles: []string{"user"}, wantRule: "/api/**=user"},
		"the best role rule applies":                             {method: "POST", path: "/api/health", wantRoles: []string{"admin"}, wantRule: "POST /api/health=admin"},
		"public where no role rule matches":                      {method: "GET", path: "/other", wantRule: ""},
	})
	p = mustParsePolicy(t, "/healthz, /x", "POST /healthz=admin; /x=admin")
	runDecideCases(t, p, map[string]decideCase{
		"public when the role rule's method differs": {method: "GET", path: "/healthz", wantPublic: true, wantRule: "/healthz"},
		"role rule when its method matches":          {method: "POST", path: "/healthz", wantRoles: []string{"admin"}, wantRule: "POST /healthz=admin"},
		"the same pattern in both is a role route":   {method: "GET", path: "/x", wantRoles: []string{"admin"}, wantRule: "/x=admin"},
	})
}

func TestDecideCaseSensitive(t *testing.T) {
	p := mustParsePolicy(t, "/Public/**, GET /docs", "/admin/**=admin")
	runDecideCases(t, p, map[string]decideCase{
		"path case must match":         {method: "GET", path: "/public/x", wantRule: ""},
		"path case matches":            {method: "GET", path: "/Public/x", wantPublic: true, wantRule: "/Public/**"},
		"upper-case path is not admin": {method: "GET", path: "/ADMIN/x", wantRule: ""},
		"method compared exactly":      {method: "get", path: "/docs", wantRule: ""},
		"GET does not match POST":      {method: "POST", path: "/docs", wantRule: ""},
		"GET pattern matches HEAD":     {method: "HEAD", path: "/docs", wantPublic: true, wantRule: "GET /docs"},
	})
}

func TestDecidePaths(t *testing.T) {
	p := mustParsePolicy(t, "/pub/**", "/admin/**=admin")
	tests := map[string]struct {
		raw      string
		wantPath string
		wantRule string
	}{
		"root":                                 {raw: "/", wantPath: "/"},
		"plain":                                {raw: "/a/b", wantPath: "/a/b"},
		"trailing slash is kept in Path":       {raw: "/a/b/", wantPath: "/a/b/"},
		"percent-encoded letters are decoded":  {raw: "/%61dmin/x", wantPath: "/admin/x", wantRule: "/admin/**=admin"},
		"lower-case hex":                       {raw: "/%c3%a9", wantPath: "/é"},
		"encoded space and percent":            {raw: "/a%20b/%25", wantPath: "/a b/%"},
		"encoded percent is not decoded twice": {raw: "/%2561dmin", wantPath: "/%61dmin"},
		"dots inside a segment":                {raw: "/a.b/.well-known/...", wantPath: "/a.b/.well-known/..."},
		"encoded dot inside a segment":         {raw: "/a%2eb/%2e%2e%2e", wantPath: "/a.b/..."},
		"encoded question mark":                {raw: "/pub/a%3Fb", wantPath: "/pub/a?b", wantRule: "/pub/**"},
		"non-ASCII bytes as received":          {raw: "/caf\xc3\xa9", wantPath: "/café"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			d := p.Decide("GET", tc.raw)
			if d.InvalidPath {
				t.Fatalf("Decide(GET, %q): got InvalidPath, want a decision", tc.raw)
			}
			if d.Path != tc.wantPath {
				t.Errorf("Decide(GET, %q).Path: got %q, want %q", tc.raw, d.Path, tc.wantPath)
			}
			if d.Rule != tc.wantRule {
				t.Errorf("Decide(GET, %q).Rule: got %q, want %q", tc.raw, d.Rule, tc.wantRule)
			}
		})
	}
}

func TestDecideInvalidPath(t *testing.T) {
	// A catch-all public route: a refused path must be refused before any rule is consulted.
	p := mustParsePolicy(t, "/**", "")
	tests := map[string]string{
		"empty":                               "",
		"relative":                            "a/b",
		"asterisk form":                       "*",
		"absolute URL":                        "http://x/a",
		"dot segment":                         "/a/./b",
		"dot-dot segment":                     "/a/../b",
		"leading dot":                         "/./a",
		"leading dot-dot":                     "/../a",
		"trailing dot":                        "/a/.",
		"trailing dot-dot":                    "/a/..",
		"trailing dot with slash":             "/a/./",
		"only a dot":                          "/.",
		"encoded dot":                         "/a/%2e/b",
		"encoded dot upper case":              "/a/%2E/b",
		"encoded dot-dot mixed case":          "/a/%2e%2E/b",
		"half-encoded dot-dot":                "/a/.%2e/b",
		"half-encoded dot-dot, other half":    "/a/%2E./b",
		"encoded trailing dot-dot":            "/a/%2e%2e",
		"double slash":                        "/a//b",
		"leading double slash":                "//a",
		"only a double slash":                 "//",
		"trailing double slash":               "/a//",
		"encoded slash":                       "/a%2fb",
		"encoded slash upper case":            "/a%2Fb",
		"encoded backslash":                   "/a%5cb",
		"encoded backslash upper case":        "/a%5Cb",
		"backslash":                           `/a\b`,
		"backslash dot-dot":                   `/a\..\b`,
		"truncated percent-encoding":          "/a%2",
		"percent at the end":                  "/a%",
		"non-hex percent-encoding":            "/a%zz",
		"half non-hex":                        "/a%2g",
		"encoded NUL":                         "/a%00b",
		"encoded newline":                     "/a%0a",
		"raw tab":                             "/a\tb",
		"raw DEL":                             "/a\x7f",
		"encoded DEL":                         "/a%7F",
		"encoded slash making a dot-dot":      "/a/..%2f",
		"semicolon (Tomcat's path parameter)": "/public/..;/admin",
		"semicolon in a segment":              "/admin;x=1/users",
		"encoded semicolon":                   "/admin%3Bx/users",
		"encoded semicolon lower case":        "/admin%3bx",
	}
	for name, raw := range tests {
		t.Run(name, func(t *testing.T) {
			d := p.Decide("GET", raw)
			if !d.InvalidPath {
				t.Fatalf("Decide(GET, %q): got %+v, want InvalidPath", raw, d)
			}
			if d.Public || d.Roles != nil || d.Rule != "" || d.Path != "" {
				t.Errorf("Decide(GET, %q): got %+v, want only InvalidPath set", raw, d)
			}
			if d.NeedsToken() || d.Allows("admin") {
				t.Errorf("Decide(GET, %q): a refused path must neither need a token nor allow a role", raw)
			}
		})
	}
}

func TestDecideNilPolicy(t *testing.T) {
	var p *guard.Policy
	d := p.Decide("GET", "/x")
	if d.InvalidPath || d.Public || d.Roles != nil || d.Rule != "" || d.Path != "/x" {
		t.Errorf("nil policy: got %+v, want a token-only decision for /x", d)
	}
	if !p.Decide("GET", "/a/../b").InvalidPath {
		t.Errorf("nil policy: got a decision for /a/../b, want InvalidPath")
	}
	if got, want := p.String(), `public="" roles=""`; got != want {
		t.Errorf("nil policy String: got %q, want %q", got, want)
	}
}

func TestDecisionAllows(t *testing.T) {
	p := mustParsePolicy(t, "/pub", "/r=manager,admin")
	tests := map[string]struct {
		path, role string
		want       bool
	}{
		"listed role":             {path: "/r", role: "admin", want: true},
		"other listed role":       {path: "/r", role: "manager", want: true},
		"unlisted role":           {path: "/r", role: "user", want: false},
		"no role":                 {path: "/r", role: "", want: false},
		"case matters":            {path: "/r", role: "Admin", want: false},
		"token-only route":        {path: "/x", role: "user", want: true},
		"token-only route, none":  {path: "/x", role: "", want: true},
		"public route":            {path: "/pub", role: "", want: true},
		"refused path":            {path: "/a/../r", role: "admin", want: false},
		"refused path, no role":   {path: "//r", role: "", want: false},
		"prefix of a listed role": {path: "/r", role: "admi", want: false},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			if got := p.Decide("GET", tc.path).Allows(tc.role); got != tc.want {
				t.Errorf("Decide(GET, %q).Allows(%q): got %v, want %v", tc.path, tc.role, got, tc.want)
			}
		})
	}
}

func TestPolicyString(t *testing.T) {
	p := mustParsePolicy(t, "/public/**, /healthz", "POST /reports/**=manager,admin; /admin/**=admin")
	want := `public="/healthz, /public/**" roles="/admin/**=admin; POST /reports/**=manager,admin"`
	if got := p.String(); got != want {
		t.Errorf("got %s, want %s", got, want)
	}
}

func TestDecideAllocs(t *testing.T) {
	p := benchmarkPolicy(t)
	tests := map[string]struct {
		path string
		want float64
	}{
		"plain path does not allocate":       {path: "/api/v1/orders/123/items", want: 0},
		"refused path does not allocate":     {path: "/api/../admin", want: 0},
		"encoded path allocates the decoded": {path: "/api/v1/orders/a%20b", want: 1},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			got := testing.AllocsPerRun(100, func() { _ = p.Decide("GET", tc.path) })
			if got != tc.want {
				t.Errorf("Decide(GET, %q): got %v allocations, want %v", tc.path, got, tc.want)
			}
		})
	}
}

// benchmarkPolicy is a realistic policy of 20 rules.
func benchmarkPolicy(t testing.TB) *guard.Policy {
	return mustParsePolicy(t,
		"/healthz, /readyz, /metrics, /public/**, GET /docs/**, GET /static/**, POST /api/v1/login, "+
			"GET /api/v1/catalog/**, OPTIONS /**",
		"/admin/**=admin; POST /reports/**=manager,admin; GET /reports/*/export=manager,admin; "+
			"/api/v1/users/*/roles=admin; DELETE /api/v1/**=admin; PUT /api/v1/orders/*=manager,admin; "+
			"/api/v1/billing/**=billing,admin; /api/v1/audit/**=auditor,admin; /internal/**=service; "+
			"GET /api/v1/orders/*/items=user,manager,admin; PATCH /api/v1/users/*=admin")
}

func BenchmarkDecide(b *testing.B) {
	p := benchmarkPolicy(b)
	requests := []struct{ name, method, path string }{
		{"role", "GET", "/api/v1/orders/123/items"},
		{"public", "GET", "/docs/guide/intro"},
		{"token-only", "POST", "/api/v1/orders/123/comments"},
		{"encoded", "GET", "/api/v1/orders/a%20b/items"},
		{"refused", "GET", "/api/v1/../admin"},
	}
	for _, r := range requests {
		b.Run(r.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				_ = p.Decide(r.method, r.path)
			}
		})
	}
}

// TestPolicyDocPatternTable pins the pattern table of the README's route policy section.
func TestPolicyDocPatternTable(t *testing.T) {
	tests := map[string]struct {
		matches, misses []string
	}{
		"/healthz":       {matches: []string{"/healthz", "/healthz/"}, misses: []string{"/healthz/x", "/healthzx", "/Healthz"}},
		"/users/*":       {matches: []string{"/users/42", "/users/42/"}, misses: []string{"/users", "/users/", "/users/42/posts"}},
		"/users/*/posts": {matches: []string{"/users/42/posts"}, misses: []string{"/users/posts", "/users/1/2/posts"}},
		"/public/**":     {matches: []string{"/public", "/public/", "/public/a", "/public/a/b/c"}, misses: []string{"/publicity"}},
		"/**":            {matches: []string{"/", "/a", "/a/b/"}},
		"/":              {matches: []string{"/"}, misses: []string{"/a"}},
	}
	for pattern, tc := range tests {
		t.Run(pattern, func(t *testing.T) {
			p := mustParsePolicy(t, pattern, "")
			for _, path := range tc.matches {
				if d := p.Decide("GET", path); !d.Public {
					t.Errorf("%s on %q: got %+v, want a match", pattern, path, d)
				}
			}
			for _, path := range tc.misses {
				if d := p.Decide("GET", path); d.Public || d.InvalidPath {
					t.Errorf("%s on %q: got %+v, want no match", pattern, path, d)
				}
			}
		})
	}
}
