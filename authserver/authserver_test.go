package authserver_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	josejwt "github.com/go-jose/go-jose/v4/jwt"
	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/authmesh/authmesh/authserver"
	"github.com/authmesh/authmesh/authserver/httpapi"
	"github.com/authmesh/authmesh/authserver/tokens"
)

const jsonCT = "application/json"

func tokensSubject(in tokenRequest) tokens.Subject {
	return tokens.Subject{UserID: in.Sub, Role: in.Role, SessionID: in.Sid}
}

var standardTenants = map[string]fileTenant{
	"alpha":   {spec: "  cors: {allowedOrigins: [\"https://app.example.com\"]}\n"},
	"beta":    {spec: "  tokens: {signingAlgorithm: ES256, audience: beta-apps, accessTokenTTL: 1m}\n"},
	"frozen":  {spec: "  suspended: true\n"},
	"broken":  {state: map[string]string{"uri": "mongodb://127.0.0.1:1/?connectTimeoutMS=200"}},
	"keyless": {state: map[string]string{"jwks.json": "{", "active-kid": "x"}},
}

func TestHealth(t *testing.T) {
	h := startServer(t, standardTenants)
	resp, body := call(t, "GET", h.public.URL+"/auth/health", nil, nil)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d", resp.StatusCode)
	}
	var got map[string]any
	if err := json.Unmarshal(body, &got); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(map[string]any{"ok": true, "service": "auth-service", "mode": "HTTP"}, got); diff != "" {
		t.Fatalf("health (-want +got):\n%s", diff)
	}
}

// TestBadRequestsGetPinnedCodes sends requests that must fail and checks each gets the code
// and status DESIGN.md pins, in the envelope.
func TestBadRequestsGetPinnedCodes(t *testing.T) {
	h := startServer(t, standardTenants)
	tenant := func(id string) map[string]string { return map[string]string{"x-tenant-id": id, "Content-Type": jsonCT} }
	good := `{"name":"alice","email":"alice@example.com"}`
	cases := map[string]struct {
		method, path string
		header       map[string]string
		body         string
		wantStatus   int
		wantCode     string
	}{
		"no tenant header":          {"POST", "/test/echo", map[string]string{"Content-Type": jsonCT}, good, 400, "TENANT_ID_MISSING"},
		"blank tenant header":       {"POST", "/test/echo", tenant("  "), good, 400, "TENANT_ID_MISSING"},
		"unknown tenant":            {"POST", "/test/echo", tenant("nobody"), good, 404, "TENANT_NOT_FOUND"},
		"malformed tenant id":       {"POST", "/test/echo", tenant("Not_A_Label"), good, 404, "TENANT_NOT_FOUND"},
		"suspended tenant":          {"POST", "/test/echo", tenant("frozen"), good, 403, "TENANT_SUSPENDED"},
		"database unreachable":      {"POST", "/test/echo", tenant("broken"), good, 503, "TENANT_CONNECTION_MISSING"},
		"tenant without usable key": {"POST", "/test/token", tenant("keyless"), `{"sub":"u","role":"user","sid":"7c9e6679-7425-40de-944b-e07fc1f90ae7"}`, 503, "TENANT_CONNECTION_MISSING"},
		"malformed JSON":            {"POST", "/test/echo", tenant("alpha"), `{"name":"alice",`, 400, "INVALID_JSON"},
		"empty body":                {"POST", "/test/echo", tenant("alpha"), ``, 400, "INVALID_JSON"},
		"array instead of object":   {"POST", "/test/echo", tenant("alpha"), `[` + good + `]`, 400, "INVALID_JSON"},
		"trailing garbage":          {"POST", "/test/echo", tenant("alpha"), good + `x`, 400, "INVALID_JSON"},
		"wrong type":                {"POST", "/test/echo", tenant("alpha"), `{"name":"alice","email":"alice@example.com","age":"ten"}`, 400, "VALIDATION_FAILED"},
		"missing fields":            {"POST", "/test/echo", tenant("alpha"), `{"unknown":"ignored"}`, 400, "VALIDATION_FAILED"},
		"broken rule":               {"POST", "/test/echo", tenant("alpha"), `{"name":"a","email":"not-an-email"}`, 400, "VALIDATION_FAILED"},
		"not a UUID":                {"POST", "/test/token", tenant("alpha"), `{"sub":"u","role":"user","sid":"nope"}`, 400, "VALIDATION_FAILED"},
		"oversized body":            {"POST", "/test/echo", tenant("alpha"), `{"name":"` + strings.Repeat("x", 1<<20) + `"}`, 413, "PAYLOAD_TOO_LARGE"},
		"form-encoded body":         {"POST", "/test/echo", map[string]string{"x-tenant-id": "alpha", "Content-Type": "application/x-www-form-urlencoded"}, "name=alice", 415, "UNSUPPORTED_MEDIA_TYPE"},
		"unknown route":             {"GET", "/auth/nope", tenant("alpha"), ``, 404, "NOT_FOUND"},
		"wrong method":              {"GET", "/test/echo", tenant("alpha"), ``, 405, "METHOD_NOT_ALLOWED"},
		"wrong method on JWKS":      {"POST", "/t/alpha/.well-known/jwks.json", nil, ``, 405, "METHOD_NOT_ALLOWED"},
		"JWKS of unknown tenant":    {"GET", "/t/nobody/.well-known/jwks.json", nil, ``, 404, "TENANT_NOT_FOUND"},
		"JWKS of suspended tenant":  {"GET", "/t/frozen/.well-known/jwks.json", nil, ``, 403, "TENANT_SUSPENDED"},
		"discovery, keys unusable":  {"GET", "/t/keyless/.well-known/openid-configuration", nil, ``, 503, "TENANT_CONNECTION_MISSING"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			resp, body := call(t, tc.method, h.public.URL+tc.path, tc.header, strings.NewReader(tc.body))
			var env envelope
			if err := json.Unmarshal(body, &env); err != nil {
				t.Fatalf("body %.200q is not an envelope: %v", body, err)
			}
			if resp.StatusCode != tc.wantStatus || env.Meta.Code != tc.wantCode {
				t.Fatalf("got %d %s (%q), want %d %s", resp.StatusCode, env.Meta.Code, env.Message, tc.wantStatus, tc.wantCode)
			}
			if env.Meta.Status != "error" || env.Message == "" || env.TS == "" || string(env.Data) != "null" {
				t.Errorf("envelope %+v: want status error, a message, a ts and null data", env)
			}
			if tc.wantCode == "VALIDATION_FAILED" {
				var details []httpapi.FieldError
				if err := json.Unmarshal(env.Meta.Details, &details); err != nil || len(details) == 0 || details[0].Field == "" {
					t.Errorf("meta.details = %s, want per-field details", env.Meta.Details)
				}
			}
			if strings.Contains(string(body), "127.0.0.1:1") || strings.Contains(string(body), "server selection") {
				t.Errorf("internal detail leaked: %s", body)
			}
		})
	}

	// The same routes succeed when nothing is wrong.
	resp, body := call(t, "POST", h.public.URL+"/test/echo", tenant("alpha"), strings.NewReader(good))
	var env envelope
	_ = json.Unmarshal(body, &env)
	if resp.StatusCode != 200 || env.Meta.Code != "ECHOED" || !strings.Contains(string(env.Data), h.dbName+"_alpha") {
		t.Fatalf("good request: %d %s", resp.StatusCode, body)
	}
}

type discovery struct {
	Issuer  string   `json:"issuer"`
	JWKSURI string   `json:"jwks_uri"`
	Algs    []string `json:"id_token_signing_alg_values_supported"`
}

func issueToken(t testing.TB, h *harness, tenant string) string {
	t.Helper()
	token, err := tryIssueToken(h, tenant)
	if err != nil {
		t.Fatal(err)
	}
	return token
}

// tryIssueToken asks the test route for a token; it is safe to call from any goroutine.
func tryIssueToken(h *harness, tenant string) (string, error) {
	resp, body, err := tryCall("POST", h.public.URL+"/test/token", map[string]string{"x-tenant-id": tenant, "Content-Type": jsonCT},
		strings.NewReader(`{"sub":"user-1","role":"manager","sid":"7c9e6679-7425-40de-944b-e07fc1f90ae7"}`))
	if err != nil {
		return "", err
	}
	var env envelope
	if err := json.Unmarshal(body, &env); err != nil || resp.StatusCode != 200 {
		return "", fmt.Errorf("issuing a token: %d %s", resp.StatusCode, body)
	}
	if cc := resp.Header.Get("Cache-Control"); cc != "no-store" {
		return "", fmt.Errorf("a token response has Cache-Control %q, want no-store", cc)
	}
	var data struct {
		AccessToken string `json:"accessToken"`
	}
	if err := json.Unmarshal(env.Data, &data); err != nil {
		return "", err
	}
	return data.AccessToken, nil
}

// verify checks token the way an independent verifier does: discovery, then the JWKS it
// points at, with go-jose, pinning the algorithms to the discovery document's. It returns the
// token's kid, and is safe to call from any goroutine.
func verify(h *harness, tenant, token, wantAudience string) (kid string, err error) {
	resp, body, err := tryCall("GET", h.public.URL+"/t/"+tenant+"/.well-known/openid-configuration", nil, nil)
	if err != nil {
		return "", err
	}
	var disc discovery
	if err := json.Unmarshal(body, &disc); err != nil || resp.StatusCode != 200 {
		return "", fmt.Errorf("discovery: %d %s", resp.StatusCode, body)
	}
	if want := h.public.URL + "/t/" + tenant; disc.Issuer != want || disc.JWKSURI != want+"/.well-known/jwks.json" {
		return "", fmt.Errorf("discovery issuer %q jwks_uri %q, want %q and its /.well-known/jwks.json", disc.Issuer, disc.JWKSURI, want)
	}
	resp, body, err = tryCall("GET", disc.JWKSURI, nil, nil)
	if err != nil {
		return "", err
	}
	if resp.StatusCode != 200 {
		return "", fmt.Errorf("JWKS: %d %s", resp.StatusCode, body)
	}
	var set jose.JSONWebKeySet
	if err := json.Unmarshal(body, &set); err != nil {
		return "", err
	}
	algs := make([]jose.SignatureAlgorithm, 0, len(disc.Algs))
	for _, a := range disc.Algs {
		algs = append(algs, jose.SignatureAlgorithm(a))
	}
	tok, err := josejwt.ParseSigned(token, algs)
	if err != nil {
		return "", err
	}
	kid = tok.Headers[0].KeyID
	if typ := tok.Headers[0].ExtraHeaders["typ"]; typ != "at+jwt" {
		return kid, fmt.Errorf("typ %v, want at+jwt", typ)
	}
	matching := set.Key(kid)
	if len(matching) != 1 {
		return kid, fmt.Errorf("kid %s is not in the JWKS", kid)
	}
	if string(matching[0].Algorithm) != tok.Headers[0].Algorithm {
		return kid, fmt.Errorf("token alg %s, key alg %s", tok.Headers[0].Algorithm, matching[0].Algorithm)
	}
	var std josejwt.Claims
	var own struct {
		TenantID string `json:"tid"`
		Role     string `json:"role"`
		SID      string `json:"sid"`
	}
	if err := tok.Claims(matching[0].Key, &std, &own); err != nil {
		return kid, err
	}
	if err := std.ValidateWithLeeway(josejwt.Expected{Issuer: disc.Issuer, AnyAudience: josejwt.Audience{wantAudience}, Time: time.Now()}, 30*time.Second); err != nil {
		return kid, err
	}
	if std.Subject != "user-1" || own.TenantID != tenant || own.Role != "manager" || own.SID == "" || std.ID == "" || std.IssuedAt == nil {
		return kid, fmt.Errorf("claims %+v %+v", std, own)
	}
	return kid, nil
}

func TestTokensVerifyAgainstPublishedJWKS(t *testing.T) {
	h := startServer(t, standardTenants)
	for _, tc := range []struct{ tenant, alg, audience string }{
		{"alpha", "EdDSA", "authmesh"},
		{"beta", "ES256", "beta-apps"},
	} {
		t.Run(tc.tenant, func(t *testing.T) {
			token := issueToken(t, h, tc.tenant)
			if _, err := verify(h, tc.tenant, token, tc.audience); err != nil {
				t.Fatalf("token does not verify: %v", err)
			}
			parsed, err := josejwt.ParseSigned(token, []jose.SignatureAlgorithm{jose.SignatureAlgorithm(tc.alg)})
			if err != nil {
				t.Fatalf("token is not %s: %v", tc.alg, err)
			}
			var c josejwt.Claims
			_ = parsed.UnsafeClaimsWithoutVerification(&c)
			if ttl := c.Expiry.Time().Sub(c.IssuedAt.Time()); tc.tenant == "beta" && ttl != time.Minute {
				t.Errorf("beta's token lives %s, want its 1m accessTokenTTL", ttl)
			}
			// A token of one tenant does not verify with another's keys.
			other := "beta"
			if tc.tenant == "beta" {
				other = "alpha"
			}
			if _, err := verify(h, other, token, tc.audience); err == nil {
				t.Errorf("a %s token verified against %s's JWKS", tc.tenant, other)
			}
		})
	}
}

func TestPublicDocumentsAreCacheable(t *testing.T) {
	h := startServer(t, standardTenants)
	for _, path := range []string{"/t/alpha/.well-known/jwks.json", "/t/alpha/.well-known/openid-configuration"} {
		resp, _ := call(t, "GET", h.public.URL+path, map[string]string{"Origin": "https://anywhere.example"}, nil)
		etag := resp.Header.Get("ETag")
		if resp.StatusCode != 200 || etag == "" || !strings.Contains(resp.Header.Get("Cache-Control"), "max-age=") {
			t.Fatalf("%s: %d ETag %q Cache-Control %q", path, resp.StatusCode, etag, resp.Header.Get("Cache-Control"))
		}
		if resp.Header.Get("Access-Control-Allow-Origin") != "*" {
			t.Errorf("%s: Access-Control-Allow-Origin %q, want *", path, resp.Header.Get("Access-Control-Allow-Origin"))
		}
		resp, body := call(t, "GET", h.public.URL+path, map[string]string{"If-None-Match": etag}, nil)
		if resp.StatusCode != http.StatusNotModified || len(body) != 0 {
			t.Errorf("%s with If-None-Match: %d, want 304 and no body", path, resp.StatusCode)
		}
	}
}

func TestCORSFollowsTheTenant(t *testing.T) {
	h := startServer(t, standardTenants)
	good := strings.NewReader(`{"name":"alice","email":"alice@example.com"}`)
	for _, tc := range []struct{ tenant, origin, want string }{
		{"alpha", "https://app.example.com", "https://app.example.com"},
		{"alpha", "https://evil.example.com", ""},
		{"beta", "https://app.example.com", ""}, // allowed by alpha only
	} {
		resp, _ := call(t, "POST", h.public.URL+"/test/echo", map[string]string{"x-tenant-id": tc.tenant, "Content-Type": jsonCT, "Origin": tc.origin}, good)
		if got := resp.Header.Get("Access-Control-Allow-Origin"); got != tc.want {
			t.Errorf("%s from %s: Access-Control-Allow-Origin %q, want %q", tc.tenant, tc.origin, got, tc.want)
		}
		good.Seek(0, 0)
	}
	resp, _ := call(t, "OPTIONS", h.public.URL+"/test/echo", map[string]string{
		"Origin": "https://app.example.com", "Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "content-type,x-tenant-id",
	}, nil)
	if resp.StatusCode != http.StatusNoContent || resp.Header.Get("Access-Control-Allow-Origin") != "https://app.example.com" ||
		resp.Header.Get("Access-Control-Allow-Headers") != "content-type, x-tenant-id" {
		t.Errorf("preflight: %d %v", resp.StatusCode, resp.Header)
	}
}

func TestAdminListener(t *testing.T) {
	h := startServer(t, standardTenants)
	call(t, "GET", h.public.URL+"/auth/health", nil, nil)
	for path, want := range map[string]string{
		"/healthz": "ok",
		"/readyz":  "ok",
		"/metrics": `authmesh_authserver_http_requests_total{code="",method="GET",route="GET /auth/health",server="public",status="200"} 1`,
	} {
		resp, body := call(t, "GET", h.admin.URL+path, nil, nil)
		if resp.StatusCode != 200 || !strings.Contains(string(body), want) {
			t.Errorf("%s: %d, body does not contain %q:\n%.2000s", path, resp.StatusCode, want, body)
		}
	}
	resp, body := call(t, "GET", h.admin.URL+"/metrics", nil, nil)
	for _, want := range []string{`authmesh_authserver_tenants{state="serving"} 3`, `authmesh_authserver_tenants{state="suspended"} 1`, "authmesh_authserver_mongo_clients"} {
		if resp.StatusCode != 200 || !strings.Contains(string(body), want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	h.srv.Drain()
	if resp, _ := call(t, "GET", h.admin.URL+"/readyz", nil, nil); resp.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("/readyz while draining: %d, want 503", resp.StatusCode)
	}
}

func TestReadyzWaitsForTenants(t *testing.T) {
	cfg := authserver.DefaultConfig()
	srv, err := authserver.New(cfg, nil, prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	w := httptest.NewRecorder()
	srv.AdminHandler().ServeHTTP(w, httptest.NewRequest("GET", "/readyz", nil))
	if w.Code != http.StatusServiceUnavailable {
		t.Fatalf("/readyz before any tenant source ran: %d, want 503", w.Code)
	}
}

func TestConfigValidateReportsEveryProblem(t *testing.T) {
	cfg := authserver.DefaultConfig()
	cfg.PublicAddr = "3502"
	cfg.AdminAddr = cfg.InternalAddr
	cfg.PublicURL = "localhost:3502"
	cfg.TenantSource = authserver.SourceFiles
	cfg.TenantsDir = "/does/not/exist"
	cfg.MongoMaxClients = 0
	cfg.LogLevel = "loud"
	err := cfg.Validate()
	if err == nil {
		t.Fatal("Validate() = nil")
	}
	for _, want := range []string{"public-addr", "both", "public-url", "tenants-dir", "mongo-max-clients", "log-level"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("Validate() does not mention %s:\n%v", want, err)
		}
	}
	good := authserver.DefaultConfig()
	if err := good.Validate(); err != nil {
		t.Errorf("the defaults are invalid: %v", err)
	}
}
