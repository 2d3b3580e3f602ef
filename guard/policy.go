package guard

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"
)

// The pod annotations a Policy is parsed from. The names appear in PolicyError.
const (
	policyAnnotationPublic = "authmesh.dev/public"
	policyAnnotationRoles  = "authmesh.dev/roles"
)

// Policy is the parsed form of a pod's authmesh.dev/public and authmesh.dev/roles annotations:
// which routes bypass the token check and which routes also need a role. See the package
// documentation for the rules. A Policy is immutable and safe for concurrent use; the zero
// Policy and a nil *Policy have no rules (every route needs a valid token, no route needs a
// role).
type Policy struct {
	roles  []roleRule     // most specific first (see comparePatterns)
	public []routePattern // most specific first
}

// roleRule is one compiled entry of authmesh.dev/roles.
type roleRule struct {
	pattern routePattern
	roles   []string // as listed, without duplicates; never empty
	text    string   // canonical, e.g. "POST /reports/**=manager,admin"
}

// routePattern is one compiled "[METHOD] /path" pattern.
type routePattern struct {
	method string           // "" matches every method
	segs   []patternSegment // every segment before a trailing "**"
	tail   bool             // the path ends with "**"
	prefix string           // the leading literal segments, e.g. "/reports" for "/reports/*/x"
	rest   []patternSegment // segs after the ones in prefix
	text   string           // canonical, e.g. "POST /reports/**"
}

// patternSegment is one path segment of a pattern: a literal, or "*" when lit is empty
// (a literal segment is never empty).
type patternSegment struct {
	lit string
}

// PolicyError is one problem found by ParsePolicy. ParsePolicy returns every problem at once,
// joined with errors.Join (one per line); use errors.As to reach the first, or unwrap the joined
// error (Unwrap() []error) to list them all.
type PolicyError struct {
	Annotation string // "authmesh.dev/public" or "authmesh.dev/roles"
	Index      int    // 1-based position of the item among the annotation's non-empty items
	Item       string // the item as written, without surrounding white space
	Problem    string // what is wrong with it
}

// Error reads like `roles rule 2 ("POST /reports/**="): no roles listed`.
func (e *PolicyError) Error() string {
	what := "public route"
	if e.Annotation == policyAnnotationRoles {
		what = "roles rule"
	}
	return fmt.Sprintf("%s %d (%q): %s", what, e.Index, shortenItem(e.Item), e.Problem)
}

// shortenItem keeps error messages readable when an item is huge.
func shortenItem(s string) string {
	const limit = 96
	if len(s) <= limit {
		return s
	}
	cut := limit
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "..."
}

// ParsePolicy parses the values of the authmesh.dev/public and authmesh.dev/roles annotations
// (either may be empty). On any problem it returns a nil Policy and an error listing every
// problem (each a *PolicyError), so an admission webhook can show them all and a sidecar can
// keep its last good policy.
func ParsePolicy(public, roles string) (*Policy, error) {
	var (
		p    Policy
		errs []error
	)
	report := func(annotation string, index int, item, problem string) {
		errs = append(errs, &PolicyError{Annotation: annotation, Index: index, Item: item, Problem: problem})
	}

	seenPublic := map[string]int{}
	forEachPolicyItem(public, ',', func(index int, item string) {
		pat, problem := parseRoutePattern(item)
		if problem != "" {
			report(policyAnnotationPublic, index, item, problem)
			return
		}
		if first, dup := seenPublic[pat.text]; dup {
			report(policyAnnotationPublic, index, item, fmt.Sprintf("same pattern as route %d", first))
			return
		}
		seenPublic[pat.text] = index
		p.public = append(p.public, pat)
	})

	seenRoles := map[string]int{}
	forEachPolicyItem(roles, ';', func(index int, item string) {
		patText, roleText, found := strings.Cut(item, "=")
		if !found {
			report(policyAnnotationRoles, index, item, `missing "=": write PATTERN=role1,role2`)
			return
		}
		patText = strings.TrimSpace(patText)
		var (
			pat     routePattern
			problem string
		)
		if patText == "" {
			problem = `no pattern before "="`
		} else {
			pat, problem = parseRoutePattern(patText)
		}
		if problem != "" {
			report(policyAnnotationRoles, index, item, problem)
		}
		list, listProblems := parseRoleList(roleText)
		for _, lp := range listProblems {
			report(policyAnnotationRoles, index, item, lp)
		}
		if problem != "" || len(listProblems) > 0 {
			return
		}
		if first, dup := seenRoles[pat.text]; dup {
			report(policyAnnotationRoles, index, item, fmt.Sprintf("same pattern as rule %d", first))
			return
		}
		seenRoles[pat.text] = index
		p.roles = append(p.roles, roleRule{
			pattern: pat,
			roles:   list,
			text:    pat.text + "=" + strings.Join(list, ","),
		})
	})

	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	slices.SortFunc(p.public, func(a, b routePattern) int { return comparePatterns(&a, &b) })
	slices.SortFunc(p.roles, func(a, b roleRule) int { return comparePatterns(&a.pattern, &b.pattern) })
	return &p, nil
}

// forEachPolicyItem calls fn for every non-empty item of s split at sep, trimmed of white space
// and numbered from 1. Empty items (",,", a trailing ";") are ignored.
func forEachPolicyItem(s string, sep byte, fn func(index int, item string)) {
	index := 0
	for item := range strings.SplitSeq(s, string(sep)) {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		index++
		fn(index, item)
	}
}

// parseRoleList parses "role1, role2". It returns the roles in the order listed, or problems.
func parseRoleList(s string) (roles []string, problems []string) {
	seen := map[string]bool{}
	for role := range strings.SplitSeq(s, ",") {
		role = strings.TrimSpace(role)
		switch {
		case role == "":
			continue
		case !validRole(role):
			problems = append(problems, fmt.Sprintf(
				`role %q is not valid: a role is 1 to 32 characters of a-z, 0-9, "_" and "-", starting with a letter`,
				shortenItem(role)))
		case seen[role]:
			problems = append(problems, fmt.Sprintf("role %q is listed twice", role))
		default:
			seen[role] = true
			roles = append(roles, role)
		}
	}
	if len(roles) == 0 && len(problems) == 0 {
		problems = append(problems, "no roles listed")
	}
	return roles, problems
}

// validRole reports whether role matches ^[a-z][a-z0-9_-]{0,31}$.
func validRole(role string) bool {
	if len(role) == 0 || len(role) > 32 || role[0] < 'a' || role[0] > 'z' {
		return false
	}
	for i := 1; i < len(role); i++ {
		c := role[i]
		if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// parseRoutePattern parses "/path" or "METHOD /path" (s is trimmed and non-empty). It returns a
// problem description instead of an error so the caller can add the position.
func parseRoutePattern(s string) (routePattern, string) {
	var pat routePattern
	path := s
	if !strings.HasPrefix(s, "/") {
		fields := strings.Fields(s)
		switch {
		case len(fields) == 1 && strings.Contains(s, "/"):
			if i := strings.IndexByte(s, '/'); i > 0 && isUpperMethod(s[:i]) {
				return pat, `expected "/path" or "METHOD /path": put a space between the method and the path`
			}
			return pat, `the path must start with "/"`
		case len(fields) == 1:
			return pat, `expected "/path" or "METHOD /path"`
		case len(fields) > 2:
			return pat, "white space is not allowed in a path"
		}
		pat.method, path = fields[0], fields[1]
		if problem := checkPatternMethod(pat.method); problem != "" {
			return pat, problem
		}
		if !strings.HasPrefix(path, "/") {
			return pat, fmt.Sprintf("path %q must start with \"/\"", shortenItem(path))
		}
	}
	if problem := parsePatternPath(path, &pat); problem != "" {
		return pat, problem
	}
	pat.text = pat.path()
	if pat.method != "" {
		pat.text = pat.method + " " + pat.text
	}
	return pat, ""
}

// path renders the pattern's path in canonical form.
func (p *routePattern) path() string {
	var b strings.Builder
	for _, s := range p.segs {
		b.WriteByte('/')
		if s.lit == "" {
			b.WriteByte('*')
		} else {
			b.WriteString(s.lit)
		}
	}
	if p.tail {
		b.WriteString("/**")
	}
	if b.Len() == 0 {
		return "/"
	}
	return b.String()
}

// isUpperMethod reports whether m looks like an upper-case method (for a hint only).
func isUpperMethod(m string) bool {
	return m != "" && checkPatternMethod(m) == ""
}

// checkPatternMethod accepts an RFC 9110 token with no lower-case letters that starts with a
// letter (GET, POST, M-SEARCH, ...).
func checkPatternMethod(m string) string {
	lower, token := false, true
	for i := 0; i < len(m); i++ {
		c := m[i]
		if 'a' <= c && c <= 'z' {
			lower = true
		}
		if !isTokenByte(c) {
			token = false
		}
	}
	switch {
	case !token:
		return fmt.Sprintf("method %q is not an HTTP method token", shortenItem(m))
	case lower:
		return fmt.Sprintf("method %q must be upper case", shortenItem(m))
	case m[0] < 'A' || m[0] > 'Z':
		return fmt.Sprintf("method %q must start with a letter; leave the method out to match every method", shortenItem(m))
	}
	return ""
}

// isTokenByte reports whether c is a tchar of RFC 9110 section 5.6.2.
func isTokenByte(c byte) bool {
	switch {
	case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		return true
	}
	return strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0
}

// parsePatternPath parses the path of a pattern into pat.segs, pat.tail, pat.prefix and pat.rest.
func parsePatternPath(path string, pat *routePattern) string {
	if !strings.HasPrefix(path, "/") {
		return `the path must start with "/"`
	}
	if path == "/" {
		return ""
	}
	parts := strings.Split(path[1:], "/")
	for i, part := range parts {
		last := i == len(parts)-1
		switch {
		case part == "" && last:
			short := strings.TrimSuffix(path, "/")
			return fmt.Sprintf(`trailing "/": write %q (it also matches %q) or %q`,
				shortenItem(short), shortenItem(path), shortenItem(short+"/**"))
		case part == "":
			return `empty segment ("//")`
		case part == "." || part == "..":
			return `"." and ".." segments are not allowed`
		case part == "**" && !last:
			return `"**" must be the last segment`
		case part == "**":
			pat.tail = true
		case part == "*":
			pat.segs = append(pat.segs, patternSegment{})
		default:
			if problem := checkLiteralSegment(part); problem != "" {
				return problem
			}
			pat.segs = append(pat.segs, patternSegment{lit: part})
		}
	}
	n := 0
	for n < len(pat.segs) && pat.segs[n].lit != "" {
		pat.prefix += "/" + pat.segs[n].lit
		n++
	}
	pat.rest = pat.segs[n:]
	return ""
}

// checkLiteralSegment accepts RFC 3986 path characters except "%" (patterns match the decoded
// path), the annotation separators ",", ";" and "=", and "*" (only whole segments are wildcards),
// plus printable non-ASCII characters.
func checkLiteralSegment(seg string) string {
	if seg[0] == ':' {
		return fmt.Sprintf("segment %q: write a path parameter as \"*\"", shortenItem(seg))
	}
	for i, r := range seg {
		if r >= utf8.RuneSelf {
			if r == utf8.RuneError {
				if _, size := utf8.DecodeRuneInString(seg[i:]); size == 1 {
					return "the pattern is not valid UTF-8"
				}
			}
			if unicode.IsSpace(r) {
				return "white space is not allowed in a path"
			}
			if !unicode.IsGraphic(r) {
				return fmt.Sprintf("character %q is not allowed in a path", r)
			}
			continue
		}
		c := byte(r)
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case strings.IndexByte("-._~!$&'()+:@", c) >= 0:
		case c == '*':
			return fmt.Sprintf("segment %q: \"*\" and \"**\" must be whole segments", shortenItem(seg))
		case c == '%':
			return "percent-encoding is not allowed: patterns match the decoded path, write the character itself"
		case c == '\\':
			return "backslashes are not allowed"
		case c == '=':
			return `"=" is not allowed in a pattern (role rules belong in authmesh.dev/roles)`
		case c == ',' || c == ';':
			return fmt.Sprintf("%q is not allowed in a pattern (it separates items)", c)
		case c == '{' || c == '}':
			return fmt.Sprintf("segment %q: write a path parameter as \"*\"", shortenItem(seg))
		case c == '?' || c == '#':
			return fmt.Sprintf("%q is not allowed: a pattern matches the path only", c)
		case c <= ' ' || c == 0x7f:
			if c == ' ' || c == '\t' || c == '\n' || c == '\r' {
				return "white space is not allowed in a path"
			}
			return fmt.Sprintf("control character %q is not allowed", c)
		default:
			return fmt.Sprintf("character %q is not allowed in a path", c)
		}
	}
	return ""
}

// Ranks of what a pattern has at a segment position; a higher rank is more specific.
const (
	rankRest    = iota // "**": the rest of the path
	rankEnd            // the pattern has ended: the path must end here
	rankStar           // "*": one segment
	rankLiteral        // a literal segment
)

func (p *routePattern) rankAt(i int) (int, string) {
	switch {
	case i < len(p.segs) && p.segs[i].lit == "":
		return rankStar, ""
	case i < len(p.segs):
		return rankLiteral, p.segs[i].lit
	case p.tail:
		return rankRest, ""
	}
	return rankEnd, ""
}

// comparePatterns orders patterns most specific first, as DESIGN.md pins it: of two patterns
// that can match the same path, the one with the longer literal prefix wins; with equal literal
// prefixes, a pattern with a method wins over one without; after that, at the first segment
// where they differ, a literal beats "*", "*" beats the end of the pattern, and the end beats
// "**"; then HEAD before other methods (a GET pattern also matches HEAD requests, so for a HEAD
// request a HEAD pattern must be tried first). Last, the canonical text, only to make the order
// total.
//
// The literal prefixes are compared segment by segment, by text, with a prefix that ends
// sorting after one that goes on. Two patterns that match one path have prefixes of which one
// begins the other, so the longer comes first; prefixes that differ in a segment belong to
// patterns that never share a path, and their text only makes the order readable. Each step
// compares a property of each pattern on its own, so the order is lexicographic and hence
// transitive: the rule that wins never depends on the order the annotation lists its rules
// in. (Comparing literal texts after a wildcard made a cycle: /*/a before POST /*/b/b before
// POST /** before /*/a.)
func comparePatterns(a, b *routePattern) int {
	na, nb := a.literalPrefixLen(), b.literalPrefixLen()
	for i := range min(na, nb) {
		if c := strings.Compare(a.segs[i].lit, b.segs[i].lit); c != 0 {
			return c
		}
	}
	if na != nb {
		return cmp.Compare(nb, na)
	}
	if am, bm := a.method != "", b.method != ""; am != bm {
		if am {
			return -1
		}
		return 1
	}
	for i := na; ; i++ {
		ra, _ := a.rankAt(i)
		rb, _ := b.rankAt(i)
		if ra != rb {
			return cmp.Compare(rb, ra)
		}
		if ra == rankRest || ra == rankEnd {
			break
		}
	}
	if c := cmp.Compare(methodOrder(a.method), methodOrder(b.method)); c != 0 {
		return c
	}
	return strings.Compare(a.text, b.text)
}

// literalPrefixLen is the number of literal segments the pattern starts with.
func (p *routePattern) literalPrefixLen() int { return len(p.segs) - len(p.rest) }

func methodOrder(m string) int {
	switch m {
	case "HEAD":
		return 0
	case "":
		return 2
	}
	return 1
}

// matches reports whether the pattern matches a request. path is a decoded, checked request
// path without its trailing slash, and "" for the root.
func (p *routePattern) matches(method, path string) bool {
	if p.method != "" && p.method != method && (p.method != "GET" || method != "HEAD") {
		return false
	}
	rest := path
	if p.prefix != "" {
		if !strings.HasPrefix(rest, p.prefix) {
			return false
		}
		rest = rest[len(p.prefix):]
		if rest != "" && rest[0] != '/' {
			return false
		}
	}
	for _, s := range p.rest {
		if rest == "" {
			return false
		}
		seg := rest[1:]
		if i := strings.IndexByte(seg, '/'); i >= 0 {
			seg, rest = seg[:i], seg[i:]
		} else {
			rest = ""
		}
		if seg == "" || s.lit != "" && s.lit != seg {
			return false
		}
	}
	return p.tail || rest == ""
}

// Decision is what a Policy decides for one request.
type Decision struct {
	// InvalidPath means the raw path is refused: answer 400 INVALID_PATH and forward nothing.
	// No other field is set.
	InvalidPath bool

	// Path is the percent-decoded request path the decision was made on, trailing slash kept.
	// Forward a path that decodes to exactly this (for example URL.Path = Path with
	// URL.RawPath = the raw path), so the app serves what was authorised.
	Path string

	// Public means the route needs no token.
	Public bool

	// Roles, when not nil, are the roles of which the token's role must be one (in the order the
	// rule lists them). It is shared with the Policy: do not modify it.
	Roles []string

	// Rule is the canonical text of the rule that decided, for logs: "POST /reports/**=manager,admin"
	// for a role rule, "/healthz" for a public route, "" when no rule matched (a token is needed,
	// no role).
	Rule string
}

// NeedsToken reports whether the request needs a valid token: it is not refused and not public.
func (d Decision) NeedsToken() bool {
	return !d.InvalidPath && !d.Public
}

// Allows reports whether a caller with the given role passes the role check of this decision:
// always for public routes and routes that need no role, never for a refused path, and for a role
// route only when role is one of Roles. It does not check the token itself.
func (d Decision) Allows(role string) bool {
	if d.InvalidPath {
		return false
	}
	if d.Roles == nil {
		return true
	}
	return slices.Contains(d.Roles, role)
}

// Decide decides a request from its method (compared exactly; a GET pattern also matches HEAD)
// and its raw path: the path as received, still percent-encoded, without the query
// (r.URL.EscapedPath(), or the path part of r.RequestURI). The raw path is checked first (see
// the package documentation); a refused path gets Decision{InvalidPath: true}. Otherwise the
// rules are matched against the decoded path: the best matching role rule if any role rule
// matches, else public if any public route matches, else a token with no role. Decide does not
// allocate unless the path contains percent-encodings.
func (p *Policy) Decide(method, rawPath string) Decision {
	path, ok := checkRequestPath(rawPath)
	if !ok {
		return Decision{InvalidPath: true}
	}
	d := Decision{Path: path}
	if p == nil {
		return d
	}
	match := path
	if len(match) > 1 && match[len(match)-1] == '/' {
		match = match[:len(match)-1]
	}
	if match == "/" {
		match = ""
	}
	for i := range p.roles {
		if r := &p.roles[i]; r.pattern.matches(method, match) {
			d.Roles, d.Rule = r.roles, r.text
			return d
		}
	}
	for i := range p.public {
		if pat := &p.public[i]; pat.matches(method, match) {
			d.Public, d.Rule = true, pat.text
			return d
		}
	}
	return d
}

// checkRequestPath refuses a raw request path that does not start with "/", has an empty
// segment other than a trailing one ("//"), a "." or ".." segment (percent-encoded dots count),
// a backslash, "%2F" or "%5C", a ";" (raw or encoded), a control character (raw or encoded), or
// a malformed percent-encoding. It returns the decoded path.
//
// ";" is refused because servers such as Tomcat and Jetty strip ";" path parameters before
// routing: "/public/..;/admin" would be matched here as a public path and served there as
// /admin. No pattern can contain ";" (it separates role rules), so nothing else is lost.
func checkRequestPath(raw string) (string, bool) {
	if raw == "" || raw[0] != '/' {
		return "", false
	}
	encoded := false
	segLen, onlyDots := 0, true
	for i := 1; ; {
		if i == len(raw) || raw[i] == '/' {
			switch {
			case segLen == 0 && i < len(raw):
				return "", false // "//"
			case segLen > 0 && segLen <= 2 && onlyDots:
				return "", false // "." or ".."
			}
			if i == len(raw) {
				break
			}
			i++
			segLen, onlyDots = 0, true
			continue
		}
		c := raw[i]
		if c == '%' {
			if i+2 >= len(raw) {
				return "", false
			}
			hi, ok1 := unhexByte(raw[i+1])
			lo, ok2 := unhexByte(raw[i+2])
			if !ok1 || !ok2 {
				return "", false
			}
			c = hi<<4 | lo
			if c == '/' {
				return "", false
			}
			encoded = true
			i += 3
		} else {
			i++
		}
		if c == '\\' || c == ';' || c < ' ' || c == 0x7f {
			return "", false
		}
		segLen++
		if c != '.' {
			onlyDots = false
		}
	}
	if !encoded {
		return raw, true
	}
	var b strings.Builder
	b.Grow(len(raw))
	for i := 0; i < len(raw); i++ {
		if raw[i] == '%' {
			hi, _ := unhexByte(raw[i+1])
			lo, _ := unhexByte(raw[i+2])
			b.WriteByte(hi<<4 | lo)
			i += 2
			continue
		}
		b.WriteByte(raw[i])
	}
	return b.String(), true
}

func unhexByte(c byte) (byte, bool) {
	switch {
	case '0' <= c && c <= '9':
		return c - '0', true
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10, true
	case 'A' <= c && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}

// Annotations renders the policy as canonical annotation values: items separated by ", " and
// "; ", role lists by ",", most specific rule first (the order Decide tries them). Parsing them
// gives an equal Policy.
func (p *Policy) Annotations() (public, roles string) {
	if p == nil {
		return "", ""
	}
	pub := make([]string, len(p.public))
	for i := range p.public {
		pub[i] = p.public[i].text
	}
	rules := make([]string, len(p.roles))
	for i := range p.roles {
		rules[i] = p.roles[i].text
	}
	return strings.Join(pub, ", "), strings.Join(rules, "; ")
}

// String renders the policy in canonical form for logs, e.g.
// `public="/healthz, /public/**" roles="/admin/**=admin"`.
func (p *Policy) String() string {
	public, roles := p.Annotations()
	return fmt.Sprintf("public=%q roles=%q", public, roles)
}
