package testenv

import "github.com/authmesh/authmesh/internal/mailcapture"

// SMTPServer is a real SMTP listener on loopback that keeps every message it accepts.
type SMTPServer = mailcapture.Server

// Message is one email the SMTP listener accepted.
type Message = mailcapture.Message

// StartSMTP listens on a free loopback port.
func StartSMTP() (*SMTPServer, error) { return mailcapture.Start("127.0.0.1:0", nil) }
