// Package sessions owns login sessions: one document per session in the tenant's sessions
// collection, the refresh token <sessionId>.<generation>.<secret> of which only a hash of the
// current secret is stored, starting a session with its first token pair, and (as it grows)
// listing, revoking, refresh rotation with reuse detection and the revocation feed.
package sessions
