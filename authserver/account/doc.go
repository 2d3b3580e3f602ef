// Package account owns what a user (or a tenant's first admin) does with their own password
// after signup: changing it, resetting a forgotten one through an emailed link, and the
// tenant's bootstrap admin, who sets a first password through the same kind of link.
//
// Routes (Register adds them to the server's public router):
//
//	POST /auth/password/change  bearer  {currentPassword, newPassword}   PASSWORD_CHANGED {revokedCount}
//	POST /auth/password/forgot          {usernameOrEmailOrMobile}         PASSWORD_RESET_SENT
//	GET  /auth/password/reset?token=                                      an HTML form, or RESET_TOKEN_VALID {expiresAt}
//	POST /auth/password/reset           {token, newPassword} (or the form) PASSWORD_RESET
//
// Codes, besides the shared ones (VALIDATION_FAILED, RATE_LIMITED, UNAUTHORIZED, ...):
// INVALID_CREDENTIALS (401: wrong current password), ACCOUNT_LOCKED (423) and ACCOUNT_DISABLED
// (403) from the change, and INVALID_RESET_TOKEN (400: malformed, unknown, expired or used).
//
// # Change
//
// The current password is checked the way a login checks it (identity.Service.CheckPassword):
// a wrong one counts toward the lockout and can lock the account, which mails the unlock link
// as a login failure does. The new password must have 8 to 128 characters, as at signup. On
// success every other session of the user is revoked (sessions.RevokeAllOfUser with the
// caller's session excepted, so the revocations reach every sidecar through the feed) and
// outstanding reset and unlock links are dropped.
//
// # Forgot and reset
//
// Forgot answers PASSWORD_RESET_SENT whatever the account: the same status, body and headers
// for an unknown identifier, a disabled user and a real one, after the same work (one lookup
// of the identifier, one user read, one audit write), since issuing and mailing the link
// happen in the background (Run). Rate limits, per client IP and per identifier given, keep it
// from mailing someone a flood.
//
// A reset token is "<tenant>.<256 random bits, base64url>", as identity's unlock tokens are:
// it names its tenant, so /auth/password/reset needs no x-tenant-id (the header is ignored).
// account_tokens keeps only its SHA-256, kind "password_reset", the user and the expiry
// (authserver.AccountConfig.ResetTokenTTL, 30 minutes by default). Redeeming it is one
// findOneAndDelete on hash, kind and expiry, so a link works once. A reset sets the password,
// clears the failure count and any lock, removes the user's other reset and unlock links, and
// revokes every session of the user (reason password_reset).
//
// Browsers: the mailed link is a GET. When the request prefers HTML (a person clicking, or a
// mail scanner), it answers a small page with a form (new password twice) that POSTs to the
// same path, so following the link changes nothing; the page checks the token first and says
// when it is no longer good. A GET asking for JSON answers RESET_TOKEN_VALID {expiresAt} or
// INVALID_RESET_TOKEN without using the token. The pages carry no-store, no-referrer, a
// deny-all CSP (form-action 'self') and no framing, like identity's unlock page.
//
// # Bootstrap admin
//
// When a tenant with spec.bootstrapAdmin.email is served (tenancy.Registry.Watch: first load,
// back from suspended or unavailable, or a spec change) and no user has that email, Run
// creates one with role admin (authserver.AdminRole; a tenant without that role gets none and
// an error in the log) and a password nobody knows (the hash of a random secret that is thrown
// away), then mails a set-password link: a reset token valid for
// AccountConfig.SetPasswordTokenTTL (3 days by default). The username is derived from the
// email (BootstrapUsername), with "-2", "-3", ... when taken. Replicas agree through the
// identifiers collection: the one whose insert of the email's identifier wins creates the
// user and sends the one mail; the others find the email taken. If the mail cannot be sent
// (after retries), the admin uses forgot-password. Removing the user later does not recreate
// it until the auth server restarts or the Tenant's bootstrap email changes.
//
// # Audit
//
// Events (package audit): password.change (success; failure invalid_credentials, locked,
// disabled), password.reset_requested (success; failure unknown_account, disabled),
// password.reset (success; failure invalid_token), user.bootstrap_admin.
//
// # Metrics
//
//	authmesh_authserver_account_mails_total{kind,result}   counter (kind reset|set_password, result sent|failed|dropped)
//
// It does not own users, login or lockout (package identity), sessions (package sessions), or
// what admins do to other users (package admin).
package account
