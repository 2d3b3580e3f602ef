package sidecar

import (
	"bufio"
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
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/golang-jwt/jwt/v5"

	"github.com/authmesh/authmesh/guard"
	"github.com/authmesh/authmesh/internal/keys"
)

// issuer stands in for the auth server's JWKS and revocation feed over real HTTP, and mints
// tokens with a real tenant key.
type issuer struct {
	*httptest.Server
	t       testing.TB
	mu      sync.Mutex
	keys    map[string][]jose.JSONWebKey // tenant -> signing keys, the first one active
	revoked map[string][]guard.RevokedSession
	changed chan struct{}
	jwksHit map[string]int
}

func newIssuer(t testing.TB, tenants ...string) *issuer {
	is := &issuer{t: t, keys: map[string][]jose.JSONWebKey{}, revoked: map[string][]guard.RevokedSession{}, changed: make(chan struct{}), jwksHit: map[string]int{}}
	for _, tenant := range tenants {
		is.rotate(tenant)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /t/{tenant}/.well-known/jwks.json", func(w http.ResponseWriter, r *http.Request) {
		is.mu.Lock()
		defer is.mu.Unlock()
		tenant := r.PathValue("tenant")
		is.jwksHit[tenant]++
		ks, ok := is.keys[tenant]
		if !ok {
			http.NotFound(w, r)
			return
		}
		set := jose.JSONWebKeySet{}
		for _, k := range ks {
			set.Keys = append(set.Keys, k.Public())
		}
		_ = json.NewEncoder(w).Encode(set)
	})
	mux.HandleFunc("GET /internal/v1/tenants/{tenant}/revocations", func(w http.ResponseWriter, r *http.Request) {
		tenant := r.PathValue("tenant")
		after, _ := strconv.Atoi(r.URL.Query().Get("after"))
		wait, _ := strconv.Atoi(r.URL.Query().Get("wait"))
		deadline := time.After(time.Duration(wait) * time.Second)
		for {
			is.mu.Lock()
			log := is.revoked[tenant]
			changed := is.changed
			is.mu.Unlock()
			if len(log) > after || wait == 0 {
				_ = json.NewEncoder(w).Encode(guard.RevocationFeed{Seq: int64(len(log)), Revoked: append([]guard.RevokedSession{}, log[min(after, len(log)):]...)})
				return
			}
			select {
			case <-changed:
			case <-deadline:
				wait = 0
			case <-r.Context().Done():
				return
			}
		}
	})
	is.Server = httptest.NewServer(mux)
	t.Cleanup(is.Close)
	return is
}

func (is *issuer) rotate(tenant string) {
	k, err := keys.Generate(keys.EdDSA)
	if err != nil {
		is.t.Fatal(err)
	}
	is.mu.Lock()
	is.keys[tenant] = append([]jose.JSONWebKey{k}, is.keys[tenant]...)
	is.mu.Unlock()
}

func (is *issuer) revoke(tenant, sid string) {
	is.mu.Lock()
	is.revoked[tenant] = append(is.revoked[tenant], guard.RevokedSession{SessionID: sid, Exp: time.Now().Add(time.Hour).Unix()})
	close(is.changed)
	is.changed = make(chan struct{})
	is.mu.Unlock()
}

func (is *issuer) jwksFetches(tenant string) int {
	is.mu.Lock()
	defer is.mu.Unlock()
	return is.jwksHit[tenant]
}

type tokenOpts struct {
	tenant, role, sid string
	kid               string // override the header kid
	exp               time.Duration
	tamper            bool
}

func (is *issuer) token(o tokenOpts) string {
	is.mu.Lock()
	k := is.keys[o.tenant][0]
	is.mu.Unlock()
	now := time.Now()
	if o.exp == 0 {
		o.exp = 15 * time.Minute
	}
	if o.sid == "" {
		o.sid = "sid-" + o.role
	}
	claims := guard.Claims{
		RegisteredClaims: jwt.RegisteredClaims{
			Issuer: is.URL + "/t/" + o.tenant, Audience: jwt.ClaimStrings{"authmesh"}, Subject: "user-" + o.role,
			IssuedAt: jwt.NewNumericDate(now), ExpiresAt: jwt.NewNumericDate(now.Add(o.exp)), ID: "jti",
		},
		TenantID: o.tenant, Role: o.role, SessionID: o.sid,
	}
	tok := jwt.NewWithClaims(jwt.SigningMethodEdDSA, claims)
	tok.Header["kid"] = k.KeyID
	if o.kid != "" {
		tok.Header["kid"] = o.kid
	}
	tok.Header["typ"] = guard.AccessTokenType
	s, err := tok.SignedString(k.Key)
	if err != nil {
		is.t.Fatal(err)
	}
	if o.tamper {
		parts := strings.Split(s, ".")
		payload := []byte(parts[1])
		payload[len(payload)/2] ^= 1
		s = parts[0] + "." + string(payload) + "." + parts[2]
	}
	return s
}

// echoApp answers with what reached it, and upgrades WebSocket requests to an echo.
func echoApp(t testing.TB) *httptest.Server {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.EqualFold(r.Header.Get("Upgrade"), "websocket") {
			conn, rw, err := http.NewResponseController(w).Hijack()
			if err != nil {
				return
			}
			defer conn.Close()
			_, _ = fmt.Fprintf(rw, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nX-Seen-Protocol: %s\r\n\r\n", r.Header.Get("Sec-Websocket-Protocol"))
			_ = rw.Flush()
			_, _ = io.Copy(conn, rw)
			return
		}
		if r.URL.Path == "/slow" {
			time.Sleep(300 * time.Millisecond)
		}
		_ = json.NewEncoder(w).Encode(map[string]any{"method": r.Method, "path": r.URL.Path, "rawPath": r.URL.RawPath, "headers": r.Header})
	}))
	t.Cleanup(srv.Close)
	return srv
}

type running struct {
	*Sidecar
	url, admin string
}

func startSidecar(t testing.TB, cfg Config) running {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	s, err := New(ctx, cfg, logger)
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
	r := running{Sidecar: s, url: "http://" + proxyLn.Addr().String(), admin: "http://" + adminLn.Addr().String()}
	waitFor(t, "the sidecar to be ready", func() bool { ok, _ := s.Ready(); return ok })
	return r
}

func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func testConfig(is *issuer, app *httptest.Server, tenant string) Config {
	cfg := Defaults()
	cfg.ListenAddr, cfg.AdminAddr = "127.0.0.1:0", "127.0.0.1:0"
	cfg.AuthURL, cfg.FeedURL = is.URL, is.URL
	cfg.Tenant = tenant
	cfg.Public = "/healthz, /public/**, GET /docs/**"
	cfg.Roles = "/admin/**=admin; POST /reports/**=manager,admin; DELETE /orders/*=manager"
	cfg.Upstream = app.URL
	cfg.DrainDelay = 0
	cfg.FeedWait = 2 * time.Second
	cfg.MinJWKSFetchInterval = 200 * time.Millisecond
	return cfg
}

type echoed struct {
	Method  string      `json:"method"`
	Path    string      `json:"path"`
	RawPath string      `json:"rawPath"`
	Headers http.Header `json:"headers"`
}

func TestSidecarEnforcesPolicy(t *testing.T) {
	is := newIssuer(t, "darmist1", "acme2")
	app := echoApp(t)
	sc := startSidecar(t, testConfig(is, app, "darmist1"))
	anySc := startSidecar(t, testConfig(is, app, guard.AnyTenant))

	user := is.token(tokenOpts{tenant: "darmist1", role: "user"})
	manager := is.token(tokenOpts{tenant: "darmist1", role: "manager"})
	admin := is.token(tokenOpts{tenant: "darmist1", role: "admin"})
	noRole := is.token(tokenOpts{tenant: "darmist1", role: ""})
	expired := is.token(tokenOpts{tenant: "darmist1", role: "admin", exp: -time.Hour})
	tampered := is.token(tokenOpts{tenant: "darmist1", role: "user", tamper: true})
	unknownKid := is.token(tokenOpts{tenant: "darmist1", role: "user", kid: "nope"})
	acme := is.token(tokenOpts{tenant: "acme2", role: "admin"})
	revoked := is.token(tokenOpts{tenant: "darmist1", role: "admin", sid: "gone"})
	is.revoke("darmist1", "gone")
	waitFor(t, "the revocation to arrive", func() bool { return sc.tenants.Revoked(t.Context(), "darmist1", "gone") })

	auth := func(tok string) map[string]string { return map[string]string{"Authorization": "Bearer " + tok} }
	spoof := map[string]string{"X-Auth-User-Id": "evil", "X-Auth-Role": "admin", "X-Auth-Anything": "x", "Connection": "X-Auth-User-Id"}
	// What WSGI and CGI servers would hand the app as X-Auth-* (they map '_' and '-' alike).
	underscored := map[string]string{"X_Auth_User_Id": "evil", "X_AUTH_ROLE": "admin", "x-auth-session-id": "s"}
	// twice sends a header twice: send writes the request by hand, so a CRLF starts a line.
	twice := func(name, first, second string) map[string]string {
		return map[string]string{name: first + "\r\n" + name + ": " + second}
	}

	cases := []struct {
		name       string
		target     string
		method     string
		path       string
		header     map[string]string
		wantStatus int
		wantCode   string
		wantMsg    string
		wantUser   string // X-Auth-User-Id the app must see ("" = none)
	}{
		{"public exact", sc.url, "GET", "/healthz", nil, 200, "", "", ""},
		{"public subtree", sc.url, "GET", "/public/a/b.css", nil, 200, "", "", ""},
		{"public subtree root", sc.url, "GET", "/public", nil, 200, "", "", ""},
		{"public by method", sc.url, "GET", "/docs/intro", nil, 200, "", "", ""},
		{"public by method, HEAD", sc.url, "HEAD", "/docs/intro", nil, 200, "", "", ""},
		{"public method rule, other method", sc.url, "POST", "/docs/intro", nil, 401, guard.CodeUnauthorized, "Missing bearer token.", ""},
		{"protected, no token", sc.url, "GET", "/orders", nil, 401, guard.CodeUnauthorized, "Missing bearer token.", ""},
		{"protected, valid token", sc.url, "GET", "/orders", auth(user), 200, "", "", "user-user"},
		{"protected, expired token", sc.url, "GET", "/orders", auth(expired), 401, guard.CodeUnauthorized, "", ""},
		{"protected, tampered token", sc.url, "GET", "/orders", auth(tampered), 401, guard.CodeUnauthorized, "", ""},
		{"protected, unknown kid", sc.url, "GET", "/orders", auth(unknownKid), 401, guard.CodeUnauthorized, "", ""},
		{"protected, other tenant", sc.url, "GET", "/orders", auth(acme), 401, guard.CodeUnauthorized, "", ""},
		{"protected, revoked session", sc.url, "GET", "/orders", auth(revoked), 401, guard.CodeSessionInvalid, "", ""},
		{"protected, Basic scheme", sc.url, "GET", "/orders", map[string]string{"Authorization": "Basic eDp5"}, 401, guard.CodeUnauthorized, "", ""},
		{"role route, admin", sc.url, "GET", "/admin/users", auth(admin), 200, "", "", "user-admin"},
		{"role route, user", sc.url, "GET", "/admin/users", auth(user), 403, guard.CodeForbiddenRole, "Insufficient role. Required: admin", ""},
		{"role route, no role", sc.url, "GET", "/admin/users", auth(noRole), 403, guard.CodeForbiddenRole, "Missing role", ""},
		{"role route, no token", sc.url, "GET", "/admin/users", nil, 401, guard.CodeUnauthorized, "", ""},
		{"method role route, manager", sc.url, "POST", "/reports/q3", auth(manager), 200, "", "", "user-manager"},
		{"method role route, user", sc.url, "POST", "/reports/q3", auth(user), 403, guard.CodeForbiddenRole, "Insufficient role. Required: manager, admin", ""},
		{"method role route, other method", sc.url, "GET", "/reports/q3", auth(user), 200, "", "", "user-user"},
		{"single-segment wildcard role", sc.url, "DELETE", "/orders/42", auth(user), 403, guard.CodeForbiddenRole, "", ""},
		{"case-sensitive paths", sc.url, "GET", "/Admin/users", auth(user), 200, "", "", "user-user"},
		{"dot-dot into admin", sc.url, "GET", "/public/../admin/users", nil, 400, guard.CodeInvalidPath, "", ""},
		{"encoded dot-dot", sc.url, "GET", "/public/%2e%2e/admin/users", nil, 400, guard.CodeInvalidPath, "", ""},
		{"single dot segment", sc.url, "GET", "/public/./x", nil, 400, guard.CodeInvalidPath, "", ""},
		{"double slash", sc.url, "GET", "/public//admin", nil, 400, guard.CodeInvalidPath, "", ""},
		{"encoded slash", sc.url, "GET", "/public%2Fadmin", nil, 400, guard.CodeInvalidPath, "", ""},
		{"encoded backslash", sc.url, "GET", "/public%5Cadmin", nil, 400, guard.CodeInvalidPath, "", ""},
		{"raw backslash", sc.url, "GET", "/public\\admin", nil, 400, guard.CodeInvalidPath, "", ""},
		{"Tomcat path parameter into admin", sc.url, "GET", "/public/..;/admin/users", nil, 400, guard.CodeInvalidPath, "", ""},
		{"path parameter on the admin segment", sc.url, "GET", "/admin;x=1/users", auth(user), 400, guard.CodeInvalidPath, "", ""},
		{"spoofed identity, public route", sc.url, "GET", "/healthz", spoof, 200, "", "", ""},
		{"spoofed identity, protected route", sc.url, "GET", "/orders", merge(spoof, auth(user)), 200, "", "", "user-user"},
		{"any tenant, matching header", anySc.url, "GET", "/admin/x", merge(auth(acme), map[string]string{"X-Tenant-Id": "acme2"}), 200, "", "", "user-admin"},
		{"any tenant, header of another tenant", anySc.url, "GET", "/orders", merge(auth(acme), map[string]string{"X-Tenant-Id": "darmist1"}), 401, guard.CodeUnauthorized, "", ""},
		{"any tenant, no header", anySc.url, "GET", "/orders", auth(acme), 400, guard.CodeTenantIDMissing, "", ""},
		{"underscored identity, public route", sc.url, "GET", "/healthz", underscored, 200, "", "", ""},
		{"underscored identity, protected route", sc.url, "GET", "/orders", merge(underscored, auth(user)), 200, "", "", "user-user"},
		{"lower-case method meets the POST rule", sc.url, "post", "/reports/q3", auth(user), 403, guard.CodeForbiddenRole, "Insufficient role. Required: manager, admin", ""},
		{"lower-case method, allowed: the app gets POST", sc.url, "post", "/reports/q3", auth(manager), 200, "", "", "user-manager"},
		{"two Authorization headers", sc.url, "GET", "/orders", twice("Authorization", "Bearer "+user, "Bearer "+admin), 401, guard.CodeUnauthorized, "", ""},
		{"any tenant, two tenant headers", anySc.url, "GET", "/orders", merge(auth(acme), twice("X-Tenant-Id", "acme2", "darmist1")), 400, guard.CodeTenantIDMissing, "Send the x-tenant-id header once.", ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			resp, body := send(t, tc.target, tc.method, tc.path, tc.header)
			if resp.StatusCode != tc.wantStatus {
				t.Fatalf("status = %d, want %d (body %s)", resp.StatusCode, tc.wantStatus, body)
			}
			if tc.method == "HEAD" {
				return
			}
			if tc.wantStatus != 200 {
				var env guard.Envelope
				if err := json.Unmarshal(body, &env); err != nil {
					t.Fatalf("refusal is not an envelope: %s", body)
				}
				if env.Meta.Code != tc.wantCode || (tc.wantMsg != "" && env.Message != tc.wantMsg) {
					t.Fatalf("got code %q message %q, want %q %q", env.Meta.Code, env.Message, tc.wantCode, tc.wantMsg)
				}
				if tc.wantStatus == 401 && !strings.Contains(resp.Header.Get("WWW-Authenticate"), `error="invalid_token"`) {
					t.Fatalf("WWW-Authenticate = %q", resp.Header.Get("WWW-Authenticate"))
				}
				return
			}
			var got echoed
			if err := json.Unmarshal(body, &got); err != nil {
				t.Fatalf("app answer: %v (%s)", err, body)
			}
			if got.Path != tc.path {
				t.Fatalf("app saw path %q, want %q", got.Path, tc.path)
			}
			if got.Method != strings.ToUpper(tc.method) {
				t.Fatalf("app saw method %q, want %q (the one decided on)", got.Method, strings.ToUpper(tc.method))
			}
			if user := got.Headers.Get(HeaderUserID); user != tc.wantUser {
				t.Fatalf("app saw %s %q, want %q", HeaderUserID, user, tc.wantUser)
			}
			for name, values := range got.Headers {
				if isIdentityHeader(name) && tc.wantUser == "" {
					t.Fatalf("app saw %s: %v on an anonymous request", name, values)
				}
				if name == "X-Auth-Anything" || strings.Contains(name, "_") {
					t.Fatalf("a client-sent %s reached the app", name)
				}
			}
			if tc.wantUser != "" && got.Headers.Get(HeaderRole) == "admin" && !strings.HasSuffix(tc.wantUser, "admin") {
				t.Fatalf("a spoofed role reached the app")
			}
		})
	}
}

func merge(ms ...map[string]string) map[string]string {
	out := map[string]string{}
	for _, m := range ms {
		for k, v := range m {
			out[k] = v
		}
	}
	return out
}

// send writes the request line by hand, so the path reaches the sidecar exactly as written.
func send(t testing.TB, base, method, path string, header map[string]string) (*http.Response, []byte) {
	t.Helper()
	conn, err := net.Dial("tcp", strings.TrimPrefix(base, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s HTTP/1.1\r\nHost: app.example\r\n", method, path)
	for k, v := range header {
		fmt.Fprintf(&b, "%s: %s\r\n", k, v)
	}
	b.WriteString("Connection: close\r\n\r\n")
	if _, err := conn.Write([]byte(b.String())); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), &http.Request{Method: method})
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp, body
}

func TestSidecarWebSocketTokenFromSubprotocol(t *testing.T) {
	is := newIssuer(t, "darmist1")
	sc := startSidecar(t, testConfig(is, echoApp(t), "darmist1"))
	tok := is.token(tokenOpts{tenant: "darmist1", role: "user"})
	for name, tc := range map[string]struct {
		protocols  string
		wantStatus int
	}{
		"token in subprotocol": {"chat, bearer." + tok, 101},
		"no token":             {"chat", 401},
		"bad token":            {"bearer.x.y.z", 401},
	} {
		t.Run(name, func(t *testing.T) {
			conn, err := net.Dial("tcp", strings.TrimPrefix(sc.url, "http://"))
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			fmt.Fprintf(conn, "GET /ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Protocol: %s\r\n\r\n", tc.protocols)
			br := bufio.NewReader(conn)
			resp, err := http.ReadResponse(br, nil)
			if err != nil {
				t.Fatal(err)
			}
			if resp.StatusCode != tc.wantStatus {
				t.Fatalf("status = %d, want %d", resp.StatusCode, tc.wantStatus)
			}
			if tc.wantStatus != 101 {
				return
			}
			if seen := resp.Header.Get("X-Seen-Protocol"); seen != "chat" {
				t.Fatalf("the app saw subprotocols %q; want the token stripped, leaving \"chat\"", seen)
			}
			if _, err := conn.Write([]byte("ping")); err != nil {
				t.Fatal(err)
			}
			buf := make([]byte, 4)
			if _, err := io.ReadFull(br, buf); err != nil || string(buf) != "ping" {
				t.Fatalf("echo through the upgraded connection: %q, %v", buf, err)
			}
		})
	}
}

func TestSidecarUpstreamFailures(t *testing.T) {
	is := newIssuer(t, "darmist1")
	tok := is.token(tokenOpts{tenant: "darmist1", role: "user"})
	app := echoApp(t)
	cfg := testConfig(is, app, "darmist1")
	cfg.UpstreamTimeout = 100 * time.Millisecond
	sc := startSidecar(t, cfg)
	resp, body := send(t, sc.url, "GET", "/slow", map[string]string{"Authorization": "Bearer " + tok})
	if resp.StatusCode != http.StatusGatewayTimeout || !strings.Contains(string(body), guard.CodeUpstreamTimeout) {
		t.Fatalf("slow app: %d %s; want 504 %s", resp.StatusCode, body, guard.CodeUpstreamTimeout)
	}
	dead := httptest.NewServer(http.NotFoundHandler())
	dead.Close()
	cfg.Upstream = dead.URL
	sc2 := startSidecar(t, cfg)
	resp, body = send(t, sc2.url, "GET", "/x", map[string]string{"Authorization": "Bearer " + tok})
	if resp.StatusCode != http.StatusBadGateway || !strings.Contains(string(body), guard.CodeUpstreamUnavailable) {
		t.Fatalf("dead app: %d %s; want 502 %s", resp.StatusCode, body, guard.CodeUpstreamUnavailable)
	}
	if strings.Contains(string(body), "connection refused") {
		t.Fatalf("a Go error string leaked: %s", body)
	}
}

func TestSidecarKeyRotationAndAuthServerOutage(t *testing.T) {
	is := newIssuer(t, "darmist1")
	sc := startSidecar(t, testConfig(is, echoApp(t), "darmist1"))
	old := is.token(tokenOpts{tenant: "darmist1", role: "user"})
	// The sidecar fetched the keys at start, within MinJWKSFetchInterval: the rotated-in key
	// is found at the next allowed fetch, without failing the request.
	is.rotate("darmist1")
	rotated := is.token(tokenOpts{tenant: "darmist1", role: "user", sid: "s2"})
	for _, tok := range []string{old, rotated} {
		if resp, body := send(t, sc.url, "GET", "/x", map[string]string{"Authorization": "Bearer " + tok}); resp.StatusCode != 200 {
			t.Fatalf("after a rotation: %d %s", resp.StatusCode, body)
		}
	}
	bad := is.token(tokenOpts{tenant: "darmist1", role: "user", tamper: true})
	is.Close() // the auth server goes away
	if resp, _ := send(t, sc.url, "GET", "/x", map[string]string{"Authorization": "Bearer " + rotated}); resp.StatusCode != 200 {
		t.Fatalf("with the auth server down, a valid token got %d", resp.StatusCode)
	}
	if resp, _ := send(t, sc.url, "GET", "/x", map[string]string{"Authorization": "Bearer " + bad}); resp.StatusCode != 401 {
		t.Fatalf("with the auth server down, a tampered token got %d", resp.StatusCode)
	}
}

func TestSidecarBoundsJWKSFetchesUnderFlood(t *testing.T) {
	is := newIssuer(t, "darmist1")
	sc := startSidecar(t, testConfig(is, echoApp(t), "darmist1"))
	before := is.jwksFetches("darmist1")
	start := time.Now()
	var wg sync.WaitGroup
	for w := range 200 {
		wg.Go(func() {
			for i := range 10 {
				tok := is.token(tokenOpts{tenant: "darmist1", role: "user", kid: fmt.Sprintf("forged-%d-%d", w, i), tamper: i%2 == 0})
				if resp, _ := send(t, sc.url, "GET", "/x", map[string]string{"Authorization": "Bearer " + tok}); resp.StatusCode != 401 {
					t.Errorf("forged token got %d", resp.StatusCode)
					return
				}
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	fetches := is.jwksFetches("darmist1") - before
	// MinJWKSFetchInterval is 200ms in this test: at most one fetch per interval, plus one.
	if limit := int(elapsed/(200*time.Millisecond)) + 2; fetches > limit {
		t.Fatalf("2,000 forged tokens in %s caused %d JWKS fetches; want at most %d", elapsed, fetches, limit)
	}
	t.Logf("2,000 forged tokens in %s caused %d JWKS fetch(es)", elapsed.Round(time.Millisecond), fetches)
}

func TestSidecarPolicyFileLiveUpdate(t *testing.T) {
	is := newIssuer(t, "darmist1")
	app := echoApp(t)
	dir := t.TempDir()
	file := filepath.Join(dir, "annotations")
	writeAnnotations := func(public, roles string) {
		content := fmt.Sprintf("%s=%q\n%s=%q\n%s=%q\nother.io/x=\"y\"\n", AnnotationTenant, "darmist1", AnnotationPublic, public, AnnotationRoles, roles)
		if err := os.WriteFile(file+".tmp", []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(file+".tmp", file); err != nil {
			t.Fatal(err)
		}
	}
	writeAnnotations("/healthz", "/admin/**=admin")
	cfg := testConfig(is, app, "")
	cfg.Tenant, cfg.Public, cfg.Roles = "", "", ""
	cfg.AnnotationsFile = file
	cfg.PolicyPollInterval = 10 * time.Millisecond
	sc := startSidecar(t, cfg)
	status := func(path string) int { resp, _ := send(t, sc.url, "GET", path, nil); return resp.StatusCode }
	if got := status("/open"); got != 401 {
		t.Fatalf("/open before the update: %d, want 401", got)
	}
	writeAnnotations("/healthz, /open", "/admin/**=admin")
	waitFor(t, "the new public route to apply", func() bool { return status("/open") == 200 })

	writeAnnotations("/healthz, /open/*x", "/admin/**=admin") // invalid
	waitFor(t, "the bad update to be refused", func() bool { return sc.policyError.Load() != nil })
	if got := status("/open"); got != 200 {
		t.Fatalf("after a bad update /open = %d; the last good policy must stay in force", got)
	}
	resp, err := http.Get(sc.admin + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(body), "policy update refused") {
		t.Fatalf("/readyz does not mention the refused update: %s", body)
	}
	metrics := scrape(t, sc.admin)
	if !strings.Contains(metrics, "authmesh_sidecar_policy_valid 0") || !strings.Contains(metrics, "authmesh_sidecar_policy_reload_errors_total 1") {
		t.Fatalf("metrics do not show the refused update:\n%s", grepLines(metrics, "authmesh_sidecar_policy"))
	}
}

func TestSidecarRefusesToStartOnInvalidPolicy(t *testing.T) {
	is := newIssuer(t, "darmist1")
	cfg := testConfig(is, echoApp(t), "darmist1")
	cfg.Roles = "/admin/**="
	if _, err := New(t.Context(), cfg, slog.New(slog.NewTextHandler(io.Discard, nil))); err == nil || !strings.Contains(err.Error(), "no roles listed") {
		t.Fatalf("New with an invalid roles annotation: err = %v", err)
	}
}

func scrape(t testing.TB, admin string) string {
	resp, err := http.Get(admin + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

func grepLines(s, substr string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, substr) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
