// Package sessions owns login sessions and everything that ends them: one document per
// session in the tenant's sessions collection, starting a session with its first token pair
// (Service.Start, called by login), listing and revoking sessions, refresh rotation with reuse
// detection, the middleware of the auth server's own bearer routes, the internal revocation
// feed that carries every revocation to every enforcement point, and RFC 7662 introspection.
//
// # Sessions
//
// A session document holds the user id, device name, IP and user agent, createdAt, lastSeen,
// the absolute expiry (expiresAt, spec.tokens.refreshTokenTTL after login), the idle expiry
// (idleExpiresAt, when the tenant sets spec.tokens.idleTimeout; moved on at every refresh),
// the refresh generation, the hashes of the current and the previous refresh secret,
// rotatedAt, revokedAt and revokeReason, and accessExpiresAt, when the last access token
// issued for it expires. Every query for live sessions carries ActiveFilter, so expired
// sessions are invisible even where the database has no TTL index; Run's maintenance deletes
// sessions past their absolute expiry and expired revocations, which is what TTL indexes do
// where they exist. "Used", for the idle timeout, means refreshed: sidecars verify access
// tokens without telling the auth server.
//
// # Refresh tokens
//
// A refresh token is <sessionId>.<generation>.<secret>; the secret is 256 random bits
// followed by a 128-bit tag, HMAC-SHA256 over (session, generation, random bits) with a key
// of the session's own (tagKey, never returned by any API). The database stores only the
// SHA-256 of the random bits of the current and the previous secret. The tag lets the server
// tell a genuine token of an earlier generation (reuse: revoke) from a forged one, without
// keeping every old hash: session ids are not secret (every access token carries its sid, so
// every app behind a sidecar sees them), and without the tag anyone who knows one could end
// a session by presenting "<sid>.0.anything".
//
// # Refresh rotation
//
// POST /auth/refresh is one findOneAndUpdate on the session, filtering on _id, generation,
// the current hash, not revoked and not expired, and setting the new hash, generation + 1,
// prevHash, lastSeen, rotatedAt, accessExpiresAt and the idle expiry. When it matches nothing,
// the session is read to say why:
//
//	malformed token, unknown session, a generation never issued  INVALID_REFRESH_TOKEN
//	revoked or expired session                                   SESSION_NOT_FOUND
//	current generation, wrong secret; any forged tag             INVALID_REFRESH_HASH
//	an earlier generation, genuinely issued                      REFRESH_TOKEN_REUSED: the session is revoked
//
// all 401. The one exception: with spec.tokens.refreshReuseGrace > 0, the immediate
// predecessor (generation = current - 1, its hash = prevHash) presented no later than the
// grace after the rotation that replaced it is rotated again, by the same compare-and-swap
// filtering on the state just read; the current token then becomes the predecessor. So a
// lost response can be retried once per rotation; a second retry of the same token is two
// generations old, hence reuse. With grace 0, concurrent refreshes of one token leave one
// winner and revoke the session for the others, as RFC 9700 asks.
//
// Before the swap the session's user is read (users collection: _id, role, disabled): the new
// access token carries the user's current role, so a role change takes effect at the next
// refresh; a user who is gone or disabled gets SESSION_NOT_FOUND after the swap and the
// session is revoked. Reading first makes the swap the last database operation of a refresh,
// so a refresh that answers an error (503 when the database goes away) has not spent the
// presented token, and retrying it is no reuse (test/fault found this).
//
// # Revocation
//
// Logout, logout-all, reuse detection and RevokeAllOfUser (password change, reset, user
// disablement, an admin's revokeSessions) set revokedAt and append one entry per session to the tenant's revocations
// collection: {_id = seq, seq, sid, userId, exp, expiresAt, at, reason}. seq comes from the
// tenant's counter (counters {_id: "revocations"}, $inc in a findOneAndUpdate upsert), so it
// is one sequence across replicas; exp is the session's accessExpiresAt (Unix seconds), and
// the entry is kept and served until exp + guard.ClockSkew, while verifiers may still accept
// a token of the session. Sessions whose last access token has already expired get no entry.
// If appending fails (the session is revoked already), the call still succeeds and Run
// appends the entries again every second until it works.
//
// The revoking write also sets revokePending, and publication unsets it: an outbox in the
// session itself. A replica that dies between the two writes (its retry queue is in memory)
// leaves the mark, and every replica's maintenance (each MaintenanceInterval, over every
// serving tenant, through the sessions revoke_pending index) publishes revocations still
// pending pendingSweepAge after they were written. An entry published twice (a sweep racing
// a slow publisher) is the same revocation to followers.
//
// The auth server's own bearer routes (Authenticate) verify the token with guard (a Verifier
// per tenant over the key-set snapshot's public keys) and read the session on every request,
// so a revoked session's tokens are refused at once with SESSION_INVALID.
//
// # Revocation feed
//
// GET /internal/v1/tenants/{tenant}/revocations?after=<seq>&wait=<seconds> answers
// {"seq", "reset", "revoked": [{"sid", "exp"}]} (guard.RevocationFeed): the entries after the
// cursor, at once if there are any, else when one arrives or wait (at most FeedMaxWait)
// passes. A cursor older than what is kept, or newer than anything numbered (a reset
// database), gets reset: true and the full current set. Each replica keeps, per followed
// tenant, the current set in memory with one poller (one query per FeedPollInterval however
// many followers wait, since the dev database has no change streams); a revocation made by
// this replica wakes its waiters without waiting for the poll. seq in the answer is the
// watermark: the highest seq up to which every entry is known. An entry numbered on another
// replica but not visible yet holds back those after it for at most one second, so a cursor
// never passes an entry its follower has not seen.
//
// POST /internal/v1/introspect is RFC 7662 introspection of access tokens (form field token;
// not enveloped). Both internal routes sit behind Routes.InternalAuth.
//
// # Audit
//
// With Options.Audit set, the routes record (package audit) session.logout,
// session.logout_all and session.refresh_reused; callers of RevokeAllOfUser record their own
// events (password change and reset, user disablement).
//
// # Metrics
//
//	authmesh_authserver_session_refreshes_total{outcome}           counter
//	authmesh_authserver_refresh_reuse_detections_total{tenant}     counter
//	authmesh_authserver_session_revocations_total{reason}          counter
//	authmesh_authserver_active_sessions{tenant}                    gauge (recounted by Run; max across replicas)
//	authmesh_authserver_revocation_feed_subscribers{tenant}        gauge
//	authmesh_authserver_revocation_feed_lag_seconds                histogram (publication to served)
//
// It does not own users, passwords or login (package authserver/identity), token signing
// (authserver/tokens), how internal callers authenticate (authserver/internalauth), or how a
// sidecar follows the feed (guard.RevocationFollower).
package sessions
