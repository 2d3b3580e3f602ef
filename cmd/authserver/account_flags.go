package main

import (
	"flag"

	"github.com/authmesh/authmesh/authserver"
)

// accountFlags adds the flags of account management (package authserver/account) and of the
// audit trail (package authserver/audit) to fs.
func accountFlags(fs *flag.FlagSet, cfg *authserver.Config) {
	a := &cfg.Account
	fs.DurationVar(&a.ResetTokenTTL, "reset-token-ttl", a.ResetTokenTTL, "how long a forgot-password link works (5m to 24h)")
	fs.DurationVar(&a.SetPasswordTokenTTL, "set-password-token-ttl", a.SetPasswordTokenTTL, "how long the set-password link mailed to a tenant's bootstrap admin works (1h to 720h)")
	rl := &a.RateLimits
	for _, l := range []struct {
		name, what string
		v          flag.Value
	}{
		{"rate-limit-forgot-ip", "forgot-password requests per client IP", &rl.ForgotIP},
		{"rate-limit-forgot-account", "forgot-password requests per username, email or mobile", &rl.ForgotAccount},
		{"rate-limit-reset-ip", "password reset requests per client IP", &rl.ResetIP},
		{"rate-limit-reset-account", "password reset requests per token", &rl.ResetAccount},
	} {
		fs.Var(l.v, l.name, l.what+", per replica: <events>/<period>[,burst=<n>] or off")
	}

	fs.DurationVar(&cfg.Audit.Retention, "audit-retention", cfg.Audit.Retention, "how long audit events are kept; 0 keeps them forever")
	fs.DurationVar(&cfg.Audit.PruneInterval, "audit-prune-interval", cfg.Audit.PruneInterval, "how often audit events past the retention are deleted")
}
