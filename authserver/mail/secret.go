package mail

import (
	"context"
	"fmt"
	"time"

	"github.com/authmesh/authmesh/internal/smtpsecret"
)

// DefaultTimeout bounds connecting and each SMTP command of a tenant's own SMTP server.
const DefaultTimeout = 10 * time.Second

// FromSecret reads a tenant's SMTP server from its Secret's data (keys and checks: package
// internal/smtpsecret). Errors name the key at fault and never quote a value.
func FromSecret(data map[string][]byte) (SMTPConfig, error) {
	s, err := smtpsecret.Parse(data)
	if err != nil {
		return SMTPConfig{}, err
	}
	cfg := SMTPConfig{Host: s.Host, Port: s.Port, Username: s.Username, Password: s.Password, TLS: s.TLS, Timeout: DefaultTimeout}
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
