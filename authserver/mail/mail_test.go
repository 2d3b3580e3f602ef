package mail

import (
	"context"
	"errors"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/authmesh/authmesh/internal/testenv"
)

func TestSMTPSendsPlainTextThroughARealListener(t *testing.T) {
	srv, err := testenv.StartSMTP()
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Stop()
	host, portStr, _ := net.SplitHostPort(srv.Addr)
	port, _ := strconv.Atoi(portStr)
	s, err := NewSMTP(SMTPConfig{Host: host, Port: port, TLS: TLSNone, Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	text := "Your login code is 123456.\nIt expires in 5 minutes.\n"
	if err := s.Send(context.Background(), Message{From: "no-reply@darmist.example", To: "Alice@Example.com", Subject: "Your login code", Text: text}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	got, err := srv.WaitFor(ctx, "alice@example.com", 0)
	if err != nil {
		t.Fatal(err)
	}
	if got.From != "no-reply@darmist.example" || got.Subject != "Your login code" || strings.TrimSpace(strings.ReplaceAll(got.Text, "\r\n", "\n")) != strings.TrimSpace(text) {
		t.Fatalf("got from %q subject %q text %q", got.From, got.Subject, got.Text)
	}
	if !strings.Contains(string(got.Raw), "text/plain") {
		t.Errorf("message is not text/plain:\n%s", got.Raw)
	}
}

func TestSMTPFailures(t *testing.T) {
	unconfigured, _ := NewSMTP(SMTPConfig{})
	if err := unconfigured.Send(context.Background(), Message{From: "a@b.c", To: "d@e.f"}); !errors.Is(err, ErrNotConfigured) {
		t.Fatalf("unconfigured Send: err = %v, want ErrNotConfigured", err)
	}

	// A port nobody listens on.
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	addr := ln.Addr().(*net.TCPAddr)
	ln.Close()
	s, _ := NewSMTP(SMTPConfig{Host: "127.0.0.1", Port: addr.Port, TLS: TLSNone, Timeout: time.Second})
	err := s.Send(context.Background(), Message{From: "a@b.c", To: "secret-person@e.f", Subject: "x", Text: "x"})
	if err == nil {
		t.Fatal("Send to a closed port succeeded")
	}
	if strings.Contains(err.Error(), "secret-person") {
		t.Errorf("error %q names the recipient", err)
	}

	// STARTTLS required, but the listener does not offer it.
	srv, _ := testenv.StartSMTP()
	defer srv.Stop()
	host, portStr, _ := net.SplitHostPort(srv.Addr)
	port, _ := strconv.Atoi(portStr)
	s, _ = NewSMTP(SMTPConfig{Host: host, Port: port, TLS: TLSStartTLS, Timeout: time.Second})
	if err := s.Send(context.Background(), Message{From: "a@b.c", To: "d@e.f", Subject: "x", Text: "x"}); err == nil {
		t.Fatal("Send with required STARTTLS to a server without it succeeded")
	}
}

func TestSMTPConfigValidate(t *testing.T) {
	for name, c := range map[string]SMTPConfig{
		"bad port":          {Host: "h", Port: 0, TLS: TLSNone, Timeout: time.Second},
		"bad TLS":           {Host: "h", Port: 25, TLS: "maybe", Timeout: time.Second},
		"no timeout":        {Host: "h", Port: 25, TLS: TLSNone},
		"password, no user": {Host: "h", Port: 25, TLS: TLSNone, Timeout: time.Second, Password: "p"},
	} {
		if err := c.Validate(); err == nil {
			t.Errorf("%s: Validate accepted %+v", name, c)
		}
	}
	if err := (SMTPConfig{}).Validate(); err != nil {
		t.Errorf("an unconfigured SMTPConfig is refused: %v", err)
	}
}

// TestFromSecret: the Secret's server (parsed by internal/smtpsecret, whose test has the
// table) becomes a config with the default timeout; a bad Secret is an error.
func TestFromSecret(t *testing.T) {
	got, err := FromSecret(map[string][]byte{"host": []byte("smtp.acme.example"), "port": []byte("465"), "tls": []byte("tls"),
		"username": []byte("mailer"), "password": []byte("pw")})
	want := SMTPConfig{Host: "smtp.acme.example", Port: 465, TLS: TLSImplicit, Username: "mailer", Password: "pw", Timeout: DefaultTimeout}
	if err != nil || got != want {
		t.Errorf("FromSecret = %+v, %v; want %+v", got, err, want)
	}
	if _, err := FromSecret(map[string][]byte{"port": []byte("25")}); err == nil || !strings.Contains(err.Error(), `key "host"`) {
		t.Errorf("FromSecret without a host: %v", err)
	}
}
