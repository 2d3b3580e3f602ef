// Package tokens owns the auth server's access tokens and the documents verifiers fetch: it
// signs access JWTs (golang-jwt) with a tenant's active key, and renders the tenant's public
// JWK Set and OpenID discovery document with their ETags.
//
// An access token is a JWT with header {"alg": "EdDSA"|"ES256", "kid": <active key>, "typ":
// "at+jwt"} (RFC 9068) and the claims iss (the auth server's public URL + /t/<tenant>), aud
// (spec.tokens.audience, a single string), sub, tid, role, sid, iat, exp and jti. No nbf is
// set: a token is valid from iat. A Signer is immutable; a key rotation builds a new one and
// the tenant registry swaps it in atomically, so a request signs with exactly one key set and
// every key it may sign with is in that set's JWKS.
//
// The discovery document is verification-only, like the Kubernetes service-account issuer's:
// issuer, jwks_uri, response_types_supported ["id_token"], subject_types_supported ["public"]
// and id_token_signing_alg_values_supported (the algorithms of the published keys), plus the
// claims the tokens carry. There is no authorization endpoint.
//
// It links neither MongoDB nor Kubernetes.
package tokens
