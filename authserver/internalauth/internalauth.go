package internalauth

import (
	"context"
	"errors"
	"log/slog"
	"net/http"

	"github.com/authmesh/authmesh/authserver/httpapi"
)

// Caller is who an internal request comes from.
type Caller struct {
	// Username is the Kubernetes user name, e.g. system:serviceaccount:shop:default;
	// "anonymous" under None.
	Username string
}

// Errors an Authenticator ends with; any other error means it could not decide (say, the
// API server is unreachable) and is answered with 503.
var (
	ErrUnauthenticated = errors.New("internalauth: no valid credential")
	ErrForbidden       = errors.New("internalauth: caller not allowed")
)

// Authenticator authenticates a request to the internal API.
type Authenticator interface {
	Authenticate(ctx context.Context, r *http.Request) (Caller, error)
}

// None admits every caller; use it only on a loopback listener.
type None struct{}

// Authenticate implements Authenticator.
func (None) Authenticate(context.Context, *http.Request) (Caller, error) {
	return Caller{Username: "anonymous"}, nil
}

// Code of a caller refused for who it is (403).
const CodeForbidden = "FORBIDDEN"

// CodeUnavailable is the answer when the credential could not be checked (503).
const CodeUnavailable = "AUTHENTICATION_UNAVAILABLE"

// Middleware guards a route with a.
func Middleware(a Authenticator) httpapi.Middleware {
	return func(next http.Handler) http.Handler {
		return httpapi.HandlerFunc(func(w http.ResponseWriter, r *http.Request) error {
			c, err := a.Authenticate(r.Context(), r)
			switch {
			case errors.Is(err, ErrUnauthenticated):
				return httpapi.NewError(http.StatusUnauthorized, httpapi.CodeUnauthorized, "A valid internal API credential is required.").
					WithHeader("WWW-Authenticate", `Bearer realm="authmesh-internal", error="invalid_token"`).WithCause(err)
			case errors.Is(err, ErrForbidden):
				return httpapi.NewError(http.StatusForbidden, CodeForbidden, "This caller may not use the internal API.").WithCause(err)
			case err != nil:
				return httpapi.NewError(http.StatusServiceUnavailable, CodeUnavailable, "The caller's credential could not be checked; try again.").WithCause(err)
			}
			httpapi.LogAttrs(r.Context(), slog.String("caller", c.Username))
			next.ServeHTTP(w, r)
			return nil
		})
	}
}
