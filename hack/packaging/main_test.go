// Package packaging tests how authmesh is installed: the Helm chart in charts/authmesh, the
// kustomize bases and overlays in config/, the kind demo's install steps (hack/kind.sh), the
// images' Dockerfile and version stamping, and the Grafana dashboard. It holds tests only.
//
// Every rendered manifest is applied with a server-side dry-run to a real kube-apiserver
// (envtest, from internal/testenv) that has authmesh's CRD and, from testdata/crds, the
// Prometheus Operator and cert-manager CRDs the chart can use; namespaces are labelled to warn
// about the restricted Pod Security Standard, and any warning fails the test. helm and kustomize
// come from the tool cache: the Makefile builds them and exports HELM and KUSTOMIZE.
//
//	go test ./hack/packaging/            # what make test runs
//	go test ./hack/packaging/ -update    # rewrite the golden files and the chart's copies of generated files
package packaging

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"github.com/authmesh/authmesh/internal/testenv"
)

var update = flag.Bool("update", false, "rewrite golden files and the chart's copies of generated files")

// cluster is a running envtest API server, and a kubeconfig file for helm and kubectl.
type cluster struct {
	*testenv.APIServer
	kubeconfig  string // a kubeconfig file for it
	kubeContext string // its context
	dir         string
}

var (
	// api is the API server the dry-run tests share: authmesh's CRD and the test-data CRDs.
	api *cluster
	// root is the repository root; tests run commands from there.
	root string
)

func TestMain(m *testing.M) {
	flag.Parse()
	code, err := run(m)
	if err != nil {
		fmt.Fprintln(os.Stderr, "packaging:", err)
		os.Exit(1)
	}
	os.Exit(code)
}

func run(m *testing.M) (int, error) {
	var err error
	if root, err = testenv.RepoRoot(); err != nil {
		return 0, err
	}
	if api, err = startCluster(); err != nil {
		return 0, err
	}
	defer api.stop()
	if _, err := envtest.InstallCRDs(api.Config, envtest.CRDInstallOptions{
		Paths:              []string{filepath.Join(root, "hack", "packaging", "testdata", "crds")},
		ErrorIfPathMissing: true,
	}); err != nil {
		return 0, fmt.Errorf("installing the test-data CRDs: %w", err)
	}
	return m.Run(), nil
}

// startCluster starts an API server (with authmesh's CRD, from internal/testenv) and writes a
// kubeconfig of a cluster admin for it.
func startCluster() (*cluster, error) {
	a, err := testenv.StartAPIServer(testenv.APIServerOptions{})
	if err != nil {
		return nil, err
	}
	c := &cluster{APIServer: a}
	if err := c.writeKubeconfig(); err != nil {
		c.stop()
		return nil, err
	}
	return c, nil
}

func (c *cluster) writeKubeconfig() error {
	user, err := c.Env.AddUser(envtest.User{Name: "packaging-admin", Groups: []string{"system:masters"}}, nil)
	if err != nil {
		return err
	}
	kc, err := user.KubeConfig()
	if err != nil {
		return err
	}
	parsed, err := clientcmd.Load(kc)
	if err != nil {
		return err
	}
	c.kubeContext = parsed.CurrentContext
	if c.dir, err = os.MkdirTemp("", "authmesh-packaging-"); err != nil {
		return err
	}
	c.kubeconfig = filepath.Join(c.dir, "kubeconfig")
	return os.WriteFile(c.kubeconfig, kc, 0o600)
}

func (c *cluster) stop() {
	_ = c.Stop()
	if c.dir != "" {
		_ = os.RemoveAll(c.dir)
	}
}

// tool returns the binary named by the environment variable env, which the Makefile exports,
// or fails the test with the make target that builds it.
func tool(t *testing.T, env, target string) string {
	t.Helper()
	p := os.Getenv(env)
	if p == "" {
		t.Fatalf("%s is not set: run `make %s` and set %s to the binary it builds (make test does both)", env, target, env)
	}
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("%s=%s: %v; run `make %s` (make test does)", env, p, err, target)
	}
	return p
}

func helmBin(t *testing.T) string      { return tool(t, "HELM", "helm") }
func kustomizeBin(t *testing.T) string { return tool(t, "KUSTOMIZE", "kustomize") }

// kubectlBin is the kubectl next to envtest's kube-apiserver (make k8s-tools builds it).
func kubectlBin(t *testing.T) string {
	t.Helper()
	dir := api.Env.BinaryAssetsDirectory
	p := filepath.Join(dir, "kubectl")
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("no kubectl in %s: run `make k8s-tools` (make test does)", dir)
	}
	return p
}

// command runs name with args in the repository root and returns its standard output; a
// failure fails the test with both outputs.
func command(t *testing.T, env []string, name string, args ...string) []byte {
	t.Helper()
	out, err := commandErr(env, name, args...)
	if err != nil {
		t.Fatalf("%s %s: %v", filepath.Base(name), strings.Join(args, " "), err)
	}
	return out
}

func commandErr(env []string, name string, args ...string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = root
	cmd.Env = append(os.Environ(), env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.Bytes(), fmt.Errorf("%w\nstdout:\n%s\nstderr:\n%s", err, stdout.String(), stderr.String())
	}
	return stdout.Bytes(), nil
}

// pinned reads a version pinned in hack/versions.env.
func pinned(t *testing.T, key string) string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(root, "hack", "versions.env"))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		if k, v, ok := strings.Cut(strings.TrimSpace(line), "="); ok && k == key {
			return strings.TrimSpace(v)
		}
	}
	t.Fatalf("%s is not set in hack/versions.env", key)
	return ""
}

// decode splits a multi-document YAML stream into objects, skipping empty documents.
func decode(t *testing.T, data []byte) []*unstructured.Unstructured {
	t.Helper()
	var objs []*unstructured.Unstructured
	d := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(data), 4096)
	for {
		var m map[string]any
		if err := d.Decode(&m); errors.Is(err, io.EOF) {
			return objs
		} else if err != nil {
			t.Fatalf("decoding manifests: %v", err)
		}
		if len(m) == 0 {
			continue
		}
		objs = append(objs, &unstructured.Unstructured{Object: m})
	}
}

// warnings collects the API server's warnings (Pod Security, deprecations, unknown fields).
type warnings struct {
	mu   sync.Mutex
	msgs []string
}

func (w *warnings) HandleWarningHeaderWithContext(_ context.Context, _ int, _ string, msg string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.msgs = append(w.msgs, msg)
}

func (w *warnings) take() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := w.msgs
	w.msgs = nil
	return out
}

// ensureNamespace creates ns if it does not exist, labelled so that the API server warns about
// pods that break the restricted Pod Security Standard.
func ensureNamespace(t *testing.T, ns string) {
	t.Helper()
	obj := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns, Labels: map[string]string{
		"pod-security.kubernetes.io/enforce": "restricted",
		"pod-security.kubernetes.io/warn":    "restricted",
	}}}
	if err := api.Client.Create(context.Background(), obj); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatalf("creating namespace %s: %v", ns, err)
	}
}

// dryRunApply applies every object with a server-side dry-run (field validation Strict) and
// fails the test on any error or warning. Namespaced objects without a namespace go to
// defaultNamespace, as kubectl would put them.
func dryRunApply(t *testing.T, objs []*unstructured.Unstructured, defaultNamespace string) {
	t.Helper()
	ctx := context.Background()
	w := &warnings{}
	cfg := rest.CopyConfig(api.Config)
	cfg.WarningHandlerWithContext = w
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	mapper := api.Client.RESTMapper()
	for _, obj := range objs {
		gvk := obj.GroupVersionKind()
		id := fmt.Sprintf("%s %s/%s", gvk.Kind, obj.GetNamespace(), obj.GetName())
		mapping, err := mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
		if err != nil {
			t.Errorf("%s: the API server does not know the kind: %v", id, err)
			continue
		}
		var ri dynamic.ResourceInterface = dyn.Resource(mapping.Resource)
		if mapping.Scope.Name() == "namespace" {
			ns := obj.GetNamespace()
			if ns == "" {
				ns = defaultNamespace
			}
			ensureNamespace(t, ns)
			ri = dyn.Resource(mapping.Resource).Namespace(ns)
		} else if obj.GetNamespace() != "" {
			t.Errorf("%s: cluster-scoped, but has a namespace", id)
		}
		data, err := obj.MarshalJSON()
		if err != nil {
			t.Fatal(err)
		}
		force := true
		_, err = ri.Patch(ctx, obj.GetName(), types.ApplyPatchType, data, metav1.PatchOptions{
			DryRun:          []string{metav1.DryRunAll},
			FieldManager:    "authmesh-packaging-test",
			Force:           &force,
			FieldValidation: metav1.FieldValidationStrict,
		})
		if err != nil {
			t.Errorf("%s: server-side dry-run apply: %v", id, err)
		}
		for _, msg := range w.take() {
			t.Errorf("%s: API server warning: %s", id, msg)
		}
	}
}

// golden compares got with testdata/golden/name, or rewrites it with -update.
func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join(root, "hack", "packaging", "testdata", "golden", name)
	if *update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v; run `go test ./hack/packaging/ -update` to create it", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from the rendering (first difference at line %d); review the change and run `go test ./hack/packaging/ -update`:\n%s",
			name, firstDiffLine(got, want), lineDiff(got, want))
	}
}

func firstDiffLine(a, b []byte) int {
	al, bl := strings.Split(string(a), "\n"), strings.Split(string(b), "\n")
	for i := range min(len(al), len(bl)) {
		if al[i] != bl[i] {
			return i + 1
		}
	}
	return min(len(al), len(bl)) + 1
}

// lineDiff shows a few lines around the first difference.
func lineDiff(got, want []byte) string {
	gl, wl := strings.Split(string(got), "\n"), strings.Split(string(want), "\n")
	i := firstDiffLine(got, want) - 1
	var b strings.Builder
	for _, side := range []struct {
		name  string
		lines []string
	}{{"want", wl}, {"got", gl}} {
		fmt.Fprintf(&b, "--- %s\n", side.name)
		for j := max(0, i-3); j < min(len(side.lines), i+4); j++ {
			fmt.Fprintf(&b, "%5d %s\n", j+1, side.lines[j])
		}
	}
	return b.String()
}

// find returns the rendered object of kind and name, or fails.
func find(t *testing.T, objs []*unstructured.Unstructured, kind, name string) *unstructured.Unstructured {
	t.Helper()
	i := slices.IndexFunc(objs, func(o *unstructured.Unstructured) bool { return o.GetKind() == kind && o.GetName() == name })
	if i < 0 {
		t.Fatalf("no %s %s among the rendered objects", kind, name)
	}
	return objs[i]
}
