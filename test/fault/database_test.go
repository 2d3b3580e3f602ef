package fault

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/authmesh/authmesh/authserver"
	"github.com/authmesh/authmesh/client"
	"github.com/authmesh/authmesh/internal/testenv/authstack"
)

// outcome is one request of the load: its kind, when it started, how long it took, and what
// it answered (status and envelope code; err for anything that was not an envelope).
type outcome struct {
	kind    string
	start   time.Time
	latency time.Duration
	status  int
	code    string
	err     error
}

func (o outcome) ok() bool { return o.err == nil && o.status < 300 }

// call makes one API call and classifies its answer.
func call(c *client.Client, kind, path string, in, out any) outcome {
	o := outcome{kind: kind, start: time.Now()}
	res, err := c.Call(context.Background(), "POST", path, "", in, out)
	o.latency = time.Since(o.start)
	var apiErr *client.APIError
	switch {
	case err == nil:
		o.status, o.code = res.Status, res.Code
	case errors.As(err, &apiErr) && apiErr.Code != "":
		o.status, o.code = apiErr.Status, apiErr.Code
	default:
		o.err = err
	}
	return o
}

// load is clients signing up, logging in and refreshing at a steady pace. It remembers what
// the server acknowledged: users whose signup answered 201, and refresh tokens the server
// handed out (at login or by a refresh) that no request has presented since.
type load struct {
	c *client.Client

	mu        sync.Mutex
	outcomes  []outcome
	users     []string            // acknowledged signups (username; password is fixed)
	live      map[int][]string    // worker -> acknowledged, never presented refresh tokens
	ambiguous []string            // refresh tokens presented by a request that failed
	seen      map[string]struct{} // every refresh token handed out, to catch a duplicate
}

const password = "correct horse battery"

func (l *load) record(o outcome) {
	l.mu.Lock()
	l.outcomes = append(l.outcomes, o)
	l.mu.Unlock()
}

func (l *load) handOut(t *testing.T, w int, tok string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if _, dup := l.seen[tok]; dup {
		t.Errorf("the server handed out refresh token %.12s... twice", tok)
	}
	l.seen[tok] = struct{}{}
	l.live[w] = append(l.live[w], tok)
}

// worker runs signup, login and refresh in turn, one request every pace, until stop closes.
func (l *load) worker(t *testing.T, w int, pace time.Duration, stop <-chan struct{}) {
	tick := time.NewTicker(pace)
	defer tick.Stop()
	for i := 0; ; i++ {
		select {
		case <-stop:
			return
		case <-tick.C:
		}
		switch i % 3 {
		case 0:
			name := fmt.Sprintf("w%du%d", w, i)
			o := call(l.c, "signup", "/auth/signup", client.SignupRequest{Username: name, Email: name + "@fault.example", Password: password}, nil)
			l.record(o)
			if o.ok() {
				l.mu.Lock()
				l.users = append(l.users, name)
				l.mu.Unlock()
			}
		case 1:
			l.mu.Lock()
			var name string
			if len(l.users) > 0 {
				name = l.users[(i*7+w)%len(l.users)]
			}
			l.mu.Unlock()
			if name == "" {
				continue
			}
			var pair client.TokenPair
			o := call(l.c, "login", "/auth/login", map[string]string{"usernameOrEmailOrMobile": name, "password": password}, &pair)
			l.record(o)
			if o.ok() {
				l.handOut(t, w, pair.RefreshToken)
			}
		case 2:
			l.mu.Lock()
			var tok string
			if n := len(l.live[w]); n > 0 {
				tok, l.live[w] = l.live[w][n-1], l.live[w][:n-1]
			}
			l.mu.Unlock()
			if tok == "" {
				continue
			}
			var pair client.TokenPair
			o := call(l.c, "refresh", "/auth/refresh", map[string]string{"refreshToken": tok}, &pair)
			l.record(o)
			if o.ok() {
				l.handOut(t, w, pair.RefreshToken)
			} else {
				l.mu.Lock()
				l.ambiguous = append(l.ambiguous, tok)
				l.mu.Unlock()
			}
		}
	}
}

// since returns the outcomes of requests started at or after t0.
func (l *load) since(t0 time.Time) []outcome {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []outcome
	for _, o := range l.outcomes {
		if !o.start.Before(t0) {
			out = append(out, o)
		}
	}
	return out
}

// maxLatency bounds every answer, in or out of an outage: the database's server selection
// timeout (1s here) plus generous slack for a loaded CI machine. A request past it is a hang.
const maxLatency = 10 * time.Second

// TestDatabaseKilledUnderLoad kills the database under steady signup/login/refresh load,
// checks that every request meanwhile answers a clean 503 TENANT_CONNECTION_MISSING envelope
// promptly, restarts the database, and checks that the same auth server recovers by itself
// and that nothing it acknowledged was lost.
//
// A refresh that fails mid-outage is ambiguous: the database may have committed the rotation
// before it died. With strict reuse detection (the default) presenting that token again may
// end the session as a reuse (401 REFRESH_TOKEN_REUSED), by design; with a refreshReuseGrace
// it must refresh, so no session at all is lost to the outage.
func TestDatabaseKilledUnderLoad(t *testing.T) {
	if os.Getenv("AUTHMESH_TEST_MONGO_URI") != "" {
		t.Skip("the database is external (AUTHMESH_TEST_MONGO_URI): a test cannot kill it")
	}
	t.Run("strict reuse detection", func(t *testing.T) { databaseOutage(t, "", false) })
	t.Run("reuse grace", func(t *testing.T) { databaseOutage(t, "  tokens: {refreshReuseGrace: 1m}\n", true) })
}

func databaseOutage(t *testing.T, extraSpec string, grace bool) {
	outage := 1500 * time.Millisecond
	if *long {
		outage = 15 * time.Second
	}
	s := authstack.Start(t, testDB, authstack.Options{
		Tenants: map[string]string{tenant: tenantSpec + extraSpec},
		Config:  func(c *authserver.Config) { c.MongoSelectionTimeout = time.Second },
	})
	hc := &http.Client{Timeout: 2 * maxLatency, Transport: &http.Transport{MaxIdleConnsPerHost: 16}}
	t.Cleanup(hc.CloseIdleConnections)
	l := &load{c: client.New(s.URL, tenant, client.WithHTTPClient(hc), client.WithUserAgent(authstack.UserAgent)),
		live: map[int][]string{}, seen: map[string]struct{}{}}

	stop := make(chan struct{})
	var wg sync.WaitGroup
	const workers = 6
	for w := range workers {
		wg.Go(func() { l.worker(t, w, 15*time.Millisecond, stop) })
	}
	stopped := false
	stopLoad := func() {
		if !stopped {
			stopped = true
			close(stop)
			wg.Wait()
		}
	}
	t.Cleanup(stopLoad)
	t.Cleanup(func() { // whatever happened, leave the database running for the other tests
		_ = testDB.Restart()
	})

	// Healthy: every kind of request succeeds, and nothing fails.
	t0 := time.Now()
	okKinds := func(from time.Time) bool {
		kinds := map[string]bool{}
		for _, o := range l.since(from) {
			if o.ok() {
				kinds[o.kind] = true
			}
		}
		return kinds["signup"] && kinds["login"] && kinds["refresh"]
	}
	eventually(t, 20*time.Second, "signup, login and refresh all succeed before the fault", func() bool { return okKinds(t0) })
	for _, o := range l.since(t0) {
		if !o.ok() {
			t.Fatalf("before the fault: %s answered %d %s %v", o.kind, o.status, o.code, o.err)
		}
	}

	// The database dies.
	if err := testDB.Kill(); err != nil {
		t.Fatal(err)
	}
	killed := time.Now()
	count503 := func(from time.Time) int {
		n := 0
		for _, o := range l.since(from) {
			if o.status == http.StatusServiceUnavailable && o.code == "TENANT_CONNECTION_MISSING" {
				n++
			}
		}
		return n
	}
	eventually(t, 20*time.Second, "requests answer 503 TENANT_CONNECTION_MISSING", func() bool { return count503(killed) >= 5 })
	// Keep the database down a while longer under load, then bring it back.
	for time.Since(killed) < outage {
		time.Sleep(50 * time.Millisecond)
	}
	if err := testDB.Restart(); err != nil {
		t.Fatal(err)
	}
	restarted := time.Now()
	eventually(t, 30*time.Second, "signup, login and refresh all succeed again on the same auth server", func() bool { return okKinds(restarted) })
	recovered := time.Since(restarted)
	stopLoad()

	// During the outage and the recovery: successes or clean 503s only, none past the bound.
	var n503, nOK, nOther int
	var slowest, first503 time.Duration
	for _, o := range l.since(killed) {
		slowest = max(slowest, o.latency)
		switch {
		case o.ok():
			nOK++
		case o.status == http.StatusServiceUnavailable && o.code == "TENANT_CONNECTION_MISSING":
			if at := o.start.Add(o.latency).Sub(killed); n503 == 0 || at < first503 {
				first503 = at
			}
			n503++
		default:
			nOther++
			t.Errorf("%s during the outage answered %d %q %v after %s", o.kind, o.status, o.code, o.err, o.latency.Round(time.Millisecond))
		}
		if o.latency > maxLatency {
			t.Errorf("%s during the outage took %s (bound %s)", o.kind, o.latency.Round(time.Millisecond), maxLatency)
		}
	}
	t.Logf("database down %s (first 503 answered %s after the kill); after the restart every kind of request succeeded within %s",
		restarted.Sub(killed).Round(time.Millisecond), first503.Round(time.Millisecond), recovered.Round(time.Millisecond))
	t.Logf("requests from the kill on: %d succeeded, %d answered 503 TENANT_CONNECTION_MISSING, %d other; slowest %s",
		nOK, n503, nOther, slowest.Round(time.Millisecond))

	// Nothing acknowledged was lost: every user whose signup answered 201 logs in, and every
	// refresh token the server handed out and nobody presented since still refreshes.
	l.mu.Lock()
	users := slices.Clone(l.users)
	var live []string
	for _, toks := range l.live {
		live = append(live, toks...)
	}
	ambiguous := slices.Clone(l.ambiguous)
	l.mu.Unlock()
	check := func(items []string, f func(string)) {
		var wg sync.WaitGroup
		sem := make(chan struct{}, 4)
		for _, it := range items {
			sem <- struct{}{}
			wg.Go(func() { defer func() { <-sem }(); f(it) })
		}
		wg.Wait()
	}
	check(users, func(name string) {
		if o := call(l.c, "login", "/auth/login", map[string]string{"usernameOrEmailOrMobile": name, "password": password}, nil); !o.ok() {
			t.Errorf("acknowledged user %s cannot log in after the outage: %d %s %v", name, o.status, o.code, o.err)
		}
	})
	check(live, func(tok string) {
		if o := call(l.c, "refresh", "/auth/refresh", map[string]string{"refreshToken": tok}, nil); !o.ok() || o.code != client.CodeTokensRefreshed {
			t.Errorf("an acknowledged refresh token no longer refreshes after the outage: %d %s %v", o.status, o.code, o.err)
		}
	})
	// A refresh that failed mid-outage may or may not have rotated before the database died;
	// presenting its token again either refreshes or is refused cleanly as a reuse.
	var ambRefreshed, ambReused int
	var mu sync.Mutex
	check(ambiguous, func(tok string) {
		o := call(l.c, "refresh", "/auth/refresh", map[string]string{"refreshToken": tok}, nil)
		mu.Lock()
		defer mu.Unlock()
		switch {
		case o.ok():
			ambRefreshed++
		case !grace && o.status == http.StatusUnauthorized && o.code == "REFRESH_TOKEN_REUSED":
			ambReused++
			t.Logf("a refresh token presented during the outage is refused after it: %d %s", o.status, o.code)
		default:
			t.Errorf("a refresh token presented during the outage answers %d %s %v after it", o.status, o.code, o.err)
		}
	})
	t.Logf("checked after recovery: %d acknowledged users logged in, %d acknowledged refresh tokens refreshed; of %d tokens presented during the outage %d refresh, %d are refused",
		len(users), len(live), len(ambiguous), ambRefreshed, ambReused)
}
