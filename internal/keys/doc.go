// Package keys owns JWK-set handling shared by the controller (generate and rotate signing
// keys), the auth server (sign with the active key) and guard (parse public sets): EdDSA and
// ES256 keys, the tenant keys Secret format, and public-set extraction.
package keys
