package injection

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
	"sigs.k8s.io/controller-runtime/pkg/webhook"

	authmeshv1alpha1 "github.com/authmesh/authmesh/api/v1alpha1"
	"github.com/authmesh/authmesh/internal/testenv"
)

// The envtest tests share one API server with config/webhook/manifests.yaml installed (envtest
// points its entries at a local URL with its own CA) and one manager serving the injector.
var (
	apiServer   *testenv.APIServer
	envRegistry *prometheus.Registry
)

const waitTimeout = 30 * time.Second

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	flag.Parse()
	if testing.Short() {
		return m.Run() // envtest tests skip themselves
	}
	root, err := testenv.RepoRoot()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	apiServer, err = testenv.StartAPIServer(testenv.APIServerOptions{Webhooks: envtest.WebhookInstallOptions{
		Paths: []string{filepath.Join(root, "config", "webhook", "manifests.yaml")},
	}})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer apiServer.Stop()

	logger := logr.Discard()
	if os.Getenv("AUTHMESH_TEST_LOG") != "" { // the manager's log, for debugging a test
		logger = logr.FromSlogHandler(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	ctrl.SetLogger(logger)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if err := setUpCluster(ctx); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}

	wio := apiServer.Env.WebhookInstallOptions
	mgr, err := ctrl.NewManager(apiServer.Config, ctrl.Options{
		Scheme:                 apiServer.Scheme,
		Metrics:                metricsserver.Options{BindAddress: "0"},
		HealthProbeBindAddress: "0",
		Logger:                 logger,
		WebhookServer: webhook.NewServer(webhook.Options{
			Host: wio.LocalServingHost, Port: wio.LocalServingPort, CertDir: wio.LocalServingCertDir,
		}),
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	opts := testOptions()
	envRegistry = prometheus.NewRegistry()
	opts.Registerer = envRegistry
	if _, err := SetupWithManager(mgr, opts); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	done := make(chan error, 1)
	go func() { done <- mgr.Start(ctx) }()
	defer func() {
		cancel()
		<-done
	}()
	if err := waitForInjection(ctx); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return m.Run()
}

// setUpCluster creates the namespaces and Tenants of the envtest tests: namespace shop (not
// opted in), enabled (opted in), the manager's authmesh-system; Tenants darmist1 (Ready) and
// slow (Provisioning).
func setUpCluster(ctx context.Context) error {
	c := apiServer.Client
	for _, ns := range []*corev1.Namespace{
		{ObjectMeta: metav1.ObjectMeta{Name: "shop"}},
		{ObjectMeta: metav1.ObjectMeta{Name: "enabled", Labels: map[string]string{LabelInject: InjectNamespaceEnabled}}},
		{ObjectMeta: metav1.ObjectMeta{Name: "authmesh-system", Labels: map[string]string{LabelInject: InjectNamespaceEnabled}}},
	} {
		if err := c.Create(ctx, ns); err != nil {
			return err
		}
	}
	for name, phase := range map[string]authmeshv1alpha1.TenantPhase{"darmist1": authmeshv1alpha1.TenantPhaseReady, "slow": authmeshv1alpha1.TenantPhaseProvisioning} {
		t := &authmeshv1alpha1.Tenant{ObjectMeta: metav1.ObjectMeta{Name: name}}
		if err := c.Create(ctx, t); err != nil {
			return err
		}
		t.Status.Phase = phase
		if err := c.Status().Update(ctx, t); err != nil {
			return err
		}
	}
	return nil
}

// waitForInjection waits until the API server calls the webhook: until a dry-run creation of
// an opted-in pod comes back injected. (The configuration exists before the API server's
// admission plugin has seen it, and the webhook server starts with the manager.)
func waitForInjection(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, waitTimeout)
	defer cancel()
	var last error
	for {
		pod := testPod("probe", map[string]string{AnnotationTenant: "*"}, true)
		err := apiServer.Client.Create(ctx, pod, client.DryRunAll)
		if err == nil && len(pod.Spec.InitContainers) == 1 {
			return nil
		}
		last = err
		select {
		case <-ctx.Done():
			return fmt.Errorf("the webhook never injected a pod: %w", errors.Join(last, ctx.Err()))
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// testPod is an app pod with a named port and an HTTP probe on it, in namespace shop unless
// changed; optIn adds the pod label.
func testPod(name string, annotations map[string]string, optIn bool) *corev1.Pod {
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "shop", Annotations: annotations, Labels: map[string]string{"app": name}},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{
			Name:  "app",
			Image: "example/app:1",
			Ports: []corev1.ContainerPort{{Name: "http", ContainerPort: 8080}},
			LivenessProbe: &corev1.Probe{ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{
				Path: "/healthz", Port: intOrName("http"),
			}}},
		}}},
	}
	if optIn {
		pod.Labels[LabelInject] = InjectPodEnabled
	}
	return pod
}
