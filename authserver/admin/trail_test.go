package admin_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"testing"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/authmesh/authmesh/authserver/audit"
	"github.com/authmesh/authmesh/client"
	"github.com/authmesh/authmesh/internal/tenantdb"
	"github.com/authmesh/authmesh/internal/testenv/authstack"
)

var (
	otpRE    = regexp.MustCompile(`(?m)^\s+(\d{6,10})\s*$`)
	unlockRE = regexp.MustCompile(`/auth/unlock\?token=(\S+)`)
)

// TestAuditTrailRecordsEveryFlowWithoutSecrets runs every flow once (signup, login with its
// failures, a wrong code, lockout and unlock, refresh reuse, logout one and all, password
// change and reset, and what admins do), then pages through the trail over the admin API,
// checks that each flow left its event with time, actor, subject, IP, user agent and
// outcome, and scans every stored event for the secrets used on the way.
func TestAuditTrailRecordsEveryFlowWithoutSecrets(t *testing.T) {
	s := authstack.Start(t, testDB, authstack.Options{Tenants: map[string]string{
		"darmist1": tenantSpec + "  login: {lockout: {maxFailedAttempts: 3, duration: 15m}}\n",
	}})
	ctx := context.Background()
	c := s.Client("darmist1")
	const email = "alice@example.com"
	var secrets []string // every secret the flows handle
	keep := func(v ...string) { secrets = append(secrets, v...) }
	keepPair := func(p *client.TokenPair) *client.TokenPair {
		keep(p.AccessToken, p.RefreshToken, p.RefreshToken[strings.LastIndexByte(p.RefreshToken, '.')+1:])
		return p
	}
	// login logs alice in, keeping the code and tokens as secrets.
	login := func(pw string) *client.TokenPair {
		t.Helper()
		before := s.MailCount(email)
		res, err := c.Login(ctx, "alice", pw)
		if err != nil {
			t.Fatal(err)
		}
		code := otpRE.FindStringSubmatch(s.WaitMail(email, before).Text)[1]
		keep(code)
		p, err := c.Verify(ctx, res.LoginID, code)
		if err != nil {
			t.Fatal(err)
		}
		return keepPair(p)
	}

	pw1, pw2, pw3 := "first secret password", "second secret password", "third secret password"
	keep(pw1, pw2, pw3)
	alice := s.Signup("darmist1", "alice", email, pw1)
	_, err := c.Signup(ctx, client.SignupRequest{Username: "alice", Email: "other@example.com", Password: pw1})
	wantCode(t, "signup taken", err, 409, "USER_EXISTS")

	typedPassword := "hunter2-typed-as-username"
	keep(typedPassword)
	_, err = c.Login(ctx, typedPassword, pw1)
	wantCode(t, "login of an unknown account", err, 401, "INVALID_CREDENTIALS")
	_, err = c.Login(ctx, "alice", "wrong secret 1")
	keep("wrong secret 1")
	wantCode(t, "wrong password", err, 401, "INVALID_CREDENTIALS")

	// A wrong code, then the right one.
	before := s.MailCount(email)
	res, err := c.Login(ctx, "alice", pw1)
	if err != nil {
		t.Fatal(err)
	}
	code := otpRE.FindStringSubmatch(s.WaitMail(email, before).Text)[1]
	wrong := "000000"
	if code == wrong {
		wrong = "111111"
	}
	keep(code)
	_, err = c.Verify(ctx, res.LoginID, wrong)
	wantCode(t, "wrong code", err, 401, "INVALID_OTP")
	p1, err := c.Verify(ctx, res.LoginID, code)
	if err != nil {
		t.Fatal(err)
	}
	keepPair(p1)

	// Lockout and unlock.
	before = s.MailCount(email)
	for i := range 3 {
		_, err := c.Login(ctx, "alice", "wrong secret 2")
		if i == 2 {
			wantCode(t, "the locking failure", err, 423, "ACCOUNT_LOCKED")
		}
	}
	keep("wrong secret 2")
	_, err = c.Login(ctx, "alice", pw1)
	wantCode(t, "login while locked", err, 423, "ACCOUNT_LOCKED")
	unlockToken, _ := url.QueryUnescape(unlockRE.FindStringSubmatch(s.WaitMail(email, before).Text)[1])
	keep(unlockToken, sha256Hex(unlockToken))
	if r := s.Do("POST", "/auth/unlock", map[string]string{"Content-Type": "application/json"}, `{"token":"`+unlockToken+`"}`); r.Code != "ACCOUNT_UNLOCKED" {
		t.Fatalf("unlock: %d %s", r.Status, r.Code)
	}

	// Refresh reuse; logout of one session and of all.
	p2 := login(pw1)
	rotated, err := c.Refresh(ctx, p2.RefreshToken)
	if err != nil {
		t.Fatal(err)
	}
	keepPair(rotated)
	_, err = c.Refresh(ctx, p2.RefreshToken)
	wantCode(t, "reuse", err, 401, "REFRESH_TOKEN_REUSED")
	if err := c.LogoutSession(ctx, p1.AccessToken, p1.SessionID); err != nil {
		t.Fatal(err)
	}
	p3 := login(pw1)
	if _, err := c.LogoutAll(ctx, p3.AccessToken); err != nil {
		t.Fatal(err)
	}

	// Password change (wrong, then right) and reset.
	p4 := login(pw1)
	_, err = c.ChangePassword(ctx, p4.AccessToken, "wrong secret 3", pw2)
	keep("wrong secret 3")
	wantCode(t, "change with a wrong password", err, 401, "INVALID_CREDENTIALS")
	if _, err := c.ChangePassword(ctx, p4.AccessToken, pw1, pw2); err != nil {
		t.Fatal(err)
	}
	before = s.MailCount(email)
	if err := c.ForgotPassword(ctx, email); err != nil {
		t.Fatal(err)
	}
	if err := c.ForgotPassword(ctx, "nobody-"+typedPassword); err != nil {
		t.Fatal(err)
	}
	resetToken := s.ResetToken(s.WaitMail(email, before))
	keep(resetToken, sha256Hex(resetToken))
	if err := c.ResetPassword(ctx, resetToken, pw3); err != nil {
		t.Fatal(err)
	}
	_ = c.ResetPassword(ctx, resetToken, pw3)

	// What admins do.
	adm := join(t, s, "darmist1", "root", "admin")
	keepPair(adm.tokens)
	keep(adm.password)
	p5 := keepPair(login(pw3))
	for _, u := range []client.UserUpdate{{Role: ptr("manager")}, {Disabled: ptr(true)}, {Disabled: ptr(false)}, {RevokeSessions: true}} {
		if _, err := c.UpdateUser(ctx, adm.tokens.AccessToken, alice.ID, u); err != nil {
			t.Fatal(err)
		}
	}
	p6 := login(pw3)
	if err := c.RevokeUserSession(ctx, adm.tokens.AccessToken, alice.ID, p6.SessionID); err != nil {
		t.Fatal(err)
	}
	_, err = c.UpdateUser(ctx, adm.tokens.AccessToken, adm.user.ID, client.UserUpdate{Disabled: ptr(true)})
	wantCode(t, "self lockout", err, 403, "ADMIN_SELF_LOCKOUT")
	_ = p5

	// Page through the trail, 7 at a time.
	var trail []client.AuditEvent
	after := ""
	for pages := 0; ; pages++ {
		page, err := c.Audit(ctx, adm.tokens.AccessToken, client.AuditQuery{After: after, Limit: 7})
		if err != nil {
			t.Fatal(err)
		}
		trail = append(trail, page.Items...)
		if page.Next == "" {
			if len(page.Items) > 7 {
				t.Fatalf("a page of %d events, limit 7", len(page.Items))
			}
			break
		}
		if len(page.Items) != 7 || page.Next != page.Items[6].ID || pages > 100 {
			t.Fatalf("page %d: %d items, next %q", pages, len(page.Items), page.Next)
		}
		after = page.Next
	}
	ids := map[string]bool{}
	for i, e := range trail {
		if ids[e.ID] || i > 0 && e.ID <= trail[i-1].ID {
			t.Fatalf("event %d id %q is repeated or out of order", i, e.ID)
		}
		ids[e.ID] = true
		if e.At.IsZero() || e.Type == "" || (e.Outcome != "success" && e.Outcome != "failure") || e.IP != "127.0.0.1" ||
			e.UserAgent != authstack.UserAgent || e.RequestID == "" {
			t.Errorf("event %+v lacks its time, type, outcome, IP, user agent or request id", e)
		}
	}

	type key struct{ typ, outcome, reason, actor, subject string }
	have := map[key]bool{}
	for _, e := range trail {
		have[key{e.Type, e.Outcome, e.Reason, e.ActorID, e.SubjectID}] = true
	}
	a, root := alice.ID, adm.user.ID
	for _, k := range []key{
		{audit.TypeSignup, "success", "", a, a},
		{audit.TypeSignup, "failure", "user_exists", "", ""},
		{audit.TypeLoginPassword, "failure", "unknown_account", "", ""},
		{audit.TypeLoginPassword, "failure", "invalid_credentials", a, a},
		{audit.TypeLoginPassword, "success", "", a, a},
		{audit.TypeLoginOTP, "failure", "invalid_otp", a, a},
		{audit.TypeLoginSuccess, "success", "", a, a},
		{audit.TypeAccountLocked, "success", "", "", a},
		{audit.TypeLoginPassword, "failure", "locked", a, a},
		{audit.TypeAccountUnlocked, "success", "", a, a},
		{audit.TypeRefreshReused, "failure", "refresh_token_reused", "", a},
		{audit.TypeLogout, "success", "", a, a},
		{audit.TypeLogoutAll, "success", "", a, a},
		{audit.TypePasswordChange, "failure", "invalid_credentials", a, a},
		{audit.TypePasswordChange, "success", "", a, a},
		{audit.TypePasswordForgot, "success", "", a, a},
		{audit.TypePasswordForgot, "failure", "unknown_account", "", ""},
		{audit.TypePasswordReset, "success", "", a, a},
		{audit.TypePasswordReset, "failure", "invalid_token", "", ""},
		{audit.TypeRoleChanged, "success", "", root, a},
		{audit.TypeUserDisabled, "success", "", root, a},
		{audit.TypeUserEnabled, "success", "", root, a},
		{audit.TypeSessionsRevoked, "success", "", root, a},
		{audit.TypeSessionRevoked, "success", "", root, a},
		{audit.TypeAdminSelfLockout, "failure", "self_lockout", root, root},
	} {
		if !have[k] {
			t.Errorf("no %+v event in the trail", k)
		}
	}

	// Scan what is stored: no secret anywhere, and no stored hash either.
	for _, coll := range []string{tenantdb.Users, tenantdb.Sessions} {
		cur, err := s.DB("darmist1").Collection(coll).Find(ctx, bson.D{})
		if err != nil {
			t.Fatal(err)
		}
		var docs []bson.M
		if err := cur.All(ctx, &docs); err != nil {
			t.Fatal(err)
		}
		for _, d := range docs {
			for _, f := range []string{"passwordHash", "refreshHash", "prevHash", "tagKey"} {
				if v, ok := d[f].(string); ok && v != "" {
					keep(v)
				}
			}
		}
	}
	cur, err := s.DB("darmist1").Collection(tenantdb.Audit).Find(ctx, bson.D{})
	if err != nil {
		t.Fatal(err)
	}
	var stored []bson.M
	if err := cur.All(ctx, &stored); err != nil {
		t.Fatal(err)
	}
	if len(stored) != len(trail) {
		t.Errorf("%d events stored, %d paged through", len(stored), len(trail))
	}
	for _, d := range stored {
		raw, err := json.Marshal(d)
		if err != nil {
			t.Fatal(err)
		}
		delete(d, "_id") // digits of a time and an ObjectID may contain a 6-digit code by chance
		delete(d, "requestId")
		scrubbed, _ := json.Marshal(d)
		for _, secret := range secrets {
			haystack := raw
			if len(secret) <= 10 {
				haystack = scrubbed
			}
			if strings.Contains(string(haystack), secret) {
				t.Errorf("audit event %s contains the secret %.12q...", raw, secret)
			}
		}
		for _, marker := range []string{"$argon2", "password\":", "token\":", "otp\":"} {
			if strings.Contains(strings.ToLower(string(raw)), strings.ToLower(marker)) {
				t.Errorf("audit event %s contains %q", raw, marker)
			}
		}
	}
	t.Logf("%d events, %d secrets scanned for", len(stored), len(secrets))
	if !slices.ContainsFunc(trail, func(e client.AuditEvent) bool { return e.SessionID != "" }) {
		t.Error("no event names a session")
	}
}

func sha256Hex(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}
