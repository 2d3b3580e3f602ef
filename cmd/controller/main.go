// Command controller runs authmesh's controller manager: the Tenant reconciler (see package
// controllers), with leader election, /healthz and /readyz on :8081 and Prometheus metrics on
// :8080. It only wires: flags -> options -> validate -> manager. Run with -h for the flags.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/config"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
	"sigs.k8s.io/controller-runtime/pkg/webhook"

	authmeshv1alpha1 "github.com/authmesh/authmesh/api/v1alpha1"
	"github.com/authmesh/authmesh/controllers"
	"github.com/authmesh/authmesh/controllers/injection"
	"github.com/authmesh/authmesh/controllers/webhookcert"
	"github.com/authmesh/authmesh/internal/version"
)

// The leader-election lease lives in the controller's namespace, and leader election records
// its Events there (config/rbac grants both there).
// +kubebuilder:rbac:groups=coordination.k8s.io,namespace=authmesh-system,resources=leases,verbs=get;list;watch;create;update;patch;delete
// +kubebuilder:rbac:groups="",namespace=authmesh-system,resources=events,verbs=create;patch

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:])
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "controller:", err)
		os.Exit(1)
	}
}

// run serves until ctx ends (SIGINT or SIGTERM in main).
func run(ctx context.Context, args []string) error {
	var opts options
	fs := flag.NewFlagSet("controller", flag.ContinueOnError)
	opts.addFlags(fs)
	config.RegisterFlags(fs) // -kubeconfig, for running outside a cluster
	showVersion := fs.Bool("version", false, "print the version and exit")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	if *showVersion {
		fmt.Println(version.String("controller"))
		return nil
	}
	if err := opts.validate(); err != nil {
		return fmt.Errorf("invalid configuration:\n%w", err)
	}

	log := logr.FromSlogHandler(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: slog.Level(-opts.Verbosity)}))
	ctrl.SetLogger(log)

	scheme := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		return err
	}
	if err := authmeshv1alpha1.AddToScheme(scheme); err != nil {
		return err
	}
	cfg, err := ctrl.GetConfig()
	if err != nil {
		return fmt.Errorf("finding the Kubernetes API: %w", err)
	}
	var rotator *webhookcert.Rotator
	webhookOpts := webhook.Options{Port: opts.WebhookPort, CertDir: opts.WebhookCertDir}
	if opts.WebhookPort > 0 && opts.WebhookSelfSigned {
		if rotator, err = webhookcert.New(opts.webhookCertOptions()); err != nil {
			return err
		}
		webhookOpts.TLSOpts = rotator.TLSOpts()
	}
	mgr, err := ctrl.NewManager(cfg, ctrl.Options{
		WebhookServer:                 webhook.NewServer(webhookOpts),
		Scheme:                        scheme,
		Metrics:                       metricsserver.Options{BindAddress: opts.MetricsAddr},
		HealthProbeBindAddress:        opts.ProbeAddr,
		LeaderElection:                opts.LeaderElect,
		LeaderElectionID:              opts.LeaderElectionID,
		LeaderElectionNamespace:       opts.Namespace,
		LeaderElectionReleaseOnCancel: true,
		// Secrets are read and watched in the controller's namespace only.
		Cache: cache.Options{ByObject: map[client.Object]cache.ByObject{
			&corev1.Secret{}: {Namespaces: map[string]cache.Config{opts.Namespace: {}}},
		}},
	})
	if err != nil {
		return fmt.Errorf("creating the manager: %w", err)
	}
	if err := mgr.AddHealthzCheck("ping", healthz.Ping); err != nil {
		return err
	}
	if err := mgr.AddReadyzCheck("ping", healthz.Ping); err != nil {
		return err
	}

	metrics, err := controllers.NewMetrics(ctrlmetrics.Registry, mgr.GetCache())
	if err != nil {
		return err
	}
	mongo := controllers.NewMongoClients(opts.MongoTimeout)
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = mongo.Close(ctx)
	}()
	tenants := &controllers.TenantReconciler{
		Client:                 mgr.GetClient(),
		APIReader:              mgr.GetAPIReader(),
		Recorder:               mgr.GetEventRecorder("authmesh-controller"),
		Mongo:                  mongo,
		Metrics:                metrics,
		Clock:                  clock.RealClock{},
		Namespace:              opts.Namespace,
		AuthServerURL:          opts.AuthServerURL,
		PlatformMongoURI:       opts.MongoURI,
		PlatformMongoURISecret: opts.MongoURISecret,
		OperationTimeout:       opts.OperationTimeout,
		RecheckInterval:        opts.RecheckInterval,
		MaxConcurrent:          opts.MaxConcurrent,
	}
	if err := tenants.SetupWithManager(mgr); err != nil {
		return fmt.Errorf("setting up the Tenant controller: %w", err)
	}
	if opts.WebhookPort > 0 {
		if rotator != nil {
			if err := rotator.SetupWithManager(mgr); err != nil {
				return fmt.Errorf("setting up the webhook certificates: %w", err)
			}
			if err := mgr.AddReadyzCheck("webhook-certificate", rotator.ReadyCheck()); err != nil {
				return err
			}
		}
		if err := mgr.AddReadyzCheck("webhook", mgr.GetWebhookServer().StartedChecker()); err != nil {
			return err
		}
		injOpts, err := opts.injectionOptions()
		if err != nil {
			return err
		}
		if _, err := injection.SetupWithManager(mgr, injOpts); err != nil {
			return fmt.Errorf("setting up the sidecar injector: %w", err)
		}
	}

	log.Info("starting", "namespace", opts.Namespace, "authServerURL", opts.AuthServerURL, "leaderElect", opts.LeaderElect)
	return mgr.Start(ctx)
}
