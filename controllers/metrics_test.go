package controllers

import (
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	authmeshv1alpha1 "github.com/authmesh/authmesh/api/v1alpha1"
	"github.com/authmesh/authmesh/internal/testenv"
)

func TestMetricsExposition(t *testing.T) {
	tenant := func(name string, phase authmeshv1alpha1.TenantPhase) *authmeshv1alpha1.Tenant {
		return &authmeshv1alpha1.Tenant{ObjectMeta: metav1.ObjectMeta{Name: name}, Status: authmeshv1alpha1.TenantStatus{Phase: phase}}
	}
	reader := fake.NewClientBuilder().WithScheme(testenv.NewScheme()).WithObjects(
		tenant("a", authmeshv1alpha1.TenantPhaseReady),
		tenant("b", authmeshv1alpha1.TenantPhaseReady),
		tenant("c", authmeshv1alpha1.TenantPhaseFailed),
		tenant("d", ""), // not reconciled yet
	).Build()
	reg := prometheus.NewRegistry()
	m, err := NewMetrics(reg, reader)
	if err != nil {
		t.Fatal(err)
	}
	m.keyRotated(RotationScheduled)
	m.keyRotated(RotationScheduled)
	m.keyRotated(RotationRequested)
	var none *Metrics
	none.keyRotated(RotationScheduled) // a nil *Metrics records nothing, and does not panic

	want := `
# HELP authmesh_controller_key_rotations_total Signing-key rotations, by reason: scheduled (keyRotationInterval), requested (the authmesh.dev/rotate-keys annotation) or algorithm (signingAlgorithm changed).
# TYPE authmesh_controller_key_rotations_total counter
authmesh_controller_key_rotations_total{reason="algorithm"} 0
authmesh_controller_key_rotations_total{reason="requested"} 1
authmesh_controller_key_rotations_total{reason="scheduled"} 2
# HELP authmesh_controller_tenants Tenants by status.phase; a Tenant the controller has not yet reconciled counts as Pending.
# TYPE authmesh_controller_tenants gauge
authmesh_controller_tenants{phase="Failed"} 1
authmesh_controller_tenants{phase="Pending"} 1
authmesh_controller_tenants{phase="Provisioning"} 0
authmesh_controller_tenants{phase="Ready"} 2
authmesh_controller_tenants{phase="Suspended"} 0
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want)); err != nil {
		t.Error(err)
	}
	if _, err := NewMetrics(reg, reader); err == nil {
		t.Error("registering the metrics twice on one registry succeeded")
	}
}
