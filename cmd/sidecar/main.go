// Command sidecar runs authmesh's enforcing reverse proxy in front of an app: injected into a
// pod, it reads the pod's annotations from a downward-API file; standalone (gateway mode), it
// takes the tenant, public and role routes from flags and forwards to any upstream URL. Every
// flag can also be set by the environment variable named in its help.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/authmesh/authmesh/internal/version"
	"github.com/authmesh/authmesh/sidecar"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

func run() error {
	cfg := sidecar.Defaults()
	fs := flag.NewFlagSet("sidecar", flag.ContinueOnError)
	b := &binder{fs: fs}
	b.str(&cfg.ListenAddr, "listen", "AUTHMESH_LISTEN", "address the guarded app is served on")
	b.str(&cfg.AdminAddr, "admin-listen", "AUTHMESH_ADMIN_LISTEN", "address of /healthz, /readyz and /metrics")
	b.str(&cfg.AnnotationsFile, "annotations-file", "AUTHMESH_ANNOTATIONS_FILE", "the pod's annotations (downward API file), watched for changes")
	b.str(&cfg.Tenant, "tenant", "AUTHMESH_TENANT", `tenant whose tokens are accepted, or "*" for the request's x-tenant-id (gateway mode)`)
	b.str(&cfg.Public, "public", "AUTHMESH_PUBLIC", "public routes, e.g. \"/healthz, /public/**\" (gateway mode)")
	b.str(&cfg.Roles, "roles", "AUTHMESH_ROLES", "role routes, e.g. \"/admin/**=admin; POST /reports/**=manager,admin\" (gateway mode)")
	b.str(&cfg.Upstream, "upstream", "AUTHMESH_UPSTREAM", "the app's URL (default http://127.0.0.1:<authmesh.dev/port>)")
	b.str(&cfg.AuthURL, "auth-url", "AUTHMESH_AUTH_URL", "the auth server's public API, where tenants' JWKS are fetched")
	b.str(&cfg.IssuerURL, "issuer-url", "AUTHMESH_ISSUER_URL", "the auth server's public URL as it appears in tokens (default: -auth-url)")
	b.str(&cfg.FeedURL, "feed-url", "AUTHMESH_FEED_URL", "the auth server's internal API, for the revocation feed (empty: no revocation checks)")
	b.str(&cfg.InternalTokenFile, "internal-token-file", "AUTHMESH_INTERNAL_TOKEN_FILE", "bearer token for the internal API (a projected ServiceAccount token)")
	b.str(&cfg.Audience, "audience", "AUTHMESH_AUDIENCE", "the aud claim tokens must carry")
	b.str(&cfg.LogLevel, "log-level", "AUTHMESH_LOG_LEVEL", "debug, info, warn or error")
	b.boolean(&cfg.Profiling, "profiling", "AUTHMESH_PROFILING", "serve Go's /debug/pprof/ on the admin port")
	b.boolean(&cfg.ForwardAuthorization, "forward-authorization", "AUTHMESH_FORWARD_AUTHORIZATION", "pass the caller's Authorization header to the app")
	b.integer(&cfg.UpstreamIdleConns, "upstream-idle-conns", "AUTHMESH_UPSTREAM_IDLE_CONNS", "idle upstream connections kept (size to concurrency)")
	b.integer(&cfg.MaxTenants, "max-tenants", "AUTHMESH_MAX_TENANTS", `tenants followed at most when the tenant is "*"`)
	b.integer(&cfg.TokenCacheSize, "token-cache-size", "AUTHMESH_TOKEN_CACHE_SIZE", "verified tokens remembered per tenant")
	b.duration(&cfg.UpstreamTimeout, "upstream-timeout", "AUTHMESH_UPSTREAM_TIMEOUT", "wait for the app's response headers (504 past it)")
	b.duration(&cfg.FeedWait, "feed-wait", "AUTHMESH_FEED_WAIT", "longest revocation-feed long poll")
	b.duration(&cfg.MinJWKSFetchInterval, "min-jwks-fetch-interval", "AUTHMESH_MIN_JWKS_FETCH_INTERVAL", "least time between key fetches caused by unknown kids")
	b.duration(&cfg.PolicyPollInterval, "policy-poll-interval", "AUTHMESH_POLICY_POLL_INTERVAL", "how often the annotations file is checked")
	b.duration(&cfg.DrainDelay, "drain-delay", "AUTHMESH_DRAIN_DELAY", "time to keep serving, unready, after SIGTERM")
	showVersion := fs.Bool("version", false, "print the version and exit")
	if err := fs.Parse(os.Args[1:]); err != nil {
		return err
	}
	if *showVersion {
		fmt.Println(version.String("sidecar"))
		return nil
	}
	if len(b.errs) > 0 {
		return errors.Join(b.errs...)
	}

	var level slog.Level
	_ = level.UnmarshalText([]byte(cfg.LogLevel))
	logger := slog.New(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: level})).With("component", "sidecar")

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	start := time.Now()
	s, err := sidecar.New(ctx, cfg, logger)
	if err != nil {
		return err
	}
	proxyLn, err := net.Listen("tcp", cfg.ListenAddr)
	if err != nil {
		return err
	}
	adminLn, err := net.Listen("tcp", cfg.AdminAddr)
	if err != nil {
		return err
	}
	logger.Info("listening", "proxy", proxyLn.Addr().String(), "admin", adminLn.Addr().String(), "startup", time.Since(start).String())
	return s.Serve(ctx, proxyLn, adminLn)
}

// binder declares flags whose defaults come from the environment, collecting bad values.
type binder struct {
	fs   *flag.FlagSet
	errs []error
}

func (b *binder) env(name string) (string, bool) {
	v := strings.TrimSpace(os.Getenv(name))
	return v, v != ""
}

func (b *binder) bad(envName, v string, err error) {
	b.errs = append(b.errs, fmt.Errorf("$%s=%q: %w", envName, v, err))
}

func (b *binder) str(p *string, name, envName, usage string) {
	if v, ok := b.env(envName); ok {
		*p = v
	}
	b.fs.StringVar(p, name, *p, usage+" ($"+envName+")")
}

func (b *binder) integer(p *int, name, envName, usage string) {
	if v, ok := b.env(envName); ok {
		n, err := strconv.Atoi(v)
		if err != nil {
			b.bad(envName, v, err)
		}
		*p = n
	}
	b.fs.IntVar(p, name, *p, usage+" ($"+envName+")")
}

func (b *binder) boolean(p *bool, name, envName, usage string) {
	if v, ok := b.env(envName); ok {
		x, err := strconv.ParseBool(v)
		if err != nil {
			b.bad(envName, v, err)
		}
		*p = x
	}
	b.fs.BoolVar(p, name, *p, usage+" ($"+envName+")")
}

func (b *binder) duration(p *time.Duration, name, envName, usage string) {
	if v, ok := b.env(envName); ok {
		d, err := time.ParseDuration(v)
		if err != nil {
			b.bad(envName, v, err)
		}
		*p = d
	}
	b.fs.DurationVar(p, name, *p, usage+" ($"+envName+")")
}
