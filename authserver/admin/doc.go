// Package admin owns the admin API of a tenant: listing and searching its users, looking at
// one with their sessions, changing a user's role, disabling and enabling users, ending their
// sessions, and reading the tenant's audit trail.
//
// Routes (Register adds them to the server's public router), for callers whose access token
// carries the role admin (authserver.AdminRole) of the tenant named by x-tenant-id:
//
//	GET    /auth/admin/users?query=&page=&pageSize=             USERS_RETRIEVED {items, page, pageSize, total}
//	GET    /auth/admin/users/{userId}                           USER_RETRIEVED {user, sessions}
//	PATCH  /auth/admin/users/{userId} {role?, disabled?, revokeSessions?}   USER_UPDATED {user, revokedCount}
//	DELETE /auth/admin/users/{userId}/sessions/{sessionId}      SESSION_REVOKED {sessionId}
//	GET    /auth/admin/audit?after=&limit=&order=&userId=&type= AUDIT_RETRIEVED {items, next}
//
// Codes, besides the shared ones: UNAUTHORIZED and SESSION_INVALID (401, from the bearer
// middleware), FORBIDDEN_ROLE (403: the token's role is not admin, or the caller is no longer
// an enabled admin in the database), USER_NOT_FOUND (404), SESSION_NOT_FOUND (404),
// VALIDATION_FAILED (400: a role that is not one of the tenant's spec.roles, an empty PATCH,
// bad paging parameters or cursor) and ADMIN_SELF_LOCKOUT (403: an admin tried to disable
// themself or take away their own admin role; another admin must do it, so a tenant is never
// left without an admin by accident).
//
// # Who is an admin
//
// The sessions bearer middleware (sessions.Service.Authenticate with the admin role) checks
// the token (signature, issuer, audience, and its tid: a token of tenant A is refused for
// tenant B with UNAUTHORIZED), that its session is live, and its role claim. Then the caller's
// user is read: a user demoted or disabled since the token was issued is refused at once with
// FORBIDDEN_ROLE, rather than keeping admin power until the token expires. Users are looked up
// in the tenant's own database, so an admin of one tenant cannot even name another tenant's
// users (USER_NOT_FOUND).
//
// # Users
//
// The list is newest first, pageSize 1 to 100 (20 by default), page from 1. query matches
// username or email by prefix, case-insensitively (an anchored $regex: the dev database has
// no text index). Users are shown without their password hash or failure count; locked says
// whether a lockout is in force (lockedUntil when it is).
//
// PATCH changes what it is given. role must be one of the tenant's spec.roles; tokens carry
// the new role from the user's next refresh (package sessions reads the user at every
// refresh), or at once when revokeSessions is also set (the user logs in again). disabled:
// true revokes every session of the user at once through sessions.RevokeAllOfUser (reason
// user_disabled), so the auth server refuses their tokens at once (SESSION_INVALID) and every
// sidecar within a second through the revocation feed; a disabled user cannot log in
// (ACCOUNT_DISABLED) or refresh. disabled: false enables the user again (they log in anew).
// revokeSessions: true alone ends every session (reason admin).
//
// # Audit
//
// The trail is package audit's (audit.Log.List): oldest first, limit 1 to 500 (50 by
// default), after = the next of the previous page; next is "" when no more events follow now
// (to follow new events later, pass the id of the last event seen). order=newest pages from
// the newest event back in time instead (after then continues with older ones; next is "" at
// the oldest), as an admin screen shows them. userId keeps events whose
// actor or subject is that user, type events of one type. Admin actions are recorded there
// too: user.role_changed, user.disabled, user.enabled, user.sessions_revoked,
// user.session_revoked, user.self_lockout_refused, with the admin as actor.
//
// It does not own users (package identity), sessions (package sessions), the trail's storage
// (package audit), or the bootstrap admin (package account).
package admin
