package identity_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/authmesh/authmesh/authserver/identity"
	"github.com/authmesh/authmesh/internal/tenantdb"
)

const tenantSpec = "  displayName: Darmist One\n  email: {from: no-reply@darmist.example}\n"

// TestSignupLoginVerifyOverHTTP is the whole flow over real HTTP, the dev database and a real
// SMTP listener: signup, login, the code read from the captured mail, verify, tokens.
func TestSignupLoginVerifyOverHTTP(t *testing.T) {
	h := startServer(t, serverOptions{tenants: map[string]string{"darmist1": tenantSpec}})

	r := h.post("darmist1", "/auth/signup", map[string]string{
		"username": "Alice", "email": "Alice@Example.COM", "mobile": "+4915112345678", "password": "correct horse",
	})
	want(t, r, http.StatusCreated, identity.CodeSignupSuccess)
	var user map[string]any
	if err := json.Unmarshal(r.env.Data, &user); err != nil {
		t.Fatal(err)
	}
	if user["email"] != "alice@example.com" || user["role"] != "user" || user["username"] != "Alice" || user["id"] == "" {
		t.Errorf("signup data %v: want the lower-cased email, role user and an id", user)
	}
	if strings.Contains(string(r.body), "argon2") || strings.Contains(strings.ToLower(string(r.body)), "hash") {
		t.Errorf("signup answer shows the hash: %s", r.body)
	}
	var stored struct {
		PasswordHash string `bson:"passwordHash"`
	}
	if err := h.db("darmist1").Collection(tenantdb.Users).FindOne(context.Background(), bson.D{}).Decode(&stored); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(stored.PasswordHash, "$argon2id$v=19$m=19456,t=2,p=1$") {
		t.Errorf("stored hash %q is not argon2id with OWASP's parameters", stored.PasswordHash)
	}

	// Log in by username (any case), email and mobile; each gets its own code.
	for _, id := range []string{"alice", "ALICE@example.com", "+4915112345678"} {
		loginID, code := h.login("darmist1", id, "correct horse", "alice@example.com")
		if len(code) != 6 || loginID == "" {
			t.Fatalf("login as %q: loginId %q code %q", id, loginID, code)
		}
	}
	msg := h.waitMail("alice@example.com", 0)
	if msg.From != "no-reply@darmist.example" || msg.Subject != "Your login code for Darmist One" ||
		!strings.Contains(msg.Text, "expires in 5 minutes") || !strings.Contains(msg.Text, "works only once") {
		t.Errorf("code mail from %q subject %q:\n%s", msg.From, msg.Subject, msg.Text)
	}

	loginID, code := h.login("darmist1", "alice", "correct horse", "alice@example.com")
	r, err := h.do("POST", "/auth/login/verify", map[string]string{"x-tenant-id": "darmist1", "User-Agent": chromeOnMac,
		"X-Forwarded-For": "198.51.100.7"}, `{"loginId":"`+loginID+`","otp":"`+code+`"}`)
	if err != nil {
		t.Fatal(err)
	}
	want(t, r, http.StatusOK, identity.CodeLoginSuccess)
	var pair struct {
		AccessToken  string `json:"accessToken"`
		RefreshToken string `json:"refreshToken"`
		TokenType    string `json:"tokenType"`
		ExpiresIn    int64  `json:"expiresIn"`
		SessionID    string `json:"sessionId"`
	}
	if err := json.Unmarshal(r.env.Data, &pair); err != nil {
		t.Fatal(err)
	}
	if pair.TokenType != "Bearer" || pair.ExpiresIn != 900 || pair.SessionID == "" ||
		!strings.HasPrefix(pair.RefreshToken, pair.SessionID+".0.") {
		t.Errorf("token pair %+v", pair)
	}
	claims := jwtClaims(t, pair.AccessToken)
	if claims["sub"] != user["id"] || claims["role"] != "user" || claims["sid"] != pair.SessionID || claims["tid"] != "darmist1" {
		t.Errorf("access token claims %v", claims)
	}
	var sess struct {
		DeviceName string `bson:"deviceName"`
		IP         string `bson:"ip"`
		UserAgent  string `bson:"ua"`
	}
	if err := h.db("darmist1").Collection(tenantdb.Sessions).FindOne(context.Background(), bson.D{{Key: "_id", Value: pair.SessionID}}).Decode(&sess); err != nil {
		t.Fatal(err)
	}
	if sess.DeviceName != "Chrome 120 on macOS" || sess.IP != "127.0.0.1" || sess.UserAgent != chromeOnMac {
		t.Errorf("session device %+v: want Chrome 120 on macOS from 127.0.0.1 (X-Forwarded-For of an untrusted peer ignored)", sess)
	}

	// The code worked once.
	r = h.post("darmist1", "/auth/login/verify", map[string]string{"loginId": loginID, "otp": code})
	want(t, r, http.StatusGone, identity.CodeOTPExpired)
}

func jwtClaims(t *testing.T, token string) map[string]any {
	t.Helper()
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		t.Fatalf("access token %q is not a JWT", token)
	}
	raw, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var claims map[string]any
	if err := json.Unmarshal(raw, &claims); err != nil {
		t.Fatal(err)
	}
	return claims
}

// TestLoginWithoutOTP: a tenant with OTP disabled gets tokens from the password alone.
func TestLoginWithoutOTP(t *testing.T) {
	h := startServer(t, serverOptions{tenants: map[string]string{"nootp": "  login: {otp: {enabled: false}}\n"}})
	h.signup("nootp", "bob", "bob@example.com", "", "bob-password")
	r := h.post("nootp", "/auth/login", map[string]string{"usernameOrEmailOrMobile": "bob@example.com", "password": "bob-password"})
	want(t, r, http.StatusOK, identity.CodeLoginSuccess)
	if !strings.Contains(string(r.env.Data), `"accessToken"`) {
		t.Fatalf("LOGIN_SUCCESS without tokens: %s", r.env.Data)
	}
	if n := h.mailCount("bob@example.com"); n != 0 {
		t.Errorf("%d mails sent with OTP disabled", n)
	}
}

// TestParallelVerifyRedeemsOnce: one right code sent by 10 requests at once logs in once.
func TestParallelVerifyRedeemsOnce(t *testing.T) {
	h := startServer(t, serverOptions{tenants: map[string]string{"t1": ""}, rateLimits: &unlimited})
	h.signup("t1", "carol", "carol@example.com", "", "carol-password")
	loginID, code := h.login("t1", "carol", "carol-password", "carol@example.com")
	results := make(chan string, 10)
	for range 10 {
		go func() {
			r, err := h.tryPost("t1", "/auth/login/verify", map[string]string{"loginId": loginID, "otp": code})
			if err != nil {
				results <- err.Error()
				return
			}
			results <- r.env.Meta.Code
		}()
	}
	counts := map[string]int{}
	for range 10 {
		counts[<-results]++
	}
	// The losers were refused either after the winner consumed the challenge (OTP_EXPIRED) or,
	// arriving before that, because the challenge's 5 attempts were taken (OTP_ATTEMPTS_EXCEEDED).
	if counts[identity.CodeLoginSuccess] != 1 || counts[identity.CodeOTPExpired]+counts[identity.CodeOTPAttemptsExceeded] != 9 {
		t.Fatalf("outcomes %v, want 1 LOGIN_SUCCESS and 9 OTP_EXPIRED or OTP_ATTEMPTS_EXCEEDED", counts)
	}
	n, err := h.db("t1").Collection(tenantdb.Sessions).CountDocuments(context.Background(), bson.D{})
	if err != nil || n != 1 {
		t.Fatalf("%d sessions (%v), want 1", n, err)
	}
}

// TestCodeExpiresWithInjectedClock: a code past the tenant's ttl is refused, and the
// challenge is gone.
func TestCodeExpiresWithInjectedClock(t *testing.T) {
	h := startServer(t, serverOptions{tenants: map[string]string{"t1": "  login: {otp: {ttl: 2m}}\n"}, rateLimits: &unlimited})
	h.signup("t1", "dave", "dave@example.com", "", "dave-password")
	loginID, code := h.login("t1", "dave", "dave-password", "dave@example.com")
	if msg := h.waitMail("dave@example.com", 0); !strings.Contains(msg.Text, "expires in 2 minutes") {
		t.Errorf("mail does not say the tenant's ttl:\n%s", msg.Text)
	}
	h.clock.Step(2*time.Minute - time.Second)
	loginID2, code2 := h.login("t1", "dave", "dave-password", "dave@example.com")
	h.clock.Step(time.Second)
	want(t, h.post("t1", "/auth/login/verify", map[string]string{"loginId": loginID, "otp": code}), http.StatusGone, identity.CodeOTPExpired)
	n, _ := h.db("t1").Collection(tenantdb.LoginChallenges).CountDocuments(context.Background(), bson.D{{Key: "_id", Value: loginID}})
	if n != 0 {
		t.Error("the expired challenge was kept")
	}
	// The later one is still good.
	want(t, h.post("t1", "/auth/login/verify", map[string]string{"loginId": loginID2, "otp": code2}), http.StatusOK, identity.CodeLoginSuccess)
}

// TestOutcomesAreCountedPerTenant: every answer of signup, login and verify is counted by
// tenant, flow and code; an unknown tenant's requests add no label values.
func TestOutcomesAreCountedPerTenant(t *testing.T) {
	h := startServer(t, serverOptions{tenants: map[string]string{"darmist1": tenantSpec}})
	want(t, h.post("darmist1", "/auth/signup", map[string]string{"username": "carol", "email": "carol@example.com", "password": "correct horse"}),
		http.StatusCreated, identity.CodeSignupSuccess)
	want(t, h.post("darmist1", "/auth/login", map[string]string{"usernameOrEmailOrMobile": "carol", "password": "wrong horse"}),
		http.StatusUnauthorized, identity.CodeInvalidCredentials)
	loginID, code := h.login("darmist1", "carol", "correct horse", "carol@example.com")
	wrong := "000000"
	if code == wrong {
		wrong = "111111"
	}
	want(t, h.post("darmist1", "/auth/login/verify", map[string]string{"loginId": loginID, "otp": wrong}), http.StatusUnauthorized, identity.CodeInvalidOTP)
	want(t, h.post("darmist1", "/auth/login/verify", map[string]string{"loginId": loginID, "otp": code}), http.StatusOK, identity.CodeLoginSuccess)
	h.post("nosuchtenant", "/auth/login", map[string]string{"usernameOrEmailOrMobile": "carol", "password": "correct horse"})

	expected := `
# HELP authmesh_authserver_identity_outcomes_total Answers of signup, login and login/verify, by tenant, flow and envelope code (OTP_SENT, LOGIN_SUCCESS, INVALID_CREDENTIALS, ACCOUNT_LOCKED, INVALID_OTP, ...).
# TYPE authmesh_authserver_identity_outcomes_total counter
authmesh_authserver_identity_outcomes_total{code="INVALID_CREDENTIALS",flow="login",tenant="darmist1"} 1
authmesh_authserver_identity_outcomes_total{code="INVALID_OTP",flow="verify",tenant="darmist1"} 1
authmesh_authserver_identity_outcomes_total{code="LOGIN_SUCCESS",flow="verify",tenant="darmist1"} 1
authmesh_authserver_identity_outcomes_total{code="OTP_SENT",flow="login",tenant="darmist1"} 1
authmesh_authserver_identity_outcomes_total{code="SIGNUP_SUCCESS",flow="signup",tenant="darmist1"} 1
`
	if err := testutil.GatherAndCompare(h.metrics, strings.NewReader(expected), "authmesh_authserver_identity_outcomes_total"); err != nil {
		t.Error(err)
	}
}
