// Command devmail is the mailer of `make dev` and the kind demo: an SMTP server that delivers
// nothing. Each message the auth server sends (login codes, unlock and reset links) is printed
// to the log and appended as a JSON line {"to", "subject", "text"} to a mailbox file, so a
// person can read it. Dev and demo only; production auth servers send through real SMTP.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"syscall"

	"github.com/authmesh/authmesh/internal/mailcapture"
	"github.com/authmesh/authmesh/internal/version"
)

func main() {
	addr := flag.String("listen", "127.0.0.1:1025", "SMTP address to accept mail on")
	mailbox := flag.String("mailbox", ".dev/mailbox.jsonl", "file the messages are appended to, one JSON object per line")
	showVersion := flag.Bool("version", false, "print the version and exit")
	flag.Parse()
	if *showVersion {
		fmt.Println(version.String("devmail"))
		return
	}
	logger := slog.New(slog.NewTextHandler(os.Stderr, nil)).With("component", "devmail")
	if err := run(*addr, *mailbox, logger); err != nil {
		logger.Error("stopped", "err", err)
		os.Exit(1)
	}
}

func run(addr, mailbox string, logger *slog.Logger) error {
	if err := os.MkdirAll(filepath.Dir(mailbox), 0o700); err != nil {
		return err
	}
	box := &mailboxFile{path: mailbox}
	srv, err := mailcapture.Start(addr, func(m mailcapture.Message) {
		if err := box.append(m); err != nil {
			logger.Error("writing the mailbox", "err", err)
		}
		logger.Info("mail", "to", strings.Join(m.To, ","), "subject", m.Subject)
		fmt.Fprintf(os.Stderr, "----- mail to %s: %s\n%s\n-----\n", strings.Join(m.To, ", "), m.Subject, strings.TrimSpace(m.Text))
	})
	if err != nil {
		return err
	}
	logger.Info("dev mailer listening", "addr", srv.Addr, "mailbox", mailbox)
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	<-sig
	return srv.Stop()
}

// mailboxFile appends messages as JSON lines.
type mailboxFile struct {
	path string
	mu   sync.Mutex
}

func (b *mailboxFile) append(m mailcapture.Message) error {
	line, err := json.Marshal(map[string]string{"to": strings.Join(m.To, ","), "subject": m.Subject, "text": m.Text})
	if err != nil {
		return err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	f, err := os.OpenFile(b.path, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.Write(append(line, '\n')); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
