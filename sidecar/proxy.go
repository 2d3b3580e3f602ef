package sidecar

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/authmesh/authmesh/guard"
)

// Identity headers the app receives (DESIGN.md pins them). Every header with IdentityPrefix
// that arrives from outside is removed first, on every route.
const (
	IdentityPrefix          = "X-Auth-"
	HeaderUserID            = "X-Auth-User-Id"
	HeaderTenantID          = "X-Auth-Tenant-Id"
	HeaderRole              = "X-Auth-Role"
	HeaderSessionID         = "X-Auth-Session-Id"
	headerWebSocketProtocol = "Sec-Websocket-Protocol"
)

// upstreamTransport is sized for a proxy's concurrency: Go's default of 2 idle connections per
// host makes a busy proxy open and close upstream connections all the time.
func upstreamTransport(cfg *Config) *http.Transport {
	return &http.Transport{
		Proxy:                 nil, // the app is next door; never an HTTP proxy from the environment
		DialContext:           (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:          cfg.UpstreamIdleConns,
		MaxIdleConnsPerHost:   cfg.UpstreamIdleConns,
		IdleConnTimeout:       90 * time.Second,
		ResponseHeaderTimeout: cfg.UpstreamTimeout,
		ExpectContinueTimeout: time.Second,
		DisableCompression:    true, // pass the app's encoding through untouched
	}
}

// newProxy forwards authorised requests to upstream. It runs after the enforcer has decided,
// and only sets headers: Rewrite starts from a copy whose hop-by-hop headers are already gone,
// so a client cannot use Connection to delete the identity headers set here.
func newProxy(upstream *url.URL, cfg *Config, m *metrics, logger *slog.Logger) *httputil.ReverseProxy {
	forwardAuth := cfg.ForwardAuthorization
	return &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(upstream)
			pr.Out.Host = pr.In.Host // the app sees the host its caller asked for
			pr.SetXForwarded()
			h := pr.Out.Header
			for name := range h {
				if isIdentityHeader(name) {
					delete(h, name)
				}
			}
			if id, ok := guard.IdentityFrom(pr.In.Context()); ok {
				h[HeaderUserID] = []string{id.UserID}
				h[HeaderTenantID] = []string{id.TenantID}
				h[HeaderRole] = []string{id.Role}
				h[HeaderSessionID] = []string{id.SessionID}
			}
			if !forwardAuth {
				delete(h, "Authorization")
			}
			stripWebSocketToken(h)
		},
		Transport:  &timedTransport{next: upstreamTransport(cfg), m: m},
		BufferPool: bufferPool{},
		// FlushInterval stays 0: ReverseProxy flushes streaming responses (unknown length,
		// text/event-stream) at once by itself, and batching the rest saves a write per response.
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			switch {
			case errors.Is(err, context.Canceled) && r.Context().Err() != nil:
				// The caller went away; nobody is left to answer.
			case isTimeout(err):
				m.upstreamErrors.WithLabelValues("timeout").Inc()
				logger.Warn("app too slow", "path", r.URL.Path, "err", err)
				guard.WriteError(w, http.StatusGatewayTimeout, guard.CodeUpstreamTimeout, "The application did not answer in time.")
			default:
				m.upstreamErrors.WithLabelValues("unavailable").Inc()
				logger.Warn("app unreachable", "path", r.URL.Path, "err", err)
				guard.WriteError(w, http.StatusBadGateway, guard.CodeUpstreamUnavailable, "The application is unavailable.")
			}
		},
		ErrorLog: slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}
}

// isIdentityHeader reports whether a header's name is, or could be read by the app as, one
// of the identity headers the sidecar sets: any case, and with '_' for '-', since WSGI and
// CGI servers map both to the same variable (X_Auth_Role would reach Flask as X-Auth-Role).
func isIdentityHeader(name string) bool {
	return len(name) >= len(IdentityPrefix) &&
		strings.EqualFold(strings.ReplaceAll(name[:len(IdentityPrefix)], "_", "-"), IdentityPrefix)
}

// stripWebSocketToken removes a bearer.<token> entry from Sec-WebSocket-Protocol, so the
// token a browser had to put there never reaches the app.
func stripWebSocketToken(h http.Header) {
	values := h[headerWebSocketProtocol]
	if len(values) == 0 {
		return
	}
	var kept []string
	for _, v := range values {
		for p := range strings.SplitSeq(v, ",") {
			if p = strings.TrimSpace(p); p != "" && !strings.HasPrefix(p, guard.WebSocketTokenPrefix) {
				kept = append(kept, p)
			}
		}
	}
	if len(kept) == 0 {
		delete(h, headerWebSocketProtocol)
		return
	}
	h[headerWebSocketProtocol] = []string{strings.Join(kept, ", ")}
}

// copyBuffers recycles the 32 KiB buffers ReverseProxy copies response bodies through; without
// a pool it allocates (and the GC clears) one per response.
var copyBuffers = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}

// bufferPool implements httputil.BufferPool over copyBuffers.
type bufferPool struct{}

func (bufferPool) Get() []byte  { return *copyBuffers.Get().(*[]byte) }
func (bufferPool) Put(b []byte) { copyBuffers.Put(&b) }

func isTimeout(err error) bool {
	var ne net.Error
	return errors.Is(err, context.DeadlineExceeded) || errors.As(err, &ne) && ne.Timeout()
}

// timedTransport observes the time to the app's response headers.
type timedTransport struct {
	next http.RoundTripper
	m    *metrics
}

func (t *timedTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	start := time.Now()
	resp, err := t.next.RoundTrip(r)
	t.m.upstream.Observe(time.Since(start).Seconds())
	return resp, err
}
