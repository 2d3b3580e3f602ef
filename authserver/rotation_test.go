package authserver_test

import (
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/authmesh/authmesh/internal/keys"
)

// TestKeyRotationFailsNoRequest rotates a tenant's key files three times while clients keep
// getting tokens and verifying them against the published JWKS: no request may fail, and the
// server must move to each new key without a restart.
func TestKeyRotationFailsNoRequest(t *testing.T) {
	h := startServer(t, map[string]fileTenant{"alpha": {}})
	dir := filepath.Join(h.stateDir, "alpha")

	var (
		done      atomic.Bool
		succeeded atomic.Int64
		mu        sync.Mutex
		failures  []string
		kidsSeen  = map[string]bool{}
		wg        sync.WaitGroup
	)
	const workers, maxPerWorker = 3, 2000
	for range workers {
		wg.Go(func() {
			for i := 0; i < maxPerWorker && !done.Load(); i++ {
				token, err := tryIssueToken(h, "alpha")
				var kid string
				if err == nil {
					kid, err = verify(h, "alpha", token, "authmesh")
				}
				mu.Lock()
				if err != nil {
					failures = append(failures, err.Error())
				} else {
					kidsSeen[kid] = true
				}
				mu.Unlock()
				if err == nil {
					succeeded.Add(1)
				}
			}
		})
	}

	activeKID := func() string {
		tenant, release, err := h.srv.Registry.Acquire(t.Context(), "alpha", false)
		if err != nil {
			t.Fatal(err)
		}
		release()
		return tenant.Tokens.KeyID()
	}
	// waitForTraffic waits until n more requests have succeeded.
	waitForTraffic := func(n int64) {
		target := succeeded.Load() + n
		eventually(t, "requests flow", func() bool { return succeeded.Load() >= target })
	}

	waitForTraffic(10)
	rotated := []string{activeKID()}
	for i, alg := range []string{keys.ES256, keys.EdDSA, keys.ES256} {
		newKID := rotate(t, dir, alg)
		eventually(t, "the server signs with the new key", func() bool { return activeKID() == newKID })
		rotated = append(rotated, newKID)
		waitForTraffic(10)
		t.Logf("rotation %d to %s key %s picked up", i+1, alg, newKID)
	}
	done.Store(true)
	wg.Wait()

	if len(failures) > 0 {
		t.Fatalf("%d of %d requests failed during rotation, first: %s", len(failures), int64(len(failures))+succeeded.Load(), failures[0])
	}
	for _, kid := range rotated {
		if !kidsSeen[kid] {
			t.Errorf("no verified token was signed by %s; saw %v", kid, kidsSeen)
		}
	}
}

// rotate adds a new active key to the tenant's key files the way an operator (or a mounted
// Secret) would: jwks.json first, keeping the retired keys, then active-kid, each replaced
// atomically.
func rotate(t *testing.T, dir, alg string) string {
	t.Helper()
	jwks, err := os.ReadFile(filepath.Join(dir, keys.SecretKeyJWKS))
	if err != nil {
		t.Fatal(err)
	}
	kid, err := os.ReadFile(filepath.Join(dir, keys.SecretKeyActiveKID))
	if err != nil {
		t.Fatal(err)
	}
	set, err := keys.ParsePrivateSet(jwks, strings.TrimSpace(string(kid)))
	if err != nil {
		t.Fatal(err)
	}
	k, err := keys.Generate(alg)
	if err != nil {
		t.Fatal(err)
	}
	next := &keys.PrivateSet{Keys: append([]jose.JSONWebKey{k}, set.Keys...), ActiveKID: k.KeyID}
	data, err := next.MarshalJWKS()
	if err != nil {
		t.Fatal(err)
	}
	replaceFile(t, filepath.Join(dir, keys.SecretKeyJWKS), data)
	time.Sleep(60 * time.Millisecond) // let a poll see the in-between state (new set, old kid); not an assertion
	replaceFile(t, filepath.Join(dir, keys.SecretKeyActiveKID), []byte(k.KeyID))
	return k.KeyID
}

func replaceFile(t *testing.T, path string, data []byte) {
	t.Helper()
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}
