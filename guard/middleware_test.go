package guard

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/authmesh/authmesh/internal/keys"
)

type revokedSet map[string]bool

func (s revokedSet) Revoked(_ context.Context, tenant, sid string) bool { return s[tenant+"/"+sid] }

func TestEnforcer(t *testing.T) {
	now := time.Now()
	k := newTestKey(t, keys.EdDSA)
	verifiers := map[string]*Verifier{}
	for _, tenant := range []string{testTenant, "acme2"} {
		v, err := NewVerifier(VerifierConfig{
			TenantID: tenant, Issuer: "https://auth.example.com/t/" + tenant, Audience: testAudience,
			Keys: NewStaticKeys(map[string]keys.PublicKey{k.jwk.KeyID: k.pub}),
		})
		if err != nil {
			t.Fatal(err)
		}
		verifiers[tenant] = v
	}
	source := func(_ context.Context, tenant string) (*Verifier, error) {
		if v, ok := verifiers[tenant]; ok {
			return v, nil
		}
		return nil, errors.New("unknown tenant")
	}
	policy, err := ParsePolicy("/healthz, /public/**", "/admin/**=admin; /reports/**=manager,admin")
	if err != nil {
		t.Fatal(err)
	}
	token := func(role, sid, tenant string) string {
		c := validClaims(now)
		c.Role, c.SessionID, c.TenantID = role, sid, tenant
		c.Issuer = "https://auth.example.com/t/" + tenant
		return sign(t, k, c, nil)
	}
	user := token("user", "s-user", testTenant)
	manager := token("manager", "s-mgr", testTenant)
	admin := token("admin", "s-admin", testTenant)
	roleless := token("", "s-none", testTenant)
	revoked := token("admin", "s-revoked", testTenant)
	acme := token("user", "s-acme", "acme2")

	newServer := func(tenant string) *httptest.Server {
		var reasons []string
		e, err := NewEnforcer(EnforcerConfig{
			Policy: func() *Policy { return policy }, Tenant: tenant, Verifiers: source,
			Sessions:   revokedSet{testTenant + "/s-revoked": true},
			OnDecision: func(_ *http.Request, reason string) { reasons = append(reasons, reason) },
		})
		if err != nil {
			t.Fatal(err)
		}
		srv := httptest.NewServer(e.Wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			id, _ := IdentityFrom(r.Context())
			_ = json.NewEncoder(w).Encode(map[string]string{"user": id.UserID, "role": id.Role, "tenant": id.TenantID, "path": r.URL.Path})
		})))
		t.Cleanup(srv.Close)
		return srv
	}
	fixed, anyTenant := newServer(testTenant), newServer(AnyTenant)

	cases := map[string]struct {
		srv        *httptest.Server
		method     string
		path       string
		header     http.Header
		wantStatus int
		wantCode   string
		wantMsg    string
		wantRole   string
	}{
		"public route, no token":            {fixed, "GET", "/healthz", nil, 200, "", "", ""},
		"public subtree, no token":          {fixed, "GET", "/public/css/a.css", nil, 200, "", "", ""},
		"protected, no token":               {fixed, "GET", "/orders", nil, 401, CodeUnauthorized, "Missing bearer token.", ""},
		"protected, garbage token":          {fixed, "GET", "/orders", bearer("garbage"), 401, CodeUnauthorized, "Invalid or expired token.", ""},
		"protected, Basic auth":             {fixed, "GET", "/orders", http.Header{"Authorization": {"Basic dXNlcjpwYXNz"}}, 401, CodeUnauthorized, "Missing bearer token.", ""},
		"protected, valid token":            {fixed, "GET", "/orders", bearer(user), 200, "", "", "user"},
		"lower-case bearer scheme":          {fixed, "GET", "/orders", http.Header{"Authorization": {"bearer " + user}}, 200, "", "", "user"},
		"role route, wrong role":            {fixed, "GET", "/admin/users", bearer(manager), 403, CodeForbiddenRole, "Insufficient role. Required: admin", ""},
		"role route, two roles listed":      {fixed, "POST", "/reports/q3", bearer(user), 403, CodeForbiddenRole, "Insufficient role. Required: manager, admin", ""},
		"role route, no role claim":         {fixed, "GET", "/admin/users", bearer(roleless), 403, CodeForbiddenRole, "Missing role", ""},
		"role route, right role":            {fixed, "GET", "/reports/q3", bearer(manager), 200, "", "", "manager"},
		"role route, admin":                 {fixed, "GET", "/admin/users", bearer(admin), 200, "", "", "admin"},
		"revoked session":                   {fixed, "GET", "/orders", bearer(revoked), 401, CodeSessionInvalid, "", ""},
		"another tenant's token":            {fixed, "GET", "/orders", bearer(acme), 401, CodeUnauthorized, "", ""},
		"dot-dot path":                      {fixed, "GET", "/public/../admin/users", nil, 400, CodeInvalidPath, "", ""},
		"encoded slash":                     {fixed, "GET", "/public%2F..%2Fadmin", nil, 400, CodeInvalidPath, "", ""},
		"any tenant, header matches":        {anyTenant, "GET", "/orders", withTenant(bearer(acme), "acme2"), 200, "", "", "user"},
		"any tenant, header mismatch":       {anyTenant, "GET", "/orders", withTenant(bearer(acme), testTenant), 401, CodeUnauthorized, "", ""},
		"any tenant, no header":             {anyTenant, "GET", "/orders", bearer(acme), 400, CodeTenantIDMissing, "", ""},
		"any tenant, unknown tenant":        {anyTenant, "GET", "/orders", withTenant(bearer(acme), "nope"), 401, CodeUnauthorized, "", ""},
		"websocket token in subprotocol":    {fixed, "GET", "/orders", http.Header{"Connection": {"Upgrade"}, "Upgrade": {"websocket"}, "Sec-Websocket-Protocol": {"chat, bearer." + user}}, 200, "", "", "user"},
		"subprotocol token without upgrade": {fixed, "GET", "/orders", http.Header{"Sec-Websocket-Protocol": {"bearer." + user}}, 401, CodeUnauthorized, "", ""},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			req, err := http.NewRequest(tc.method, tc.srv.URL+tc.path, nil)
			if err != nil {
				t.Fatal(err)
			}
			req.URL.Opaque = tc.path // send the path exactly as written
			for k, vs := range tc.header {
				req.Header[k] = vs
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			if resp.StatusCode != tc.wantStatus {
				t.Fatalf("status = %d, want %d", resp.StatusCode, tc.wantStatus)
			}
			if tc.wantStatus == 200 {
				var got map[string]string
				if err := json.NewDecoder(resp.Body).Decode(&got); err != nil {
					t.Fatal(err)
				}
				if got["role"] != tc.wantRole {
					t.Fatalf("identity role = %q, want %q", got["role"], tc.wantRole)
				}
				return
			}
			var env Envelope
			if err := json.NewDecoder(resp.Body).Decode(&env); err != nil {
				t.Fatalf("refusal is not an envelope: %v", err)
			}
			if env.Meta.Code != tc.wantCode || env.Meta.Status != "error" {
				t.Fatalf("code = %q (status %q), want %q", env.Meta.Code, env.Meta.Status, tc.wantCode)
			}
			if tc.wantMsg != "" && env.Message != tc.wantMsg {
				t.Fatalf("message = %q, want %q", env.Message, tc.wantMsg)
			}
			if wa := resp.Header.Get("WWW-Authenticate"); (tc.wantStatus == 401 || tc.wantStatus == 403) && !strings.HasPrefix(wa, "Bearer ") {
				t.Fatalf("WWW-Authenticate = %q, want a Bearer challenge", wa)
			}
			if tc.wantStatus == 401 && !strings.Contains(resp.Header.Get("WWW-Authenticate"), `error="invalid_token"`) {
				t.Fatalf("WWW-Authenticate = %q, want error=\"invalid_token\"", resp.Header.Get("WWW-Authenticate"))
			}
		})
	}
}

func bearer(tok string) http.Header { return http.Header{"Authorization": {"Bearer " + tok}} }

func withTenant(h http.Header, tenant string) http.Header {
	h.Set(TenantHeader, tenant)
	return h
}

func TestBearerTokenOnlyFromBearerScheme(t *testing.T) {
	for header, want := range map[string]string{
		"Bearer abc":  "abc",
		"BEARER abc ": "abc",
		"Bearerabc":   "",
		"Token abc":   "",
		"":            "",
	} {
		r := httptest.NewRequest("GET", "/", nil)
		if header != "" {
			r.Header.Set("Authorization", header)
		}
		if got := BearerToken(r); got != want {
			t.Errorf("BearerToken(%q) = %q, want %q", header, got, want)
		}
	}
}
