// Package tenancy owns which tenants the auth server serves and how a request reaches one: the
// Source interface and its file implementation (the Kubernetes one is package
// tenancy/kube), the Registry that turns what a source reports into servable tenants, the
// per-tenant MongoDB client Pool, the Tenant defaults applied in Go, and the HTTP middleware
// that resolves a request's tenant (x-tenant-id, or a path wildcard) into a *Tenant in the
// request context, with the tenant's CORS policy.
//
// Later handlers get everything a tenant has from the context:
//
//	t := tenancy.FromContext(r.Context())
//	t.ID, t.Spec            // the tenant id and its spec, defaults applied (read-only)
//	t.DB                    // *mongo.Database of the tenant (nil on routes registered with NoDatabase)
//	t.Tokens.Issue(...)     // sign an access token with the tenant's active key
//
// Routes are registered on an httpapi.Router with the registry's middleware:
//
//	rt.Handle("POST /auth/login", h, reg.Middleware(tenancy.RouteOptions{}))               // x-tenant-id + database
//	rt.Handle("GET /t/{tenant}/x", h, reg.Middleware(tenancy.RouteOptions{PathValue: "tenant", NoDatabase: true}))
//
// and code that learns the tenant elsewhere (the unlock token names it) calls Registry.Acquire.
// Background work that depends on what a tenant looks like (a bootstrap admin to create, a key
// rotation to record) hooks in with Registry.Watch, which reports every upsert: serving or
// not, just started or not, the active key before and after.
//
// Answers: unknown tenant TENANT_NOT_FOUND (404); spec.suspended or phase Suspended
// TENANT_SUSPENDED (403); not Ready, no usable signing keys, no connection URI, or a database
// that does not answer a ping TENANT_CONNECTION_MISSING (503). Only Ready tenants serve. A
// request takes one snapshot of its tenant: a key rotation or spec change swaps the snapshot
// atomically for later requests and never fails one in flight.
//
// Pool: one *mongo.Client per distinct connection URI, shared by every tenant with that URI,
// at most MaxClients (the least recently used idle client is closed first), idle clients
// closed after IdleTimeout, and a client whose URI no tenant uses any more closed as soon as
// its last request ends (so a changed URI means a new client). Each client is pinged every
// HealthInterval; a request waits for the first ping of a new client only.
//
// CORS: a request with an Origin in the tenant's spec.cors.allowedOrigins gets
// Access-Control-Allow-Origin for it (no credentials: tokens travel in headers). A preflight
// cannot carry x-tenant-id, so preflights are answered for any origin some serving tenant
// allows; the browser then enforces the tenant's own list on the real request.
//
// Metrics:
//
//	authmesh_authserver_tenants{state="serving|suspended|unavailable"}   gauge
//	authmesh_authserver_signing_key_changes_total                        counter
//	authmesh_authserver_mongo_clients                                    gauge
//	authmesh_authserver_mongo_client_closes_total{reason="idle|evicted|unused|shutdown"}  counter
//
// It does not own the documents in a tenant's database (the store does), the schema
// (internal/tenantdb), or key generation and rotation (internal/keys, the controller).
package tenancy
