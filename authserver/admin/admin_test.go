package admin_test

import (
	"context"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/authmesh/authmesh/authserver/admin"
	"github.com/authmesh/authmesh/authserver/audit"
	"github.com/authmesh/authmesh/client"
	"github.com/authmesh/authmesh/internal/testenv/authstack"
)

// adminRoutes are the admin API's routes against a target user and session.
func adminRoutes(userID, sessionID string) []struct{ method, path, body string } {
	return []struct{ method, path, body string }{
		{"GET", "/auth/admin/users", ""},
		{"GET", "/auth/admin/users?query=a&page=1&pageSize=5", ""},
		{"GET", "/auth/admin/users/" + userID, ""},
		{"PATCH", "/auth/admin/users/" + userID, `{"disabled":true,"role":"admin","revokeSessions":true}`},
		{"DELETE", "/auth/admin/users/" + userID + "/sessions/" + sessionID, ""},
		{"GET", "/auth/admin/audit", ""},
		{"GET", "/auth/admin/audit?limit=5", ""},
	}
}

// TestNonAdminsAreRefusedEveryAdminRoute: no token, a bad token, and the tokens of users and
// managers are refused on every admin route, and nothing changes.
func TestNonAdminsAreRefusedEveryAdminRoute(t *testing.T) {
	s := start(t)
	ctx := context.Background()
	victim := join(t, s, "darmist1", "victim", "user")
	user := join(t, s, "darmist1", "plainuser", "user")
	manager := join(t, s, "darmist1", "manager1", "manager")

	callers := map[string]struct {
		token  string
		status int
		code   string
	}{
		"no token":      {"", 401, "UNAUTHORIZED"},
		"garbage token": {"not.a.jwt", 401, "UNAUTHORIZED"},
		"user":          {user.tokens.AccessToken, 403, "FORBIDDEN_ROLE"},
		"manager":       {manager.tokens.AccessToken, 403, "FORBIDDEN_ROLE"},
	}
	for name, c := range callers {
		for _, rt := range adminRoutes(victim.user.ID, victim.tokens.SessionID) {
			t.Run(name+" "+rt.method+" "+rt.path, func(t *testing.T) {
				header := map[string]string{"x-tenant-id": "darmist1"}
				if c.token != "" {
					header["Authorization"] = "Bearer " + c.token
				}
				if rt.body != "" {
					header["Content-Type"] = "application/json"
				}
				r := s.Do(rt.method, rt.path, header, rt.body)
				if r.Status != c.status || r.Code != c.code {
					t.Fatalf("got %d %s (%s), want %d %s", r.Status, r.Code, r.Message, c.status, c.code)
				}
			})
		}
	}
	if _, err := s.Client("darmist1").Sessions(ctx, victim.tokens.AccessToken); err != nil {
		t.Errorf("the victim's session after the refused calls: %v", err)
	}
	s.Login("darmist1", "victim", victim.password, victim.user.Email) // not disabled
}

// TestAdminOfOneTenantCannotTouchAnother: an admin's token is refused for another tenant, and
// the other tenant's users cannot be named from the admin's own tenant.
func TestAdminOfOneTenantCannotTouchAnother(t *testing.T) {
	s := start(t, "alpha", "beta")
	ctx := context.Background()
	adminA := join(t, s, "alpha", "admina", "admin")
	adminB := join(t, s, "beta", "adminb", "admin")
	victim := join(t, s, "beta", "victim", "user")

	for _, rt := range adminRoutes(victim.user.ID, victim.tokens.SessionID) {
		header := map[string]string{"Authorization": "Bearer " + adminA.tokens.AccessToken}
		if rt.body != "" {
			header["Content-Type"] = "application/json"
		}
		header["x-tenant-id"] = "beta"
		if r := s.Do(rt.method, rt.path, header, rt.body); r.Status != 401 || r.Code != "UNAUTHORIZED" {
			t.Errorf("alpha's admin at beta: %s %s: %d %s, want 401 UNAUTHORIZED", rt.method, rt.path, r.Status, r.Code)
		}
		if strings.HasPrefix(rt.path, "/auth/admin/users/") {
			header["x-tenant-id"] = "alpha"
			if r := s.Do(rt.method, rt.path, header, rt.body); r.Status != 404 || r.Code != admin.CodeUserNotFound {
				t.Errorf("alpha's admin naming a beta user: %s %s: %d %s, want 404 USER_NOT_FOUND", rt.method, rt.path, r.Status, r.Code)
			}
		}
	}
	alpha := s.Client("alpha")
	list, err := alpha.ListUsers(ctx, adminA.tokens.AccessToken, client.ListUsersOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if list.Total != 1 || list.Items[0].ID != adminA.user.ID {
		t.Errorf("alpha's users %+v, want only alpha's admin", list)
	}
	trail, err := alpha.Audit(ctx, adminA.tokens.AccessToken, client.AuditQuery{Limit: 500})
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range trail.Items {
		if e.SubjectID == victim.user.ID || e.ActorID == victim.user.ID || e.SubjectID == adminB.user.ID {
			t.Errorf("alpha's audit trail shows a beta event: %+v", e)
		}
	}
	beta := s.Client("beta")
	if _, err := beta.Sessions(ctx, victim.tokens.AccessToken); err != nil {
		t.Errorf("the beta user's session: %v", err)
	}
	if d, err := beta.GetUser(ctx, adminB.tokens.AccessToken, victim.user.ID); err != nil || d.User.Disabled || len(d.Sessions) != 1 {
		t.Errorf("the beta user seen by beta's admin: %+v, %v: want enabled with one session", d, err)
	}
}

// TestListAndSearchUsers: newest first, prefix search on username and email in any case,
// paging, and no secrets in the answer.
func TestListAndSearchUsers(t *testing.T) {
	s := start(t)
	ctx := context.Background()
	c := s.Client("darmist1")
	adm := join(t, s, "darmist1", "root", "admin")
	for _, name := range []string{"Alice", "alicia", "bob", "carol"} {
		s.Clock.Advance(time.Second)
		s.Signup("darmist1", name, strings.ToLower(name)+"@example.com", "password 123")
	}
	usernames := func(p *client.UserPage) []string {
		var out []string
		for _, u := range p.Items {
			out = append(out, u.Username)
		}
		return out
	}
	cases := []struct {
		name  string
		opts  client.ListUsersOptions
		want  []string
		total int64
	}{
		{"everyone, newest first", client.ListUsersOptions{}, []string{"carol", "bob", "alicia", "Alice", "root"}, 5},
		{"username prefix", client.ListUsersOptions{Query: "ali"}, []string{"alicia", "Alice"}, 2},
		{"any case", client.ListUsersOptions{Query: "ALIC"}, []string{"alicia", "Alice"}, 2},
		{"email prefix", client.ListUsersOptions{Query: "bob@ex"}, []string{"bob"}, 1},
		{"a prefix only", client.ListUsersOptions{Query: "lice"}, nil, 0},
		{"no regex injection", client.ListUsersOptions{Query: "a.*"}, nil, 0},
		{"page 1", client.ListUsersOptions{PageSize: 2}, []string{"carol", "bob"}, 5},
		{"page 2", client.ListUsersOptions{PageSize: 2, Page: 2}, []string{"alicia", "Alice"}, 5},
		{"page 3", client.ListUsersOptions{PageSize: 2, Page: 3}, []string{"root"}, 5},
		{"past the end", client.ListUsersOptions{PageSize: 2, Page: 4}, nil, 5},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p, err := c.ListUsers(ctx, adm.tokens.AccessToken, tc.opts)
			if err != nil {
				t.Fatal(err)
			}
			if got := usernames(p); !slices.Equal(got, tc.want) || p.Total != tc.total {
				t.Errorf("got %v (total %d), want %v (total %d)", got, p.Total, tc.want, tc.total)
			}
		})
	}
	for _, q := range []string{"page=0", "page=x", "pageSize=0", "pageSize=101", "query=" + strings.Repeat("a", 300), "query=%ff", "query=a%c3"} {
		r := s.Do("GET", "/auth/admin/users?"+q, map[string]string{"x-tenant-id": "darmist1", "Authorization": "Bearer " + adm.tokens.AccessToken}, "")
		if r.Status != 400 || r.Code != "VALIDATION_FAILED" {
			t.Errorf("?%.40s: %d %s, want 400 VALIDATION_FAILED", q, r.Status, r.Code)
		}
	}
	r := s.Do("GET", "/auth/admin/users", map[string]string{"x-tenant-id": "darmist1", "Authorization": "Bearer " + adm.tokens.AccessToken}, "")
	for _, secret := range []string{"argon2", "passwordHash", "failedLogins"} {
		if strings.Contains(string(r.Body), secret) {
			t.Errorf("the user list shows %s: %s", secret, r.Body)
		}
	}
}

// TestGetUserShowsSessions: a user with their live sessions; the caller's own is current.
func TestGetUserShowsSessions(t *testing.T) {
	s := start(t)
	ctx := context.Background()
	c := s.Client("darmist1")
	adm := join(t, s, "darmist1", "root", "admin")
	alice := join(t, s, "darmist1", "alice", "user")
	s.Clock.Advance(time.Second) // sessions are listed newest first
	second := alice.login(s, "darmist1")

	d, err := c.GetUser(ctx, adm.tokens.AccessToken, alice.user.ID)
	if err != nil {
		t.Fatal(err)
	}
	var sids []string
	for _, x := range d.Sessions {
		sids = append(sids, x.SessionID)
		if x.Current || x.DeviceName == "" || x.IP != "127.0.0.1" || x.UA != authstack.UserAgent {
			t.Errorf("session %+v: want not current, with device, IP and user agent", x)
		}
	}
	if d.User.Username != "alice" || d.User.Role != "user" || d.User.Disabled || d.User.Locked ||
		!slices.Equal(sids, []string{second.SessionID, alice.tokens.SessionID}) {
		t.Errorf("user %+v sessions %v, want alice with her two sessions, newest first", d.User, sids)
	}
	own, err := c.GetUser(ctx, adm.tokens.AccessToken, adm.user.ID)
	if err != nil || len(own.Sessions) != 1 || !own.Sessions[0].Current {
		t.Errorf("the admin's own sessions %+v (%v): want one, current", own, err)
	}
	_, err = c.GetUser(ctx, adm.tokens.AccessToken, "no-such-user")
	wantCode(t, "an unknown user", err, 404, admin.CodeUserNotFound)
}

// TestDisablingAUserEndsItsSessionsEverywhere: a disabled user's tokens die at the auth server
// at once and at a revocation feed follower within a second; they cannot log in or refresh
// until enabled again.
func TestDisablingAUserEndsItsSessionsEverywhere(t *testing.T) {
	s := start(t)
	ctx := context.Background()
	c := s.Client("darmist1")
	adm := join(t, s, "darmist1", "root", "admin")
	alice := join(t, s, "darmist1", "alice", "user")
	second := alice.login(s, "darmist1")
	f := s.Follow("darmist1")

	res, err := c.UpdateUser(ctx, adm.tokens.AccessToken, alice.user.ID, client.UserUpdate{Disabled: ptr(true)})
	answered := time.Now()
	if err != nil {
		t.Fatal(err)
	}
	_, atServer := c.Sessions(ctx, alice.tokens.AccessToken)
	for !f.Revoked(alice.tokens.SessionID) || !f.Revoked(second.SessionID) {
		if time.Since(answered) > time.Second {
			t.Fatalf("the follower did not learn of the disabled user's sessions within 1s of the answer")
		}
		time.Sleep(time.Millisecond)
	}
	t.Logf("disable answered -> follower knows both sessions: %s", time.Since(answered))
	wantCode(t, "the disabled user's access token at the auth server", atServer, 401, "SESSION_INVALID")
	if !res.User.Disabled || res.RevokedCount != 2 {
		t.Errorf("USER_UPDATED %+v, want disabled with 2 sessions revoked", res)
	}
	_, err = c.Login(ctx, "alice", alice.password)
	wantCode(t, "login of a disabled user", err, 403, "ACCOUNT_DISABLED")
	_, err = c.Refresh(ctx, second.RefreshToken)
	wantCode(t, "refresh of a disabled user", err, 401, "SESSION_NOT_FOUND")
	if d, err := c.GetUser(ctx, adm.tokens.AccessToken, alice.user.ID); err != nil || !d.User.Disabled || len(d.Sessions) != 0 {
		t.Errorf("the disabled user: %+v, %v", d, err)
	}

	res, err = c.UpdateUser(ctx, adm.tokens.AccessToken, alice.user.ID, client.UserUpdate{Disabled: ptr(false)})
	if err != nil || res.User.Disabled || res.RevokedCount != 0 {
		t.Fatalf("enabling: %+v, %v", res, err)
	}
	alice.login(s, "darmist1")

	trail, err := c.Audit(ctx, adm.tokens.AccessToken, client.AuditQuery{UserID: alice.user.ID, Limit: 500})
	if err != nil {
		t.Fatal(err)
	}
	var disabled, enabled bool
	for _, e := range trail.Items {
		switch e.Type {
		case audit.TypeUserDisabled:
			disabled = e.ActorID == adm.user.ID && e.SubjectID == alice.user.ID && e.Details["revokedCount"] == "2"
		case audit.TypeUserEnabled:
			enabled = e.ActorID == adm.user.ID && e.SubjectID == alice.user.ID
		}
	}
	if !disabled || !enabled {
		t.Errorf("audit of alice %+v: want user.disabled (2 sessions) and user.enabled by the admin", trail.Items)
	}
}

// TestRoleChange: a new role reaches tokens at the next refresh, or at once with
// revokeSessions; roles must be the tenant's.
func TestRoleChange(t *testing.T) {
	s := start(t)
	ctx := context.Background()
	c := s.Client("darmist1")
	adm := join(t, s, "darmist1", "root", "admin")
	alice := join(t, s, "darmist1", "alice", "user")

	res, err := c.UpdateUser(ctx, adm.tokens.AccessToken, alice.user.ID, client.UserUpdate{Role: ptr("manager")})
	if err != nil || res.User.Role != "manager" || res.RevokedCount != 0 {
		t.Fatalf("role to manager: %+v, %v", res, err)
	}
	if _, err := c.Sessions(ctx, alice.tokens.AccessToken); err != nil {
		t.Errorf("alice's session after a role change without revokeSessions: %v", err)
	}
	pair, err := c.Refresh(ctx, alice.tokens.RefreshToken)
	if err != nil {
		t.Fatal(err)
	}
	if role := roleOf(t, pair.AccessToken); role != "manager" {
		t.Errorf("role after the refresh = %q, want manager", role)
	}

	res, err = c.UpdateUser(ctx, adm.tokens.AccessToken, alice.user.ID, client.UserUpdate{Role: ptr("admin"), RevokeSessions: true})
	if err != nil || res.User.Role != "admin" || res.RevokedCount != 1 {
		t.Fatalf("role to admin with revokeSessions: %+v, %v", res, err)
	}
	_, err = c.Sessions(ctx, pair.AccessToken)
	wantCode(t, "alice's token after revokeSessions", err, 401, "SESSION_INVALID")
	fresh := alice.login(s, "darmist1")
	if role := roleOf(t, fresh.AccessToken); role != "admin" {
		t.Errorf("role at the next login = %q, want admin", role)
	}
	if _, err := c.ListUsers(ctx, fresh.AccessToken, client.ListUsersOptions{}); err != nil {
		t.Errorf("the new admin on the admin API: %v", err)
	}

	refusals := map[string]client.UserUpdate{
		"a role the tenant does not have": {Role: ptr("superuser")},
		"nothing to change":               {},
	}
	for name, u := range refusals {
		_, err := c.UpdateUser(ctx, adm.tokens.AccessToken, alice.user.ID, u)
		wantCode(t, name, err, 400, "VALIDATION_FAILED")
	}
	_, err = c.UpdateUser(ctx, adm.tokens.AccessToken, "no-such-user", client.UserUpdate{Role: ptr("user")})
	wantCode(t, "an unknown user", err, 404, admin.CodeUserNotFound)

	trail, err := c.Audit(ctx, adm.tokens.AccessToken, client.AuditQuery{Type: audit.TypeRoleChanged})
	if err != nil {
		t.Fatal(err)
	}
	var changes []string
	for _, e := range trail.Items {
		changes = append(changes, e.Details["from"]+">"+e.Details["to"])
	}
	if !slices.Equal(changes, []string{"user>manager", "manager>admin"}) {
		t.Errorf("role changes in the audit trail %v, want user>manager, manager>admin", changes)
	}
}

// TestAdminCannotLockThemselfOut: an admin cannot disable or demote themself; another admin
// can, and the demoted admin's token loses its power at once.
func TestAdminCannotLockThemselfOut(t *testing.T) {
	s := start(t)
	ctx := context.Background()
	c := s.Client("darmist1")
	root := join(t, s, "darmist1", "root", "admin")
	other := join(t, s, "darmist1", "other", "admin")

	for name, u := range map[string]client.UserUpdate{
		"disable":           {Disabled: ptr(true)},
		"demote":            {Role: ptr("user")},
		"demote and revoke": {Role: ptr("manager"), RevokeSessions: true},
	} {
		_, err := c.UpdateUser(ctx, root.tokens.AccessToken, root.user.ID, u)
		wantCode(t, name+" themself", err, 403, admin.CodeAdminSelfLockout)
	}
	if res, err := c.UpdateUser(ctx, root.tokens.AccessToken, root.user.ID, client.UserUpdate{Role: ptr("admin")}); err != nil || res.User.Role != "admin" {
		t.Errorf("keeping their own admin role: %+v, %v", res, err)
	}

	if _, err := c.UpdateUser(ctx, other.tokens.AccessToken, root.user.ID, client.UserUpdate{Role: ptr("user")}); err != nil {
		t.Fatalf("another admin demoting root: %v", err)
	}
	if role := roleOf(t, root.tokens.AccessToken); role != "admin" {
		t.Fatalf("root's token says %q", role)
	}
	_, err := c.ListUsers(ctx, root.tokens.AccessToken, client.ListUsersOptions{})
	wantCode(t, "the demoted admin's token, which still says admin", err, 403, "FORBIDDEN_ROLE")
}

// TestAdminRevokesOneSession: one session of a user ends; others live; unknown sessions and
// users are told apart.
func TestAdminRevokesOneSession(t *testing.T) {
	s := start(t)
	ctx := context.Background()
	c := s.Client("darmist1")
	adm := join(t, s, "darmist1", "root", "admin")
	alice := join(t, s, "darmist1", "alice", "user")
	second := alice.login(s, "darmist1")
	bob := join(t, s, "darmist1", "bob", "user")
	f := s.Follow("darmist1")

	if err := c.RevokeUserSession(ctx, adm.tokens.AccessToken, alice.user.ID, alice.tokens.SessionID); err != nil {
		t.Fatal(err)
	}
	_, err := c.Sessions(ctx, alice.tokens.AccessToken)
	wantCode(t, "the revoked session", err, 401, "SESSION_INVALID")
	s.Eventually("the follower knows", func() bool { return f.Revoked(alice.tokens.SessionID) })
	if _, err := c.Sessions(ctx, second.AccessToken); err != nil {
		t.Errorf("alice's other session: %v", err)
	}
	cases := map[string]struct {
		user, session string
		status        int
		code          string
	}{
		"again":                    {alice.user.ID, alice.tokens.SessionID, 404, "SESSION_NOT_FOUND"},
		"another user's session":   {alice.user.ID, bob.tokens.SessionID, 404, "SESSION_NOT_FOUND"},
		"an unknown session":       {alice.user.ID, "9b2b5e56-64a8-4c39-9d5e-5f0e3c1d2a10", 404, "SESSION_NOT_FOUND"},
		"an unknown user":          {"no-such-user", bob.tokens.SessionID, 404, admin.CodeUserNotFound},
		"a session id that is odd": {alice.user.ID, "x", 404, "SESSION_NOT_FOUND"},
	}
	for name, tc := range cases {
		err := c.RevokeUserSession(ctx, adm.tokens.AccessToken, tc.user, tc.session)
		wantCode(t, name, err, tc.status, tc.code)
	}
	if _, err := c.Sessions(ctx, bob.tokens.AccessToken); err != nil {
		t.Errorf("bob's session: %v", err)
	}
}

// TestAuditRoute checks the route's own rules: bad cursors, limits and orders are refused.
func TestAuditRoute(t *testing.T) {
	s := start(t)
	adm := join(t, s, "darmist1", "root", "admin")
	header := map[string]string{"x-tenant-id": "darmist1", "Authorization": "Bearer " + adm.tokens.AccessToken}
	for _, q := range []string{"after=nope", "after=1764400000123-zz", "limit=0", "limit=501", "limit=x", "type=" + strings.Repeat("t", 65), "order=desc", "order=" + strings.Repeat("n", 500)} {
		if r := s.Do("GET", "/auth/admin/audit?"+q, header, ""); r.Status != http.StatusBadRequest || r.Code != "VALIDATION_FAILED" {
			t.Errorf("?%s: %d %s, want 400 VALIDATION_FAILED", q, r.Status, r.Code)
		}
	}
}

// TestRacingAdminsKeepAnAdmin: two admins demote (or disable) each other at the same moment.
// Each passes the checks made before its write, so both writes used to land and leave the
// tenant with no admin and no way back through the API. At least one must stay an admin.
func TestRacingAdminsKeepAnAdmin(t *testing.T) {
	s := start(t)
	ctx := context.Background()
	c := s.Client("darmist1")
	a := join(t, s, "darmist1", "alice", "admin")
	b := join(t, s, "darmist1", "bob", "admin")
	isAdmin := func(m member) bool {
		_, err := c.ListUsers(ctx, m.tokens.AccessToken, client.ListUsersOptions{})
		return err == nil
	}
	changes := []client.UserUpdate{{Role: ptr("user")}, {Disabled: ptr(true)}}
	refused := 0
	for round := range 16 {
		change := changes[round%2]
		errs := make(chan error, 2)
		var wg sync.WaitGroup
		wg.Go(func() { _, err := c.UpdateUser(ctx, a.tokens.AccessToken, b.user.ID, change); errs <- err })
		wg.Go(func() { _, err := c.UpdateUser(ctx, b.tokens.AccessToken, a.user.ID, change); errs <- err })
		wg.Wait()
		close(errs)
		for err := range errs {
			if client.ErrorCode(err) == admin.CodeAdminSelfLockout {
				refused++
			}
		}
		aAdmin, bAdmin := isAdmin(a), isAdmin(b)
		if !aAdmin && !bAdmin {
			t.Fatalf("round %d (%+v): neither admin is left", round, change)
		}
		// The one left restores the other (a disabled admin also logs in again).
		keeper, other := a, b
		if !aAdmin {
			keeper, other = b, a
		}
		if _, err := c.UpdateUser(ctx, keeper.tokens.AccessToken, other.user.ID, client.UserUpdate{Role: ptr("admin"), Disabled: ptr(false)}); err != nil {
			t.Fatalf("round %d: restoring the other admin: %v", round, err)
		}
		if !isAdmin(other) {
			other.tokens = other.login(s, "darmist1")
			if a.user.ID == other.user.ID {
				a = other
			} else {
				b = other
			}
		}
	}
	t.Logf("16 rounds of mutual demotion or disabling: %d changes undone as the last admin's", refused)
}
