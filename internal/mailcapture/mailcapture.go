// Package mailcapture is a real SMTP server that keeps what it accepts instead of delivering
// it: the test harness uses it to read the codes and links authmesh mails, and the dev mailer
// (make dev) to print them and append them to a mailbox file. It is never part of a production
// binary.
package mailcapture

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"io"
	"mime"
	"mime/multipart"
	"mime/quotedprintable"
	"net"
	"net/mail"
	"strings"
	"sync"

	"github.com/emersion/go-smtp"
)

// Message is one email the SMTP listener accepted.
type Message struct {
	From    string
	To      []string
	Subject string
	// Text is the decoded text/plain body (the first text/plain part of a multipart message).
	Text string
	// Raw is the message as it arrived.
	Raw []byte
}

// Server is a real SMTP listener that keeps every message it accepts.
type Server struct {
	// Addr is host:port to send to.
	Addr string
	// OnMessage, when set before Start returns, is called with each accepted message.
	OnMessage func(Message)

	server *smtp.Server
	mu     sync.Mutex
	msgs   []Message
	notify chan struct{} // closed and replaced whenever a message arrives
}

// Start listens on addr ("127.0.0.1:0" picks a free port); onMessage may be nil.
func Start(addr string, onMessage func(Message)) (*Server, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	s := &Server{Addr: ln.Addr().String(), OnMessage: onMessage, notify: make(chan struct{})}
	s.server = smtp.NewServer(s)
	s.server.Domain = "localhost"
	s.server.AllowInsecureAuth = true
	s.server.MaxMessageBytes = 10 << 20
	go func() { _ = s.server.Serve(ln) }()
	return s, nil
}

// Stop closes the listener.
func (s *Server) Stop() error { return s.server.Close() }

// Messages returns every message accepted so far, oldest first.
func (s *Server) Messages() []Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Message(nil), s.msgs...)
}

// WaitFor returns the first message accepted for recipient (compared case-insensitively) after
// the first skip such messages, waiting until ctx ends.
func (s *Server) WaitFor(ctx context.Context, recipient string, skip int) (Message, error) {
	for {
		s.mu.Lock()
		seen := 0
		for _, m := range s.msgs {
			for _, to := range m.To {
				if strings.EqualFold(to, recipient) {
					if seen == skip {
						s.mu.Unlock()
						return m, nil
					}
					seen++
					break
				}
			}
		}
		wait := s.notify
		s.mu.Unlock()
		select {
		case <-ctx.Done():
			return Message{}, errors.New("mailcapture: no mail for " + recipient + ": " + ctx.Err().Error())
		case <-wait:
		}
	}
}

func (s *Server) add(m Message) {
	s.mu.Lock()
	s.msgs = append(s.msgs, m)
	close(s.notify)
	s.notify = make(chan struct{})
	s.mu.Unlock()
	if s.OnMessage != nil {
		s.OnMessage(m)
	}
}

// NewSession implements smtp.Backend.
func (s *Server) NewSession(*smtp.Conn) (smtp.Session, error) {
	return &smtpSession{server: s}, nil
}

type smtpSession struct {
	server *Server
	from   string
	to     []string
}

func (ss *smtpSession) AuthMechanisms() []string { return nil }
func (ss *smtpSession) Reset()                   { ss.from, ss.to = "", nil }
func (ss *smtpSession) Logout() error            { return nil }

func (ss *smtpSession) Mail(from string, _ *smtp.MailOptions) error {
	ss.from = from
	return nil
}

func (ss *smtpSession) Rcpt(to string, _ *smtp.RcptOptions) error {
	ss.to = append(ss.to, to)
	return nil
}

func (ss *smtpSession) Data(r io.Reader) error {
	raw, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	m := Message{From: ss.from, To: append([]string(nil), ss.to...), Raw: raw}
	if parsed, err := mail.ReadMessage(bytes.NewReader(raw)); err == nil {
		dec := new(mime.WordDecoder)
		if subject, err := dec.DecodeHeader(parsed.Header.Get("Subject")); err == nil {
			m.Subject = subject
		}
		m.Text = textBody(parsed.Header, parsed.Body)
	}
	ss.server.add(m)
	return nil
}

// textBody extracts the text/plain content of a message or of its first text/plain part.
func textBody(h mail.Header, body io.Reader) string {
	mediaType, params, err := mime.ParseMediaType(h.Get("Content-Type"))
	if err != nil {
		mediaType = "text/plain"
	}
	if strings.HasPrefix(mediaType, "multipart/") {
		mr := multipart.NewReader(body, params["boundary"])
		for {
			p, err := mr.NextPart()
			if err != nil {
				return ""
			}
			if text := textBody(mail.Header(p.Header), p); text != "" {
				return text
			}
		}
	}
	if mediaType != "text/plain" {
		return ""
	}
	switch strings.ToLower(h.Get("Content-Transfer-Encoding")) {
	case "quoted-printable":
		body = quotedprintable.NewReader(body)
	case "base64":
		body = base64.NewDecoder(base64.StdEncoding, body)
	}
	b, _ := io.ReadAll(body)
	return string(b)
}
