package sidecar

import (
	"errors"
	"fmt"
	"net/url"
	"os"
	"time"

	"github.com/authmesh/authmesh/guard"
)

// Config is everything the sidecar is told at start. cmd/sidecar fills it from flags and the
// environment; Validate reports every problem at once.
type Config struct {
	// ListenAddr serves the guarded app (15080 in a pod, 3500 in dev and gateway mode).
	ListenAddr string
	// AdminAddr serves /healthz, /readyz and /metrics (15090 in a pod, 9500 otherwise).
	AdminAddr string

	// AnnotationsFile is the pod's annotations as the downward API projects them; watched.
	// When empty, Tenant, Public and Roles below are the policy (gateway mode).
	AnnotationsFile string
	Tenant          string
	Public          string
	Roles           string
	// PolicyPollInterval is how often AnnotationsFile is checked for changes.
	PolicyPollInterval time.Duration

	// Upstream is the app's URL. Empty: http://127.0.0.1:<authmesh.dev/port>.
	Upstream string
	// UpstreamTimeout bounds the wait for the app's response headers (504 past it).
	UpstreamTimeout time.Duration
	// UpstreamIdleConns is the upstream pool size; size it to the expected concurrency.
	UpstreamIdleConns int
	// ForwardAuthorization passes the caller's Authorization header on to the app.
	ForwardAuthorization bool

	// AuthURL is where the auth server's public API (and so each tenant's JWKS) is reached.
	AuthURL string
	// IssuerURL is the auth server's public URL as it appears in tokens' iss; AuthURL when empty.
	IssuerURL string
	// FeedURL is the auth server's internal API (the revocation feed). Empty disables
	// revocation checks, which is only for trying things out.
	FeedURL string
	// FeedWait is how long one long poll of the feed may last.
	FeedWait time.Duration
	// InternalTokenFile holds a bearer token for the internal API (a projected
	// ServiceAccount token in Kubernetes).
	InternalTokenFile string
	// Audience is the aud tokens must carry.
	Audience string
	// MinJWKSFetchInterval bounds key fetches caused by unknown kids, per tenant.
	MinJWKSFetchInterval time.Duration
	// TokenCacheSize bounds the verified-token cache per tenant.
	TokenCacheSize int
	// MaxTenants bounds how many tenants a sidecar whose tenant is "*" follows.
	MaxTenants int

	// DrainDelay is how long the sidecar keeps serving, unready, after SIGTERM.
	DrainDelay time.Duration
	// LogLevel is debug, info, warn or error.
	LogLevel string
	// Profiling serves Go's /debug/pprof/ on the admin port.
	Profiling bool
}

// Defaults returns a Config with every default filled in.
func Defaults() Config {
	return Config{
		ListenAddr:           ":15080",
		AdminAddr:            ":15090",
		PolicyPollInterval:   time.Second,
		UpstreamTimeout:      60 * time.Second,
		UpstreamIdleConns:    256,
		ForwardAuthorization: true,
		FeedWait:             20 * time.Second,
		Audience:             "authmesh",
		MinJWKSFetchInterval: 5 * time.Second,
		TokenCacheSize:       10_000,
		MaxTenants:           64,
		DrainDelay:           5 * time.Second,
		LogLevel:             "info",
	}
}

// Validate reports every problem with c, and fills IssuerURL from AuthURL.
func (c *Config) Validate() error {
	var problems []error
	add := func(format string, args ...any) { problems = append(problems, fmt.Errorf(format, args...)) }
	if c.ListenAddr == "" {
		add("a listen address is required")
	}
	if c.AuthURL == "" {
		add("the auth server URL is required (where tenants' JWKS are fetched)")
	}
	for name, u := range map[string]*string{"auth server URL": &c.AuthURL, "issuer URL": &c.IssuerURL, "feed URL": &c.FeedURL, "upstream URL": &c.Upstream} {
		if *u == "" {
			continue
		}
		parsed, err := url.Parse(*u)
		if err != nil || (parsed.Scheme != "http" && parsed.Scheme != "https") || parsed.Host == "" {
			add("%s %q is not an http(s) URL", name, *u)
		}
		*u = trimURL(*u)
	}
	if c.IssuerURL == "" {
		c.IssuerURL = c.AuthURL
	}
	if c.AnnotationsFile != "" {
		if _, err := os.Stat(c.AnnotationsFile); err != nil {
			add("annotations file: %v", err)
		}
		if c.Tenant != "" || c.Public != "" || c.Roles != "" {
			add("give the policy either as an annotations file or as tenant/public/roles, not both")
		}
	} else if c.Tenant == "" {
		add("a tenant is required (or an annotations file with %s)", AnnotationTenant)
	} else if c.Tenant != guard.AnyTenant && !ValidTenantID(c.Tenant) {
		add("tenant %q is not a tenant id or %q", c.Tenant, guard.AnyTenant)
	}
	if c.AnnotationsFile == "" && c.Upstream == "" {
		add("an upstream URL is required without an annotations file")
	}
	if c.Audience == "" {
		add("an audience is required")
	}
	if c.UpstreamIdleConns < 1 || c.MaxTenants < 1 || c.TokenCacheSize < 0 {
		add("upstream idle connections and max tenants must be positive, the token cache size not negative")
	}
	if c.UpstreamTimeout <= 0 || c.FeedWait <= 0 || c.PolicyPollInterval <= 0 || c.MinJWKSFetchInterval <= 0 || c.DrainDelay < 0 {
		add("timeouts and intervals must be positive")
	}
	switch c.LogLevel {
	case "debug", "info", "warn", "error":
	default:
		add("log level %q is not debug, info, warn or error", c.LogLevel)
	}
	return errors.Join(problems...)
}
