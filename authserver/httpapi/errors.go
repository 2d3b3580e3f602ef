package httpapi

import (
	"fmt"
	"net/http"
	"strconv"
	"time"
)

// Codes shared by every enveloped route (DESIGN.md), and the router's own.
const (
	CodeTenantIDMissing         = "TENANT_ID_MISSING"
	CodeTenantNotFound          = "TENANT_NOT_FOUND"
	CodeTenantSuspended         = "TENANT_SUSPENDED"
	CodeTenantConnectionMissing = "TENANT_CONNECTION_MISSING"
	CodeInvalidJSON             = "INVALID_JSON"
	CodeValidationFailed        = "VALIDATION_FAILED"
	CodePayloadTooLarge         = "PAYLOAD_TOO_LARGE"
	CodeUnsupportedMediaType    = "UNSUPPORTED_MEDIA_TYPE"
	CodeUnauthorized            = "UNAUTHORIZED"
	CodeSessionInvalid          = "SESSION_INVALID"
	CodeForbiddenRole           = "FORBIDDEN_ROLE"
	CodeRateLimited             = "RATE_LIMITED"
	CodeNotFound                = "NOT_FOUND"
	CodeMethodNotAllowed        = "METHOD_NOT_ALLOWED"
	CodeInternalError           = "INTERNAL_ERROR"
)

// Error is an answer other than success: the HTTP status, the envelope's code and message, and
// optional details (meta.details). Err, when set, is the internal cause: it is logged, never sent.
type Error struct {
	Status  int
	Code    string
	Message string
	Details any
	// Header is added to the response, e.g. Retry-After or WWW-Authenticate.
	Header http.Header
	Err    error
}

// NewError returns an *Error with the given status, code and message.
func NewError(status int, code, message string) *Error {
	return &Error{Status: status, Code: code, Message: message}
}

// Error implements error; it includes the cause, so never send it to a client.
func (e *Error) Error() string {
	if e.Err != nil {
		return fmt.Sprintf("%s (%d): %s: %v", e.Code, e.Status, e.Message, e.Err)
	}
	return fmt.Sprintf("%s (%d): %s", e.Code, e.Status, e.Message)
}

// Unwrap returns the cause.
func (e *Error) Unwrap() error { return e.Err }

// WithDetails returns a copy of e carrying details.
func (e *Error) WithDetails(details any) *Error {
	c := *e
	c.Details = details
	return &c
}

// WithCause returns a copy of e carrying an internal cause, for the log.
func (e *Error) WithCause(err error) *Error {
	c := *e
	c.Err = err
	return &c
}

// WithHeader returns a copy of e that also sets the response header key to value.
func (e *Error) WithHeader(key, value string) *Error {
	c := *e
	c.Header = e.Header.Clone()
	if c.Header == nil {
		c.Header = http.Header{}
	}
	c.Header.Set(key, value)
	return &c
}

// Constructors of the shared errors, with the messages clients see.

// ErrTenantIDMissing is 400 TENANT_ID_MISSING: no x-tenant-id header.
func ErrTenantIDMissing() *Error {
	return NewError(http.StatusBadRequest, CodeTenantIDMissing, "The x-tenant-id header is required.")
}

// ErrTenantNotFound is 404 TENANT_NOT_FOUND.
func ErrTenantNotFound(tenantID string) *Error {
	return NewError(http.StatusNotFound, CodeTenantNotFound, "Tenant not found.").WithDetails(map[string]string{"tenantId": tenantID})
}

// ErrTenantSuspended is 403 TENANT_SUSPENDED.
func ErrTenantSuspended(tenantID string) *Error {
	return NewError(http.StatusForbidden, CodeTenantSuspended, "Tenant is suspended.").WithDetails(map[string]string{"tenantId": tenantID})
}

// ErrTenantConnectionMissing is 503 TENANT_CONNECTION_MISSING, the answer for a tenant that is not provisioned yet or whose
// database cannot be reached.
func ErrTenantConnectionMissing(tenantID string) *Error {
	return NewError(http.StatusServiceUnavailable, CodeTenantConnectionMissing,
		"Tenant environment is not available.").WithDetails(map[string]string{"tenantId": tenantID})
}

// ErrInvalidJSON is 400 INVALID_JSON with a message saying what is wrong.
func ErrInvalidJSON(message string) *Error {
	return NewError(http.StatusBadRequest, CodeInvalidJSON, message)
}

// ErrPayloadTooLarge is 413 PAYLOAD_TOO_LARGE.
func ErrPayloadTooLarge(limit int64) *Error {
	return NewError(http.StatusRequestEntityTooLarge, CodePayloadTooLarge,
		fmt.Sprintf("Request body is larger than %s.", byteSize(limit)))
}

// ErrUnsupportedMediaType is 415 UNSUPPORTED_MEDIA_TYPE: the body is not JSON.
func ErrUnsupportedMediaType() *Error {
	return NewError(http.StatusUnsupportedMediaType, CodeUnsupportedMediaType, "Content-Type must be application/json.")
}

// ErrRateLimited is 429 RATE_LIMITED with Retry-After.
func ErrRateLimited(retryAfter time.Duration) *Error {
	secs := int(retryAfter.Round(time.Second) / time.Second)
	if secs < 1 {
		secs = 1
	}
	return NewError(http.StatusTooManyRequests, CodeRateLimited, "Too many requests, try again later.").
		WithHeader("Retry-After", strconv.Itoa(secs))
}

// ErrInternal is 500 INTERNAL_ERROR; cause is logged, never sent.
func ErrInternal(cause error) *Error {
	return NewError(http.StatusInternalServerError, CodeInternalError, "An internal error occurred.").WithCause(cause)
}

func byteSize(n int64) string {
	switch {
	case n >= 1<<20 && n%(1<<20) == 0:
		return fmt.Sprintf("%d MiB", n>>20)
	case n >= 1<<10 && n%(1<<10) == 0:
		return fmt.Sprintf("%d KiB", n>>10)
	}
	return fmt.Sprintf("%d bytes", n)
}
