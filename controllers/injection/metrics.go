package injection

import "github.com/prometheus/client_golang/prometheus"

// Metrics are the injector's Prometheus metrics:
//
//	authmesh_controller_injections_total{outcome,reason}  counter: admission decisions
//
// outcome is injected, skipped, rejected or error; reason is one of the Reason constants.
// Every known pair is exported from the start, at 0. Dry-run requests are not counted. A nil
// *Metrics records nothing.
type Metrics struct {
	injections *prometheus.CounterVec
}

// NewMetrics registers the injector's metrics with reg (in the controller binary,
// controller-runtime's metrics.Registry).
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	m := &Metrics{
		injections: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "authmesh_controller_injections_total",
			Help: "Pods seen by the sidecar injection webhook, by outcome (injected, skipped, rejected, error) and reason.",
		}, []string{"outcome", "reason"}),
	}
	for outcome, reasons := range knownOutcomes {
		for _, reason := range reasons {
			m.injections.WithLabelValues(string(outcome), string(reason))
		}
	}
	if err := reg.Register(m.injections); err != nil {
		return nil, err
	}
	return m, nil
}

func (m *Metrics) observe(outcome Outcome, reason Reason) {
	if m != nil {
		m.injections.WithLabelValues(string(outcome), string(reason)).Inc()
	}
}
