package injection

import (
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/yaml"

	authmeshv1alpha1 "github.com/authmesh/authmesh/api/v1alpha1"
	"github.com/authmesh/authmesh/internal/testenv"
)

// testOptions are the Options every unit test uses.
func testOptions() Options {
	o := DefaultOptions()
	o.Image = "authmesh/sidecar:test"
	o.AuthURL = "http://authmesh-auth.authmesh-system.svc:3502"
	o.IssuerURL = "https://auth.example.test"
	o.FeedURL = "http://authmesh-auth.authmesh-system.svc:3503"
	o.InternalTokenExpiration = time.Hour
	return o
}

// testTenants are the Tenants of the unit tests: darmist1 and acme2 Ready (acme2 with its own
// audience), slow still provisioning, fresh never reconciled, paused suspended.
func testTenants() []client.Object {
	tenant := func(name, audience string, phase authmeshv1alpha1.TenantPhase) *authmeshv1alpha1.Tenant {
		t := &authmeshv1alpha1.Tenant{ObjectMeta: metav1.ObjectMeta{Name: name}}
		t.Spec.Tokens.Audience = audience
		t.Status.Phase = phase
		return t
	}
	return []client.Object{
		tenant("darmist1", "authmesh", authmeshv1alpha1.TenantPhaseReady),
		tenant("acme2", "acme-api", authmeshv1alpha1.TenantPhaseReady),
		tenant("slow", "authmesh", authmeshv1alpha1.TenantPhaseProvisioning),
		tenant("fresh", "authmesh", ""),
		tenant("paused", "authmesh", authmeshv1alpha1.TenantPhaseSuspended),
	}
}

// fakeTenants is a client.Reader holding testTenants.
func fakeTenants() client.Reader {
	return fake.NewClientBuilder().WithScheme(testenv.NewScheme()).WithObjects(testTenants()...).Build()
}

// newTestInjector is an Injector over fakeTenants with testOptions.
func newTestInjector(t *testing.T) *Injector {
	t.Helper()
	return &Injector{Options: testOptions(), Tenants: fakeTenants()}
}

// readPod reads a pod from a YAML file in testdata/.
func readPod(t *testing.T, name string) *corev1.Pod {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	pod := &corev1.Pod{}
	if err := yaml.UnmarshalStrict(data, pod); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return pod
}

// podFrom builds a pod for table tests: one container "app" with the given ports, labelled to
// opt in, with annotations a.
func podFrom(a map[string]string, ports ...corev1.ContainerPort) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			Name:        "p",
			Labels:      map[string]string{LabelInject: InjectPodEnabled},
			Annotations: a,
		},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "example/app:1", Ports: ports}}},
	}
}

func httpPort(n int32) corev1.ContainerPort {
	return corev1.ContainerPort{Name: "http", ContainerPort: n, Protocol: corev1.ProtocolTCP}
}

// recordedEvent is one Event given to recorder.
type recordedEvent struct {
	Regarding corev1.ObjectReference
	Type      string
	Reason    string
	Action    string
	Note      string
}

// recorder is an events.EventRecorder that keeps what it is given.
type recorder struct {
	mu     sync.Mutex
	events []recordedEvent
}

func (r *recorder) Eventf(regarding runtime.Object, _ runtime.Object, eventtype, reason, action, note string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	ref, _ := regarding.(*corev1.ObjectReference)
	if ref == nil {
		ref = &corev1.ObjectReference{Kind: fmt.Sprintf("%T", regarding)}
	}
	r.events = append(r.events, recordedEvent{Regarding: *ref, Type: eventtype, Reason: reason, Action: action, Note: fmt.Sprintf(note, args...)})
}

func (r *recorder) take() []recordedEvent {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := r.events
	r.events = nil
	return out
}
