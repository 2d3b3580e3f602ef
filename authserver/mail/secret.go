package mail

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Keys of a tenant's SMTP Secret (spec.email.smtpSecretRef).
const (
	SecretKeyHost     = "host"     // required
	SecretKeyPort     = "port"     // default 587
	SecretKeyUsername = "username" // optional
	SecretKeyPassword = "password" // with username
	SecretKeyTLS      = "tls"      // starttls (default), opportunistic, tls or none
)

// DefaultTimeout bounds connecting and each SMTP command of a tenant's own SMTP server.
const DefaultTimeout = 10 * time.Second

// FromSecret reads a tenant's SMTP server from its Secret's data. Errors name the key at
// fault and never quote a value.
func FromSecret(data map[string][]byte) (SMTPConfig, error) {
	get := func(k string) string { return strings.TrimSpace(string(data[k])) }
	cfg := SMTPConfig{
		Host: get(SecretKeyHost), Port: 587, TLS: TLSStartTLS, Timeout: DefaultTimeout,
		Username: get(SecretKeyUsername), Password: string(data[SecretKeyPassword]),
	}
	if cfg.Host == "" {
		return SMTPConfig{}, fmt.Errorf("key %q (the SMTP server's host name) is missing", SecretKeyHost)
	}
	if p := get(SecretKeyPort); p != "" {
		n, err := strconv.Atoi(p)
		if err != nil {
			return SMTPConfig{}, fmt.Errorf("key %q must be a port number", SecretKeyPort)
		}
		cfg.Port = n
	}
	if mode := get(SecretKeyTLS); mode != "" {
		cfg.TLS = mode
	}
	if err := cfg.Validate(); err != nil {
		return SMTPConfig{}, err
	}
	return cfg, nil
}

// Unavailable is a Sender whose every Send fails with err, for a tenant whose own SMTP server
// cannot be used: its mail must not silently go out through another server.
func Unavailable(err error) Sender {
	return SenderFunc(func(ctx context.Context, m Message) error { return fmt.Errorf("mail: %w", err) })
}
