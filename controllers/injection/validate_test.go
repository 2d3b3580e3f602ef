package injection

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// TestRejections: pods that opt in but cannot be protected are refused with every problem,
// each saying what to fix; the first problem's reason labels the metric and the Event.
func TestRejections(t *testing.T) {
	const prefix = "the pod opted in to the authmesh sidecar but cannot be protected: "
	tenant := func(id string) map[string]string { return map[string]string{AnnotationTenant: id} }
	with := func(a map[string]string, kv ...string) map[string]string {
		for i := 0; i < len(kv); i += 2 {
			a[kv[i]] = kv[i+1]
		}
		return a
	}
	tests := map[string]struct {
		pod        *corev1.Pod
		wantReason Reason
		wantMsg    string
	}{
		"no tenant annotation": {
			podFrom(nil, httpPort(8080)), ReasonInvalidAnnotations,
			`the annotation authmesh.dev/tenant is required: set it to the id of the Tenant whose tokens the app accepts, or to "*" to take the tenant from each request's x-tenant-id header`,
		},
		"tenant not an id": {
			podFrom(tenant("Darmist_1"), httpPort(8080)), ReasonInvalidAnnotations,
			`the annotation authmesh.dev/tenant="Darmist_1" is not a tenant id (a DNS-1123 label of at most 54 characters) or "*"`,
		},
		"unknown tenant": {
			podFrom(tenant("nope"), httpPort(8080)), ReasonTenantNotFound,
			`the Tenant "nope" named by the annotation authmesh.dev/tenant does not exist: create it, or correct the annotation`,
		},
		"tenant provisioning": {
			podFrom(tenant("slow"), httpPort(8080)), ReasonTenantNotReady,
			"the Tenant \"slow\" is not Ready (phase Provisioning): create the pod again once `kubectl get tenant slow` shows Ready",
		},
		"tenant never reconciled": {
			podFrom(tenant("fresh"), httpPort(8080)), ReasonTenantNotReady,
			"the Tenant \"fresh\" is not Ready (phase Pending): create the pod again once `kubectl get tenant fresh` shows Ready",
		},
		"tenant suspended": {
			podFrom(tenant("paused"), httpPort(8080)), ReasonTenantNotReady,
			"the Tenant \"paused\" is not Ready (phase Suspended): create the pod again once `kubectl get tenant paused` shows Ready",
		},
		"no port at all": {
			podFrom(tenant("darmist1")), ReasonNoUsablePort,
			"no port to protect: declare the app's port in its container's ports (TCP), or set the annotation authmesh.dev/port",
		},
		"only a UDP port": {
			podFrom(tenant("darmist1"), corev1.ContainerPort{Name: "dns", ContainerPort: 53, Protocol: corev1.ProtocolUDP}), ReasonNoUsablePort,
			"no port to protect: declare the app's port in its container's ports (TCP), or set the annotation authmesh.dev/port",
		},
		"blank port annotation and no port": {
			podFrom(with(tenant("darmist1"), AnnotationPort, "  ")), ReasonNoUsablePort,
			"no port to protect: declare the app's port in its container's ports (TCP), or set the annotation authmesh.dev/port",
		},
		"port annotation not a number": {
			podFrom(with(tenant("darmist1"), AnnotationPort, "http"), httpPort(8080)), ReasonInvalidAnnotations,
			`the annotation authmesh.dev/port="http" is not a port number (1-65535): set it to the port the app listens on`,
		},
		"port annotation is the sidecar's": {
			podFrom(with(tenant("darmist1"), AnnotationPort, "15080"), httpPort(8080)), ReasonConflict,
			`the annotation authmesh.dev/port="15080" names the sidecar's own port: set it to the port the app listens on`,
		},
		"invalid policy, every problem": {
			podFrom(with(tenant("*"), AnnotationPublic, "/ok, healthz", AnnotationRoles, "/admin/**; /reports/**=Manager"), httpPort(8080)), ReasonInvalidPolicy,
			`authmesh.dev/public: public route 2 ("healthz"): ` + policyProblem(t, "healthz", "") + "; " +
				`authmesh.dev/roles: roles rule 1 ("/admin/**"): missing "=": write PATTERN=role1,role2; ` +
				`authmesh.dev/roles: roles rule 2 ("/reports/**=Manager"): ` + policyProblem(t, "", "/reports/**=Manager"),
		},
		"resources above the maximum": {
			podFrom(with(tenant("darmist1"), AnnotationSidecarCPU, "4", AnnotationSidecarMemory, "lots"), httpPort(8080)), ReasonInvalidResources,
			`the annotation authmesh.dev/sidecar-cpu="4" is above the maximum 2 the manager allows; the annotation authmesh.dev/sidecar-memory="lots" is not a quantity (such as "128Mi")`,
		},
		"request above annotated limit": {
			podFrom(with(tenant("darmist1"), AnnotationSidecarMemory, "512Mi", AnnotationSidecarMemoryLimit, "256Mi"), httpPort(8080)), ReasonInvalidResources,
			`the annotation authmesh.dev/sidecar-memory="512Mi" is above authmesh.dev/sidecar-memory-limit="256Mi": a request cannot exceed its limit`,
		},
		"zero cpu": {
			podFrom(with(tenant("darmist1"), AnnotationSidecarCPU, "0"), httpPort(8080)), ReasonInvalidResources,
			`the annotation authmesh.dev/sidecar-cpu="0" must be more than 0`,
		},
		"app uses the proxy port": {
			podFrom(tenant("darmist1"), httpPort(15080)), ReasonConflict,
			`container "app" declares port 15080, which the sidecar listens on: move it to another port`,
		},
		"reserved names": {
			func() *corev1.Pod {
				p := podFrom(tenant("darmist1"), httpPort(8080), corev1.ContainerPort{Name: AdminPortName, ContainerPort: 9000})
				p.Spec.InitContainers = []corev1.Container{{Name: SidecarName}}
				p.Spec.Volumes = []corev1.Volume{{Name: TokenVolume}}
				return p
			}(), ReasonConflict,
			`the init container name "authmesh-sidecar" is reserved for the sidecar: rename the init container; ` +
				`container "app" names a port "authmesh-admin", a name reserved for the sidecar: rename the port; ` +
				`the volume name "authmesh-token" is reserved for the sidecar: rename the volume`,
		},
		"another container has the port's name": {
			func() *corev1.Pod {
				p := podFrom(tenant("darmist1"), httpPort(8080))
				p.Spec.Containers = append(p.Spec.Containers, corev1.Container{Name: "cache", Ports: []corev1.ContainerPort{httpPort(6380)}})
				p.Spec.InitContainers = []corev1.Container{{Name: "mesh", RestartPolicy: ptr.To(corev1.ContainerRestartPolicyAlways), Ports: []corev1.ContainerPort{httpPort(7000)}}}
				return p
			}(), ReasonConflict,
			`containers "app" and "cache" both name a port "http", so a Service targeting it would reach "cache" instead of the sidecar: give the ports distinct names; ` +
				`containers "app" and "mesh" both name a port "http", so a Service targeting it would reach "mesh" instead of the sidecar: give the ports distinct names`,
		},
		"host network": {
			func() *corev1.Pod {
				p := podFrom(tenant("darmist1"), httpPort(8080))
				p.Spec.HostNetwork = true
				return p
			}(), ReasonHostNetwork,
			"the pod uses hostNetwork, where the sidecar would listen on the node's ports 15080 and 15090: remove hostNetwork, or opt the pod out with the label authmesh.dev/inject=false",
		},
		"several problems, first reason wins": {
			podFrom(with(tenant("nope"), AnnotationRoles, "/x=Admin")), ReasonTenantNotFound,
			`the Tenant "nope" named by the annotation authmesh.dev/tenant does not exist: create it, or correct the annotation; ` +
				"no port to protect: declare the app's port in its container's ports (TCP), or set the annotation authmesh.dev/port; " +
				`authmesh.dev/roles: roles rule 1 ("/x=Admin"): ` + policyProblem(t, "", "/x=Admin"),
		},
	}
	inj := newTestInjector(t)
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			r := inj.review(context.Background(), tc.pod, "shop", TriggerPod)
			if r.outcome != OutcomeRejected || r.reason != tc.wantReason {
				t.Fatalf("got %s (%s): %s; want rejected (%s)", r.outcome, r.reason, r.message, tc.wantReason)
			}
			if diff := cmp.Diff(prefix+tc.wantMsg, r.message); diff != "" {
				t.Errorf("message (-want +got):\n%s", diff)
			}
			if r.patch != nil {
				t.Errorf("a rejected pod got a patch")
			}
		})
	}
}

// policyProblem is guard's own wording of the single problem with a public or roles item, so
// these tests do not pin guard's messages.
func policyProblem(t *testing.T, public, roles string) string {
	t.Helper()
	pod := podFrom(map[string]string{AnnotationTenant: "*", AnnotationPublic: public, AnnotationRoles: roles}, httpPort(8080))
	_, problems, err := validate(context.Background(), pod, fakeTenants(), ptr.To(testOptions()))
	if err != nil || len(problems) != 1 {
		t.Fatalf("want one problem with public %q roles %q, got %v, %v", public, roles, problems, err)
	}
	_, detail, _ := strings.Cut(problems[0].msg, "): ")
	return detail
}

// TestAllowed: what opted-in pods may do and still be injected.
func TestAllowed(t *testing.T) {
	tests := map[string]*corev1.Pod{
		"any tenant":                  podFrom(map[string]string{AnnotationTenant: "*"}, httpPort(8080)),
		"tenant with spaces":          podFrom(map[string]string{AnnotationTenant: " darmist1 "}, httpPort(8080)),
		"undeclared annotated port":   podFrom(map[string]string{AnnotationTenant: "darmist1", AnnotationPort: "3000"}),
		"policy with rules":           podFrom(map[string]string{AnnotationTenant: "darmist1", AnnotationPublic: "/healthz, GET /docs/**", AnnotationRoles: "/admin/**=admin"}, httpPort(8080)),
		"resources at the maximum":    podFrom(map[string]string{AnnotationTenant: "darmist1", AnnotationSidecarCPU: "2", AnnotationSidecarMemoryLimit: "1Gi"}, httpPort(8080)),
		"protocol left to defaulting": podFrom(map[string]string{AnnotationTenant: "darmist1"}, corev1.ContainerPort{Name: "web", ContainerPort: 80}),
	}
	inj := newTestInjector(t)
	for name, pod := range tests {
		t.Run(name, func(t *testing.T) {
			if r := inj.review(context.Background(), pod, "shop", TriggerPod); r.outcome != OutcomeInjected {
				t.Errorf("got %s (%s): %s; want injected", r.outcome, r.reason, r.message)
			}
		})
	}
}

// failingReader fails every read.
type failingReader struct{ client.Reader }

func (failingReader) Get(context.Context, client.ObjectKey, client.Object, ...client.GetOption) error {
	return errors.New("connection refused")
}

func TestTenantLookupFailureIsAnError(t *testing.T) {
	inj := &Injector{Options: testOptions(), Tenants: failingReader{}}
	r := inj.review(context.Background(), podFrom(map[string]string{AnnotationTenant: "darmist1"}, httpPort(8080)), "shop", TriggerPod)
	want := result{outcome: OutcomeError, reason: ReasonTenantLookupFailed, message: `reading Tenant "darmist1": connection refused (try again)`}
	if diff := cmp.Diff(want, r, cmp.AllowUnexported(result{})); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

func TestSidecarResources(t *testing.T) {
	q := resource.MustParse
	opts := testOptions() // requests cpu 50m memory 64Mi, limit memory 256Mi; max cpu 2, memory 1Gi
	tests := map[string]struct {
		annotations  map[string]string
		want         corev1.ResourceRequirements
		wantProblems []string
	}{
		"defaults": {
			nil,
			corev1.ResourceRequirements{Requests: corev1.ResourceList{"cpu": q("50m"), "memory": q("64Mi")}, Limits: corev1.ResourceList{"memory": q("256Mi")}},
			nil,
		},
		"cpu request and limit": {
			map[string]string{AnnotationSidecarCPU: "100m", AnnotationSidecarCPULimit: "500m"},
			corev1.ResourceRequirements{Requests: corev1.ResourceList{"cpu": q("100m"), "memory": q("64Mi")}, Limits: corev1.ResourceList{"cpu": q("500m"), "memory": q("256Mi")}},
			nil,
		},
		"memory request above the default limit raises the limit": {
			map[string]string{AnnotationSidecarMemory: "300Mi"},
			corev1.ResourceRequirements{Requests: corev1.ResourceList{"cpu": q("50m"), "memory": q("300Mi")}, Limits: corev1.ResourceList{"memory": q("300Mi")}},
			nil,
		},
		"memory limit below the default request lowers the request": {
			map[string]string{AnnotationSidecarMemoryLimit: "32Mi"},
			corev1.ResourceRequirements{Requests: corev1.ResourceList{"cpu": q("50m"), "memory": q("32Mi")}, Limits: corev1.ResourceList{"memory": q("32Mi")}},
			nil,
		},
		"white space around a value": {
			map[string]string{AnnotationSidecarCPU: " 75m "},
			corev1.ResourceRequirements{Requests: corev1.ResourceList{"cpu": q("75m"), "memory": q("64Mi")}, Limits: corev1.ResourceList{"memory": q("256Mi")}},
			nil,
		},
		"negative and over the maximum": {
			map[string]string{AnnotationSidecarCPULimit: "-1", AnnotationSidecarMemoryLimit: "2Gi"},
			corev1.ResourceRequirements{Requests: corev1.ResourceList{"cpu": q("50m"), "memory": q("64Mi")}, Limits: corev1.ResourceList{"memory": q("256Mi")}},
			[]string{
				`the annotation authmesh.dev/sidecar-cpu-limit="-1" must be more than 0`,
				`the annotation authmesh.dev/sidecar-memory-limit="2Gi" is above the maximum 1Gi the manager allows`,
			},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			got, problems := sidecarResources(tc.annotations, &opts)
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("resources (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tc.wantProblems, problems); diff != "" {
				t.Errorf("problems (-want +got):\n%s", diff)
			}
		})
	}
}

func TestRenamedPort(t *testing.T) {
	ports := func(names ...string) []corev1.ContainerPort {
		out := make([]corev1.ContainerPort, len(names))
		for i, n := range names {
			out[i] = corev1.ContainerPort{Name: n}
		}
		return out
	}
	tests := map[string]struct {
		name  string
		ports []corev1.ContainerPort
		want  string
	}{
		"short":                      {"http", ports("http"), "app-http"},
		"cut to 15":                  {"web-frontend-x", ports("web-frontend-x"), "app-web-fronten"},
		"no trailing hyphen":         {"abcdefghij-kl", ports("abcdefghij-kl"), "app-abcdefghij"},
		"taken: next candidate":      {"http", ports("http", "app-http"), "app2-http"},
		"taken twice":                {"http", ports("http", "app-http", "app2-http"), "app3-http"},
		"long and taken":             {"metrics-public", ports("metrics-public", "app-metrics-pub"), "app2-metrics-pu"},
		"all candidates taken":       {"x", ports("x", "app-x", "app2-x", "app3-x", "app4-x", "app5-x", "app6-x", "app7-x", "app8-x", "app9-x"), ""},
		"a reserved name is skipped": {"proxy", ports("proxy"), "app-proxy"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			if got := renamedPort(tc.name, tc.ports); got != tc.want {
				t.Errorf("renamedPort(%q) = %q, want %q", tc.name, got, tc.want)
			}
		})
	}
}

func TestOptionsValidate(t *testing.T) {
	if err := ptr.To(testOptions()).Validate(); err != nil {
		t.Fatalf("test options: %v", err)
	}
	bad := DefaultOptions() // no URLs
	bad.Image = ""
	bad.ImagePullPolicy = "Sometimes"
	bad.MaxCPU = resource.MustParse("10m")
	bad.InternalTokenExpiration = 0
	bad.RunAsUser = 0
	bad.IssuerURL = "auth.example.test"
	bad.ExcludedNamespaces = []string{"Kube_System"}
	err := bad.Validate()
	want := []string{
		"the sidecar image is required",
		`image pull policy "Sometimes": want Always, IfNotPresent or Never`,
		"the sidecar's default cpu request 50m: want more than 0 and at most the maximum 10m",
		"the auth server URL is required",
		`issuer URL "auth.example.test": want an absolute http(s) URL without query or fragment`,
		"the revocation feed URL is required",
		"internal API token expiration 0s: want between 10m and 48h",
		"the sidecar's UID 0: want a non-root UID (more than 0)",
	}
	var got []string
	for _, e := range unjoin(err) {
		got = append(got, e.Error())
	}
	want = append(want, `namespace "Kube_System": [a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')]`)
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("problems (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"authmesh-system", "kube-system"}, ptr.To(DefaultOptions()).ProtectedNamespaces()); diff != "" {
		t.Errorf("protected namespaces (-want +got):\n%s", diff)
	}
}
