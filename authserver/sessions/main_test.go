package sessions_test

import (
	"context"
	"fmt"
	clocktesting "k8s.io/utils/clock/testing"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"

	"github.com/authmesh/authmesh/authserver"
	"github.com/authmesh/authmesh/authserver/sessions"
	"github.com/authmesh/authmesh/authserver/tenancy"
	"github.com/authmesh/authmesh/client"
	"github.com/authmesh/authmesh/internal/tenantdb"
	"github.com/authmesh/authmesh/internal/testenv"
)

var testDB *testenv.Mongo

func TestMain(m *testing.M) { os.Exit(testenv.RunWithMongo(m, &testDB)) }

// replica is one running auth server: public and internal listeners over real HTTP.
type replica struct {
	srv      *authserver.Server
	svc      *sessions.Service
	metrics  *prometheus.Registry
	public   *httptest.Server
	internal *httptest.Server
}

// harness is a set of auth server replicas sharing one database server, tenant files and
// clock.
type harness struct {
	t          testing.TB
	clock      *clocktesting.FakeClock
	dbName     string
	tenantsDir string
	stateDir   string
	replicas   []*replica
	// tune, when set, adjusts each replica's sessions.Options.
	tune func(*sessions.Options)
}

// standardTenants: alpha with the defaults, beta another tenant, grace with a reuse grace,
// idle with an idle timeout and a short absolute lifetime.
var standardTenants = map[string]string{
	"alpha": "",
	"beta":  "",
	"grace": "  tokens: {refreshReuseGrace: 10s}\n",
	"idle":  "  tokens: {accessTokenTTL: 15m, idleTimeout: 10m, refreshTokenTTL: 1h}\n",
}

// start runs one replica serving tenants (name -> spec lines, YAML indented two spaces).
func start(t testing.TB, tenants map[string]string) *harness {
	t.Helper()
	return startTuned(t, tenants, nil)
}

// startTuned is start with the replicas' sessions.Options adjusted by tune.
func startTuned(t testing.TB, tenants map[string]string, tune func(*sessions.Options)) *harness {
	t.Helper()
	h := &harness{
		tune:       tune,
		t:          t,
		clock:      clocktesting.NewFakeClock(time.Now().UTC().Truncate(time.Millisecond)),
		dbName:     testDB.Database(t).Name(),
		tenantsDir: t.TempDir(),
		stateDir:   t.TempDir(),
	}
	for name, spec := range tenants {
		manifest := fmt.Sprintf("apiVersion: authmesh.dev/v1alpha1\nkind: Tenant\nmetadata:\n  name: %s\nspec:\n  database: {name: %s}\n%s",
			name, h.tenantDB(name), spec)
		if err := os.WriteFile(filepath.Join(h.tenantsDir, name+".yaml"), []byte(manifest), 0o644); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			_ = testDB.Client.Database(h.tenantDB(name)).Drop(ctx)
		})
	}
	h.addReplica()
	return h
}

func (h *harness) tenantDB(tenant string) string { return h.dbName + "_" + tenant }

// db is a tenant's database, straight through the driver.
func (h *harness) db(tenant string) *mongo.Database {
	return testDB.Client.Database(h.tenantDB(tenant))
}

// addReplica starts another auth server on the same tenants and database.
func (h *harness) addReplica() *replica {
	t := h.t
	t.Helper()
	public := httptest.NewUnstartedServer(nil)
	cfg := authserver.DefaultConfig()
	cfg.PublicURL = "http://" + public.Listener.Addr().String()
	if len(h.replicas) > 0 {
		cfg.PublicURL = h.replicas[0].srv.Config.PublicURL // one issuer for all replicas
	}
	cfg.TenantSource = authserver.SourceFiles
	cfg.TenantsDir, cfg.StateDir, cfg.MongoURI = h.tenantsDir, h.stateDir, testDB.URI
	cfg.FilePollInterval = 50 * time.Millisecond
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewPedanticRegistry()
	srv, err := authserver.New(cfg, nil, reg)
	if err != nil {
		t.Fatal(err)
	}
	opts := sessions.Options{
		Registry:   srv.Registry,
		Decoder:    srv.Decoder,
		Registerer: reg,
		Now:        h.clock.Now,
	}
	if h.tune != nil {
		h.tune(&opts)
	}
	svc, err := sessions.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	svc.Register(sessions.Routes{Public: srv.Public, Internal: srv.Internal})
	public.Config.Handler = srv.PublicHandler()
	public.Start()
	internal := httptest.NewServer(srv.InternalHandler())

	src, err := tenancy.NewFileSource(tenancy.FileSourceOptions{
		TenantsDir: h.tenantsDir, StateDir: h.stateDir, DefaultURI: cfg.MongoURI, PollInterval: cfg.FilePollInterval,
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 2)
	go func() { done <- srv.Run(ctx, src) }()
	go func() { done <- svc.Run(ctx) }()
	t.Cleanup(func() {
		cancel() // ends the service first, so long polls in flight answer
		for range 2 {
			if err := <-done; err != nil {
				t.Errorf("Run: %v", err)
			}
		}
		public.Close()
		internal.Close()
		srv.Close()
	})
	eventually(t, "tenants are loaded", func() bool { return srv.Registry.Ready() == nil })
	r := &replica{srv: srv, svc: svc, metrics: reg, public: public, internal: internal}
	h.replicas = append(h.replicas, r)
	return r
}

// r0 is the first replica.
func (h *harness) r0() *replica { return h.replicas[0] }

// client returns an API client of the first replica for tenant.
func (h *harness) client(tenant string) *client.Client {
	return client.New(h.r0().public.URL, tenant, client.WithUserAgent("curl/8.7.1"))
}

// user creates a user in tenant and returns its id.
func (h *harness) user(tenant, role string) string {
	h.t.Helper()
	id := uuid.NewString()
	_, err := h.db(tenant).Collection(tenantdb.Users).InsertOne(context.Background(), bson.D{
		{Key: "_id", Value: id}, {Key: "username", Value: "u" + id[len(id)-8:]}, {Key: "role", Value: role},
		{Key: "disabled", Value: false}, {Key: "createdAt", Value: h.clock.Now()},
	})
	if err != nil {
		h.t.Fatal(err)
	}
	return id
}

// login starts a session for userID the way the login handlers do.
func (h *harness) login(tenant, userID, role string) sessions.TokenPair {
	h.t.Helper()
	r := h.r0()
	tn, release, err := r.srv.Registry.Acquire(context.Background(), tenant, true)
	if err != nil {
		h.t.Fatal(err)
	}
	defer release()
	pair, err := r.svc.Start(context.Background(), tn, userID, role, sessions.Device{
		Name: "curl 8", IP: "127.0.0.1", UserAgent: "curl/8.7.1",
	})
	if err != nil {
		h.t.Fatal(err)
	}
	return pair
}

// tenant returns a snapshot of a tenant with its database, for calling the Service directly.
func (h *harness) tenant(r *replica, id string) *tenancy.Tenant {
	h.t.Helper()
	tn, release, err := r.srv.Registry.Acquire(context.Background(), id, true)
	if err != nil {
		h.t.Fatal(err)
	}
	h.t.Cleanup(release)
	return tn
}

// session reads a session document.
func (h *harness) session(tenant, sid string) sessions.Session {
	h.t.Helper()
	var d sessions.Session
	if err := h.db(tenant).Collection(tenantdb.Sessions).FindOne(context.Background(), bson.D{{Key: "_id", Value: sid}}).Decode(&d); err != nil {
		h.t.Fatalf("reading session %s: %v", sid, err)
	}
	return d
}

// eventually polls cond until it holds or a deadline passes; a wait, never an assertion on
// timing.
func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting until %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// wantCode checks that err is an *client.APIError with this status and code.
func wantCode(t testing.TB, what string, err error, status int, code string) *client.APIError {
	t.Helper()
	e, ok := err.(*client.APIError)
	if !ok {
		t.Fatalf("%s: err = %v, want %d %s", what, err, status, code)
	}
	if e.Status != status || e.Code != code {
		t.Fatalf("%s: got %d %s (%q), want %d %s", what, e.Status, e.Code, e.Message, status, code)
	}
	return e
}

// newSID is a session id nobody has.
func newSID() string { return uuid.NewString() }

// replaceSecret keeps a refresh token's session and generation but swaps its secret.
func replaceSecret(token, secret string) string {
	i := strings.LastIndexByte(token, '.')
	return token[:i+1] + secret
}

// withGeneration keeps a refresh token's session and secret but names another generation.
func withGeneration(token string, gen int) string {
	parts := strings.SplitN(token, ".", 3)
	return fmt.Sprintf("%s.%d.%s", parts[0], gen, parts[2])
}

// clientOf returns an API client of replica r for tenant.
func (h *harness) clientOf(r *replica, tenant string) *client.Client {
	return client.New(r.public.URL, tenant, client.WithUserAgent("curl/8.7.1"))
}
