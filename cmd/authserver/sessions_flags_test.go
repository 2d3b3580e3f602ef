package main

import (
	"slices"
	"testing"
	"time"
)

func TestParseConfigReadsSessionSettings(t *testing.T) {
	env := map[string]string{
		"AUTHMESH_INTERNAL_AUTH":    "tokenreview",
		"AUTHMESH_INTERNAL_ALLOWED": "shop/*, billing/sidecar",
	}
	cfg, err := parseConfig([]string{"-revocation-poll-interval", "75ms", "-internal-addr", ":3503", "-rate-limit-refresh-session", "4/1m"}, func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	s := cfg.Sessions
	if s.InternalAuth != "tokenreview" || !slices.Equal(s.InternalAllowed, []string{"shop/*", "billing/sidecar"}) ||
		s.FeedPollInterval != 75*time.Millisecond || s.InternalAudience != "authmesh-internal" || s.FeedMaxWait != 30*time.Second {
		t.Fatalf("sessions config %+v", s)
	}
	if got := s.RefreshSessionLimit.String(); got != "4/1m0s" {
		t.Errorf("refresh limit per session %q, want 4/1m0s", got)
	}
	if got := s.RefreshIPLimit.String(); got != "300/1m0s" {
		t.Errorf("refresh limit per IP %q, want the default 300/1m0s", got)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatalf("Validate: %v", err)
	}
}
