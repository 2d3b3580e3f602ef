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
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/authmesh/authmesh/guard"
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
	followers        int
	p50, p99, max    float64 // ms from the logout's answer to every follower refusing the session
	sentP50, sentP99 float64 // ms from sending the logout to every follower refusing the session
	callP50, callP99 float64 // ms, the logout call itself (send to answer)
	rttP50, rttP99   float64 // ms, a plain loopback HTTP round trip in the same run
	feedCalls        int64   // long polls the followers made during the logouts
	otherCalls       int64   // any other call to the auth server's internal API (must be 0)
	longPollWait     time.Duration
	serverCallsTotal int64
}

// measureRevocation starts an in-process auth server (authstack, wired like cmd/authserver) on
// the dev database, signs one user up, opens `logouts` sessions, starts `followers`
// guard.RevocationFollowers behind a counting proxy in front of the internal listener, then
// logs the sessions out one at a time and times how long after each logout's answer every
// follower refuses the session.
func measureRevocation(logouts, followers int, wait time.Duration) (res revocationResult, err error) {
	res.logouts, res.followers, res.longPollWait = logouts, followers, wait
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

		// Every call the followers make goes through this proxy, which counts it.
		var feed, other atomic.Int64
		target, _ := url.Parse(s.InternalURL)
		rp := httputil.NewSingleHostReverseProxy(target)
		rp.ErrorLog = log.New(io.Discard, "", 0) // the long polls cut at the end
		counter := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if strings.HasSuffix(r.URL.Path, "/revocations") {
				feed.Add(1)
			} else {
				other.Add(1)
			}
			rp.ServeHTTP(w, r)
		}))
		defer counter.Close()
		fctx, cancel := context.WithCancel(ctx)
		var wg sync.WaitGroup
		defer func() { cancel(); wg.Wait() }()
		fs := make([]*guard.RevocationFollower, followers)
		for i := range fs {
			fs[i] = guard.NewRevocationFollower(guard.RevocationFollowerConfig{
				BaseURL: counter.URL, Tenant: tenant, Wait: wait, RetryDelay: 50 * time.Millisecond,
			})
			wg.Go(func() { fs[i].Run(fctx) })
			wctx, wcancel := context.WithTimeout(ctx, 15*time.Second)
			err := fs[i].WaitSynced(wctx)
			wcancel()
			if err != nil {
				return fmt.Errorf("follower %d never read the feed: %w", i, err)
			}
		}

		// The baseline: a plain HTTP round trip on loopback, same process, same moment.
		echo := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok")) }))
		defer echo.Close()
		rttClient := &http.Client{}
		var rtts []time.Duration
		for range 1000 {
			t0 := time.Now()
			resp, err := rttClient.Get(echo.URL)
			if err != nil {
				return err
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			rtts = append(rtts, time.Since(t0))
		}
		res.rttP50, res.rttP99 = percentiles(rtts)

		c := s.Client(tenant)
		feed0, other0 := feed.Load(), other.Load()
		lat := make([]time.Duration, 0, logouts)
		var fromSend, calls []time.Duration
		for _, p := range pairs {
			sent := time.Now()
			if err := c.LogoutSession(ctx, p.access, p.sid); err != nil {
				return fmt.Errorf("logout: %w", err)
			}
			answered := time.Now()
			calls = append(calls, answered.Sub(sent))
			for {
				all := true
				for _, f := range fs {
					if !f.Revoked(p.sid) {
						all = false
						break
					}
				}
				if all {
					break
				}
				if time.Since(answered) > 10*time.Second {
					return fmt.Errorf("session %s not revoked at every follower 10 s after the logout", p.sid)
				}
				time.Sleep(50 * time.Microsecond)
			}
			lat = append(lat, time.Since(answered))
			fromSend = append(fromSend, time.Since(sent))
		}
		res.feedCalls, res.otherCalls = feed.Load()-feed0, other.Load()-other0
		res.p50, res.p99 = percentiles(lat)
		res.sentP50, res.sentP99 = percentiles(fromSend)
		res.callP50, res.callP99 = percentiles(calls)
		res.max = float64(slices.Max(lat).Microseconds()) / 1000
		return nil
	})
	return res, err
}
