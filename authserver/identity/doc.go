// Package identity owns who a tenant's users are and how they prove it: signup, the users and
// identifiers collections, password login, the emailed one-time code (OTP) of the second step,
// account lockout after repeated failures and unlocking by emailed link, and the rate limits
// of those routes. A successful login hands over to package sessions (sessions.Service.Start),
// which owns everything after it.
//
// Routes (Register adds them to the server's public router):
//
//	POST /auth/signup        {username, email, mobile?, password}   SIGNUP_SUCCESS (201)
//	POST /auth/login         {usernameOrEmailOrMobile, password}    OTP_SENT {loginId, expiresAt}, or LOGIN_SUCCESS
//	POST /auth/login/verify  {loginId, otp}                         LOGIN_SUCCESS {accessToken, refreshToken, tokenType, expiresIn, sessionId}
//	GET  /auth/unlock?token= ; POST /auth/unlock {token}            ACCOUNT_UNLOCKED
//
// Codes it answers with, besides the shared ones (VALIDATION_FAILED, RATE_LIMITED, ...):
// USER_EXISTS (409, meta.details.field names the identifier taken), INVALID_CREDENTIALS (401),
// ACCOUNT_LOCKED (423, with Retry-After), ACCOUNT_DISABLED (403), INVALID_OTP (401,
// meta.details.attemptsLeft), OTP_EXPIRED (410: expired, already used or unknown loginId),
// OTP_ATTEMPTS_EXCEEDED (429), INVALID_UNLOCK_TOKEN (400) and EMAIL_UNAVAILABLE (503: the code
// could not be mailed; nothing of the login attempt is kept).
//
// # Identifiers and uniqueness
//
// Usernames are 3 to 32 letters, digits, '.', '_' or '-', never all digits (so never an email
// or a mobile), compared case-insensitively; emails are compared lower-case; mobiles are E.164
// ("+4915112345678"). So usernameOrEmailOrMobile is never ambiguous: '@' means an email, a
// leading '+' a mobile, anything else a username. Uniqueness lives in the identifiers
// collection, whose _id is "username:<x>", "email:<x>" or "mobile:<x>" and points at the user:
// CreateUser inserts the identifiers first (an _id insert is atomic and unique on every
// MongoDB-wire server), removes the ones it inserted when a later one collides, and only then
// inserts the user. An identifier left behind by a signup that died half way (its user does not
// exist) is reclaimed after a minute.
//
// # Passwords, login and one-time codes
//
// Passwords are argon2id (package password) with at least OWASP's parameters, rehashed at login
// when the configured parameters are stronger than the stored hash's. An unknown account costs
// the same hash as a known one and answers the same INVALID_CREDENTIALS.
//
// With the tenant's spec.login.otp enabled, a right password creates a login challenge
// (login_challenges: the loginId, the code's SHA-256 bound to the loginId, attempts, expiry) and
// mails the code (crypto/rand digits of spec.login.otp.length; valid for spec.login.otp.ttl,
// never more than 10 minutes). The code is stored hashed; with at most 10^10 codes that guards
// against reading a code off a database screen or backup, not against an attacker who has the
// database and minutes to spare. Each verify first takes one of the challenge's maxAttempts
// with a conditional $inc, so parallel guesses cannot exceed it, then compares in constant
// time; a right code is consumed by deleteOne, and only the caller whose delete removed the
// document gets tokens. Expired challenges are filtered out by every query (no TTL index is
// needed for correctness).
//
// # Lockout
//
// users.failedLogins counts failures per account, across replicas, in the database. A password
// attempt first reserves a failure with a conditional $inc (failedLogins < maxFailedAttempts and
// not locked), then checks the password: a wrong one keeps the reservation, a right one gives it
// back (or, when the login is complete, resets the counter). So however many guesses arrive at
// once, at most maxFailedAttempts are checked per lock period. A wrong one-time code counts as a
// failure too, so fresh challenges cannot be used to guess codes. The failure that reaches the
// threshold locks the account (lockedUntil = now + spec.login.lockout.duration, counter reset)
// with an update conditional on "not locked": exactly one request wins, and only it mails the
// unlock link, so there is one mail per lock period. A locked account answers ACCOUNT_LOCKED
// even to the right password, and unlocks by itself when lockedUntil passes.
//
// Unlock tokens are "<tenant>.<256 random bits, base64url>": the tenant is named by the token,
// so /auth/unlock needs no x-tenant-id. account_tokens keeps only their SHA-256, with the user
// and an expiry equal to the lock's end; unlocking deletes the token (findOneAndDelete, single
// use) and clears the lock. GET /auth/unlock from a browser (Accept prefers text/html) shows a
// confirmation page whose form POSTs the token, so a mail scanner that follows links unlocks
// nothing; GET asking for JSON, and POST (JSON or the form), unlock.
//
// # Rate limits
//
// Per client IP (clientinfo.IP) and per account, in memory per replica (package ratelimit):
// signup (IP, email), login (IP, the identifier given), verify (IP, the challenge's user),
// unlock (IP, the token). Limits are configuration (authserver.IdentityConfig).
//
// # Mail
//
// Mail goes through package mail from the tenant's spec.email.from; the texts (what the code or
// link is for, when it expires) are in messages.go. The per-tenant SMTP Secret is not read yet.
//
// # Audit
//
// With Options.Audit set, the flows record (package audit): user.signup (failure user_exists),
// login.password (success when a code is mailed; failure unknown_account, invalid_credentials,
// locked, disabled), login.otp (failure invalid_otp, attempts_exceeded, expired, locked,
// disabled), login.success (with the new session), account.locked and account.unlocked
// (failure invalid_token). What an anonymous caller typed is never recorded.
//
// # Metrics
//
//	authmesh_authserver_account_locks_total              counter
//	authmesh_authserver_mails_total{kind,result}         counter (kind otp|unlock, result sent|failed)
//	authmesh_authserver_identity_outcomes_total{tenant,flow,code}  counter (flow signup|login|verify; the answer's code)
//
// Request counts by code come from the router (authmesh_authserver_http_requests_total).
//
// It does not own sessions, tokens or refresh (package sessions), password change and reset
// (package account, which checks current passwords with CheckPassword so that they count
// toward the lockout), or the admin user routes (package admin).
package identity
