package guard

import (
	"encoding/json"
	"net/http"
	"time"
)

// Envelope is the JSON shape of every response of authmesh's public API, and of every refusal
// an enforcement point answers, so clients parse one format whoever answered.
type Envelope struct {
	Message string `json:"message"`
	Data    any    `json:"data"`
	Meta    Meta   `json:"meta"`
	TS      string `json:"ts"`
}

// Meta carries the outcome and its stable machine-readable code.
type Meta struct {
	Status  string `json:"status"` // "success" or "error"
	Code    string `json:"code"`
	Details any    `json:"details,omitempty"`
}

// Codes an enforcement point answers with (the full list is in the README).
const (
	CodeUnauthorized        = "UNAUTHORIZED"
	CodeSessionInvalid      = "SESSION_INVALID"
	CodeForbiddenRole       = "FORBIDDEN_ROLE"
	CodeInvalidPath         = "INVALID_PATH"
	CodeTenantIDMissing     = "TENANT_ID_MISSING"
	CodeUpstreamUnavailable = "UPSTREAM_UNAVAILABLE"
	CodeUpstreamTimeout     = "UPSTREAM_TIMEOUT"
	CodeInternalError       = "INTERNAL_ERROR"
)

// timestampLayout is JavaScript's toISOString format, as the tutorial's clients expect.
const timestampLayout = "2006-01-02T15:04:05.000Z07:00"

// WriteEnvelope writes env as JSON with the given status, stamping ts when it is empty.
func WriteEnvelope(w http.ResponseWriter, status int, env Envelope) {
	if env.TS == "" {
		env.TS = time.Now().UTC().Format(timestampLayout)
	}
	body, err := json.Marshal(env)
	if err != nil {
		status = http.StatusInternalServerError
		body = []byte(`{"message":"Internal error.","data":null,"meta":{"status":"error","code":"INTERNAL_ERROR"},"ts":"` + env.TS + `"}`)
	}
	h := w.Header()
	h.Set("Content-Type", "application/json; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_, _ = w.Write(append(body, '\n'))
}

// WriteError writes an error envelope.
func WriteError(w http.ResponseWriter, status int, code, message string) {
	WriteEnvelope(w, status, Envelope{Message: message, Meta: Meta{Status: "error", Code: code}})
}
