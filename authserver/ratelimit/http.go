package ratelimit

import (
	"net/http"

	"github.com/authmesh/authmesh/authserver/clientinfo"
	"github.com/authmesh/authmesh/authserver/httpapi"
)

// Take takes a token of key's bucket, or returns the RATE_LIMITED error (429, Retry-After).
func (l *Limiter) Take(key string) error {
	if ok, retry := l.Allow(key); !ok {
		return httpapi.ErrRateLimited(retry)
	}
	return nil
}

// Check returns the RATE_LIMITED error when key's bucket is empty, taking nothing (see Peek).
func (l *Limiter) Check(key string) error {
	if ok, retry := l.Peek(key); !ok {
		return httpapi.ErrRateLimited(retry)
	}
	return nil
}

// PerClientIP is middleware that refuses requests beyond l's rate for their client IP.
func (l *Limiter) PerClientIP() httpapi.Middleware {
	return func(next http.Handler) http.Handler {
		return httpapi.HandlerFunc(func(w http.ResponseWriter, r *http.Request) error {
			if err := l.Take("ip:" + clientinfo.IP(r)); err != nil {
				return err
			}
			next.ServeHTTP(w, r)
			return nil
		})
	}
}
