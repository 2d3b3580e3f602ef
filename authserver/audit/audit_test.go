package audit_test

import (
	"context"
	"fmt"
	clocktesting "k8s.io/utils/clock/testing"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"go.mongodb.org/mongo-driver/v2/bson"

	authmeshv1alpha1 "github.com/authmesh/authmesh/api/v1alpha1"
	"github.com/authmesh/authmesh/authserver/audit"
	"github.com/authmesh/authmesh/authserver/clientinfo"
	"github.com/authmesh/authmesh/authserver/httpapi"
	"github.com/authmesh/authmesh/authserver/tenancy"
	"github.com/authmesh/authmesh/internal/keys"
	"github.com/authmesh/authmesh/internal/tenantdb"
	"github.com/authmesh/authmesh/internal/testenv"
)

var testDB *testenv.Mongo

func TestMain(m *testing.M) { os.Exit(testenv.RunWithMongo(m, &testDB)) }

// fixture is a registry serving tenant "alpha" on its own test database, and a Log on it.
type fixture struct {
	t     *testing.T
	reg   *tenancy.Registry
	cfg   tenancy.Config
	log   *audit.Log
	clock *clocktesting.FakeClock
}

func newFixture(t *testing.T, retention time.Duration) *fixture {
	t.Helper()
	pool, err := tenancy.NewPool(tenancy.PoolOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	reg, err := tenancy.NewRegistry(tenancy.RegistryOptions{PublicURL: "https://auth.example.com", Pool: pool})
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{t: t, reg: reg, clock: clocktesting.NewFakeClock(time.Now().UTC().Truncate(time.Millisecond))}
	if f.log, err = audit.New(audit.Options{Registry: reg, Retention: retention, Now: f.clock.Now}); err != nil {
		t.Fatal(err)
	}
	var spec authmeshv1alpha1.TenantSpec
	tenancy.ApplyDefaults(&spec)
	f.cfg = tenancy.Config{
		Name: "alpha", Spec: spec, Phase: authmeshv1alpha1.TenantPhaseReady,
		DatabaseName: testDB.Database(t).Name(), URI: testDB.URI, Keys: keySet(t),
	}
	reg.Upsert(f.cfg)
	return f
}

func keySet(t *testing.T, retired ...jose.JSONWebKey) *keys.PrivateSet {
	t.Helper()
	k, err := keys.Generate(keys.EdDSA)
	if err != nil {
		t.Fatal(err)
	}
	return &keys.PrivateSet{Keys: append([]jose.JSONWebKey{k}, retired...), ActiveKID: k.KeyID}
}

// tenant returns alpha with its database for the test.
func (f *fixture) tenant() *tenancy.Tenant {
	f.t.Helper()
	tn, release, err := f.reg.Acquire(context.Background(), "alpha", true)
	if err != nil {
		f.t.Fatal(err)
	}
	f.t.Cleanup(release)
	return tn
}

func (f *fixture) stored() []audit.Event {
	f.t.Helper()
	cur, err := f.tenant().DB.Collection(tenantdb.Audit).Find(context.Background(), bson.D{})
	if err != nil {
		f.t.Fatal(err)
	}
	var out []audit.Event
	if err := cur.All(context.Background(), &out); err != nil {
		f.t.Fatal(err)
	}
	return out
}

// TestRecordTakesTheRequestsClient records over real HTTP, through the router and the client
// IP middleware the public listener has: IP, user agent and request id come from the request,
// and detail keys naming secrets are dropped.
func TestRecordTakesTheRequestsClient(t *testing.T) {
	f := newFixture(t, 0)
	rt := httpapi.NewRouter(httpapi.RouterOptions{Name: "public"})
	rt.Handle("POST /event", httpapi.HandlerFunc(func(w http.ResponseWriter, r *http.Request) error {
		f.log.Record(r.Context(), tenancy.FromContext(r.Context()), audit.Event{
			Type: audit.TypeLogout, ActorID: "u1", SubjectID: "u1", SessionID: "s1",
			Details: map[string]string{"revokedCount": "2", "newPassword": "hunter2", "resetToken": "abc", "OTPCode": "123456", "refreshHash": "x"},
		})
		w.WriteHeader(http.StatusNoContent)
		return nil
	}), f.reg.Middleware(tenancy.RouteOptions{}))
	srv := httptest.NewServer(clientinfo.NewResolver(nil).Middleware(rt))
	defer srv.Close()

	req, _ := http.NewRequest("POST", srv.URL+"/event", nil)
	req.Header.Set("x-tenant-id", "alpha")
	req.Header.Set("User-Agent", "curl/8.7.1")
	req.Header.Set("X-Request-Id", "req-42")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()

	evs := f.stored()
	if len(evs) != 1 {
		t.Fatalf("%d events stored, want 1", len(evs))
	}
	e := evs[0]
	if e.IP != "127.0.0.1" || e.UserAgent != "curl/8.7.1" || e.RequestID != "req-42" || e.Outcome != audit.OutcomeSuccess ||
		!e.At.Equal(f.clock.Now()) || !audit.ValidCursor(e.ID) || e.ExpiresAt != nil {
		t.Errorf("event %+v: want the request's IP, user agent and id, success, the clock's time, an ordered id, no expiry", e)
	}
	if len(e.Details) != 1 || e.Details["revokedCount"] != "2" {
		t.Errorf("details %v: want only revokedCount (keys naming secrets dropped)", e.Details)
	}
}

// TestListPagesInOrder: pages follow the cursor without gaps or repeats, and filter by user
// and type.
func TestListPagesInOrder(t *testing.T) {
	f := newFixture(t, 0)
	ctx := context.Background()
	tn := f.tenant()
	for i := range 12 {
		if i%4 == 0 {
			f.clock.Step(time.Millisecond) // some events share a millisecond, some do not
		}
		typ := audit.TypeLoginSuccess
		if i%3 == 0 {
			typ = audit.TypeLogout
		}
		f.log.Record(ctx, tn, audit.Event{Type: typ, SubjectID: "user" + strconv.Itoa(i%2), Details: map[string]string{"n": strconv.Itoa(i)}})
	}
	cases := map[string]struct {
		q     audit.Query
		want  []int
		pages int
	}{
		"all, by 5":        {audit.Query{Limit: 5}, []int{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11}, 3},
		"all, by 12":       {audit.Query{Limit: 12}, []int{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11}, 1},
		"one user, by 2":   {audit.Query{Limit: 2, UserID: "user1"}, []int{1, 3, 5, 7, 9, 11}, 3},
		"one type, by 50":  {audit.Query{Type: audit.TypeLogout}, []int{0, 3, 6, 9}, 1},
		"nobody":           {audit.Query{UserID: "user9"}, nil, 1},
		"newest, by 5":     {audit.Query{Limit: 5, Newest: true}, []int{11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0}, 3},
		"newest, one user": {audit.Query{Limit: 2, UserID: "user1", Newest: true}, []int{11, 9, 7, 5, 3, 1}, 3},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			var got []int
			q, pages := tc.q, 0
			for {
				page, err := f.log.List(ctx, tn, q)
				if err != nil {
					t.Fatal(err)
				}
				pages++
				for _, e := range page.Items {
					n, _ := strconv.Atoi(e.Details["n"])
					got = append(got, n)
				}
				if page.Next == "" {
					break
				}
				if page.Next != page.Items[len(page.Items)-1].ID || pages > 20 {
					t.Fatalf("next %q is not the last item's id", page.Next)
				}
				q.After = page.Next
			}
			if fmt.Sprint(got) != fmt.Sprint(tc.want) || pages != tc.pages {
				t.Errorf("got %v in %d pages, want %v in %d", got, pages, tc.want, tc.pages)
			}
		})
	}
}

// TestRetention: events past the retention are never listed and are pruned; each carries its
// expiry for a TTL index.
func TestRetention(t *testing.T) {
	f := newFixture(t, time.Hour)
	ctx := context.Background()
	tn := f.tenant()
	f.log.Record(ctx, tn, audit.Event{Type: audit.TypeLogout, SubjectID: "old"})
	f.clock.Step(2 * time.Hour)
	f.log.Record(ctx, tn, audit.Event{Type: audit.TypeLogout, SubjectID: "new"})

	page, err := f.log.List(ctx, tn, audit.Query{})
	if err != nil {
		t.Fatal(err)
	}
	if len(page.Items) != 1 || page.Items[0].SubjectID != "new" {
		t.Errorf("listed %+v, want only the event within the retention", page.Items)
	}
	if e := page.Items[0]; e.ExpiresAt == nil || !e.ExpiresAt.Equal(e.At.Add(time.Hour)) {
		t.Errorf("expiresAt %v, want at + 1h", e.ExpiresAt)
	}
	n, err := f.log.Prune(ctx, tn)
	if err != nil || n != 1 {
		t.Fatalf("Prune deleted %d (%v), want 1", n, err)
	}
	if evs := f.stored(); len(evs) != 1 || evs[0].SubjectID != "new" {
		t.Errorf("stored after pruning: %+v", evs)
	}
}

// TestKeyRotationSeen: a change of the active signing key is recorded once by Run; loading the
// tenant, or an update keeping the key, is not a rotation.
func TestKeyRotationSeen(t *testing.T) {
	f := newFixture(t, 0)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- f.log.Run(ctx) }()
	defer func() { cancel(); <-done }()

	oldKID := f.cfg.Keys.ActiveKID
	same := f.cfg
	same.Spec.DisplayName = "Alpha"
	f.reg.Upsert(same)
	rotated := f.cfg
	rotated.Keys = keySet(t, f.cfg.Keys.Keys...)
	f.reg.Upsert(rotated)

	deadline := time.Now().Add(15 * time.Second)
	var evs []audit.Event
	for len(evs) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("no key rotation event")
		}
		time.Sleep(10 * time.Millisecond)
		evs = f.stored()
	}
	e := evs[0]
	if len(evs) != 1 || e.Type != audit.TypeKeyRotationSeen || e.ActorID != audit.ActorSystem ||
		e.Details["kid"] != rotated.Keys.ActiveKID || e.Details["previousKid"] != oldKID {
		t.Errorf("events %+v, want one keys.rotation_seen from %s to %s", evs, oldKID, rotated.Keys.ActiveKID)
	}
}

// TestNilLog: a server without a trail records and lists nothing, and does not fail.
func TestNilLog(t *testing.T) {
	f := newFixture(t, 0)
	var l *audit.Log
	l.Record(context.Background(), f.tenant(), audit.Event{Type: audit.TypeLogout})
	page, err := l.List(context.Background(), f.tenant(), audit.Query{})
	if err != nil || len(page.Items) != 0 || page.Next != "" {
		t.Errorf("nil Log List: %+v, %v", page, err)
	}
	if evs := f.stored(); len(evs) != 0 {
		t.Errorf("a nil Log stored %d events", len(evs))
	}
}
