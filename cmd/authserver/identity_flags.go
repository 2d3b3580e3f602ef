package main

import (
	"flag"
	"fmt"
	"net/netip"
	"strconv"
	"strings"

	"github.com/authmesh/authmesh/authserver"
)

// identityFlags adds the flags of the identity flows (package authserver/identity) and of the
// client IP (trusted proxies) to fs.
func identityFlags(fs *flag.FlagSet, cfg *authserver.Config) {
	fs.Func("trusted-proxies", "comma-separated proxies (CIDRs or IPs) whose X-Forwarded-For names the client IP; empty trusts none", func(v string) error {
		var prefixes []netip.Prefix
		for _, item := range splitList(v) {
			p, err := parsePrefix(item)
			if err != nil {
				return err
			}
			prefixes = append(prefixes, p)
		}
		cfg.TrustedProxies = prefixes
		return nil
	})

	id := &cfg.Identity
	fs.StringVar(&id.SMTP.Host, "smtp-host", id.SMTP.Host, "SMTP server for login codes and unlock links; empty: no mail (logins needing a code answer EMAIL_UNAVAILABLE). make dev: 127.0.0.1 (cmd/devmail)")
	fs.IntVar(&id.SMTP.Port, "smtp-port", id.SMTP.Port, "SMTP port (make dev: 1025)")
	fs.StringVar(&id.SMTP.Username, "smtp-username", id.SMTP.Username, "SMTP user; empty: no authentication")
	fs.StringVar(&id.SMTP.Password, "smtp-password", id.SMTP.Password, "SMTP password (prefer the environment variable AUTHMESH_SMTP_PASSWORD)")
	fs.StringVar(&id.SMTP.TLS, "smtp-tls", id.SMTP.TLS, "SMTP TLS: starttls (required), opportunistic, tls (implicit, e.g. port 465) or none (make dev)")
	fs.DurationVar(&id.SMTP.Timeout, "smtp-timeout", id.SMTP.Timeout, "SMTP connect and command timeout")

	fs.Func("argon2-memory-kib", fmt.Sprintf("argon2id memory of new password hashes in KiB (default %d; at least OWASP's 19456)", id.Password.Memory), uint32Flag(&id.Password.Memory))
	fs.Func("argon2-time", fmt.Sprintf("argon2id passes of new password hashes (default %d; at least 2)", id.Password.Time), uint32Flag(&id.Password.Time))
	fs.Func("argon2-threads", fmt.Sprintf("argon2id lanes of new password hashes (default %d)", id.Password.Threads), func(v string) error {
		n, err := strconv.ParseUint(v, 10, 8)
		id.Password.Threads = uint8(n)
		return err
	})
	fs.IntVar(&id.PasswordConcurrency, "password-hash-concurrency", id.PasswordConcurrency, "most password hashes computed at once (each takes argon2-memory-kib); 0: GOMAXPROCS")

	rl := &id.RateLimits
	for _, l := range []struct {
		name, what string
		v          flag.Value
	}{
		{"rate-limit-signup-ip", "signups per client IP", &rl.SignupIP},
		{"rate-limit-signup-account", "signups per email", &rl.SignupAccount},
		{"rate-limit-login-ip", "logins per client IP", &rl.LoginIP},
		{"rate-limit-login-account", "logins per username, email or mobile", &rl.LoginAccount},
		{"rate-limit-verify-ip", "code checks per client IP", &rl.VerifyIP},
		{"rate-limit-verify-account", "code checks per user", &rl.VerifyAccount},
		{"rate-limit-unlock-ip", "unlock requests per client IP", &rl.UnlockIP},
		{"rate-limit-unlock-account", "unlock requests per token", &rl.UnlockAccount},
	} {
		fs.Var(l.v, l.name, l.what+", per replica: <events>/<period>[,burst=<n>] or off")
	}
	fs.IntVar(&id.RateLimitMaxKeys, "rate-limit-max-keys", id.RateLimitMaxKeys, "most clients or accounts each rate limit remembers (least recently seen forgotten first)")
}

func uint32Flag(dst *uint32) func(string) error {
	return func(v string) error {
		n, err := strconv.ParseUint(v, 10, 32)
		*dst = uint32(n)
		return err
	}
}

// parsePrefix reads a CIDR, or an IP as a single-address prefix.
func parsePrefix(s string) (netip.Prefix, error) {
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		return p.Masked(), err
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("trusted proxy %q is neither a CIDR nor an IP", s)
	}
	a = a.Unmap()
	return netip.PrefixFrom(a, a.BitLen()), nil
}
