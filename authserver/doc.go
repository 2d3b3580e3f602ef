// Package authserver assembles the auth server: the public API (port 3502), the internal API
// (3503) and the admin listener (9502: /healthz, /readyz, /metrics), the tenant registry and
// database pool behind them, and the routes every deployment has: GET /auth/health, and per
// tenant GET /t/{tenant}/.well-known/jwks.json and /t/{tenant}/.well-known/openid-configuration.
// It never imports the controllers or the sidecar. cmd/authserver turns flags and environment
// into a Config and runs what New returns.
//
// The parts live in subpackages, each owning one thing:
//
//	authserver/httpapi        the HTTP contract: envelope, errors and codes, decoding and
//	                          validation, Router (logs, metrics, 404/405, body limit)
//	authserver/tenancy        tenants: Source, file source, Registry, MongoDB Pool, tenant
//	                          middleware and context, CORS, defaults
//	authserver/tenancy/kube   the Kubernetes tenant source (Tenants and their Secrets)
//	authserver/tokens         access-token signing, JWKS and discovery documents
//	authserver/identity       signup, users and identifiers, password login, emailed codes,
//	                          lockout and unlock, their rate limits (CreateUser for seeding)
//	authserver/password       argon2id hashing with PHC strings and a bound on concurrency
//	authserver/mail           sending mail over SMTP (go-mail)
//	authserver/ratelimit      in-memory token buckets per key, bounded
//	authserver/clientinfo     the client IP (trusted proxies) and device names
//	authserver/sessions       sessions, refresh rotation and reuse detection, logout, the
//	                          bearer-route middleware, the revocation feed, introspection
//	authserver/internalauth   who may call the internal API (none on loopback, TokenReview)
//	authserver/account        password change, forgot and reset links, the bootstrap admin
//	authserver/admin          the admin API: users, roles, disabling, sessions, the audit trail
//	authserver/audit          the per-tenant audit trail of security events, its retention
//
// Adding routes. A feature (signup, login, sessions, ...) lives in its own package under
// authserver/ and registers its routes on Server.Public (or Server.Internal) from New:
//
//	s.Public.Handle("POST /auth/signup", httpapi.HandlerFunc(h.signup), s.Registry.Middleware(tenancy.RouteOptions{}))
//
// The handler finds its tenant (spec, leased *mongo.Database, token signer) with
// tenancy.FromContext, decodes its body with s.Decoder.Decode (which answers INVALID_JSON,
// VALIDATION_FAILED, PAYLOAD_TOO_LARGE itself), answers with httpapi.WriteSuccess, returns an
// *httpapi.Error for its own codes, and returns any other error for a 500 INTERNAL_ERROR
// (database unreachability becomes 503 TENANT_CONNECTION_MISSING through tenancy.Classify).
// Access tokens come from t.Tokens.Issue(tokens.Subject{UserID, Role, SessionID}).
package authserver
