package injection

import (
	"context"
	"encoding/json"
	"go/ast"
	"go/parser"
	"go/token"
	"net/http"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/authmesh/authmesh/internal/testenv"
)

// request wraps pod in an admission request as the API server sends it.
func request(t *testing.T, pod *corev1.Pod, namespace string, dryRun bool) admission.Request {
	t.Helper()
	raw, err := json.Marshal(pod)
	if err != nil {
		t.Fatal(err)
	}
	return admission.Request{AdmissionRequest: admissionv1.AdmissionRequest{
		UID:       "uid-1",
		Kind:      metav1.GroupVersionKind{Version: "v1", Kind: "Pod"},
		Resource:  metav1.GroupVersionResource{Version: "v1", Resource: "pods"},
		Namespace: namespace,
		Operation: admissionv1.Create,
		Object:    runtime.RawExtension{Raw: raw},
		DryRun:    ptr.To(dryRun),
	}}
}

// TestHandle drives the admission handler with requests as the API server sends them, and
// checks the responses, the Events and the metric.
func TestHandle(t *testing.T) {
	reg := prometheus.NewPedanticRegistry()
	metrics, err := NewMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	rec := &recorder{}
	inj := &Injector{Options: testOptions(), Tenants: fakeTenants(), Decoder: admission.NewDecoder(testenv.NewScheme()), Recorder: rec, Metrics: metrics}
	ctx := context.Background()

	owned := podFrom(map[string]string{AnnotationTenant: "darmist1"}, httpPort(8080))
	owned.Name, owned.GenerateName = "", "web-7d9f-"
	owned.OwnerReferences = []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "ReplicaSet", Name: "web-7d9f", UID: "rs-uid", Controller: ptr.To(true)}}

	t.Run("injected", func(t *testing.T) {
		resp := inj.Handler(TriggerPod).Handle(ctx, request(t, owned, "shop", false))
		if !resp.Allowed || len(resp.Patches) == 0 {
			t.Fatalf("got allowed=%v with %d patches, want a patch", resp.Allowed, len(resp.Patches))
		}
		want := []recordedEvent{{
			Regarding: corev1.ObjectReference{APIVersion: "apps/v1", Kind: "ReplicaSet", Name: "web-7d9f", UID: "rs-uid", Namespace: "shop"},
			Type:      corev1.EventTypeNormal, Reason: string(ReasonPodOptIn), Action: "InjectSidecar",
			Note: `authmesh sidecar injected (tenant darmist1, app port 8080, sidecar port 15080 named "http")`,
		}}
		if diff := cmp.Diff(want, rec.take()); diff != "" {
			t.Errorf("events (-want +got):\n%s", diff)
		}
	})

	t.Run("dry run: same answer, no Event, not counted", func(t *testing.T) {
		resp := inj.Handler(TriggerPod).Handle(ctx, request(t, owned, "shop", true))
		if !resp.Allowed || len(resp.Patches) == 0 {
			t.Fatalf("got allowed=%v with %d patches, want a patch", resp.Allowed, len(resp.Patches))
		}
		if got := rec.take(); len(got) != 0 {
			t.Errorf("dry run recorded %v", got)
		}
	})

	t.Run("rejected", func(t *testing.T) {
		pod := podFrom(map[string]string{AnnotationTenant: "nope"}, httpPort(8080))
		resp := inj.Handler(TriggerPod).Handle(ctx, request(t, pod, "shop", false))
		wantMsg := `the pod opted in to the authmesh sidecar but cannot be protected: the Tenant "nope" named by the annotation authmesh.dev/tenant does not exist: create it, or correct the annotation`
		if resp.Allowed || resp.Result.Code != http.StatusForbidden || resp.Result.Message != wantMsg {
			t.Errorf("got allowed=%v code=%d message %q, want denied 403 %q", resp.Allowed, resp.Result.Code, resp.Result.Message, wantMsg)
		}
		want := []recordedEvent{{
			Regarding: corev1.ObjectReference{APIVersion: "v1", Kind: "Pod", Name: "p", Namespace: "shop"},
			Type:      corev1.EventTypeWarning, Reason: string(ReasonTenantNotFound), Action: "InjectSidecar", Note: wantMsg,
		}}
		if diff := cmp.Diff(want, rec.take()); diff != "" {
			t.Errorf("events (-want +got):\n%s", diff)
		}
	})

	t.Run("skipped twice: opted out records an Event, already injected does not", func(t *testing.T) {
		pod := podFrom(map[string]string{AnnotationTenant: "darmist1"}, httpPort(8080))
		pod.Labels[LabelInject] = InjectPodDisabled
		if resp := inj.Handler(TriggerNamespace).Handle(ctx, request(t, pod, "shop", false)); !resp.Allowed || len(resp.Patches) != 0 {
			t.Errorf("opted out: got allowed=%v with %d patches, want allowed unchanged", resp.Allowed, len(resp.Patches))
		}
		injected := readPod(t, "already-injected.yaml")
		if resp := inj.Handler(TriggerPod).Handle(ctx, request(t, injected, "shop", false)); !resp.Allowed || len(resp.Patches) != 0 {
			t.Errorf("already injected: got allowed=%v with %d patches, want allowed unchanged", resp.Allowed, len(resp.Patches))
		}
		got := rec.take()
		if len(got) != 1 || got[0].Reason != string(ReasonPodOptedOut) || got[0].Type != corev1.EventTypeNormal {
			t.Errorf("got events %+v, want one Normal %s", got, ReasonPodOptedOut)
		}
	})

	t.Run("not a pod", func(t *testing.T) {
		req := request(t, owned, "shop", false)
		req.Object.Raw = []byte(`{"kind": "Pod", "spec": {"containers": "many"}}`)
		resp := inj.Handler(TriggerPod).Handle(ctx, req)
		if resp.Allowed || resp.Result.Code != http.StatusBadRequest || !strings.HasPrefix(resp.Result.Message, "authmesh sidecar injection: decoding the pod: ") {
			t.Errorf("got allowed=%v code=%d message %q, want an error 400", resp.Allowed, resp.Result.Code, resp.Result.Message)
		}
	})

	t.Run("not a creation", func(t *testing.T) {
		req := request(t, owned, "shop", false)
		req.Operation = admissionv1.Update
		if resp := inj.Handler(TriggerPod).Handle(ctx, req); !resp.Allowed || len(resp.Patches) != 0 {
			t.Errorf("update: got allowed=%v with %d patches, want allowed unchanged", resp.Allowed, len(resp.Patches))
		}
	})

	// Counted: injected, rejected, opted out, already injected, the bad request; not the dry
	// run nor the update. Every other pair is exported at 0.
	var want strings.Builder
	want.WriteString("# HELP authmesh_controller_injections_total Pods seen by the sidecar injection webhook, by outcome (injected, skipped, rejected, error) and reason.\n")
	want.WriteString("# TYPE authmesh_controller_injections_total counter\n")
	counted := map[[2]string]int{
		{"injected", "PodOptIn"}: 1, {"rejected", "TenantNotFound"}: 1, {"skipped", "PodOptedOut"}: 1,
		{"skipped", "AlreadyInjected"}: 1, {"error", "BadRequest"}: 1,
	}
	var lines []string
	for outcome, reasons := range knownOutcomes {
		for _, reason := range reasons {
			n := counted[[2]string{string(outcome), string(reason)}]
			lines = append(lines, `authmesh_controller_injections_total{outcome="`+string(outcome)+`",reason="`+string(reason)+`"} `+strconv.Itoa(n))
		}
	}
	slices.Sort(lines)
	want.WriteString(strings.Join(lines, "\n") + "\n")
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want.String()), "authmesh_controller_injections_total"); err != nil {
		t.Error(err)
	}
}

// TestAnnotationNamesMatchSidecar reads the sidecar's annotation constants from its source
// (the parts never import each other) and checks they equal the ones declared here, so the
// injector validates exactly what the sidecar will read.
func TestAnnotationNamesMatchSidecar(t *testing.T) {
	root, err := testenv.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(root, "sidecar", "annotations.go")
	f, err := parser.ParseFile(token.NewFileSet(), file, nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, decl := range f.Decls {
		gd, ok := decl.(*ast.GenDecl)
		if !ok || gd.Tok != token.CONST {
			continue
		}
		for _, spec := range gd.Specs {
			vs := spec.(*ast.ValueSpec)
			for i, name := range vs.Names {
				if lit, ok := vs.Values[i].(*ast.BasicLit); ok && lit.Kind == token.STRING {
					got[name.Name], _ = strconv.Unquote(lit.Value)
				}
			}
		}
	}
	want := map[string]string{
		"AnnotationTenant": AnnotationTenant,
		"AnnotationPort":   AnnotationPort,
		"AnnotationPublic": AnnotationPublic,
		"AnnotationRoles":  AnnotationRoles,
	}
	for name, w := range want {
		if got[name] != w {
			t.Errorf("%s: sidecar declares %s = %q, the injector %q", file, name, got[name], w)
		}
	}
}
