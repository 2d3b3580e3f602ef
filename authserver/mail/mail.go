package mail

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"strings"
	"time"

	gomail "github.com/wneessen/go-mail"

	"github.com/authmesh/authmesh/internal/smtpsecret"
)

// Message is one plain-text mail.
type Message struct {
	From    string
	To      string
	Subject string
	Text    string
}

// Sender sends mail.
type Sender interface {
	Send(ctx context.Context, m Message) error
}

// SenderFunc adapts a function to Sender.
type SenderFunc func(ctx context.Context, m Message) error

// Send implements Sender.
func (f SenderFunc) Send(ctx context.Context, m Message) error { return f(ctx, m) }

// TLS modes (the same words a tenant's SMTP Secret uses).
const (
	TLSStartTLS      = smtpsecret.TLSStartTLS      // STARTTLS required
	TLSOpportunistic = smtpsecret.TLSOpportunistic // STARTTLS when the server offers it
	TLSImplicit      = smtpsecret.TLSImplicit      // TLS from the first byte (SMTPS, usually port 465)
	TLSNone          = smtpsecret.TLSNone          // plain text: loopback dev mailers only
)

// ErrNotConfigured is returned by a Sender without an SMTP host.
var ErrNotConfigured = errors.New("mail: no SMTP server configured")

// SMTPConfig is the SMTP server mail goes through.
type SMTPConfig struct {
	Host     string // empty: not configured
	Port     int
	Username string // empty: no authentication
	Password string
	TLS      string // one of the TLS modes
	// Timeout bounds connecting and each SMTP command.
	Timeout time.Duration
}

// Validate returns every problem with c; an empty Host is valid (mail not configured).
func (c SMTPConfig) Validate() error {
	if c.Host == "" {
		return nil
	}
	var errs []error
	if c.Port < 1 || c.Port > 65535 {
		errs = append(errs, fmt.Errorf("smtp port %d must be between 1 and 65535", c.Port))
	}
	if !smtpsecret.ValidTLS(c.TLS) {
		errs = append(errs, fmt.Errorf("smtp TLS mode %q must be %s, %s, %s or %s", c.TLS, TLSStartTLS, TLSOpportunistic, TLSImplicit, TLSNone))
	}
	if c.Timeout <= 0 {
		errs = append(errs, errors.New("smtp timeout must be positive"))
	}
	if c.Password != "" && c.Username == "" {
		errs = append(errs, errors.New("smtp password is set without a username"))
	}
	return errors.Join(errs...)
}

// SMTP sends each message over a new SMTP connection.
type SMTP struct {
	cfg SMTPConfig
}

// NewSMTP returns a Sender for cfg.
func NewSMTP(cfg SMTPConfig) (*SMTP, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &SMTP{cfg: cfg}, nil
}

// Configured reports whether s has an SMTP server to send to.
func (s *SMTP) Configured() bool { return s.cfg.Host != "" }

// Send implements Sender.
func (s *SMTP) Send(ctx context.Context, m Message) error {
	if s.cfg.Host == "" {
		return ErrNotConfigured
	}
	msg := gomail.NewMsg()
	if err := msg.From(m.From); err != nil {
		return fmt.Errorf("mail: sender %q: %w", m.From, err)
	}
	if err := msg.To(m.To); err != nil {
		return fmt.Errorf("mail: recipient: %w", err)
	}
	msg.Subject(m.Subject)
	msg.SetDate()
	msg.SetMessageID()
	msg.SetBodyString(gomail.TypeTextPlain, m.Text)

	opts := []gomail.Option{
		gomail.WithPort(s.cfg.Port),
		gomail.WithTimeout(s.cfg.Timeout),
		gomail.WithTLSConfig(&tls.Config{ServerName: s.cfg.Host, MinVersion: tls.VersionTLS12}),
	}
	switch s.cfg.TLS {
	case TLSStartTLS:
		opts = append(opts, gomail.WithTLSPolicy(gomail.TLSMandatory))
	case TLSOpportunistic:
		opts = append(opts, gomail.WithTLSPolicy(gomail.TLSOpportunistic))
	case TLSImplicit:
		opts = append(opts, gomail.WithSSL())
	case TLSNone:
		opts = append(opts, gomail.WithTLSPolicy(gomail.NoTLS))
	}
	if s.cfg.Username != "" {
		opts = append(opts, gomail.WithSMTPAuth(gomail.SMTPAuthAutoDiscover),
			gomail.WithUsername(s.cfg.Username), gomail.WithPassword(s.cfg.Password))
	}
	client, err := gomail.NewClient(s.cfg.Host, opts...)
	if err != nil {
		return fmt.Errorf("mail: SMTP client for %s: %w", s.cfg.Host, err)
	}
	if err := client.DialAndSendWithContext(ctx, msg); err != nil {
		return fmt.Errorf("mail: sending to %s via %s:%d: %w", domainOf(m.To), s.cfg.Host, s.cfg.Port, err)
	}
	return nil
}

// domainOf names only the recipient's domain, for errors that end up in logs.
func domainOf(addr string) string {
	if _, d, ok := strings.Cut(addr, "@"); ok {
		return "*@" + d
	}
	return "recipient"
}
