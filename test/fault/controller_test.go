package fault

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	toolscache "k8s.io/client-go/tools/cache"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	authmeshv1alpha1 "github.com/authmesh/authmesh/api/v1alpha1"
	"github.com/authmesh/authmesh/controllers"
	"github.com/authmesh/authmesh/internal/keys"
	"github.com/authmesh/authmesh/internal/tenantdb"
	"github.com/authmesh/authmesh/internal/testenv"
)

const controllerNamespace = "authmesh-system"

// TestControllerKilledMidReconcile applies 100 Tenants, kills the controller process with
// SIGKILL while it is part way through them, starts a new one, and does that again (3 kills;
// 8 with -fault.long; up to 3 more until a kill has caught a Tenant half provisioned), and checks that every Tenant ends Ready and was provisioned
// exactly once: two Secrets each, one signing key each, and a key that existed at a kill is
// the key the Tenant ends with (a key regenerated after a crash would invalidate every token
// it had signed), one finalizer, every index once, and at most one database user.
func TestControllerKilledMidReconcile(t *testing.T) {
	const n = 100
	kills := 3
	if *long {
		kills = 8
	}
	dir := t.TempDir()
	if err := testenv.BuildCommands(dir, "./cmd/controller"); err != nil {
		t.Fatal(err)
	}
	api, err := testenv.StartAPIServer(testenv.APIServerOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = api.Stop() })
	kubeconfig := filepath.Join(dir, "kubeconfig")
	if err := os.WriteFile(kubeconfig, api.Env.KubeConfig, 0o600); err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	if err := api.Client.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: controllerNamespace}}); err != nil {
		t.Fatal(err)
	}
	watch, err := testenv.WatchTenantsReady(ctx, api.Config)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(watch.Stop)

	runs := 0
	startController := func() *testenv.Process {
		runs++
		p, err := testenv.StartProcess("controller", filepath.Join(dir, "controller"), filepath.Join(dir, "controller.log"),
			"-kubeconfig", kubeconfig, "-namespace", controllerNamespace, "-auth-server-url", "http://auth.fault.example",
			"-mongodb-uri", testDB.URI, "-leader-elect=false", "-webhook-port", "0",
			"-metrics-bind-address", "0", "-health-probe-bind-address", "127.0.0.1:0", "-max-concurrent-reconciles", "4")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { p.Stop(10 * time.Second) })
		return p
	}

	// Tenant names unique to this run, as databases live on in the shared dev database.
	prefix := "crash" + strconv.FormatInt(time.Now().UnixNano()%1e6, 36)
	names := make([]string, n)
	for i := range names {
		names[i] = fmt.Sprintf("%s-%d", prefix, i)
	}
	newTenant := func(name string) *authmeshv1alpha1.Tenant {
		tn := &authmeshv1alpha1.Tenant{ObjectMeta: metav1.ObjectMeta{Name: name},
			Spec: authmeshv1alpha1.TenantSpec{Email: authmeshv1alpha1.EmailSpec{From: "no-reply@fault.example"}}}
		i, _ := strconv.Atoi(name[len(prefix)+1:])
		if i%2 == 1 { // half own their database Secret, so both Secret shapes are checked
			tn.Spec.DeletionPolicy = authmeshv1alpha1.DeletionPolicyDelete
		}
		if i%3 == 0 {
			tn.Spec.Tokens.SigningAlgorithm = keys.ES256
		}
		return tn
	}

	// The moment to kill: a Tenant's signing keys were just written, its status not yet.
	halfDone := make(chan string, 1)
	secrets, err := cache.New(api.Config, cache.Options{Scheme: api.Scheme,
		DefaultNamespaces: map[string]cache.Config{controllerNamespace: {}}})
	if err != nil {
		t.Fatal(err)
	}
	informer, err := secrets.GetInformer(ctx, &corev1.Secret{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := informer.AddEventHandler(toolscache.ResourceEventHandlerFuncs{AddFunc: func(obj any) {
		s, ok := obj.(*corev1.Secret)
		if !ok {
			return
		}
		tenant := s.Labels[controllers.LabelTenant]
		if s.Name == controllers.KeysSecretName(tenant) && watch.Ready([]string{tenant}) == 0 {
			select {
			case halfDone <- tenant:
			default:
			}
		}
	}}); err != nil {
		t.Fatal(err)
	}
	go func() { _ = secrets.Start(ctx) }()
	if !secrets.WaitForCacheSync(ctx) {
		t.Fatal("the Secret watch did not sync")
	}

	proc := startController()
	began := time.Now()
	if err := testenv.CreateTenants(ctx, api.Client, names, 8, newTenant); err != nil {
		t.Fatal(err)
	}
	keysAtKill := map[string]string{} // Tenant -> active kid in its Secret at a kill
	caught := 0                       // Tenants found half provisioned at the kills
	// Up to three more kills when none has caught a Tenant half provisioned yet.
	for k := 0; k < kills || (caught == 0 && k < kills+3); k++ {
		// Once a fifth of what is left is Ready, kill when the next Tenant has its keys but
		// not yet its status.
		before := watch.Ready(names)
		target := before + max((n-before)/5, 1)
		eventually(t, 2*time.Minute, fmt.Sprintf("%d Tenants are Ready before kill %d", target, k+1), func() bool {
			return watch.Ready(names) >= target
		})
		select {
		case <-halfDone: // drop a stale sighting
		default:
		}
		select {
		case <-halfDone:
		case <-time.After(10 * time.Second):
			t.Logf("kill %d: no Tenant seen between its keys and its status within 10s; killing anyway", k+1)
		}
		proc.Kill()
		ready := watch.Ready(names)
		if ready == n {
			t.Fatalf("every Tenant was Ready before kill %d: the kill landed after the work", k+1)
		}
		half := recordKeys(t, api.Client, names, keysAtKill)
		caught += half
		t.Logf("kill %d after %s: %d of %d Tenants Ready, %d had Secrets but were not Ready yet",
			k+1, time.Since(began).Round(time.Millisecond), ready, n, half)
		proc = startController()
	}
	if caught == 0 {
		t.Errorf("no kill caught a Tenant half provisioned; the test proved nothing about recovery")
	}
	restarted := time.Now()
	waitCtx, cancel := context.WithTimeout(ctx, 3*time.Minute)
	defer cancel()
	if _, err := watch.Wait(waitCtx, names); err != nil {
		t.Fatalf("%v\ncontroller log:\n%s", err, proc.Tail(30))
	}
	t.Logf("all %d Tenants Ready %s after the last restart (%s in all, %d controller processes)",
		n, time.Since(restarted).Round(time.Millisecond), time.Since(began).Round(time.Millisecond), runs)

	checkProvisionedOnce(t, api.Client, names, keysAtKill)
}

// recordKeys reads, with the controller dead, each Tenant's active kid from its keys Secret
// into kids (first sighting wins), and returns how many Tenants with a Secret of theirs were
// not yet Ready: the ones the kill caught half provisioned.
func recordKeys(t *testing.T, c client.Client, names []string, kids map[string]string) int {
	t.Helper()
	var secrets corev1.SecretList
	if err := c.List(t.Context(), &secrets, client.InNamespace(controllerNamespace)); err != nil {
		t.Fatal(err)
	}
	byName := map[string]*corev1.Secret{}
	for i := range secrets.Items {
		byName[secrets.Items[i].Name] = &secrets.Items[i]
	}
	notReady := 0
	for _, name := range names {
		s := byName[controllers.KeysSecretName(name)]
		if s != nil {
			if _, seen := kids[name]; !seen {
				kids[name] = string(s.Data[keys.SecretKeyActiveKID])
			}
		} else if byName[controllers.DBSecretName(name)] == nil {
			continue
		}
		var tn authmeshv1alpha1.Tenant
		if err := c.Get(t.Context(), client.ObjectKey{Name: name}, &tn); err != nil {
			t.Fatal(err)
		}
		if !testenv.TenantReady(&tn) {
			notReady++
		}
	}
	return notReady
}

// checkProvisionedOnce checks that each Tenant has exactly what one clean provisioning gives.
func checkProvisionedOnce(t *testing.T, c client.Client, names []string, keysAtKill map[string]string) {
	t.Helper()
	ctx := t.Context()
	var secrets corev1.SecretList
	if err := c.List(ctx, &secrets, client.InNamespace(controllerNamespace)); err != nil {
		t.Fatal(err)
	}
	perTenant := map[string][]corev1.Secret{}
	for _, s := range secrets.Items {
		if owner := s.Labels[controllers.LabelTenant]; owner != "" {
			perTenant[owner] = append(perTenant[owner], s)
		}
	}
	for _, name := range names {
		var tn authmeshv1alpha1.Tenant
		if err := c.Get(ctx, client.ObjectKey{Name: name}, &tn); err != nil {
			t.Fatal(err)
		}
		if !testenv.TenantReady(&tn) {
			t.Errorf("%s: not Ready: %+v", name, tn.Status)
			continue
		}
		if !slices.Equal(tn.Finalizers, []string{controllers.Finalizer}) {
			t.Errorf("%s: finalizers %q, want exactly one %s", name, tn.Finalizers, controllers.Finalizer)
		}
		got := []string{}
		for _, s := range perTenant[name] {
			got = append(got, s.Name)
		}
		slices.Sort(got)
		if want := []string{controllers.DBSecretName(name), controllers.KeysSecretName(name)}; !slices.Equal(got, want) {
			t.Errorf("%s: Secrets %q, want exactly %q", name, got, want)
			continue
		}
		for _, s := range perTenant[name] {
			if s.Name == controllers.KeysSecretName(name) {
				checkKeys(t, &tn, &s, keysAtKill[name])
			} else {
				checkDatabase(t, &tn, &s)
			}
		}
	}
}

func checkKeys(t *testing.T, tn *authmeshv1alpha1.Tenant, s *corev1.Secret, kidAtKill string) {
	t.Helper()
	set, err := keys.ParsePrivateSet(s.Data[keys.SecretKeyJWKS], string(s.Data[keys.SecretKeyActiveKID]))
	if err != nil {
		t.Errorf("%s: keys Secret: %v", tn.Name, err)
		return
	}
	if len(set.Keys) != 1 || set.ActiveKID != tn.Status.ActiveKeyID {
		t.Errorf("%s: %d keys, active %s, status.activeKeyID %s; want one key, the one in status", tn.Name, len(set.Keys), set.ActiveKID, tn.Status.ActiveKeyID)
	}
	if kidAtKill != "" && set.ActiveKID != kidAtKill {
		t.Errorf("%s: signing key %s replaced by %s after the kill; tokens it signed would stop verifying", tn.Name, kidAtKill, set.ActiveKID)
	}
	wantAlg := keys.EdDSA
	if tn.Spec.Tokens.SigningAlgorithm == keys.ES256 {
		wantAlg = keys.ES256
	}
	if alg := set.Active().Algorithm; alg != wantAlg {
		t.Errorf("%s: key algorithm %s, want %s", tn.Name, alg, wantAlg)
	}
}

// checkDatabase connects with the Tenant's own Secret, as the auth server does, and checks
// its database holds every index once and at most the one user it was given.
func checkDatabase(t *testing.T, tn *authmeshv1alpha1.Tenant, s *corev1.Secret) {
	t.Helper()
	ctx := t.Context()
	dbName := string(s.Data[controllers.DBSecretDatabase])
	if dbName != tn.Status.DatabaseName || dbName != controllers.DatabasePrefix+tn.Name {
		t.Errorf("%s: Secret database %q, status %q", tn.Name, dbName, tn.Status.DatabaseName)
		return
	}
	owned := len(s.OwnerReferences) == 1 && s.OwnerReferences[0].Name == tn.Name
	if wantOwned := tn.Spec.DeletionPolicy == authmeshv1alpha1.DeletionPolicyDelete; owned != wantOwned {
		t.Errorf("%s: database Secret owned by its Tenant: %v, want %v (deletionPolicy %s)", tn.Name, owned, wantOwned, tn.Spec.DeletionPolicy)
	}
	mc, err := mongo.Connect(options.Client().ApplyURI(string(s.Data[controllers.DBSecretURI])).SetTimeout(10 * time.Second))
	if err != nil {
		t.Errorf("%s: the Secret's connection string: %v", tn.Name, err)
		return
	}
	defer func() { _ = mc.Disconnect(context.Background()) }()
	db := mc.Database(dbName)
	for _, coll := range []string{tenantdb.Users, tenantdb.Identifiers, tenantdb.Sessions, tenantdb.Revocations, tenantdb.Audit} {
		var want []string
		for _, ix := range tenantdb.Indexes {
			if ix.Collection == coll {
				want = append(want, ix.Name)
			}
		}
		cur, err := db.Collection(coll).Indexes().List(ctx)
		if err != nil {
			t.Errorf("%s: listing indexes of %s: %v", tn.Name, coll, err)
			return
		}
		var specs []struct {
			Name string `bson:"name"`
		}
		if err := cur.All(ctx, &specs); err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, sp := range specs {
			if sp.Name != "_id_" {
				got = append(got, sp.Name)
			}
		}
		slices.Sort(got)
		slices.Sort(want)
		if !slices.Equal(got, want) {
			t.Errorf("%s: indexes of %s %q, want %q", tn.Name, coll, got, want)
		}
	}
	c := meta.FindStatusCondition(tn.Status.Conditions, controllers.ConditionDatabaseReady)
	if c == nil || c.Reason != controllers.ReasonDatabaseProvisioned {
		return // the dev database has no user management (SharedCredentials): no user to count
	}
	var res struct {
		Users []bson.M `bson:"users"`
	}
	if err := db.RunCommand(ctx, bson.D{{Key: "usersInfo", Value: 1}}).Decode(&res); err != nil {
		t.Errorf("%s: usersInfo: %v", tn.Name, err)
	} else if len(res.Users) != 1 || res.Users[0]["user"] != string(s.Data[controllers.DBSecretUsername]) {
		t.Errorf("%s: database users %v, want only %s", tn.Name, res.Users, s.Data[controllers.DBSecretUsername])
	}
}
