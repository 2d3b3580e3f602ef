package sessions

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Outcomes of a refresh: the label values of authmesh_authserver_session_refreshes_total.
const (
	OutcomeRefreshed       = "refreshed"         // TOKENS_REFRESHED, the current token
	OutcomeGrace           = "grace"             // TOKENS_REFRESHED, the predecessor within refreshReuseGrace
	OutcomeInvalidToken    = "invalid_token"     // INVALID_REFRESH_TOKEN
	OutcomeInvalidHash     = "invalid_hash"      // INVALID_REFRESH_HASH
	OutcomeReused          = "reused"            // REFRESH_TOKEN_REUSED (the session was revoked)
	OutcomeSessionNotFound = "session_not_found" // SESSION_NOT_FOUND: revoked or expired
	OutcomeUserDisabled    = "user_disabled"     // SESSION_NOT_FOUND: the user is gone or disabled
	OutcomeError           = "error"             // a database or signing failure
)

// Reasons a session is revoked: the label values of
// authmesh_authserver_session_revocations_total and the sessions' revokeReason.
const (
	ReasonLogout         = "logout"
	ReasonLogoutAll      = "logout_all"
	ReasonReuse          = "refresh_token_reused"
	ReasonUserDisabled   = "user_disabled"
	ReasonPasswordChange = "password_change"
	ReasonPasswordReset  = "password_reset"
	ReasonAdmin          = "admin"
)

// metrics are the package's Prometheus metrics (see the package doc). A nil *metrics records
// nothing, so a zero Service works.
type metrics struct {
	refreshes   *prometheus.CounterVec
	reuse       *prometheus.CounterVec
	revocations *prometheus.CounterVec
	active      *prometheus.GaugeVec
	subscribers *prometheus.GaugeVec
	lag         prometheus.Histogram
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		refreshes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "authmesh_authserver_session_refreshes_total",
			Help: "Refresh-token presentations, by outcome: refreshed, grace, invalid_token, invalid_hash, reused, session_not_found, user_disabled, error.",
		}, []string{"outcome"}),
		reuse: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "authmesh_authserver_refresh_reuse_detections_total",
			Help: "Refresh tokens presented again after their rotation (RFC 9700 reuse detection); each revoked its session. By tenant.",
		}, []string{"tenant"}),
		revocations: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "authmesh_authserver_session_revocations_total",
			Help: "Sessions revoked by this replica, by reason.",
		}, []string{"reason"}),
		active: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "authmesh_authserver_active_sessions",
			Help: "Active (neither revoked nor expired) sessions of a tenant, counted in the database every maintenance interval; every replica reports the same number, so aggregate with max.",
		}, []string{"tenant"}),
		subscribers: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "authmesh_authserver_revocation_feed_subscribers",
			Help: "Revocation feed long polls waiting on this replica, by tenant.",
		}, []string{"tenant"}),
		lag: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "authmesh_authserver_revocation_feed_lag_seconds",
			Help:    "Time from a revocation's publication (by any replica) until this replica's feed serves it.",
			Buckets: []float64{.001, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}),
	}
	if reg != nil {
		for _, c := range []prometheus.Collector{m.refreshes, m.reuse, m.revocations, m.active, m.subscribers, m.lag} {
			if err := reg.Register(c); err != nil {
				return nil, err
			}
		}
	}
	return m, nil
}

func (m *metrics) refreshed(outcome string) {
	if m != nil {
		m.refreshes.WithLabelValues(outcome).Inc()
	}
}

func (m *metrics) reused(tenant string) {
	if m != nil {
		m.reuse.WithLabelValues(tenant).Inc()
	}
}

func (m *metrics) revoked(reason string, n int) {
	if m != nil && n > 0 {
		m.revocations.WithLabelValues(reason).Add(float64(n))
	}
}

func (m *metrics) setActive(tenant string, n int64) {
	if m != nil {
		m.active.WithLabelValues(tenant).Set(float64(n))
	}
}

func (m *metrics) forgetTenant(tenant string) {
	if m != nil {
		m.active.DeleteLabelValues(tenant)
		m.subscribers.DeleteLabelValues(tenant)
	}
}

func (m *metrics) subscriber(tenant string, delta float64) {
	if m != nil {
		m.subscribers.WithLabelValues(tenant).Add(delta)
	}
}

func (m *metrics) published(lag time.Duration) {
	if m != nil {
		m.lag.Observe(max(lag, 0).Seconds())
	}
}
