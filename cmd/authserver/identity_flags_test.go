package main

import (
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/authmesh/authmesh/authserver/ratelimit"
)

func TestIdentityFlags(t *testing.T) {
	env := map[string]string{
		"AUTHMESH_SMTP_PASSWORD":             "from-env",
		"AUTHMESH_RATE_LIMIT_LOGIN_IP":       "5/1m,burst=2",
		"AUTHMESH_RATE_LIMIT_UNLOCK_IP":      "off",
		"AUTHMESH_ARGON2_MEMORY_KIB":         "65536",
		"AUTHMESH_PASSWORD_HASH_CONCURRENCY": "3",
	}
	cfg, err := parseConfig([]string{
		"-smtp-host", "127.0.0.1", "-smtp-port", "1025", "-smtp-tls", "none", "-smtp-username", "mailer",
		"-trusted-proxies", "10.0.0.0/8, 192.168.1.1", "-argon2-time", "3", "-rate-limit-login-account", "20/1h",
	}, func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	id := cfg.Identity
	if id.SMTP.Host != "127.0.0.1" || id.SMTP.Port != 1025 || id.SMTP.TLS != "none" || id.SMTP.Username != "mailer" || id.SMTP.Password != "from-env" {
		t.Errorf("SMTP %+v", id.SMTP)
	}
	if id.Password.Memory != 65536 || id.Password.Time != 3 || id.Password.Threads != 1 || id.PasswordConcurrency != 3 {
		t.Errorf("password %+v, concurrency %d", id.Password, id.PasswordConcurrency)
	}
	if diff := cmp.Diff([]netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("192.168.1.1/32")}, cfg.TrustedProxies,
		cmp.Comparer(func(a, b netip.Prefix) bool { return a == b })); diff != "" {
		t.Errorf("trusted proxies (-want +got):\n%s", diff)
	}
	for name, c := range map[string]struct{ got, want ratelimit.Limit }{
		"login ip (env)":       {id.RateLimits.LoginIP, ratelimit.Limit{Events: 5, Per: time.Minute, Burst: 2}},
		"login account (flag)": {id.RateLimits.LoginAccount, ratelimit.Limit{Events: 20, Per: time.Hour, Burst: 20}},
		"unlock ip (off)":      {id.RateLimits.UnlockIP, ratelimit.Limit{}},
		"signup ip (default)":  {id.RateLimits.SignupIP, ratelimit.Limit{Events: 10, Per: time.Minute, Burst: 10}},
	} {
		if c.got != c.want {
			t.Errorf("%s: got %+v, want %+v", name, c.got, c.want)
		}
	}
	if err := cfg.Validate(); err != nil {
		t.Errorf("Validate: %v", err)
	}
}

func TestIdentityFlagsRefuseBadInput(t *testing.T) {
	cases := map[string]struct {
		args []string
		want string // in the parse or Validate error
	}{
		"bad proxy":              {[]string{"-trusted-proxies", "proxy.local"}, "trusted proxy"},
		"bad rate limit":         {[]string{"-rate-limit-login-ip", "lots"}, "rate limit"},
		"weak argon2 memory":     {[]string{"-argon2-memory-kib", "4096"}, "argon2id memory"},
		"one argon2 pass":        {[]string{"-argon2-time", "1"}, "argon2id time"},
		"unknown SMTP TLS":       {[]string{"-smtp-host", "mail", "-smtp-tls", "maybe"}, "TLS mode"},
		"SMTP port out of range": {[]string{"-smtp-host", "mail", "-smtp-port", "0"}, "smtp port"},
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
