package main

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/golang-jwt/jwt/v5"

	"github.com/authmesh/authmesh/guard"
	"github.com/authmesh/authmesh/internal/keys"
)

// floodResult is what the JWKS flood found, per tenant.
type floodResult struct {
	tenants           int
	duration          time.Duration
	requests          int64   // unknown-kid verifications started, all tenants
	fetches           int64   // JWKS fetches the server saw during the flood, all tenants
	fetchesPerTenant  float64 // per second
	requestsPerTenant float64 // per second
	minFetchInterval  time.Duration
}

// measureJWKSFlood runs, per tenant, a guard.Verifier over guard.RemoteKeys (what the sidecar
// verifies with) against a JWKS server that counts its fetches, and floods every verifier
// with tokens whose kid is new each time, from `workers` goroutines per tenant that give up on
// a request after 20 ms (as impatient attackers would) for d.
func measureJWKSFlood(tenants, workers int, d time.Duration) (floodResult, error) {
	res := floodResult{tenants: tenants, duration: d, minFetchInterval: 5 * time.Second}
	published, err := keys.Generate(keys.EdDSA)
	if err != nil {
		return res, err
	}
	jwks := jose.JSONWebKeySet{Keys: []jose.JSONWebKey{published.Public()}}
	var fetches atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !strings.HasSuffix(r.URL.Path, "/.well-known/jwks.json") {
			http.NotFound(w, r)
			return
		}
		fetches.Add(1)
		w.Header().Set("Content-Type", "application/jwk-set+json")
		_ = jsonEncode(w, jwks)
	}))
	defer srv.Close()
	forger, err := keys.Generate(keys.EdDSA)
	if err != nil {
		return res, err
	}
	ctx := context.Background()
	type target struct {
		v   *guard.Verifier
		iss string
		tid string
	}
	targets := make([]target, tenants)
	for i := range targets {
		tid := fmt.Sprintf("flood%d", i)
		iss := srv.URL + "/t/" + tid
		rk := guard.NewRemoteKeys(guard.RemoteKeysConfig{URL: iss + "/.well-known/jwks.json", MinFetchInterval: res.minFetchInterval})
		if err := rk.Refresh(ctx); err != nil {
			return res, err
		}
		v, err := guard.NewVerifier(guard.VerifierConfig{TenantID: tid, Issuer: iss, Audience: "authmesh", Keys: rk})
		if err != nil {
			return res, err
		}
		targets[i] = target{v: v, iss: iss, tid: tid}
	}
	var requests, seq atomic.Int64
	deadline := time.Now().Add(d)
	before := fetches.Load()
	var wg sync.WaitGroup
	for _, tg := range targets {
		for range workers {
			wg.Go(func() {
				for time.Now().Before(deadline) {
					now := time.Now()
					tok := jwt.NewWithClaims(jwt.SigningMethodEdDSA, guard.Claims{
						RegisteredClaims: jwt.RegisteredClaims{
							Issuer: tg.iss, Audience: jwt.ClaimStrings{"authmesh"}, Subject: "attacker",
							IssuedAt: jwt.NewNumericDate(now), ExpiresAt: jwt.NewNumericDate(now.Add(time.Hour)),
						},
						TenantID: tg.tid, Role: "admin", SessionID: "forged",
					})
					tok.Header["kid"], tok.Header["typ"] = fmt.Sprintf("forged-%d", seq.Add(1)), guard.AccessTokenType
					signed, err := tok.SignedString(forger.Key)
					if err != nil {
						return
					}
					rctx, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
					_, _ = tg.v.Verify(rctx, signed)
					cancel()
					requests.Add(1)
				}
			})
		}
	}
	wg.Wait()
	res.fetches, res.requests = fetches.Load()-before, requests.Load()
	res.fetchesPerTenant = float64(res.fetches) / float64(tenants) / d.Seconds()
	res.requestsPerTenant = float64(res.requests) / float64(tenants) / d.Seconds()
	return res, nil
}
