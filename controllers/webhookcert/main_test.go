package webhookcert

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	clocktesting "k8s.io/utils/clock/testing"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
	"sigs.k8s.io/controller-runtime/pkg/webhook"

	"github.com/authmesh/authmesh/controllers/injection"
	"github.com/authmesh/authmesh/internal/testenv"
)

// The envtest tests share one API server with config/webhook/manifests.yaml installed (envtest
// points its entries at a local URL) and one manager whose webhook server presents the
// certificate of the running test's Rotator, which reads time from a fake clock and patches the
// caBundle of that configuration. The injector serves the webhook, so the API server calling it
// proves that it trusts the caBundle and the certificate.
var (
	apiServer  *testenv.APIServer
	mgr        ctrl.Manager
	serverAddr string   // host:port of the webhook server
	hosts      []string // the names the webhook server is called by

	// The webhook server presents the certificate of active, the Rotator of the running test,
	// through its TLSOpts.
	active atomic.Pointer[Rotator]
)

const waitTimeout = 30 * time.Second

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

// e2eOptions rotate fast enough that, stepping the fake clock by at most an hour (the
// certificates' backdating), the real API server still accepts what was issued: serving
// certificates last 3 h and are renewed 1 h after issue; the CA lasts 12 h and is renewed after
// 8 h.
func e2eOptions(hosts ...string) Options {
	o := DefaultOptions()
	o.Hosts = hosts
	o.CAValidity, o.CARenewBefore = 12*time.Hour, 4*time.Hour
	o.CertValidity, o.CertRenewBefore = 3*time.Hour, 2*time.Hour
	o.ResyncInterval = 10 * time.Minute
	return o
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
	if os.Getenv("AUTHMESH_TEST_LOG") != "" {
		logger = logr.FromSlogHandler(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	ctrl.SetLogger(logger)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	for _, ns := range []string{"authmesh-system", "shop"} {
		if err := apiServer.Client.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
	}

	wio := apiServer.Env.WebhookInstallOptions
	serverAddr = fmt.Sprintf("%s:%d", wio.LocalServingHost, wio.LocalServingPort)
	hosts = []string{wio.LocalServingHost, "localhost"}
	viaActive := func(c *tls.Config) {
		c.GetCertificate = func(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
			r := active.Load()
			if r == nil {
				return nil, errors.New("no rotator running")
			}
			var cfg tls.Config
			for _, opt := range r.TLSOpts() {
				opt(&cfg)
			}
			return cfg.GetCertificate(hello)
		}
	}
	mgr, err = ctrl.NewManager(apiServer.Config, ctrl.Options{
		Scheme:                 apiServer.Scheme,
		Metrics:                metricsserver.Options{BindAddress: "0"},
		HealthProbeBindAddress: "0",
		Logger:                 logger,
		WebhookServer: webhook.NewServer(webhook.Options{
			Host: wio.LocalServingHost, Port: wio.LocalServingPort, TLSOpts: []func(*tls.Config){viaActive},
		}),
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	injOpts := injection.DefaultOptions()
	injOpts.AuthURL, injOpts.FeedURL = "http://auth.test:3502", "http://auth.test:3503"
	injOpts.Registerer = prometheus.NewRegistry()
	if _, err := injection.SetupWithManager(mgr, injOpts); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	done := make(chan error, 1)
	go func() { done <- mgr.Start(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			fmt.Fprintln(os.Stderr, "manager:", err)
		}
	}()
	return m.Run()
}

// startRotator runs a Rotator with opts and a fake clock set to the real time, from no Secret,
// as the manager would (Start with the manager's clients), until the test ends. The webhook
// server presents its certificate.
func startRotator(t *testing.T, opts Options) (*Rotator, *clocktesting.FakeClock) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	secret := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: opts.Namespace, Name: opts.SecretName}}
	if err := apiServer.Client.Delete(ctx, secret); client.IgnoreNotFound(err) != nil {
		t.Fatal(err)
	}
	clk := clocktesting.NewFakeClock(time.Now())
	opts.Clock = clk
	r, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	r.client, r.reader = mgr.GetClient(), mgr.GetAPIReader()
	done := make(chan error, 1)
	go func() { done <- r.Start(ctx) }()
	active.Store(r)
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("rotator: %v", err)
		}
		active.CompareAndSwap(r, nil)
	})
	return r, clk
}

// createInjectedPod dry-run creates an opted-in pod and checks that it came back injected: the
// API server called the webhook over TLS, trusting the caBundle in the configuration.
func createInjectedPod(ctx context.Context) error {
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "shop", Labels: map[string]string{injection.LabelInject: injection.InjectPodEnabled},
			Annotations: map[string]string{injection.AnnotationTenant: "*"}},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "example/app:1", Ports: []corev1.ContainerPort{{Name: "http", ContainerPort: 8080}}}}},
	}
	if err := apiServer.Client.Create(ctx, pod, client.DryRunAll); err != nil {
		return err
	}
	if len(pod.Spec.InitContainers) != 1 || pod.Spec.InitContainers[0].Name != injection.SidecarName {
		return errors.New("the pod came back without the sidecar")
	}
	return nil
}
