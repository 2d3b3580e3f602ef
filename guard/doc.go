// Package guard is authmesh's enforcement library: access-token verification with pinned
// algorithms, the JWKS cache, the revocation follower, the public/roles policy parser and
// matcher, and net/http middleware. It is used by the sidecar, the auth server's bearer routes
// and the injection webhook, and is importable by any Go app. It depends only on the standard
// library, golang-jwt and a JWK library.
package guard
