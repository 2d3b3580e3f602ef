package guard

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/authmesh/authmesh/internal/keys"
)

// StaticKeys is a KeySource over a fixed set of keys, replaceable at once (the auth server
// verifies its own tokens this way, swapping the set when its key Secret changes).
type StaticKeys struct {
	keys atomic.Pointer[map[string]keys.PublicKey]
}

// NewStaticKeys returns a KeySource serving set.
func NewStaticKeys(set map[string]keys.PublicKey) *StaticKeys {
	s := &StaticKeys{}
	s.Replace(set)
	return s
}

// Replace swaps the key set; requests in flight finish with the set they started with.
func (s *StaticKeys) Replace(set map[string]keys.PublicKey) { s.keys.Store(&set) }

// Key implements KeySource.
func (s *StaticKeys) Key(_ context.Context, kid string) (keys.PublicKey, error) {
	if k, ok := (*s.keys.Load())[kid]; ok {
		return k, nil
	}
	return keys.PublicKey{}, ErrUnknownKey
}

// RemoteKeysConfig configures a RemoteKeys.
type RemoteKeysConfig struct {
	// URL of the tenant's JWKS document.
	URL string
	// Client fetches it; a client with a 10 s timeout when nil.
	Client *http.Client
	// RefreshInterval is how often Run refetches the set (default 5 minutes).
	RefreshInterval time.Duration
	// MinFetchInterval is the least time between two fetches caused by unknown kids, however
	// many requests carry them (default 5 s). It bounds what a flood of forged tokens can
	// make the sidecar do to the auth server. A request with an unknown kid that arrives
	// sooner after a fetch waits for the next allowed one (at most this long).
	MinFetchInterval time.Duration
	// MaxBytes bounds the document (default 1 MiB).
	MaxBytes int64
}

// RemoteKeys is a KeySource that fetches a JWKS document and keeps it fresh: refetched every
// RefreshInterval by Run, and on an unknown kid at most once per MinFetchInterval. When the
// source is unreachable it keeps serving the last good keys.
type RemoteKeys struct {
	cfg RemoteKeysConfig

	keys atomic.Pointer[map[string]keys.PublicKey]

	mu        sync.Mutex
	lastTry   time.Time
	inflight  chan struct{} // closed when the fetch under way ends
	scheduled chan struct{} // closed when the fetch waiting for MinFetchInterval ends
	lastError error

	fetches atomic.Int64
}

// NewRemoteKeys returns a RemoteKeys for cfg; it fetches nothing until asked or run.
func NewRemoteKeys(cfg RemoteKeysConfig) *RemoteKeys {
	if cfg.Client == nil {
		cfg.Client = &http.Client{Timeout: 10 * time.Second}
	}
	if cfg.RefreshInterval <= 0 {
		cfg.RefreshInterval = 5 * time.Minute
	}
	if cfg.MinFetchInterval <= 0 {
		cfg.MinFetchInterval = 5 * time.Second
	}
	if cfg.MaxBytes <= 0 {
		cfg.MaxBytes = 1 << 20
	}
	r := &RemoteKeys{cfg: cfg}
	empty := map[string]keys.PublicKey{}
	r.keys.Store(&empty)
	return r
}

// Fetches counts the HTTP fetches made so far.
func (r *RemoteKeys) Fetches() int64 { return r.fetches.Load() }

// Ready reports whether a key set has been fetched.
func (r *RemoteKeys) Ready() bool { return len(*r.keys.Load()) > 0 }

// Key implements KeySource.
func (r *RemoteKeys) Key(ctx context.Context, kid string) (keys.PublicKey, error) {
	if k, ok := (*r.keys.Load())[kid]; ok {
		return k, nil
	}
	if err := r.refresh(ctx, false); err != nil && !r.Ready() {
		return keys.PublicKey{}, err
	}
	if k, ok := (*r.keys.Load())[kid]; ok {
		return k, nil
	}
	return keys.PublicKey{}, ErrUnknownKey
}

// Refresh fetches the set now, or waits for a fetch already under way.
func (r *RemoteKeys) Refresh(ctx context.Context) error { return r.refresh(ctx, true) }

// Run refetches the set every RefreshInterval until ctx ends.
func (r *RemoteKeys) Run(ctx context.Context) {
	_ = r.Refresh(ctx)
	t := time.NewTicker(r.cfg.RefreshInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			_ = r.Refresh(ctx)
		}
	}
}

// refresh fetches the set. Within MinFetchInterval of the last fetch it instead waits for the
// next allowed fetch, which all callers in the meantime share; force skips the limit. So a
// flood of unknown kids causes one fetch per interval and is itself slowed to that pace,
// while a token of a freshly rotated key waits at most one interval and passes. A caller that
// finds a fetch under way waits for it. Checking the limit and claiming the fetch happen under
// one lock, so callers that all saw an old lastTry cannot each start a fetch.
func (r *RemoteKeys) refresh(ctx context.Context, force bool) error {
	r.mu.Lock()
	if wait := r.inflight; wait != nil {
		r.mu.Unlock()
		return r.await(ctx, wait)
	}
	if since := time.Since(r.lastTry); !force && since < r.cfg.MinFetchInterval {
		next := r.scheduled
		if next == nil {
			next = make(chan struct{})
			r.scheduled = next
			go r.fetchLater(r.cfg.MinFetchInterval-since, next)
		}
		r.mu.Unlock()
		return r.await(ctx, next)
	}
	r.lastTry = time.Now()
	done := make(chan struct{})
	r.inflight = done
	r.mu.Unlock()

	// The fetch is shared, so it must not die with the first caller's request.
	fetchCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	err := r.fetch(fetchCtx)
	cancel()

	r.mu.Lock()
	r.lastError = err
	r.inflight = nil
	close(done)
	r.mu.Unlock()
	return err
}

// await waits for a shared fetch to end and returns its error, or ctx's.
func (r *RemoteKeys) await(ctx context.Context, done <-chan struct{}) error {
	select {
	case <-done:
		r.mu.Lock()
		defer r.mu.Unlock()
		return r.lastError
	case <-ctx.Done():
		return ctx.Err()
	}
}

// fetchLater fetches after delay and then closes done.
func (r *RemoteKeys) fetchLater(delay time.Duration, done chan struct{}) {
	time.Sleep(delay)
	_ = r.refresh(context.Background(), true)
	r.mu.Lock()
	r.scheduled = nil
	close(done)
	r.mu.Unlock()
}

func (r *RemoteKeys) fetch(ctx context.Context) error {
	r.fetches.Add(1)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, r.cfg.URL, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Accept", "application/jwk-set+json, application/json")
	resp, err := r.cfg.Client.Do(req)
	if err != nil {
		return fmt.Errorf("guard: fetching JWKS: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("guard: fetching JWKS from %s: %s", r.cfg.URL, resp.Status)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, r.cfg.MaxBytes+1))
	if err != nil {
		return fmt.Errorf("guard: reading JWKS: %w", err)
	}
	if int64(len(body)) > r.cfg.MaxBytes {
		return errors.New("guard: JWKS document too large")
	}
	set, err := keys.ParsePublicSet(body)
	if err != nil {
		return fmt.Errorf("guard: JWKS from %s: %w", r.cfg.URL, err)
	}
	if len(set) == 0 {
		return fmt.Errorf("guard: JWKS from %s holds no usable key", r.cfg.URL)
	}
	r.keys.Store(&set)
	return nil
}
