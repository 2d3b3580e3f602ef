package authserver

import (
	"errors"
	"fmt"
	"time"

	"github.com/authmesh/authmesh/authserver/mail"
	"github.com/authmesh/authmesh/authserver/password"
	"github.com/authmesh/authmesh/authserver/ratelimit"
)

// IdentityConfig configures the identity flows: password hashing, the SMTP server mail goes
// through, and the request rate limits of signup, login, verify and unlock.
type IdentityConfig struct {
	// Password are the argon2id parameters of new hashes (at least OWASP's minimum); hashes
	// made with weaker ones are remade at the next successful login.
	Password password.Params
	// PasswordConcurrency bounds the hashes computed at once (each takes Password.Memory KiB);
	// 0 means GOMAXPROCS.
	PasswordConcurrency int

	// SMTP is the mail server; an empty host means no mail (logins that need a code then fail
	// with EMAIL_UNAVAILABLE).
	SMTP mail.SMTPConfig

	// RateLimits are per client IP and per account, in memory per replica.
	RateLimits RateLimits
	// RateLimitMaxKeys bounds the keys each rate limiter remembers.
	RateLimitMaxKeys int
}

// RateLimits are the token buckets of the identity routes. "Account" is the email for signup,
// the identifier given for login, the user of the login attempt for verify, and the token for
// unlock.
type RateLimits struct {
	SignupIP, SignupAccount ratelimit.Limit
	LoginIP, LoginAccount   ratelimit.Limit
	VerifyIP, VerifyAccount ratelimit.Limit
	UnlockIP, UnlockAccount ratelimit.Limit
}

// DefaultIdentityConfig returns the defaults: OWASP's argon2id parameters, no SMTP server,
// and rate limits generous for people and tight for scripts.
func DefaultIdentityConfig() IdentityConfig {
	per := func(n int, d time.Duration) ratelimit.Limit { return ratelimit.Limit{Events: n, Per: d, Burst: n} }
	return IdentityConfig{
		Password: password.DefaultParams,
		SMTP:     mail.SMTPConfig{Port: 587, TLS: mail.TLSStartTLS, Timeout: 10 * time.Second},
		RateLimits: RateLimits{
			SignupIP: per(10, time.Minute), SignupAccount: per(3, time.Minute),
			LoginIP: per(30, time.Minute), LoginAccount: per(10, time.Minute),
			VerifyIP: per(30, time.Minute), VerifyAccount: per(10, time.Minute),
			UnlockIP: per(10, time.Minute), UnlockAccount: per(5, time.Minute),
		},
		RateLimitMaxKeys: 100_000,
	}
}

// Validate returns every problem with c.
func (c *IdentityConfig) Validate() error {
	var errs []error
	if err := c.Password.Validate(); err != nil {
		errs = append(errs, err)
	}
	if c.PasswordConcurrency < 0 {
		errs = append(errs, errors.New("password-hash-concurrency must not be negative"))
	}
	if err := c.SMTP.Validate(); err != nil {
		errs = append(errs, err)
	}
	if c.RateLimitMaxKeys < 1 {
		errs = append(errs, fmt.Errorf("rate-limit-max-keys %d must be at least 1", c.RateLimitMaxKeys))
	}
	return errors.Join(errs...)
}
