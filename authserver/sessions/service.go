package sessions

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/authmesh/authmesh/authserver/audit"
	"github.com/authmesh/authmesh/authserver/httpapi"
	"github.com/authmesh/authmesh/authserver/ratelimit"
	"github.com/authmesh/authmesh/authserver/tenancy"
)

// Options configures a Service.
type Options struct {
	// Registry resolves tenants: for the routes' tenant middleware and for background work
	// (the feed's poller, pruning, the active-sessions gauge).
	Registry *tenancy.Registry
	// Decoder decodes request bodies.
	Decoder *httpapi.Decoder
	// Logger receives background problems; nil discards them.
	Logger *slog.Logger
	// Registerer receives the metrics; nil registers none.
	Registerer prometheus.Registerer
	// Now is the clock of every session decision (expiry, grace, token times); time.Now when
	// nil. Operational timers (poll intervals) use the real clock.
	Now func() time.Time
	// FeedPollInterval is how often a tenant's revocations are polled while someone follows
	// its feed (default 50ms): one query per tenant per interval, however many followers.
	FeedPollInterval time.Duration
	// FeedMaxWait caps a long poll's wait parameter (default 30s).
	FeedMaxWait time.Duration
	// MaintenanceInterval is how often expired revocations and sessions are pruned and the
	// active-sessions gauge recounted (default 1m).
	MaintenanceInterval time.Duration
	// Audit records logouts and refresh token reuse; nil records nothing.
	Audit audit.Recorder
	// RefreshIPLimit and RefreshSessionLimit bound POST /auth/refresh per client IP and per
	// session (the zero Limit is off); each limiter remembers at most RateLimitMaxKeys keys
	// (default 100,000).
	RefreshIPLimit, RefreshSessionLimit ratelimit.Limit
	RateLimitMaxKeys                    int
}

// Service starts and manages sessions: Start (login), Refresh, listing and revocation, the
// bearer-route middleware, the revocation feed and introspection. Build one with New; the
// zero Service can only Start sessions (no metrics, no feed wake-ups).
type Service struct {
	// Now is the clock; time.Now when nil.
	Now func() time.Time

	opts Options
	log  *slog.Logger
	// refreshIP and refreshSession are the refresh route's rate limits.
	refreshIP, refreshSession *ratelimit.Limiter
	metrics                   *metrics
	verifiers                 verifierCache
	feeds                     *feeds

	tenantsMu sync.Mutex
	tenants   map[string]time.Time // tenants this replica served recently, for maintenance

	retryMu sync.Mutex
	retry   []unpublished // revocations whose publication failed

	bg     context.Context
	stopBG context.CancelFunc
}

// New returns a Service for opts.
func New(opts Options) (*Service, error) {
	if opts.Registry == nil || opts.Decoder == nil {
		return nil, errors.New("sessions: a Service needs a tenant Registry and a Decoder")
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.FeedPollInterval <= 0 {
		opts.FeedPollInterval = 50 * time.Millisecond
	}
	if opts.FeedMaxWait <= 0 {
		opts.FeedMaxWait = 30 * time.Second
	}
	if opts.MaintenanceInterval <= 0 {
		opts.MaintenanceInterval = time.Minute
	}
	m, err := newMetrics(opts.Registerer)
	if err != nil {
		return nil, err
	}
	s := &Service{Now: opts.Now, opts: opts, log: opts.Logger, metrics: m, tenants: map[string]time.Time{}}
	if opts.RateLimitMaxKeys <= 0 {
		opts.RateLimitMaxKeys = 100_000
	}
	s.refreshIP = ratelimit.New(opts.RefreshIPLimit, opts.RateLimitMaxKeys, s.now)
	s.refreshSession = ratelimit.New(opts.RefreshSessionLimit, opts.RateLimitMaxKeys, s.now)
	s.bg, s.stopBG = context.WithCancel(context.Background())
	s.feeds = newFeeds(s)
	return s, nil
}

// record writes an audit event when the Service has a Recorder.
func (s *Service) record(ctx context.Context, t *tenancy.Tenant, e audit.Event) {
	if s.opts.Audit != nil {
		s.opts.Audit.Record(ctx, t, e)
	}
}

// logger is the Service's logger; a zero Service logs nothing.
func (s *Service) logger() *slog.Logger {
	if s.log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return s.log
}

func (s *Service) now() time.Time {
	if s.Now != nil {
		return s.Now().UTC()
	}
	return time.Now().UTC()
}

// Routes are where Register puts the routes.
type Routes struct {
	// Public is the public API's router (3502).
	Public *httpapi.Router
	// Internal is the internal API's router (3503).
	Internal *httpapi.Router
	// InternalAuth authenticates internal callers (see package authserver/internalauth); nil
	// admits everyone, which is only safe on a loopback listener.
	InternalAuth httpapi.Middleware
}

// Register adds the routes:
//
//	public:   GET  /auth/sessions           bearer
//	          POST /auth/logout/session     bearer
//	          POST /auth/logout/all         bearer
//	          POST /auth/refresh            public, rate limited per client IP and per session
//	internal: GET  /internal/v1/tenants/{tenant}/revocations?after=&wait=
//	          POST /internal/v1/introspect
func (s *Service) Register(rt Routes) {
	tenant := s.opts.Registry.Middleware(tenancy.RouteOptions{})
	bearer := s.Authenticate()
	rt.Public.Handle("GET /auth/sessions", httpapi.HandlerFunc(s.handleList), tenant, bearer)
	rt.Public.Handle("POST /auth/logout/session", httpapi.HandlerFunc(s.handleLogoutSession), tenant, bearer)
	rt.Public.Handle("POST /auth/logout/all", httpapi.HandlerFunc(s.handleLogoutAll), tenant, bearer)
	rt.Public.Handle("POST /auth/refresh", httpapi.HandlerFunc(s.handleRefresh), s.refreshIP.PerClientIP(), tenant)

	var internal []httpapi.Middleware
	if rt.InternalAuth != nil {
		internal = append(internal, rt.InternalAuth)
	}
	pathTenant := s.opts.Registry.Middleware(tenancy.RouteOptions{PathValue: "tenant", NoDatabase: true})
	rt.Internal.Handle("GET /internal/v1/tenants/{tenant}/revocations", httpapi.HandlerFunc(s.handleFeed), append(internal, pathTenant)...)
	rt.Internal.Handle("POST /internal/v1/introspect", http.HandlerFunc(s.handleIntrospect), internal...)
}

// Run does the background work until ctx ends: every second it publishes again revocations
// whose publication failed; every MaintenanceInterval it prunes expired revocations and
// sessions of the tenants this replica served and recounts their active sessions. When it
// returns, the feed pollers are stopped too.
func (s *Service) Run(ctx context.Context) error {
	defer s.Close()
	tick := time.NewTicker(s.opts.MaintenanceInterval)
	defer tick.Stop()
	retry := time.NewTicker(retryInterval)
	defer retry.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
			s.maintain(ctx)
			s.sweepPending(ctx)
		case <-retry.C:
			s.retryUnpublished(ctx)
		}
	}
}

// Close stops the feed pollers; long polls in flight answer at once.
func (s *Service) Close() { s.stopBG() }

// noteTenant remembers that this replica serves the tenant, for maintenance.
func (s *Service) noteTenant(id string) {
	if s.tenants == nil {
		return
	}
	now := time.Now()
	s.tenantsMu.Lock()
	s.tenants[id] = now
	s.tenantsMu.Unlock()
}

// retryInterval is how often revocations whose publication failed are tried again.
const retryInterval = time.Second

// maintenanceForget is how long a tenant this replica no longer serves stays in maintenance.
const maintenanceForget = time.Hour

func (s *Service) maintain(ctx context.Context) {
	s.tenantsMu.Lock()
	var ids []string
	for id, seen := range s.tenants {
		if time.Since(seen) > maintenanceForget {
			delete(s.tenants, id)
			s.metrics.forgetTenant(id)
			continue
		}
		ids = append(ids, id)
	}
	s.tenantsMu.Unlock()
	for _, id := range ids {
		if ctx.Err() != nil {
			return
		}
		if err := s.maintainTenant(ctx, id); err != nil {
			var he *httpapi.Error
			if errors.As(err, &he) && he.Code != httpapi.CodeTenantConnectionMissing {
				// The tenant is gone or suspended: stop reporting it.
				s.tenantsMu.Lock()
				delete(s.tenants, id)
				s.tenantsMu.Unlock()
				s.metrics.forgetTenant(id)
				continue
			}
			s.log.Warn("session maintenance failed", "tenant", id, "error", err.Error())
		}
	}
}

func (s *Service) maintainTenant(ctx context.Context, id string) error {
	t, release, err := s.opts.Registry.Acquire(ctx, id, true)
	if err != nil {
		return err
	}
	defer release()
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := s.prune(ctx, t); err != nil {
		return err
	}
	n, err := s.countActive(ctx, t)
	if err != nil {
		return err
	}
	s.metrics.setActive(id, n)
	return nil
}
