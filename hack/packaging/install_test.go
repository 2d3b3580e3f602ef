package packaging

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/util/wait"
	"sigs.k8s.io/controller-runtime/pkg/client"

	authmeshv1alpha1 "github.com/authmesh/authmesh/api/v1alpha1"
)

// TestKindInstallPath runs the README's install path minus kind itself: hack/kind.sh deploy and
// demo, the very steps `make kind-deploy` and `make kind-demo` run, against envtest's API server
// (real helm upgrade --install, real kubectl apply). Without a kubelet nothing starts, so the
// steps skip their waits (KIND_WAIT=false); the test then checks what a cluster would now run.
// It has an API server of its own, as a fresh kind cluster would be.
func TestKindInstallPath(t *testing.T) {
	ctx := context.Background()
	kind, err := startCluster()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(kind.stop)
	// As on a new cluster, the chart installs the CRD: remove the one envtest installed.
	deleteTenantCRD(t, kind)

	env := []string{
		"KUBECONFIG=" + kind.kubeconfig,
		"KUBE_CONTEXT=" + kind.kubeContext,
		"KIND_WAIT=false",
		"HELM=" + helmBin(t),
		"KUBECTL=" + kubectlBin(t),
	}
	notes := string(command(t, env, "hack/kind.sh", "deploy"))
	for _, want := range []string{"NOTES:", "--for=condition=Available", "kubectl wait --for=condition=Ready tenant/", "authmesh.dev/inject"} {
		if !strings.Contains(notes, want) {
			t.Errorf("helm's NOTES do not say %q; kind.sh deploy printed:\n%s", want, notes)
		}
	}
	t.Logf("kind.sh deploy printed:\n%s", notes)
	out := string(command(t, env, "hack/kind.sh", "demo"))
	if !strings.Contains(out, "port-forward svc/demo-app") {
		t.Errorf("kind.sh demo did not say how to reach the demo app; it said:\n%s", out)
	}
	// With a kubelet and the controller, the Deployments would become Available and the
	// Tenants Ready; say so in their status, and run both steps again, now waiting as on kind:
	// every command of the two steps has then run. The second deploy is a helm upgrade.
	markReady(t, kind)
	waitEnv := append(slices.Clone(env), "KIND_WAIT=true") // the last value of a variable wins
	command(t, waitEnv, "hack/kind.sh", "deploy")
	command(t, waitEnv, "hack/kind.sh", "demo")
	if status := string(command(t, env, helmBin(t), "--kube-context", kind.kubeContext, "status", "authmesh", "-n", releaseNS)); !strings.Contains(status, "STATUS: deployed") || !strings.Contains(status, "REVISION: 2") {
		t.Errorf("helm status after two deploys:\n%s", status)
	}

	c := kind.Client
	for _, name := range []string{"authmesh-controller", "authmesh-authserver", "authmesh-devdb", "authmesh-devmail"} {
		var d appsv1.Deployment
		if err := c.Get(ctx, client.ObjectKey{Namespace: releaseNS, Name: name}, &d); err != nil {
			t.Errorf("Deployment %s/%s: %v", releaseNS, name, err)
		}
	}
	var auth appsv1.Deployment
	if err := c.Get(ctx, client.ObjectKey{Namespace: releaseNS, Name: "authmesh-authserver"}, &auth); err == nil {
		args := strings.Join(auth.Spec.Template.Spec.Containers[0].Args, " ")
		for _, want := range []string{"-public-url=http://localhost:3502", "-smtp-host=authmesh-devmail.authmesh-system.svc"} {
			if !strings.Contains(args, want) {
				t.Errorf("the auth server's args %q lack %q", args, want)
			}
		}
	}

	var mongo corev1.Secret
	if err := c.Get(ctx, client.ObjectKey{Namespace: releaseNS, Name: "authmesh-mongodb"}, &mongo); err != nil {
		t.Errorf("the platform MongoDB Secret: %v", err)
	} else if got := string(mongo.Data["uri"]); got != "mongodb://authmesh-devdb.authmesh-system.svc:27017/" {
		t.Errorf("the platform MongoDB Secret's uri is %q; want the dev database's Service", got)
	}

	wh := &unstructured.Unstructured{}
	wh.SetAPIVersion("admissionregistration.k8s.io/v1")
	wh.SetKind("MutatingWebhookConfiguration")
	if err := c.Get(ctx, client.ObjectKey{Name: "authmesh-sidecar-injector"}, wh); err != nil {
		t.Errorf("the webhook configuration: %v", err)
	}

	for _, name := range []string{"darmist1", "acme2"} {
		var tn authmeshv1alpha1.Tenant
		if err := c.Get(ctx, client.ObjectKey{Name: name}, &tn); err != nil {
			t.Errorf("Tenant %s: %v", name, err)
		}
	}

	var demo appsv1.Deployment
	if err := c.Get(ctx, client.ObjectKey{Namespace: "default", Name: "demo-app"}, &demo); err != nil {
		t.Fatalf("the demo app: %v", err)
	}
	if got := demo.Spec.Template.Labels["authmesh.dev/inject"]; got != "true" {
		t.Errorf("the demo app's pods are labelled authmesh.dev/inject=%q; want \"true\"", got)
	}
	var svc corev1.Service
	if err := c.Get(ctx, client.ObjectKey{Namespace: "default", Name: "demo-app"}, &svc); err != nil {
		t.Errorf("the demo app's Service: %v", err)
	} else if len(svc.Spec.Ports) != 1 || svc.Spec.Ports[0].TargetPort.IntValue() != 15080 {
		t.Errorf("the demo app's Service ports %v; want one, to the sidecar's 15080", svc.Spec.Ports)
	}
	var np networkingv1.NetworkPolicy
	if err := c.Get(ctx, client.ObjectKey{Namespace: "default", Name: "demo-app-sidecar-only"}, &np); err != nil {
		t.Errorf("the demo app's NetworkPolicy: %v", err)
	} else if len(np.Spec.Ingress) != 1 || len(np.Spec.Ingress[0].Ports) != 1 || np.Spec.Ingress[0].Ports[0].Port.IntValue() != 15080 {
		t.Errorf("the demo app's NetworkPolicy admits %v; want only the sidecar's port 15080", np.Spec.Ingress)
	}
}

// markReady sets what the kubelet and the controller would: every Deployment Available, every
// Tenant Ready.
func markReady(t *testing.T, c *cluster) {
	t.Helper()
	ctx := context.Background()
	now := metav1.Now()
	var deployments appsv1.DeploymentList
	if err := c.Client.List(ctx, &deployments); err != nil {
		t.Fatal(err)
	}
	for _, d := range deployments.Items {
		d.Status.ObservedGeneration = d.Generation
		d.Status.Replicas, d.Status.ReadyReplicas, d.Status.AvailableReplicas, d.Status.UpdatedReplicas = 1, 1, 1, 1
		d.Status.Conditions = []appsv1.DeploymentCondition{{Type: appsv1.DeploymentAvailable, Status: corev1.ConditionTrue,
			Reason: "MinimumReplicasAvailable", LastUpdateTime: now, LastTransitionTime: now}}
		if err := c.Client.Status().Update(ctx, &d); err != nil {
			t.Fatalf("marking Deployment %s/%s available: %v", d.Namespace, d.Name, err)
		}
	}
	var tenants authmeshv1alpha1.TenantList
	if err := c.Client.List(ctx, &tenants); err != nil {
		t.Fatal(err)
	}
	for _, tn := range tenants.Items {
		tn.Status.Phase = authmeshv1alpha1.TenantPhaseReady
		tn.Status.ObservedGeneration = tn.Generation
		tn.Status.Conditions = []metav1.Condition{{Type: "Ready", Status: metav1.ConditionTrue, Reason: "Provisioned",
			Message: "set by the packaging test", LastTransitionTime: now, ObservedGeneration: tn.Generation}}
		if err := c.Client.Status().Update(ctx, &tn); err != nil {
			t.Fatalf("marking Tenant %s ready: %v", tn.Name, err)
		}
	}
}

// deleteTenantCRD deletes the Tenant CRD and waits until it is gone.
func deleteTenantCRD(t *testing.T, c *cluster) {
	t.Helper()
	ctx := context.Background()
	crd := &unstructured.Unstructured{}
	crd.SetAPIVersion("apiextensions.k8s.io/v1")
	crd.SetKind("CustomResourceDefinition")
	crd.SetName("tenants.authmesh.dev")
	if err := c.Client.Delete(ctx, crd); err != nil && !apierrors.IsNotFound(err) {
		t.Fatalf("deleting the Tenant CRD: %v", err)
	}
	err := wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
		err := c.Client.Get(ctx, client.ObjectKey{Name: "tenants.authmesh.dev"}, crd)
		return apierrors.IsNotFound(err), nil
	})
	if err != nil {
		t.Fatalf("the Tenant CRD is still there: %v", err)
	}
}
