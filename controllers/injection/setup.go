package injection

import (
	"sigs.k8s.io/controller-runtime/pkg/manager"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"
	"sigs.k8s.io/controller-runtime/pkg/webhook"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"
)

// EventSource is the reporting controller of the injector's Events.
const EventSource = "authmesh-sidecar-injector"

// The injector reads Tenants and records Events about the owners of the pods it sees, in any
// namespace.
// +kubebuilder:rbac:groups=authmesh.dev,resources=tenants,verbs=get;list;watch
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch

// SetupWithManager validates opts, registers the injector's metrics (on opts.Registerer, else
// controller-runtime's metrics.Registry) and serves the two admission paths, PathPodOptIn and
// PathNamespaceOptIn, on mgr's webhook server. Tenants are read through mgr's cache, so the
// manager's scheme must know authmesh's types.
func SetupWithManager(mgr manager.Manager, opts Options) (*Injector, error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	reg := opts.Registerer
	if reg == nil {
		reg = ctrlmetrics.Registry
	}
	metrics, err := NewMetrics(reg)
	if err != nil {
		return nil, err
	}
	inj := &Injector{
		Options:  opts,
		Tenants:  mgr.GetClient(),
		Decoder:  admission.NewDecoder(mgr.GetScheme()),
		Recorder: mgr.GetEventRecorder(EventSource),
		Metrics:  metrics,
	}
	srv := mgr.GetWebhookServer()
	srv.Register(PathPodOptIn, &webhook.Admission{Handler: inj.Handler(TriggerPod)})
	srv.Register(PathNamespaceOptIn, &webhook.Admission{Handler: inj.Handler(TriggerNamespace)})
	return inj, nil
}
