// Package smtpsecret owns the shape of the Secret a Tenant names in spec.email.smtpSecretRef:
// its keys, their defaults and what makes one usable. The controller reports on it (the
// Tenant's EmailReady condition) and the auth server sends through it (authserver/mail), so
// both read it with this one function.
package smtpsecret

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// Keys of the Secret.
const (
	KeyHost     = "host"     // required
	KeyPort     = "port"     // default 587
	KeyUsername = "username" // optional
	KeyPassword = "password" // only with a username
	KeyTLS      = "tls"      // a TLS mode; default starttls
)

// TLS modes.
const (
	TLSStartTLS      = "starttls"      // STARTTLS required
	TLSOpportunistic = "opportunistic" // STARTTLS when the server offers it
	TLSImplicit      = "tls"           // TLS from the first byte (SMTPS, usually port 465)
	TLSNone          = "none"          // plain text
)

// ValidTLS reports whether mode is one of the TLS modes.
func ValidTLS(mode string) bool {
	switch mode {
	case TLSStartTLS, TLSOpportunistic, TLSImplicit, TLSNone:
		return true
	}
	return false
}

// Server is an SMTP server as the Secret describes it.
type Server struct {
	Host     string
	Port     int
	Username string
	Password string
	TLS      string
}

// Parse reads a Secret's data. Its errors name the key at fault and never quote a value.
func Parse(data map[string][]byte) (Server, error) {
	get := func(k string) string { return strings.TrimSpace(string(data[k])) }
	s := Server{Host: get(KeyHost), Port: 587, TLS: TLSStartTLS, Username: get(KeyUsername), Password: string(data[KeyPassword])}
	var errs []error
	if s.Host == "" {
		errs = append(errs, fmt.Errorf("key %q (the SMTP server's host name) is missing", KeyHost))
	}
	if p := get(KeyPort); p != "" {
		n, err := strconv.Atoi(p)
		switch {
		case err != nil:
			errs = append(errs, fmt.Errorf("key %q must be a port number", KeyPort))
		case n < 1 || n > 65535:
			errs = append(errs, fmt.Errorf("key %q must be between 1 and 65535", KeyPort))
		default:
			s.Port = n
		}
	}
	if mode := get(KeyTLS); mode != "" {
		if !ValidTLS(mode) {
			errs = append(errs, fmt.Errorf("key %q must be a TLS mode: %s, %s, %s or %s", KeyTLS, TLSStartTLS, TLSOpportunistic, TLSImplicit, TLSNone))
		}
		s.TLS = mode
	}
	if s.Password != "" && s.Username == "" {
		errs = append(errs, fmt.Errorf("key %q is set without key %q", KeyPassword, KeyUsername))
	}
	if err := errors.Join(errs...); err != nil {
		return Server{}, err
	}
	return s, nil
}
