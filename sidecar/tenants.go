package sidecar

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/authmesh/authmesh/guard"
)

// tenantTrust is what the sidecar needs to accept one tenant's tokens: its keys, a verifier and
// its revocation state.
type tenantTrust struct {
	id       string
	keys     *guard.RemoteKeys
	verifier *guard.Verifier
	follower *guard.RevocationFollower
	cancel   context.CancelFunc
}

// tenantSet creates a tenantTrust per tenant on first use and keeps it fresh in the background.
// It holds at most max tenants; when full, it drops one that never became usable, and refuses
// a new tenant when all are in use, so requests naming random tenants cannot grow it. It also
// sets up at most newTenantsPerSecond tenants a second (newTenantsBurst at once): each costs a
// JWKS fetch and a feed follower at the auth server, and anyone can name a tenant.
type tenantSet struct {
	cfg        *Config
	client     *http.Client
	logger     *slog.Logger
	ctx        context.Context
	newTenants *rate.Limiter

	mu      sync.RWMutex
	tenants map[string]*tenantTrust
}

const (
	newTenantsPerSecond = 10
	newTenantsBurst     = 20
)

func newTenantSet(ctx context.Context, cfg *Config, logger *slog.Logger) *tenantSet {
	return &tenantSet{
		cfg:        cfg,
		client:     &http.Client{Timeout: cfg.FeedWait + 10*time.Second},
		logger:     logger,
		ctx:        ctx,
		newTenants: rate.NewLimiter(newTenantsPerSecond, newTenantsBurst),
		tenants:    map[string]*tenantTrust{},
	}
}

var (
	errTooManyTenants     = errors.New("sidecar: tenant limit reached")
	errTenantSetupLimited = fmt.Errorf("%w: too many new tenants at once", guard.ErrKeysUnavailable)
)

// get returns the tenant's trust, creating and starting it when new.
func (s *tenantSet) get(id string) (*tenantTrust, error) {
	s.mu.RLock()
	t, ok := s.tenants[id]
	s.mu.RUnlock()
	if ok {
		return t, nil
	}
	if !ValidTenantID(id) {
		return nil, fmt.Errorf("sidecar: %q is not a tenant id", id)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if t, ok := s.tenants[id]; ok {
		return t, nil
	}
	if !s.newTenants.Allow() {
		return nil, errTenantSetupLimited
	}
	if len(s.tenants) >= s.cfg.MaxTenants && !s.evictUnusable() {
		return nil, errTooManyTenants
	}
	t, err := s.start(id)
	if err != nil {
		return nil, err
	}
	s.tenants[id] = t
	return t, nil
}

// evictUnusable drops one tenant whose keys were never fetched; the caller holds mu.
func (s *tenantSet) evictUnusable() bool {
	for id, t := range s.tenants {
		if !t.keys.Ready() {
			t.cancel()
			delete(s.tenants, id)
			return true
		}
	}
	return false
}

func (s *tenantSet) start(id string) (*tenantTrust, error) {
	ctx, cancel := context.WithCancel(s.ctx)
	keys := guard.NewRemoteKeys(guard.RemoteKeysConfig{
		URL:              s.cfg.AuthURL + "/t/" + url.PathEscape(id) + "/.well-known/jwks.json",
		Client:           s.client,
		MinFetchInterval: s.cfg.MinJWKSFetchInterval,
	})
	verifier, err := guard.NewVerifier(guard.VerifierConfig{
		TenantID:  id,
		Issuer:    s.cfg.IssuerURL + "/t/" + id,
		Audience:  s.cfg.Audience,
		Keys:      keys,
		CacheSize: s.cfg.TokenCacheSize,
	})
	if err != nil {
		cancel()
		return nil, err
	}
	t := &tenantTrust{id: id, keys: keys, verifier: verifier, cancel: cancel}
	go keys.Run(ctx)
	if s.cfg.FeedURL != "" {
		t.follower = guard.NewRevocationFollower(guard.RevocationFollowerConfig{
			BaseURL:   s.cfg.FeedURL,
			Tenant:    id,
			Client:    s.client,
			Wait:      s.cfg.FeedWait,
			TokenFile: s.cfg.InternalTokenFile,
		})
		go t.follower.Run(ctx)
	}
	s.logger.Info("following tenant", "tenant", id)
	return t, nil
}

// firstSyncWait bounds how long a request for a tenant seen for the first time waits for the
// tenant's revocations to be read.
const firstSyncWait = 3 * time.Second

// verifier implements guard.VerifierSource. A tenant whose revocation state was never read is
// not served: accepting its tokens could admit a session that has been logged out.
func (s *tenantSet) verifier(ctx context.Context, id string) (*guard.Verifier, error) {
	t, err := s.get(id)
	if err != nil {
		return nil, err
	}
	if t.follower != nil && !t.follower.Synced() {
		waitCtx, cancel := context.WithTimeout(ctx, firstSyncWait)
		defer cancel()
		if err := t.follower.WaitSynced(waitCtx); err != nil {
			return nil, fmt.Errorf("%w: revocations of %s not read yet", guard.ErrKeysUnavailable, id)
		}
	}
	return t.verifier, nil
}

// Revoked implements guard.SessionChecker.
func (s *tenantSet) Revoked(_ context.Context, tenant, sessionID string) bool {
	s.mu.RLock()
	t := s.tenants[tenant]
	s.mu.RUnlock()
	return t != nil && t.follower != nil && t.follower.Revoked(sessionID)
}

// ready reports whether the tenant's keys are loaded and its revocations read.
func (s *tenantSet) ready(id string) (bool, string) {
	s.mu.RLock()
	t := s.tenants[id]
	s.mu.RUnlock()
	switch {
	case t == nil:
		return false, "tenant " + id + " not loaded"
	case !t.keys.Ready():
		return false, "signing keys of " + id + " not fetched"
	case t.follower != nil && !t.follower.Synced():
		return false, "revocations of " + id + " not read"
	}
	return true, ""
}

// each calls fn for every tenant.
func (s *tenantSet) each(fn func(*tenantTrust)) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	for _, t := range s.tenants {
		fn(t)
	}
}

func trimURL(u string) string { return strings.TrimRight(u, "/") }
