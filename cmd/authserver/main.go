// Command authserver runs the auth server: the public API on 3502, the internal API on 3503
// and the admin port 9502 (see package authserver). Every flag can also be set with an
// environment variable AUTHMESH_<FLAG> (upper case, '-' as '_'); a flag given on the command
// line wins.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"golang.org/x/sync/errgroup"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	ctrlconfig "sigs.k8s.io/controller-runtime/pkg/client/config"

	"github.com/authmesh/authmesh/authserver"
	"github.com/authmesh/authmesh/authserver/account"
	"github.com/authmesh/authmesh/authserver/admin"
	"github.com/authmesh/authmesh/authserver/audit"
	"github.com/authmesh/authmesh/authserver/identity"
	"github.com/authmesh/authmesh/authserver/internalauth"
	"github.com/authmesh/authmesh/authserver/sessions"
	"github.com/authmesh/authmesh/authserver/tenancy"
	"github.com/authmesh/authmesh/authserver/tenancy/kube"
	"github.com/authmesh/authmesh/internal/version"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "authserver:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	cfg, err := parseConfig(args, os.Getenv)
	if errors.Is(err, errVersion) {
		fmt.Println(version.String("authserver"))
		return nil
	}
	if err != nil {
		return err
	}
	if err := cfg.Validate(); err != nil {
		return fmt.Errorf("invalid configuration:\n%w", err)
	}
	logger := newLogger(cfg)

	metrics := prometheus.NewRegistry()
	metrics.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	srv, err := authserver.New(cfg, logger, metrics)
	if err != nil {
		return err
	}
	defer srv.Close()
	src, err := tenantSource(cfg, logger)
	if err != nil {
		return err
	}
	auditLog, err := audit.New(audit.Options{
		Registry:      srv.Registry,
		Retention:     cfg.Audit.Retention,
		PruneInterval: cfg.Audit.PruneInterval,
		Logger:        logger.With("component", "audit"),
		Registerer:    metrics,
	})
	if err != nil {
		return err
	}
	sess, err := sessions.New(sessions.Options{
		Registry:            srv.Registry,
		Decoder:             srv.Decoder,
		Logger:              logger.With("component", "sessions"),
		Registerer:          metrics,
		FeedPollInterval:    cfg.Sessions.FeedPollInterval,
		FeedMaxWait:         cfg.Sessions.FeedMaxWait,
		MaintenanceInterval: cfg.Sessions.MaintenanceInterval,
		Audit:               auditLog,
		RefreshIPLimit:      cfg.Sessions.RefreshIPLimit,
		RefreshSessionLimit: cfg.Sessions.RefreshSessionLimit,
		RateLimitMaxKeys:    cfg.Identity.RateLimitMaxKeys,
	})
	if err != nil {
		return err
	}
	internalAuth, err := internalAuthenticator(cfg)
	if err != nil {
		return err
	}
	sess.Register(sessions.Routes{Public: srv.Public, Internal: srv.Internal, InternalAuth: internalauth.Middleware(internalAuth)})
	ident, err := identity.Register(srv, identity.Options{Sessions: sess, Registerer: metrics, Audit: auditLog})
	if err != nil {
		return err
	}
	acct, err := account.Register(srv, account.Options{Identity: ident, Sessions: sess, Audit: auditLog, Registerer: metrics})
	if err != nil {
		return err
	}
	if _, err := admin.Register(srv, admin.Options{Sessions: sess, Audit: auditLog}); err != nil {
		return err
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	g, ctx := errgroup.WithContext(ctx)
	g.Go(func() error { return srv.Run(ctx, src) })
	g.Go(func() error { return sess.Run(ctx) })
	g.Go(func() error { return acct.Run(ctx) })
	g.Go(func() error { return auditLog.Run(ctx) })
	for _, l := range []struct {
		name, addr string
		h          http.Handler
		write      time.Duration
	}{
		{"public", cfg.PublicAddr, srv.PublicHandler(), 30 * time.Second},
		{"internal", cfg.InternalAddr, srv.InternalHandler(), 0}, // long polls set their own deadlines
		{"admin", cfg.AdminAddr, srv.AdminHandler(), 30 * time.Second},
	} {
		hs := &http.Server{
			Addr:              l.addr,
			Handler:           l.h,
			ReadHeaderTimeout: 10 * time.Second,
			ReadTimeout:       30 * time.Second,
			WriteTimeout:      l.write,
			IdleTimeout:       2 * time.Minute,
			MaxHeaderBytes:    64 << 10,
			ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
		}
		g.Go(func() error {
			logger.Info("listening", "listener", l.name, "addr", l.addr)
			if err := hs.ListenAndServe(); !errors.Is(err, http.ErrServerClosed) {
				return fmt.Errorf("%s listener: %w", l.name, err)
			}
			return nil
		})
		g.Go(func() error {
			<-ctx.Done()
			srv.Drain()
			shutdownCtx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownTimeout)
			defer cancel()
			return hs.Shutdown(shutdownCtx)
		})
	}
	err = g.Wait()
	logger.Info("stopped", "error", err)
	return err
}

// parseConfig fills a Config from the environment (AUTHMESH_*) and then the command line.
func parseConfig(args []string, getenv func(string) string) (authserver.Config, error) {
	cfg := authserver.DefaultConfig()
	fs := flag.NewFlagSet("authserver", flag.ContinueOnError)
	fs.StringVar(&cfg.PublicAddr, "public-addr", cfg.PublicAddr, "address of the public API")
	fs.StringVar(&cfg.InternalAddr, "internal-addr", cfg.InternalAddr, "address of the internal API (revocation feed, introspection)")
	fs.StringVar(&cfg.AdminAddr, "admin-addr", cfg.AdminAddr, "address of /healthz, /readyz and /metrics")
	fs.StringVar(&cfg.PublicURL, "public-url", cfg.PublicURL, "the auth server's URL as clients reach it; token issuers are <public-url>/t/<tenant>")
	fs.StringVar(&cfg.TenantSource, "tenant-source", cfg.TenantSource, "where tenants come from: kubernetes or files")
	fs.StringVar(&cfg.Namespace, "namespace", cfg.Namespace, "the controller's namespace, holding tenant Secrets (kubernetes; also POD_NAMESPACE)")
	fs.StringVar(&cfg.Kubeconfig, "kubeconfig", cfg.Kubeconfig, "kubeconfig file (kubernetes; default: KUBECONFIG, in-cluster, ~/.kube/config)")
	fs.StringVar(&cfg.TenantsDir, "tenants-dir", cfg.TenantsDir, "directory of Tenant manifests (files)")
	fs.StringVar(&cfg.StateDir, "state-dir", cfg.StateDir, "directory of per-tenant keys and connection URIs; missing keys are generated here (files)")
	fs.StringVar(&cfg.MongoURI, "mongo-uri", cfg.MongoURI, "MongoDB URI of file tenants without their own uri file (files)")
	fs.DurationVar(&cfg.FilePollInterval, "file-poll-interval", cfg.FilePollInterval, "how often tenant files are re-read (files)")
	fs.IntVar(&cfg.MongoMaxClients, "mongo-max-clients", cfg.MongoMaxClients, "most MongoDB clients (distinct URIs) open at once")
	fs.DurationVar(&cfg.MongoIdleTimeout, "mongo-idle-timeout", cfg.MongoIdleTimeout, "close a MongoDB client unused this long")
	fs.Uint64Var(&cfg.MongoMaxConnsPerURI, "mongo-max-conns-per-uri", cfg.MongoMaxConnsPerURI, "connection pool size of each MongoDB client")
	fs.DurationVar(&cfg.MongoHealthInterval, "mongo-health-interval", cfg.MongoHealthInterval, "how often each MongoDB client is pinged")
	fs.DurationVar(&cfg.MongoPingTimeout, "mongo-ping-timeout", cfg.MongoPingTimeout, "how long a ping may take before the database counts as unreachable")
	fs.DurationVar(&cfg.MongoSelectionTimeout, "mongo-selection-timeout", cfg.MongoSelectionTimeout, "how long an operation waits for a usable MongoDB server")
	fs.StringVar(&cfg.LogLevel, "log-level", cfg.LogLevel, "debug, info, warn or error")
	fs.StringVar(&cfg.LogFormat, "log-format", cfg.LogFormat, "json or text")
	fs.DurationVar(&cfg.ShutdownTimeout, "shutdown-timeout", cfg.ShutdownTimeout, "how long in-flight requests may take at shutdown")
	fs.StringVar(&cfg.Sessions.InternalAuth, "internal-auth", cfg.Sessions.InternalAuth, "how internal API callers authenticate: none (loopback internal-addr only) or tokenreview (Kubernetes ServiceAccount tokens)")
	fs.StringVar(&cfg.Sessions.InternalAudience, "internal-audience", cfg.Sessions.InternalAudience, "audience internal callers' ServiceAccount tokens must be minted for (tokenreview)")
	fs.Func("internal-allowed", "comma-separated ServiceAccounts (namespace/name or namespace/*) allowed on the internal API; empty allows any with a token for the audience (tokenreview)", func(v string) error {
		cfg.Sessions.InternalAllowed = splitList(v)
		return nil
	})
	fs.DurationVar(&cfg.Sessions.FeedPollInterval, "revocation-poll-interval", cfg.Sessions.FeedPollInterval, "how often a followed tenant's revocations are polled")
	fs.DurationVar(&cfg.Sessions.FeedMaxWait, "revocation-max-wait", cfg.Sessions.FeedMaxWait, "longest revocation feed long poll")
	fs.DurationVar(&cfg.Sessions.MaintenanceInterval, "session-maintenance-interval", cfg.Sessions.MaintenanceInterval, "how often expired sessions and revocations are pruned and active sessions counted")
	fs.Var(&cfg.Sessions.RefreshIPLimit, "rate-limit-refresh-ip", "token refreshes per client IP, per replica: <events>/<period>[,burst=<n>] or off")
	fs.Var(&cfg.Sessions.RefreshSessionLimit, "rate-limit-refresh-session", "token refreshes per session, per replica: <events>/<period>[,burst=<n>] or off")
	identityFlags(fs, &cfg)
	accountFlags(fs, &cfg)

	if ns := getenv("POD_NAMESPACE"); ns != "" {
		cfg.Namespace = ns
	}
	var envErrs []error
	fs.VisitAll(func(f *flag.Flag) {
		name := "AUTHMESH_" + strings.ToUpper(strings.ReplaceAll(f.Name, "-", "_"))
		if v := getenv(name); v != "" {
			if err := fs.Set(f.Name, v); err != nil {
				envErrs = append(envErrs, fmt.Errorf("%s: %w", name, err))
			}
		}
	})
	if err := errors.Join(envErrs...); err != nil {
		return cfg, err
	}
	showVersion := fs.Bool("version", false, "print the version and exit") // after the AUTHMESH_* loop: no environment variable
	if err := fs.Parse(args); err != nil {
		return cfg, err
	}
	if *showVersion {
		return cfg, errVersion
	}
	if fs.NArg() > 0 {
		return cfg, fmt.Errorf("unexpected arguments: %v", fs.Args())
	}
	return cfg, nil
}

// errVersion is parseConfig's answer to -version.
var errVersion = errors.New("version requested")

func newLogger(cfg authserver.Config) *slog.Logger {
	level, _ := cfg.SlogLevel() // validated
	opts := &slog.HandlerOptions{Level: level}
	if cfg.LogFormat == "text" {
		return slog.New(slog.NewTextHandler(os.Stderr, opts))
	}
	return slog.New(slog.NewJSONHandler(os.Stderr, opts))
}

func tenantSource(cfg authserver.Config, logger *slog.Logger) (tenancy.Source, error) {
	logger = logger.With("component", "tenant-source")
	if cfg.TenantSource == authserver.SourceFiles {
		return tenancy.NewFileSource(tenancy.FileSourceOptions{
			TenantsDir:   cfg.TenantsDir,
			StateDir:     cfg.StateDir,
			DefaultURI:   cfg.MongoURI,
			PollInterval: cfg.FilePollInterval,
			Logger:       logger,
		})
	}
	restConfig, err := kubeConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("kubernetes client configuration: %w", err)
	}
	return kube.NewSource(kube.Options{Config: restConfig, Namespace: cfg.Namespace, Logger: logger})
}

// kubeConfig reaches the Kubernetes API through -kubeconfig, else the in-cluster (or default)
// configuration.
func kubeConfig(cfg authserver.Config) (*rest.Config, error) {
	if cfg.Kubeconfig != "" {
		return clientcmd.BuildConfigFromFlags("", cfg.Kubeconfig)
	}
	return ctrlconfig.GetConfig()
}

// internalAuthenticator builds the internal API's authenticator for cfg.Sessions.InternalAuth.
func internalAuthenticator(cfg authserver.Config) (internalauth.Authenticator, error) {
	if cfg.Sessions.InternalAuth != authserver.InternalAuthTokenReview {
		return internalauth.None{}, nil
	}
	restConfig, err := kubeConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("kubernetes client configuration (internal-auth tokenreview): %w", err)
	}
	clientset, err := kubernetes.NewForConfig(restConfig)
	if err != nil {
		return nil, err
	}
	return internalauth.NewTokenReview(internalauth.TokenReviewOptions{
		Reviews:   clientset.AuthenticationV1().TokenReviews(),
		Audiences: []string{cfg.Sessions.InternalAudience},
		Allowed:   cfg.Sessions.InternalAllowed,
	})
}

func splitList(v string) []string {
	var out []string
	for item := range strings.SplitSeq(v, ",") {
		if item = strings.TrimSpace(item); item != "" {
			out = append(out, item)
		}
	}
	return out
}
