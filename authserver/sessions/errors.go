package sessions

import (
	"net/http"
	"strings"

	"github.com/authmesh/authmesh/authserver/httpapi"
)

// Codes of the session routes (DESIGN.md).
const (
	CodeSessionsRetrieved   = "SESSIONS_RETRIEVED"
	CodeSessionRevoked      = "SESSION_REVOKED"
	CodeAllSessionsRevoked  = "ALL_SESSIONS_REVOKED"
	CodeTokensRefreshed     = "TOKENS_REFRESHED"
	CodeSessionNotFound     = "SESSION_NOT_FOUND"
	CodeInvalidRefreshToken = "INVALID_REFRESH_TOKEN"
	CodeInvalidRefreshHash  = "INVALID_REFRESH_HASH"
	CodeRefreshTokenReused  = "REFRESH_TOKEN_REUSED"
)

// Success messages, the tutorial's.
const (
	msgSessionsRetrieved  = "Active login sessions retrieved successfully."
	msgSessionRevoked     = "Session has been revoked successfully."
	msgAllSessionsRevoked = "All sessions have been revoked successfully."
	msgTokensRefreshed    = "Access and refresh tokens have been renewed successfully."
)

func errInvalidRefreshToken() *httpapi.Error {
	return httpapi.NewError(http.StatusUnauthorized, CodeInvalidRefreshToken,
		"The provided refresh token is invalid or has expired. Please log in again.")
}

func errRefreshSessionNotFound() *httpapi.Error {
	return httpapi.NewError(http.StatusUnauthorized, CodeSessionNotFound, "Session not found or expired. Please log in again.")
}

func errInvalidRefreshHash() *httpapi.Error {
	return httpapi.NewError(http.StatusUnauthorized, CodeInvalidRefreshHash, "Invalid refresh token. Please log in again to continue.")
}

func errRefreshTokenReused() *httpapi.Error {
	return httpapi.NewError(http.StatusUnauthorized, CodeRefreshTokenReused,
		"This refresh token was already used, so the session has been ended for your safety. Please log in again.")
}

func errLogoutSessionNotFound(sessionID string) *httpapi.Error {
	return httpapi.NewError(http.StatusNotFound, CodeSessionNotFound, "Session not found or already logged out.").
		WithDetails(map[string]string{"sessionId": sessionID})
}

// bearerChallenge is the RFC 6750 challenge of a 401 on a bearer route.
func bearerChallenge(description string) string {
	c := `Bearer realm="authmesh", error="invalid_token"`
	if description != "" {
		c += `, error_description="` + description + `"`
	}
	return c
}

func errNoBearer() *httpapi.Error {
	return httpapi.NewError(http.StatusUnauthorized, httpapi.CodeUnauthorized, "Missing bearer token.").
		WithHeader("WWW-Authenticate", bearerChallenge("missing bearer token"))
}

func errBadBearer(cause error) *httpapi.Error {
	return httpapi.NewError(http.StatusUnauthorized, httpapi.CodeUnauthorized, "Invalid or expired token.").
		WithHeader("WWW-Authenticate", bearerChallenge("")).WithCause(cause)
}

func errSessionInvalid() *httpapi.Error {
	return httpapi.NewError(http.StatusUnauthorized, httpapi.CodeSessionInvalid, "Session is no longer valid. Please log in again.").
		WithHeader("WWW-Authenticate", bearerChallenge("session revoked or expired"))
}

func errForbiddenRole(roles []string) *httpapi.Error {
	msg := "Insufficient role."
	if len(roles) > 0 {
		msg = "Insufficient role. Required: " + strings.Join(roles, ", ")
	}
	return httpapi.NewError(http.StatusForbidden, httpapi.CodeForbiddenRole, msg).
		WithHeader("WWW-Authenticate", `Bearer realm="authmesh", error="insufficient_scope"`)
}
