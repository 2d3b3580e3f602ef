// Package mail owns sending the auth server's mail over SMTP, through
// github.com/wneessen/go-mail: plain-text messages (login codes, unlock links) from a tenant's
// sender address. What the messages say belongs to the features that send them.
//
// The SMTP server is configured once for the auth server (host, port, credentials, TLS mode:
// starttls (required), opportunistic, tls (implicit, port 465 style) or none). A tenant's
// spec.email.from is the sender, and its spec.email.smtpSecretRef may name a Secret with an
// SMTP server of its own (FromSecret reads it; keys host, port, username, password, tls). A
// tenant whose named server cannot be used gets an Unavailable sender: its mail fails rather
// than leave through a server it did not choose. In dev the
// auth server is pointed at the dev mailer (cmd/devmail, 127.0.0.1:1025, TLS none) like at
// any SMTP server; this package has no dev-only code.
//
// A Sender that is not configured (no host) fails every Send with ErrNotConfigured, so a
// deployment without mail answers logins that need a code with a clear error instead of
// pretending to send one.
package mail
