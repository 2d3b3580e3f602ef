package httpapi

import (
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the HTTP metrics of the auth server's listeners; see the package doc.
type Metrics struct {
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
	inFlight *prometheus.GaugeVec
}

// NewMetrics creates the HTTP metrics and registers them with reg.
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	m := &Metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "authmesh_authserver_http_requests_total",
			Help: "HTTP requests answered, by listener, route pattern, method, status and envelope code.",
		}, []string{"server", "route", "method", "status", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "authmesh_authserver_http_request_duration_seconds",
			Help:    "Time from receiving a request to finishing its answer, by listener, route pattern and method.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}, []string{"server", "route", "method"}),
		inFlight: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "authmesh_authserver_http_requests_in_flight",
			Help: "Requests being served, by listener.",
		}, []string{"server"}),
	}
	for _, c := range []prometheus.Collector{m.requests, m.duration, m.inFlight} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// begin counts a request in flight and returns the function that records its end. It is safe
// on a nil *Metrics.
func (m *Metrics) begin(server string) func(route, method string, status int, code string, d time.Duration) {
	if m == nil {
		return func(string, string, int, string, time.Duration) {}
	}
	g := m.inFlight.WithLabelValues(server)
	g.Inc()
	return func(route, method string, status int, code string, d time.Duration) {
		g.Dec()
		m.requests.WithLabelValues(server, route, method, strconv.Itoa(status), code).Inc()
		m.duration.WithLabelValues(server, route, method).Observe(d.Seconds())
	}
}

// metricMethod bounds the method label to the standard methods.
func metricMethod(m string) string {
	switch m {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch,
		http.MethodDelete, http.MethodOptions, http.MethodConnect, http.MethodTrace:
		return m
	}
	return "OTHER"
}
