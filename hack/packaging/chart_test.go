package packaging

import (
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

const (
	chartDir       = "charts/authmesh"
	releaseName    = "authmesh"
	releaseNS      = "authmesh-system"
	chartFilesCRDs = "charts/authmesh/files/crds"
	chartFilesRBAC = "charts/authmesh/files/rbac/role.yaml"
)

// chartCases are the value sets the chart is rendered with: its defaults, every option turned
// the other way (testdata/values/full.yaml), and the kind demo's values (exactly what
// `make kind-deploy` installs).
var chartCases = map[string][]string{
	"default": nil,
	"full":    {"hack/packaging/testdata/values/full.yaml"},
	"kind":    {"config/kind/values.yaml"},
}

// renderChart runs helm template for one case, for the Kubernetes version envtest runs.
func renderChart(t *testing.T, values []string, extra ...string) []byte {
	t.Helper()
	args := []string{"template", releaseName, chartDir, "--namespace", releaseNS,
		"--kube-version", strings.TrimPrefix(pinned(t, "KUBERNETES_VERSION"), "v")}
	for _, v := range values {
		args = append(args, "--values", v)
	}
	return command(t, nil, helmBin(t), append(args, extra...)...)
}

// TestHelmLint runs helm lint --strict with every value set.
func TestHelmLint(t *testing.T) {
	for name, values := range chartCases {
		t.Run(name, func(t *testing.T) {
			args := []string{"lint", chartDir, "--strict", "--namespace", releaseNS,
				"--kube-version", strings.TrimPrefix(pinned(t, "KUBERNETES_VERSION"), "v")}
			for _, v := range values {
				args = append(args, "--values", v)
			}
			command(t, nil, helmBin(t), args...)
		})
	}
}

// TestChartGolden compares each rendering with its golden file.
func TestChartGolden(t *testing.T) {
	for name, values := range chartCases {
		t.Run(name, func(t *testing.T) {
			golden(t, "chart-"+name+".yaml", renderChart(t, values))
		})
	}
}

// TestChartDryRun applies each rendering to the API server with a server-side dry-run: every
// object must be accepted by a real kube-apiserver's validation and admission (our CRD, the
// test-data CRDs, strict field validation, the restricted Pod Security Standard).
func TestChartDryRun(t *testing.T) {
	for name, values := range chartCases {
		t.Run(name, func(t *testing.T) {
			dryRunApply(t, decode(t, renderChart(t, values)), releaseNS)
		})
	}
}

// TestChartValuesSchema proves values.schema.json refuses bad values before rendering.
func TestChartValuesSchema(t *testing.T) {
	bad := map[string][]string{
		"unknown key":                    {"--set", "authserver.replica=3"},
		"replicas not integer":           {"--set-string", "authserver.replicas=two"},
		"zero replicas":                  {"--set", "authserver.replicas=0"},
		"bad failure policy":             {"--set", "webhook.failurePolicy=Sometimes"},
		"public URL with query":          {"--set", "publicURL=https://auth.example.com/?x=1"},
		"no MongoDB":                     {"--set", "mongodb.existingSecret="},
		"not a mongodb URI":              {"--set", "mongodb.uri=postgres://db"},
		"bad pull policy":                {"--set", "image.pullPolicy=Sometimes"},
		"extra arg not a flag":           {"--set", "controller.extraArgs[0]=verbose"},
		"bad duration":                   {"--set", "controller.recheckInterval=5 minutes"},
		"unknown rate limit":             {"--set", "authserver.rateLimits.login-everything=10/1m"},
		"bad rate limit":                 {"--set", "authserver.rateLimits.login-ip=ten a minute"},
		"zero-event rate limit":          {"--set", "authserver.rateLimits.login-ip=0/1m"},
		"too many concurrent reconciles": {"--set", "controller.maxConcurrentReconciles=65"},
	}
	for name, args := range bad {
		t.Run(name, func(t *testing.T) {
			all := append([]string{"template", releaseName, chartDir, "--namespace", releaseNS,
				"--kube-version", strings.TrimPrefix(pinned(t, "KUBERNETES_VERSION"), "v")}, args...)
			if out, err := commandErr(nil, helmBin(t), all...); err == nil {
				t.Errorf("helm template %s rendered; want a refusal. Output:\n%.500s", strings.Join(args, " "), out)
			}
		})
	}
}

// TestChartCopiesOfGeneratedFiles fails when the chart's copies of the generated CRD and RBAC
// role (files/) differ from config/ (make generate); -update refreshes them.
func TestChartCopiesOfGeneratedFiles(t *testing.T) {
	crds, err := filepath.Glob(filepath.Join(root, "config/crd/bases/*.yaml"))
	if err != nil || len(crds) == 0 {
		t.Fatalf("no CRDs in config/crd/bases (%v)", err)
	}
	pairs := map[string]string{filepath.Join(root, "config/rbac/role.yaml"): filepath.Join(root, chartFilesRBAC)}
	for _, src := range crds {
		pairs[src] = filepath.Join(root, chartFilesCRDs, filepath.Base(src))
	}
	copies, _ := filepath.Glob(filepath.Join(root, chartFilesCRDs, "*.yaml"))
	for _, c := range copies {
		if !slices.Contains(crds, filepath.Join(root, "config/crd/bases", filepath.Base(c))) {
			if *update {
				_ = os.Remove(c)
				continue
			}
			t.Errorf("%s has no source in config/crd/bases; run `go test ./hack/packaging/ -update`", c)
		}
	}
	for src, dst := range pairs {
		want, err := os.ReadFile(src)
		if err != nil {
			t.Fatal(err)
		}
		if *update {
			if err := os.WriteFile(dst, want, 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		got, err := os.ReadFile(dst)
		if err != nil || !bytes.Equal(got, want) {
			rel, _ := filepath.Rel(root, dst)
			t.Errorf("%s is not a copy of the generated %s; run `go test ./hack/packaging/ -update` (after make generate) and review the chart change", rel, src[len(root)+1:])
		}
	}
}

// TestChartShape checks properties the dry-run cannot: what is exposed where, and who may call
// it, in the default rendering.
func TestChartShape(t *testing.T) {
	objs := decode(t, renderChart(t, nil))

	t.Run("internal port stays in-cluster", func(t *testing.T) {
		public := find(t, objs, "Service", "authmesh-authserver")
		ports, _, _ := unstructured.NestedSlice(public.Object, "spec", "ports")
		for _, p := range ports {
			if target := p.(map[string]any)["targetPort"]; target != "http" {
				t.Errorf("the public Service exposes target port %v; want only http (3502)", target)
			}
		}
		internal := find(t, objs, "Service", "authmesh-authserver-internal")
		if typ, _, _ := unstructured.NestedString(internal.Object, "spec", "type"); typ != "ClusterIP" {
			t.Errorf("the internal Service is %q; want ClusterIP", typ)
		}
		np := find(t, objs, "NetworkPolicy", "authmesh-authserver")
		rules, _, _ := unstructured.NestedSlice(np.Object, "spec", "ingress")
		var internalFrom []any
		for _, r := range rules {
			rule := r.(map[string]any)
			for _, p := range rule["ports"].([]any) {
				if p.(map[string]any)["port"] == "internal" {
					internalFrom, _ = rule["from"].([]any)
				}
			}
		}
		want := []any{map[string]any{"namespaceSelector": map[string]any{}}}
		if diff := cmp.Diff(want, internalFrom); diff != "" {
			t.Errorf("the NetworkPolicy's peers for the internal port (-want +got):\n%s", diff)
		}
	})

	t.Run("auth server RBAC", func(t *testing.T) {
		role := find(t, objs, "ClusterRole", "authmesh-authserver")
		rules, _, _ := unstructured.NestedSlice(role.Object, "rules")
		want := []any{
			map[string]any{"apiGroups": []any{"authmesh.dev"}, "resources": []any{"tenants"}, "verbs": []any{"get", "list", "watch"}},
			map[string]any{"apiGroups": []any{"authentication.k8s.io"}, "resources": []any{"tokenreviews"}, "verbs": []any{"create"}},
		}
		if diff := cmp.Diff(want, rules); diff != "" {
			t.Errorf("the auth server's ClusterRole (-want +got):\n%s", diff)
		}
		secrets := find(t, objs, "Role", "authmesh-authserver")
		if ns := secrets.GetNamespace(); ns != releaseNS {
			t.Errorf("the auth server's Secret Role is in %q; want the release namespace", ns)
		}
	})

	t.Run("every container has requests and limits", func(t *testing.T) {
		for _, o := range objs {
			if o.GetKind() != "Deployment" {
				continue
			}
			cs, _, _ := unstructured.NestedSlice(o.Object, "spec", "template", "spec", "containers")
			for _, c := range cs {
				c := c.(map[string]any)
				req, _, _ := unstructured.NestedMap(c, "resources", "requests")
				lim, _, _ := unstructured.NestedMap(c, "resources", "limits")
				if req["cpu"] == nil || req["memory"] == nil || lim["memory"] == nil {
					t.Errorf("%s/%s: want cpu and memory requests and a memory limit, got %v", o.GetName(), c["name"], c["resources"])
				}
			}
		}
	})

	t.Run("webhook excludes protected namespaces", func(t *testing.T) {
		wh := find(t, objs, "MutatingWebhookConfiguration", "authmesh-sidecar-injector")
		hooks, _, _ := unstructured.NestedSlice(wh.Object, "webhooks")
		if len(hooks) != 2 {
			t.Fatalf("%d webhook entries; want 2 (pod and namespace opt-in)", len(hooks))
		}
		for _, h := range hooks {
			h := h.(map[string]any)
			if h["failurePolicy"] != "Fail" {
				t.Errorf("%s: failurePolicy %v; want Fail", h["name"], h["failurePolicy"])
			}
			exprs, _, _ := unstructured.NestedSlice(h, "namespaceSelector", "matchExpressions")
			found := false
			for _, e := range exprs {
				e := e.(map[string]any)
				if e["key"] == "kubernetes.io/metadata.name" && e["operator"] == "NotIn" {
					vals := e["values"].([]any)
					found = slices.Contains(vals, any("kube-system")) && slices.Contains(vals, any(releaseNS))
				}
			}
			if !found {
				t.Errorf("%s: its namespaceSelector does not exclude kube-system and %s", h["name"], releaseNS)
			}
		}
	})
}
