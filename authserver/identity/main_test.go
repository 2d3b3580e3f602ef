package identity_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	clocktesting "k8s.io/utils/clock/testing"
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
	"github.com/authmesh/authmesh/authserver/identity"
	"github.com/authmesh/authmesh/authserver/mail"
	"github.com/authmesh/authmesh/authserver/sessions"
	"github.com/authmesh/authmesh/authserver/tenancy"
	"github.com/authmesh/authmesh/internal/testenv"
)

var testDB *testenv.Mongo

func TestMain(m *testing.M) { os.Exit(testenv.RunWithMongo(m, &testDB)) }

// switchMailer sends through the real SMTP sender unless a test swaps in another.
type switchMailer struct {
	mu sync.Mutex
	s  mail.Sender
}

func (m *switchMailer) Send(ctx context.Context, msg mail.Message) error {
	m.mu.Lock()
	s := m.s
	m.mu.Unlock()
	return s.Send(ctx, msg)
}

func (m *switchMailer) set(s mail.Sender) {
	m.mu.Lock()
	m.s = s
	m.mu.Unlock()
}

// harness is an auth server with the identity routes over real HTTP, file tenants on the
// dev database, and a real SMTP listener.
type harness struct {
	t      testing.TB
	srv    *authserver.Server
	url    string
	clock  *clocktesting.FakeClock
	smtp   *testenv.SMTPServer
	mailer *switchMailer
	smtpOK mail.Sender
	dbName string
	svc    *identity.Service
	// sessions is the Service the identity Service starts sessions with.
	sessions *sessions.Service
	// metrics holds the identity Service's metrics.
	metrics *prometheus.Registry
}

type serverOptions struct {
	tenants    map[string]string // tenant name -> spec lines (YAML, indented two spaces)
	rateLimits *authserver.RateLimits
}

// unlimited switches every rate limit off.
var unlimited = authserver.RateLimits{}

func startServer(t testing.TB, o serverOptions) *harness {
	t.Helper()
	tenantsDir, stateDir := t.TempDir(), t.TempDir()
	dbName := testDB.Database(t).Name()
	for name, spec := range o.tenants {
		manifest := fmt.Sprintf("apiVersion: authmesh.dev/v1alpha1\nkind: Tenant\nmetadata:\n  name: %s\nspec:\n  database: {name: %s_%s}\n%s",
			name, dbName, name, spec)
		if err := os.WriteFile(filepath.Join(tenantsDir, name+".yaml"), []byte(manifest), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	smtpSrv, err := testenv.StartSMTP()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = smtpSrv.Stop() })
	host, port := splitHostPort(t, smtpSrv.Addr)

	public := httptest.NewUnstartedServer(nil)
	cfg := authserver.DefaultConfig()
	cfg.PublicURL = "http://" + public.Listener.Addr().String()
	cfg.TenantSource = authserver.SourceFiles
	cfg.TenantsDir, cfg.StateDir, cfg.MongoURI = tenantsDir, stateDir, testDB.URI
	cfg.FilePollInterval = 50 * time.Millisecond
	cfg.Identity.SMTP = mail.SMTPConfig{Host: host, Port: port, TLS: mail.TLSNone, Timeout: 5 * time.Second}
	if o.rateLimits != nil {
		cfg.Identity.RateLimits = *o.rateLimits
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	srv, err := authserver.New(cfg, slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn})), prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	clk := clocktesting.NewFakeClock(time.Now().UTC().Truncate(time.Millisecond))
	smtpOK, err := mail.NewSMTP(cfg.Identity.SMTP)
	if err != nil {
		t.Fatal(err)
	}
	mailer := &switchMailer{s: smtpOK}
	metrics := prometheus.NewRegistry()
	sess := &sessions.Service{Now: clk.Now}
	svc, err := identity.Register(srv, identity.Options{
		Sessions:   sess,
		Mailer:     mailer,
		Now:        clk.Now,
		Registerer: metrics,
	})
	if err != nil {
		t.Fatal(err)
	}
	public.Config.Handler = srv.PublicHandler()
	public.Start()

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
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
		srv.Close()
	})
	deadline := time.Now().Add(15 * time.Second)
	for srv.Registry.Ready() != nil {
		if time.Now().After(deadline) {
			t.Fatal("tenants not loaded")
		}
		time.Sleep(10 * time.Millisecond)
	}
	return &harness{t: t, srv: srv, url: public.URL, clock: clk, smtp: smtpSrv, mailer: mailer, smtpOK: smtpOK, dbName: dbName, svc: svc, sessions: sess, metrics: metrics}
}

// testWriter sends server logs (warnings and errors) to the test's log.
type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

func splitHostPort(t testing.TB, addr string) (string, int) {
	t.Helper()
	host, p, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	port, err := strconv.Atoi(p)
	if err != nil {
		t.Fatal(err)
	}
	return host, port
}

// db is a tenant's database.
func (h *harness) db(tenant string) *mongo.Database {
	return testDB.Client.Database(h.dbName + "_" + tenant)
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

type response struct {
	status int
	header http.Header
	env    envelope
	body   []byte
}

// do sends one request; header may set x-tenant-id, User-Agent, Accept, Content-Type.
func (h *harness) do(method, path string, header map[string]string, body string) (response, error) {
	req, err := http.NewRequest(method, h.url+path, strings.NewReader(body))
	if err != nil {
		return response{}, err
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return response{}, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return response{}, err
	}
	r := response{status: resp.StatusCode, header: resp.Header, body: raw}
	if strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
		if err := json.Unmarshal(raw, &r.env); err != nil {
			return r, fmt.Errorf("%s %s: body %.300q is not an envelope: %w", method, path, raw, err)
		}
	}
	return r, nil
}

// post sends JSON to a tenant's route.
func (h *harness) post(tenant, path string, body any) response {
	h.t.Helper()
	r, err := h.tryPost(tenant, path, body)
	if err != nil {
		h.t.Fatal(err)
	}
	return r
}

func (h *harness) tryPost(tenant, path string, body any) (response, error) {
	raw, err := json.Marshal(body)
	if err != nil {
		return response{}, err
	}
	header := map[string]string{"User-Agent": chromeOnMac}
	if tenant != "" {
		header["x-tenant-id"] = tenant
	}
	return h.do("POST", path, header, string(raw))
}

const chromeOnMac = "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36"

// want fails the test unless r has the status and code.
func want(t testing.TB, r response, status int, code string) {
	t.Helper()
	if r.status != status || r.env.Meta.Code != code {
		t.Fatalf("got %d %s (%q, details %s), want %d %s", r.status, r.env.Meta.Code, r.env.Message, r.env.Meta.Details, status, code)
	}
}

// signup creates a user over HTTP.
func (h *harness) signup(tenant, username, email, mobile, pw string) {
	h.t.Helper()
	body := map[string]string{"username": username, "email": email, "password": pw}
	if mobile != "" {
		body["mobile"] = mobile
	}
	want(h.t, h.post(tenant, "/auth/signup", body), http.StatusCreated, identity.CodeSignupSuccess)
}

type otpSent struct {
	LoginID   string `json:"loginId"`
	ExpiresAt string `json:"expiresAt"`
}

// login logs in with a right password and returns the loginId and the mailed code.
func (h *harness) login(tenant, id, pw, email string) (loginID, code string) {
	h.t.Helper()
	before := h.mailCount(email)
	r := h.post(tenant, "/auth/login", map[string]string{"usernameOrEmailOrMobile": id, "password": pw})
	want(h.t, r, http.StatusOK, identity.CodeOTPSent)
	var data otpSent
	if err := json.Unmarshal(r.env.Data, &data); err != nil || data.LoginID == "" {
		h.t.Fatalf("OTP_SENT data %s: %v", r.env.Data, err)
	}
	return data.LoginID, h.codeFromMail(email, before)
}

var codeRE = regexp.MustCompile(`(?m)^\s+(\d{6,10})\s*$`)

// codeFromMail waits for the mail number skip (0-based) to email and returns its code.
func (h *harness) codeFromMail(email string, skip int) string {
	h.t.Helper()
	msg := h.waitMail(email, skip)
	m := codeRE.FindStringSubmatch(msg.Text)
	if m == nil {
		h.t.Fatalf("no code in mail %q", msg.Text)
	}
	return m[1]
}

func (h *harness) waitMail(email string, skip int) testenv.Message {
	h.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	msg, err := h.smtp.WaitFor(ctx, email, skip)
	if err != nil {
		h.t.Fatal(err)
	}
	msg.Text = strings.ReplaceAll(msg.Text, "\r\n", "\n")
	return msg
}

// mailCount is how many mails email has received.
func (h *harness) mailCount(email string) int {
	n := 0
	for _, m := range h.smtp.Messages() {
		for _, to := range m.To {
			if strings.EqualFold(to, email) {
				n++
			}
		}
	}
	return n
}

// limits returns rate limits that are all off except those set.
func limits(set func(*authserver.RateLimits)) *authserver.RateLimits {
	l := unlimited
	set(&l)
	return &l
}
