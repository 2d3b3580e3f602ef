package client_test

import (
	"context"
	"testing"
	"time"

	"github.com/authmesh/authmesh/client"
	"github.com/authmesh/authmesh/internal/testenv/authstack"
)

// TestAccountAndAdminCalls walks the account management and admin calls of the client
// against a whole auth server: the bootstrap admin sets a password, a user changes and resets
// theirs, and the admin manages the user and reads the trail.
func TestAccountAndAdminCalls(t *testing.T) {
	const adminEmail = "owner@darmist.example"
	s := authstack.Start(t, testDB, authstack.Options{Tenants: map[string]string{
		"darmist1": "  bootstrapAdmin: {email: " + adminEmail + "}\n",
	}})
	ctx := context.Background()
	c := s.Client("darmist1")
	fail := func(what string, err error) {
		t.Helper()
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}

	// The bootstrap admin sets a password with the mailed token.
	token := s.ResetToken(s.WaitMail(adminEmail, 0))
	exp, err := c.CheckResetToken(ctx, token)
	fail("CheckResetToken", err)
	if exp.Before(time.Now().Add(time.Hour)) {
		t.Errorf("the set-password token expires at %s", exp)
	}
	fail("ResetPassword (admin)", c.ResetPassword(ctx, token, "owner password 1"))
	admin := s.Login("darmist1", "owner", "owner password 1", adminEmail)

	// A user changes, forgets and resets their password.
	alice := s.Signup("darmist1", "alice", "alice@example.com", "alice password 1")
	p := s.Login("darmist1", "alice", "alice password 1", "alice@example.com")
	n, err := c.ChangePassword(ctx, p.AccessToken, "alice password 1", "alice password 2")
	fail("ChangePassword", err)
	if n != 0 {
		t.Errorf("ChangePassword revoked %d sessions, want 0", n)
	}
	_, err = c.ChangePassword(ctx, p.AccessToken, "alice password 1", "alice password 3")
	if client.ErrorCode(err) != "INVALID_CREDENTIALS" {
		t.Errorf("ChangePassword with the old password: %v", err)
	}
	mails := s.MailCount("alice@example.com")
	fail("ForgotPassword", c.ForgotPassword(ctx, "alice"))
	fail("ForgotPassword (unknown)", c.ForgotPassword(ctx, "nobody"))
	fail("ResetPassword", c.ResetPassword(ctx, s.ResetToken(s.WaitMail("alice@example.com", mails)), "alice password 4"))
	p = s.Login("darmist1", "alice", "alice password 4", "alice@example.com")

	// The admin manages alice.
	page, err := c.ListUsers(ctx, admin.AccessToken, client.ListUsersOptions{Query: "ALI", PageSize: 10})
	fail("ListUsers", err)
	if page.Total != 1 || page.Items[0].ID != alice.ID || page.Page != 1 || page.PageSize != 10 {
		t.Errorf("ListUsers %+v", page)
	}
	d, err := c.GetUser(ctx, admin.AccessToken, alice.ID)
	fail("GetUser", err)
	if d.User.Email != "alice@example.com" || len(d.Sessions) != 1 || d.Sessions[0].SessionID != p.SessionID {
		t.Errorf("GetUser %+v", d)
	}
	role := "manager"
	res, err := c.UpdateUser(ctx, admin.AccessToken, alice.ID, client.UserUpdate{Role: &role})
	fail("UpdateUser", err)
	if res.User.Role != "manager" {
		t.Errorf("UpdateUser %+v", res)
	}
	fail("RevokeUserSession", c.RevokeUserSession(ctx, admin.AccessToken, alice.ID, p.SessionID))
	if err := c.RevokeUserSession(ctx, admin.AccessToken, alice.ID, p.SessionID); client.ErrorCode(err) != "SESSION_NOT_FOUND" {
		t.Errorf("RevokeUserSession again: %v", err)
	}
	off := true
	res, err = c.UpdateUser(ctx, admin.AccessToken, alice.ID, client.UserUpdate{Disabled: &off})
	fail("UpdateUser (disable)", err)
	if !res.User.Disabled {
		t.Errorf("UpdateUser (disable) %+v", res)
	}
	if _, err := c.GetUser(ctx, p.AccessToken, alice.ID); client.ErrorCode(err) != "SESSION_INVALID" {
		t.Errorf("alice's revoked token on an admin route: %v", err)
	}

	var events []client.AuditEvent
	q := client.AuditQuery{Limit: 5}
	for {
		page, err := c.Audit(ctx, admin.AccessToken, q)
		fail("Audit", err)
		events = append(events, page.Items...)
		if page.Next == "" {
			break
		}
		q.After = page.Next
	}
	seen := map[string]bool{}
	for _, e := range events {
		seen[e.Type] = true
	}
	// Newest first, in pages of 3: the same events in the reverse order.
	var newest []client.AuditEvent
	q = client.AuditQuery{Limit: 3, Newest: true}
	for {
		page, err := c.Audit(ctx, admin.AccessToken, q)
		fail("Audit (newest first)", err)
		newest = append(newest, page.Items...)
		if page.Next == "" {
			break
		}
		q.After = page.Next
	}
	if len(newest) != len(events) {
		t.Fatalf("newest first gave %d events, oldest first %d", len(newest), len(events))
	}
	for i := range newest {
		if newest[i].ID != events[len(events)-1-i].ID {
			t.Fatalf("event %d newest first is %s, want %s (the reverse of oldest first)", i, newest[i].ID, events[len(events)-1-i].ID)
		}
	}
	for _, typ := range []string{"user.bootstrap_admin", "password.reset", "password.change", "password.reset_requested",
		"user.role_changed", "user.session_revoked", "user.disabled", "login.success"} {
		if !seen[typ] {
			t.Errorf("no %s event among %d", typ, len(events))
		}
	}
	only, err := c.Audit(ctx, admin.AccessToken, client.AuditQuery{Type: "user.disabled", UserID: alice.ID})
	fail("Audit (filtered)", err)
	if len(only.Items) != 1 || only.Items[0].Details["revokedCount"] != "0" || only.Items[0].At.IsZero() {
		t.Errorf("filtered audit %+v", only)
	}
}
