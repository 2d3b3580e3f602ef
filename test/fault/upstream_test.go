package fault

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/authmesh/authmesh/guard"
)

// slowApp answers /fast at once; /slow never sends its headers and /stall sends headers and
// then never finishes its body, both until the request goes away.
func slowApp(t *testing.T) *httptest.Server {
	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/slow":
			<-r.Context().Done()
		case "/stall":
			w.Header().Set("Content-Type", "text/plain")
			_, _ = io.WriteString(w, "partial")
			http.NewResponseController(w).Flush()
			<-r.Context().Done()
		default:
			_, _ = io.WriteString(w, "ok")
		}
	}))
	t.Cleanup(app.Close)
	return app
}

// deadAddr is a loopback address nothing listens on.
func deadAddr(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	_ = ln.Close()
	return "http://" + addr
}

// TestSlowOrDeadUpstream puts the sidecar, with a real token of the real auth server, in front
// of an application that never answers and one that is gone: it answers 504 UPSTREAM_TIMEOUT
// and 502 UPSTREAM_UNAVAILABLE envelopes promptly, and a few hundred such requests (and
// callers giving up on an app that stalls) leave no goroutines behind.
func TestSlowOrDeadUpstream(t *testing.T) {
	s := startStack(t)
	s.Signup(tenant, "slowpoke", "slowpoke@fault.example", password)
	access := s.Login(tenant, "slowpoke", password, "slowpoke@fault.example").AccessToken

	const upstreamTimeout = 200 * time.Millisecond
	slowCfg := sidecarConfig(s, slowApp(t).URL)
	slowCfg.UpstreamTimeout = upstreamTimeout
	// A small upstream pool, so that idle keep-alive connections (two goroutines each) cannot
	// pass for a leak, however the load happens to interleave.
	slowCfg.UpstreamIdleConns = 2
	slow := startSidecar(t, slowCfg)
	dead := startSidecar(t, sidecarConfig(s, deadAddr(t)))

	hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 32}}
	t.Cleanup(hc.CloseIdleConnections)
	type result struct {
		status  int
		code    string
		latency time.Duration
		err     error
	}
	send := func(base, path string, giveUp time.Duration) result {
		ctx, cancel := context.WithTimeout(context.Background(), giveUp)
		defer cancel()
		req, _ := http.NewRequestWithContext(ctx, "GET", base+path, nil)
		req.Header.Set("Authorization", "Bearer "+access)
		start := time.Now()
		resp, err := hc.Do(req)
		if err != nil {
			return result{err: err, latency: time.Since(start)}
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		r := result{status: resp.StatusCode, latency: time.Since(start), err: err}
		var env guard.Envelope
		if json.Unmarshal(body, &env) == nil {
			r.code = env.Meta.Code
		}
		return r
	}
	type kind struct {
		name, base, path string
		giveUp           time.Duration // the caller's own deadline
		check            func(result) error
	}
	want := func(status int, code string, within time.Duration) func(result) error {
		return func(r result) error {
			if r.err != nil || r.status != status || r.code != code || r.latency > within {
				return fmt.Errorf("got %d %q (err %v) after %s, want %d %s within %s", r.status, r.code, r.err, r.latency.Round(time.Millisecond), status, code, within)
			}
			return nil
		}
	}
	callerGaveUp := func(r result) error {
		if !errors.Is(r.err, context.DeadlineExceeded) {
			return fmt.Errorf("got %d %q (err %v), want the caller's own deadline to end it", r.status, r.code, r.err)
		}
		return nil
	}
	kinds := []kind{
		{"fast app", slow, "/fast", 10 * time.Second, want(http.StatusOK, "", 5*time.Second)},
		{"app never answers", slow, "/slow", 10 * time.Second, want(http.StatusGatewayTimeout, guard.CodeUpstreamTimeout, upstreamTimeout+5*time.Second)},
		{"app is gone", dead, "/x", 10 * time.Second, want(http.StatusBadGateway, guard.CodeUpstreamUnavailable, 5*time.Second)},
		{"caller gives up on a never-answering app", slow, "/slow", 50 * time.Millisecond, callerGaveUp},
		{"caller gives up on a stalled body", slow, "/stall", 100 * time.Millisecond, callerGaveUp},
	}
	// One of each first, so pools, feeds and caches are in their steady state.
	for _, k := range kinds {
		if err := k.check(send(k.base, k.path, k.giveUp)); err != nil {
			t.Fatalf("%s: %v", k.name, err)
		}
	}
	hc.CloseIdleConnections()
	settle := func() int {
		runtime.GC()
		return runtime.NumGoroutine()
	}
	before := settle()

	n := 300
	if *long {
		n = 3000
	}
	var (
		mu      sync.Mutex
		counts  = map[string]int{}
		slowest = map[string]time.Duration{}
		peak    int
		wg      sync.WaitGroup
	)
	jobs := make(chan kind)
	for range 16 {
		wg.Go(func() {
			for k := range jobs {
				r := send(k.base, k.path, k.giveUp)
				g := runtime.NumGoroutine()
				mu.Lock()
				counts[k.name]++
				slowest[k.name] = max(slowest[k.name], r.latency)
				peak = max(peak, g)
				mu.Unlock()
				if err := k.check(r); err != nil {
					t.Errorf("%s: %v", k.name, err)
				}
			}
		})
	}
	for i := range n {
		jobs <- kinds[i%len(kinds)]
	}
	close(jobs)
	wg.Wait()
	hc.CloseIdleConnections()

	const tolerance = 10
	var after int
	eventually(t, 10*time.Second, fmt.Sprintf("goroutines settle back near %d", before), func() bool {
		after = settle()
		return after <= before+tolerance
	})
	for _, k := range kinds {
		t.Logf("%-42s %3d requests, slowest %s", k.name, counts[k.name], slowest[k.name].Round(time.Millisecond))
	}
	t.Logf("goroutines: %d before, peak %d during %d requests, %d after (tolerance %d)", before, peak, n, after, tolerance)
}
