package authserver

import (
	"errors"
	"fmt"
	"time"

	"github.com/authmesh/authmesh/authserver/ratelimit"
)

// AccountConfig configures account management (package account): password reset links and
// the rate limits of forgot-password and reset.
type AccountConfig struct {
	// ResetTokenTTL is how long a forgot-password link works.
	ResetTokenTTL time.Duration
	// SetPasswordTokenTTL is how long the set-password link mailed to a tenant's bootstrap
	// admin works; when it lapses, the admin uses forgot-password.
	SetPasswordTokenTTL time.Duration
	// RateLimits are per client IP and per account, in memory per replica.
	RateLimits AccountRateLimits
}

// AccountRateLimits are the token buckets of the account routes. "Account" is the identifier
// given for forgot-password and the token for reset.
type AccountRateLimits struct {
	ForgotIP, ForgotAccount ratelimit.Limit
	ResetIP, ResetAccount   ratelimit.Limit
}

// DefaultAccountConfig returns the defaults: reset links for 30 minutes, set-password links
// for 3 days, and rate limits that let a person retry and stop a script from mail-bombing.
func DefaultAccountConfig() AccountConfig {
	per := func(n int, d time.Duration) ratelimit.Limit { return ratelimit.Limit{Events: n, Per: d, Burst: n} }
	return AccountConfig{
		ResetTokenTTL:       30 * time.Minute,
		SetPasswordTokenTTL: 72 * time.Hour,
		RateLimits: AccountRateLimits{
			ForgotIP: per(10, time.Minute), ForgotAccount: per(3, 15*time.Minute),
			ResetIP: per(10, time.Minute), ResetAccount: per(5, time.Minute),
		},
	}
}

// Validate returns every problem with c.
func (c *AccountConfig) Validate() error {
	var errs []error
	if c.ResetTokenTTL < 5*time.Minute || c.ResetTokenTTL > 24*time.Hour {
		errs = append(errs, fmt.Errorf("reset-token-ttl %s must be between 5m and 24h", c.ResetTokenTTL))
	}
	if c.SetPasswordTokenTTL < time.Hour || c.SetPasswordTokenTTL > 30*24*time.Hour {
		errs = append(errs, fmt.Errorf("set-password-token-ttl %s must be between 1h and 720h", c.SetPasswordTokenTTL))
	}
	return errors.Join(errs...)
}

// AuditConfig configures the audit trail (package audit).
type AuditConfig struct {
	// Retention is how long audit events are kept; 0 keeps them forever.
	Retention time.Duration
	// PruneInterval is how often events past the retention are deleted.
	PruneInterval time.Duration
}

// DefaultAuditConfig returns the defaults: events kept 90 days, pruned hourly.
func DefaultAuditConfig() AuditConfig {
	return AuditConfig{Retention: 90 * 24 * time.Hour, PruneInterval: time.Hour}
}

// Validate returns every problem with c.
func (c *AuditConfig) Validate() error {
	var errs []error
	if c.Retention != 0 && c.Retention < time.Hour {
		errs = append(errs, fmt.Errorf("audit-retention %s must be 0 (keep forever) or at least 1h", c.Retention))
	}
	if c.PruneInterval < time.Minute {
		errs = append(errs, fmt.Errorf("audit-prune-interval %s must be at least 1m", c.PruneInterval))
	}
	return errors.Join(errs...)
}
