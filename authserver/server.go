package authserver

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/authmesh/authmesh/authserver/clientinfo"
	"github.com/authmesh/authmesh/authserver/httpapi"
	"github.com/authmesh/authmesh/authserver/tenancy"
	"github.com/authmesh/authmesh/authserver/tokens"
)

// Server is the assembled auth server. Register further routes on Public and Internal before
// serving.
type Server struct {
	Config   Config
	Logger   *slog.Logger
	Pool     *tenancy.Pool
	Registry *tenancy.Registry
	Decoder  *httpapi.Decoder
	// Public is the public API's router (port 3502), Internal the internal API's (3503).
	Public   *httpapi.Router
	Internal *httpapi.Router

	admin    *http.ServeMux
	clientIP *clientinfo.Resolver
	draining atomic.Bool
}

// New builds the server from a validated Config. Metrics go to metrics, which /metrics
// serves.
func New(cfg Config, logger *slog.Logger, metrics *prometheus.Registry) (*Server, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	cfg.PublicURL = strings.TrimRight(cfg.PublicURL, "/")
	pool, err := tenancy.NewPool(tenancy.PoolOptions{
		MaxClients:             cfg.MongoMaxClients,
		IdleTimeout:            cfg.MongoIdleTimeout,
		MaxConnsPerClient:      cfg.MongoMaxConnsPerURI,
		ServerSelectionTimeout: cfg.MongoSelectionTimeout,
		HealthInterval:         cfg.MongoHealthInterval,
		PingTimeout:            cfg.MongoPingTimeout,
		Logger:                 logger.With("component", "mongo-pool"),
		Registerer:             metrics,
	})
	if err != nil {
		return nil, err
	}
	registry, err := tenancy.NewRegistry(tenancy.RegistryOptions{
		PublicURL:  cfg.PublicURL,
		Pool:       pool,
		Logger:     logger.With("component", "tenants"),
		Registerer: metrics,
	})
	if err != nil {
		return nil, err
	}
	httpMetrics, err := httpapi.NewMetrics(metrics)
	if err != nil {
		return nil, err
	}
	s := &Server{
		Config:   cfg,
		Logger:   logger,
		Pool:     pool,
		Registry: registry,
		Decoder:  httpapi.NewDecoder(),
		Public: httpapi.NewRouter(httpapi.RouterOptions{
			Name:        "public",
			Logger:      logger,
			Metrics:     httpMetrics,
			Classifiers: []httpapi.Classifier{tenancy.Classify},
			Preflight:   registry.Preflight(),
		}),
		Internal: httpapi.NewRouter(httpapi.RouterOptions{
			Name:        "internal",
			Logger:      logger,
			Metrics:     httpMetrics,
			Classifiers: []httpapi.Classifier{tenancy.Classify},
		}),
		admin:    http.NewServeMux(),
		clientIP: clientinfo.NewResolver(cfg.TrustedProxies),
	}
	s.routes(metrics)
	return s, nil
}

func (s *Server) routes(metrics prometheus.Gatherer) {
	pathTenant := s.Registry.Middleware(tenancy.RouteOptions{PathValue: "tenant", NoDatabase: true})
	s.Public.Handle("GET /auth/health", http.HandlerFunc(health))
	s.Public.Handle("GET /t/{tenant}/.well-known/jwks.json", document("application/jwk-set+json", (*tokens.Signer).JWKS), pathTenant)
	s.Public.Handle("GET /t/{tenant}/.well-known/openid-configuration", document("application/json", (*tokens.Signer).Discovery), pathTenant)

	s.admin.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintln(w, "ok")
	})
	s.admin.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		if s.draining.Load() {
			http.Error(w, "not ready: shutting down", http.StatusServiceUnavailable)
			return
		}
		if err := s.Registry.Ready(); err != nil {
			http.Error(w, "not ready: "+err.Error(), http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ok")
	})
	s.admin.Handle("GET /metrics", promhttp.HandlerFor(metrics, promhttp.HandlerOpts{}))
}

// healthBody is the tutorial's health answer, which clients and probes already know.
var healthBody, _ = json.Marshal(map[string]any{"ok": true, "service": "auth-service", "mode": "HTTP"})

func health(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	httpapi.WriteRaw(w, http.StatusOK, healthBody)
}

// document serves one of the tenant's public documents with cache headers: clients may keep
// it a minute and revalidate with If-None-Match. Any origin may read it.
func document(contentType string, pick func(*tokens.Signer) tokens.Document) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		doc := pick(tenancy.FromContext(r.Context()).Tokens)
		h := w.Header()
		h.Set("Cache-Control", "public, max-age=60")
		h.Set("ETag", doc.ETag)
		h.Set("Access-Control-Allow-Origin", "*")
		if etagMatches(r.Header.Get("If-None-Match"), doc.ETag) {
			w.WriteHeader(http.StatusNotModified)
			return
		}
		h.Set("Content-Type", contentType)
		httpapi.WriteRaw(w, http.StatusOK, doc.Body)
	})
}

// etagMatches implements If-None-Match's weak comparison (RFC 9110 section 13.1.2).
func etagMatches(header, etag string) bool {
	for tag := range strings.SplitSeq(header, ",") {
		tag = strings.TrimSpace(tag)
		if tag == "*" || strings.TrimPrefix(tag, "W/") == etag {
			return true
		}
	}
	return false
}

// PublicHandler, InternalHandler and AdminHandler are the three listeners' handlers.
// The public handler resolves each request's client IP first (clientinfo.IP).
func (s *Server) PublicHandler() http.Handler   { return s.clientIP.Middleware(s.Public) }
func (s *Server) InternalHandler() http.Handler { return s.Internal }
func (s *Server) AdminHandler() http.Handler    { return s.admin }

// Drain makes /readyz fail, so load balancers stop sending traffic before shutdown.
func (s *Server) Drain() { s.draining.Store(true) }

// Close releases the database clients; call it after the listeners have shut down.
func (s *Server) Close() { s.Pool.Close() }

// Run loads tenants from src into the registry and keeps them current until ctx ends.
func (s *Server) Run(ctx context.Context, src tenancy.Source) error {
	return s.Registry.Run(ctx, src)
}
