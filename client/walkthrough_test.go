package client_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/authmesh/authmesh/client"
	"github.com/authmesh/authmesh/guard"
	"github.com/authmesh/authmesh/internal/testenv/authstack"
)

// TestTutorialWalkthrough is the tutorial's curl walkthrough (step 8.3, section 6) as a test
// over real HTTP with the typed client: login -> verify -> sessions -> logout/session ->
// logout/all -> refresh, each with the status and code DESIGN.md pins. A sidecar's feed
// follower watches the tenant throughout.
func TestTutorialWalkthrough(t *testing.T) {
	s := authstack.Start(t, testDB, authstack.Options{Tenants: map[string]string{"darmist1": ""}})
	ctx := context.Background()
	laptop := client.New(s.URL, "darmist1", client.WithUserAgent("curl/8.7.1"))
	phone := client.New(s.URL, "darmist1",
		client.WithUserAgent("Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1"))
	if _, err := laptop.Signup(ctx, client.SignupRequest{Username: "testuser", Email: "testuser@example.com", Password: "secret123"}); err != nil {
		t.Fatal(err)
	}
	follower := guard.NewRevocationFollower(guard.RevocationFollowerConfig{BaseURL: s.InternalURL, Tenant: "darmist1", Wait: 5 * time.Second})
	fctx, stop := context.WithCancel(ctx)
	defer stop()
	go follower.Run(fctx)

	// a) Login -> verify OTP -> tokens, on two devices.
	login := func(c *client.Client) *client.TokenPair {
		t.Helper()
		var pending struct {
			LoginID   string `json:"loginId"`
			ExpiresAt string `json:"expiresAt"`
		}
		mailed := s.MailCount("testuser@example.com")
		res, err := c.Call(ctx, "POST", "/auth/login", "", map[string]string{"usernameOrEmailOrMobile": "testuser", "password": "secret123"}, &pending)
		if err != nil || res.Status != 200 || res.Code != "OTP_SENT" || pending.LoginID == "" || pending.ExpiresAt == "" {
			t.Fatalf("login: %+v %+v %v", res, pending, err)
		}
		var pair client.TokenPair
		res, err = c.Call(ctx, "POST", "/auth/login/verify", "", map[string]string{"loginId": pending.LoginID, "otp": s.LoginCode("testuser@example.com", mailed)}, &pair)
		if err != nil || res.Status != 200 || res.Code != "LOGIN_SUCCESS" {
			t.Fatalf("verify: %+v %v", res, err)
		}
		if pair.AccessToken == "" || pair.RefreshToken == "" || pair.TokenType != "Bearer" || pair.ExpiresIn != 900 || pair.SessionID == "" {
			t.Fatalf("tokens %+v", pair)
		}
		return &pair
	}
	onLaptop := login(laptop)
	s.Clock.Advance(time.Second) // the stack's clock stands still: the phone's session is newer
	onPhone := login(phone)

	// b) List sessions.
	var list []client.Session
	res, err := laptop.Call(ctx, "GET", "/auth/sessions", onLaptop.AccessToken, nil, &list)
	if err != nil || res.Status != 200 || res.Code != "SESSIONS_RETRIEVED" || res.Message != "Active login sessions retrieved successfully." {
		t.Fatalf("sessions: %+v %v", res, err)
	}
	if len(list) != 2 || list[0].SessionID != onPhone.SessionID || list[1].SessionID != onLaptop.SessionID || list[0].Current || !list[1].Current {
		t.Fatalf("sessions %+v: want the phone's then the laptop's (current)", list)
	}
	if list[1].UA != "curl/8.7.1" || list[1].DeviceName == "" || list[0].DeviceName == list[1].DeviceName || list[1].IP == "" {
		t.Fatalf("sessions %+v: want user agents, distinct device names and IPs", list)
	}

	// c) Logout single session: the phone, from the laptop.
	res, err = laptop.Call(ctx, "POST", "/auth/logout/session", onLaptop.AccessToken, map[string]string{"sessionId": onPhone.SessionID}, nil)
	if err != nil || res.Status != 200 || res.Code != "SESSION_REVOKED" {
		t.Fatalf("logout/session: %+v %v", res, err)
	}
	_, err = phone.Sessions(ctx, onPhone.AccessToken)
	wantCode(t, "the phone's access token", err, 401, "SESSION_INVALID")
	waitFor(t, "the sidecar's follower learns of the phone's logout", func() bool { return follower.Revoked(onPhone.SessionID) })

	// d) Logout all sessions.
	var all struct {
		RevokedCount int `json:"revokedCount"`
	}
	res, err = laptop.Call(ctx, "POST", "/auth/logout/all", onLaptop.AccessToken, nil, &all)
	if err != nil || res.Status != 200 || res.Code != "ALL_SESSIONS_REVOKED" || all.RevokedCount != 1 {
		t.Fatalf("logout/all: %+v %+v %v", res, all, err)
	}
	_, err = laptop.Sessions(ctx, onLaptop.AccessToken)
	wantCode(t, "the laptop's access token after logout/all", err, 401, "SESSION_INVALID")
	waitFor(t, "the follower learns of logout/all", func() bool { return follower.Revoked(onLaptop.SessionID) })

	// e) Refresh tokens: a logged-out session's token is refused; a new login's rotates, and
	// the spent token then ends the session.
	_, err = laptop.Refresh(ctx, onLaptop.RefreshToken)
	wantCode(t, "refresh of a logged-out session", err, 401, "SESSION_NOT_FOUND")
	again := login(laptop)
	var pair client.TokenPair
	res, err = laptop.Call(ctx, "POST", "/auth/refresh", "", map[string]string{"refreshToken": again.RefreshToken}, &pair)
	if err != nil || res.Status != 200 || res.Code != "TOKENS_REFRESHED" || pair.SessionID != again.SessionID {
		t.Fatalf("refresh: %+v %+v %v", res, pair, err)
	}
	if _, err := laptop.Sessions(ctx, pair.AccessToken); err != nil {
		t.Fatalf("the refreshed access token: %v", err)
	}
	_, err = laptop.Refresh(ctx, again.RefreshToken)
	wantCode(t, "the spent refresh token", err, 401, "REFRESH_TOKEN_REUSED")
	_, err = laptop.Refresh(ctx, pair.RefreshToken)
	wantCode(t, "the newest refresh token after reuse", err, 401, "SESSION_NOT_FOUND")
}

func wantCode(t *testing.T, what string, err error, status int, code string) {
	t.Helper()
	e, ok := err.(*client.APIError)
	if !ok || e.Status != status || e.Code != code {
		t.Fatalf("%s: err = %v, want %d %s", what, err, status, code)
	}
}

// waitFor polls cond until it holds; a wait, not a timing assertion.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting until %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestAPIErrorCarriesTheEnvelope checks what an *APIError holds.
func TestAPIErrorCarriesTheEnvelope(t *testing.T) {
	s := authstack.Start(t, testDB, authstack.Options{Tenants: map[string]string{"darmist1": ""}})
	c := client.New(s.URL, "darmist1")
	err := c.LogoutSession(context.Background(), "", "e8c7fa5f-166b-4de2-b2e4-2d290c57cf58")
	e, ok := err.(*client.APIError)
	if !ok || e.Status != 401 || e.Code != "UNAUTHORIZED" || e.Message == "" || e.RequestID == "" || client.ErrorCode(err) != "UNAUTHORIZED" {
		t.Fatalf("err = %#v", err)
	}
	_, err = client.New(s.URL, "nobody").Refresh(context.Background(), "x")
	var details struct {
		TenantID string `json:"tenantId"`
	}
	if e, ok := err.(*client.APIError); !ok || e.Code != "TENANT_NOT_FOUND" || e.Status != 404 {
		t.Fatalf("err = %v", err)
	} else if err := json.Unmarshal(e.Details, &details); err != nil || details.TenantID != "nobody" {
		t.Fatalf("details %s", e.Details)
	}
}
