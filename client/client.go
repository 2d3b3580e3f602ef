package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// TenantHeader names the tenant of a request.
const TenantHeader = "x-tenant-id"

// maxResponseBytes bounds the answers the client reads.
const maxResponseBytes = 4 << 20

// Client calls one tenant's public API on one auth server. It is safe for concurrent use.
type Client struct {
	baseURL   string
	tenant    string
	http      *http.Client
	userAgent string
}

// Option adjusts a Client.
type Option func(*Client)

// WithHTTPClient makes the calls with hc (default: a client with a 30s timeout).
func WithHTTPClient(hc *http.Client) Option { return func(c *Client) { c.http = hc } }

// WithUserAgent sends ua as User-Agent (the auth server names the session's device after it).
func WithUserAgent(ua string) Option { return func(c *Client) { c.userAgent = ua } }

// New returns a client of tenant's API at baseURL (e.g. http://localhost:3502).
func New(baseURL, tenant string, opts ...Option) *Client {
	c := &Client{
		baseURL:   strings.TrimRight(baseURL, "/"),
		tenant:    tenant,
		http:      &http.Client{Timeout: 30 * time.Second},
		userAgent: "authmesh-client/1",
	}
	for _, o := range opts {
		o(c)
	}
	return c
}

// Tenant is the tenant the client speaks for.
func (c *Client) Tenant() string { return c.tenant }

// APIError is an answer other than success: the HTTP status and the envelope's code,
// message and details.
type APIError struct {
	Status    int
	Code      string
	Message   string
	Details   json.RawMessage
	RequestID string
	// RetryAfter is the Retry-After header's wait (RATE_LIMITED, ACCOUNT_LOCKED, 503s), or 0.
	RetryAfter time.Duration
}

// Error implements error.
func (e *APIError) Error() string {
	return fmt.Sprintf("authmesh: %d %s: %s", e.Status, e.Code, e.Message)
}

// ErrorCode returns the code of an *APIError in err's chain, or "".
func ErrorCode(err error) string {
	var e *APIError
	if errors.As(err, &e) {
		return e.Code
	}
	return ""
}

// Result is what a successful call answered besides its data.
type Result struct {
	Status  int
	Code    string
	Message string
}

type envelope struct {
	Message string          `json:"message"`
	Data    json.RawMessage `json:"data"`
	Meta    struct {
		Status  string          `json:"status"`
		Code    string          `json:"code"`
		Details json.RawMessage `json:"details"`
	} `json:"meta"`
}

// Call makes one request to the API: method and path (e.g. "GET", "/auth/sessions"), the
// bearer token ("" for none), a JSON body (nil for none), and out, into which the envelope's
// data is decoded (nil to ignore it). It returns the success's status, code and message, or
// an *APIError. The typed methods are built on it; it serves routes they do not cover.
func (c *Client) Call(ctx context.Context, method, path, accessToken string, in, out any) (Result, error) {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return Result{}, err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.baseURL+path, body)
	if err != nil {
		return Result{}, err
	}
	req.Header.Set(TenantHeader, c.tenant)
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", c.userAgent)
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if accessToken != "" {
		req.Header.Set("Authorization", "Bearer "+accessToken)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return Result{}, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, maxResponseBytes))
	if err != nil {
		return Result{}, err
	}
	var env envelope
	if err := json.Unmarshal(raw, &env); err != nil || env.Meta.Code == "" {
		return Result{}, &APIError{
			Status: resp.StatusCode, Code: "", RequestID: resp.Header.Get("X-Request-Id"),
			Message: fmt.Sprintf("not an authmesh envelope (%s): %.200q", resp.Header.Get("Content-Type"), raw),
		}
	}
	if resp.StatusCode >= 400 || env.Meta.Status != "success" {
		return Result{}, &APIError{
			Status: resp.StatusCode, Code: env.Meta.Code, Message: env.Message,
			Details: env.Meta.Details, RequestID: resp.Header.Get("X-Request-Id"),
			RetryAfter: retryAfter(resp.Header.Get("Retry-After")),
		}
	}
	if out != nil && len(env.Data) > 0 && string(env.Data) != "null" {
		if err := json.Unmarshal(env.Data, out); err != nil {
			return Result{}, fmt.Errorf("authmesh: decoding the data of %s: %w", env.Meta.Code, err)
		}
	}
	return Result{Status: resp.StatusCode, Code: env.Meta.Code, Message: env.Message}, nil
}

// retryAfter reads a Retry-After header given in seconds (what the auth server sends); 0 when
// absent or not a number of seconds.
func retryAfter(v string) time.Duration {
	n, err := strconv.Atoi(strings.TrimSpace(v))
	if err != nil || n < 0 {
		return 0
	}
	return time.Duration(n) * time.Second
}
