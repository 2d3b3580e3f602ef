package guard_test

import (
	"errors"
	"net/url"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/authmesh/authmesh/guard"
)

// policyFuzzSeeds are annotation pairs the fuzzers start from; they run in plain go test.
var policyFuzzSeeds = [][2]string{
	{"", ""},
	{"/healthz, /public/**, GET /docs/**", "/admin/**=admin; POST /reports/**=manager,admin"},
	{"/, /*, /**", "/**=user; /a/*/b=x,y; HEAD /a=z; GET /a=w"},
	{" ,/a ,, GET\t/b/*/c, ", ";/x = a , b ;; PUT /y/**=c;"},
	{"/café/.well-known/..., M-SEARCH /~u/a.b_c-d!$&'()+:x@y", "/x/*/c/*=j; /x/*/*/d=k"},
	{"/a*b, /a/, //, /./x, get /x, /%2e", "/x; =a; /y=; /z=A,a,a"},
	{"/a\\b, /x?y, /users/:id, /u/{id}, \xff", "/a,/b=admin; /c=d;e"},
	// Wildcards before literals, methods on some: the order must not depend on the input's.
	{"GET /*/*, /*/x", "POST /**=admin; /*/profile=user,admin; POST /*/settings/email=user,admin"},
	{"/*/a, POST /*/b/b, POST /**", "GET /*/*=a; /*/x=b; HEAD /*/x=c"},
}

func FuzzParsePolicy(f *testing.F) {
	for _, s := range policyFuzzSeeds {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, public, roles string) {
		p, err := guard.ParsePolicy(public, roles)
		if err != nil {
			if p != nil {
				t.Fatalf("got policy %s with error %v, want nil", p, err)
			}
			var joined interface{ Unwrap() []error }
			if !errors.As(err, &joined) {
				t.Fatalf("got %T, want a joined error", err)
			}
			errs := joined.Unwrap()
			if got, want := strings.Count(err.Error(), "\n")+1, len(errs); got != want {
				t.Fatalf("got %d error lines, want %d (one per problem): %q", got, want, err)
			}
			for _, e := range errs {
				var pe *guard.PolicyError
				if !errors.As(e, &pe) || pe.Index < 1 || pe.Problem == "" {
					t.Fatalf("got problem %#v, want a *guard.PolicyError with an index and a problem", e)
				}
			}
			return
		}
		public2, roles2 := p.Annotations()
		q, err := guard.ParsePolicy(public2, roles2)
		if err != nil {
			t.Fatalf("canonical form %s does not parse: %v", p, err)
		}
		if !reflect.DeepEqual(p, q) {
			t.Fatalf("canonical form re-parses to a different policy:\ngot  %s\nwant %s", q, p)
		}
		if public3, roles3 := q.Annotations(); public3 != public2 || roles3 != roles2 {
			t.Fatalf("canonical form is not stable: got %q %q, want %q %q", public3, roles3, public2, roles2)
		}
		// The rules' order in the annotation does not matter: the same rules listed backwards
		// make the same policy.
		backwards, err := guard.ParsePolicy(reverseItems(public2, ", "), reverseItems(roles2, "; "))
		if err != nil || !reflect.DeepEqual(backwards, p) {
			t.Fatalf("the rules listed backwards make %s (%v); want %s", backwards, err, p)
		}
		for _, pat := range fuzzPatterns(public2, roles2) {
			if problem := badPatternPath(pat.path); problem != "" {
				t.Fatalf("accepted pattern %q: %s", pat.path, problem)
			}
		}
	})
}

// reverseItems lists the items of a canonical annotation value in the reverse order.
func reverseItems(s, sep string) string {
	items := strings.Split(s, sep)
	slices.Reverse(items)
	return strings.Join(items, sep)
}

func FuzzDecide(f *testing.F) {
	paths := []string{
		"/", "/healthz", "/public", "/public/", "/public/x/y", "/docs/a", "/admin", "/admin/users",
		"/reports/q3", "/a/b/c/d", "/x/1/c/d", "/%61dmin/x", "/a%20b", "/a/./b", "/a/../b", "/a//b",
		"/a%2fb", "/a%5Cb", `/a\b`, "/a/.", "/a/%2e%2E", "/a%", "/a%zz", "//", "", "a", "/a%00",
		"/caf\xc3\xa9", "/\xff", "/a/b/",
	}
	methods := []string{"GET", "HEAD", "POST", "get", ""}
	for i, path := range paths {
		s := policyFuzzSeeds[i%len(policyFuzzSeeds)]
		f.Add(s[0], s[1], methods[i%len(methods)], path)
	}
	fallback := mustParsePolicy(f, "/healthz, /public/**, GET /docs/**, /, /*/x",
		"/admin/**=admin; POST /reports/**=manager,admin; /**=user; /x/*/c/*=j; /x/*/*/d=k; HEAD /a/*=h; GET /a/**=g")
	f.Fuzz(func(t *testing.T, public, roles, method, raw string) {
		p, err := guard.ParsePolicy(public, roles)
		if err != nil {
			p = fallback
		}
		d := p.Decide(method, raw)

		decoded, valid := referenceCheckPath(raw)
		if d.InvalidPath != !valid {
			t.Fatalf("Decide(%q, %q).InvalidPath: got %v, want %v", method, raw, d.InvalidPath, !valid)
		}
		if d.InvalidPath {
			if d.Public || d.Roles != nil || d.Rule != "" || d.Path != "" {
				t.Fatalf("Decide(%q, %q): got %+v, want only InvalidPath", method, raw, d)
			}
			return
		}
		if d.Path != decoded {
			t.Fatalf("Decide(%q, %q).Path: got %q, want %q", method, raw, d.Path, decoded)
		}
		if problem := badRequestPath(d.Path); problem != "" {
			t.Fatalf("Decide(%q, %q) accepted decoded path %q: %s", method, raw, d.Path, problem)
		}

		publicText, rolesText := p.Annotations()
		want := referenceDecide(fuzzPatterns(publicText, rolesText), method, d.Path)
		if d.Public != want.Public || d.Rule != want.Rule || !slices.Equal(d.Roles, want.Roles) ||
			(d.Roles == nil) != (want.Roles == nil) {
			t.Fatalf("Decide(%q, %q) with %s: got %+v, want %+v", method, raw, p, d, want)
		}
	})
}

// badRequestPath says what is wrong with an accepted decoded path, or "".
func badRequestPath(path string) string {
	switch {
	case !strings.HasPrefix(path, "/"):
		return "does not start with /"
	case strings.Contains(path, "//"):
		return `contains "//"`
	case strings.Contains(path, `\`):
		return "contains a backslash"
	case strings.Contains(path, ";"):
		return "contains a semicolon"
	}
	for _, seg := range strings.Split(path, "/") {
		if seg == "." || seg == ".." {
			return "contains a dot segment"
		}
	}
	return ""
}

// badPatternPath says what is wrong with an accepted pattern path, or "".
func badPatternPath(path string) string {
	if problem := badRequestPath(path); problem != "" {
		return problem
	}
	switch {
	case strings.Contains(path, "%"):
		return "contains a percent-encoding"
	case path != "/" && strings.HasSuffix(path, "/"):
		return "ends with /"
	case strings.Contains(path, "**/"):
		return `"**" is not last`
	}
	return ""
}

// referenceCheckPath is a slow, independent statement of the raw-path rules, built on net/url.
func referenceCheckPath(raw string) (string, bool) {
	if !strings.HasPrefix(raw, "/") || strings.Contains(raw, `\`) {
		return "", false
	}
	lower := strings.ToLower(raw)
	if strings.Contains(lower, "%2f") || strings.Contains(lower, "%5c") {
		return "", false
	}
	decoded, err := url.PathUnescape(raw)
	if err != nil {
		return "", false
	}
	if strings.ContainsFunc(decoded, func(r rune) bool { return r < ' ' || r == 0x7f || r == ';' }) {
		return "", false
	}
	segs := strings.Split(decoded[1:], "/")
	for i, seg := range segs {
		if seg == "" && i < len(segs)-1 || seg == "." || seg == ".." {
			return "", false
		}
	}
	return decoded, true
}

// fuzzPattern is a pattern as the reference matcher sees it, taken from the canonical form.
type fuzzPattern struct {
	method, path string
	roles        []string // nil for a public route
	rule         string
}

func fuzzPatterns(public, roles string) []fuzzPattern {
	var out []fuzzPattern
	split := func(text string) (method, path string) {
		if m, p, ok := strings.Cut(text, " "); ok {
			return m, p
		}
		return "", text
	}
	for item := range strings.SplitSeq(roles, "; ") {
		if item == "" {
			continue
		}
		pat, list, _ := strings.Cut(item, "=")
		method, path := split(pat)
		out = append(out, fuzzPattern{method: method, path: path, roles: strings.Split(list, ","), rule: item})
	}
	for item := range strings.SplitSeq(public, ", ") {
		if item == "" {
			continue
		}
		method, path := split(item)
		out = append(out, fuzzPattern{method: method, path: path, rule: item})
	}
	return out
}

// referenceDecide states the matching rules plainly: collect every match, the best role rule
// wins, else any public route, else a token alone.
func referenceDecide(patterns []fuzzPattern, method, path string) guard.Decision {
	reqSegs := strings.Split(strings.TrimSuffix(path, "/"), "/")[1:]
	var best *fuzzPattern
	for i := range patterns {
		pat := &patterns[i]
		if !referenceMatch(pat, method, reqSegs) {
			continue
		}
		switch {
		case best == nil,
			pat.roles != nil && best.roles == nil,
			(pat.roles != nil) == (best.roles != nil) && referenceMoreSpecific(pat, best):
			best = pat
		}
	}
	d := guard.Decision{Path: path}
	if best != nil {
		d.Rule = best.rule
		d.Roles = best.roles
		d.Public = best.roles == nil
	}
	return d
}

func referenceMatch(pat *fuzzPattern, method string, reqSegs []string) bool {
	if pat.method != "" && pat.method != method && !(pat.method == "GET" && method == "HEAD") {
		return false
	}
	var segs []string
	if pat.path != "/" {
		segs = strings.Split(pat.path, "/")[1:]
	}
	for i, seg := range segs {
		if seg == "**" {
			return true
		}
		if i >= len(reqSegs) || seg == "*" && reqSegs[i] == "" || seg != "*" && seg != reqSegs[i] {
			return false
		}
	}
	return len(segs) == len(reqSegs)
}

// referenceMoreSpecific: spell each pattern as one letter per position (literal d, "*" c, end b,
// "**" a); the larger spelling is more specific; equal spellings prefer HEAD, then any method.
func referenceMoreSpecific(a, b *fuzzPattern) bool {
	segments := func(p *fuzzPattern) []string {
		if p.path == "/" {
			return nil
		}
		return strings.Split(p.path, "/")[1:]
	}
	literalPrefix := func(p *fuzzPattern) int {
		n := 0
		for _, seg := range segments(p) {
			if seg == "*" || seg == "**" {
				break
			}
			n++
		}
		return n
	}
	spell := func(p *fuzzPattern) string {
		var s strings.Builder
		for _, seg := range segments(p) {
			switch seg {
			case "**":
				s.WriteByte('a')
				return s.String()
			case "*":
				s.WriteByte('c')
			default:
				s.WriteByte('d')
			}
		}
		s.WriteByte('b')
		return s.String()
	}
	// DESIGN.md's rule, for two patterns that match one path: the longer literal prefix, then a
	// method over none, then at the first segment where they differ a literal over "*" over the
	// end over "**", then HEAD over other methods.
	if pa, pb := literalPrefix(a), literalPrefix(b); pa != pb {
		return pa > pb
	}
	if (a.method != "") != (b.method != "") {
		return a.method != ""
	}
	if sa, sb := spell(a), spell(b); sa != sb {
		return sa > sb
	}
	return a.method == "HEAD" && b.method != "HEAD"
}
