package main

import (
	"strings"
	"testing"
	"time"

	"github.com/authmesh/authmesh/authserver/ratelimit"
)

func TestAccountFlags(t *testing.T) {
	env := map[string]string{
		"AUTHMESH_AUDIT_RETENTION":          "720h",
		"AUTHMESH_RATE_LIMIT_FORGOT_IP":     "off",
		"AUTHMESH_SET_PASSWORD_TOKEN_TTL":   "24h",
		"AUTHMESH_RATE_LIMIT_RESET_ACCOUNT": "2/1m",
	}
	cfg, err := parseConfig([]string{"-reset-token-ttl", "15m", "-audit-prune-interval", "10m", "-rate-limit-forgot-account", "1/1h"},
		func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	for name, c := range map[string]struct{ got, want any }{
		"reset token ttl (flag)":       {cfg.Account.ResetTokenTTL, 15 * time.Minute},
		"set-password token ttl (env)": {cfg.Account.SetPasswordTokenTTL, 24 * time.Hour},
		"audit retention (env)":        {cfg.Audit.Retention, 720 * time.Hour},
		"audit prune interval (flag)":  {cfg.Audit.PruneInterval, 10 * time.Minute},
		"forgot ip (off)":              {cfg.Account.RateLimits.ForgotIP, ratelimit.Limit{}},
		"forgot account (flag)":        {cfg.Account.RateLimits.ForgotAccount, ratelimit.Limit{Events: 1, Per: time.Hour, Burst: 1}},
		"reset account (env)":          {cfg.Account.RateLimits.ResetAccount, ratelimit.Limit{Events: 2, Per: time.Minute, Burst: 2}},
		"reset ip (default)":           {cfg.Account.RateLimits.ResetIP, ratelimit.Limit{Events: 10, Per: time.Minute, Burst: 10}},
	} {
		if c.got != c.want {
			t.Errorf("%s: got %v, want %v", name, c.got, c.want)
		}
	}
	if err := cfg.Validate(); err != nil {
		t.Errorf("Validate: %v", err)
	}
}

func TestAccountFlagsRefuseBadInput(t *testing.T) {
	cases := map[string]struct {
		args []string
		want string // in the parse or Validate error
	}{
		"reset link too short":        {[]string{"-reset-token-ttl", "1m"}, "reset-token-ttl"},
		"reset link too long":         {[]string{"-reset-token-ttl", "48h"}, "reset-token-ttl"},
		"set-password link too short": {[]string{"-set-password-token-ttl", "10m"}, "set-password-token-ttl"},
		"retention under an hour":     {[]string{"-audit-retention", "30m"}, "audit-retention"},
		"prune too often":             {[]string{"-audit-prune-interval", "1s"}, "audit-prune-interval"},
		"bad rate limit":              {[]string{"-rate-limit-forgot-ip", "often"}, "rate-limit-forgot-ip"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			cfg, err := parseConfig(tc.args, func(string) string { return "" })
			if err == nil {
				err = cfg.Validate()
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want one mentioning %q", err, tc.want)
			}
		})
	}
}

func TestAuditRetentionZeroKeepsForever(t *testing.T) {
	cfg, err := parseConfig([]string{"-audit-retention", "0s"}, func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	if err := cfg.Validate(); err != nil || cfg.Audit.Retention != 0 {
		t.Fatalf("retention %s, Validate: %v; want 0 accepted", cfg.Audit.Retention, err)
	}
}
