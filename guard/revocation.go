package guard

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// RevocationFeed is the JSON the auth server's internal revocation feed answers with.
type RevocationFeed struct {
	Seq     int64            `json:"seq"`
	Reset   bool             `json:"reset"`
	Revoked []RevokedSession `json:"revoked"`
}

// RevokedSession is one revoked session; its tokens are refused until Exp, when the last of
// them expires anyway.
type RevokedSession struct {
	SessionID string `json:"sid"`
	Exp       int64  `json:"exp"` // Unix seconds
}

// RevocationFollowerConfig configures a RevocationFollower.
type RevocationFollowerConfig struct {
	// BaseURL of the auth server's internal API, e.g. http://authmesh-authserver:3503.
	BaseURL string
	// Tenant whose revocations to follow.
	Tenant string
	// Client makes the calls; its timeout must exceed Wait (default: Wait + 10 s).
	Client *http.Client
	// Wait is how long one long poll may last (default 20 s).
	Wait time.Duration
	// ResyncInterval is how often the full set is re-read, so an entry that became visible
	// late is never missed for long (default 30 s).
	ResyncInterval time.Duration
	// TokenFile holds a bearer token for the internal API (a projected ServiceAccount token
	// in Kubernetes); re-read before each call. Empty sends none (dev mode).
	TokenFile string
	// RetryDelay is the pause after a failed call (default 1 s), doubling up to MaxRetryDelay
	// (default 5 s), each pause jittered down by up to half so the sidecars of a cluster do not
	// come back to a restarted auth server in step. The cap bounds how long revocations made
	// after an outage take to reach a sidecar.
	RetryDelay    time.Duration
	MaxRetryDelay time.Duration
	// Now is the clock; time.Now when nil.
	Now func() time.Time
}

// RevocationFollower keeps the set of revoked sessions of one tenant by following the auth
// server's feed: a long poll that returns as soon as something is revoked, plus a full re-read
// every ResyncInterval. Requests never wait for it: Revoked is a map lookup. While the auth
// server is unreachable it keeps the last state it saw.
type RevocationFollower struct {
	cfg RevocationFollowerConfig

	mu      sync.RWMutex
	revoked map[string]int64
	seq     int64

	synced     atomic.Bool
	syncedCh   chan struct{} // closed at the first full read
	syncOnce   sync.Once
	calls      atomic.Int64
	lastAnswer atomic.Int64 // Unix nanoseconds of the last successful call
}

// LastAnswer is when the feed last answered; zero before it ever has.
func (f *RevocationFollower) LastAnswer() time.Time {
	if n := f.lastAnswer.Load(); n != 0 {
		return time.Unix(0, n)
	}
	return time.Time{}
}

// NewRevocationFollower returns a follower for cfg; Run starts it.
func NewRevocationFollower(cfg RevocationFollowerConfig) *RevocationFollower {
	if cfg.Wait <= 0 {
		cfg.Wait = 20 * time.Second
	}
	if cfg.Client == nil {
		cfg.Client = &http.Client{Timeout: cfg.Wait + 10*time.Second}
	}
	if cfg.ResyncInterval <= 0 {
		cfg.ResyncInterval = 30 * time.Second
	}
	if cfg.RetryDelay <= 0 {
		cfg.RetryDelay = time.Second
	}
	if cfg.MaxRetryDelay <= 0 {
		cfg.MaxRetryDelay = 5 * time.Second
	}
	cfg.MaxRetryDelay = max(cfg.MaxRetryDelay, cfg.RetryDelay)
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &RevocationFollower{cfg: cfg, revoked: map[string]int64{}, syncedCh: make(chan struct{})}
}

// Revoked reports whether the session's tokens must be refused.
func (f *RevocationFollower) Revoked(sessionID string) bool {
	f.mu.RLock()
	exp, ok := f.revoked[sessionID]
	f.mu.RUnlock()
	return ok && f.cfg.Now().Unix() <= exp+int64(ClockSkew/time.Second)
}

// Synced reports whether the full set has been read at least once.
func (f *RevocationFollower) Synced() bool { return f.synced.Load() }

// WaitSynced waits until the full set has been read once, or ctx ends.
func (f *RevocationFollower) WaitSynced(ctx context.Context) error {
	select {
	case <-f.syncedCh:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (f *RevocationFollower) markSynced() {
	f.synced.Store(true)
	f.syncOnce.Do(func() { close(f.syncedCh) })
}

// Calls counts the feed calls made so far.
func (f *RevocationFollower) Calls() int64 { return f.calls.Load() }

// Seq is the feed position the follower has reached.
func (f *RevocationFollower) Seq() int64 {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return f.seq
}

// Run follows the feed until ctx ends.
func (f *RevocationFollower) Run(ctx context.Context) {
	delay := f.cfg.RetryDelay
	lastFull := time.Time{}
	for ctx.Err() == nil {
		full := time.Since(lastFull) >= f.cfg.ResyncInterval
		after, wait := f.Seq(), f.cfg.Wait
		if full {
			after, wait = 0, 0
		} else if remaining := f.cfg.ResyncInterval - time.Since(lastFull); remaining < wait {
			wait = max(remaining, time.Second)
		}
		feed, err := f.poll(ctx, after, wait)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			select {
			case <-ctx.Done():
				return
			case <-time.After(jittered(delay)):
			}
			delay = min(delay*2, f.cfg.MaxRetryDelay)
			continue
		}
		delay = f.cfg.RetryDelay
		f.apply(feed, full)
		if full {
			lastFull = time.Now()
			f.markSynced()
		}
	}
}

// SyncOnce reads the full set once; sidecars call it before they report ready.
func (f *RevocationFollower) SyncOnce(ctx context.Context) error {
	feed, err := f.poll(ctx, 0, 0)
	if err != nil {
		return err
	}
	f.apply(feed, true)
	f.markSynced()
	return nil
}

func (f *RevocationFollower) apply(feed RevocationFeed, full bool) {
	now := f.cfg.Now().Unix()
	f.mu.Lock()
	defer f.mu.Unlock()
	if feed.Reset || full {
		// The answer is the complete current set; keep nothing older than it.
		next := make(map[string]int64, len(feed.Revoked))
		for _, r := range feed.Revoked {
			next[r.SessionID] = r.Exp
		}
		f.revoked = next
	} else {
		for _, r := range feed.Revoked {
			if r.Exp > f.revoked[r.SessionID] {
				f.revoked[r.SessionID] = r.Exp
			}
		}
	}
	for sid, exp := range f.revoked {
		if exp+int64(ClockSkew/time.Second) < now {
			delete(f.revoked, sid)
		}
	}
	if feed.Seq > f.seq || feed.Reset || full {
		f.seq = feed.Seq
	}
}

func (f *RevocationFollower) poll(ctx context.Context, after int64, wait time.Duration) (RevocationFeed, error) {
	f.calls.Add(1)
	u := strings.TrimRight(f.cfg.BaseURL, "/") + "/internal/v1/tenants/" + url.PathEscape(f.cfg.Tenant) +
		"/revocations?after=" + strconv.FormatInt(after, 10) + "&wait=" + strconv.Itoa(int(wait/time.Second))
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return RevocationFeed{}, err
	}
	req.Header.Set("Accept", "application/json")
	if f.cfg.TokenFile != "" {
		tok, err := os.ReadFile(f.cfg.TokenFile)
		if err != nil {
			return RevocationFeed{}, fmt.Errorf("guard: reading the internal API token: %w", err)
		}
		req.Header.Set("Authorization", "Bearer "+strings.TrimSpace(string(tok)))
	}
	resp, err := f.cfg.Client.Do(req)
	if err != nil {
		return RevocationFeed{}, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4096))
		return RevocationFeed{}, fmt.Errorf("guard: revocation feed: %s", resp.Status)
	}
	var feed RevocationFeed
	if err := json.NewDecoder(io.LimitReader(resp.Body, 32<<20)).Decode(&feed); err != nil {
		return RevocationFeed{}, fmt.Errorf("guard: decoding the revocation feed: %w", err)
	}
	if feed.Seq < 0 {
		return RevocationFeed{}, errors.New("guard: revocation feed: negative seq")
	}
	f.lastAnswer.Store(time.Now().UnixNano())
	return feed, nil
}

// jittered returns d less a random part of up to half of it.
func jittered(d time.Duration) time.Duration {
	return d - rand.N(d/2+1)
}
