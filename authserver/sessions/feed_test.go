package sessions_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/authmesh/authmesh/authserver/sessions"
	"github.com/authmesh/authmesh/guard"
	"github.com/authmesh/authmesh/internal/tenantdb"
)

// follow starts a guard.RevocationFollower (the sidecar's) against a replica's internal
// listener and waits for its first full read.
func follow(t *testing.T, r *replica, tenant string) *guard.RevocationFollower {
	t.Helper()
	f := guard.NewRevocationFollower(guard.RevocationFollowerConfig{
		BaseURL: r.internal.URL, Tenant: tenant, Wait: 20 * time.Second, RetryDelay: 50 * time.Millisecond,
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); f.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	wctx, wcancel := context.WithTimeout(ctx, 15*time.Second)
	defer wcancel()
	if err := f.WaitSynced(wctx); err != nil {
		t.Fatalf("the follower never read the feed: %v", err)
	}
	return f
}

// measure returns how long cond takes to hold, checking every 200µs: a measurement for the
// log, never an assertion (it fails only when cond never holds).
func measure(t testing.TB, what string, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for !cond() {
		if time.Since(start) > 15*time.Second {
			t.Fatalf("timed out waiting until %s", what)
		}
		time.Sleep(200 * time.Microsecond)
	}
	return time.Since(start)
}

// delays summarises measured delays.
type delays []time.Duration

func (d delays) String() string {
	s := slices.Clone(d)
	slices.Sort(s)
	p := func(q float64) time.Duration { return s[min(len(s)-1, int(q*float64(len(s))))] }
	return fmt.Sprintf("n=%d min=%s p50=%s p99=%s max=%s", len(s), s[0], p(0.5), p(0.99), s[len(s)-1])
}

// TestLogoutReachesEveryEnforcementPoint: after a logout the auth server refuses the access
// token at once, and a sidecar's follower of the internal feed sees the revocation; the delay
// from the logout's response to the follower knowing is printed.
func TestLogoutReachesEveryEnforcementPoint(t *testing.T) {
	h := start(t, standardTenants)
	ctx := context.Background()
	c := h.client("alpha")
	uid := h.user("alpha", "user")
	f := follow(t, h.r0(), "alpha")

	var measured delays
	for range 20 {
		p := h.login("alpha", uid, "user")
		if f.Revoked(p.SessionID) {
			t.Fatal("a live session is marked revoked")
		}
		if err := c.LogoutSession(ctx, p.AccessToken, p.SessionID); err != nil {
			t.Fatal(err)
		}
		measured = append(measured, measure(t, "the follower sees the revocation", func() bool { return f.Revoked(p.SessionID) }))
		_, err := c.Sessions(ctx, p.AccessToken)
		wantCode(t, "the access token right after logout", err, 401, "SESSION_INVALID")
	}
	t.Logf("logout response -> follower of the same replica knows: %s", measured)
}

// TestRevocationCrossesReplicas: two auth servers on one database; a logout at one reaches a
// follower of the other.
func TestRevocationCrossesReplicas(t *testing.T) {
	h := start(t, standardTenants)
	ctx := context.Background()
	r1 := h.addReplica()
	c := h.client("alpha") // replica 0
	uid := h.user("alpha", "user")
	f := follow(t, r1, "alpha")

	var measured delays
	for range 20 {
		p := h.login("alpha", uid, "user")
		if err := c.LogoutSession(ctx, p.AccessToken, p.SessionID); err != nil {
			t.Fatal(err)
		}
		measured = append(measured, measure(t, "the other replica's follower sees the revocation", func() bool { return f.Revoked(p.SessionID) }))
	}
	t.Logf("logout response at replica 0 -> follower of replica 1 knows: %s", measured)

	// Reuse detection works across replicas too: they share the session documents.
	p := h.login("alpha", uid, "user")
	if _, err := c.Refresh(ctx, p.RefreshToken); err != nil {
		t.Fatal(err)
	}
	_, err := h.clientOf(r1, "alpha").Refresh(ctx, p.RefreshToken)
	wantCode(t, "the rotated token at the other replica", err, 401, "REFRESH_TOKEN_REUSED")
	eventually(t, "the reuse revocation reaches the follower", func() bool { return f.Revoked(p.SessionID) })
}

// feedCall calls the feed and decodes its answer.
func feedCall(t testing.TB, r *replica, tenant string, after int64, wait int) (guard.RevocationFeed, int) {
	t.Helper()
	resp, err := http.Get(fmt.Sprintf("%s/internal/v1/tenants/%s/revocations?after=%d&wait=%d", r.internal.URL, url.PathEscape(tenant), after, wait))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var feed guard.RevocationFeed
	if resp.StatusCode == 200 {
		if err := json.NewDecoder(resp.Body).Decode(&feed); err != nil {
			t.Fatal(err)
		}
		if cc := resp.Header.Get("Cache-Control"); cc != "no-store" {
			t.Errorf("Cache-Control %q, want no-store", cc)
		}
	}
	return feed, resp.StatusCode
}

func sids(feed guard.RevocationFeed) []string {
	var out []string
	for _, r := range feed.Revoked {
		out = append(out, r.SessionID)
	}
	slices.Sort(out)
	return out
}

// TestFeedProtocol checks the feed's answers: incremental after a cursor, reset for a cursor
// it cannot continue, exp, long polls woken by a revocation, expired entries dropped.
func TestFeedProtocol(t *testing.T) {
	h := start(t, standardTenants)
	ctx := context.Background()
	r := h.r0()
	c := h.client("alpha")

	feed, status := feedCall(t, r, "alpha", 0, 0)
	if status != 200 || feed.Seq != 0 || feed.Reset || feed.Revoked == nil || len(feed.Revoked) != 0 {
		t.Fatalf("empty feed: %d %+v, want seq 0, no reset, revoked []", status, feed)
	}

	uid := h.user("alpha", "user")
	var want []string
	var last string
	for range 3 {
		p := h.login("alpha", uid, "user")
		want = append(want, p.SessionID)
		last = p.AccessToken
	}
	slices.Sort(want)
	if n, err := c.LogoutAll(ctx, last); err != nil || n != 3 {
		t.Fatalf("logout/all: %d %v", n, err)
	}
	feed, _ = feedCall(t, r, "alpha", 0, 0)
	if feed.Seq != 3 || feed.Reset || !slices.Equal(sids(feed), want) {
		t.Fatalf("after three revocations: %+v, want seq 3 and the three sessions", feed)
	}
	wantExp := h.session("alpha", want[0]).AccessExpiresAt.Unix()
	for _, e := range feed.Revoked {
		if e.SessionID == want[0] && e.Exp != wantExp {
			t.Fatalf("exp %d, want the session's last access token expiry %d", e.Exp, wantExp)
		}
	}
	if feed, _ = feedCall(t, r, "alpha", 3, 0); feed.Seq != 3 || feed.Reset || len(feed.Revoked) != 0 {
		t.Fatalf("at the head: %+v, want seq 3 and nothing", feed)
	}
	if feed, _ = feedCall(t, r, "alpha", 2, 0); feed.Seq != 3 || len(feed.Revoked) != 1 {
		t.Fatalf("after 2: %+v, want one entry", feed)
	}
	if feed, _ = feedCall(t, r, "alpha", 99, 0); feed.Seq != 3 || !feed.Reset || len(feed.Revoked) != 3 {
		t.Fatalf("a cursor from another history: %+v, want reset and the full set", feed)
	}

	// A long poll answers when something is revoked, not when its wait ends.
	p := h.login("alpha", uid, "user")
	got := make(chan guard.RevocationFeed, 1)
	go func() {
		f, _ := feedCall(t, r, "alpha", 3, 20)
		got <- f
	}()
	eventually(t, "the long poll is waiting", func() bool { return gaugeValue(t, r, "authmesh_authserver_revocation_feed_subscribers") == 1 })
	if err := c.LogoutSession(ctx, p.AccessToken, p.SessionID); err != nil {
		t.Fatal(err)
	}
	if f := <-got; f.Seq != 4 || len(f.Revoked) != 1 || f.Revoked[0].SessionID != p.SessionID {
		t.Fatalf("long poll answered %+v, want seq 4 with the new revocation", f)
	}

	// Entries are served while a token of the session may still be accepted, then dropped.
	h.clock.Step(15*time.Minute + guard.ClockSkew + time.Second)
	if feed, _ = feedCall(t, r, "alpha", 0, 0); feed.Seq != 4 || len(feed.Revoked) != 0 {
		t.Fatalf("after every access token expired: %+v, want seq 4 and nothing", feed)
	}

	for name, q := range map[string]string{"negative after": "after=-1", "text wait": "wait=soon"} {
		resp, err := http.Get(r.internal.URL + "/internal/v1/tenants/alpha/revocations?" + q)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 400 {
			t.Errorf("%s: status %d, want 400", name, resp.StatusCode)
		}
	}
	if _, status := feedCall(t, r, "nobody", 0, 0); status != 404 {
		t.Errorf("unknown tenant: status %d, want 404", status)
	}
}

// TestFeedWakesEveryWaiter: many long polls of one tenant cost one poll per interval, and
// all answer from one revocation.
func TestFeedWakesEveryWaiter(t *testing.T) {
	h := start(t, standardTenants)
	ctx := context.Background()
	r := h.r0()
	uid := h.user("alpha", "user")
	p := h.login("alpha", uid, "user")
	const waiters = 25
	var wg sync.WaitGroup
	results := make(chan guard.RevocationFeed, waiters)
	for range waiters {
		wg.Go(func() {
			f, _ := feedCall(t, r, "alpha", 0, 20)
			results <- f
		})
	}
	eventually(t, "every long poll is waiting", func() bool {
		return gaugeValue(t, r, "authmesh_authserver_revocation_feed_subscribers") == waiters
	})
	// While they wait, the tenant is polled once per interval, not once per waiter.
	q0, t0 := sessions.FeedQueries(r.svc), time.Now()
	time.Sleep(500 * time.Millisecond) // a window to count in
	queries, window := sessions.FeedQueries(r.svc)-q0, time.Since(t0)
	if limit := int64(window/(50*time.Millisecond)) + 2; queries > limit {
		t.Fatalf("%d queries in %s with %d waiters, want at most %d (one per poll interval)", queries, window, waiters, limit)
	}
	t.Logf("%d waiters: %d feed queries in %s", waiters, queries, window.Round(time.Millisecond))
	if err := h.client("alpha").LogoutSession(ctx, p.AccessToken, p.SessionID); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	close(results)
	for f := range results {
		if f.Seq != 1 || len(f.Revoked) != 1 {
			t.Fatalf("a waiter got %+v, want the revocation", f)
		}
	}
}

// gaugeValue sums a metric's series on a replica.
func gaugeValue(t testing.TB, r *replica, name string) float64 {
	t.Helper()
	mfs, err := r.metrics.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var sum float64
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			switch {
			case m.GetGauge() != nil:
				sum += m.GetGauge().GetValue()
			case m.GetCounter() != nil:
				sum += m.GetCounter().GetValue()
			}
		}
	}
	return sum
}

// TestIntrospection: RFC 7662 answers for live, revoked, foreign and garbage tokens.
func TestIntrospection(t *testing.T) {
	h := start(t, standardTenants)
	ctx := context.Background()
	r := h.r0()
	uid := h.user("alpha", "admin")
	p := h.login("alpha", uid, "admin")

	introspect := func(form url.Values) (int, map[string]any) {
		t.Helper()
		resp, err := http.PostForm(r.internal.URL+"/internal/v1/introspect", form)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var out map[string]any
		_ = json.NewDecoder(resp.Body).Decode(&out)
		return resp.StatusCode, out
	}
	status, got := introspect(url.Values{"token": {p.AccessToken}})
	if status != 200 || got["active"] != true || got["sub"] != uid || got["tid"] != "alpha" || got["role"] != "admin" ||
		got["sid"] != p.SessionID || got["aud"] != "authmesh" || !strings.HasSuffix(got["iss"].(string), "/t/alpha") ||
		got["exp"] == nil || got["iat"] == nil {
		t.Fatalf("a live token: %d %v", status, got)
	}
	for name, token := range map[string]string{
		"garbage":       "not.a.jwt",
		"refresh token": p.RefreshToken,
		"tampered":      p.AccessToken[:len(p.AccessToken)-4] + "AAAA",
	} {
		if status, got := introspect(url.Values{"token": {token}}); status != 200 || len(got) != 1 || got["active"] != false {
			t.Errorf("%s: %d %v, want {\"active\": false}", name, status, got)
		}
	}
	if status, got := introspect(url.Values{}); status != 400 || got["error"] != "invalid_request" {
		t.Errorf("no token: %d %v, want 400 invalid_request", status, got)
	}
	if err := h.client("alpha").LogoutSession(ctx, p.AccessToken, p.SessionID); err != nil {
		t.Fatal(err)
	}
	if _, got := introspect(url.Values{"token": {p.AccessToken}}); got["active"] != false {
		t.Fatalf("after logout: %v, want inactive", got)
	}
}

// TestFailedPublicationIsRetried: when the revocation cannot be appended (here the counter
// document is broken), the logout still succeeds, the auth server refuses the session at once,
// and the revocation reaches the feed once appending works again.
func TestFailedPublicationIsRetried(t *testing.T) {
	h := start(t, standardTenants)
	ctx := context.Background()
	c := h.client("alpha")
	uid := h.user("alpha", "user")
	f := follow(t, h.r0(), "alpha")
	counters := h.db("alpha").Collection(tenantdb.Counters)
	if _, err := counters.InsertOne(ctx, bson.D{{Key: "_id", Value: "revocations"}, {Key: "seq", Value: "not a number"}}); err != nil {
		t.Fatal(err)
	}
	p := h.login("alpha", uid, "user")
	if err := c.LogoutSession(ctx, p.AccessToken, p.SessionID); err != nil {
		t.Fatalf("logout while the feed cannot be appended to: %v", err)
	}
	_, err := c.Sessions(ctx, p.AccessToken)
	wantCode(t, "the access token after logout", err, 401, "SESSION_INVALID")
	if n, _ := h.db("alpha").Collection(tenantdb.Revocations).CountDocuments(ctx, bson.D{}); n != 0 {
		t.Fatalf("%d revocations appended with a broken counter", n)
	}
	if _, err := counters.UpdateByID(ctx, "revocations", bson.D{{Key: "$set", Value: bson.D{{Key: "seq", Value: int64(0)}}}}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the retried revocation reaches the follower", func() bool { return f.Revoked(p.SessionID) })
}

// TestRevocationLeftUnpublishedIsSwept: a replica that died between revoking sessions and
// appending their feed entries leaves them marked revokePending; any replica's maintenance
// publishes them once they are older than a publication can take, exactly once, and clears
// the mark. A revocation younger than that is left to its own publisher.
func TestRevocationLeftUnpublishedIsSwept(t *testing.T) {
	h := startTuned(t, standardTenants, func(o *sessions.Options) { o.MaintenanceInterval = 50 * time.Millisecond })
	ctx := context.Background()
	uid := h.user("alpha", "user")
	f := follow(t, h.r0(), "alpha")
	sessionsColl := h.db("alpha").Collection(tenantdb.Sessions)
	// What revoking writes, with no publication after it: the crash.
	crash := func(sid string, at time.Time) {
		t.Helper()
		if _, err := sessionsColl.UpdateByID(ctx, sid, bson.D{{Key: "$set", Value: bson.D{
			{Key: "revokedAt", Value: at}, {Key: "revokeReason", Value: "logout"}, {Key: "revokePending", Value: true},
		}}}); err != nil {
			t.Fatal(err)
		}
	}
	old, young := h.login("alpha", uid, "user"), h.login("alpha", uid, "user")
	crash(old.SessionID, h.clock.Now().Add(-time.Minute))
	crash(young.SessionID, h.clock.Now())

	eventually(t, "the old unpublished revocation reaches the follower", func() bool { return f.Revoked(old.SessionID) })
	time.Sleep(200 * time.Millisecond) // four more sweeps
	if f.Revoked(young.SessionID) {
		t.Error("a revocation younger than a publication can take was swept")
	}
	entries := h.db("alpha").Collection(tenantdb.Revocations)
	if n, err := entries.CountDocuments(ctx, bson.D{{Key: "sid", Value: old.SessionID}}); err != nil || n != 1 {
		t.Errorf("%d feed entries for the swept session (%v), want exactly 1", n, err)
	}
	eventually(t, "the swept session's mark is cleared", func() bool {
		n, err := sessionsColl.CountDocuments(ctx, bson.D{{Key: "_id", Value: old.SessionID}, {Key: "revokePending", Value: true}})
		return err == nil && n == 0
	})

	h.clock.Step(time.Minute)
	eventually(t, "the younger one once it is old enough", func() bool { return f.Revoked(young.SessionID) })
}

// TestPublishedRevocationIsNotPending: a logout that publishes leaves no pending mark, so
// sweeps never publish it again.
func TestPublishedRevocationIsNotPending(t *testing.T) {
	h := start(t, standardTenants)
	ctx := context.Background()
	uid := h.user("alpha", "user")
	p, q := h.login("alpha", uid, "user"), h.login("alpha", uid, "user")
	if err := h.client("alpha").LogoutSession(ctx, p.AccessToken, p.SessionID); err != nil {
		t.Fatal(err)
	}
	if _, err := h.client("alpha").LogoutAll(ctx, q.AccessToken); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the pending marks of published logouts are cleared", func() bool {
		n, err := h.db("alpha").Collection(tenantdb.Sessions).CountDocuments(ctx, bson.D{{Key: "revokePending", Value: true}})
		return err == nil && n == 0
	})
}
