package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/authmesh/authmesh/internal/testenv"
	"github.com/authmesh/authmesh/internal/testenv/authstack"
)

// benchTB lets the test-support packages (testenv, authstack) run inside this program: Fatal
// panics with a benchFatal that the caller recovers, Cleanup functions run at finish.
type benchTB struct {
	testing.TB // nil: any method not below would panic, none is used
	mu         sync.Mutex
	cleanups   []func()
	errs       []string
}

type benchFatal struct{ msg string }

func (t *benchTB) Helper()                           {}
func (t *benchTB) Name() string                      { return "bench" }
func (t *benchTB) Log(args ...any)                   {}
func (t *benchTB) Logf(format string, args ...any)   {}
func (t *benchTB) Fatal(args ...any)                 { panic(benchFatal{fmt.Sprint(args...)}) }
func (t *benchTB) Fatalf(format string, args ...any) { panic(benchFatal{fmt.Sprintf(format, args...)}) }
func (t *benchTB) Errorf(format string, args ...any) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.errs = append(t.errs, fmt.Sprintf(format, args...))
}

func (t *benchTB) Cleanup(f func()) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.cleanups = append(t.cleanups, f)
}

func (t *benchTB) TempDir() string {
	dir, err := os.MkdirTemp("", "authmesh-bench-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	return dir
}

// finish runs the cleanups, last first, and reports the errors they logged.
func (t *benchTB) finish() error {
	for i := len(t.cleanups) - 1; i >= 0; i-- {
		t.cleanups[i]()
	}
	if len(t.errs) > 0 {
		return errors.New(strings.Join(t.errs, "; "))
	}
	return nil
}

// withTB runs f with a benchTB, turning its Fatal into an error.
func withTB(f func(t *benchTB) error) (err error) {
	t := &benchTB{}
	defer func() {
		if p := recover(); p != nil {
			bf, ok := p.(benchFatal)
			if !ok {
				panic(p)
			}
			err = errors.New(bf.msg)
		}
		if ferr := t.finish(); err == nil && ferr != nil {
			err = ferr
		}
	}()
	return f(t)
}

// revocationResult is what the revocation measurement found.
type revocationResult struct {
	logouts          int
	sidecars         int
	p50, p99, max    float64 // ms from the logout's answer to every sidecar refusing the token
	sentP50, sentP99 float64 // ms from sending the logout to every sidecar refusing the token
	callP50, callP99 float64 // ms, the logout call itself (send to answer)
	rttP50, rttP99   float64 // ms, a plain loopback HTTP round trip in the same run
	feedCalls        int64   // long polls the sidecars made during the logouts
	otherCalls       int64   // any other call from the sidecars to the auth server (must be 0)
	longPollWait     time.Duration
}

// countingProxy forwards to target and counts revocation-feed calls apart from all others.
type countingProxy struct {
	*httptest.Server
	feed, other atomic.Int64
}

func newCountingProxy(target string) *countingProxy {
	u, _ := url.Parse(target)
	rp := httputil.NewSingleHostReverseProxy(u)
	rp.ErrorLog = log.New(io.Discard, "", 0) // the long polls cut at the end
	p := &countingProxy{}
	p.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, "/revocations") {
			p.feed.Add(1)
		} else {
			p.other.Add(1)
		}
		rp.ServeHTTP(w, r)
	}))
	return p
}

// measureRevocation starts an in-process auth server (authstack, wired like cmd/authserver) on
// the dev database, signs one user up and opens `logouts` sessions; starts `sidecars` sidecar
// processes (sidecarBin) in front of a trivial app, each reaching the auth server's public and
// internal APIs through a counting proxy; checks every sidecar admits every session's token;
// then logs the sessions out one at a time and times how long after each logout's answer
// every sidecar refuses that token, polling each over HTTP.
func measureRevocation(sidecarBin string, logouts, sidecars int, wait time.Duration) (res revocationResult, err error) {
	res.logouts, res.sidecars, res.longPollWait = logouts, sidecars, wait
	db, err := testenv.StartMongo()
	if err != nil {
		return res, err
	}
	defer db.Stop()
	err = withTB(func(t *benchTB) error {
		const tenant = "bench"
		s := authstack.Start(t, db, authstack.Options{Tenants: map[string]string{
			tenant: "  displayName: Bench\n  email: {from: no-reply@bench.example}\n",
		}})
		ctx := context.Background()
		s.Signup(tenant, "benchuser", "benchuser@example.com", "password of benchuser")
		pairs := make([]struct{ access, sid string }, logouts)
		for i := range pairs {
			p := s.Login(tenant, "benchuser", "password of benchuser", "benchuser@example.com")
			pairs[i].access, pairs[i].sid = p.AccessToken, p.SessionID
		}

		// Every call a sidecar makes to the auth server goes through one of these.
		public, internal := newCountingProxy(s.URL), newCountingProxy(s.InternalURL)
		defer public.Close()
		defer internal.Close()
		app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok")) }))
		defer app.Close()
		dir := t.TempDir()
		urls := make([]string, sidecars)
		for i := range urls {
			addr, admin := freeAddr(), freeAddr()
			p, err := testenv.StartProcess(fmt.Sprintf("sidecar-%d", i), sidecarBin, filepath.Join(dir, fmt.Sprintf("sidecar-%d.log", i)),
				"-listen", addr, "-admin-listen", admin, "-tenant", tenant, "-upstream", app.URL,
				"-auth-url", public.URL, "-issuer-url", s.URL, "-feed-url", internal.URL, "-feed-wait", wait.String(),
				"-log-level", "warn", "-drain-delay", "0s")
			if err != nil {
				return err
			}
			defer p.Stop(5 * time.Second)
			if err := p.WaitHTTP("http://"+admin+"/readyz", 15*time.Second); err != nil {
				return err
			}
			urls[i] = "http://" + addr + "/api/orders"
		}
		httpc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 4}}
		status := func(u, token string) (int, error) {
			req, _ := http.NewRequest(http.MethodGet, u, nil)
			req.Header.Set("Authorization", "Bearer "+token)
			resp, err := httpc.Do(req)
			if err != nil {
				return 0, err
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			return resp.StatusCode, nil
		}
		for _, p := range pairs {
			for _, u := range urls {
				if code, err := status(u, p.access); err != nil || code != http.StatusOK {
					return fmt.Errorf("a sidecar answered %d, %v to a live session's token; want 200", code, err)
				}
			}
		}

		// The baseline: a plain HTTP round trip on loopback, same process, same moment.
		var rtts []time.Duration
		for range 1000 {
			t0 := time.Now()
			resp, err := httpc.Get(app.URL)
			if err != nil {
				return err
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			rtts = append(rtts, time.Since(t0))
		}
		res.rttP50, res.rttP99 = percentiles(rtts)

		c := s.Client(tenant)
		feed0 := public.feed.Load() + internal.feed.Load()
		other0 := public.other.Load() + internal.other.Load()
		lat := make([]time.Duration, 0, logouts)
		var fromSend, calls []time.Duration
		for _, p := range pairs {
			sent := time.Now()
			if err := c.LogoutSession(ctx, p.access, p.sid); err != nil {
				return fmt.Errorf("logout: %w", err)
			}
			answered := time.Now()
			calls = append(calls, answered.Sub(sent))
			var g errgroup.Group
			for _, u := range urls {
				g.Go(func() error {
					for {
						code, err := status(u, p.access)
						if err != nil {
							return err
						}
						if code == http.StatusUnauthorized {
							return nil
						}
						if code != http.StatusOK {
							return fmt.Errorf("a sidecar answered %d to a token being revoked; want 200, then 401", code)
						}
						if time.Since(answered) > 10*time.Second {
							return fmt.Errorf("session %s still admitted 10 s after its logout", p.sid)
						}
						time.Sleep(100 * time.Microsecond) // leave the CPUs to the sidecars
					}
				})
			}
			if err := g.Wait(); err != nil {
				return err
			}
			lat = append(lat, time.Since(answered))
			fromSend = append(fromSend, time.Since(sent))
		}
		res.feedCalls = public.feed.Load() + internal.feed.Load() - feed0
		res.otherCalls = public.other.Load() + internal.other.Load() - other0
		res.p50, res.p99 = percentiles(lat)
		res.sentP50, res.sentP99 = percentiles(fromSend)
		res.callP50, res.callP99 = percentiles(calls)
		res.max = float64(slices.Max(lat).Microseconds()) / 1000
		return nil
	})
	return res, err
}
