// Package audit owns each tenant's audit trail: an append-only record of security events in
// the tenant's audit collection (tenantdb.Audit), who may read it (an admin route of package
// authserver/admin pages through it with List), and how long it is kept.
//
// # Events
//
// Every event has a time, a type, an outcome (success or failure, with a reason for failures
// and refusals), the actor (the user who acted: the caller of a bearer route, the user a login
// was for; "system" for the server's own doings; empty for anonymous callers), the subject
// (the user the event is about), the session when one is involved, and the client's IP, user
// agent and request id, taken from the request's context (clientinfo.FromContext,
// httpapi.RequestID). Details are a few plain strings (a role before and after, a count, a key
// id). The types are the Type* constants; the packages that own the flows emit them through
// the Recorder they are given (identity.Options.Audit, sessions.Options.Audit, and packages
// account and admin), and a nil Recorder records nothing.
//
// Events never hold secrets: no passwords, codes, tokens or hashes, and not what an anonymous
// caller typed as an identifier either (people type passwords into the username field). Record
// drops detail keys that name a secret (password, token, secret, otp, hash), as a last guard.
//
// Writes are best effort: a failed write is logged and counted, and never fails the request
// that caused it (the trail records what happened; it does not decide it). Events written
// while the client has gone away are still written.
//
// # Order and paging
//
// An event's _id is the time in Unix milliseconds (13 digits) followed by a MongoDB ObjectID
// ("1764400000123-65f1c2...": increasing within a replica), so the trail is ordered by _id
// and a page's last _id is the cursor of the next: List answers the events after a cursor,
// oldest first, with next = the last one's id while more follow and "" at the end.
//
// # Retention
//
// Options.Retention bounds how long events are kept (0 keeps them forever). Each event carries
// expiresAt (a TTL index removes it where the database has TTL indexes, internal/tenantdb),
// List never answers events older than the retention, and Run deletes them every
// PruneInterval in the tenants this replica has served, so a shortened retention applies to
// events written before it too.
//
// # Key rotations
//
// New watches the tenant registry: when a tenant's active signing key changes, Run records
// keys.rotation_seen (one per replica that saw it; details kid and previousKid).
//
// # Metrics
//
//	authmesh_authserver_audit_events_total{type,outcome}   counter (written)
//	authmesh_authserver_audit_write_failures_total        counter
//
// It does not own the flows it records, nor the admin route that reads the trail.
package audit
