// Package authstack runs a whole auth server for tests, wired as cmd/authserver wires it
// (identity, sessions, account management, the admin API and the audit trail), over real HTTP
// on loopback, with file tenants on the test database (testenv.Mongo), mail through the real
// SMTP sender to a capturing SMTP listener (testenv.StartSMTP), and one injected clock.
//
// It is test support only: nothing outside _test.go files imports it, except hack/bench (the
// `make bench` program), which runs it with a testing.TB of its own.
package authstack

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.mongodb.org/mongo-driver/v2/mongo"

	"github.com/authmesh/authmesh/authserver"
	"github.com/authmesh/authmesh/authserver/account"
	"github.com/authmesh/authmesh/authserver/admin"
	"github.com/authmesh/authmesh/authserver/audit"
	"github.com/authmesh/authmesh/authserver/identity"
	"github.com/authmesh/authmesh/authserver/internalauth"
	"github.com/authmesh/authmesh/authserver/mail"
	"github.com/authmesh/authmesh/authserver/sessions"
	"github.com/authmesh/authmesh/authserver/tenancy"
	"github.com/authmesh/authmesh/client"
	"github.com/authmesh/authmesh/guard"
	"github.com/authmesh/authmesh/internal/testenv"
)

// Clock is the injected clock of a Stack: it starts at the real time (so tokens verify
// against the real clock of guard's followers too) and moves only when a test moves it.
type Clock struct {
	mu sync.Mutex
	t  time.Time
}

// Now returns the clock's time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

// Advance moves the clock on by d.
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// Options configures Start.
type Options struct {
	// Tenants are tenant name -> spec lines (YAML, indented two spaces).
	Tenants map[string]string
	// Config adjusts the server's configuration; rate limits are all off unless it sets them.
	Config func(*authserver.Config)
}

// Replica is one running auth server.
type Replica struct {
	URL         string // the public API
	InternalURL string // the internal API (revocation feed)
	Server      *authserver.Server
	Identity    *identity.Service
	Sessions    *sessions.Service
	Account     *account.Service
	Audit       *audit.Log
	Metrics     *prometheus.Registry
}

// Stack is a running auth server, and the replicas added to it, sharing tenants, database,
// clock and SMTP listener. Its Replica is the first one.
type Stack struct {
	*Replica
	t     testing.TB
	Clock *Clock
	SMTP  *testenv.SMTPServer

	opts       Options
	db         *testenv.Mongo
	dbName     string
	tenantsDir string
	stateDir   string
	smtpHost   string
	smtpPort   int
}

// Start runs a Stack until the test ends.
func Start(t testing.TB, db *testenv.Mongo, o Options) *Stack {
	t.Helper()
	s := &Stack{t: t, db: db, opts: o, dbName: db.Database(t).Name(), tenantsDir: t.TempDir(), stateDir: t.TempDir(),
		Clock: &Clock{t: time.Now().UTC().Truncate(time.Millisecond)}}
	for name, spec := range o.Tenants {
		s.WriteTenant(name, spec)
		t.Cleanup(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			_ = db.Client.Database(s.tenantDB(name)).Drop(ctx)
		})
	}
	smtpSrv, err := testenv.StartSMTP()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = smtpSrv.Stop() })
	s.SMTP = smtpSrv
	host, p, _ := net.SplitHostPort(smtpSrv.Addr)
	s.smtpHost = host
	s.smtpPort, _ = strconv.Atoi(p)
	s.Replica = s.AddReplica()
	return s
}

// AddReplica starts another auth server on the same tenants, database, clock and SMTP
// listener, with the same issuer.
func (s *Stack) AddReplica() *Replica {
	t := s.t
	t.Helper()
	public := httptest.NewUnstartedServer(nil)
	cfg := authserver.DefaultConfig()
	cfg.PublicURL = "http://" + public.Listener.Addr().String()
	if s.Replica != nil {
		cfg.PublicURL = s.Server.Config.PublicURL
	}
	cfg.TenantSource = authserver.SourceFiles
	cfg.TenantsDir, cfg.StateDir, cfg.MongoURI = s.tenantsDir, s.stateDir, s.db.URI
	cfg.FilePollInterval = 50 * time.Millisecond
	cfg.Identity.SMTP = mail.SMTPConfig{Host: s.smtpHost, Port: s.smtpPort, TLS: mail.TLSNone, Timeout: 5 * time.Second}
	cfg.Identity.RateLimits = authserver.RateLimits{}
	cfg.Account.RateLimits = authserver.AccountRateLimits{}
	if s.opts.Config != nil {
		s.opts.Config(&cfg)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	logger := slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
	r := &Replica{Metrics: prometheus.NewRegistry()}
	srv, err := authserver.New(cfg, logger, r.Metrics)
	if err != nil {
		t.Fatal(err)
	}
	r.Server = srv
	now := s.Clock.Now
	if r.Audit, err = audit.New(audit.Options{
		Registry: srv.Registry, Retention: cfg.Audit.Retention, PruneInterval: cfg.Audit.PruneInterval,
		Now: now, Logger: logger, Registerer: r.Metrics,
	}); err != nil {
		t.Fatal(err)
	}
	if r.Sessions, err = sessions.New(sessions.Options{
		Registry: srv.Registry, Decoder: srv.Decoder, Logger: logger, Registerer: r.Metrics, Now: now, Audit: r.Audit,
	}); err != nil {
		t.Fatal(err)
	}
	r.Sessions.Register(sessions.Routes{Public: srv.Public, Internal: srv.Internal, InternalAuth: internalauth.Middleware(internalauth.None{})})
	if r.Identity, err = identity.Register(srv, identity.Options{Sessions: r.Sessions, Now: now, Registerer: r.Metrics, Audit: r.Audit}); err != nil {
		t.Fatal(err)
	}
	if r.Account, err = account.Register(srv, account.Options{
		Identity: r.Identity, Sessions: r.Sessions, Audit: r.Audit, Now: now, Registerer: r.Metrics,
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := admin.Register(srv, admin.Options{Sessions: r.Sessions, Audit: r.Audit, Now: now}); err != nil {
		t.Fatal(err)
	}
	public.Config.Handler = srv.PublicHandler()
	public.Start()
	internal := httptest.NewServer(srv.InternalHandler())
	r.URL, r.InternalURL = public.URL, internal.URL

	src, err := tenancy.NewFileSource(tenancy.FileSourceOptions{
		TenantsDir: s.tenantsDir, StateDir: s.stateDir, DefaultURI: cfg.MongoURI, PollInterval: cfg.FilePollInterval,
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	runs := []func(context.Context) error{
		func(ctx context.Context) error { return srv.Run(ctx, src) },
		r.Sessions.Run, r.Account.Run, r.Audit.Run,
	}
	done := make(chan error, len(runs))
	for _, run := range runs {
		go func() { done <- run(ctx) }()
	}
	t.Cleanup(func() {
		cancel()
		for range runs {
			if err := <-done; err != nil {
				t.Errorf("Run: %v", err)
			}
		}
		public.Close()
		internal.Close()
		srv.Close()
	})
	s.Eventually("tenants are loaded", func() bool { return srv.Registry.Ready() == nil })
	return r
}

func (s *Stack) tenantDB(tenant string) string { return s.dbName + "_" + tenant }

// WriteTenant writes (or rewrites) a tenant's manifest; the server picks it up within a poll.
func (s *Stack) WriteTenant(name, spec string) {
	s.t.Helper()
	manifest := fmt.Sprintf("apiVersion: authmesh.dev/v1alpha1\nkind: Tenant\nmetadata:\n  name: %s\nspec:\n  database: {name: %s}\n%s",
		name, s.tenantDB(name), spec)
	path := filepath.Join(s.tenantsDir, name+".yaml")
	if err := os.WriteFile(path+".tmp", []byte(manifest), 0o644); err != nil {
		s.t.Fatal(err)
	}
	if err := os.Rename(path+".tmp", path); err != nil {
		s.t.Fatal(err)
	}
}

// DB is a tenant's database, straight through the driver.
func (s *Stack) DB(tenant string) *mongo.Database { return s.db.Client.Database(s.tenantDB(tenant)) }

// Client is an API client of tenant.
func (s *Stack) Client(tenant string) *client.Client { return s.ClientOf(s.Replica, tenant) }

// ClientOf is an API client of tenant at replica r.
func (s *Stack) ClientOf(r *Replica, tenant string) *client.Client {
	return client.New(r.URL, tenant, client.WithUserAgent(UserAgent))
}

// UserAgent is what Client sends.
const UserAgent = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36"

// Signup creates a user over HTTP and returns it.
func (s *Stack) Signup(tenant, username, email, password string) *client.User {
	s.t.Helper()
	u, err := s.Client(tenant).Signup(context.Background(), client.SignupRequest{Username: username, Email: email, Password: password})
	if err != nil {
		s.t.Fatalf("signup of %s: %v", username, err)
	}
	return u
}

var codeRE = regexp.MustCompile(`(?m)^\s+(\d{6,10})\s*$`)

// Login logs in over HTTP with the code mailed to email, and returns the tokens.
func (s *Stack) Login(tenant, identifier, password, email string) *client.TokenPair {
	s.t.Helper()
	ctx := context.Background()
	c := s.Client(tenant)
	before := s.MailCount(email)
	res, err := c.Login(ctx, identifier, password)
	if err != nil {
		s.t.Fatalf("login of %s: %v", identifier, err)
	}
	if res.Tokens != nil {
		return res.Tokens
	}
	pair, err := c.Verify(ctx, res.LoginID, s.LoginCode(email, before))
	if err != nil {
		s.t.Fatalf("verify of %s: %v", identifier, err)
	}
	return pair
}

// LoginCode waits for mail number skip (0-based) to email and returns the login code in it.
func (s *Stack) LoginCode(email string, skip int) string {
	s.t.Helper()
	m := codeRE.FindStringSubmatch(s.WaitMail(email, skip).Text)
	if m == nil {
		s.t.Fatalf("no login code in mail %d to %s", skip, email)
	}
	return m[1]
}

// WaitMail waits for mail number skip (0-based) to email.
func (s *Stack) WaitMail(email string, skip int) testenv.Message {
	s.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	msg, err := s.SMTP.WaitFor(ctx, email, skip)
	if err != nil {
		s.t.Fatalf("waiting for mail %d to %s: %v", skip, email, err)
	}
	msg.Text = strings.ReplaceAll(msg.Text, "\r\n", "\n")
	return msg
}

// MailCount is how many mails email has received.
func (s *Stack) MailCount(email string) int {
	n := 0
	for _, m := range s.SMTP.Messages() {
		for _, to := range m.To {
			if strings.EqualFold(to, email) {
				n++
			}
		}
	}
	return n
}

var linkRE = regexp.MustCompile(`http://\S+/auth/password/reset\?token=(\S+)`)

// ResetToken returns the token of the reset link in a mail.
func (s *Stack) ResetToken(msg testenv.Message) string {
	s.t.Helper()
	m := linkRE.FindStringSubmatch(msg.Text)
	if m == nil {
		s.t.Fatalf("no reset link in mail %q", msg.Text)
	}
	return m[1]
}

// Follow starts a guard.RevocationFollower (a sidecar's) on the internal listener and waits
// for its first full read.
func (s *Stack) Follow(tenant string) *guard.RevocationFollower {
	s.t.Helper()
	f := guard.NewRevocationFollower(guard.RevocationFollowerConfig{
		BaseURL: s.InternalURL, Tenant: tenant, Wait: 20 * time.Second, RetryDelay: 50 * time.Millisecond,
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); f.Run(ctx) }()
	s.t.Cleanup(func() { cancel(); <-done })
	wctx, wcancel := context.WithTimeout(ctx, 15*time.Second)
	defer wcancel()
	if err := f.WaitSynced(wctx); err != nil {
		s.t.Fatalf("the follower never read the feed: %v", err)
	}
	return f
}

// Eventually polls cond until it holds or 15 seconds pass: a wait, never an assertion on
// timing.
func (s *Stack) Eventually(what string, cond func() bool) {
	s.t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			s.t.Fatalf("timed out waiting until %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Response is a raw answer of Do.
type Response struct {
	Status int
	Header http.Header
	Body   []byte
	// Code and Message are the envelope's, when the body is one.
	Code, Message string
	Data          json.RawMessage
}

// Do sends one request to the public API; header may set x-tenant-id, Accept, Content-Type,
// Authorization.
func (s *Stack) Do(method, path string, header map[string]string, body string) Response {
	s.t.Helper()
	req, err := http.NewRequest(method, s.URL+path, strings.NewReader(body))
	if err != nil {
		s.t.Fatal(err)
	}
	req.Header.Set("User-Agent", UserAgent)
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		s.t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		s.t.Fatal(err)
	}
	r := Response{Status: resp.StatusCode, Header: resp.Header, Body: raw}
	if strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
		var env struct {
			Message string          `json:"message"`
			Data    json.RawMessage `json:"data"`
			Meta    struct {
				Code string `json:"code"`
			} `json:"meta"`
		}
		if err := json.Unmarshal(r.Body, &env); err == nil {
			r.Code, r.Message, r.Data = env.Meta.Code, env.Message, env.Data
		}
	}
	return r
}

// testWriter sends server logs (warnings and errors) to the test's log.
type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}
