// Package guard is authmesh's enforcement library: access-token verification with pinned
// algorithms, the JWKS cache, the revocation follower, the public/roles policy parser and
// matcher, and net/http middleware. It is used by the sidecar, the auth server's bearer routes
// and the injection webhook, and is importable by any Go app. It depends only on the standard
// library, golang-jwt and a JWK library.
//
// # Policy: public routes and role routes
//
// [ParsePolicy] reads a pod's two policy annotations; [Policy.Decide] decides each request:
//
//	authmesh.dev/public: /healthz, /public/**, GET /docs/**
//	authmesh.dev/roles:  /admin/**=admin; POST /reports/**=manager,admin
//
// The public annotation lists patterns separated by ","; the roles annotation lists rules
// PATTERN=role1,role2 separated by ";". White space around items is ignored and so are empty
// items (",,", a trailing ";"). A pattern is an optional method (an upper-case HTTP token that
// starts with a letter, such as GET or M-SEARCH) and a path that starts with "/". A path segment
// "*" matches exactly one non-empty segment; "**", allowed only as the last segment, matches the
// rest of the path, zero or more segments, so "/public/**" matches "/public", "/public/" and
// "/public/a/b". Other segments are literal: no partial wildcards ("a*b"), no percent-encodings
// (patterns match the decoded path), no ".", ".." or empty segments, no trailing "/", no
// backslash, and none of ",", ";", "=", "?", "#", "{", "}", white space or control characters; a
// segment may not start with ":" (write a path parameter as "*"). Roles match
// ^[a-z][a-z0-9_-]{0,31}$. A pattern may appear once per annotation, a role once per rule.
// ParsePolicy reports every problem at once, each a [*PolicyError] naming the item by position.
//
// Decide first checks the raw path (as received, still percent-encoded) and refuses it
// (Decision.InvalidPath: answer 400 INVALID_PATH, never redirect) when it does not start with
// "/", or has a "." or ".." segment (percent-encoded dots count as dots), "//", "%2F", "%5C", a
// backslash, a control character (raw or encoded, such as "%00"), or a malformed
// percent-encoding. Otherwise it decodes the path once and matches the decoded path, ignoring one
// trailing "/" ("/a/" is matched as "/a"); Decision.Path is the decoded path, and the proxy
// forwards a path that decodes to exactly it. Then, fail closed:
//
//  1. if any role rule matches, the most specific matching role rule decides: the caller needs
//     a valid token whose role is one of the rule's roles, even if a public route matches too;
//  2. otherwise, if any public route matches, no token is needed;
//  3. otherwise a valid token is needed, with any role.
//
// Matching is case-sensitive for paths and methods, with one addition: a GET pattern also
// matches HEAD requests (as in net/http.ServeMux), because servers answer HEAD with their GET
// handler. The most specific rule wins: first the longer literal prefix ("/api/v1/**" over
// "/api/**"); with equal literal prefixes a pattern with a method over one without ("GET
// /api/**" over "/api/*"); then, at the first segment where they differ, a literal beats "*",
// "*" beats the end of the pattern, and the end beats "**" ("/x/*/c/*" over "/x/*/*/d", "/api"
// over "/api/**", "/api/*" over "/api/**"); for HEAD requests a HEAD pattern beats a GET pattern. [Policy.Annotations] and [Policy.String] render
// the rules in this order, which is the order Decide tries them.
package guard
