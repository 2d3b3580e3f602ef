package fault

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/authmesh/authmesh/guard"
	"github.com/authmesh/authmesh/internal/testenv/authstack"
)

// cutProxy forwards TCP to target until cut: then it drops every connection and hangs up on
// new ones at once, as a crashed or partitioned auth server would look, until healed.
type cutProxy struct {
	ln     net.Listener
	target string

	mu    sync.Mutex
	down  bool
	conns map[net.Conn]struct{}
}

func newCutProxy(t *testing.T, targetURL string) *cutProxy {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &cutProxy{ln: ln, target: targetURL[len("http://"):], conns: map[net.Conn]struct{}{}}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go p.serve(c)
		}
	}()
	t.Cleanup(func() { _ = ln.Close(); <-done; p.cut() })
	return p
}

func (p *cutProxy) URL() string { return "http://" + p.ln.Addr().String() }

func (p *cutProxy) track(cs ...net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.down {
		return false
	}
	for _, c := range cs {
		p.conns[c] = struct{}{}
	}
	return true
}

func (p *cutProxy) serve(c net.Conn) {
	up, err := net.Dial("tcp", p.target)
	if err != nil {
		_ = c.Close()
		return
	}
	if !p.track(c, up) {
		_ = c.Close()
		_ = up.Close()
		return
	}
	go func() { _, _ = io.Copy(up, c); _ = up.Close() }()
	_, _ = io.Copy(c, up)
	_ = c.Close()
}

func (p *cutProxy) cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.down = true
	for c := range p.conns {
		_ = c.Close()
	}
	clear(p.conns)
}

func (p *cutProxy) heal() {
	p.mu.Lock()
	p.down = false
	p.mu.Unlock()
}

// TestAuthServerGoneUnderLoad cuts the sidecar off from the auth server (JWKS and revocation
// feed) while clients send a valid token at a steady rate, for longer than one access-token
// TTL (the tenant's is 10 s, the least the CRD allows): every request keeps being admitted
// from the cached keys, a session revoked before the cut stays refused, and once the auth
// server is back the sidecar follows the feed again by itself (a new revocation arrives).
// test/e2e stops the real auth server between requests; this adds the load and the recovery.
func TestAuthServerGoneUnderLoad(t *testing.T) {
	const accessTTL = 10 * time.Second
	s := authstack.Start(t, testDB, authstack.Options{Tenants: map[string]string{tenant: tenantSpec + "  tokens: {accessTokenTTL: 10s}\n"}})
	s.Signup(tenant, "steady", "steady@fault.example", password)
	kept := s.Login(tenant, "steady", password, "steady@fault.example")
	revoked := s.Login(tenant, "steady", password, "steady@fault.example")
	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, "ok") }))
	t.Cleanup(app.Close)
	public, internal := newCutProxy(t, s.URL), newCutProxy(t, s.InternalURL)
	cfg := sidecarConfig(s, app.URL)
	cfg.AuthURL, cfg.FeedURL, cfg.IssuerURL = public.URL(), internal.URL(), s.URL
	sc := startSidecar(t, cfg)

	hc := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 8}}
	t.Cleanup(hc.CloseIdleConnections)
	get := func(token string) (int, string) {
		req, _ := http.NewRequest("GET", sc+"/orders", nil)
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := hc.Do(req)
		if err != nil {
			return 0, err.Error()
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		var env guard.Envelope
		_ = json.Unmarshal(body, &env)
		return resp.StatusCode, env.Meta.Code
	}
	if status, code := get(kept.AccessToken); status != http.StatusOK {
		t.Fatalf("before the cut, a valid token got %d %s", status, code)
	}
	if err := s.Client(tenant).LogoutSession(context.Background(), kept.AccessToken, revoked.SessionID); err != nil {
		t.Fatal(err)
	}
	eventually(t, 15*time.Second, "the sidecar refuses the revoked session", func() bool {
		_, code := get(revoked.AccessToken)
		return code == guard.CodeSessionInvalid
	})

	// Steady load with the valid token.
	var admitted, refused atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			tick := time.NewTicker(5 * time.Millisecond)
			defer tick.Stop()
			for {
				select {
				case <-stop:
					return
				case <-tick.C:
				}
				if status, code := get(kept.AccessToken); status == http.StatusOK {
					admitted.Add(1)
				} else {
					refused.Add(1)
					t.Errorf("a valid token got %d %s", status, code)
				}
			}
		})
	}
	stopLoad := sync.OnceFunc(func() { close(stop); wg.Wait() })
	t.Cleanup(stopLoad)

	public.cut()
	internal.cut()
	cutAt, atCut := time.Now(), admitted.Load()
	outage := accessTTL + time.Second // the token in use was issued just before the cut: past its exp
	if *long {
		outage = 3*accessTTL + time.Second // three TTLs: past exp, within the 30 s clock-skew leeway
	}
	eventually(t, outage+15*time.Second, "the outage lasts and 200 more requests are served meanwhile", func() bool {
		return time.Since(cutAt) >= outage && admitted.Load() >= atCut+200
	})
	if status, code := get(revoked.AccessToken); code != guard.CodeSessionInvalid {
		t.Fatalf("with the auth server gone, the revoked session got %d %s", status, code)
	}
	if status, code := get(kept.AccessToken[:len(kept.AccessToken)-4] + "AAAA"); status != http.StatusUnauthorized {
		t.Fatalf("with the auth server gone, a tampered token got %d %s", status, code)
	}
	down := time.Since(cutAt)
	duringCut := admitted.Load() - atCut
	public.heal()
	internal.heal()
	healed := time.Now()

	// Back: a revocation made now reaches the sidecar through the feed again.
	if err := s.Client(tenant).LogoutSession(context.Background(), kept.AccessToken, kept.SessionID); err != nil {
		t.Fatal(err)
	}
	stopLoad()
	// The feed follower's retry pauses are capped at 5 s: it is back within that after the heal.
	eventually(t, 10*time.Second, "the sidecar follows the feed again and refuses the session logged out", func() bool {
		_, code := get(kept.AccessToken)
		return code == guard.CodeSessionInvalid
	})
	t.Logf("auth server cut off for %s: %d requests admitted meanwhile, %d refused; a revocation made after the heal was enforced %s later",
		down.Round(time.Millisecond), duringCut, refused.Load(), time.Since(healed).Round(time.Millisecond))
}
