package controllers

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	clocktesting "k8s.io/utils/clock/testing"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	authmeshv1alpha1 "github.com/authmesh/authmesh/api/v1alpha1"
	"github.com/authmesh/authmesh/internal/testenv"
)

// The package's tests share one API server, one dev database and one running manager whose
// Tenant reconciler reads time from fakeClock. Tests run one at a time and each deletes the
// Tenants it made.
var (
	apiServer  *testenv.APIServer
	mongoDB    *testenv.Mongo
	fakeClock  *clocktesting.FakeClock
	calls      *countingClient // the reconciler's client: counts its reads and writes
	reconciler *TenantReconciler
	metrics    *Metrics
)

const (
	testNamespace   = "authmesh-system"
	testAuthURL     = "https://auth.example.test/"
	recheckInterval = time.Second
	waitTimeout     = 60 * time.Second
)

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	var err error
	if apiServer, err = testenv.StartAPIServer(testenv.APIServerOptions{}); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer apiServer.Stop()
	if mongoDB, err = testenv.StartMongo(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer mongoDB.Stop()

	logger := logr.Discard()
	if os.Getenv("AUTHMESH_TEST_LOG") != "" { // the manager's and reconciler's log, for debugging a test
		logger = logr.FromSlogHandler(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: testNamespace}}
	if err := apiServer.Client.Create(ctx, ns); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	mgr, err := ctrl.NewManager(apiServer.Config, ctrl.Options{
		Scheme:                 apiServer.Scheme,
		Logger:                 logger,
		Metrics:                metricsserver.Options{BindAddress: "0"},
		HealthProbeBindAddress: "0",
		Cache: cache.Options{ByObject: map[client.Object]cache.ByObject{
			&corev1.Secret{}: {Namespaces: map[string]cache.Config{testNamespace: {}}},
		}},
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if metrics, err = NewMetrics(prometheus.NewRegistry(), mgr.GetCache()); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	fakeClock = clocktesting.NewFakeClock(time.Now())
	calls = newCountingClient(mgr.GetClient())
	mongoClients := NewMongoClients(time.Second)
	defer mongoClients.Close(context.Background())
	reconciler = &TenantReconciler{
		Client:           calls,
		APIReader:        mgr.GetAPIReader(),
		Recorder:         mgr.GetEventRecorder("authmesh-controller"),
		Mongo:            mongoClients,
		Metrics:          metrics,
		Clock:            fakeClock,
		Namespace:        testNamespace,
		AuthServerURL:    testAuthURL,
		PlatformMongoURI: mongoDB.URI,
		OperationTimeout: 20 * time.Second,
		RecheckInterval:  recheckInterval,
	}
	if err := reconciler.SetupWithManager(mgr); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	done := make(chan error, 1)
	go func() { done <- mgr.Start(ctx) }()
	code := m.Run()
	cancel()
	if err := <-done; err != nil {
		fmt.Fprintln(os.Stderr, "manager:", err)
		return 1
	}
	return code
}

// countingClient counts, per object, the reconciler's Gets of Tenants (one per reconcile) and
// every write it attempts.
type countingClient struct {
	client.Client
	mu     sync.Mutex
	gets   map[string]int
	writes map[string]int
}

func newCountingClient(c client.Client) *countingClient {
	return &countingClient{Client: c, gets: map[string]int{}, writes: map[string]int{}}
}

func objectKey(obj client.Object) string {
	return fmt.Sprintf("%T %s/%s", obj, obj.GetNamespace(), obj.GetName())
}

func (c *countingClient) wrote(obj client.Object, what string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.writes[objectKey(obj)+what]++
}

// tenantGets is how many reconciles of the named Tenant have started.
func (c *countingClient) tenantGets(name string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.gets[name]
}

// writesTo sums the writes to the Tenant and to its two Secrets.
func (c *countingClient) writesTo(tenant string) map[string]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := map[string]int{}
	for _, key := range []string{
		objectKey(&authmeshv1alpha1.Tenant{ObjectMeta: metav1.ObjectMeta{Name: tenant}}),
		objectKey(&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: testNamespace, Name: DBSecretName(tenant)}}),
		objectKey(&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: testNamespace, Name: KeysSecretName(tenant)}}),
	} {
		for _, what := range []string{"", " status"} {
			if n := c.writes[key+what]; n > 0 {
				out[key+what] = n
			}
		}
	}
	return out
}

func (c *countingClient) Get(ctx context.Context, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
	if _, ok := obj.(*authmeshv1alpha1.Tenant); ok {
		c.mu.Lock()
		c.gets[key.Name]++
		c.mu.Unlock()
	}
	return c.Client.Get(ctx, key, obj, opts...)
}

func (c *countingClient) Create(ctx context.Context, obj client.Object, opts ...client.CreateOption) error {
	c.wrote(obj, "")
	return c.Client.Create(ctx, obj, opts...)
}

func (c *countingClient) Update(ctx context.Context, obj client.Object, opts ...client.UpdateOption) error {
	c.wrote(obj, "")
	return c.Client.Update(ctx, obj, opts...)
}

func (c *countingClient) Patch(ctx context.Context, obj client.Object, patch client.Patch, opts ...client.PatchOption) error {
	c.wrote(obj, "")
	return c.Client.Patch(ctx, obj, patch, opts...)
}

func (c *countingClient) Delete(ctx context.Context, obj client.Object, opts ...client.DeleteOption) error {
	c.wrote(obj, "")
	return c.Client.Delete(ctx, obj, opts...)
}

func (c *countingClient) Status() client.SubResourceWriter {
	return &countingStatus{SubResourceWriter: c.Client.Status(), c: c}
}

type countingStatus struct {
	client.SubResourceWriter
	c *countingClient
}

func (s *countingStatus) Update(ctx context.Context, obj client.Object, opts ...client.SubResourceUpdateOption) error {
	s.c.wrote(obj, " status")
	return s.SubResourceWriter.Update(ctx, obj, opts...)
}

func (s *countingStatus) Patch(ctx context.Context, obj client.Object, patch client.Patch, opts ...client.SubResourcePatchOption) error {
	s.c.wrote(obj, " status")
	return s.SubResourceWriter.Patch(ctx, obj, patch, opts...)
}

// ---- helpers ----------------------------------------------------------------------------------

func uniqueName(prefix string) string {
	b := make([]byte, 3)
	_, _ = rand.Read(b)
	return prefix + "-" + hex.EncodeToString(b)
}

// newTenant returns a Tenant with the API server's defaults to come, changed by mutate.
func newTenant(name string, mutate ...func(*authmeshv1alpha1.Tenant)) *authmeshv1alpha1.Tenant {
	t := &authmeshv1alpha1.Tenant{ObjectMeta: metav1.ObjectMeta{Name: name}}
	for _, f := range mutate {
		f(t)
	}
	return t
}

// createTenant creates t and, when the test ends, deletes it with the Delete policy and waits
// until it is gone, so no test leaves a Tenant (or its database) behind.
func createTenant(t *testing.T, tn *authmeshv1alpha1.Tenant) {
	t.Helper()
	if err := apiServer.Client.Create(t.Context(), tn); err != nil {
		t.Fatalf("creating Tenant %s: %v", tn.Name, err)
	}
	t.Cleanup(func() { deleteTenantForGood(t, tn.Name) })
}

func deleteTenantForGood(t *testing.T, name string) {
	ctx := context.Background()
	tn := &authmeshv1alpha1.Tenant{ObjectMeta: metav1.ObjectMeta{Name: name}}
	patch := client.RawPatch(types.MergePatchType, []byte(`{"spec":{"deletionPolicy":"Delete"}}`))
	if err := apiServer.Client.Patch(ctx, tn, patch); apierrors.IsNotFound(err) {
		return
	} else if err != nil {
		t.Errorf("cleanup: setting deletionPolicy Delete on %s: %v", name, err)
	}
	if err := apiServer.Client.Delete(ctx, tn); err != nil && !apierrors.IsNotFound(err) {
		t.Errorf("cleanup: deleting Tenant %s: %v", name, err)
	}
	waitGone(t, tn)
}

// eventually polls check until it returns nil, failing the test with its last error when
// waitTimeout passes.
func eventually(t *testing.T, what string, check func() error) {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for {
		err := check()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: still not so after %s: %v", what, waitTimeout, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func getTenant(t *testing.T, name string) *authmeshv1alpha1.Tenant {
	t.Helper()
	var tn authmeshv1alpha1.Tenant
	if err := apiServer.Client.Get(t.Context(), client.ObjectKey{Name: name}, &tn); err != nil {
		t.Fatalf("reading Tenant %s: %v", name, err)
	}
	return &tn
}

// waitTenant waits until check accepts the Tenant, and returns it.
func waitTenant(t *testing.T, name, what string, check func(*authmeshv1alpha1.Tenant) error) *authmeshv1alpha1.Tenant {
	t.Helper()
	var tn authmeshv1alpha1.Tenant
	eventually(t, fmt.Sprintf("Tenant %s: %s", name, what), func() error {
		if err := apiServer.Client.Get(t.Context(), client.ObjectKey{Name: name}, &tn); err != nil {
			return err
		}
		return check(&tn)
	})
	return &tn
}

// isReady accepts a Tenant whose current generation is Ready.
func isReady(tn *authmeshv1alpha1.Tenant) error {
	c := meta.FindStatusCondition(tn.Status.Conditions, ConditionReady)
	if tn.Status.Phase != authmeshv1alpha1.TenantPhaseReady || c == nil || c.Status != metav1.ConditionTrue ||
		tn.Status.ObservedGeneration != tn.Generation {
		return fmt.Errorf("phase %q, observedGeneration %d of %d, conditions %+v", tn.Status.Phase, tn.Status.ObservedGeneration, tn.Generation, tn.Status.Conditions)
	}
	return nil
}

// hasCondition returns a check for a condition's status and reason.
func hasCondition(typ string, status metav1.ConditionStatus, reason string) func(*authmeshv1alpha1.Tenant) error {
	return func(tn *authmeshv1alpha1.Tenant) error {
		c := meta.FindStatusCondition(tn.Status.Conditions, typ)
		if c == nil || c.Status != status || c.Reason != reason {
			return fmt.Errorf("condition %s = %+v, want status %s reason %s", typ, c, status, reason)
		}
		return nil
	}
}

func waitReady(t *testing.T, name string) *authmeshv1alpha1.Tenant {
	t.Helper()
	return waitTenant(t, name, "Ready", isReady)
}

func waitGone(t *testing.T, obj client.Object) {
	t.Helper()
	eventually(t, fmt.Sprintf("%s is gone", objectKey(obj)), func() error {
		err := apiServer.Client.Get(context.Background(), client.ObjectKeyFromObject(obj), obj)
		if apierrors.IsNotFound(err) {
			return nil
		}
		if err != nil {
			return err
		}
		return fmt.Errorf("still there (finalizers %v)", obj.GetFinalizers())
	})
}

// getSecret reads a Secret of the controller's namespace; nil when it does not exist.
func getSecret(t *testing.T, name string) *corev1.Secret {
	t.Helper()
	var s corev1.Secret
	err := apiServer.Client.Get(t.Context(), client.ObjectKey{Namespace: testNamespace, Name: name}, &s)
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		t.Fatalf("reading Secret %s: %v", name, err)
	}
	return &s
}

// waitReconciles waits until the reconciler has started n more reconciles of the Tenant.
func waitReconciles(t *testing.T, name string, n int) {
	t.Helper()
	target := calls.tenantGets(name) + n
	eventually(t, fmt.Sprintf("%d more reconciles of %s", n, name), func() error {
		if got := calls.tenantGets(name); got < target {
			return fmt.Errorf("%d of %d", got, target)
		}
		return nil
	})
}

// waitEvent waits for an Event about the Tenant with the given type and reason.
func waitEvent(t *testing.T, tenant, eventType, reason string) eventsv1.Event {
	t.Helper()
	var found eventsv1.Event
	eventually(t, fmt.Sprintf("a %s Event %s about Tenant %s", eventType, reason, tenant), func() error {
		var list eventsv1.EventList
		if err := apiServer.Client.List(t.Context(), &list); err != nil {
			return err
		}
		var seen []string
		for _, e := range list.Items {
			if e.Regarding.Kind != "Tenant" || e.Regarding.Name != tenant {
				continue
			}
			if e.Type == eventType && e.Reason == reason {
				found = e
				return nil
			}
			seen = append(seen, e.Type+"/"+e.Reason)
		}
		return fmt.Errorf("seen %v", seen)
	})
	return found
}
