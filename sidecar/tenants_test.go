package sidecar

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"
)

// TestNewTenantsAreRateLimited names 300 made-up tenants at a sidecar serving any tenant, as
// requests with junk tokens can: only a burst and then newTenantsPerSecond a second are set up,
// so the auth server sees that many JWKS fetches, not 300; a tenant already set up is not
// affected.
func TestNewTenantsAreRateLimited(t *testing.T) {
	var fetches atomic.Int64
	auth := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fetches.Add(1)
		http.NotFound(w, r)
	}))
	t.Cleanup(auth.Close)
	cfg := Defaults()
	cfg.AuthURL, cfg.IssuerURL, cfg.MaxTenants = auth.URL, auth.URL, 1000
	set := newTenantSet(t.Context(), &cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))

	first, err := set.get("known")
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	setUp, limited := 0, 0
	for i := range 300 {
		switch _, err := set.get(fmt.Sprintf("made-up-%d", i)); {
		case err == nil:
			setUp++
		case errors.Is(err, errTenantSetupLimited):
			limited++
		default:
			t.Fatalf("tenant %d: %v", i, err)
		}
	}
	allowed := newTenantsBurst - 1 + int(time.Since(start).Seconds()*newTenantsPerSecond) + 1
	if setUp > allowed || setUp+limited != 300 {
		t.Fatalf("%d of 300 made-up tenants set up (%d refused); want at most %d", setUp, limited, allowed)
	}
	if again, err := set.get("known"); err != nil || again != first {
		t.Fatalf("a tenant set up before the flood: %v", err)
	}
	time.Sleep(200 * time.Millisecond) // let the set-up tenants fetch their keys
	if n := fetches.Load(); n > int64(allowed+1)*2 {
		t.Fatalf("%d requests reached the auth server for %d tenants set up", n, setUp+1)
	}
	t.Logf("300 made-up tenants: %d set up, %d refused, %d requests to the auth server", setUp, limited, fetches.Load())
}
