package client_test

import (
	"context"
	"fmt"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/authmesh/authmesh/authserver"
	"github.com/authmesh/authmesh/authserver/identity"
	"github.com/authmesh/authmesh/authserver/internalauth"
	"github.com/authmesh/authmesh/authserver/mail"
	"github.com/authmesh/authmesh/authserver/sessions"
	"github.com/authmesh/authmesh/authserver/tenancy"
	"github.com/authmesh/authmesh/internal/testenv"
)

var testDB *testenv.Mongo

func TestMain(m *testing.M) { os.Exit(testenv.RunWithMongo(m, &testDB)) }

// server is a whole auth server (identity and sessions, wired as cmd/authserver wires them)
// over real HTTP, with its mail captured.
type server struct {
	public   *httptest.Server
	internal *httptest.Server

	mu    sync.Mutex
	mails []mail.Message
	sent  chan struct{}
}

// startServer runs an auth server with file tenants (name -> spec lines, YAML indented two
// spaces).
func startServer(t *testing.T, tenants map[string]string) *server {
	t.Helper()
	tenantsDir, stateDir := t.TempDir(), t.TempDir()
	dbName := testDB.Database(t).Name()
	for name, spec := range tenants {
		manifest := fmt.Sprintf("apiVersion: authmesh.dev/v1alpha1\nkind: Tenant\nmetadata:\n  name: %s\nspec:\n  database: {name: %s_%s}\n%s",
			name, dbName, name, spec)
		if err := os.WriteFile(filepath.Join(tenantsDir, name+".yaml"), []byte(manifest), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	public := httptest.NewUnstartedServer(nil)
	cfg := authserver.DefaultConfig()
	cfg.PublicURL = "http://" + public.Listener.Addr().String()
	cfg.TenantSource = authserver.SourceFiles
	cfg.TenantsDir, cfg.StateDir, cfg.MongoURI = tenantsDir, stateDir, testDB.URI
	cfg.FilePollInterval = 50 * time.Millisecond
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	srv, err := authserver.New(cfg, nil, reg)
	if err != nil {
		t.Fatal(err)
	}
	s := &server{sent: make(chan struct{}, 100)}
	sess, err := sessions.New(sessions.Options{Registry: srv.Registry, Decoder: srv.Decoder, Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	sess.Register(sessions.Routes{Public: srv.Public, Internal: srv.Internal, InternalAuth: internalauth.Middleware(internalauth.None{})})
	if _, err := identity.Register(srv, identity.Options{
		Sessions: sess,
		Mailer: mail.SenderFunc(func(_ context.Context, m mail.Message) error {
			s.mu.Lock()
			s.mails = append(s.mails, m)
			s.mu.Unlock()
			s.sent <- struct{}{}
			return nil
		}),
		Registerer: reg,
	}); err != nil {
		t.Fatal(err)
	}
	public.Config.Handler = srv.PublicHandler()
	public.Start()
	s.public = public
	s.internal = httptest.NewServer(srv.InternalHandler())

	src, err := tenancy.NewFileSource(tenancy.FileSourceOptions{
		TenantsDir: tenantsDir, StateDir: stateDir, DefaultURI: cfg.MongoURI, PollInterval: cfg.FilePollInterval,
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 2)
	go func() { done <- srv.Run(ctx, src) }()
	go func() { done <- sess.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		for range 2 {
			if err := <-done; err != nil {
				t.Errorf("Run: %v", err)
			}
		}
		public.Close()
		s.internal.Close()
		srv.Close()
	})
	deadline := time.Now().Add(15 * time.Second)
	for srv.Registry.Ready() != nil {
		if time.Now().After(deadline) {
			t.Fatal("tenants not loaded")
		}
		time.Sleep(20 * time.Millisecond)
	}
	return s
}

var codeRE = regexp.MustCompile(`(?m)^\s+(\d{6,10})\s*$`)

// nextCode waits for the next mail and returns the login code in it.
func (s *server) nextCode(t *testing.T) string {
	t.Helper()
	select {
	case <-s.sent:
	case <-time.After(10 * time.Second):
		t.Fatal("no mail was sent")
	}
	s.mu.Lock()
	m := s.mails[len(s.mails)-1]
	s.mu.Unlock()
	code := codeRE.FindStringSubmatch(m.Text)
	if code == nil {
		t.Fatalf("no code in mail %q", m.Text)
	}
	return code[1]
}
