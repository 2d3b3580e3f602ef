package identity_test

import (
	"context"
	"encoding/base64"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/authmesh/authmesh/authserver/identity"
	"github.com/authmesh/authmesh/authserver/tenancy"
	"github.com/authmesh/authmesh/internal/tenantdb"
)

// TestParallelWrongPasswordsLockAtThreshold sends 50 wrong passwords at once to an account
// with a threshold of 5: exactly 5 are checked (4 answered INVALID_CREDENTIALS, the 5th locks
// and answers ACCOUNT_LOCKED), the other 45 are refused as locked without a check, and
// exactly one unlock mail goes out.
func TestParallelWrongPasswordsLockAtThreshold(t *testing.T) {
	h := startServer(t, serverOptions{tenants: map[string]string{"t1": "  login: {lockout: {maxFailedAttempts: 5, duration: 15m}}\n"}, rateLimits: &unlimited})
	u := h.newUser("t1")
	const parallel = 50
	results := make(chan string, parallel)
	var start sync.WaitGroup
	start.Add(1)
	for range parallel {
		go func() {
			start.Wait()
			r, err := h.tryPost("t1", "/auth/login", map[string]string{"usernameOrEmailOrMobile": u.username, "password": "wrong-password"})
			if err != nil {
				results <- err.Error()
				return
			}
			results <- r.env.Meta.Code
		}()
	}
	start.Done()
	counts := map[string]int{}
	for range parallel {
		counts[<-results]++
	}
	if counts[identity.CodeInvalidCredentials] != 4 || counts[identity.CodeAccountLocked] != parallel-4 {
		t.Fatalf("outcomes %v, want 4 INVALID_CREDENTIALS and %d ACCOUNT_LOCKED", counts, parallel-4)
	}
	var doc struct {
		FailedLogins int32      `bson:"failedLogins"`
		LockedUntil  *time.Time `bson:"lockedUntil"`
	}
	if err := h.db("t1").Collection(tenantdb.Users).FindOne(context.Background(), bson.D{{Key: "username", Value: u.username}}).Decode(&doc); err != nil {
		t.Fatal(err)
	}
	if doc.LockedUntil == nil || !doc.LockedUntil.Equal(h.clock.Now().Add(15*time.Minute)) || doc.FailedLogins != 0 {
		t.Errorf("user after the burst: lockedUntil %v failedLogins %d; want locked for 15m with the counter reset", doc.LockedUntil, doc.FailedLogins)
	}
	// Every locking response returned after its mail was handed to SMTP: one lock, one mail.
	if n := h.mailCount(u.email); n != 1 {
		t.Fatalf("%d unlock mails, want exactly 1 per lock", n)
	}
	msg := h.waitMail(u.email, 0)
	if !strings.Contains(msg.Text, "locked after 5 failed login attempts") || !strings.Contains(msg.Text, "in 15 minutes") ||
		!strings.Contains(msg.Text, "/auth/unlock?token=t1.") {
		t.Errorf("unlock mail:\n%s", msg.Text)
	}

	// Right password while locked: still locked, and no more mail.
	want(t, h.loginAs("t1", u, u.password), http.StatusLocked, identity.CodeAccountLocked)
	if n := h.mailCount(u.email); n != 1 {
		t.Fatalf("%d unlock mails after another attempt, want 1", n)
	}

	// The lock ends by itself.
	h.clock.Step(15 * time.Minute)
	r := h.loginAs("t1", u, u.password)
	want(t, r, http.StatusOK, identity.CodeOTPSent)
}

// TestCodeNotComparedWhileCounterFull holds the account's failure counter at the threshold
// without a lock, as right-password logins that each reserve a failure do for a moment. A
// code sent in that moment, right or wrong, must be refused as locked without being counted
// or compared; before, a wrong code was compared for free and a right one let through.
func TestCodeNotComparedWhileCounterFull(t *testing.T) {
	h := startServer(t, serverOptions{tenants: codeTenants, rateLimits: &unlimited})
	u := h.newUser("t1")
	setFailures := func(n int32) {
		t.Helper()
		if _, err := h.db("t1").Collection(tenantdb.Users).UpdateOne(context.Background(),
			bson.D{{Key: "username", Value: u.username}}, bson.D{{Key: "$set", Value: bson.D{{Key: "failedLogins", Value: n}}}}); err != nil {
			t.Fatal(err)
		}
	}
	failures := func() int32 {
		t.Helper()
		var doc struct {
			FailedLogins int32 `bson:"failedLogins"`
		}
		if err := h.db("t1").Collection(tenantdb.Users).FindOne(context.Background(), bson.D{{Key: "username", Value: u.username}}).Decode(&doc); err != nil {
			t.Fatal(err)
		}
		return doc.FailedLogins
	}
	verify := func(loginID, otp string) response {
		return h.post("t1", "/auth/login/verify", map[string]string{"loginId": loginID, "otp": otp})
	}

	for _, right := range []bool{true, false} {
		loginID, code := h.login("t1", u.username, u.password, u.email)
		setFailures(lockThreshold) // the reservations of parallel logins in flight
		otp := code
		if !right {
			otp = wrongCode(code)
		}
		want(t, verify(loginID, otp), http.StatusLocked, identity.CodeAccountLocked)
		if n := failures(); n != lockThreshold {
			t.Fatalf("right=%v: the counter is %d after the refused code; want it left at %d", right, n, lockThreshold)
		}
		// The challenge is gone: the same code cannot be tried again once the counter drops.
		setFailures(0)
		want(t, verify(loginID, code), http.StatusGone, identity.CodeOTPExpired)
	}

	// Below the threshold a right code logs in and gives its reservation back.
	setFailures(lockThreshold - 1)
	loginID, code := h.login("t1", u.username, u.password, u.email)
	want(t, verify(loginID, code), http.StatusOK, identity.CodeLoginSuccess)
	if n := failures(); n != 0 {
		t.Fatalf("the counter is %d after a complete login; want 0", n)
	}
}

// TestUnlockFromTheMailedLink follows the mailed link as a browser does (confirmation page,
// then the form's POST) and checks that the GET alone unlocks nothing.
func TestUnlockFromTheMailedLink(t *testing.T) {
	h := startServer(t, serverOptions{tenants: codeTenants, rateLimits: &unlimited})
	u := h.newUser("t1")
	link, token := h.lock("t1", u)
	if !strings.HasPrefix(link, h.url+"/auth/unlock?token=t1.") {
		t.Fatalf("link %q does not point at the auth server's public URL", link)
	}
	path := strings.TrimPrefix(link, h.url)

	browser := "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"
	r, err := h.do("GET", path, map[string]string{"Accept": browser}, "")
	if err != nil {
		t.Fatal(err)
	}
	body := string(r.body)
	if r.status != 200 || !strings.HasPrefix(r.header.Get("Content-Type"), "text/html") ||
		!strings.Contains(body, `<form method="post" action="unlock">`) || !strings.Contains(body, `value="`+token+`"`) {
		t.Fatalf("confirmation page: %d %s\n%s", r.status, r.header.Get("Content-Type"), body)
	}
	for k, v := range map[string]string{"Referrer-Policy": "no-referrer", "X-Frame-Options": "DENY", "Cache-Control": "no-store"} {
		if got := r.header.Get(k); got != v {
			t.Errorf("%s: %q, want %q", k, got, v)
		}
	}
	want(t, h.loginAs("t1", u, u.password), http.StatusLocked, identity.CodeAccountLocked) // the GET changed nothing

	form := url.Values{"token": {token}}.Encode()
	r, err = h.do("POST", "/auth/unlock", map[string]string{"Content-Type": "application/x-www-form-urlencoded", "Accept": browser}, form)
	if err != nil {
		t.Fatal(err)
	}
	if r.status != 200 || !strings.Contains(string(r.body), "Account unlocked") {
		t.Fatalf("form POST: %d\n%s", r.status, r.body)
	}
	want(t, h.loginAs("t1", u, u.password), http.StatusOK, identity.CodeOTPSent)

	// The same form again: the token was single use.
	r, _ = h.do("POST", "/auth/unlock", map[string]string{"Content-Type": "application/x-www-form-urlencoded"}, form)
	if r.status != 400 || !strings.Contains(string(r.body), "invalid, expired or was already used") {
		t.Fatalf("reused token by form: %d\n%s", r.status, r.body)
	}

	// A JSON client unlocks with GET.
	u2 := h.newUser("t1")
	_, token2 := h.lock("t1", u2)
	r, _ = h.do("GET", "/auth/unlock?token="+url.QueryEscape(token2), map[string]string{"Accept": "application/json"}, "")
	want(t, r, http.StatusOK, identity.CodeAccountUnlocked)
	want(t, h.loginAs("t1", u2, u2.password), http.StatusOK, identity.CodeOTPSent)

	// Tokens are stored hashed.
	n, _ := h.db("t1").Collection(tenantdb.AccountTokens).CountDocuments(context.Background(), bson.D{{Key: "_id", Value: token}})
	if n != 0 {
		t.Error("an unlock token is stored in clear")
	}
}

// TestSuccessResetsTheCounter: failures below the threshold are forgotten after a login.
func TestSuccessResetsTheCounter(t *testing.T) {
	h := startServer(t, serverOptions{tenants: codeTenants, rateLimits: &unlimited})
	u := h.newUser("t1")
	for range 2 { // threshold 3
		want(t, h.loginAs("t1", u, "wrong-password"), http.StatusUnauthorized, identity.CodeInvalidCredentials)
	}
	loginID, code := h.login("t1", u.username, u.password, u.email)
	want(t, h.post("t1", "/auth/login/verify", map[string]string{"loginId": loginID, "otp": code}), http.StatusOK, identity.CodeLoginSuccess)
	for range 2 {
		want(t, h.loginAs("t1", u, "wrong-password"), http.StatusUnauthorized, identity.CodeInvalidCredentials)
	}
}

// TestUserWithoutCounterField: a user document written by other code without failedLogins
// is counted from zero, not refused as locked.
func TestUserWithoutCounterField(t *testing.T) {
	h := startServer(t, serverOptions{tenants: codeTenants, rateLimits: &unlimited})
	u := h.newUser("t1")
	if _, err := h.db("t1").Collection(tenantdb.Users).UpdateOne(context.Background(), bson.D{{Key: "username", Value: u.username}},
		bson.D{{Key: "$unset", Value: bson.D{{Key: "failedLogins", Value: ""}}}}); err != nil {
		t.Fatal(err)
	}
	want(t, h.loginAs("t1", u, "wrong-password"), http.StatusUnauthorized, identity.CodeInvalidCredentials)
	want(t, h.loginAs("t1", u, u.password), http.StatusOK, identity.CodeOTPSent)
}

// FuzzParseAccountToken feeds mailed-link tokens, which arrive from anyone, to the parser
// that picks the tenant before any lookup: a token is refused, or names a valid tenant and
// carries a secret of exactly the issued size; an issued token always parses.
func FuzzParseAccountToken(f *testing.F) {
	issued, _, err := identity.NewAccountToken("darmist1")
	if err != nil {
		f.Fatal(err)
	}
	for _, s := range []string{issued, "darmist1.", ".abc", "../etc.AAAA", "darmist1." + strings.Repeat("A", 43), "UPPER." + strings.Repeat("A", 43), "a.b.c"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, token string) {
		tenant, ok := identity.ParseAccountToken(token)
		if !ok {
			if tenant != "" {
				t.Fatalf("a refused token named tenant %q", tenant)
			}
			return
		}
		secret, found := strings.CutPrefix(token, tenant+".")
		raw, err := base64.RawURLEncoding.DecodeString(secret)
		if !found || !tenancy.ValidTenantID(tenant) || err != nil || len(raw) != 32 {
			t.Fatalf("ParseAccountToken(%q) accepted tenant %q with secret %q", token, tenant, secret)
		}
		if again, _, err := identity.NewAccountToken(tenant); err != nil || !parses(again) {
			t.Fatalf("a token issued for %q does not parse (%v)", tenant, err)
		}
	})
}

func parses(token string) bool {
	_, ok := identity.ParseAccountToken(token)
	return ok
}

// TestDisableDuringLoginLeavesNoSession disables users, the way the admin API does (set the
// flag, then revoke every session), while logins of theirs are in flight. A login that read the
// user before the flag was set and inserted its session after the revocation used to keep that
// session; after every round no session of the disabled user may be active.
func TestDisableDuringLoginLeavesNoSession(t *testing.T) {
	h := startServer(t, serverOptions{tenants: codeTenants, rateLimits: &unlimited})
	ctx := context.Background()
	tenant, release, err := h.srv.Registry.Acquire(ctx, "nootp", true)
	if err != nil {
		t.Fatal(err)
	}
	defer release()
	users := h.db("nootp").Collection(tenantdb.Users)
	outcomes := map[string]int{}
	for round := range 12 {
		u := h.newUser("nootp")
		var id struct {
			ID string `bson:"_id"`
		}
		if err := users.FindOne(ctx, bson.D{{Key: "username", Value: u.username}}).Decode(&id); err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		codes := make(chan string, 4)
		for range 4 {
			wg.Go(func() {
				r, err := h.tryPost("nootp", "/auth/login", map[string]string{"usernameOrEmailOrMobile": u.username, "password": u.password})
				if err != nil {
					codes <- err.Error()
					return
				}
				codes <- r.env.Meta.Code
			})
		}
		time.Sleep(time.Duration(5+round*4) * time.Millisecond) // land the disable at different points of the logins
		if _, err := users.UpdateOne(ctx, bson.D{{Key: "_id", Value: id.ID}}, bson.D{{Key: "$set", Value: bson.D{{Key: "disabled", Value: true}}}}); err != nil {
			t.Fatal(err)
		}
		if _, err := h.sessions.RevokeAllOfUser(ctx, tenant, id.ID, "user_disabled", ""); err != nil {
			t.Fatal(err)
		}
		wg.Wait()
		close(codes)
		for c := range codes {
			outcomes[c]++
		}
		active, err := h.sessions.List(ctx, tenant, id.ID)
		if err != nil {
			t.Fatal(err)
		}
		if len(active) != 0 {
			t.Fatalf("round %d: %d sessions of the disabled user are active", round, len(active))
		}
	}
	t.Logf("login outcomes around the disables: %v", outcomes)
}
