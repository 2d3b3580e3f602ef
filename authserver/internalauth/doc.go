// Package internalauth decides who may call the auth server's internal API (port 3503: the
// revocation feed and token introspection). An Authenticator looks at a request; Middleware
// turns it into an httpapi.Middleware that answers 401 UNAUTHORIZED (no or a bad credential)
// or 403 FORBIDDEN before the route runs.
//
// Two modes, chosen in the auth server's configuration:
//
//   - None admits everyone. It is for dev mode, where the internal listener is on loopback
//     only (the configuration refuses "none" on any other address).
//   - TokenReview (Kubernetes) takes the caller's bearer token, a projected ServiceAccount
//     token minted for the configured audience (default "authmesh-internal", so an ordinary
//     pod token, or a token meant for another service, is refused), and asks the API server
//     with a TokenReview whether it is valid. Answers are cached by the token's SHA-256 (valid
//     ones for a minute, refusals for ten seconds; concurrent reviews of one token share one
//     call), so a sidecar's long polls cost the API server about one review per minute.
//     Optionally only listed ServiceAccounts ("namespace/name", or "namespace/*") are let in.
//
// It does not own the internal routes themselves (package authserver/sessions).
package internalauth
