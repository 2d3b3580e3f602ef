package guard

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"testing"
	"time"
)

// feedServer speaks the revocation feed protocol over real HTTP from an in-memory log.
type feedServer struct {
	*httptest.Server
	mu      sync.Mutex
	log     []RevokedSession // entry i has seq i+1
	pruned  int64            // entries with seq <= pruned are gone
	changed chan struct{}
	auth    []string
}

func newFeedServer(t *testing.T) *feedServer {
	fs := &feedServer{changed: make(chan struct{})}
	fs.Server = httptest.NewServer(http.HandlerFunc(fs.serve))
	t.Cleanup(fs.Close)
	return fs
}

func (fs *feedServer) revoke(sid string, exp int64) {
	fs.mu.Lock()
	fs.log = append(fs.log, RevokedSession{SessionID: sid, Exp: exp})
	close(fs.changed)
	fs.changed = make(chan struct{})
	fs.mu.Unlock()
}

func (fs *feedServer) serve(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != "/internal/v1/tenants/darmist1/revocations" {
		http.NotFound(w, r)
		return
	}
	after, _ := strconv.ParseInt(r.URL.Query().Get("after"), 10, 64)
	wait, _ := strconv.Atoi(r.URL.Query().Get("wait"))
	deadline := time.After(time.Duration(wait) * time.Second)
	for {
		fs.mu.Lock()
		fs.auth = append(fs.auth, r.Header.Get("Authorization"))
		seq := int64(len(fs.log))
		changed := fs.changed
		var feed RevocationFeed
		if after < fs.pruned {
			feed = RevocationFeed{Seq: seq, Reset: true, Revoked: append([]RevokedSession{}, fs.log[fs.pruned:]...)}
		} else if seq > after {
			feed = RevocationFeed{Seq: seq, Revoked: append([]RevokedSession{}, fs.log[after:]...)}
		}
		fs.mu.Unlock()
		if feed.Seq > 0 || feed.Reset {
			_ = json.NewEncoder(w).Encode(feed)
			return
		}
		select {
		case <-changed:
		case <-deadline:
			_ = json.NewEncoder(w).Encode(RevocationFeed{Seq: seq, Revoked: []RevokedSession{}})
			return
		case <-r.Context().Done():
			return
		}
	}
}

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting until %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestRevocationFollowerSeesRevocationsPromptly(t *testing.T) {
	fs := newFeedServer(t)
	exp := time.Now().Add(time.Hour).Unix()
	fs.revoke("before-start", exp)
	f := NewRevocationFollower(RevocationFollowerConfig{BaseURL: fs.URL, Tenant: "darmist1", Wait: 5 * time.Second})
	ctx := t.Context()
	go f.Run(ctx)
	waitUntil(t, "the first full read", f.Synced)
	if !f.Revoked("before-start") {
		t.Fatal("a session revoked before the follower started is not refused")
	}
	if f.Revoked("alive") {
		t.Fatal("a session never revoked is refused")
	}
	start := time.Now()
	fs.revoke("during", exp)
	waitUntil(t, "the long poll delivers the revocation", func() bool { return f.Revoked("during") })
	if took := time.Since(start); took > time.Second {
		t.Fatalf("a revocation took %s to reach the follower; want well under 1s", took)
	}
}

func TestRevocationFollowerForgetsExpiredEntriesAndHandlesReset(t *testing.T) {
	now := time.Now()
	fs := newFeedServer(t)
	fs.revoke("old", now.Add(-time.Hour).Unix())
	fs.revoke("current", now.Add(time.Hour).Unix())
	fs.mu.Lock()
	fs.pruned = 1 // "old" has been pruned by the server
	fs.mu.Unlock()
	f := NewRevocationFollower(RevocationFollowerConfig{BaseURL: fs.URL, Tenant: "darmist1"})
	if err := f.SyncOnce(t.Context()); err != nil {
		t.Fatal(err)
	}
	if f.Revoked("old") || !f.Revoked("current") {
		t.Fatalf("after a reset: old revoked=%t current revoked=%t; want false, true", f.Revoked("old"), f.Revoked("current"))
	}
	if f.Seq() != 2 {
		t.Fatalf("seq = %d, want 2", f.Seq())
	}
}

func TestRevocationFollowerKeepsStateWhileFeedIsDown(t *testing.T) {
	fs := newFeedServer(t)
	fs.revoke("gone", time.Now().Add(time.Hour).Unix())
	f := NewRevocationFollower(RevocationFollowerConfig{BaseURL: fs.URL, Tenant: "darmist1", RetryDelay: 10 * time.Millisecond})
	if err := f.SyncOnce(t.Context()); err != nil {
		t.Fatal(err)
	}
	fs.Close()
	ctx := t.Context()
	go f.Run(ctx)
	waitUntil(t, "a few failed calls", func() bool { return f.Calls() >= 3 })
	if !f.Revoked("gone") {
		t.Fatal("the follower forgot a revocation when the feed went down")
	}
}

func TestRetryDelayIsJitteredAndCapped(t *testing.T) {
	f := NewRevocationFollower(RevocationFollowerConfig{BaseURL: "http://127.0.0.1:1", Tenant: "t"})
	if f.cfg.RetryDelay != time.Second || f.cfg.MaxRetryDelay != 5*time.Second {
		t.Fatalf("defaults: retry %s, max %s; want 1s, 5s", f.cfg.RetryDelay, f.cfg.MaxRetryDelay)
	}
	seen := map[time.Duration]bool{}
	for range 200 {
		d := jittered(4 * time.Second)
		if d < 2*time.Second || d > 4*time.Second {
			t.Fatalf("jittered(4s) = %s, want within [2s, 4s]", d)
		}
		seen[d] = true
	}
	if len(seen) < 100 {
		t.Errorf("jittered gave only %d distinct pauses in 200: followers would retry in step", len(seen))
	}
}
