package packaging

import (
	"io/fs"
	"path/filepath"
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// kustomizations lists every directory under config/ with a kustomization.yaml: each base and
// overlay is built and checked, so a new one is covered without touching this test.
func kustomizations(t *testing.T) []string {
	t.Helper()
	var dirs []string
	err := filepath.WalkDir(filepath.Join(root, "config"), func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() && d.Name() == "kustomization.yaml" {
			rel, _ := filepath.Rel(root, filepath.Dir(path))
			dirs = append(dirs, rel)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"config/default", "config/overlays/cert-manager", "config/samples", "config/kind/dev"} {
		if !slices.Contains(dirs, want) {
			t.Fatalf("no kustomization in %s", want)
		}
	}
	return dirs
}

func kustomizeBuild(t *testing.T, dir string) []*unstructured.Unstructured {
	t.Helper()
	return decode(t, command(t, nil, kustomizeBin(t), "build", dir))
}

// TestKustomizeDryRun builds every kustomization and applies it with a server-side dry-run;
// namespace-less objects (config/samples) go to "default", as kubectl would put them. The
// programs' flags are checked as for the chart.
func TestKustomizeDryRun(t *testing.T) {
	for _, dir := range kustomizations(t) {
		t.Run(dir, func(t *testing.T) {
			objs := kustomizeBuild(t, dir)
			if len(objs) == 0 {
				t.Fatalf("kustomize build %s gave no objects", dir)
			}
			dryRunApply(t, objs, "default")
			checkFlags(t, dir, objs)
		})
	}
}

// TestKustomizeMatchesChart proves the two install paths install the same thing: config/default
// and the chart's defaults create the same objects (the chart does not create the namespace),
// with the same pod specs (images aside) and the same webhook entries.
func TestKustomizeMatchesChart(t *testing.T) {
	type key struct{ kind, namespace, name string }
	index := func(objs []*unstructured.Unstructured) map[key]*unstructured.Unstructured {
		m := map[key]*unstructured.Unstructured{}
		for _, o := range objs {
			if o.GetKind() == "Namespace" {
				continue
			}
			m[key{o.GetKind(), o.GetNamespace(), o.GetName()}] = o
		}
		return m
	}
	chart := index(decode(t, renderChart(t, nil)))
	kust := index(kustomizeBuild(t, "config/default"))
	var onlyChart, onlyKust []key
	for k := range chart {
		if kust[k] == nil {
			onlyChart = append(onlyChart, k)
		}
	}
	for k := range kust {
		if chart[k] == nil {
			onlyKust = append(onlyKust, k)
		}
	}
	if len(onlyChart)+len(onlyKust) > 0 {
		t.Errorf("objects only the chart creates: %v\nobjects only config/default creates: %v", onlyChart, onlyKust)
	}
	podSpec := func(o *unstructured.Unstructured) map[string]any {
		spec, _, _ := unstructured.NestedMap(o.Object, "spec", "template", "spec")
		cs, _ := spec["containers"].([]any)
		for _, c := range cs {
			delete(c.(map[string]any), "image")
		}
		if tsc, ok := spec["topologySpreadConstraints"].([]any); ok {
			for _, c := range tsc {
				unstructured.RemoveNestedField(c.(map[string]any), "labelSelector", "matchLabels", "app.kubernetes.io/instance")
			}
		}
		return spec
	}
	for k, c := range chart {
		kk := kust[k]
		if kk == nil {
			continue
		}
		switch k.kind {
		case "Deployment":
			if diff := cmp.Diff(podSpec(kk), podSpec(c)); diff != "" {
				t.Errorf("%s/%s: pod spec of config/default (-) and of the chart (+):\n%s", k.kind, k.name, diff)
			}
		case "MutatingWebhookConfiguration":
			kw, _, _ := unstructured.NestedSlice(kk.Object, "webhooks")
			cw, _, _ := unstructured.NestedSlice(c.Object, "webhooks")
			if diff := cmp.Diff(kw, cw); diff != "" {
				t.Errorf("%s: webhook entries of config/webhook (-) and of the chart (+):\n%s", k.name, diff)
			}
		case "ClusterRole", "Role":
			kr, _, _ := unstructured.NestedSlice(kk.Object, "rules")
			cr, _, _ := unstructured.NestedSlice(c.Object, "rules")
			if diff := cmp.Diff(kr, cr); diff != "" {
				t.Errorf("%s/%s: rules of config/rbac (-) and of the chart (+):\n%s", k.kind, k.name, diff)
			}
		}
	}
}
