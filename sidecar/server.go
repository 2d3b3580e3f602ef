package sidecar

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"golang.org/x/sync/errgroup"

	"github.com/authmesh/authmesh/guard"
)

// Sidecar is a running enforcing proxy. Build one with New, then Serve it.
type Sidecar struct {
	cfg      Config
	logger   *slog.Logger
	registry *prometheus.Registry
	metrics  *metrics
	tenants  *tenantSet
	policy   atomic.Pointer[PodPolicy]
	draining atomic.Bool
	handler  http.Handler

	policySource []byte // the annotations file content in force
	policyError  atomic.Pointer[string]
}

// New validates cfg, reads the policy (refusing to start on an invalid one) and starts
// following the tenant's keys and revocations; ctx bounds that background work.
func New(ctx context.Context, cfg Config, logger *slog.Logger) (*Sidecar, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("sidecar: invalid configuration:\n%w", err)
	}
	s := &Sidecar{cfg: cfg, logger: logger, registry: prometheus.NewRegistry()}
	pp, source, err := s.readPolicy()
	if err != nil {
		return nil, fmt.Errorf("sidecar: refusing to start on an invalid policy:\n%w", err)
	}
	s.policy.Store(&pp)
	s.policySource = source

	upstream := cfg.Upstream
	if upstream == "" {
		if pp.Port == 0 {
			return nil, fmt.Errorf("sidecar: %s is not set and no upstream URL was given", AnnotationPort)
		}
		upstream = "http://127.0.0.1:" + strconv.Itoa(pp.Port)
	}
	upstreamURL, err := url.Parse(upstream)
	if err != nil {
		return nil, err
	}

	s.tenants = newTenantSet(ctx, &s.cfg, logger)
	s.metrics = newMetrics(s.registry, s.tenants)
	s.metrics.policyValid.Set(1)
	s.registry.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	if pp.Tenant != guard.AnyTenant {
		if _, err := s.tenants.get(pp.Tenant); err != nil {
			return nil, err
		}
	}
	enforcer, err := guard.NewEnforcer(guard.EnforcerConfig{
		Policy:     func() *guard.Policy { return s.policy.Load().Policy },
		Tenant:     pp.Tenant,
		Verifiers:  s.tenants.verifier,
		Sessions:   s.tenants,
		OnDecision: s.decided,
	})
	if err != nil {
		return nil, err
	}
	s.handler = enforcer.Wrap(newProxy(upstreamURL, &s.cfg, s.metrics, logger))
	logger.Info("sidecar configured", "tenant", pp.Tenant, "upstream", upstreamURL.String(), "policy", pp.Policy.String())
	return s, nil
}

// decided counts every decision and logs refusals at debug level.
func (s *Sidecar) decided(r *http.Request, reason string) {
	s.metrics.decided(r, reason)
	if reason != guard.ReasonAllowed && reason != guard.ReasonPublic && s.logger.Enabled(r.Context(), slog.LevelDebug) {
		s.logger.Debug("refused", "reason", reason, "method", r.Method, "path", r.URL.Path)
	}
}

// Handler is the guarded proxy.
func (s *Sidecar) Handler() http.Handler { return s.handler }

// Serve runs the proxy and admin listeners until ctx ends, then drains: /readyz fails at
// once, requests are still served for DrainDelay, and open requests get 30 s to finish.
func (s *Sidecar) Serve(ctx context.Context, proxyLn, adminLn net.Listener) error {
	proxySrv := &http.Server{Handler: s.handler, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 120 * time.Second,
		ErrorLog: slog.NewLogLogger(s.logger.Handler(), slog.LevelWarn)}
	adminSrv := &http.Server{Handler: s.adminHandler(), ReadHeaderTimeout: 10 * time.Second}
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return ignoreClosed(proxySrv.Serve(proxyLn)) })
	g.Go(func() error { return ignoreClosed(adminSrv.Serve(adminLn)) })
	if s.cfg.AnnotationsFile != "" {
		g.Go(func() error { s.watchPolicy(gctx); return nil })
	}
	g.Go(func() error {
		<-gctx.Done()
		s.draining.Store(true)
		if ctx.Err() != nil { // a real stop, not a failed listener: let the endpoints catch up
			select {
			case <-time.After(s.cfg.DrainDelay):
			case <-gctx.Done():
			}
		}
		shutdownCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		return errors.Join(proxySrv.Shutdown(shutdownCtx), adminSrv.Shutdown(shutdownCtx))
	})
	return g.Wait()
}

func ignoreClosed(err error) error {
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}

// Ready reports whether the sidecar can decide requests: its policy is valid and, for a fixed
// tenant, that tenant's keys are fetched and its revocations read.
func (s *Sidecar) Ready() (bool, string) {
	if s.draining.Load() {
		return false, "draining"
	}
	pp := s.policy.Load()
	if pp.Tenant == guard.AnyTenant {
		return true, ""
	}
	return s.tenants.ready(pp.Tenant)
}

func (s *Sidecar) adminHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok\n")) })
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		ready, why := s.Ready()
		var notes []string
		if e := s.policyError.Load(); e != nil {
			notes = append(notes, "policy update refused, last good policy in force: "+*e)
		}
		s.tenants.each(func(t *tenantTrust) {
			if t.follower == nil {
				return
			}
			if age := time.Since(t.follower.LastAnswer()); t.follower.Synced() && age > 2*(s.cfg.FeedWait+10*time.Second) {
				notes = append(notes, fmt.Sprintf("revocation feed of %s silent for %s; last state in force", t.id, age.Round(time.Second)))
			}
		})
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		if !ready {
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = fmt.Fprintf(w, "not ready: %s\n", why)
		} else {
			_, _ = w.Write([]byte("ready\n"))
		}
		for _, n := range notes {
			_, _ = fmt.Fprintln(w, "warning:", n)
		}
	})
	mux.Handle("GET /metrics", promhttp.HandlerFor(s.registry, promhttp.HandlerOpts{}))
	if s.cfg.Profiling {
		mux.HandleFunc("/debug/pprof/", pprof.Index)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	}
	return mux
}

// readPolicy reads the policy from the annotations file, or from the configuration.
func (s *Sidecar) readPolicy() (PodPolicy, []byte, error) {
	if s.cfg.AnnotationsFile == "" {
		pp, err := PodPolicyFromAnnotations(map[string]string{
			AnnotationTenant: s.cfg.Tenant, AnnotationPublic: s.cfg.Public, AnnotationRoles: s.cfg.Roles,
		})
		return pp, nil, err
	}
	data, err := os.ReadFile(s.cfg.AnnotationsFile)
	if err != nil {
		return PodPolicy{}, nil, err
	}
	a, err := ParseAnnotationsFile(data)
	if err != nil {
		return PodPolicy{}, data, err
	}
	pp, err := PodPolicyFromAnnotations(a)
	return pp, data, err
}

// watchPolicy applies changes of the annotations file: public and role routes at once; a
// tenant or port change needs a restart and is refused like a bad policy, keeping the last
// good one in force.
func (s *Sidecar) watchPolicy(ctx context.Context) {
	t := time.NewTicker(s.cfg.PolicyPollInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		pp, source, err := s.readPolicy()
		if err == nil && string(source) == string(s.policySource) {
			if s.policyError.Load() != nil { // back to the policy in force
				s.policyError.Store(nil)
				s.metrics.policyValid.Set(1)
			}
			continue
		}
		current := s.policy.Load()
		if err == nil && (pp.Tenant != current.Tenant || pp.Port != current.Port) {
			err = fmt.Errorf("%s and %s cannot change while running; restart the pod", AnnotationTenant, AnnotationPort)
		}
		if err != nil {
			msg := strings.ReplaceAll(err.Error(), "\n", "; ")
			if prev := s.policyError.Load(); prev == nil || *prev != msg {
				s.logger.Error("policy update refused; the last good policy stays in force", "err", msg)
				s.metrics.policyErrors.Inc()
				s.policyError.Store(&msg)
			}
			s.metrics.policyValid.Set(0)
			continue
		}
		s.policy.Store(&pp)
		s.policySource = source
		s.policyError.Store(nil)
		s.metrics.policyValid.Set(1)
		s.logger.Info("policy updated", "policy", pp.Policy.String())
	}
}
