package authserver_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/authmesh/authmesh/authserver"
	"github.com/authmesh/authmesh/authserver/httpapi"
	"github.com/authmesh/authmesh/authserver/tenancy"
	"github.com/authmesh/authmesh/internal/testenv"
)

var testDB *testenv.Mongo

func TestMain(m *testing.M) { os.Exit(testenv.RunWithMongo(m, &testDB)) }

// fileTenant is one tenant of a test server: its manifest's spec (YAML, indented two spaces)
// and files for its state directory.
type fileTenant struct {
	spec  string
	state map[string]string
}

// harness is a running auth server over real HTTP with file tenants.
type harness struct {
	srv      *authserver.Server
	public   *httptest.Server
	admin    *httptest.Server
	stateDir string
	dbName   string
}

// echoRequest is the body of the test-only route POST /test/echo.
type echoRequest struct {
	Name  string `json:"name" validate:"required,min=2"`
	Email string `json:"email" validate:"required,email"`
	Age   int    `json:"age" validate:"gte=0"`
}

// tokenRequest is the body of the test-only route POST /test/token, which issues an access
// token the way the login handlers will.
type tokenRequest struct {
	Sub  string `json:"sub" validate:"required"`
	Role string `json:"role" validate:"required"`
	Sid  string `json:"sid" validate:"required,uuid"`
}

func startServer(t *testing.T, tenants map[string]fileTenant) *harness {
	t.Helper()
	tenantsDir, stateDir := t.TempDir(), t.TempDir()
	dbName := testDB.Database(t).Name()
	for name, ft := range tenants {
		manifest := fmt.Sprintf("apiVersion: authmesh.dev/v1alpha1\nkind: Tenant\nmetadata:\n  name: %s\nspec:\n  database: {name: %s_%s}\n%s",
			name, dbName, strings.ReplaceAll(name, "-", "_"), ft.spec)
		if err := os.WriteFile(filepath.Join(tenantsDir, name+".yaml"), []byte(manifest), 0o644); err != nil {
			t.Fatal(err)
		}
		for file, content := range ft.state {
			path := filepath.Join(stateDir, name, file)
			if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
				t.Fatal(err)
			}
		}
	}

	public := httptest.NewUnstartedServer(nil)
	cfg := authserver.DefaultConfig()
	cfg.PublicURL = "http://" + public.Listener.Addr().String()
	cfg.TenantSource = authserver.SourceFiles
	cfg.TenantsDir, cfg.StateDir, cfg.MongoURI = tenantsDir, stateDir, testDB.URI
	cfg.FilePollInterval = 50 * time.Millisecond
	cfg.MongoPingTimeout = 500 * time.Millisecond
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	srv, err := authserver.New(cfg, nil, prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	registerTestRoutes(srv)
	public.Config.Handler = srv.PublicHandler()
	public.Start()
	admin := httptest.NewServer(srv.AdminHandler())

	src, err := tenancy.NewFileSource(tenancy.FileSourceOptions{
		TenantsDir: tenantsDir, StateDir: stateDir, DefaultURI: cfg.MongoURI, PollInterval: cfg.FilePollInterval,
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx, src) }()
	t.Cleanup(func() {
		public.Close()
		admin.Close()
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
		srv.Close()
	})
	eventually(t, "tenants are loaded", func() bool { return srv.Registry.Ready() == nil })
	return &harness{srv: srv, public: public, admin: admin, stateDir: stateDir, dbName: dbName}
}

// registerTestRoutes adds routes with bodies, registered the way later handlers register
// theirs.
func registerTestRoutes(srv *authserver.Server) {
	srv.Public.Handle("POST /test/echo", httpapi.HandlerFunc(func(w http.ResponseWriter, r *http.Request) error {
		var in echoRequest
		if err := srv.Decoder.Decode(r, &in); err != nil {
			return err
		}
		t := tenancy.FromContext(r.Context())
		return httpapi.WriteSuccess(w, r, http.StatusOK, "ECHOED", "Echoed.", map[string]any{"name": in.Name, "tenant": t.ID, "database": t.DB.Name()})
	}), srv.Registry.Middleware(tenancy.RouteOptions{}))
	srv.Public.Handle("POST /test/token", httpapi.HandlerFunc(func(w http.ResponseWriter, r *http.Request) error {
		var in tokenRequest
		if err := srv.Decoder.Decode(r, &in); err != nil {
			return err
		}
		t := tenancy.FromContext(r.Context())
		issued, err := t.Tokens.Issue(tokensSubject(in))
		if err != nil {
			return err
		}
		return httpapi.WriteSuccess(w, r, http.StatusOK, "TOKEN_ISSUED", "Token issued.", map[string]any{
			"accessToken": issued.Token, "tokenType": "Bearer", "expiresIn": int(issued.ExpiresIn.Seconds()),
		})
	}), srv.Registry.Middleware(tenancy.RouteOptions{NoDatabase: true}))
}

// eventually polls cond until it holds or a deadline passes.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting until %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

type envelope struct {
	Message string          `json:"message"`
	Data    json.RawMessage `json:"data"`
	Meta    struct {
		Status  string          `json:"status"`
		Code    string          `json:"code"`
		Details json.RawMessage `json:"details"`
	} `json:"meta"`
	TS string `json:"ts"`
}

// call makes one request and returns the response with its body read.
func call(t testing.TB, method, url string, header map[string]string, body io.Reader) (*http.Response, []byte) {
	t.Helper()
	resp, raw, err := tryCall(method, url, header, body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, raw
}

// tryCall is call for any goroutine.
func tryCall(method, url string, header map[string]string, body io.Reader) (*http.Response, []byte, error) {
	req, err := http.NewRequest(method, url, body)
	if err != nil {
		return nil, nil, err
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	return resp, raw, err
}
