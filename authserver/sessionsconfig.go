package authserver

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"time"

	"github.com/authmesh/authmesh/authserver/internalauth"
	"github.com/authmesh/authmesh/authserver/ratelimit"
)

// Internal API authentication modes.
const (
	// InternalAuthNone admits every caller of the internal API; allowed only when the
	// internal listener is on loopback (dev mode).
	InternalAuthNone = "none"
	// InternalAuthTokenReview admits callers whose projected ServiceAccount token the
	// Kubernetes API server accepts for InternalAudience (see package internalauth).
	InternalAuthTokenReview = "tokenreview"
)

// SessionsConfig configures sessions, the revocation feed and who may call the internal API.
type SessionsConfig struct {
	// InternalAuth is InternalAuthNone or InternalAuthTokenReview.
	InternalAuth string
	// InternalAudience is the audience internal callers' tokens must be minted for
	// (tokenreview).
	InternalAudience string
	// InternalAllowed lists the ServiceAccounts that may call the internal API, as
	// "namespace/name" or "namespace/*"; empty admits any with a token for the audience
	// (tokenreview).
	InternalAllowed []string

	// FeedPollInterval is how often a followed tenant's revocations are polled (one query per
	// tenant per interval, however many followers).
	FeedPollInterval time.Duration
	// FeedMaxWait caps a revocation feed long poll.
	FeedMaxWait time.Duration
	// MaintenanceInterval is how often expired sessions and revocations are pruned and the
	// active-sessions gauge recounted.
	MaintenanceInterval time.Duration

	// RefreshIPLimit and RefreshSessionLimit bound POST /auth/refresh per client IP and per
	// session, in memory per replica. A client refreshes about once per access-token TTL;
	// the per-session bucket stops a loop (or a stolen token being hammered) from turning
	// into database load, and the per-IP one leaves room for many users behind one NAT.
	RefreshIPLimit      ratelimit.Limit
	RefreshSessionLimit ratelimit.Limit
}

// DefaultSessionsConfig returns the defaults: no internal authentication (the internal
// listener defaults to loopback), 50ms feed polls, 30s long polls, maintenance every minute,
// and refreshes limited to 300 a minute per client IP and 10 a minute per session.
func DefaultSessionsConfig() SessionsConfig {
	return SessionsConfig{
		InternalAuth:        InternalAuthNone,
		InternalAudience:    internalauth.DefaultAudience,
		FeedPollInterval:    50 * time.Millisecond,
		FeedMaxWait:         30 * time.Second,
		MaintenanceInterval: time.Minute,
		RefreshIPLimit:      ratelimit.Limit{Events: 300, Per: time.Minute, Burst: 300},
		RefreshSessionLimit: ratelimit.Limit{Events: 10, Per: time.Minute, Burst: 10},
	}
}

// Validate returns every problem with c; internalAddr is the internal listener's address.
func (c *SessionsConfig) Validate(internalAddr string) error {
	var errs []error
	add := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	switch c.InternalAuth {
	case InternalAuthNone:
		if !loopback(internalAddr) {
			add("internal-auth %q requires a loopback internal-addr (127.0.0.1:3503, [::1]:3503 or localhost:3503), not %q; use %q in Kubernetes",
				InternalAuthNone, internalAddr, InternalAuthTokenReview)
		}
	case InternalAuthTokenReview:
		if strings.TrimSpace(c.InternalAudience) == "" {
			add("internal-audience is required with internal-auth %s", InternalAuthTokenReview)
		}
		if err := internalauth.ParseAllowed(c.InternalAllowed); err != nil {
			add("internal-allowed: %v", err)
		}
	default:
		add("internal-auth %q must be %q or %q", c.InternalAuth, InternalAuthNone, InternalAuthTokenReview)
	}
	if c.FeedPollInterval < 10*time.Millisecond || c.FeedPollInterval > 10*time.Second {
		add("revocation-poll-interval %s must be between 10ms and 10s", c.FeedPollInterval)
	}
	if c.FeedMaxWait < time.Second || c.FeedMaxWait > 5*time.Minute {
		add("revocation-max-wait %s must be between 1s and 5m", c.FeedMaxWait)
	}
	if c.MaintenanceInterval < time.Second {
		add("session-maintenance-interval %s must be at least 1s", c.MaintenanceInterval)
	}
	return errors.Join(errs...)
}

// loopback reports whether addr (host:port) listens on loopback only.
func loopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.IsLoopback()
}
