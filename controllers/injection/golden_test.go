package injection

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	jsonpatch "gomodules.xyz/jsonpatch/v2"
	evanphx "gopkg.in/evanphx/json-patch.v4"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/validation"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/ from the injector's output")

// goldenCases: a pod in testdata/<name>.yaml, created in namespace through the entry trigger;
// the injector's answer is in testdata/<name>.golden.json.
var goldenCases = map[string]struct {
	namespace string
	trigger   Trigger
}{
	"plain":                  {"shop", TriggerPod},
	"unnamed-port":           {"shop", TriggerPod},
	"annotated-port":         {"shop", TriggerPod},
	"undeclared-port":        {"shop", TriggerPod},
	"several-containers":     {"shop", TriggerPod},
	"probes":                 {"shop", TriggerPod},
	"resources":              {"shop", TriggerPod},
	"namespace-opt-in":       {"shop", TriggerNamespace},
	"opted-out":              {"shop", TriggerNamespace},
	"not-opted-in":           {"shop", TriggerPod},
	"already-injected":       {"shop", TriggerPod},
	"status-without-sidecar": {"shop", TriggerPod},
	"protected-namespace":    {"kube-system", TriggerPod},
}

// golden is what a golden file holds.
type golden struct {
	Outcome  Outcome                        `json:"outcome"`
	Reason   Reason                         `json:"reason"`
	Warnings []string                       `json:"warnings,omitempty"`
	Patch    []jsonpatch.JsonPatchOperation `json:"patch"`
}

func (g golden) marshal(t *testing.T) []byte {
	t.Helper()
	if g.Patch == nil {
		g.Patch = []jsonpatch.JsonPatchOperation{}
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	if err := enc.Encode(g); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// TestGolden compares the injector's answer (outcome, reason, warnings and JSON patch) for each
// pod in testdata/ with its golden file. Run `go test ./controllers/injection -run TestGolden
// -update` to rewrite them after a deliberate change, and review the diff.
func TestGolden(t *testing.T) {
	inj := newTestInjector(t)
	for name, tc := range goldenCases {
		t.Run(name, func(t *testing.T) {
			pod := readPod(t, name+".yaml")
			r := inj.review(context.Background(), pod, tc.namespace, tc.trigger)
			if r.outcome == OutcomeRejected || r.outcome == OutcomeError {
				t.Fatalf("got %s (%s): %s; golden cases are injected or skipped", r.outcome, r.reason, r.message)
			}
			got := golden{Outcome: r.outcome, Reason: r.reason, Warnings: r.warnings, Patch: r.patch}.marshal(t)
			path := filepath.Join("testdata", name+".golden.json")
			if *update {
				if err := os.WriteFile(path, got, 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run with -update to create it)", err)
			}
			if diff := cmp.Diff(string(want), string(got)); diff != "" {
				t.Errorf("answer differs from %s (-want +got); run with -update if the change is deliberate:\n%s", path, diff)
			}
		})
	}
}

// TestGoldenPatchesMakeWorkingPods applies every golden patch to its pod, as the API server
// does, and checks what makes the injected pod work: it is recognised as injected (so a second
// call changes nothing), the sidecar is a native sidecar on the pinned ports, port names stay
// valid and unique per container, every named probe or hook port still resolves in its own
// container, and a Service targeting the app port's old name now reaches the sidecar.
func TestGoldenPatchesMakeWorkingPods(t *testing.T) {
	inj := newTestInjector(t)
	for name, tc := range goldenCases {
		t.Run(name, func(t *testing.T) {
			pod := readPod(t, name+".yaml")
			r := inj.review(context.Background(), pod, tc.namespace, tc.trigger)
			if r.outcome != OutcomeInjected {
				if len(r.patch) != 0 {
					t.Fatalf("a %s pod got a patch: %v", r.outcome, r.patch)
				}
				return
			}
			injected := applyPatch(t, pod, r.patch)

			if !AlreadyInjected(injected) {
				t.Errorf("the injected pod is not recognised as injected")
			}
			if again := inj.review(context.Background(), injected, tc.namespace, tc.trigger); again.outcome != OutcomeSkipped || again.reason != ReasonAlreadyInjected {
				t.Errorf("second call: got %s (%s), want skipped (%s)", again.outcome, again.reason, ReasonAlreadyInjected)
			}
			if injected.Labels[LabelStatus] != StatusInjected {
				t.Errorf("label %s = %q, want %q", LabelStatus, injected.Labels[LabelStatus], StatusInjected)
			}
			for k, v := range pod.Annotations {
				if k != AnnotationStatus && injected.Annotations[k] != v {
					t.Errorf("annotation %s changed from %q to %q", k, v, injected.Annotations[k])
				}
			}
			if got, want := len(injected.Spec.InitContainers), len(pod.Spec.InitContainers)+1; got != want {
				t.Fatalf("got %d init containers, want %d", got, want)
			}
			sc := injected.Spec.InitContainers[len(injected.Spec.InitContainers)-1]
			if sc.Name != SidecarName || sc.RestartPolicy == nil || *sc.RestartPolicy != corev1.ContainerRestartPolicyAlways {
				t.Errorf("last init container %q (restartPolicy %v) is not the native sidecar", sc.Name, sc.RestartPolicy)
			}
			if got := []int32{sc.Ports[0].ContainerPort, sc.Ports[1].ContainerPort}; !cmp.Equal(got, []int32{ProxyPort, AdminPort}) {
				t.Errorf("sidecar ports %v, want [%d %d]", got, ProxyPort, AdminPort)
			}

			for _, c := range append(append([]corev1.Container{}, injected.Spec.InitContainers...), injected.Spec.Containers...) {
				seen := map[string]bool{}
				for _, p := range c.Ports {
					if p.Name == "" {
						continue
					}
					if msgs := validation.IsValidPortName(p.Name); len(msgs) > 0 {
						t.Errorf("container %s: port name %q: %v", c.Name, p.Name, msgs)
					}
					if seen[p.Name] {
						t.Errorf("container %s: port name %q twice", c.Name, p.Name)
					}
					seen[p.Name] = true
				}
				for _, port := range handlerPorts(c) {
					if port.Type == intstr.String && !seen[port.StrVal] {
						t.Errorf("container %s: a probe or hook names port %q, which the container does not declare", c.Name, port.StrVal)
					}
				}
			}

			// A Service with a named targetPort follows the name to the sidecar.
			for i, c := range pod.Spec.Containers {
				for j, p := range c.Ports {
					if p.Name == "" || !isTCP(p) || p.ContainerPort != upstreamPort(t, sc) {
						continue
					}
					if got := servicePort(injected, p.Name); got != ProxyPort {
						t.Errorf("a Service with targetPort %q reaches port %d, want the sidecar's %d", p.Name, got, ProxyPort)
					}
					renamed := injected.Spec.Containers[i].Ports[j]
					if renamed.ContainerPort != p.ContainerPort || renamed.Name == p.Name {
						t.Errorf("the app's port became %+v, want port %d under a new name", renamed, p.ContainerPort)
					}
				}
			}
		})
	}
}

// applyPatch applies a JSON patch to pod the way the API server does.
func applyPatch(t *testing.T, pod *corev1.Pod, ops []jsonpatch.JsonPatchOperation) *corev1.Pod {
	t.Helper()
	raw, err := json.Marshal(pod)
	if err != nil {
		t.Fatal(err)
	}
	patchJSON, err := json.Marshal(ops)
	if err != nil {
		t.Fatal(err)
	}
	p, err := evanphx.DecodePatch(patchJSON)
	if err != nil {
		t.Fatalf("decoding the patch: %v", err)
	}
	out, err := p.Apply(raw)
	if err != nil {
		t.Fatalf("applying the patch: %v", err)
	}
	injected := &corev1.Pod{}
	if err := json.Unmarshal(out, injected); err != nil {
		t.Fatal(err)
	}
	return injected
}

// handlerPorts lists the ports a container's probes and lifecycle hooks name.
func handlerPorts(c corev1.Container) []intstr.IntOrString {
	var out []intstr.IntOrString
	for _, p := range []*corev1.Probe{c.LivenessProbe, c.ReadinessProbe, c.StartupProbe} {
		if p == nil {
			continue
		}
		if p.HTTPGet != nil {
			out = append(out, p.HTTPGet.Port)
		}
		if p.TCPSocket != nil {
			out = append(out, p.TCPSocket.Port)
		}
	}
	if c.Lifecycle != nil {
		for _, h := range []*corev1.LifecycleHandler{c.Lifecycle.PostStart, c.Lifecycle.PreStop} {
			if h != nil && h.HTTPGet != nil {
				out = append(out, h.HTTPGet.Port)
			}
		}
	}
	return out
}

// servicePort resolves a Service's named targetPort in pod as the EndpointSlice controller
// does (k8s.io/kubernetes/pkg/api/v1/pod.FindPort): app containers first, then native sidecars.
func servicePort(pod *corev1.Pod, name string) int32 {
	for _, c := range pod.Spec.Containers {
		for _, p := range c.Ports {
			if p.Name == name && isTCP(p) {
				return p.ContainerPort
			}
		}
	}
	for _, c := range pod.Spec.InitContainers {
		if c.RestartPolicy == nil || *c.RestartPolicy != corev1.ContainerRestartPolicyAlways {
			continue
		}
		for _, p := range c.Ports {
			if p.Name == name && isTCP(p) {
				return p.ContainerPort
			}
		}
	}
	return 0
}

// upstreamPort reads the port of the sidecar's -upstream argument.
func upstreamPort(t *testing.T, sc corev1.Container) int32 {
	t.Helper()
	for _, a := range sc.Args {
		if rest, ok := strings.CutPrefix(a, "-upstream=http://127.0.0.1:"); ok {
			var n int32
			if err := json.Unmarshal([]byte(rest), &n); err != nil {
				t.Fatalf("upstream %q: %v", a, err)
			}
			return n
		}
	}
	t.Fatalf("the sidecar has no -upstream argument: %v", sc.Args)
	return 0
}

// TestForgedSidecarIsRefused: whoever creates a pod can write the status annotation and a
// container named authmesh-sidecar. Only the injector's own sidecar skips injection; a pod
// whose "sidecar" would not enforce the pod's policy is refused.
func TestForgedSidecarIsRefused(t *testing.T) {
	inj := newTestInjector(t)
	forgeries := map[string]func(p *corev1.Pod){
		"another image": func(p *corev1.Pod) { p.Spec.InitContainers[0].Image = "busybox:1" },
		"own command":   func(p *corev1.Pod) { p.Spec.InitContainers[0].Command = []string{"/sidecar", "-h"} },
		"no args":       func(p *corev1.Pod) { p.Spec.InitContainers[0].Args = nil },
		"a second annotations file": func(p *corev1.Pod) {
			p.Spec.InitContainers[0].Args = append(p.Spec.InitContainers[0].Args, "-annotations-file=/tmp/open")
		},
		"another auth server": func(p *corev1.Pod) { p.Spec.InitContainers[0].Args[4] = "-auth-url=http://evil.example" },
		"an extra flag": func(p *corev1.Pod) {
			p.Spec.InitContainers[0].Args = append(p.Spec.InitContainers[0].Args, "-log-level=debug")
		},
		"not a sidecar": func(p *corev1.Pod) { p.Spec.InitContainers[0].RestartPolicy = nil },
		"policy from a ConfigMap": func(p *corev1.Pod) {
			p.Spec.Volumes[0].VolumeSource = corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{LocalObjectReference: corev1.LocalObjectReference{Name: "open"}}}
		},
		"token of another audience": func(p *corev1.Pod) {
			p.Spec.Volumes[1].Projected.Sources[0].ServiceAccountToken.Audience = "other"
		},
		"annotations mounted from a sub-path": func(p *corev1.Pod) { p.Spec.InitContainers[0].VolumeMounts[0].SubPath = "x" },
	}
	intact := readPod(t, "already-injected.yaml")
	if r := inj.review(context.Background(), intact, "shop", TriggerPod); r.outcome != OutcomeSkipped || r.reason != ReasonAlreadyInjected {
		t.Fatalf("the injector's own sidecar: got %s (%s) %s; want skipped", r.outcome, r.reason, r.message)
	}
	for name, forge := range forgeries {
		t.Run(name, func(t *testing.T) {
			pod := intact.DeepCopy()
			forge(pod)
			r := inj.review(context.Background(), pod, "shop", TriggerPod)
			if r.outcome != OutcomeRejected || r.reason != ReasonForgedSidecar || !strings.Contains(r.message, "claims the authmesh sidecar") {
				t.Fatalf("got %s (%s) %q; want rejected (%s)", r.outcome, r.reason, r.message, ReasonForgedSidecar)
			}
		})
	}
}
