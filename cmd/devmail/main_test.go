package main

import (
	"encoding/json"
	"net/smtp"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/authmesh/authmesh/internal/mailcapture"
)

func TestMailboxGetsOneJSONLinePerMessage(t *testing.T) {
	path := filepath.Join(t.TempDir(), "mailbox.jsonl")
	box := &mailboxFile{path: path}
	srv, err := mailcapture.Start("127.0.0.1:0", func(m mailcapture.Message) {
		if err := box.append(m); err != nil {
			t.Error(err)
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Stop()
	for _, code := range []string{"111111", "222222"} {
		msg := "To: testuser@example.com\r\nSubject: Your login code\r\n\r\nYour code is " + code + ".\r\n"
		if err := smtp.SendMail(srv.Addr, nil, "no-reply@example.com", []string{"testuser@example.com"}, []byte(msg)); err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(5 * time.Second)
	var lines []string
	for time.Now().Before(deadline) {
		data, _ := os.ReadFile(path)
		if lines = strings.Split(strings.TrimSpace(string(data)), "\n"); len(lines) == 2 {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if len(lines) != 2 {
		t.Fatalf("mailbox has %d lines, want 2", len(lines))
	}
	var last struct{ To, Subject, Text string }
	if err := json.Unmarshal([]byte(lines[1]), &last); err != nil {
		t.Fatal(err)
	}
	if last.To != "testuser@example.com" || last.Subject != "Your login code" || !strings.Contains(last.Text, "222222") {
		t.Fatalf("last mailbox line = %+v", last)
	}
}
