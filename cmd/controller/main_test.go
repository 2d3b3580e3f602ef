package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	"sigs.k8s.io/yaml"

	authmeshv1alpha1 "github.com/authmesh/authmesh/api/v1alpha1"
	"github.com/authmesh/authmesh/internal/testenv"
)

// TestRunServesProbesMetricsAndReconciles runs the controller as main does, against a real API
// server and the dev database: it takes the leader-election lease, answers /readyz, brings a
// Tenant to Ready, exports the authmesh metrics beside controller-runtime's, and stops cleanly
// when its context ends.
func TestRunServesProbesMetricsAndReconciles(t *testing.T) {
	api, err := testenv.StartAPIServer(testenv.APIServerOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer api.Stop()
	db, err := testenv.StartMongo()
	if err != nil {
		t.Fatal(err)
	}
	defer db.Stop()
	ctx := t.Context()

	const ns = "authmesh-test"
	if err := api.Client.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil {
		t.Fatal(err)
	}
	user, err := api.Env.AddUser(envtest.User{Name: "controller", Groups: []string{"system:masters"}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	kubeconfig, err := user.KubeConfig()
	if err != nil {
		t.Fatal(err)
	}
	kubeconfigPath := filepath.Join(t.TempDir(), "kubeconfig")
	if err := os.WriteFile(kubeconfigPath, kubeconfig, 0o600); err != nil {
		t.Fatal(err)
	}
	metricsAddr, probeAddr, webhookAddr := freeAddr(t), freeAddr(t), freeAddr(t)
	_, webhookPort, _ := net.SplitHostPort(webhookAddr)

	// The injection webhook's configuration, as installed: the manager patches its caBundle.
	root, err := testenv.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	manifest, err := os.ReadFile(filepath.Join(root, "config", "webhook", "manifests.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var webhookConfig admissionregistrationv1.MutatingWebhookConfiguration
	if err := yaml.Unmarshal(manifest, &webhookConfig); err != nil {
		t.Fatal(err)
	}
	if err := api.Client.Create(ctx, &webhookConfig); err != nil {
		t.Fatal(err)
	}

	runCtx, stop := context.WithCancel(ctx)
	var runErr error
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		runErr = run(runCtx, []string{
			"-kubeconfig", kubeconfigPath,
			"-namespace", ns,
			"-auth-server-url", "https://auth.example.test",
			"-mongodb-uri", db.URI,
			"-mongodb-timeout", "2s",
			"-metrics-bind-address", metricsAddr,
			"-health-probe-bind-address", probeAddr,
			"-webhook-port", webhookPort,
			"-sidecar-feed-url", "http://authmesh-authserver.authmesh-system.svc:3503",
		})
	}()
	defer func() {
		endedEarly := false // then its error is reported where it was seen
		select {
		case <-finished:
			endedEarly = true
		default:
		}
		stop()
		select {
		case <-finished:
			if runErr != nil && !endedEarly {
				t.Errorf("run returned %v after its context ended; want nil", runErr)
			}
		case <-time.After(30 * time.Second):
			t.Error("run did not return within 30s of its context ending")
		}
	}()

	poll(t, "/readyz answers 200", func() error {
		select {
		case <-finished:
			t.Fatalf("run returned early: %v", runErr)
		default:
		}
		_, err := get("http://" + probeAddr + "/readyz")
		return err
	})
	poll(t, "the leader-election lease is held", func() error {
		var lease coordinationv1.Lease
		if err := api.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: "authmesh-controller.authmesh.dev"}, &lease); err != nil {
			return err
		}
		if lease.Spec.HolderIdentity == nil || *lease.Spec.HolderIdentity == "" {
			return fmt.Errorf("no holder")
		}
		return nil
	})

	poll(t, "the webhook configuration carries the manager's CA", func() error {
		if err := api.Client.Get(ctx, client.ObjectKeyFromObject(&webhookConfig), &webhookConfig); err != nil {
			return err
		}
		for _, w := range webhookConfig.Webhooks {
			if len(w.ClientConfig.CABundle) == 0 {
				return fmt.Errorf("webhook %s has no caBundle", w.Name)
			}
		}
		return nil
	})

	tenant := &authmeshv1alpha1.Tenant{ObjectMeta: metav1.ObjectMeta{Name: "wired"}}
	if err := api.Client.Create(ctx, tenant); err != nil {
		t.Fatal(err)
	}
	poll(t, "the Tenant is Ready", func() error {
		if err := api.Client.Get(ctx, client.ObjectKeyFromObject(tenant), tenant); err != nil {
			return err
		}
		if tenant.Status.Phase != authmeshv1alpha1.TenantPhaseReady {
			return fmt.Errorf("phase %q, conditions %+v", tenant.Status.Phase, tenant.Status.Conditions)
		}
		return nil
	})
	if tenant.Status.Issuer != "https://auth.example.test/t/wired" {
		t.Errorf("issuer = %q", tenant.Status.Issuer)
	}
	poll(t, "/metrics exports the controller's metrics", func() error {
		body, err := get("http://" + metricsAddr + "/metrics")
		if err != nil {
			return err
		}
		for _, want := range []string{
			`authmesh_controller_tenants{phase="Ready"} 1`,
			`authmesh_controller_key_rotations_total{reason="scheduled"} 0`,
			`controller_runtime_reconcile_total{controller="tenant",result="success"}`,
		} {
			if !strings.Contains(body, want) {
				return fmt.Errorf("no %s", want)
			}
		}
		return nil
	})
}

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

func get(url string) (string, error) {
	resp, err := http.Get(url)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("%s: %s", resp.Status, body)
	}
	return string(body), err
}

func poll(t *testing.T, what string, check func() error) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		err := check()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within 60s: %v", what, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
