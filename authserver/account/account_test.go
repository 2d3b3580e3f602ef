package account_test

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/authmesh/authmesh/authserver"
	"github.com/authmesh/authmesh/authserver/account"
	"github.com/authmesh/authmesh/authserver/audit"
	"github.com/authmesh/authmesh/authserver/ratelimit"
	"github.com/authmesh/authmesh/client"
	"github.com/authmesh/authmesh/internal/tenantdb"
	"github.com/authmesh/authmesh/internal/testenv/authstack"
)

const lockout3 = "  login: {lockout: {maxFailedAttempts: 3, duration: 15m}}\n"

// TestPasswordChange: a wrong current password is refused (and counted), the new one must
// follow the rules, and a change keeps the caller's session while revoking the others.
func TestPasswordChange(t *testing.T) {
	s := start(t, authstack.Options{})
	ctx := context.Background()
	c := s.Client("darmist1")
	alice := s.Signup("darmist1", "alice", "alice@example.com", "old password")
	keep := s.Login("darmist1", "alice", "old password", "alice@example.com")
	other := s.Login("darmist1", "alice@example.com", "old password", "alice@example.com")
	before := readUser(t, s, "darmist1", bson.D{{Key: "_id", Value: alice.ID}})

	refusals := []struct {
		name, token, current, next string
		status                     int
		code                       string
	}{
		{"no token", "", "old password", "new password 1", 401, "UNAUTHORIZED"},
		{"wrong current password", keep.AccessToken, "not the password", "new password 1", 401, "INVALID_CREDENTIALS"},
		{"new password too short", keep.AccessToken, "old password", "short", 400, "VALIDATION_FAILED"},
		{"new password too long", keep.AccessToken, "old password", strings.Repeat("x", 129), 400, "VALIDATION_FAILED"},
		{"no current password", keep.AccessToken, "", "new password 1", 400, "VALIDATION_FAILED"},
	}
	for _, tc := range refusals {
		t.Run(tc.name, func(t *testing.T) {
			_, err := c.ChangePassword(ctx, tc.token, tc.current, tc.next)
			wantCode(t, tc.name, err, tc.status, tc.code)
		})
	}
	if n := readUser(t, s, "darmist1", bson.D{{Key: "_id", Value: alice.ID}}).FailedLogins; n != 1 {
		t.Errorf("failedLogins after one wrong current password = %d, want 1 (it counts like a login failure)", n)
	}

	n, err := c.ChangePassword(ctx, keep.AccessToken, "old password", "new password 1")
	if err != nil {
		t.Fatal(err)
	}
	if n != 1 {
		t.Errorf("revokedCount %d, want 1 (the other session)", n)
	}
	after := readUser(t, s, "darmist1", bson.D{{Key: "_id", Value: alice.ID}})
	if after.PasswordHash == before.PasswordHash || !strings.HasPrefix(after.PasswordHash, "$argon2id$") || after.FailedLogins != 0 {
		t.Errorf("after the change: hash changed %v, argon2id %v, failedLogins %d (want 0)",
			after.PasswordHash != before.PasswordHash, strings.HasPrefix(after.PasswordHash, "$argon2id$"), after.FailedLogins)
	}
	if _, err := c.Sessions(ctx, keep.AccessToken); err != nil {
		t.Errorf("the caller's session after the change: %v", err)
	}
	_, err = c.Sessions(ctx, other.AccessToken)
	wantCode(t, "the other session's access token", err, 401, "SESSION_INVALID")
	_, err = c.Refresh(ctx, other.RefreshToken)
	wantCode(t, "the other session's refresh token", err, 401, "SESSION_NOT_FOUND")
	if _, err := c.Refresh(ctx, keep.RefreshToken); err != nil {
		t.Errorf("refreshing the caller's session: %v", err)
	}
	_, err = c.Login(ctx, "alice", "old password")
	wantCode(t, "login with the old password", err, 401, "INVALID_CREDENTIALS")
	s.Login("darmist1", "alice", "new password 1", "alice@example.com")

	evs := events(t, s, "darmist1", audit.TypePasswordChange)
	if !hasEvent(evs, audit.OutcomeFailure, "invalid_credentials", alice.ID) || !hasEvent(evs, audit.OutcomeSuccess, "", alice.ID) {
		t.Errorf("password.change events %+v: want a failure (invalid_credentials) and a success of alice", evs)
	}
}

// TestPasswordChangeCountsTowardLockout: wrong current passwords lock the account like
// failed logins, with the unlock mail; a reset then clears the lock.
func TestPasswordChangeCountsTowardLockout(t *testing.T) {
	s := start(t, authstack.Options{Tenants: map[string]string{"darmist1": tenantSpec + lockout3}})
	ctx := context.Background()
	c := s.Client("darmist1")
	alice := s.Signup("darmist1", "alice", "alice@example.com", "old password")
	p := s.Login("darmist1", "alice", "old password", "alice@example.com")
	mails := s.MailCount("alice@example.com")

	for i := 1; i <= 2; i++ {
		_, err := c.ChangePassword(ctx, p.AccessToken, "wrong", "new password 1")
		wantCode(t, "wrong current password", err, 401, "INVALID_CREDENTIALS")
	}
	_, err := c.ChangePassword(ctx, p.AccessToken, "wrong", "new password 1")
	wantCode(t, "the third wrong current password", err, 423, "ACCOUNT_LOCKED")
	if msg := s.WaitMail("alice@example.com", mails); !strings.Contains(msg.Subject, "locked") || !strings.Contains(msg.Text, "/auth/unlock?token=") {
		t.Errorf("want the unlock mail, got %q:\n%s", msg.Subject, msg.Text)
	}
	_, err = c.ChangePassword(ctx, p.AccessToken, "old password", "new password 1")
	wantCode(t, "the right password while locked", err, 423, "ACCOUNT_LOCKED")
	_, err = c.Login(ctx, "alice", "old password")
	wantCode(t, "login while locked", err, 423, "ACCOUNT_LOCKED")
	if evs := events(t, s, "darmist1", audit.TypeAccountLocked); len(evs) != 1 || evs[0].SubjectID != alice.ID {
		t.Errorf("account.locked events %+v, want one of alice", evs)
	}

	mails = s.MailCount("alice@example.com")
	if err := c.ForgotPassword(ctx, "alice"); err != nil {
		t.Fatal(err)
	}
	token := s.ResetToken(s.WaitMail("alice@example.com", mails))
	if err := c.ResetPassword(ctx, token, "new password 2"); err != nil {
		t.Fatal(err)
	}
	u := readUser(t, s, "darmist1", bson.D{{Key: "_id", Value: alice.ID}})
	if u.LockedUntil != nil || u.FailedLogins != 0 {
		t.Errorf("after the reset lockedUntil %v, failedLogins %d: want the lock cleared", u.LockedUntil, u.FailedLogins)
	}
	s.Login("darmist1", "alice", "new password 2", "alice@example.com")
}

// TestForgotAnswersAlikeForAnyAccount: a real account, a disabled one and unknown ones of
// every identifier kind get the same answer; only the real account gets a mail.
func TestForgotAnswersAlikeForAnyAccount(t *testing.T) {
	s := start(t, authstack.Options{})
	alice := s.Signup("darmist1", "alice", "alice@example.com", "password 1")
	bob := s.Signup("darmist1", "bob", "bob@example.com", "password 1")
	if _, err := s.DB("darmist1").Collection(tenantdb.Users).UpdateByID(context.Background(), bob.ID,
		bson.D{{Key: "$set", Value: bson.D{{Key: "disabled", Value: true}}}}); err != nil {
		t.Fatal(err)
	}

	type answer struct {
		Status  int
		Code    string
		Message string
		Data    string
		Headers []string
	}
	answerOf := func(r authstack.Response) answer {
		var names []string
		for k := range r.Header {
			if k != "Date" && k != "X-Request-Id" {
				names = append(names, k+": "+strings.Join(r.Header.Values(k), ","))
			}
		}
		slices.Sort(names)
		return answer{r.Status, r.Code, r.Message, string(r.Data), names}
	}
	inputs := []string{"alice", "alice@example.com", "bob", "nobody", "nobody@example.com", "+4915100000000"}
	var want answer
	for i, in := range inputs {
		start := time.Now()
		r := s.Do("POST", "/auth/password/forgot", map[string]string{"x-tenant-id": "darmist1", "Content-Type": "application/json"},
			`{"usernameOrEmailOrMobile":"`+in+`"}`)
		took := time.Since(start)
		got := answerOf(r)
		t.Logf("forgot %-20q -> %d %s in %s", in, r.Status, r.Code, took)
		if i == 0 {
			want = got
			if got.Status != http.StatusOK || got.Code != account.CodePasswordResetSent {
				t.Fatalf("forgot for alice: %+v", got)
			}
			continue
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("forgot for %q answered differently from alice (-alice +got):\n%s", in, diff)
		}
	}

	msg := s.WaitMail("alice@example.com", 1) // one mail per request for alice
	if msg.Subject != "Reset your Darmist One password" || !strings.Contains(msg.Text, "works once, for 30 minutes") {
		t.Errorf("reset mail %q:\n%s", msg.Subject, msg.Text)
	}
	if n := s.MailCount("bob@example.com"); n != 0 {
		t.Errorf("the disabled user got %d mails, want none", n)
	}
	if n := len(s.SMTP.Messages()); n != 2 {
		t.Errorf("%d mails sent, want 2 (alice's)", n)
	}

	evs := events(t, s, "darmist1", audit.TypePasswordForgot)
	unknown := 0
	for _, e := range evs {
		if e.Reason == "unknown_account" {
			unknown++
		}
		for _, field := range []string{e.ActorID, e.SubjectID, e.Reason, strings.Join(mapValues(e.Details), " ")} {
			if strings.Contains(field, "nobody") || strings.Contains(field, "+49151") {
				t.Errorf("event %+v records what was typed for an unknown account", e)
			}
		}
	}
	if unknown != 3 || !hasEvent(evs, audit.OutcomeSuccess, "", alice.ID) || !hasEvent(evs, audit.OutcomeFailure, "disabled", bob.ID) {
		t.Errorf("password.reset_requested events %+v: want alice's successes, bob refused (disabled) and 3 unknown", evs)
	}
}

func mapValues(m map[string]string) []string {
	var out []string
	for _, v := range m {
		out = append(out, v)
	}
	return out
}

// TestResetLinkWorksOnce: the mailed link is a single-use, hashed token; a browser GET
// changes nothing; the reset revokes every session, at the auth server and at a feed follower.
func TestResetLinkWorksOnce(t *testing.T) {
	s := start(t, authstack.Options{})
	ctx := context.Background()
	c := s.Client("darmist1")
	alice := s.Signup("darmist1", "alice", "alice@example.com", "old password")
	p1 := s.Login("darmist1", "alice", "old password", "alice@example.com")
	p2 := s.Login("darmist1", "alice", "old password", "alice@example.com")
	f := s.Follow("darmist1")

	mails := s.MailCount("alice@example.com")
	if err := c.ForgotPassword(ctx, "ALICE@example.com"); err != nil {
		t.Fatal(err)
	}
	token := s.ResetToken(s.WaitMail("alice@example.com", mails))
	if !strings.HasPrefix(token, "darmist1.") {
		t.Errorf("token %q does not name its tenant", token)
	}
	tokens := s.DB("darmist1").Collection(tenantdb.AccountTokens)
	if n, _ := tokens.CountDocuments(ctx, bson.D{{Key: "_id", Value: token}}); n != 0 {
		t.Error("the token is stored as it is, not hashed")
	}
	var stored struct {
		Kind   string `bson:"kind"`
		UserID string `bson:"userId"`
	}
	if err := tokens.FindOne(ctx, bson.D{{Key: "_id", Value: sha256Hex(token)}}).Decode(&stored); err != nil ||
		stored.Kind != "password_reset" || stored.UserID != alice.ID {
		t.Errorf("stored token %+v (%v): want kind password_reset of alice, by its SHA-256", stored, err)
	}

	exp, err := c.CheckResetToken(ctx, token)
	if err != nil {
		t.Fatal(err)
	}
	if d := exp.Sub(s.Clock.Now()); d < 29*time.Minute || d > 31*time.Minute {
		t.Errorf("the link expires in %s, want 30m", d)
	}
	page := s.Do("GET", "/auth/password/reset?token="+url.QueryEscape(token), map[string]string{"Accept": "text/html,application/xhtml+xml;q=0.9,*/*;q=0.8"}, "")
	body := string(page.Body)
	if page.Status != 200 || !strings.HasPrefix(page.Header.Get("Content-Type"), "text/html") ||
		!strings.Contains(body, `name="newPassword"`) || !strings.Contains(body, `value="`+token+`"`) || !strings.Contains(body, `action="reset"`) {
		t.Errorf("the browser page: %d %s\n%s", page.Status, page.Header.Get("Content-Type"), body)
	}
	for h, want := range map[string]string{"Cache-Control": "no-store", "Referrer-Policy": "no-referrer", "X-Frame-Options": "DENY"} {
		if got := page.Header.Get(h); got != want {
			t.Errorf("page header %s = %q, want %q", h, got, want)
		}
	}

	if err := c.ResetPassword(ctx, token, "brand new password"); err != nil {
		t.Fatalf("the reset after a browser GET (which must use nothing): %v", err)
	}
	err = c.ResetPassword(ctx, token, "another password")
	wantCode(t, "the link a second time", err, 400, "INVALID_RESET_TOKEN")
	_, err = c.CheckResetToken(ctx, token)
	wantCode(t, "checking a used link", err, 400, "INVALID_RESET_TOKEN")

	for _, p := range []*client.TokenPair{p1, p2} {
		_, err := c.Sessions(ctx, p.AccessToken)
		wantCode(t, "an access token after the reset", err, 401, "SESSION_INVALID")
		s.Eventually("the follower knows the session is revoked", func() bool { return f.Revoked(p.SessionID) })
	}
	_, err = c.Login(ctx, "alice", "old password")
	wantCode(t, "the old password", err, 401, "INVALID_CREDENTIALS")
	s.Login("darmist1", "alice", "brand new password", "alice@example.com")

	evs := events(t, s, "darmist1", audit.TypePasswordReset)
	if !hasEvent(evs, audit.OutcomeSuccess, "", alice.ID) || !hasEvent(evs, audit.OutcomeFailure, "invalid_token", "") {
		t.Errorf("password.reset events %+v: want alice's success and the reused link's failure", evs)
	}
}

// TestResetThroughTheBrowserForm: the page's form checks the two passwords, then resets once.
func TestResetThroughTheBrowserForm(t *testing.T) {
	s := start(t, authstack.Options{})
	ctx := context.Background()
	c := s.Client("darmist1")
	s.Signup("darmist1", "alice", "alice@example.com", "old password")
	if err := c.ForgotPassword(ctx, "alice"); err != nil {
		t.Fatal(err)
	}
	token := s.ResetToken(s.WaitMail("alice@example.com", 0))

	submit := func(pw, confirm string) authstack.Response {
		form := url.Values{"token": {token}, "newPassword": {pw}, "confirmPassword": {confirm}}
		return s.Do("POST", "/auth/password/reset", map[string]string{
			"Content-Type": "application/x-www-form-urlencoded", "Accept": "text/html",
		}, form.Encode())
	}
	steps := []struct {
		name, pw, confirm string
		status            int
		says              string
		form              bool
	}{
		{"passwords differ", "brand new password", "brand new passwort", 400, "The two passwords differ.", true},
		{"too short", "short", "short", 400, "8 to 128 characters", true},
		{"right", "brand new password", "brand new password", 200, "Your new password is set", false},
		{"again", "other new password", "other new password", 400, "invalid, expired or was already used", false},
	}
	for _, st := range steps {
		r := submit(st.pw, st.confirm)
		body := string(r.Body)
		if r.Status != st.status || !strings.Contains(body, st.says) || strings.Contains(body, `name="newPassword"`) != st.form {
			t.Errorf("%s: got %d, form shown %v:\n%s\nwant %d saying %q, form %v", st.name, r.Status,
				strings.Contains(body, `name="newPassword"`), body, st.status, st.says, st.form)
		}
	}
	s.Login("darmist1", "alice", "brand new password", "alice@example.com")
}

// TestResetRefusesBadTokens: malformed, of an unknown tenant, unknown, of another kind, and
// expired tokens are all INVALID_RESET_TOKEN; a bad new password uses nothing.
func TestResetRefusesBadTokens(t *testing.T) {
	s := start(t, authstack.Options{})
	ctx := context.Background()
	c := s.Client("darmist1")
	alice := s.Signup("darmist1", "alice", "alice@example.com", "old password")
	if err := c.ForgotPassword(ctx, "alice"); err != nil {
		t.Fatal(err)
	}
	good := s.ResetToken(s.WaitMail("alice@example.com", 0))

	err := c.ResetPassword(ctx, good, "short")
	wantCode(t, "a too short new password", err, 400, "VALIDATION_FAILED")
	if _, err := c.CheckResetToken(ctx, good); err != nil {
		t.Fatalf("the token after a refused reset: %v", err)
	}

	unlock := "darmist1." + randomSecret()
	if _, err := s.DB("darmist1").Collection(tenantdb.AccountTokens).InsertOne(ctx, bson.D{
		{Key: "_id", Value: sha256Hex(unlock)}, {Key: "kind", Value: "unlock"}, {Key: "userId", Value: alice.ID},
		{Key: "createdAt", Value: s.Clock.Now()}, {Key: "expiresAt", Value: s.Clock.Now().Add(time.Hour)},
	}); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name, token string
		before      func()
	}{
		{"malformed", "not-a-token", nil},
		{"too long", strings.Repeat("a", 600), nil},
		{"unknown tenant", "nosuchtenant." + randomSecret(), nil},
		{"unknown secret", "darmist1." + randomSecret(), nil},
		{"an unlock token", unlock, nil},
		{"expired", good, func() { s.Clock.Advance(31 * time.Minute) }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if tc.before != nil {
				tc.before()
			}
			_, err := c.CheckResetToken(ctx, tc.token)
			wantCode(t, "check", err, 400, "INVALID_RESET_TOKEN")
			err = c.ResetPassword(ctx, tc.token, "brand new password")
			if tc.name == "too long" {
				wantCode(t, "reset", err, 400, "VALIDATION_FAILED")
				return
			}
			wantCode(t, "reset", err, 400, "INVALID_RESET_TOKEN")
		})
	}
}

// TestForgotAndResetAreRateLimited: per identifier for forgot, per token for reset.
func TestForgotAndResetAreRateLimited(t *testing.T) {
	s := start(t, authstack.Options{Config: func(cfg *authserver.Config) {
		cfg.Account.RateLimits.ForgotAccount = ratelimit.Limit{Events: 2, Per: time.Hour, Burst: 2}
		cfg.Account.RateLimits.ResetAccount = ratelimit.Limit{Events: 2, Per: time.Hour, Burst: 2}
	}})
	header := map[string]string{"x-tenant-id": "darmist1", "Content-Type": "application/json"}
	for i, want := range []string{"PASSWORD_RESET_SENT", "PASSWORD_RESET_SENT", "RATE_LIMITED"} {
		r := s.Do("POST", "/auth/password/forgot", header, `{"usernameOrEmailOrMobile":"Nobody"}`)
		if r.Code != want {
			t.Fatalf("forgot %d: %d %s, want %s", i+1, r.Status, r.Code, want)
		}
		if want == "RATE_LIMITED" && (r.Status != 429 || r.Header.Get("Retry-After") == "") {
			t.Errorf("rate limited: %d, Retry-After %q", r.Status, r.Header.Get("Retry-After"))
		}
	}
	if r := s.Do("POST", "/auth/password/forgot", header, `{"usernameOrEmailOrMobile":"somebody"}`); r.Code != "PASSWORD_RESET_SENT" {
		t.Errorf("another identifier: %s, want PASSWORD_RESET_SENT (the limit is per identifier)", r.Code)
	}
	token := "darmist1." + randomSecret()
	for i, want := range []string{"INVALID_RESET_TOKEN", "INVALID_RESET_TOKEN", "RATE_LIMITED"} {
		r := s.Do("POST", "/auth/password/reset", map[string]string{"Content-Type": "application/json"},
			`{"token":"`+token+`","newPassword":"brand new password"}`)
		if r.Code != want {
			t.Fatalf("reset %d: %d %s, want %s", i+1, r.Status, r.Code, want)
		}
	}
}

// TestBootstrapAdmin: a tenant naming a bootstrap admin gets one admin with no usable
// password and a set-password link; the admin sets a password and signs in; another replica
// creates nothing more.
func TestBootstrapAdmin(t *testing.T) {
	const email = "root.admin+ops@darmist.example"
	s := start(t, authstack.Options{Tenants: map[string]string{
		"darmist1": tenantSpec + "  bootstrapAdmin: {email: Root.Admin+ops@Darmist.example}\n",
	}})
	ctx := context.Background()
	c := s.Client("darmist1")

	msg := s.WaitMail(email, 0)
	if msg.Subject != "Set your Darmist One administrator password" || !strings.Contains(msg.Text, "Your username is root.admin.") ||
		!strings.Contains(msg.Text, "for 3 days") {
		t.Errorf("set-password mail %q:\n%s", msg.Subject, msg.Text)
	}
	u := readUser(t, s, "darmist1", bson.D{{Key: "email", Value: email}})
	if u.Role != authserver.AdminRole || u.Username != "root.admin" || !strings.HasPrefix(u.PasswordHash, "$argon2id$") {
		t.Errorf("bootstrap admin %+v: want role admin, username root.admin, an argon2id hash", u)
	}
	_, err := c.Login(ctx, email, "any password at all")
	wantCode(t, "login before a password is set", err, 401, "INVALID_CREDENTIALS")

	token := s.ResetToken(msg)
	exp, err := c.CheckResetToken(ctx, token)
	if err != nil {
		t.Fatal(err)
	}
	if d := exp.Sub(s.Clock.Now()); d < 71*time.Hour || d > 73*time.Hour {
		t.Errorf("the set-password link expires in %s, want 72h", d)
	}
	form := url.Values{"token": {token}, "newPassword": {"admin password 1"}, "confirmPassword": {"admin password 1"}}
	if r := s.Do("POST", "/auth/password/reset", map[string]string{"Content-Type": "application/x-www-form-urlencoded"}, form.Encode()); r.Status != 200 {
		t.Fatalf("setting the password: %d\n%s", r.Status, r.Body)
	}
	pair := s.Login("darmist1", "root.admin", "admin password 1", email)
	users, err := c.ListUsers(ctx, pair.AccessToken, client.ListUsersOptions{})
	if err != nil {
		t.Fatalf("the bootstrap admin on the admin API: %v", err)
	}
	if users.Total != 1 || users.Items[0].ID != u.ID || users.Items[0].Role != "admin" {
		t.Errorf("users %+v, want just the admin", users)
	}

	mails := s.MailCount(email)
	r2 := s.AddReplica()
	s.Eventually("the second replica handled the bootstrap admin", func() bool { return r2.Account.Bootstrapped("darmist1") == email })
	if n, _ := s.DB("darmist1").Collection(tenantdb.Users).CountDocuments(ctx, bson.D{{Key: "email", Value: email}}); n != 1 {
		t.Errorf("%d users with the bootstrap email after a second replica started, want 1", n)
	}
	if n := s.MailCount(email); n != mails {
		t.Errorf("the second replica mailed the admin again (%d mails, had %d)", n, mails)
	}
	evs := events(t, s, "darmist1", audit.TypeBootstrapAdmin)
	if len(evs) != 1 || evs[0].SubjectID != u.ID || evs[0].ActorID != audit.ActorSystem {
		t.Errorf("user.bootstrap_admin events %+v, want one, by system, about the admin", evs)
	}
}

// TestBootstrapAdminOnATenantChange: a bootstrap email added to a served tenant creates the
// admin; a taken username gets a suffix.
func TestBootstrapAdminOnATenantChange(t *testing.T) {
	s := start(t, authstack.Options{})
	s.Signup("darmist1", "root", "someone@example.com", "password 1")
	s.WriteTenant("darmist1", tenantSpec+"  bootstrapAdmin: {email: root@darmist.example}\n")
	s.WaitMail("root@darmist.example", 0)
	if u := readUser(t, s, "darmist1", bson.D{{Key: "email", Value: "root@darmist.example"}}); u.Username != "root-2" || u.Role != "admin" {
		t.Errorf("bootstrap admin %+v, want username root-2 (root is taken) and role admin", u)
	}
}

// TestBootstrapAdminNeedsTheAdminRole: a tenant without the admin role gets no admin.
func TestBootstrapAdminNeedsTheAdminRole(t *testing.T) {
	s := start(t, authstack.Options{Tenants: map[string]string{
		"darmist1": tenantSpec + "  roles: [user, manager]\n  bootstrapAdmin: {email: root@darmist.example}\n",
	}})
	s.Eventually("the bootstrap admin was considered", func() bool { return s.Account.Bootstrapped("darmist1") == "root@darmist.example" })
	if n, _ := s.DB("darmist1").Collection(tenantdb.Users).CountDocuments(context.Background(), bson.D{}); n != 0 {
		t.Errorf("%d users, want none", n)
	}
	if n := s.MailCount("root@darmist.example"); n != 0 {
		t.Errorf("%d mails, want none", n)
	}
}

func TestBootstrapUsername(t *testing.T) {
	cases := map[string]string{
		"root@darmist.example":           "root",
		"Root.Admin+ops@darmist.example": "root.admin",
		"o'brien@example.com":            "o-brien",
		"jürgen.müller@example.com":      "j-rgen.m-ller",
		"a@example.com":                  "admin-a",
		"12345@example.com":              "admin-12345",
		"..@example.com":                 "admin",
		"-_-@example.com":                "admin",
		"a-very-long-local-part-of-an-email-address@example.com": "a-very-long-local-part-of-an",
		"first_last@example.com":                                 "first_last",
	}
	for email, want := range cases {
		if got := account.BootstrapUsername(email); got != want {
			t.Errorf("BootstrapUsername(%q) = %q, want %q", email, got, want)
		}
	}
}

func sha256Hex(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

func randomSecret() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}
