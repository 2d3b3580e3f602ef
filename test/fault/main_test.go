// Package fault runs authmesh's components through faults a cluster sees: the database killed
// and restarted under load, the auth server cut off from sidecars, a slow or dead application
// behind the sidecar, clocks that disagree between the auth server and the sidecar, and the
// controller killed while it provisions 100 Tenants. Everything speaks real HTTP on loopback:
// the auth server in process (internal/testenv/authstack) against the dev database program
// (testenv.StartMongo), the sidecar in process (sidecar.New and Serve), and the controller as
// its own binary against an envtest API server.
//
// Every wait is a poll with a deadline; the tests assert outcomes (status, envelope code,
// what survived), and report durations and counts in the test log.
package fault

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"testing"
	"time"

	"github.com/authmesh/authmesh/internal/testenv"
	"github.com/authmesh/authmesh/internal/testenv/authstack"
	"github.com/authmesh/authmesh/sidecar"
)

var long = flag.Bool("fault.long", false, "run the longer variants (longer outages, more requests)")

var testDB *testenv.Mongo

func TestMain(m *testing.M) {
	flag.Parse()
	os.Exit(run(m))
}

func run(m *testing.M) int {
	var err error
	if testDB, err = testenv.StartMongo(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer testDB.Stop()
	return m.Run()
}

// tenantSpec is a tenant whose logins answer tokens at once (no emailed code), so load can
// log in without reading mail.
const tenantSpec = "  displayName: Fault One\n  email: {from: no-reply@fault.example}\n  login: {otp: {enabled: false}}\n"

const tenant = "fault1"

func startStack(t *testing.T) *authstack.Stack {
	t.Helper()
	return authstack.Start(t, testDB, authstack.Options{Tenants: map[string]string{tenant: tenantSpec}})
}

// startSidecar runs a sidecar in process on loopback listeners until the test ends, and waits
// until it is ready.
func startSidecar(t *testing.T, cfg sidecar.Config) string {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	s, err := sidecar.New(ctx, cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	proxyLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	adminLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { _ = s.Serve(ctx, proxyLn, adminLn); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	eventually(t, 15*time.Second, "the sidecar is ready", func() bool { ok, _ := s.Ready(); return ok })
	return "http://" + proxyLn.Addr().String()
}

// sidecarConfig is a sidecar of tenant in front of upstream, reading keys and revocations
// from the stack.
func sidecarConfig(s *authstack.Stack, upstream string) sidecar.Config {
	cfg := sidecar.Defaults()
	cfg.ListenAddr, cfg.AdminAddr = "127.0.0.1:0", "127.0.0.1:0"
	cfg.AuthURL, cfg.FeedURL = s.URL, s.InternalURL
	cfg.Tenant = tenant
	cfg.Public = "/healthz"
	cfg.Upstream = upstream
	cfg.DrainDelay = 0
	cfg.FeedWait = 2 * time.Second
	cfg.MinJWKSFetchInterval = 200 * time.Millisecond
	return cfg
}

// eventually polls cond every 10ms until it holds, failing the test after d.
func eventually(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting until %s", d, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
