package sidecar

import (
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/authmesh/authmesh/guard"
)

// metrics are the sidecar's Prometheus series (all named authmesh_sidecar_*):
//
//	authmesh_sidecar_decisions_total{reason}        every request's decision (see guard's Reason constants)
//	authmesh_sidecar_upstream_duration_seconds      time to the app's response headers
//	authmesh_sidecar_upstream_errors_total{kind}    unavailable or timeout
//	authmesh_sidecar_token_cache_hits_total         verifications answered from the cache
//	authmesh_sidecar_jwks_fetches_total             JWKS fetches across tenants
//	authmesh_sidecar_revocation_feed_age_seconds{tenant}  time since the feed last answered
//	authmesh_sidecar_policy_valid                   1 when the annotations in force parsed
//	authmesh_sidecar_policy_reload_errors_total     live updates refused for a bad policy
type metrics struct {
	decisions      map[string]prometheus.Counter // pre-resolved per reason: no label lookup per request
	decisionsVec   *prometheus.CounterVec
	upstream       prometheus.Histogram
	upstreamErrors *prometheus.CounterVec
	policyValid    prometheus.Gauge
	policyErrors   prometheus.Counter
}

var allReasons = []string{
	guard.ReasonInvalidPath, guard.ReasonPublic, guard.ReasonAllowed, guard.ReasonNoToken,
	guard.ReasonInvalidToken, guard.ReasonUnknownKey, guard.ReasonWrongTenant,
	guard.ReasonKeysUnavailable, guard.ReasonSessionRevoked, guard.ReasonMissingRole,
	guard.ReasonInsufficientRole, guard.ReasonTenantMissing,
}

func newMetrics(reg prometheus.Registerer, tenants *tenantSet) *metrics {
	m := &metrics{
		decisionsVec: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "authmesh_sidecar_decisions_total", Help: "Requests by enforcement decision.",
		}, []string{"reason"}),
		upstream: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "authmesh_sidecar_upstream_duration_seconds",
			Help:    "Time from forwarding a request to the app's response headers.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}),
		upstreamErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "authmesh_sidecar_upstream_errors_total", Help: "Requests the app did not answer, by kind.",
		}, []string{"kind"}),
		policyValid: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "authmesh_sidecar_policy_valid", Help: "1 when the latest annotations parsed; 0 while a bad update is refused.",
		}),
		policyErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "authmesh_sidecar_policy_reload_errors_total", Help: "Live policy updates refused because they did not parse.",
		}),
	}
	m.decisions = map[string]prometheus.Counter{}
	for _, r := range allReasons {
		m.decisions[r] = m.decisionsVec.WithLabelValues(r)
	}
	sum := func(f func(*tenantTrust) float64) func() float64 {
		return func() float64 {
			total := 0.0
			tenants.each(func(t *tenantTrust) { total += f(t) })
			return total
		}
	}
	reg.MustRegister(m.decisionsVec, m.upstream, m.upstreamErrors, m.policyValid, m.policyErrors,
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "authmesh_sidecar_token_cache_hits_total", Help: "Verifications answered from the verified-token cache.",
		}, sum(func(t *tenantTrust) float64 { return float64(t.verifier.CacheHits()) })),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "authmesh_sidecar_jwks_fetches_total", Help: "JWKS documents fetched, all tenants.",
		}, sum(func(t *tenantTrust) float64 { return float64(t.keys.Fetches()) })),
		&feedAgeCollector{tenants: tenants},
	)
	return m
}

func (m *metrics) decided(_ *http.Request, reason string) {
	if c, ok := m.decisions[reason]; ok {
		c.Inc()
		return
	}
	m.decisionsVec.WithLabelValues(reason).Inc()
}

// feedAgeCollector reports, per tenant, how long ago the revocation feed last answered: the
// staleness of the revocation state in force.
type feedAgeCollector struct{ tenants *tenantSet }

var feedAgeDesc = prometheus.NewDesc("authmesh_sidecar_revocation_feed_age_seconds",
	"Seconds since the revocation feed last answered, per tenant.", []string{"tenant"}, nil)

func (c *feedAgeCollector) Describe(ch chan<- *prometheus.Desc) { ch <- feedAgeDesc }

func (c *feedAgeCollector) Collect(ch chan<- prometheus.Metric) {
	now := time.Now()
	c.tenants.each(func(t *tenantTrust) {
		if t.follower == nil {
			return
		}
		last := t.follower.LastAnswer()
		if last.IsZero() {
			return
		}
		ch <- prometheus.MustNewConstMetric(feedAgeDesc, prometheus.GaugeValue, now.Sub(last).Seconds(), t.id)
	})
}
