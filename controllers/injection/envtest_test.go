package injection

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

func intOrName(name string) intstr.IntOrString { return intstr.FromString(name) }

func needAPIServer(t *testing.T) {
	t.Helper()
	if apiServer == nil {
		t.Skip("no API server (-short)")
	}
}

// TestPodsComeBackInjected creates pods through the real API server, which calls the webhook
// as config/webhook/manifests.yaml says, and reads back what was stored.
func TestPodsComeBackInjected(t *testing.T) {
	needAPIServer(t)
	tests := map[string]struct {
		pod        string
		namespace  string
		podLabel   string // "" for none
		wantInject bool
	}{
		"pod opt-in":                             {"pod-opt-in", "shop", InjectPodEnabled, true},
		"namespace opt-in":                       {"namespace-opt-in", "enabled", "", true},
		"both: injected once":                    {"both", "enabled", InjectPodEnabled, true},
		"opted out in an opted-in namespace":     {"opted-out", "enabled", InjectPodDisabled, false},
		"not opted in":                           {"not-opted-in", "shop", "", false},
		"label with another value":               {"label-yes", "shop", "yes", false},
		"the manager's namespace, even opted in": {"own-namespace", "authmesh-system", InjectPodEnabled, false},
		"kube-system, even opted in":             {"kube-system", "kube-system", InjectPodEnabled, false},
	}
	ctx := context.Background()
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			pod := testPod(tc.pod, map[string]string{AnnotationTenant: "darmist1"}, false)
			pod.Namespace = tc.namespace
			if tc.podLabel != "" {
				pod.Labels[LabelInject] = tc.podLabel
			}
			if err := apiServer.Client.Create(ctx, pod); err != nil {
				t.Fatalf("creating the pod: %v", err)
			}
			t.Cleanup(func() { _ = apiServer.Client.Delete(context.Background(), pod) })
			got := &corev1.Pod{}
			if err := apiServer.Client.Get(ctx, client.ObjectKeyFromObject(pod), got); err != nil {
				t.Fatal(err)
			}
			if !tc.wantInject {
				if len(got.Spec.InitContainers) != 0 || got.Annotations[AnnotationStatus] != "" {
					t.Errorf("pod was changed: init containers %v, annotations %v", got.Spec.InitContainers, got.Annotations)
				}
				return
			}
			checkInjected(t, got)
		})
	}
}

// checkInjected checks what the API server stored for an injected testPod.
func checkInjected(t *testing.T, got *corev1.Pod) {
	t.Helper()
	if len(got.Spec.InitContainers) != 1 {
		t.Fatalf("got %d init containers, want the sidecar alone", len(got.Spec.InitContainers))
	}
	sc := got.Spec.InitContainers[0]
	if sc.Name != SidecarName || sc.RestartPolicy == nil || *sc.RestartPolicy != corev1.ContainerRestartPolicyAlways {
		t.Errorf("init container %q with restartPolicy %v, want the native sidecar %q", sc.Name, sc.RestartPolicy, SidecarName)
	}
	wantPorts := []corev1.ContainerPort{
		{Name: "http", ContainerPort: ProxyPort, Protocol: corev1.ProtocolTCP},
		{Name: AdminPortName, ContainerPort: AdminPort, Protocol: corev1.ProtocolTCP},
	}
	if diff := cmp.Diff(wantPorts, sc.Ports); diff != "" {
		t.Errorf("sidecar ports (-want +got):\n%s", diff)
	}
	app := got.Spec.Containers[0]
	if diff := cmp.Diff([]corev1.ContainerPort{{Name: "app-http", ContainerPort: 8080, Protocol: corev1.ProtocolTCP}}, app.Ports); diff != "" {
		t.Errorf("app ports (-want +got):\n%s", diff)
	}
	if got := app.LivenessProbe.HTTPGet.Port; got != intOrName("app-http") {
		t.Errorf("app liveness probe port %v, want app-http", got.String())
	}
	if got.Annotations[AnnotationStatus] != StatusInjected || got.Labels[LabelStatus] != StatusInjected {
		t.Errorf("status annotation %q, label %q; want %q", got.Annotations[AnnotationStatus], got.Labels[LabelStatus], StatusInjected)
	}
	var volumes []string
	for _, v := range got.Spec.Volumes {
		volumes = append(volumes, v.Name)
	}
	if diff := cmp.Diff([]string{PodInfoVolume, TokenVolume}, volumes); diff != "" {
		t.Errorf("volumes (-want +got):\n%s", diff)
	}
}

// TestRejectedPodsGetTheDocumentedMessages: pods that opt in but cannot be protected are
// refused by the API server with the webhook's message, and an Event says why.
func TestRejectedPodsGetTheDocumentedMessages(t *testing.T) {
	needAPIServer(t)
	const prefix = `admission webhook "pod.inject.authmesh.dev" denied the request: the pod opted in to the authmesh sidecar but cannot be protected: `
	tests := map[string]struct {
		annotations map[string]string
		noPorts     bool
		wantReason  Reason
		wantMsg     string
	}{
		"unknown tenant": {
			map[string]string{AnnotationTenant: "nope"}, false, ReasonTenantNotFound,
			`the Tenant "nope" named by the annotation authmesh.dev/tenant does not exist: create it, or correct the annotation`,
		},
		"tenant not ready": {
			map[string]string{AnnotationTenant: "slow"}, false, ReasonTenantNotReady,
			"the Tenant \"slow\" is not Ready (phase Provisioning): create the pod again once `kubectl get tenant slow` shows Ready",
		},
		"no tenant": {
			nil, false, ReasonInvalidAnnotations,
			`the annotation authmesh.dev/tenant is required: set it to the id of the Tenant whose tokens the app accepts, or to "*" to take the tenant from each request's x-tenant-id header`,
		},
		"no usable port": {
			map[string]string{AnnotationTenant: "darmist1"}, true, ReasonNoUsablePort,
			"no port to protect: declare the app's port in its container's ports (TCP), or set the annotation authmesh.dev/port",
		},
		"invalid policy": {
			map[string]string{AnnotationTenant: "*", AnnotationRoles: "/admin/**"}, false, ReasonInvalidPolicy,
			`authmesh.dev/roles: roles rule 1 ("/admin/**"): missing "=": write PATTERN=role1,role2`,
		},
	}
	ctx := context.Background()
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			podName := "rejected-" + strings.ReplaceAll(name, " ", "-")
			pod := testPod(podName, tc.annotations, true)
			if tc.noPorts {
				pod.Spec.Containers[0].Ports = nil
				pod.Spec.Containers[0].LivenessProbe = nil
			}
			err := apiServer.Client.Create(ctx, pod)
			if !apierrors.IsForbidden(err) {
				t.Fatalf("got %v, want Forbidden", err)
			}
			if diff := cmp.Diff(prefix+tc.wantMsg, apiStatusMessage(err)); diff != "" {
				t.Errorf("message (-want +got):\n%s", diff)
			}
			waitForEvent(t, "shop", podName, tc.wantReason)
		})
	}
}

// TestDryRunIsInjectedButNotCounted: a server-side dry run shows the injected pod and leaves
// the metric alone.
func TestDryRunIsInjectedButNotCounted(t *testing.T) {
	needAPIServer(t)
	before := count(t, OutcomeInjected, ReasonPodOptIn)
	pod := testPod("dry-run", map[string]string{AnnotationTenant: "darmist1"}, true)
	if err := apiServer.Client.Create(context.Background(), pod, client.DryRunAll); err != nil {
		t.Fatal(err)
	}
	checkInjected(t, pod)
	if after := count(t, OutcomeInjected, ReasonPodOptIn); after != before {
		t.Errorf("injected count went from %v to %v on a dry run", before, after)
	}
}

// count reads authmesh_controller_injections_total{outcome,reason} from the manager's registry.
func count(t *testing.T, outcome Outcome, reason Reason) float64 {
	t.Helper()
	families, err := envRegistry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() != "authmesh_controller_injections_total" {
			continue
		}
		for _, m := range f.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			if labels["outcome"] == string(outcome) && labels["reason"] == string(reason) {
				return m.GetCounter().GetValue()
			}
		}
	}
	t.Fatalf("no authmesh_controller_injections_total{outcome=%q,reason=%q}", outcome, reason)
	return 0
}

// apiStatusMessage is the message of an API error.
func apiStatusMessage(err error) string {
	if s, ok := err.(apierrors.APIStatus); ok {
		return s.Status().Message
	}
	return err.Error()
}

// waitForEvent waits for the Event the injector records (asynchronously) about a pod.
func waitForEvent(t *testing.T, namespace, podName string, reason Reason) {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for {
		var list eventsv1.EventList
		if err := apiServer.Client.List(context.Background(), &list, client.InNamespace(namespace)); err != nil {
			t.Fatal(err)
		}
		for _, e := range list.Items {
			if e.Regarding.Kind == "Pod" && e.Regarding.Name == podName && e.Reason == string(reason) && e.Type == corev1.EventTypeWarning &&
				e.ReportingController == EventSource {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no Warning Event %s about pod %s/%s after %s", reason, namespace, podName, waitTimeout)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
