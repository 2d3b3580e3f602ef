package authserver

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"net/url"
	"os"
	"strings"
	"time"
)

// AdminRole is the tenant role the admin API (package admin) requires and a tenant's
// bootstrap admin (package account) is given.
const AdminRole = "admin"

// Tenant sources.
const (
	SourceKubernetes = "kubernetes"
	SourceFiles      = "files"
)

// Config is everything the auth server is told at start. cmd/authserver fills it from flags
// and environment variables.
type Config struct {
	// Listener addresses.
	PublicAddr   string // public API, default :3502
	InternalAddr string // internal API, default 127.0.0.1:3503 (loopback until internal callers authenticate)
	AdminAddr    string // /healthz, /readyz, /metrics, default :9502

	// PublicURL is the auth server's URL as clients reach it; issuers are PublicURL/t/<tenant>.
	PublicURL string

	// TenantSource is "kubernetes" or "files".
	TenantSource string
	// Namespace is the controller's namespace, where tenant Secrets live (kubernetes).
	Namespace string
	// Kubeconfig is a kubeconfig file; empty uses KUBECONFIG, in-cluster config or ~/.kube/config.
	Kubeconfig string
	// TenantsDir holds Tenant manifests and StateDir per-tenant keys and URIs (files).
	TenantsDir string
	StateDir   string
	// MongoURI is the database of file tenants that name none of their own (files).
	MongoURI string
	// FilePollInterval is how often tenant files are re-read (files).
	FilePollInterval time.Duration

	// MongoDB client pool.
	MongoMaxClients       int
	MongoIdleTimeout      time.Duration
	MongoMaxConnsPerURI   uint64
	MongoHealthInterval   time.Duration
	MongoPingTimeout      time.Duration
	MongoSelectionTimeout time.Duration

	// LogLevel is debug, info, warn or error; LogFormat is json or text.
	LogLevel  string
	LogFormat string

	// ShutdownTimeout bounds the graceful shutdown of the listeners.
	ShutdownTimeout time.Duration

	// TrustedProxies are the proxies (CIDRs) whose X-Forwarded-For names the client IP of
	// public requests; empty trusts none (see package clientinfo).
	TrustedProxies []netip.Prefix

	// Identity configures signup, login, lockout, unlock and their mail (package identity).
	Identity IdentityConfig

	// Sessions configures sessions, the revocation feed and internal API authentication
	// (packages sessions and internalauth).
	Sessions SessionsConfig

	// Account configures password reset and the bootstrap admin's link (package account).
	Account AccountConfig

	// Audit configures the audit trail's retention (package audit).
	Audit AuditConfig
}

// DefaultConfig returns the defaults.
func DefaultConfig() Config {
	return Config{
		PublicAddr:            ":3502",
		InternalAddr:          "127.0.0.1:3503",
		AdminAddr:             ":9502",
		PublicURL:             "http://localhost:3502",
		TenantSource:          SourceKubernetes,
		Namespace:             "authmesh-system",
		TenantsDir:            "config/samples",
		StateDir:              ".dev/tenants",
		FilePollInterval:      2 * time.Second,
		MongoMaxClients:       32,
		MongoIdleTimeout:      10 * time.Minute,
		MongoMaxConnsPerURI:   20,
		MongoHealthInterval:   10 * time.Second,
		MongoPingTimeout:      2 * time.Second,
		MongoSelectionTimeout: 5 * time.Second,
		LogLevel:              "info",
		LogFormat:             "json",
		ShutdownTimeout:       20 * time.Second,
		Identity:              DefaultIdentityConfig(),
		Sessions:              DefaultSessionsConfig(),
		Account:               DefaultAccountConfig(),
		Audit:                 DefaultAuditConfig(),
	}
}

// Validate returns every problem with c at once, or nil.
func (c *Config) Validate() error {
	var errs []error
	add := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }

	addrs := map[string]string{}
	for _, a := range []struct{ name, addr string }{
		{"public-addr", c.PublicAddr}, {"internal-addr", c.InternalAddr}, {"admin-addr", c.AdminAddr},
	} {
		if _, port, err := net.SplitHostPort(a.addr); err != nil || port == "" {
			add("%s %q is not host:port", a.name, a.addr)
			continue
		}
		if other, dup := addrs[a.addr]; dup {
			add("%s and %s are both %q", other, a.name, a.addr)
		}
		addrs[a.addr] = a.name
	}

	if u, err := url.Parse(c.PublicURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" ||
		u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		add("public-url %q must be an absolute http(s) URL without user, query or fragment", c.PublicURL)
	}

	switch c.TenantSource {
	case SourceKubernetes:
		if c.Namespace == "" {
			add("namespace is required with tenant-source=kubernetes")
		}
	case SourceFiles:
		if c.TenantsDir == "" {
			add("tenants-dir is required with tenant-source=files")
		} else if fi, err := os.Stat(c.TenantsDir); err != nil || !fi.IsDir() {
			add("tenants-dir %q is not a directory", c.TenantsDir)
		}
		if c.StateDir == "" {
			add("state-dir is required with tenant-source=files")
		}
		if c.FilePollInterval <= 0 {
			add("file-poll-interval must be positive")
		}
	default:
		add("tenant-source %q must be %q or %q", c.TenantSource, SourceKubernetes, SourceFiles)
	}

	if c.MongoMaxClients < 1 {
		add("mongo-max-clients must be at least 1")
	}
	if c.MongoMaxConnsPerURI < 1 {
		add("mongo-max-conns-per-uri must be at least 1")
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{
		{"mongo-idle-timeout", c.MongoIdleTimeout}, {"mongo-health-interval", c.MongoHealthInterval},
		{"mongo-ping-timeout", c.MongoPingTimeout}, {"mongo-selection-timeout", c.MongoSelectionTimeout},
		{"shutdown-timeout", c.ShutdownTimeout},
	} {
		if d.v <= 0 {
			add("%s must be positive", d.name)
		}
	}
	if _, err := c.SlogLevel(); err != nil {
		errs = append(errs, err)
	}
	if c.LogFormat != "json" && c.LogFormat != "text" {
		add("log-format %q must be json or text", c.LogFormat)
	}
	if err := c.Identity.Validate(); err != nil {
		errs = append(errs, err)
	}
	if err := c.Sessions.Validate(c.InternalAddr); err != nil {
		errs = append(errs, err)
	}
	if err := c.Account.Validate(); err != nil {
		errs = append(errs, err)
	}
	if err := c.Audit.Validate(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// SlogLevel parses LogLevel.
func (c *Config) SlogLevel() (slog.Level, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(strings.ToUpper(c.LogLevel))); err != nil {
		return 0, fmt.Errorf("log-level %q must be debug, info, warn or error", c.LogLevel)
	}
	return l, nil
}
