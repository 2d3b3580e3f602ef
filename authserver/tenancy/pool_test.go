package tenancy_test

import (
	"context"
	"errors"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/authmesh/authmesh/authserver/tenancy"
)

// uriVariant is the test server's URI with an appName, so that tests get distinct URIs (and
// so distinct clients) for one server.
func uriVariant(t *testing.T, app string) string {
	t.Helper()
	u, err := url.Parse(testDB.URI)
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	q.Set("appName", app)
	u.RawQuery = q.Encode()
	return u.String()
}

func newPool(t *testing.T, opts tenancy.PoolOptions) *tenancy.Pool {
	t.Helper()
	p, err := tenancy.NewPool(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	return p
}

func acquire(t *testing.T, p *tenancy.Pool, uri string) *tenancy.Lease {
	t.Helper()
	l, err := p.Acquire(t.Context(), uri)
	if err != nil {
		t.Fatalf("Acquire: %v", err)
	}
	return l
}

// eventually polls cond until it holds or the deadline passes.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting until %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestPoolSharesOneClientPerURI(t *testing.T) {
	p := newPool(t, tenancy.PoolOptions{})
	a, b := acquire(t, p, uriVariant(t, "a")), acquire(t, p, uriVariant(t, "a"))
	c := acquire(t, p, uriVariant(t, "c"))
	if a.Client() != b.Client() {
		t.Error("two leases on one URI got different clients")
	}
	if a.Client() == c.Client() {
		t.Error("two URIs share a client")
	}
	if err := a.Client().Ping(t.Context(), nil); err != nil {
		t.Fatalf("the leased client does not work: %v", err)
	}
	if got := p.Len(); got != 2 {
		t.Errorf("Len() = %d, want 2", got)
	}
	a.Release()
	a.Release() // twice is harmless
	b.Release()
	c.Release()
}

func TestPoolEvictsLeastRecentlyUsedIdleClient(t *testing.T) {
	reg := prometheus.NewRegistry()
	p := newPool(t, tenancy.PoolOptions{MaxClients: 2, Registerer: reg})
	first := acquire(t, p, uriVariant(t, "first"))
	firstClient := first.Client()
	first.Release()
	second := acquire(t, p, uriVariant(t, "second"))
	second.Release()
	acquire(t, p, uriVariant(t, "first")).Release() // first is now the most recent
	third := acquire(t, p, uriVariant(t, "third"))
	defer third.Release()

	if got := p.Len(); got != 2 {
		t.Fatalf("Len() = %d, want MaxClients 2", got)
	}
	again := acquire(t, p, uriVariant(t, "first"))
	defer again.Release()
	if again.Client() != firstClient {
		t.Error("the most recently used client was evicted")
	}
	want := `# HELP authmesh_authserver_mongo_client_closes_total MongoDB clients closed, by reason: idle, evicted (least recently used, over MaxClients), unused (no tenant uses the URI), shutdown.
# TYPE authmesh_authserver_mongo_client_closes_total counter
authmesh_authserver_mongo_client_closes_total{reason="evicted"} 1
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "authmesh_authserver_mongo_client_closes_total"); err != nil {
		t.Errorf("one eviction (the second URI) expected: %v", err)
	}
}

func TestPoolNeverClosesAClientInUse(t *testing.T) {
	p := newPool(t, tenancy.PoolOptions{MaxClients: 1})
	busy := acquire(t, p, uriVariant(t, "busy"))
	other := acquire(t, p, uriVariant(t, "other"))
	if err := busy.Client().Ping(t.Context(), nil); err != nil {
		t.Fatalf("a client in use was closed: %v", err)
	}
	busy.Release()
	other.Release()
}

func TestPoolClosesIdleAndUnusedClients(t *testing.T) {
	p := newPool(t, tenancy.PoolOptions{IdleTimeout: 200 * time.Millisecond})
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	go p.Run(ctx)

	acquire(t, p, uriVariant(t, "idle")).Release()
	eventually(t, "the idle client is closed", func() bool { return p.Len() == 0 })

	// A URI no tenant uses any more closes when its last request ends: a changed URI
	// rebuilds the client.
	p2 := newPool(t, tenancy.PoolOptions{})
	old, current := uriVariant(t, "old"), uriVariant(t, "current")
	lease := acquire(t, p2, old)
	p2.Retain(map[string]bool{current: true})
	if p2.Len() != 1 {
		t.Fatal("a client in use was closed by Retain")
	}
	lease.Release()
	if got := p2.Len(); got != 0 {
		t.Fatalf("Len() = %d after the last request on a retired URI, want 0", got)
	}
}

func TestPoolReportsUnreachableDatabase(t *testing.T) {
	p := newPool(t, tenancy.PoolOptions{PingTimeout: 300 * time.Millisecond})
	start := time.Now()
	_, err := p.Acquire(t.Context(), "mongodb://127.0.0.1:1/?connectTimeoutMS=200")
	if !errors.Is(err, tenancy.ErrUnreachable) {
		t.Fatalf("err = %v, want ErrUnreachable", err)
	}
	if took := time.Since(start); took > 3*time.Second {
		t.Errorf("took %s to give up, want about the ping timeout", took)
	}
	if e := tenancy.Classify(err); e == nil || e.Status != 503 || e.Code != "TENANT_CONNECTION_MISSING" {
		t.Errorf("Classify(%v) = %v, want 503 TENANT_CONNECTION_MISSING", err, e)
	}
	if _, err := p.Acquire(t.Context(), "not a uri"); err == nil {
		t.Error("Acquire of a malformed URI succeeded")
	}
}
