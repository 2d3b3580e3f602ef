package sessions_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/authmesh/authmesh/authserver/sessions"
	"github.com/authmesh/authmesh/internal/tenantdb"
)

// TestMetrics drives each kind of outcome once and compares the counters, then lets
// maintenance count active sessions and prune what expired.
func TestMetrics(t *testing.T) {
	h := startTuned(t, standardTenants, func(o *sessions.Options) { o.MaintenanceInterval = 50 * time.Millisecond })
	ctx := context.Background()
	c := h.client("alpha")
	uid := h.user("alpha", "user")

	p := h.login("alpha", uid, "user")
	p1, err := c.Refresh(ctx, p.RefreshToken) // refreshed
	if err != nil {
		t.Fatal(err)
	}
	_, _ = c.Refresh(ctx, "garbage")                                               // invalid_token
	_, _ = c.Refresh(ctx, replaceSecret(p1.RefreshToken, strings.Repeat("A", 64))) // invalid_hash
	_, _ = c.Refresh(ctx, p.RefreshToken)                                          // reused
	_, _ = c.Refresh(ctx, p1.RefreshToken)                                         // session_not_found
	q := h.login("alpha", uid, "user")
	h.login("alpha", uid, "user") // stays active
	if err := c.LogoutSession(ctx, q.AccessToken, q.SessionID); err != nil {
		t.Fatal(err)
	}
	want := `
# HELP authmesh_authserver_session_refreshes_total Refresh-token presentations, by outcome: refreshed, grace, invalid_token, invalid_hash, reused, session_not_found, user_disabled, error.
# TYPE authmesh_authserver_session_refreshes_total counter
authmesh_authserver_session_refreshes_total{outcome="invalid_hash"} 1
authmesh_authserver_session_refreshes_total{outcome="invalid_token"} 1
authmesh_authserver_session_refreshes_total{outcome="refreshed"} 1
authmesh_authserver_session_refreshes_total{outcome="reused"} 1
authmesh_authserver_session_refreshes_total{outcome="session_not_found"} 1
# HELP authmesh_authserver_refresh_reuse_detections_total Refresh tokens presented again after their rotation (RFC 9700 reuse detection); each revoked its session. By tenant.
# TYPE authmesh_authserver_refresh_reuse_detections_total counter
authmesh_authserver_refresh_reuse_detections_total{tenant="alpha"} 1
# HELP authmesh_authserver_session_revocations_total Sessions revoked by this replica, by reason.
# TYPE authmesh_authserver_session_revocations_total counter
authmesh_authserver_session_revocations_total{reason="logout"} 1
authmesh_authserver_session_revocations_total{reason="refresh_token_reused"} 1
`
	reg := h.r0().metrics
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want),
		"authmesh_authserver_session_refreshes_total", "authmesh_authserver_refresh_reuse_detections_total",
		"authmesh_authserver_session_revocations_total"); err != nil {
		t.Fatal(err)
	}
	eventually(t, "maintenance counts the one active session", func() bool {
		return gaugeValue(t, h.r0(), "authmesh_authserver_active_sessions") == 1
	})

	// Maintenance prunes what expired: revocations once no token of theirs is accepted, and
	// sessions past their absolute expiry.
	h.clock.Step(169 * time.Hour)
	eventually(t, "maintenance prunes", func() bool {
		nr, _ := h.db("alpha").Collection(tenantdb.Revocations).CountDocuments(ctx, bson.D{})
		ns, _ := h.db("alpha").Collection(tenantdb.Sessions).CountDocuments(ctx, bson.D{})
		return nr == 0 && ns == 0 && gaugeValue(t, h.r0(), "authmesh_authserver_active_sessions") == 0
	})
}
