package httpapi

import (
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/authmesh/authmesh/guard"
)

// Envelope is the shape of every JSON response of the public API: guard's, so that the auth
// server, the sidecar and any app using guard answer in one format.
type Envelope = guard.Envelope

// Meta is the envelope's meta object.
type Meta = guard.Meta

// Envelope statuses.
const (
	StatusSuccess = "success"
	StatusError   = "error"
)

// Timestamp formats t as the envelope's ts: UTC, millisecond precision, e.g. 2026-11-06T09:26:45.867Z.
func Timestamp(t time.Time) string {
	return t.UTC().Format("2006-01-02T15:04:05.000Z07:00")
}

// WriteSuccess writes a success envelope with the given HTTP status, code, message and data. It
// returns nil so that a HandlerFunc can end with `return httpapi.WriteSuccess(...)`.
func WriteSuccess(w http.ResponseWriter, r *http.Request, status int, code, message string, data any) error {
	if x := exchangeFrom(r.Context()); x != nil {
		x.code = code
	}
	writeEnvelope(w, status, Envelope{
		Message: message,
		Data:    data,
		Meta:    Meta{Status: StatusSuccess, Code: code},
		TS:      Timestamp(time.Now()),
	})
	return nil
}

// WriteError writes the error envelope for err: an *Error (anywhere in err's chain) as it says,
// an error a Router's classifier recognises as that classifier says, and anything else as 500
// INTERNAL_ERROR without its text. The cause is kept for the request's log line.
func WriteError(w http.ResponseWriter, r *http.Request, err error) {
	e := asError(r, err)
	if e.Status < 400 || e.Status > 599 {
		e = ErrInternal(fmt.Errorf("httpapi: error %q has status %d, not 4xx or 5xx: %w", e.Code, e.Status, err))
	}
	if x := exchangeFrom(r.Context()); x != nil {
		x.code = e.Code
		x.cause = e.Err
	}
	for k, vs := range e.Header {
		for _, v := range vs {
			w.Header().Add(k, v)
		}
	}
	writeEnvelope(w, e.Status, Envelope{
		Message: e.Message,
		Data:    nil,
		Meta:    Meta{Status: StatusError, Code: e.Code, Details: e.Details},
		TS:      Timestamp(time.Now()),
	})
}

func asError(r *http.Request, err error) *Error {
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	if x := exchangeFrom(r.Context()); x != nil {
		for _, classify := range x.classify {
			if e := classify(err); e != nil {
				if e.Err == nil {
					e = e.WithCause(err)
				}
				return e
			}
		}
	}
	return ErrInternal(err)
}

func writeEnvelope(w http.ResponseWriter, status int, env Envelope) {
	guard.WriteEnvelope(w, status, env) // Cache-Control: no-store, since envelopes may carry tokens
}

// WriteRaw writes a JSON document whose shape a standard fixes (health, JWKS, discovery,
// introspection): no envelope. The header is left to the caller except for Content-Type, which
// is set to application/json unless already set.
func WriteRaw(w http.ResponseWriter, status int, body []byte) {
	h := w.Header()
	if h.Get("Content-Type") == "" {
		h.Set("Content-Type", "application/json; charset=utf-8")
	}
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_, _ = w.Write(body)
}
