package testenv

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/go-logr/logr"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	authmeshv1alpha1 "github.com/authmesh/authmesh/api/v1alpha1"
)

// APIServer is a running kube-apiserver and etcd with authmesh's CRDs installed.
type APIServer struct {
	Env    *envtest.Environment
	Config *rest.Config
	Scheme *runtime.Scheme
	Client client.Client
}

// APIServerOptions adjusts StartAPIServer.
type APIServerOptions struct {
	// Webhooks to register with the API server; see envtest.WebhookInstallOptions.
	Webhooks envtest.WebhookInstallOptions
}

// NewScheme returns a scheme with the built-in Kubernetes types and authmesh's.
func NewScheme() *runtime.Scheme {
	s := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(s); err != nil {
		panic(err)
	}
	if err := authmeshv1alpha1.AddToScheme(s); err != nil {
		panic(err)
	}
	return s
}

// StartAPIServer starts envtest's control plane from the binaries in KUBEBUILDER_ASSETS (or the
// project's tool cache) and installs the CRDs in config/crd/bases. It never downloads anything.
func StartAPIServer(opts APIServerOptions) (*APIServer, error) {
	ctrl.SetLogger(logr.Discard())
	root, err := RepoRoot()
	if err != nil {
		return nil, err
	}
	assets, err := k8sAssets()
	if err != nil {
		return nil, err
	}
	scheme := NewScheme()
	env := &envtest.Environment{
		BinaryAssetsDirectory: assets,
		CRDDirectoryPaths:     []string{filepath.Join(root, "config", "crd", "bases")},
		ErrorIfCRDPathMissing: true,
		Scheme:                scheme,
		WebhookInstallOptions: opts.Webhooks,
	}
	cfg, err := env.Start()
	if err != nil {
		return nil, fmt.Errorf("testenv: starting kube-apiserver and etcd from %s: %w", assets, err)
	}
	c, err := client.New(cfg, client.Options{Scheme: scheme})
	if err != nil {
		_ = env.Stop()
		return nil, err
	}
	return &APIServer{Env: env, Config: cfg, Scheme: scheme, Client: c}, nil
}

// Stop stops the API server and etcd.
func (a *APIServer) Stop() error { return a.Env.Stop() }

// k8sAssets finds the folder with kube-apiserver, etcd and kubectl, or says how to build it.
func k8sAssets() (string, error) {
	dir := os.Getenv("KUBEBUILDER_ASSETS")
	if dir == "" {
		cache, err := os.UserCacheDir()
		if err != nil {
			return "", err
		}
		version, err := toolVersion("KUBERNETES_VERSION")
		if err != nil {
			return "", err
		}
		dir = filepath.Join(cache, "authmesh", "k8s-"+version)
	}
	for _, name := range []string{"kube-apiserver", "etcd"} {
		if _, err := os.Stat(filepath.Join(dir, name)); err != nil {
			return "", fmt.Errorf("testenv: %s not found in %s; run `make k8s-tools` (it builds kube-apiserver from source, about 15 minutes the first time) or `make test`",
				name, dir)
		}
	}
	return dir, nil
}

// toolVersion reads a version pinned in hack/versions.env.
func toolVersion(key string) (string, error) {
	root, err := RepoRoot()
	if err != nil {
		return "", err
	}
	data, err := os.ReadFile(filepath.Join(root, "hack", "versions.env"))
	if err != nil {
		return "", err
	}
	for _, line := range strings.Split(string(data), "\n") {
		if k, v, ok := strings.Cut(strings.TrimSpace(line), "="); ok && k == key {
			return strings.TrimSpace(v), nil
		}
	}
	return "", fmt.Errorf("testenv: %s is not set in hack/versions.env", key)
}
