// Package authserver owns the auth server: the public HTTP API on port 3502 (signup, password
// and emailed-OTP login, sessions, logout, refresh rotation, JWKS and discovery), the internal
// API on 3503 (revocation feed, introspection), the MongoDB store, password hashing, OTP,
// email and token signing. It never imports the controllers or the sidecar.
package authserver
