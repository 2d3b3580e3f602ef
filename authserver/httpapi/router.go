package httpapi

import (
	"bytes"
	"crypto/rand"
	"fmt"
	"log/slog"
	"net/http"
	"runtime/debug"
	"strings"
	"time"
)

// HandlerFunc is an HTTP handler that returns its failure instead of writing it: a non-nil
// error is written with WriteError. Return an error only before writing anything; an error
// returned after the response has started is logged and otherwise dropped.
type HandlerFunc func(w http.ResponseWriter, r *http.Request) error

// ServeHTTP implements http.Handler.
func (f HandlerFunc) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	err := f(w, r)
	if err == nil {
		return
	}
	if rw, ok := w.(*responseWriter); ok && rw.status != 0 {
		if x := exchangeFrom(r.Context()); x != nil && x.cause == nil {
			x.cause = fmt.Errorf("error after the response started: %w", err)
		}
		return
	}
	WriteError(w, r, err)
}

// Middleware wraps a handler; the Router applies a route's middlewares outermost first.
type Middleware func(http.Handler) http.Handler

// Classifier turns an error of some other package into the *Error to answer with, or returns
// nil when it does not know the error.
type Classifier func(error) *Error

// RouterOptions configures a Router.
type RouterOptions struct {
	// Name labels the listener in logs and metrics: "public", "internal".
	Name string
	// Logger receives one access log line per request; nil discards them.
	Logger *slog.Logger
	// Metrics records requests; nil records nothing.
	Metrics *Metrics
	// Classifiers map errors handlers return to answers, tried in order.
	Classifiers []Classifier
	// MaxBodyBytes caps request bodies; 0 means MaxBodyBytes.
	MaxBodyBytes int64
	// Preflight answers CORS preflight requests (OPTIONS with Origin and
	// Access-Control-Request-Method) for paths that have a route for the requested method.
	// Nil answers them like any OPTIONS request (405 unless a route says otherwise).
	Preflight http.Handler
}

// Router is an http.Handler over an http.ServeMux that adds what every route of the auth
// server shares: request ids, panic recovery, body limits, enveloped 404 and 405 answers,
// access logs and metrics. Register routes with Handle before serving.
type Router struct {
	opts RouterOptions
	mux  *http.ServeMux
}

// NewRouter returns an empty Router.
func NewRouter(opts RouterOptions) *Router {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.MaxBodyBytes <= 0 {
		opts.MaxBodyBytes = MaxBodyBytes
	}
	return &Router{opts: opts, mux: http.NewServeMux()}
}

// Handle registers h for a ServeMux pattern ("POST /auth/signup", "GET /t/{tenant}/x"),
// behind the given middlewares (outermost first), e.g. the tenant middleware. It panics on a
// malformed or conflicting pattern, as ServeMux does.
func (rt *Router) Handle(pattern string, h http.Handler, mws ...Middleware) {
	for i := len(mws) - 1; i >= 0; i-- {
		h = mws[i](h)
	}
	limit := rt.opts.MaxBodyBytes
	rt.mux.Handle(pattern, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if x := exchangeFrom(r.Context()); x != nil {
			x.route = pattern
		}
		if r.ContentLength > limit {
			WriteError(w, r, ErrPayloadTooLarge(limit))
			return
		}
		h.ServeHTTP(w, r)
	}))
}

// HasRoute reports whether a request with this method and r's path would reach a route.
func (rt *Router) HasRoute(method string, r *http.Request) bool {
	probe := r.Clone(r.Context())
	probe.Method = method
	_, pattern := rt.mux.Handler(probe)
	return pattern != ""
}

// ServeHTTP implements http.Handler.
func (rt *Router) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	x := &exchange{requestID: requestID(r), classify: rt.opts.Classifiers}
	rw := &responseWriter{ResponseWriter: w}
	rw.Header().Set("X-Request-Id", x.requestID)
	r = r.WithContext(withExchange(r.Context(), x))
	if r.Body != nil && r.Body != http.NoBody {
		r.Body = http.MaxBytesReader(rw, r.Body, rt.opts.MaxBodyBytes)
	}
	done := rt.opts.Metrics.begin(rt.opts.Name)
	defer func() {
		if v := recover(); v != nil {
			if v == http.ErrAbortHandler { //nolint:errorlint // the sentinel is compared, as net/http does
				rt.finish(rw, r, x, start, done)
				panic(v)
			}
			x.cause = fmt.Errorf("panic: %v\n%s", v, debug.Stack())
			if rw.status == 0 {
				WriteError(rw, r, ErrInternal(x.cause))
			}
		}
		rt.finish(rw, r, x, start, done)
	}()
	rt.dispatch(rw, r, x)
}

func (rt *Router) dispatch(w http.ResponseWriter, r *http.Request, x *exchange) {
	if rt.opts.Preflight != nil && isPreflight(r) && rt.HasRoute(r.Header.Get("Access-Control-Request-Method"), r) {
		x.route = "preflight"
		rt.opts.Preflight.ServeHTTP(w, r)
		return
	}
	h, pattern := rt.mux.Handler(r)
	if pattern != "" {
		rt.mux.ServeHTTP(w, r)
		return
	}
	// No route: let the mux say what it would do (404, 405 with Allow, or a redirect to the
	// clean path), then answer in our shape.
	x.route = "unmatched"
	c := &captureWriter{header: http.Header{}}
	h.ServeHTTP(c, r)
	switch c.status {
	case http.StatusNotFound:
		WriteError(w, r, NewError(http.StatusNotFound, CodeNotFound, "Route not found."))
	case http.StatusMethodNotAllowed:
		e := NewError(http.StatusMethodNotAllowed, CodeMethodNotAllowed,
			fmt.Sprintf("Method %s is not allowed on this route.", r.Method))
		if allow := c.header.Get("Allow"); allow != "" {
			e = e.WithHeader("Allow", allow)
		}
		WriteError(w, r, e)
	default:
		for k, vs := range c.header {
			w.Header()[k] = vs
		}
		w.WriteHeader(c.status)
		_, _ = w.Write(c.body.Bytes())
	}
}

func (rt *Router) finish(rw *responseWriter, r *http.Request, x *exchange, start time.Time, done func(route, method string, status int, code string, d time.Duration)) {
	status := rw.status
	if status == 0 {
		status = http.StatusOK // what net/http sends for a handler that wrote nothing
	}
	elapsed := time.Since(start)
	route := x.route
	if route == "" {
		route = "unmatched"
	}
	method := metricMethod(r.Method)
	done(route, method, status, x.code, elapsed)

	level := slog.LevelInfo
	if status >= 500 {
		level = slog.LevelError
	}
	attrs := make([]slog.Attr, 0, 12+len(x.attrs))
	attrs = append(attrs,
		slog.String("server", rt.opts.Name),
		slog.String("request_id", x.requestID),
		slog.String("method", r.Method),
		slog.String("route", route),
		slog.String("path", truncate(r.URL.EscapedPath(), 256)), // never the query: it may carry a token
		slog.Int("status", status),
		slog.String("code", x.code),
		slog.Duration("duration", elapsed),
		slog.Int64("bytes", rw.bytes),
		slog.String("remote", r.RemoteAddr),
	)
	attrs = append(attrs, x.attrs...)
	if x.cause != nil {
		attrs = append(attrs, slog.String("error", x.cause.Error()))
	}
	rt.opts.Logger.LogAttrs(r.Context(), level, "request", attrs...)
}

func isPreflight(r *http.Request) bool {
	return r.Method == http.MethodOptions && r.Header.Get("Origin") != "" && r.Header.Get("Access-Control-Request-Method") != ""
}

// requestID returns the client's X-Request-Id when it is short and plain, else a fresh one.
func requestID(r *http.Request) string {
	if id := r.Header.Get("X-Request-Id"); id != "" && len(id) <= 128 && strings.IndexFunc(id, notIDRune) < 0 {
		return id
	}
	return rand.Text()
}

func notIDRune(c rune) bool {
	return !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.' || c == ':')
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}

// responseWriter records the status and size of a response. Unwrap lets
// http.ResponseController reach the connection's Flush and deadlines.
type responseWriter struct {
	http.ResponseWriter
	status int
	bytes  int64
}

func (w *responseWriter) WriteHeader(status int) {
	if w.status == 0 {
		w.status = status
	}
	w.ResponseWriter.WriteHeader(status)
}

func (w *responseWriter) Write(p []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	n, err := w.ResponseWriter.Write(p)
	w.bytes += int64(n)
	return n, err
}

func (w *responseWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// captureWriter keeps what the mux's own 404/405/redirect handlers write.
type captureWriter struct {
	header http.Header
	status int
	body   bytes.Buffer
}

func (c *captureWriter) Header() http.Header { return c.header }
func (c *captureWriter) WriteHeader(status int) {
	if c.status == 0 {
		c.status = status
	}
}

func (c *captureWriter) Write(p []byte) (int, error) {
	if c.status == 0 {
		c.status = http.StatusOK
	}
	return c.body.Write(p)
}
