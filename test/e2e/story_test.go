package e2e

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"sigs.k8s.io/controller-runtime/pkg/client"

	authmeshv1alpha1 "github.com/authmesh/authmesh/api/v1alpha1"
	amclient "github.com/authmesh/authmesh/client"
)

const (
	chromeMac  = "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36"
	firefoxWin = "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:121.0) Gecko/20100101 Firefox/121.0"
	safariIOS  = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.1 Mobile/15E148 Safari/604.1"
)

var otpPattern = regexp.MustCompile(`\b\d{6}\b`)

func tenantManifest(name string) string {
	return fmt.Sprintf(`apiVersion: authmesh.dev/v1alpha1
kind: Tenant
metadata:
  name: %s
spec:
  displayName: E2E %s
  deletionPolicy: Delete
`, name, name)
}

// user is one person of the story with their devices' token pairs.
type user struct {
	c        *amclient.Client
	name     string
	email    string
	password string
	mails    int // mails already read for this user
}

func (u *user) login(t *testing.T, ua string) *amclient.TokenPair {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	c := amclient.New("http://"+st.authPublic, u.c.Tenant(), amclient.WithUserAgent(ua))
	res, err := c.Login(ctx, u.name, u.password)
	if err != nil {
		t.Fatalf("login of %s: %v", u.name, err)
	}
	msg, err := st.mail.WaitFor(ctx, u.email, u.mails)
	if err != nil {
		t.Fatalf("no login code mailed to %s: %v", u.name, err)
	}
	u.mails++
	code := otpPattern.FindString(msg.Text)
	pair, err := c.Verify(ctx, res.LoginID, code)
	if err != nil {
		t.Fatalf("verify of %s with code %q: %v", u.name, code, err)
	}
	return pair
}

func applyTenant(t *testing.T, name string) {
	t.Helper()
	if out, err := st.kubectlRun(tenantManifest(name), "apply", "-f", "-"); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
}

// signupWhenServed signs up as soon as the auth server serves the tenant.
func signupWhenServed(t *testing.T, tenant, name string) *user {
	t.Helper()
	c := amclient.New("http://"+st.authPublic, tenant)
	u := &user{c: c, name: name, email: name + "@" + tenant + ".example.com", password: "correct horse battery"}
	deadline := time.Now().Add(60 * time.Second)
	for {
		_, err := c.Signup(t.Context(), amclient.SignupRequest{Username: name, Email: u.email, Password: u.password})
		if err == nil {
			return u
		}
		code := amclient.ErrorCode(err)
		if code != "TENANT_NOT_FOUND" && code != "TENANT_CONNECTION_MISSING" {
			t.Fatalf("signup in %s: %v", tenant, err)
		}
		if time.Now().After(deadline) {
			t.Fatalf("tenant %s not served within 60s: %v\n%s", tenant, err, st.logs())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestUserStory(t *testing.T) {
	ctx := t.Context()
	one, two := runName("e2e-one"), runName("e2e-two")

	// A platform team applies a Tenant; a user signs up and logs in as soon as it is served.
	applied := time.Now()
	applyTenant(t, one)
	alice := signupWhenServed(t, one, "alice")
	laptop := alice.login(t, chromeMac)
	toFirstLogin := time.Since(applied)
	fmt.Printf("timing: Tenant applied -> first successful login: %s\n", toFirstLogin.Round(time.Millisecond))
	if out, err := st.kubectlRun("", "get", "tenants"); err != nil || !strings.Contains(out, one) || !strings.Contains(out, "Ready") {
		t.Fatalf("kubectl get tenants: %v\n%s", err, out)
	}

	// Sessions on three devices.
	desktop := alice.login(t, firefoxWin)
	phone := alice.login(t, safariIOS)
	list, err := alice.c.Sessions(ctx, desktop.AccessToken)
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 3 {
		t.Fatalf("alice has %d sessions, want 3: %+v", len(list), list)
	}
	devices := map[string]bool{}
	for _, s := range list {
		devices[s.DeviceName] = s.Current
	}
	if !devices["Firefox 121 on Windows"] || len(devices) != 3 {
		t.Fatalf("devices = %v; want three named devices with the desktop current", devices)
	}

	// Refresh rotation, then reuse of the spent token ends the session.
	rotated, err := alice.c.Refresh(ctx, laptop.RefreshToken)
	if err != nil {
		t.Fatalf("refresh: %v", err)
	}
	if _, err := alice.c.Refresh(ctx, laptop.RefreshToken); amclient.ErrorCode(err) != "REFRESH_TOKEN_REUSED" {
		t.Fatalf("reusing a rotated refresh token: %v, want REFRESH_TOKEN_REUSED", err)
	}
	if _, err := alice.c.Refresh(ctx, rotated.RefreshToken); amclient.ErrorCode(err) != "SESSION_NOT_FOUND" {
		t.Fatalf("the newest token after reuse: %v, want SESSION_NOT_FOUND", err)
	}

	// The sidecar admits the phone, then refuses it within a second of its logout.
	sidecar := st.sidecarFor(t, one)
	status, body, err := get(sidecar+"/orders", phone.AccessToken, "X-Auth-User-Id", "mallory")
	if err != nil || status != 200 || !strings.Contains(body, `"X-Auth-Role":["user"]`) || strings.Contains(body, "mallory") {
		t.Fatalf("sidecar with the phone's token: %d %v %s", status, err, body)
	}
	if err := alice.c.LogoutSession(ctx, desktop.AccessToken, phone.SessionID); err != nil {
		t.Fatalf("logout of the phone: %v", err)
	}
	loggedOut := time.Now()
	for {
		status, _, err := get(sidecar+"/orders", phone.AccessToken)
		if err == nil && status == 401 {
			break
		}
		if time.Since(loggedOut) > time.Second {
			t.Fatalf("the sidecar still admits the phone's token 1s after its logout (status %d)", status)
		}
		time.Sleep(5 * time.Millisecond)
	}
	fmt.Printf("timing: logout response -> refusal at the sidecar: %s\n", time.Since(loggedOut).Round(time.Microsecond))

	// Role routes: a user is refused; promoted by an operator, the next refresh carries the role.
	if status, body, _ := get(sidecar+"/admin/users", desktop.AccessToken); status != 403 || !strings.Contains(body, "FORBIDDEN_ROLE") {
		t.Fatalf("/admin as a user: %d %s", status, body)
	}
	promote(t, one, "alice", "admin")
	admin, err := alice.c.Refresh(ctx, desktop.RefreshToken)
	if err != nil {
		t.Fatal(err)
	}
	if status, body, _ := get(sidecar+"/admin/users", admin.AccessToken); status != 200 || !strings.Contains(body, `"X-Auth-Role":["admin"]`) {
		t.Fatalf("/admin after promotion: %d %s", status, body)
	}
	if status, _, _ := get(sidecar+"/healthz", ""); status != 200 {
		t.Fatalf("public route: %d", status)
	}

	// A second tenant is isolated from the first.
	applyTenant(t, two)
	bob := signupWhenServed(t, two, "alice") // same username, other tenant
	bobTokens := bob.login(t, chromeMac)
	other := amclient.New("http://"+st.authPublic, two)
	if _, err := other.Sessions(ctx, admin.AccessToken); amclient.ErrorCode(err) != "UNAUTHORIZED" {
		t.Fatalf("%s's token at %s: %v, want UNAUTHORIZED", one, two, err)
	}
	if status, _, _ := get(sidecar+"/orders", bobTokens.AccessToken); status != 401 {
		t.Fatalf("%s's token at %s's sidecar: %d, want 401", two, one, status)
	}

	// An emergency key rotation while requests flow fails none of them.
	before := activeKeyID(t, one)
	var failures, requests atomic.Int64
	stop := make(chan struct{})
	done := make(chan struct{})
	pair := admin
	go func() {
		defer close(done)
		for {
			select {
			case <-stop:
				return
			default:
			}
			next, err := alice.c.Refresh(ctx, pair.RefreshToken)
			requests.Add(1)
			if err != nil {
				failures.Add(1)
				t.Errorf("refresh during rotation: %v", err)
				return
			}
			pair = next
			if status, body, err := get(sidecar+"/reports/q3", pair.AccessToken); err != nil || status != 200 {
				failures.Add(1)
				t.Errorf("sidecar during rotation: %d %v %s", status, err, body)
				return
			}
			requests.Add(1)
		}
	}()
	if out, err := st.kubectlRun("", "annotate", "--overwrite", "tenant", one, "authmesh.dev/rotate-keys="+time.Now().Format("20060102150405")); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	waitFor(t, "the rotated key to sign tokens", 30*time.Second, func() bool {
		return activeKeyID(t, one) != before && kidOf(pair.AccessToken) != before
	})
	time.Sleep(500 * time.Millisecond) // keep requests flowing on the new key for a moment
	close(stop)
	<-done
	if failures.Load() != 0 {
		t.Fatalf("%d of %d requests failed during the key rotation\n%s", failures.Load(), requests.Load(), st.logs())
	}
	fmt.Printf("rotation: %d requests across an emergency key rotation, none failed\n", requests.Load())

	// The controller restarted mid-run: nothing changes for users.
	st.stop("controller")
	if err := st.startController(); err != nil {
		t.Fatal(err)
	}
	again := alice.login(t, chromeMac)
	if status, _, _ := get(sidecar+"/admin/users", again.AccessToken); status != 200 {
		t.Fatalf("after a controller restart: %d", status)
	}
	if got := activeKeyID(t, one); got != activeKeyIDAfter(t, one, got) {
		t.Fatalf("the restarted controller rotated keys again")
	}

	// With the auth server down, the sidecar keeps admitting valid tokens from its cached keys
	// and the last revocation state, and keeps refusing bad ones.
	st.stop("authserver")
	if status, _, _ := get(sidecar+"/admin/users", again.AccessToken); status != 200 {
		t.Fatalf("with the auth server down, a valid token got %d", status)
	}
	for name, tok := range map[string]string{"revoked (the phone)": phone.AccessToken, "tampered": again.AccessToken[:len(again.AccessToken)-4] + "AAAA"} {
		if status, _, _ := get(sidecar+"/orders", tok); status != 401 {
			t.Fatalf("with the auth server down, a %s token got %d", name, status)
		}
	}
	if err := st.startAuthServer(); err != nil {
		t.Fatal(err)
	}

	// Logout all ends every session, at the auth server and at the sidecar.
	n, err := alice.c.LogoutAll(ctx, again.AccessToken)
	if err != nil || n < 2 {
		t.Fatalf("logout all: %d sessions, %v", n, err)
	}
	if _, err := alice.c.Sessions(ctx, again.AccessToken); amclient.ErrorCode(err) != "SESSION_INVALID" {
		t.Fatalf("sessions after logout all: %v, want SESSION_INVALID", err)
	}
	waitFor(t, "the sidecar to refuse after logout all", time.Second, func() bool {
		status, _, _ := get(sidecar+"/orders", again.AccessToken)
		return status == 401
	})
}

// promote sets a user's role in the tenant database, as an operator would.
func promote(t *testing.T, tenant, username, role string) {
	t.Helper()
	db := st.mongo.Client.Database("authmesh_" + tenant)
	var id struct {
		UserID string `bson:"userId"`
	}
	if err := db.Collection("identifiers").FindOne(t.Context(), bson.M{"_id": "username:" + username}).Decode(&id); err != nil {
		t.Fatalf("finding %s: %v", username, err)
	}
	if _, err := db.Collection("users").UpdateOne(t.Context(), bson.M{"_id": id.UserID}, bson.M{"$set": bson.M{"role": role}}); err != nil {
		t.Fatal(err)
	}
}

func activeKeyID(t *testing.T, tenant string) string {
	t.Helper()
	var tn authmeshv1alpha1.Tenant
	if err := st.api.Client.Get(t.Context(), client.ObjectKey{Name: tenant}, &tn); err != nil {
		t.Fatal(err)
	}
	return tn.Status.ActiveKeyID
}

// activeKeyIDAfter waits a few reconciles' worth and returns the active kid then.
func activeKeyIDAfter(t *testing.T, tenant, _ string) string {
	time.Sleep(2 * time.Second)
	return activeKeyID(t, tenant)
}

func kidOf(token string) string {
	header, _, _ := strings.Cut(token, ".")
	raw, err := base64.RawURLEncoding.DecodeString(header)
	if err != nil {
		return ""
	}
	var h struct {
		Kid string `json:"kid"`
	}
	_ = json.Unmarshal(raw, &h)
	return h.Kid
}

func waitFor(t *testing.T, what string, limit time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s\n%s", limit, what, st.logs())
		}
		time.Sleep(20 * time.Millisecond)
	}
}
