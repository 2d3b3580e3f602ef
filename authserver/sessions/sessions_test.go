package sessions_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/authmesh/authmesh/authserver/ratelimit"
	"github.com/authmesh/authmesh/authserver/sessions"
	"github.com/authmesh/authmesh/client"
	"github.com/authmesh/authmesh/internal/tenantdb"
)

// TestSessionsWalkthrough is the tutorial's curl walkthrough from the session list on
// (sessions -> logout/session -> logout/all -> refresh) over real HTTP, with the pinned codes,
// statuses and messages. Logins are made with Service.Start, as the login handlers do.
func TestSessionsWalkthrough(t *testing.T) {
	h := start(t, standardTenants)
	ctx := context.Background()
	c := h.client("alpha")
	uid := h.user("alpha", "user")
	first := h.login("alpha", uid, "user")
	h.clock.Step(time.Second)
	second := h.login("alpha", uid, "user")
	h.clock.Step(time.Second)
	third := h.login("alpha", uid, "user")

	// b) List sessions.
	var list []client.Session
	res, err := c.Call(ctx, "GET", "/auth/sessions", second.AccessToken, nil, &list)
	if err != nil {
		t.Fatal(err)
	}
	if res.Status != 200 || res.Code != "SESSIONS_RETRIEVED" || res.Message != "Active login sessions retrieved successfully." {
		t.Fatalf("list: %+v", res)
	}
	if len(list) != 3 || list[0].SessionID != third.SessionID || list[1].SessionID != second.SessionID || list[2].SessionID != first.SessionID {
		t.Fatalf("list = %+v, want the three sessions newest first", list)
	}
	for _, s := range list {
		if s.Current != (s.SessionID == second.SessionID) {
			t.Errorf("session %s current = %v; only the caller's session is current", s.SessionID, s.Current)
		}
		if s.DeviceName != "curl 8" || s.UA != "curl/8.7.1" || s.IP != "127.0.0.1" || s.CreatedAt.IsZero() || !s.LastSeen.Equal(s.CreatedAt) {
			t.Errorf("session %+v: want the device, ip, ua and times it was started with", s)
		}
	}
	raw := rawCall(t, "GET", h.r0().public.URL+"/auth/sessions", "alpha", second.AccessToken, "")
	for _, secret := range []string{"refreshHash", "prevHash", "tagKey", h.session("alpha", first.SessionID).RefreshHash} {
		if strings.Contains(raw, secret) {
			t.Fatalf("the session list leaks %q: %s", secret, raw)
		}
	}
	var fields struct {
		Data []map[string]any `json:"data"`
	}
	_ = json.Unmarshal([]byte(raw), &fields)
	var keys []string
	for k := range fields.Data[0] {
		keys = append(keys, k)
	}
	if len(keys) != 7 {
		t.Errorf("an entry has fields %v, want exactly sessionId, deviceName, ip, ua, createdAt, lastSeen, current", keys)
	}

	// c) Logout a single session.
	res, err = c.Call(ctx, "POST", "/auth/logout/session", second.AccessToken, map[string]string{"sessionId": first.SessionID}, nil)
	if err != nil || res.Status != 200 || res.Code != "SESSION_REVOKED" || res.Message != "Session has been revoked successfully." {
		t.Fatalf("logout/session: %+v %v", res, err)
	}
	_, err = c.Sessions(ctx, first.AccessToken)
	wantCode(t, "the logged-out session's access token", err, 401, "SESSION_INVALID")
	err = c.LogoutSession(ctx, second.AccessToken, first.SessionID)
	wantCode(t, "logging out a revoked session", err, 404, "SESSION_NOT_FOUND")
	err = c.LogoutSession(ctx, second.AccessToken, "not-a-uuid")
	wantCode(t, "logging out a malformed id", err, 400, "VALIDATION_FAILED")

	// d) Logout all sessions, the caller's own included.
	var all struct {
		RevokedCount int `json:"revokedCount"`
	}
	res, err = c.Call(ctx, "POST", "/auth/logout/all", second.AccessToken, nil, &all)
	if err != nil || res.Status != 200 || res.Code != "ALL_SESSIONS_REVOKED" || all.RevokedCount != 2 {
		t.Fatalf("logout/all: %+v %+v %v; want 2 revoked", res, all, err)
	}
	for _, p := range []sessions.TokenPair{second, third} {
		_, err = c.Sessions(ctx, p.AccessToken)
		wantCode(t, "an access token after logout/all", err, 401, "SESSION_INVALID")
		_, err = c.Refresh(ctx, p.RefreshToken)
		wantCode(t, "a refresh token after logout/all", err, 401, "SESSION_NOT_FOUND")
	}

	// e) Refresh tokens.
	fourth := h.login("alpha", uid, "user")
	var pair client.TokenPair
	res, err = c.Call(ctx, "POST", "/auth/refresh", "", map[string]string{"refreshToken": fourth.RefreshToken}, &pair)
	if err != nil || res.Status != 200 || res.Code != "TOKENS_REFRESHED" {
		t.Fatalf("refresh: %+v %v", res, err)
	}
	if pair.SessionID != fourth.SessionID || pair.TokenType != "Bearer" || pair.ExpiresIn != 900 ||
		pair.AccessToken == fourth.AccessToken || !strings.HasPrefix(pair.RefreshToken, fourth.SessionID+".1.") {
		t.Fatalf("refreshed pair %+v: want the same session, generation 1, a new access token", pair)
	}
	if list, err := c.Sessions(ctx, pair.AccessToken); err != nil || len(list) != 1 || !list[0].Current {
		t.Fatalf("sessions with the refreshed token: %+v %v", list, err)
	}
}

// rawCall makes one request and returns the body.
func rawCall(t testing.TB, method, url, tenant, token, body string) string {
	t.Helper()
	req, _ := http.NewRequest(method, url, strings.NewReader(body))
	req.Header.Set("x-tenant-id", tenant)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

// TestRefreshOutcomes presents every kind of refresh token and checks the pinned outcome,
// and whether the session survives it.
func TestRefreshOutcomes(t *testing.T) {
	h := start(t, standardTenants)
	ctx := context.Background()
	c := h.client("alpha")
	uid := h.user("alpha", "user")
	forged := strings.Repeat("A", 64) // a well-formed secret the server never issued

	cases := map[string]struct {
		token       func(p sessions.TokenPair) string
		wantStatus  int
		wantCode    string
		wantRevoked bool
	}{
		"empty secret":                     {func(p sessions.TokenPair) string { return replaceSecret(p.RefreshToken, "") }, 401, "INVALID_REFRESH_TOKEN", false},
		"short secret":                     {func(p sessions.TokenPair) string { return replaceSecret(p.RefreshToken, "abc") }, 401, "INVALID_REFRESH_TOKEN", false},
		"two parts":                        {func(p sessions.TokenPair) string { return p.SessionID + ".0" }, 401, "INVALID_REFRESH_TOKEN", false},
		"not a uuid":                       {func(p sessions.TokenPair) string { return "session.0." + forged }, 401, "INVALID_REFRESH_TOKEN", false},
		"upper-case uuid":                  {func(p sessions.TokenPair) string { return strings.ToUpper(p.SessionID) + ".0." + forged }, 401, "INVALID_REFRESH_TOKEN", false},
		"negative generation":              {func(p sessions.TokenPair) string { return p.SessionID + ".-1." + forged }, 401, "INVALID_REFRESH_TOKEN", false},
		"padded generation":                {func(p sessions.TokenPair) string { return p.SessionID + ".00." + forged }, 401, "INVALID_REFRESH_TOKEN", false},
		"a JWT":                            {func(p sessions.TokenPair) string { return p.AccessToken }, 401, "INVALID_REFRESH_TOKEN", false},
		"unknown session":                  {func(p sessions.TokenPair) string { return newSID() + ".0." + forged }, 401, "INVALID_REFRESH_TOKEN", false},
		"future generation":                {func(p sessions.TokenPair) string { return withGeneration(p.RefreshToken, 5) }, 401, "INVALID_REFRESH_TOKEN", false},
		"current generation, wrong secret": {func(p sessions.TokenPair) string { return replaceSecret(p.RefreshToken, forged) }, 401, "INVALID_REFRESH_HASH", false},
		// Session ids are no secret (every access token carries one): a forged token of an
		// earlier generation must not end the session.
		"earlier generation, forged secret": {func(p sessions.TokenPair) string { return p.SessionID + ".0." + forged }, 401, "INVALID_REFRESH_HASH", false},
		"current token":                     {func(p sessions.TokenPair) string { return p.RefreshToken }, 200, "TOKENS_REFRESHED", false},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			p := h.login("alpha", uid, "user")
			p1, err := c.Refresh(ctx, p.RefreshToken) // generation 1 is current; tests present against it
			if err != nil {
				t.Fatal(err)
			}
			_, err = c.Refresh(ctx, tc.token(sessions.TokenPair{SessionID: p.SessionID, RefreshToken: p1.RefreshToken, AccessToken: p1.AccessToken}))
			if tc.wantStatus == 200 {
				if err != nil {
					t.Fatalf("got %v, want success", err)
				}
			} else {
				wantCode(t, name, err, tc.wantStatus, tc.wantCode)
			}
			if revoked := h.session("alpha", p.SessionID).RevokedAt != nil; revoked != tc.wantRevoked {
				t.Fatalf("session revoked = %v, want %v", revoked, tc.wantRevoked)
			}
		})
	}

	t.Run("revoked session", func(t *testing.T) {
		p := h.login("alpha", uid, "user")
		if err := c.LogoutSession(ctx, p.AccessToken, p.SessionID); err != nil {
			t.Fatal(err)
		}
		_, err := c.Refresh(ctx, p.RefreshToken)
		wantCode(t, "refresh of a revoked session", err, 401, "SESSION_NOT_FOUND")
	})
	t.Run("missing field", func(t *testing.T) {
		_, err := c.Call(ctx, "POST", "/auth/refresh", "", map[string]string{}, nil)
		wantCode(t, "refresh without a token", err, 400, "VALIDATION_FAILED")
	})
	t.Run("no tenant", func(t *testing.T) {
		_, err := client.New(h.r0().public.URL, "").Refresh(ctx, "x")
		wantCode(t, "refresh without a tenant", err, 400, "TENANT_ID_MISSING")
	})
}

// TestRefreshReuseRevokesTheSession: presenting a rotated token revokes the session, so the
// newest token dies too, and so do its access tokens; a token two generations old is reuse.
func TestRefreshReuseRevokesTheSession(t *testing.T) {
	h := start(t, standardTenants)
	ctx := context.Background()
	c := h.client("alpha")
	uid := h.user("alpha", "user")

	t.Run("previous generation", func(t *testing.T) {
		p0 := h.login("alpha", uid, "user")
		p1, err := c.Refresh(ctx, p0.RefreshToken)
		if err != nil {
			t.Fatal(err)
		}
		_, err = c.Refresh(ctx, p0.RefreshToken)
		wantCode(t, "the rotated token", err, 401, "REFRESH_TOKEN_REUSED")
		_, err = c.Refresh(ctx, p1.RefreshToken)
		wantCode(t, "the newest token after reuse", err, 401, "SESSION_NOT_FOUND")
		_, err = c.Sessions(ctx, p1.AccessToken)
		wantCode(t, "the newest access token after reuse", err, 401, "SESSION_INVALID")
		if d := h.session("alpha", p0.SessionID); d.RevokeReason != sessions.ReasonReuse {
			t.Fatalf("revokeReason %q, want %q", d.RevokeReason, sessions.ReasonReuse)
		}
	})
	t.Run("two generations old", func(t *testing.T) {
		p0 := h.login("alpha", uid, "user")
		p1, err := c.Refresh(ctx, p0.RefreshToken)
		if err != nil {
			t.Fatal(err)
		}
		p2, err := c.Refresh(ctx, p1.RefreshToken)
		if err != nil {
			t.Fatal(err)
		}
		_, err = c.Refresh(ctx, p0.RefreshToken)
		wantCode(t, "a token two generations old", err, 401, "REFRESH_TOKEN_REUSED")
		_, err = c.Refresh(ctx, p2.RefreshToken)
		wantCode(t, "the newest token after reuse", err, 401, "SESSION_NOT_FOUND")
	})
}

// TestConcurrentRefreshHasOneWinner sends 16 refreshes of one token at once: the rotation
// is one compare-and-swap, so exactly one succeeds; the others present a token that has
// just been rotated, which is reuse, so the session ends and the winner's token dies too.
// (Run with AUTHMESH_DEVDB_FLAGS=-serialize=false to see FerretDB's non-atomic updates make
// several winners.)
func TestConcurrentRefreshHasOneWinner(t *testing.T) {
	h := start(t, standardTenants)
	ctx := context.Background()
	c := h.client("alpha")
	uid := h.user("alpha", "user")
	for round := range 3 {
		p := h.login("alpha", uid, "user")
		const n = 16
		var (
			wg      sync.WaitGroup
			mu      sync.Mutex
			winners []*client.TokenPair
			codes   = map[string]int{}
			ready   = make(chan struct{})
		)
		for range n {
			wg.Go(func() {
				<-ready
				pair, err := c.Refresh(ctx, p.RefreshToken)
				mu.Lock()
				defer mu.Unlock()
				if err == nil {
					winners = append(winners, pair)
					codes["TOKENS_REFRESHED"]++
					return
				}
				codes[client.ErrorCode(err)]++
			})
		}
		close(ready)
		wg.Wait()
		// Every loser presented a token rotated a moment before: the first to be looked at is
		// reuse and revokes the session; those looked at after that find it revoked.
		if len(winners) != 1 || codes["REFRESH_TOKEN_REUSED"] < 1 || codes["REFRESH_TOKEN_REUSED"]+codes["SESSION_NOT_FOUND"] != n-1 {
			t.Fatalf("round %d: outcomes %v, want exactly one TOKENS_REFRESHED, the rest REFRESH_TOKEN_REUSED (at least one) or SESSION_NOT_FOUND", round, codes)
		}
		t.Logf("round %d: %v", round, codes)
		_, err := c.Refresh(ctx, winners[0].RefreshToken)
		wantCode(t, "the winner's token", err, 401, "SESSION_NOT_FOUND")
		if d := h.session("alpha", p.SessionID); d.Generation != 1 || d.RevokedAt == nil || d.RevokeReason != sessions.ReasonReuse {
			t.Fatalf("round %d: generation %d revoked %v, want 1 and revoked", round, d.Generation, d.RevokedAt)
		}
	}
}

// TestRefreshReuseGrace: with refreshReuseGrace > 0 the immediate predecessor presented within
// the grace after its rotation is rotated again; anything older, or later, is reuse.
func TestRefreshReuseGrace(t *testing.T) {
	h := start(t, standardTenants)
	ctx := context.Background()
	uid := h.user("grace", "user")
	c := h.client("grace")
	rotated := func(t *testing.T) (p0 sessions.TokenPair, p1 *client.TokenPair) {
		t.Helper()
		p0 = h.login("grace", uid, "user")
		p1, err := c.Refresh(ctx, p0.RefreshToken)
		if err != nil {
			t.Fatal(err)
		}
		return p0, p1
	}

	t.Run("predecessor within the grace", func(t *testing.T) {
		p0, p1 := rotated(t)
		h.clock.Step(10 * time.Second) // the grace is inclusive
		p2, err := c.Refresh(ctx, p0.RefreshToken)
		if err != nil {
			t.Fatalf("retry of the predecessor: %v, want a new pair", err)
		}
		if !strings.HasPrefix(p2.RefreshToken, p0.SessionID+".2.") {
			t.Fatalf("retry answered %s, want generation 2", p2.RefreshToken)
		}
		// The lost answer's token is now the predecessor: still within the grace of the
		// rotation that replaced it.
		p3, err := c.Refresh(ctx, p1.RefreshToken)
		if err != nil {
			t.Fatalf("the lost answer's token right after: %v", err)
		}
		if _, err := c.Refresh(ctx, p3.RefreshToken); err != nil {
			t.Fatalf("the newest token: %v", err)
		}
	})
	t.Run("predecessor after the grace", func(t *testing.T) {
		p0, p1 := rotated(t)
		h.clock.Step(10*time.Second + time.Millisecond)
		_, err := c.Refresh(ctx, p0.RefreshToken)
		wantCode(t, "the predecessor after the grace", err, 401, "REFRESH_TOKEN_REUSED")
		_, err = c.Refresh(ctx, p1.RefreshToken)
		wantCode(t, "the newest token after reuse", err, 401, "SESSION_NOT_FOUND")
	})
	t.Run("two generations old within the grace", func(t *testing.T) {
		p0, p1 := rotated(t)
		if _, err := c.Refresh(ctx, p1.RefreshToken); err != nil {
			t.Fatal(err)
		}
		_, err := c.Refresh(ctx, p0.RefreshToken)
		wantCode(t, "a token two generations old", err, 401, "REFRESH_TOKEN_REUSED")
	})
	t.Run("second retry of the same token", func(t *testing.T) {
		p0, _ := rotated(t)
		if _, err := c.Refresh(ctx, p0.RefreshToken); err != nil {
			t.Fatal(err)
		}
		_, err := c.Refresh(ctx, p0.RefreshToken)
		wantCode(t, "a second retry", err, 401, "REFRESH_TOKEN_REUSED")
	})
	t.Run("forged predecessor", func(t *testing.T) {
		p0, p1 := rotated(t)
		_, err := c.Refresh(ctx, replaceSecret(p0.RefreshToken, strings.Repeat("B", 64)))
		wantCode(t, "a forged predecessor", err, 401, "INVALID_REFRESH_HASH")
		if _, err := c.Refresh(ctx, p1.RefreshToken); err != nil {
			t.Fatalf("the session must survive a forgery: %v", err)
		}
	})
	t.Run("no grace", func(t *testing.T) {
		ca := h.client("alpha")
		ua := h.user("alpha", "user")
		p0 := h.login("alpha", ua, "user")
		if _, err := ca.Refresh(ctx, p0.RefreshToken); err != nil {
			t.Fatal(err)
		}
		_, err := ca.Refresh(ctx, p0.RefreshToken)
		wantCode(t, "the predecessor at once without a grace", err, 401, "REFRESH_TOKEN_REUSED")
	})
}

// TestRefreshReadsTheUser: the access token of a refresh carries the user's current role; a
// disabled or deleted user's refresh fails and ends the session.
func TestRefreshReadsTheUser(t *testing.T) {
	h := start(t, standardTenants)
	ctx := context.Background()
	c := h.client("alpha")
	users := h.db("alpha").Collection(tenantdb.Users)
	uid := h.user("alpha", "user")
	p := h.login("alpha", uid, "user")
	if _, err := users.UpdateByID(ctx, uid, bson.D{{Key: "$set", Value: bson.D{{Key: "role", Value: "manager"}}}}); err != nil {
		t.Fatal(err)
	}
	p1, err := c.Refresh(ctx, p.RefreshToken)
	if err != nil {
		t.Fatal(err)
	}
	if role := roleOf(t, p1.AccessToken); role != "manager" {
		t.Fatalf("role after the change = %q, want manager", role)
	}

	if _, err := users.UpdateByID(ctx, uid, bson.D{{Key: "$set", Value: bson.D{{Key: "disabled", Value: true}}}}); err != nil {
		t.Fatal(err)
	}
	_, err = c.Refresh(ctx, p1.RefreshToken)
	wantCode(t, "refresh of a disabled user", err, 401, "SESSION_NOT_FOUND")
	if d := h.session("alpha", p.SessionID); d.RevokeReason != sessions.ReasonUserDisabled {
		t.Fatalf("revokeReason %q, want %q", d.RevokeReason, sessions.ReasonUserDisabled)
	}

	gone := h.user("alpha", "user")
	pg := h.login("alpha", gone, "user")
	if _, err := users.DeleteOne(ctx, bson.D{{Key: "_id", Value: gone}}); err != nil {
		t.Fatal(err)
	}
	_, err = c.Refresh(ctx, pg.RefreshToken)
	wantCode(t, "refresh of a deleted user", err, 401, "SESSION_NOT_FOUND")
}

func roleOf(t *testing.T, token string) string {
	t.Helper()
	var claims struct {
		jwt.RegisteredClaims
		Role string `json:"role"`
	}
	if _, _, err := jwt.NewParser().ParseUnverified(token, &claims); err != nil {
		t.Fatal(err)
	}
	return claims.Role
}

// TestIsolation: nobody sees or revokes another user's or another tenant's sessions; another
// user's session id answers exactly like an unknown one.
func TestIsolation(t *testing.T) {
	h := start(t, standardTenants)
	ctx := context.Background()
	alpha, beta := h.client("alpha"), h.client("beta")
	alice, bob := h.user("alpha", "user"), h.user("alpha", "user")
	carol := h.user("beta", "user")
	pa := h.login("alpha", alice, "user")
	pb := h.login("alpha", bob, "user")
	pc := h.login("beta", carol, "user")

	list, err := alpha.Sessions(ctx, pb.AccessToken)
	if err != nil || len(list) != 1 || list[0].SessionID != pb.SessionID {
		t.Fatalf("bob sees %+v (%v), want only his own session", list, err)
	}
	// Bob tries alice's session and an unknown one: the same answer, but for the id.
	errOther := wantCode(t, "another user's session", alpha.LogoutSession(ctx, pb.AccessToken, pa.SessionID), 404, "SESSION_NOT_FOUND")
	unknown := newSID()
	errUnknown := wantCode(t, "an unknown session", alpha.LogoutSession(ctx, pb.AccessToken, unknown), 404, "SESSION_NOT_FOUND")
	if errOther.Message != errUnknown.Message ||
		strings.ReplaceAll(string(errOther.Details), pa.SessionID, unknown) != string(errUnknown.Details) {
		t.Fatalf("another user's session answers %+v, an unknown one %+v: want the same", errOther, errUnknown)
	}
	// Bob's logout-all leaves alice alone.
	if n, err := alpha.LogoutAll(ctx, pb.AccessToken); err != nil || n != 1 {
		t.Fatalf("bob's logout/all revoked %d (%v), want 1", n, err)
	}
	if list, err := alpha.Sessions(ctx, pa.AccessToken); err != nil || len(list) != 1 {
		t.Fatalf("alice after bob's logout/all: %+v %v", list, err)
	}

	// Across tenants: a token of alpha is no token of beta, and beta's users cannot reach
	// alpha's sessions by id or refresh token.
	_, err = beta.Sessions(ctx, pa.AccessToken)
	wantCode(t, "alpha's token at beta", err, 401, "UNAUTHORIZED")
	err = beta.LogoutSession(ctx, pc.AccessToken, pa.SessionID)
	wantCode(t, "beta user revoking alpha's session", err, 404, "SESSION_NOT_FOUND")
	_, err = beta.Refresh(ctx, pa.RefreshToken)
	wantCode(t, "alpha's refresh token at beta", err, 401, "INVALID_REFRESH_TOKEN")
	if _, err := alpha.Refresh(ctx, pa.RefreshToken); err != nil {
		t.Fatalf("alice's session must be untouched: %v", err)
	}
}

// TestBearerRoutesRefuse checks the bearer middleware's answers.
func TestBearerRoutesRefuse(t *testing.T) {
	h := start(t, standardTenants)
	ctx := context.Background()
	c := h.client("alpha")
	uid := h.user("alpha", "user")
	p := h.login("alpha", uid, "user")
	_, err := c.Sessions(ctx, "")
	wantCode(t, "no token", err, 401, "UNAUTHORIZED")
	_, err = c.Sessions(ctx, p.AccessToken+"x")
	wantCode(t, "a bad signature", err, 401, "UNAUTHORIZED")
	h.clock.Step(16 * time.Minute)
	_, err = c.Sessions(ctx, p.AccessToken)
	wantCode(t, "an expired token", err, 401, "UNAUTHORIZED")

	req, _ := http.NewRequest("GET", h.r0().public.URL+"/auth/sessions", nil)
	req.Header.Set("x-tenant-id", "alpha")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if got := resp.Header.Get("WWW-Authenticate"); !strings.HasPrefix(got, "Bearer ") {
		t.Fatalf("WWW-Authenticate = %q, want an RFC 6750 challenge", got)
	}
}

// TestExpiry: idle and absolute expiry, with the injected clock.
func TestExpiry(t *testing.T) {
	h := start(t, standardTenants)
	ctx := context.Background()
	c := h.client("idle") // accessTokenTTL 15m, idleTimeout 10m, refreshTokenTTL 1h
	uid := h.user("idle", "user")

	t.Run("idle", func(t *testing.T) {
		p := h.login("idle", uid, "user")
		other := h.login("idle", uid, "user")
		h.clock.Step(9 * time.Minute)
		p1, err := c.Refresh(ctx, p.RefreshToken) // use moves the idle expiry on
		if err != nil {
			t.Fatal(err)
		}
		// The access token ends with the session's idle expiry (10m), not its TTL (15m).
		if p.ExpiresIn != 600 || p1.ExpiresIn != 600 {
			t.Errorf("expiresIn %d at login and %d after a refresh; want 600: the idle timeout caps the 15m TTL", p.ExpiresIn, p1.ExpiresIn)
		}
		h.clock.Step(9 * time.Minute)
		if _, err := c.Sessions(ctx, p1.AccessToken); err != nil {
			t.Fatalf("18 minutes in, used 9 minutes ago: %v", err)
		}
		// other was never used: idle for 18 minutes.
		h.clock.Step(2 * time.Minute)
		list, err := c.Sessions(ctx, p1.AccessToken)
		if err == nil {
			t.Fatalf("20 minutes in, 11 idle: the session still answers %+v", list)
		}
		wantCode(t, "an idle session's access token (expired with it)", err, 401, "UNAUTHORIZED")
		_, err = c.Refresh(ctx, p1.RefreshToken)
		wantCode(t, "an idle session's refresh", err, 401, "SESSION_NOT_FOUND")
		_, err = c.Refresh(ctx, other.RefreshToken)
		wantCode(t, "a session never used", err, 401, "SESSION_NOT_FOUND")
	})
	t.Run("absolute", func(t *testing.T) {
		p := h.login("idle", uid, "user")
		rt := p.RefreshToken
		var next *client.TokenPair
		for range 6 { // 54 minutes of use, never idle
			h.clock.Step(9 * time.Minute)
			var err error
			if next, err = c.Refresh(ctx, rt); err != nil {
				t.Fatal(err)
			}
			rt = next.RefreshToken
		}
		// Six minutes of the session are left: the last access token gets no more.
		if next.ExpiresIn != 360 {
			t.Errorf("expiresIn %d six minutes before the session's absolute end; want 360", next.ExpiresIn)
		}
		h.clock.Step(6*time.Minute + time.Second) // an hour and a second after login
		_, err := c.Refresh(ctx, rt)
		wantCode(t, "refresh after the absolute expiry", err, 401, "SESSION_NOT_FOUND")
		n, err := h.r0().svc.List(ctx, h.tenant(h.r0(), "idle"), uid)
		if err != nil || len(n) != 0 {
			t.Fatalf("list after every session expired: %+v %v, want none", n, err)
		}
	})
	t.Run("last second", func(t *testing.T) {
		// Log in at half past a second, so the session ends at half past too.
		h.clock.SetTime(h.clock.Now().Truncate(time.Second).Add(1500 * time.Millisecond))
		p := h.login("idle", uid, "user")
		rt := p.RefreshToken
		for range 6 {
			h.clock.Step(9 * time.Minute)
			next, err := c.Refresh(ctx, rt)
			if err != nil {
				t.Fatal(err)
			}
			rt = next.RefreshToken
		}
		// 0.2 s before the session's end, in the same second: no token can be issued.
		h.clock.Step(6*time.Minute - 200*time.Millisecond)
		_, err := c.Refresh(ctx, rt)
		wantCode(t, "refresh in the session's last second", err, 401, "SESSION_NOT_FOUND")
	})
}

// TestRevokeAllOfUserKeepsOne: the call password change makes keeps the caller's session.
func TestRevokeAllOfUserKeepsOne(t *testing.T) {
	h := start(t, standardTenants)
	ctx := context.Background()
	uid := h.user("alpha", "user")
	keep := h.login("alpha", uid, "user")
	drop := h.login("alpha", uid, "user")
	n, err := h.r0().svc.RevokeAllOfUser(ctx, h.tenant(h.r0(), "alpha"), uid, sessions.ReasonPasswordChange, keep.SessionID)
	if err != nil || n != 1 {
		t.Fatalf("RevokeAllOfUser = %d, %v; want 1", n, err)
	}
	c := h.client("alpha")
	if _, err := c.Sessions(ctx, keep.AccessToken); err != nil {
		t.Fatalf("the kept session: %v", err)
	}
	_, err = c.Sessions(ctx, drop.AccessToken)
	wantCode(t, "the other session", err, 401, "SESSION_INVALID")
	if d := h.session("alpha", drop.SessionID); d.RevokeReason != sessions.ReasonPasswordChange {
		t.Fatalf("revokeReason %q", d.RevokeReason)
	}
}

// TestRefreshRateLimits: a session rotates at most its limit's worth per period; forged
// tokens naming it use none of that; another session has its own bucket; the per-IP limit
// bounds everything from one address. Refusals are 429 RATE_LIMITED with Retry-After.
func TestRefreshRateLimits(t *testing.T) {
	h := startTuned(t, standardTenants, func(o *sessions.Options) {
		o.RefreshSessionLimit = ratelimit.Limit{Events: 2, Per: time.Minute, Burst: 2}
		o.RefreshIPLimit = ratelimit.Limit{Events: 8, Per: time.Minute, Burst: 8}
	})
	ctx := context.Background()
	c := h.client("alpha")
	uid := h.user("alpha", "user")
	p, q := h.login("alpha", uid, "user"), h.login("alpha", uid, "user")

	for range 3 { // IP: 3
		_, err := c.Refresh(ctx, replaceSecret(p.RefreshToken, strings.Repeat("A", 64)))
		wantCode(t, "a forged token naming the session", err, 401, "INVALID_REFRESH_HASH")
	}
	rt := p.RefreshToken
	for i := range 2 { // IP: 5; session p: 2
		next, err := c.Refresh(ctx, rt)
		if err != nil {
			t.Fatalf("rotation %d within the session's limit, after forged attempts: %v", i+1, err)
		}
		rt = next.RefreshToken
	}
	_, err := c.Refresh(ctx, rt) // IP: 6
	if e := wantCode(t, "a third rotation within the minute", err, 429, "RATE_LIMITED"); e != nil && e.RetryAfter != 30*time.Second {
		t.Errorf("Retry-After %s, want 30s (2 a minute)", e.RetryAfter)
	}
	if _, err := c.Refresh(ctx, q.RefreshToken); err != nil { // IP: 7
		t.Fatalf("another session was limited by the first one's bucket: %v", err)
	}
	h.clock.Step(30 * time.Second) // session p: one rotation back; IP: 4 back (11 allowed so far 7)
	if _, err := c.Refresh(ctx, rt); err != nil {
		t.Fatalf("the refused token after its session's refill: %v", err)
	}
	for range 4 { // IP: 12, the bucket's 8 plus 4 refilled, all used
		_, _ = c.Refresh(ctx, replaceSecret(q.RefreshToken, strings.Repeat("B", 64)))
	}
	_, err = c.Refresh(ctx, q.RefreshToken)
	wantCode(t, "a refresh beyond the per-IP limit", err, 429, "RATE_LIMITED")
}
