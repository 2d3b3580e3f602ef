package controllers

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"sigs.k8s.io/controller-runtime/pkg/client"

	authmeshv1alpha1 "github.com/authmesh/authmesh/api/v1alpha1"
)

// Metrics are the controller's own Prometheus metrics, registered beside controller-runtime's:
//
//	authmesh_controller_tenants{phase}                 gauge: Tenants by status.phase
//	authmesh_controller_key_rotations_total{reason}    counter: signing-key rotations
//
// A nil *Metrics records nothing.
type Metrics struct {
	keyRotations *prometheus.CounterVec
}

// NewMetrics registers the controller's metrics with reg (in the controller binary,
// controller-runtime's metrics.Registry). The tenants gauge is read from tenants (the
// manager's cache) at scrape time, so it never drifts from the objects it counts.
func NewMetrics(reg prometheus.Registerer, tenants client.Reader) (*Metrics, error) {
	m := &Metrics{
		keyRotations: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "authmesh_controller_key_rotations_total",
			Help: "Signing-key rotations, by reason: scheduled (keyRotationInterval), requested (the authmesh.dev/rotate-keys annotation) or algorithm (signingAlgorithm changed).",
		}, []string{"reason"}),
	}
	for _, reason := range []string{RotationScheduled, RotationRequested, RotationAlgorithmChanged} {
		m.keyRotations.WithLabelValues(reason)
	}
	for _, c := range []prometheus.Collector{m.keyRotations, &tenantCollector{reader: tenants}} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

func (m *Metrics) keyRotated(reason string) {
	if m != nil {
		m.keyRotations.WithLabelValues(reason).Inc()
	}
}

var tenantsDesc = prometheus.NewDesc("authmesh_controller_tenants",
	"Tenants by status.phase; a Tenant the controller has not yet reconciled counts as Pending.",
	[]string{"phase"}, nil)

var allPhases = []authmeshv1alpha1.TenantPhase{
	authmeshv1alpha1.TenantPhasePending,
	authmeshv1alpha1.TenantPhaseProvisioning,
	authmeshv1alpha1.TenantPhaseReady,
	authmeshv1alpha1.TenantPhaseFailed,
	authmeshv1alpha1.TenantPhaseSuspended,
}

// tenantCollector counts Tenants by phase when scraped.
type tenantCollector struct {
	reader client.Reader
}

func (c *tenantCollector) Describe(ch chan<- *prometheus.Desc) { ch <- tenantsDesc }

func (c *tenantCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var list authmeshv1alpha1.TenantList
	if err := c.reader.List(ctx, &list, client.UnsafeDisableDeepCopy); err != nil { // read only
		// The cache is not synced yet: report nothing rather than fail the whole scrape.
		return
	}
	counts := make(map[authmeshv1alpha1.TenantPhase]int, len(allPhases))
	for _, t := range list.Items {
		phase := t.Status.Phase
		if phase == "" {
			phase = authmeshv1alpha1.TenantPhasePending
		}
		counts[phase]++
	}
	for _, phase := range allPhases {
		ch <- prometheus.MustNewConstMetric(tenantsDesc, prometheus.GaugeValue, float64(counts[phase]), string(phase))
	}
}
