package tenancy_test

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"go.mongodb.org/mongo-driver/v2/bson"

	authmeshv1alpha1 "github.com/authmesh/authmesh/api/v1alpha1"
	"github.com/authmesh/authmesh/authserver/httpapi"
	"github.com/authmesh/authmesh/authserver/tenancy"
	"github.com/authmesh/authmesh/internal/keys"
	"github.com/authmesh/authmesh/internal/tenantdb"
)

func newRegistry(t *testing.T) *tenancy.Registry {
	t.Helper()
	r, err := tenancy.NewRegistry(tenancy.RegistryOptions{
		PublicURL: "https://auth.example.com/",
		Pool:      newPool(t, tenancy.PoolOptions{PingTimeout: 300 * time.Millisecond}),
	})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func keySet(t *testing.T, alg string, retired ...jose.JSONWebKey) *keys.PrivateSet {
	t.Helper()
	k, err := keys.Generate(alg)
	if err != nil {
		t.Fatal(err)
	}
	return &keys.PrivateSet{Keys: append([]jose.JSONWebKey{k}, retired...), ActiveKID: k.KeyID}
}

func readyConfig(t *testing.T, name string) tenancy.Config {
	t.Helper()
	var spec authmeshv1alpha1.TenantSpec
	tenancy.ApplyDefaults(&spec)
	return tenancy.Config{
		Name: name, Spec: spec, Phase: authmeshv1alpha1.TenantPhaseReady,
		DatabaseName: "db_" + name, URI: testDB.URI, Keys: keySet(t, keys.EdDSA),
	}
}

func TestRegistryAnswersByTenantState(t *testing.T) {
	r := newRegistry(t)
	suspended := readyConfig(t, "suspended")
	suspended.Spec.Suspended = true
	suspendedPhase := readyConfig(t, "suspended-phase")
	suspendedPhase.Phase = authmeshv1alpha1.TenantPhaseSuspended
	pending := readyConfig(t, "pending")
	pending.Phase = authmeshv1alpha1.TenantPhasePending
	noKeys := readyConfig(t, "no-keys")
	noKeys.Keys = nil
	noURI := readyConfig(t, "no-uri")
	noURI.URI = ""
	unreachable := readyConfig(t, "unreachable")
	unreachable.URI = "mongodb://127.0.0.1:1/?connectTimeoutMS=200"
	for _, c := range []tenancy.Config{readyConfig(t, "ready"), suspended, suspendedPhase, pending, noKeys, noURI, unreachable} {
		r.Upsert(c)
	}

	cases := map[string]struct {
		id       string
		withDB   bool
		wantCode string // "" for success
	}{
		"ready":                       {"ready", true, ""},
		"ready without database":      {"ready", false, ""},
		"unknown":                     {"nobody", false, httpapi.CodeTenantNotFound},
		"suspended":                   {"suspended", false, httpapi.CodeTenantSuspended},
		"suspended by phase":          {"suspended-phase", false, httpapi.CodeTenantSuspended},
		"not provisioned":             {"pending", false, httpapi.CodeTenantConnectionMissing},
		"no keys":                     {"no-keys", false, httpapi.CodeTenantConnectionMissing},
		"no connection":               {"no-uri", true, httpapi.CodeTenantConnectionMissing},
		"no connection, no DB needed": {"no-uri", false, ""},
		"unreachable":                 {"unreachable", true, httpapi.CodeTenantConnectionMissing},
		"unreachable, no DB needed":   {"unreachable", false, ""},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			tenant, release, err := r.Acquire(t.Context(), tc.id, tc.withDB)
			if tc.wantCode == "" {
				if err != nil {
					t.Fatalf("Acquire: %v", err)
				}
				defer release()
				if tenant.ID != tc.id || tenant.Issuer != "https://auth.example.com/t/"+tc.id || tenant.Tokens == nil || (tenant.DB != nil) != tc.withDB {
					t.Fatalf("tenant %+v", tenant)
				}
				return
			}
			var e *httpapi.Error
			if !errors.As(err, &e) || e.Code != tc.wantCode {
				t.Fatalf("err = %v, want %s", err, tc.wantCode)
			}
		})
	}
}

func TestRegistryRidesOutBrokenKeysAndSwapsGoodOnes(t *testing.T) {
	r := newRegistry(t)
	cfg := readyConfig(t, "rotating")
	r.Upsert(cfg)
	first, release, err := r.Acquire(t.Context(), "rotating", false)
	if err != nil {
		t.Fatal(err)
	}
	release()

	broken := cfg
	broken.Keys, broken.KeysErr = nil, errors.New("active-kid names no key")
	r.Upsert(broken)
	during, release, err := r.Acquire(t.Context(), "rotating", false)
	if err != nil {
		t.Fatalf("a broken rotation stopped the tenant: %v", err)
	}
	release()
	if during.Tokens.KeyID() != first.Tokens.KeyID() {
		t.Fatalf("kid %q during a broken rotation, want the last good %q", during.Tokens.KeyID(), first.Tokens.KeyID())
	}

	rotated := cfg
	rotated.Keys = keySet(t, keys.ES256, cfg.Keys.Active())
	r.Upsert(rotated)
	after, release, err := r.Acquire(t.Context(), "rotating", false)
	if err != nil {
		t.Fatal(err)
	}
	release()
	if after.Tokens.KeyID() != rotated.Keys.ActiveKID || after.Tokens.Algorithm() != "ES256" {
		t.Fatalf("after rotation kid %q alg %s, want %q ES256", after.Tokens.KeyID(), after.Tokens.Algorithm(), rotated.Keys.ActiveKID)
	}
	// A snapshot taken before the rotation still signs with its own key.
	if first.Tokens.KeyID() != cfg.Keys.ActiveKID {
		t.Fatal("a snapshot changed under its holder")
	}

	r.Delete("rotating")
	if _, _, err := r.Acquire(t.Context(), "rotating", false); err == nil {
		t.Fatal("a deleted tenant still serves")
	}
}

func TestRegistryEnsuresSchemaOfFileTenants(t *testing.T) {
	r := newRegistry(t)
	db := testDB.Database(t)
	cfg := readyConfig(t, "files")
	cfg.DatabaseName = db.Name()
	cfg.EnsureSchema = true
	done := make(chan struct{})
	t.Cleanup(func() { <-done })
	go func() {
		defer close(done)
		_ = r.Run(t.Context(), sourceFunc(func(sink tenancy.Sink) { sink.Upsert(cfg); sink.Synced() }))
	}()
	eventually(t, "the schema exists", func() bool {
		names, err := db.ListCollectionNames(t.Context(), bson.D{})
		return err == nil && slices.Contains(names, tenantdb.Sessions) && slices.Contains(names, tenantdb.Identifiers)
	})
	if err := r.Ready(); err != nil {
		t.Errorf("Ready() = %v after the source synced", err)
	}
}

// sourceFunc is a Source that reports once and then waits for the end.
type sourceFunc func(tenancy.Sink)

func (f sourceFunc) Run(ctx context.Context, sink tenancy.Sink) error {
	f(sink)
	<-ctx.Done()
	return nil
}

func TestPreflightAllowsOriginsOfServingTenants(t *testing.T) {
	r := newRegistry(t)
	cfg := readyConfig(t, "web")
	cfg.Spec.CORS.AllowedOrigins = []string{"https://app.example.com"}
	r.Upsert(cfg)
	for origin, want := range map[string]string{"https://app.example.com": "https://app.example.com", "https://evil.example.com": ""} {
		req, _ := http.NewRequest(http.MethodOptions, "/auth/login", nil)
		req.Header.Set("Origin", origin)
		req.Header.Set("Access-Control-Request-Method", "POST")
		req.Header.Set("Access-Control-Request-Headers", "content-type, x-tenant-id, x-evil")
		w := &headerRecorder{h: http.Header{}}
		r.Preflight().ServeHTTP(w, req)
		if got := w.h.Get("Access-Control-Allow-Origin"); got != want || w.status != http.StatusNoContent {
			t.Errorf("origin %s: got %d allow-origin %q, want 204 %q", origin, w.status, got, want)
		}
		if want != "" && w.h.Get("Access-Control-Allow-Headers") != "content-type, x-tenant-id" {
			t.Errorf("allow-headers %q, want only the known ones", w.h.Get("Access-Control-Allow-Headers"))
		}
	}
}

type headerRecorder struct {
	h      http.Header
	status int
}

func (w *headerRecorder) Header() http.Header         { return w.h }
func (w *headerRecorder) Write(b []byte) (int, error) { return len(b), nil }
func (w *headerRecorder) WriteHeader(s int)           { w.status = s }

// TestWatchReportsStartsAndKeyChanges: watchers hear, after every upsert, whether the tenant
// serves, whether it just started, and its key before and after.
func TestWatchReportsStartsAndKeyChanges(t *testing.T) {
	r := newRegistry(t)
	var got []tenancy.Change
	r.Watch(func(c tenancy.Change) { got = append(got, c) }) // upserts come from this goroutine

	cfg := readyConfig(t, "alpha")
	pending := cfg
	pending.Phase = authmeshv1alpha1.TenantPhasePending
	r.Upsert(pending)
	r.Upsert(cfg)
	r.Upsert(cfg)
	rotated := cfg
	rotated.Keys = keySet(t, keys.EdDSA, cfg.Keys.Keys...)
	r.Upsert(rotated)
	suspended := rotated
	suspended.Spec.Suspended = true
	r.Upsert(suspended)

	k1, k2 := cfg.Keys.ActiveKID, rotated.Keys.ActiveKID
	want := []struct {
		serving, started bool
		kid, prev        string
	}{
		{false, false, k1, ""},
		{true, true, k1, k1},
		{true, false, k1, k1},
		{true, false, k2, k1},
		{false, false, k2, k2},
	}
	if len(got) != len(want) {
		t.Fatalf("%d changes reported, want %d: %+v", len(got), len(want), got)
	}
	for i, w := range want {
		c := got[i]
		if c.Tenant != "alpha" || c.Serving != w.serving || c.Started != w.started || c.KeyID != w.kid || c.PreviousKeyID != w.prev || c.Spec == nil {
			t.Errorf("change %d: %+v, want serving %v started %v kid %s previous %q", i, c, w.serving, w.started, w.kid, w.prev)
		}
	}
}
