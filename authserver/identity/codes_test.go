package identity_test

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/authmesh/authmesh/authserver"
	"github.com/authmesh/authmesh/authserver/httpapi"
	"github.com/authmesh/authmesh/authserver/identity"
	"github.com/authmesh/authmesh/authserver/mail"
	"github.com/authmesh/authmesh/authserver/ratelimit"
	"github.com/authmesh/authmesh/internal/tenantdb"
)

var userSeq atomic.Int64

type testUser struct {
	username, email, password string
}

// newUser signs up a fresh user of tenant.
func (h *harness) newUser(tenant string) testUser {
	h.t.Helper()
	n := userSeq.Add(1)
	u := testUser{username: fmt.Sprintf("user%d", n), email: fmt.Sprintf("user%d@example.com", n), password: "password-" + fmt.Sprint(n)}
	h.signup(tenant, u.username, u.email, "", u.password)
	return u
}

func (h *harness) loginAs(tenant string, u testUser, pw string) response {
	h.t.Helper()
	return h.post(tenant, "/auth/login", map[string]string{"usernameOrEmailOrMobile": u.username, "password": pw})
}

var unlockLinkRE = regexp.MustCompile(`(http://\S+/auth/unlock\?token=(\S+))`)

// lock locks u's account with wrong passwords (the tenant's threshold is lockThreshold) and
// returns the unlock link and token from the mail.
func (h *harness) lock(tenant string, u testUser) (link, token string) {
	h.t.Helper()
	before := h.mailCount(u.email)
	for i := range lockThreshold {
		r := h.loginAs(tenant, u, "wrong-password")
		if i < lockThreshold-1 {
			want(h.t, r, http.StatusUnauthorized, identity.CodeInvalidCredentials)
		} else {
			want(h.t, r, http.StatusLocked, identity.CodeAccountLocked)
		}
	}
	msg := h.waitMail(u.email, before)
	m := unlockLinkRE.FindStringSubmatch(msg.Text)
	if m == nil {
		h.t.Fatalf("no unlock link in %q", msg.Text)
	}
	return m[1], m[2]
}

const lockThreshold = 3

var codeTenants = map[string]string{
	"t1":    tenantSpec + "  login: {lockout: {maxFailedAttempts: 3, duration: 15m}, otp: {maxAttempts: 2}}\n",
	"nootp": "  login: {otp: {enabled: false}}\n",
}

// TestEveryCodeWithItsStatus produces each code this package owns (and the shared ones its
// routes answer with) over real HTTP and checks the status.
func TestEveryCodeWithItsStatus(t *testing.T) {
	h := startServer(t, serverOptions{tenants: codeTenants, rateLimits: &unlimited})
	h.signup("t1", "taken", "taken@example.com", "+15550000001", "taken-password")
	signup := func(username, email, mobile, pw string) func(*testing.T) response {
		return func(*testing.T) response {
			body := map[string]string{"username": username, "email": email, "password": pw}
			if mobile != "" {
				body["mobile"] = mobile
			}
			return h.post("t1", "/auth/signup", body)
		}
	}
	verify := func(loginID, otp string) response {
		return h.post("t1", "/auth/login/verify", map[string]string{"loginId": loginID, "otp": otp})
	}
	unlock := func(token string) response {
		return h.post("", "/auth/unlock", map[string]string{"token": token})
	}

	cases := map[string]struct {
		act        func(t *testing.T) response
		wantStatus int
		wantCode   string
		wantDetail string // a substring of meta.details
	}{
		"signup":                         {signup("newbie", "newbie@example.com", "+15550000002", "newbie-password"), 201, identity.CodeSignupSuccess, ""},
		"duplicate username, any case":   {signup("TAKEN", "other1@example.com", "", "password-1"), 409, identity.CodeUserExists, `"field":"username"`},
		"duplicate email, any case":      {signup("other2", "Taken@Example.com", "", "password-1"), 409, identity.CodeUserExists, `"field":"email"`},
		"duplicate mobile":               {signup("other3", "other3@example.com", "+15550000001", "password-1"), 409, identity.CodeUserExists, `"field":"mobile"`},
		"username with @":                {signup("a@b", "x1@example.com", "", "password-1"), 400, httpapi.CodeValidationFailed, `"rule":"noat"`},
		"username all digits":            {signup("12345", "x2@example.com", "", "password-1"), 400, httpapi.CodeValidationFailed, `"rule":"notdigits"`},
		"username with spaces":           {signup("a b c", "x3@example.com", "", "password-1"), 400, httpapi.CodeValidationFailed, `"rule":"username"`},
		"email not an email":             {signup("x4", "not-an-email", "", "password-1"), 400, httpapi.CodeValidationFailed, `"rule":"email"`},
		"mobile not E.164":               {signup("x5", "x5@example.com", "0151 1234", "password-1"), 400, httpapi.CodeValidationFailed, `"rule":"e164"`},
		"mobile without its +":           {signup("plusless", "x8@example.com", "15551234567", "password-1"), 400, httpapi.CodeValidationFailed, `"rule":"e164"`},
		"email with a quoted local part": {signup("quoted", `"ab"@example.com`, "", "password-1"), 400, httpapi.CodeValidationFailed, `"rule":"email"`},
		"email with a display name":      {signup("named", "Ab <ab@example.com>", "", "password-1"), 400, httpapi.CodeValidationFailed, `"rule":"email"`},
		"password of 7 characters":       {signup("x6", "x6@example.com", "", "1234567"), 400, httpapi.CodeValidationFailed, `"rule":"min"`},
		"password of 129 characters":     {signup("x7", "x7@example.com", "", strings.Repeat("p", 129)), 400, httpapi.CodeValidationFailed, `"rule":"max"`},
		"signup without fields":          {func(*testing.T) response { return h.post("t1", "/auth/signup", map[string]string{}) }, 400, httpapi.CodeValidationFailed, `"rule":"required"`},
		"login body not JSON": {func(*testing.T) response {
			r, _ := h.do("POST", "/auth/login", map[string]string{"x-tenant-id": "t1", "Content-Type": "application/json"}, "{")
			return r
		}, 400, httpapi.CodeInvalidJSON, ""},
		"login without tenant": {func(*testing.T) response {
			return h.post("", "/auth/login", map[string]string{"usernameOrEmailOrMobile": "x", "password": "y"})
		}, 400, httpapi.CodeTenantIDMissing, ""},
		"login of unknown user":     {func(*testing.T) response { return h.loginAs("t1", testUser{username: "nobody"}, "whatever-pw") }, 401, identity.CodeInvalidCredentials, ""},
		"login with wrong password": {func(*testing.T) response { return h.loginAs("t1", h.newUser("t1"), "wrong-password") }, 401, identity.CodeInvalidCredentials, ""},
		"login sends a code":        {func(*testing.T) response { u := h.newUser("t1"); return h.loginAs("t1", u, u.password) }, 200, identity.CodeOTPSent, ""},
		"login without OTP step":    {func(*testing.T) response { u := h.newUser("nootp"); return h.loginAs("nootp", u, u.password) }, 200, identity.CodeLoginSuccess, ""},
		"login of a disabled user": {func(t *testing.T) response {
			u := h.newUser("t1")
			setField(t, h, "t1", u.username, "disabled", true)
			return h.loginAs("t1", u, u.password)
		}, 403, identity.CodeAccountDisabled, ""},
		"threshold reached locks": {func(t *testing.T) response {
			u := h.newUser("t1")
			h.loginAs("t1", u, "wrong-1")
			h.loginAs("t1", u, "wrong-2")
			return h.loginAs("t1", u, "wrong-3")
		}, 423, identity.CodeAccountLocked, "lockedUntil"},
		"locked account, right password": {func(t *testing.T) response {
			u := h.newUser("t1")
			h.lock("t1", u)
			return h.loginAs("t1", u, u.password)
		}, 423, identity.CodeAccountLocked, "lockedUntil"},
		"wrong code": {func(t *testing.T) response {
			u := h.newUser("t1")
			loginID, code := h.login("t1", u.username, u.password, u.email)
			return verify(loginID, wrongCode(code))
		}, 401, identity.CodeInvalidOTP, `"attemptsLeft":1`},
		"expired code": {func(t *testing.T) response {
			u := h.newUser("t1")
			loginID, code := h.login("t1", u.username, u.password, u.email)
			h.clock.Step(5*time.Minute + time.Second)
			return verify(loginID, code)
		}, 410, identity.CodeOTPExpired, ""},
		"unknown loginId": {func(*testing.T) response { return verify("no-such-login", "123456") }, 410, identity.CodeOTPExpired, ""},
		"verify without otp": {func(*testing.T) response {
			return h.post("t1", "/auth/login/verify", map[string]string{"loginId": "x"})
		}, 400, httpapi.CodeValidationFailed, `"field":"otp"`},
		"too many wrong codes": {func(t *testing.T) response {
			u := h.newUser("t1")
			loginID, code := h.login("t1", u.username, u.password, u.email)
			want(t, verify(loginID, wrongCode(code)), 401, identity.CodeInvalidOTP)
			want(t, verify(loginID, wrongCode(code)), 401, identity.CodeInvalidOTP)
			return verify(loginID, code) // even the right code: the attempts are used up
		}, 429, identity.CodeOTPAttemptsExceeded, ""},
		"wrong codes count toward lockout": {func(t *testing.T) response {
			u := h.newUser("t1")
			loginID, code := h.login("t1", u.username, u.password, u.email)
			want(t, verify(loginID, wrongCode(code)), 401, identity.CodeInvalidOTP)
			want(t, verify(loginID, wrongCode(code)), 401, identity.CodeInvalidOTP)
			loginID, code = h.login("t1", u.username, u.password, u.email) // a fresh challenge
			return verify(loginID, wrongCode(code))                        // third failure of the account
		}, 423, identity.CodeAccountLocked, ""},
		"unlock with the mailed token": {func(t *testing.T) response {
			_, token := h.lock("t1", h.newUser("t1"))
			return unlock(token)
		}, 200, identity.CodeAccountUnlocked, ""},
		"unlock token reused": {func(t *testing.T) response {
			_, token := h.lock("t1", h.newUser("t1"))
			want(t, unlock(token), 200, identity.CodeAccountUnlocked)
			return unlock(token)
		}, 400, identity.CodeInvalidUnlockToken, ""},
		"unlock token after the lock ended": {func(t *testing.T) response {
			_, token := h.lock("t1", h.newUser("t1"))
			h.clock.Step(15 * time.Minute)
			return unlock(token)
		}, 400, identity.CodeInvalidUnlockToken, ""},
		"bogus unlock token":         {func(*testing.T) response { return unlock("bogus") }, 400, identity.CodeInvalidUnlockToken, ""},
		"unlock token of no tenant":  {func(*testing.T) response { return unlock("nosuchtenant." + strings.Repeat("A", 43)) }, 400, identity.CodeInvalidUnlockToken, ""},
		"well-formed, unknown token": {func(*testing.T) response { return unlock("t1." + strings.Repeat("A", 43)) }, 400, identity.CodeInvalidUnlockToken, ""},
		"GET unlock without a token": {func(*testing.T) response {
			r, _ := h.do("GET", "/auth/unlock", map[string]string{"Accept": "application/json"}, "")
			return r
		}, 400, identity.CodeInvalidUnlockToken, ""},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			r := tc.act(t)
			want(t, r, tc.wantStatus, tc.wantCode)
			if tc.wantDetail != "" && !strings.Contains(string(r.env.Meta.Details), tc.wantDetail) {
				t.Errorf("meta.details %s, want it to contain %s", r.env.Meta.Details, tc.wantDetail)
			}
			if r.env.Message == "" || r.env.TS == "" {
				t.Errorf("envelope without message or ts: %s", r.body)
			}
			if r.status == http.StatusLocked && r.header.Get("Retry-After") == "" {
				t.Error("ACCOUNT_LOCKED without Retry-After")
			}
		})
	}
}

// TestRateLimitedAndEmailUnavailable covers the answers that need their own server settings.
func TestRateLimitedAndEmailUnavailable(t *testing.T) {
	per := func(n int) ratelimit.Limit { return ratelimit.Limit{Events: n, Per: time.Minute, Burst: n} }
	cases := map[string]struct {
		limits     *authserver.RateLimits
		act        func(t *testing.T, h *harness) response
		wantStatus int
		wantCode   string
	}{
		"login per IP": {limits(func(l *authserver.RateLimits) { l.LoginIP = per(2) }), func(t *testing.T, h *harness) response {
			h.loginAs("t1", testUser{username: "a1"}, "x-password")
			h.loginAs("t1", testUser{username: "a2"}, "x-password")
			return h.loginAs("t1", testUser{username: "a3"}, "x-password")
		}, 429, httpapi.CodeRateLimited},
		"login per account, from anywhere": {limits(func(l *authserver.RateLimits) { l.LoginAccount = per(1) }), func(t *testing.T, h *harness) response {
			want(t, h.loginAs("t1", testUser{username: "victim"}, "x-password"), 401, identity.CodeInvalidCredentials)
			r, _ := h.do("POST", "/auth/login", map[string]string{"x-tenant-id": "t1"}, `{"usernameOrEmailOrMobile":"VICTIM","password":"y-password"}`)
			return r
		}, 429, httpapi.CodeRateLimited},
		"signup per IP": {limits(func(l *authserver.RateLimits) { l.SignupIP = per(1) }), func(t *testing.T, h *harness) response {
			h.newUser("t1")
			return h.post("t1", "/auth/signup", map[string]string{"username": "second", "email": "second@example.com", "password": "password-2"})
		}, 429, httpapi.CodeRateLimited},
		"verify per account": {limits(func(l *authserver.RateLimits) { l.VerifyAccount = per(1) }), func(t *testing.T, h *harness) response {
			u := h.newUser("t1")
			loginID, code := h.login("t1", u.username, u.password, u.email)
			want(t, h.post("t1", "/auth/login/verify", map[string]string{"loginId": loginID, "otp": wrongCode(code)}), 401, identity.CodeInvalidOTP)
			return h.post("t1", "/auth/login/verify", map[string]string{"loginId": loginID, "otp": code})
		}, 429, httpapi.CodeRateLimited},
		"unlock per IP": {limits(func(l *authserver.RateLimits) { l.UnlockIP = per(1) }), func(t *testing.T, h *harness) response {
			h.post("", "/auth/unlock", map[string]string{"token": "bogus"})
			return h.post("", "/auth/unlock", map[string]string{"token": "bogus"})
		}, 429, httpapi.CodeRateLimited},
		"code cannot be mailed": {&unlimited, func(t *testing.T, h *harness) response {
			u := h.newUser("t1")
			h.mailer.set(closedPortSMTP(t))
			r := h.loginAs("t1", u, u.password)
			n, err := h.db("t1").Collection(tenantdb.LoginChallenges).CountDocuments(context.Background(), bson.D{})
			if err != nil || n != 0 {
				t.Errorf("%d login challenges left after the mail failed (%v), want none", n, err)
			}
			return r
		}, 503, identity.CodeEmailUnavailable},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			h := startServer(t, serverOptions{tenants: codeTenants, rateLimits: tc.limits})
			r := tc.act(t, h)
			want(t, r, tc.wantStatus, tc.wantCode)
			if tc.wantCode == httpapi.CodeRateLimited && r.header.Get("Retry-After") == "" {
				t.Error("RATE_LIMITED without Retry-After")
			}
		})
	}
}

// closedPortSMTP is a real SMTP sender to a port nobody listens on.
func closedPortSMTP(t *testing.T) mail.Sender {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	s, err := mail.NewSMTP(mail.SMTPConfig{Host: "127.0.0.1", Port: port, TLS: mail.TLSNone, Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// wrongCode is a code of the same length that is not code.
func wrongCode(code string) string {
	b := []byte(code)
	b[0] = '0' + (b[0]-'0'+1)%10
	return string(b)
}

// setField sets a field of a user found by username.
func setField(t *testing.T, h *harness, tenant, username, field string, value any) {
	t.Helper()
	_, err := h.db(tenant).Collection(tenantdb.Users).UpdateOne(context.Background(),
		bson.D{{Key: "username", Value: username}}, bson.D{{Key: "$set", Value: bson.D{{Key: field, Value: value}}}})
	if err != nil {
		t.Fatal(err)
	}
}
