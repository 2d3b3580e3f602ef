package controllers

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	authmeshv1alpha1 "github.com/authmesh/authmesh/api/v1alpha1"
	"github.com/authmesh/authmesh/internal/keys"
	"github.com/authmesh/authmesh/internal/tenantdb"
	"github.com/authmesh/authmesh/internal/testenv"
)

// TestTenantBecomesReady applies a Tenant with only defaults and checks everything the
// controller promises: status, database with collections and indexes, both Secrets, the
// finalizer, Events and the printer columns.
func TestTenantBecomesReady(t *testing.T) {
	name := uniqueName("ready")
	createTenant(t, newTenant(name))
	tn := waitReady(t, name)
	dbName := "authmesh_" + name

	// Status.
	if tn.Status.DatabaseName != dbName || tn.Status.CredentialsSecret != DBSecretName(name) ||
		tn.Status.SigningKeysSecret != KeysSecretName(name) || tn.Status.Issuer != "https://auth.example.test/t/"+name {
		t.Errorf("status = %+v; want database %s, Secrets %s and %s, issuer https://auth.example.test/t/%s",
			tn.Status, dbName, DBSecretName(name), KeysSecretName(name), name)
	}
	dbReady := meta.FindStatusCondition(tn.Status.Conditions, ConditionDatabaseReady)
	for _, typ := range []string{ConditionDatabaseReady, ConditionSigningKeysReady, ConditionReady} {
		c := meta.FindStatusCondition(tn.Status.Conditions, typ)
		if c == nil || c.Status != metav1.ConditionTrue || c.ObservedGeneration != tn.Generation {
			t.Errorf("condition %s = %+v; want True at generation %d", typ, c, tn.Generation)
		}
	}
	if !slices.Contains(tn.Finalizers, Finalizer) {
		t.Errorf("finalizers = %v; want %s", tn.Finalizers, Finalizer)
	}

	// The database, its collections and indexes.
	db := mongoDB.Client.Database(dbName)
	colls, err := db.ListCollectionNames(t.Context(), bson.D{})
	if err != nil {
		t.Fatal(err)
	}
	for _, ix := range tenantdb.Indexes {
		if !slices.Contains(colls, ix.Collection) {
			t.Errorf("collection %s missing from %s (have %v)", ix.Collection, dbName, colls)
			continue
		}
		specs, err := db.Collection(ix.Collection).Indexes().ListSpecifications(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		if !slices.ContainsFunc(specs, func(s mongo.IndexSpecification) bool { return s.Name == ix.Name }) {
			t.Errorf("index %s.%s missing", ix.Collection, ix.Name)
		}
	}

	// tenant-<name>-db: a usable connection string for the tenant database.
	dbSecret := getSecret(t, DBSecretName(name))
	if dbSecret == nil {
		t.Fatalf("Secret %s missing", DBSecretName(name))
	}
	if got := string(dbSecret.Data[DBSecretDatabase]); got != dbName {
		t.Errorf("%s database = %q, want %q", dbSecret.Name, got, dbName)
	}
	uri := string(dbSecret.Data[DBSecretURI])
	if u, err := url.Parse(uri); err != nil || u.Path != "/"+dbName {
		t.Errorf("%s uri = %q; want a connection string with path /%s", dbSecret.Name, uri, dbName)
	}
	tenantClient, err := mongo.Connect(options.Client().ApplyURI(uri).SetServerSelectionTimeout(5 * time.Second))
	if err != nil {
		t.Fatalf("connecting with the Secret's uri: %v", err)
	}
	defer tenantClient.Disconnect(t.Context())
	if got, err := tenantClient.Database(dbName).ListCollectionNames(t.Context(), bson.D{}); err != nil || !slices.Contains(got, tenantdb.Sessions) {
		t.Errorf("through the Secret's uri: collections %v, err %v; want the tenant's", got, err)
	}
	switch dbReady.Reason {
	case ReasonSharedCredentials: // the dev database: no createUser
		if _, has := dbSecret.Data[DBSecretPassword]; has || !strings.Contains(dbReady.Message, "createUser") {
			t.Errorf("without user management: Secret keys %v, DatabaseReady message %q; want no password and a message naming createUser",
				keysOf(dbSecret.Data), dbReady.Message)
		}
	case ReasonDatabaseProvisioned: // a real MongoDB
		if len(dbSecret.Data[DBSecretUsername]) == 0 || len(dbSecret.Data[DBSecretPassword]) < 32 {
			t.Errorf("with a database user: Secret keys %v; want username and a long password", keysOf(dbSecret.Data))
		}
	default:
		t.Errorf("DatabaseReady reason %q", dbReady.Reason)
	}
	if len(dbSecret.OwnerReferences) != 0 {
		t.Errorf("under Retain, %s has owners %v; want none", dbSecret.Name, dbSecret.OwnerReferences)
	}

	// tenant-<name>-keys: one EdDSA key, active, owned by the Tenant.
	keysSecret := getSecret(t, KeysSecretName(name))
	if keysSecret == nil {
		t.Fatalf("Secret %s missing", KeysSecretName(name))
	}
	set, err := keys.ParsePrivateSet(keysSecret.Data[keys.SecretKeyJWKS], string(keysSecret.Data[keys.SecretKeyActiveKID]))
	if err != nil {
		t.Fatalf("%s: %v", keysSecret.Name, err)
	}
	if len(set.Keys) != 1 || set.ActiveKID != tn.Status.ActiveKeyID || set.Active().Algorithm != keys.EdDSA {
		t.Errorf("key set: %d keys, active %q (%s); want 1 EdDSA key, active %q", len(set.Keys), set.ActiveKID, set.Active().Algorithm, tn.Status.ActiveKeyID)
	}
	if own := metav1.GetControllerOf(keysSecret); own == nil || own.UID != tn.UID || own.Kind != "Tenant" {
		t.Errorf("%s controller = %+v; want the Tenant (uid %s)", keysSecret.Name, own, tn.UID)
	}
	if keysSecret.Labels[LabelTenant] != name || dbSecret.Labels[LabelTenant] != name {
		t.Errorf("labels %v and %v; want %s=%s on both", keysSecret.Labels, dbSecret.Labels, LabelTenant, name)
	}

	waitEvent(t, name, corev1.EventTypeNormal, ReasonReady)

	// kubectl get tenants: the printer columns, through a Table request (what kubectl asks).
	header, row := tableRow(t, name)
	if want := []string{"Name", "Phase", "Database", "Ready", "Email", "Age"}; !slices.Equal(header, want) {
		t.Errorf("columns = %v, want %v", header, want)
	}
	if len(row) != 6 || row[0] != name || row[1] != "Ready" || row[2] != dbName || row[3] != "True" || row[4] != ReasonServerSMTP || row[5] == "" {
		t.Errorf("row = %q; want [%s Ready %s True %s <age>]", row, name, dbName, ReasonServerSMTP)
	}
	// And through the real kubectl binary, when it was built.
	if out, ok := kubectl(t, "get", "tenants", name); ok {
		lines := strings.Split(strings.TrimSpace(out), "\n")
		if len(lines) != 2 || !slices.Equal(strings.Fields(lines[0]), []string{"NAME", "PHASE", "DATABASE", "READY", "AGE"}) ||
			!slices.Equal(strings.Fields(lines[1])[:4], []string{name, "Ready", dbName, "True"}) {
			t.Errorf("kubectl get tenants %s:\n%s", name, out)
		}
	}
}

func keysOf(m map[string][]byte) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// tableRow asks the API server for the Tenant as a Table, as kubectl get does.
func tableRow(t *testing.T, name string) (header, row []string) {
	t.Helper()
	hc, err := rest.HTTPClientFor(apiServer.Config)
	if err != nil {
		t.Fatal(err)
	}
	base, _, err := rest.DefaultServerUrlFor(apiServer.Config)
	if err != nil {
		t.Fatal(err)
	}
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, base.JoinPath("/apis/authmesh.dev/v1alpha1/tenants", name).String(), nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Accept", "application/json;as=Table;v=v1;g=meta.k8s.io")
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	var table metav1.Table
	if err := json.Unmarshal(body, &table); err != nil || len(table.Rows) != 1 {
		t.Fatalf("Table of %s: %v: %s", name, err, body)
	}
	for _, c := range table.ColumnDefinitions {
		header = append(header, c.Name)
	}
	for _, cell := range table.Rows[0].Cells {
		row = append(row, fmt.Sprint(cell))
	}
	return header, row
}

// kubectl runs the kubectl built with the API server, if there is one.
func kubectl(t *testing.T, args ...string) (string, bool) {
	t.Helper()
	path := filepath.Join(apiServer.Env.BinaryAssetsDirectory, "kubectl")
	if _, err := os.Stat(path); err != nil {
		t.Logf("no kubectl in %s; checked the printer columns through the Table API only", apiServer.Env.BinaryAssetsDirectory)
		return "", false
	}
	kubeconfig := filepath.Join(t.TempDir(), "kubeconfig")
	if err := os.WriteFile(kubeconfig, apiServer.Env.KubeConfig, 0o600); err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	cmd := exec.Command(path, append([]string{"--kubeconfig", kubeconfig}, args...)...)
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("kubectl %v: %v: %s", args, err, stderr.String())
	}
	return string(out), true
}

// TestDatabaseNameCannotChangeOnceProvisioned: the CRD refuses moving a provisioned Tenant to
// another database (its data would be orphaned), but accepts naming the same one explicitly.
func TestDatabaseNameCannotChangeOnceProvisioned(t *testing.T) {
	name := uniqueName("frozen")
	createTenant(t, newTenant(name))
	waitReady(t, name)
	err := updateTenant(name, func(tn *authmeshv1alpha1.Tenant) { tn.Spec.Database.Name = "elsewhere" })
	if err == nil || !strings.Contains(err.Error(), "spec.database.name cannot change once the database is provisioned") {
		t.Fatalf("moving the database: err = %v; want it refused with the CEL message", err)
	}
	if err := updateTenant(name, func(tn *authmeshv1alpha1.Tenant) { tn.Spec.Database.Name = "authmesh_" + name }); err != nil {
		t.Fatalf("naming the provisioned database explicitly: %v", err)
	}
}

// TestScheduledRotationKeepsThenRemovesRetiredKey moves the injected clock past the rotation
// interval: a new key signs, the old one stays published for one access-token TTL plus 30 s,
// and then goes.
func TestScheduledRotationKeepsThenRemovesRetiredKey(t *testing.T) {
	name := uniqueName("rotate")
	createTenant(t, newTenant(name, func(tn *authmeshv1alpha1.Tenant) {
		tn.Spec.Tokens.KeyRotationInterval = &metav1.Duration{Duration: time.Hour}
		tn.Spec.Tokens.AccessTokenTTL = &metav1.Duration{Duration: time.Minute}
	}))
	first := waitReady(t, name).Status.ActiveKeyID
	scheduled := testutil.ToFloat64(metrics.keyRotations.WithLabelValues(RotationScheduled))

	// Nothing rotates before the interval has passed.
	fakeClock.Step(time.Hour - time.Second)
	waitReconciles(t, name, 2)
	if set := keySet(t, name); set.ActiveKID != first || len(set.Keys) != 1 {
		t.Fatalf("before the interval: active %s of %d keys; want %s alone", set.ActiveKID, len(set.Keys), first)
	}

	fakeClock.Step(time.Second)
	rotatedAt := fakeClock.Now().UTC().Truncate(time.Second)
	second := waitKeys(t, name, "a new active key with the old one still published", func(set *keys.PrivateSet) error {
		if set.ActiveKID == first || !hasKID(set, first) || len(set.Keys) != 2 {
			return fmt.Errorf("active %s, kids %v", set.ActiveKID, kids(set))
		}
		return nil
	}).ActiveKID
	book := readKeyBook(getSecret(t, KeysSecretName(name)).Annotations)
	if want := map[string]time.Time{first: rotatedAt}; !cmp.Equal(book.Retired, want) || !book.ActiveSince.Equal(rotatedAt) {
		t.Errorf("bookkeeping = %+v; want %s retired and the new key active since %s", book, first, rotatedAt)
	}
	waitTenant(t, name, "status names the new key", func(tn *authmeshv1alpha1.Tenant) error {
		if tn.Status.ActiveKeyID != second {
			return fmt.Errorf("activeKeyID %s, want %s", tn.Status.ActiveKeyID, second)
		}
		return nil
	})
	if got := testutil.ToFloat64(metrics.keyRotations.WithLabelValues(RotationScheduled)); got != scheduled+1 {
		t.Errorf("key_rotations_total{reason=scheduled} = %v, want %v", got, scheduled+1)
	}
	waitEvent(t, name, corev1.EventTypeNormal, ReasonSigningKeyRotated)

	// The retired key stays until one access-token TTL plus the clock skew has passed...
	fakeClock.Step(time.Minute + ClockSkew - time.Second)
	waitReconciles(t, name, 2)
	if set := keySet(t, name); !hasKID(set, first) {
		t.Fatalf("1s before its tokens expire, retired key %s is gone (kids %v)", first, kids(set))
	}
	// ...and then goes.
	fakeClock.Step(time.Second)
	waitKeys(t, name, "the retired key removed", func(set *keys.PrivateSet) error {
		if set.ActiveKID != second || len(set.Keys) != 1 {
			return fmt.Errorf("active %s, kids %v", set.ActiveKID, kids(set))
		}
		return nil
	})
	if ann := getSecret(t, KeysSecretName(name)).Annotations; ann[AnnotationRetiredKeys] != "" {
		t.Errorf("retired-keys annotation %q left after the last retired key went", ann[AnnotationRetiredKeys])
	}
	waitEvent(t, name, corev1.EventTypeNormal, ReasonSigningKeyRemoved)
}

// TestRotateKeysAnnotationRotatesAtOnce: a new value of authmesh.dev/rotate-keys rotates
// immediately, the same value again does nothing, and a change of algorithm rotates too.
func TestRotateKeysAnnotationRotatesAtOnce(t *testing.T) {
	name := uniqueName("rotnow")
	createTenant(t, newTenant(name))
	first := waitReady(t, name).Status.ActiveKeyID
	requested := testutil.ToFloat64(metrics.keyRotations.WithLabelValues(RotationRequested))

	annotate(t, name, AnnotationRotateKeys, "incident-1")
	second := waitKeys(t, name, "rotated on request, old key kept", func(set *keys.PrivateSet) error {
		if set.ActiveKID == first || !hasKID(set, first) {
			return fmt.Errorf("active %s, kids %v", set.ActiveKID, kids(set))
		}
		return nil
	}).ActiveKID
	if got := testutil.ToFloat64(metrics.keyRotations.WithLabelValues(RotationRequested)); got != requested+1 {
		t.Errorf("key_rotations_total{reason=requested} = %v, want %v", got, requested+1)
	}

	// The same request again (another annotation changes, so the Tenant is reconciled) is not
	// a new request.
	annotate(t, name, "example.com/unrelated", "x")
	waitReconciles(t, name, 2)
	if set := keySet(t, name); set.ActiveKID != second {
		t.Fatalf("an unchanged rotate-keys value rotated again: active %s, want %s", set.ActiveKID, second)
	}

	// The retired key goes after the default 15m access-token TTL plus the skew.
	fakeClock.Step(15*time.Minute + ClockSkew)
	waitKeys(t, name, "the retired key removed", func(set *keys.PrivateSet) error {
		if hasKID(set, first) {
			return fmt.Errorf("kids %v", kids(set))
		}
		return nil
	})

	// Changing the algorithm replaces the active key with one of the new algorithm.
	if err := updateTenant(name, func(tn *authmeshv1alpha1.Tenant) {
		tn.Spec.Tokens.SigningAlgorithm = authmeshv1alpha1.SigningAlgorithmES256
	}); err != nil {
		t.Fatal(err)
	}
	waitKeys(t, name, "an ES256 key active", func(set *keys.PrivateSet) error {
		if set.Active().Algorithm != keys.ES256 || !hasKID(set, second) {
			return fmt.Errorf("active %s (%s), kids %v", set.ActiveKID, set.Active().Algorithm, kids(set))
		}
		return nil
	})
}

// updateTenant applies change to the current Tenant and writes it, reading it again when the
// controller's own writes got there first.
func updateTenant(name string, change func(*authmeshv1alpha1.Tenant)) error {
	return testenv.UpdateTenant(context.Background(), apiServer.Client, name, func(tn *authmeshv1alpha1.Tenant) error {
		change(tn)
		return apiServer.Client.Update(context.Background(), tn)
	})
}

func annotate(t *testing.T, name, key, value string) {
	t.Helper()
	patch := fmt.Sprintf(`{"metadata":{"annotations":{%q:%q}}}`, key, value)
	tn := &authmeshv1alpha1.Tenant{ObjectMeta: metav1.ObjectMeta{Name: name}}
	if err := apiServer.Client.Patch(t.Context(), tn, client.RawPatch(types.MergePatchType, []byte(patch))); err != nil {
		t.Fatalf("annotating %s: %v", name, err)
	}
}

func keySet(t *testing.T, tenant string) *keys.PrivateSet {
	t.Helper()
	s := getSecret(t, KeysSecretName(tenant))
	if s == nil {
		t.Fatalf("Secret %s missing", KeysSecretName(tenant))
	}
	set, err := keys.ParsePrivateSet(s.Data[keys.SecretKeyJWKS], string(s.Data[keys.SecretKeyActiveKID]))
	if err != nil {
		t.Fatalf("%s: %v", s.Name, err)
	}
	return set
}

func waitKeys(t *testing.T, tenant, what string, check func(*keys.PrivateSet) error) *keys.PrivateSet {
	t.Helper()
	var set *keys.PrivateSet
	eventually(t, fmt.Sprintf("keys of %s: %s", tenant, what), func() error {
		s := getSecret(t, KeysSecretName(tenant))
		if s == nil {
			return fmt.Errorf("no Secret")
		}
		var err error
		if set, err = keys.ParsePrivateSet(s.Data[keys.SecretKeyJWKS], string(s.Data[keys.SecretKeyActiveKID])); err != nil {
			return err
		}
		return check(set)
	})
	return set
}

func kids(set *keys.PrivateSet) []string {
	var out []string
	for _, k := range set.Keys {
		out = append(out, k.KeyID)
	}
	return out
}

func hasKID(set *keys.PrivateSet, kid string) bool { return slices.Contains(kids(set), kid) }

// TestRetainKeepsDatabaseAndCredentialsForAdoption deletes a Retain Tenant (database, data and
// tenant-<name>-db stay, ownerless; the keys go) and re-creates it (it adopts both).
func TestRetainKeepsDatabaseAndCredentialsForAdoption(t *testing.T) {
	name := uniqueName("retain")
	dbName := "authmesh_" + name
	createTenant(t, newTenant(name)) // Retain is the default
	waitReady(t, name)
	users := mongoDB.Client.Database(dbName).Collection(tenantdb.Users)
	if _, err := users.InsertOne(t.Context(), bson.M{"_id": "u1", "username": "alice"}); err != nil {
		t.Fatal(err)
	}
	before := getSecret(t, DBSecretName(name))

	tn := getTenant(t, name)
	if err := apiServer.Client.Delete(t.Context(), tn); err != nil {
		t.Fatal(err)
	}
	waitGone(t, tn)

	if n, err := users.CountDocuments(t.Context(), bson.M{"_id": "u1"}); err != nil || n != 1 {
		t.Fatalf("after deleting a Retain Tenant: user documents %d (err %v); want the data kept", n, err)
	}
	kept := getSecret(t, DBSecretName(name))
	if kept == nil || kept.UID != before.UID || !cmp.Equal(kept.Data, before.Data) {
		t.Fatalf("Secret %s after deletion = %v; want it kept unchanged", DBSecretName(name), kept)
	}
	if len(kept.OwnerReferences) != 0 {
		t.Errorf("retained Secret still has owners %v", kept.OwnerReferences)
	}
	if s := getSecret(t, KeysSecretName(name)); s != nil {
		t.Errorf("Secret %s survived its Tenant", s.Name)
	}
	waitEvent(t, name, corev1.EventTypeNormal, ReasonDatabaseRetained)

	// A new Tenant of the same name adopts the database and the credentials.
	createTenant(t, newTenant(name))
	again := waitReady(t, name)
	if n, err := users.CountDocuments(t.Context(), bson.M{"_id": "u1"}); err != nil || n != 1 {
		t.Errorf("after re-creating: user documents %d (err %v); want the retained data", n, err)
	}
	adopted := getSecret(t, DBSecretName(name))
	if adopted == nil || adopted.UID != before.UID || !cmp.Equal(adopted.Data, before.Data) {
		t.Errorf("re-created Tenant did not adopt %s as it was: %v", DBSecretName(name), adopted)
	}
	if own := metav1.GetControllerOf(getSecret(t, KeysSecretName(name))); own == nil || own.UID != again.UID {
		t.Errorf("new keys Secret controller = %+v; want the new Tenant %s", own, again.UID)
	}
}

// TestDeletePolicyDropsDatabaseAndSecrets deletes a Delete Tenant: database and both Secrets go.
func TestDeletePolicyDropsDatabaseAndSecrets(t *testing.T) {
	name := uniqueName("delete")
	dbName := "authmesh_" + name
	createTenant(t, newTenant(name, func(tn *authmeshv1alpha1.Tenant) {
		tn.Spec.DeletionPolicy = authmeshv1alpha1.DeletionPolicyDelete
	}))
	tn := waitReady(t, name)
	if own := metav1.GetControllerOf(getSecret(t, DBSecretName(name))); own == nil || own.UID != tn.UID {
		t.Errorf("under Delete, %s controller = %+v; want the Tenant", DBSecretName(name), own)
	}
	if _, err := mongoDB.Client.Database(dbName).Collection(tenantdb.Users).InsertOne(t.Context(), bson.M{"_id": "u1"}); err != nil {
		t.Fatal(err)
	}

	if err := apiServer.Client.Delete(t.Context(), tn); err != nil {
		t.Fatal(err)
	}
	waitGone(t, tn)
	names, err := mongoDB.Client.ListDatabaseNames(t.Context(), bson.D{})
	if err != nil {
		t.Fatal(err)
	}
	if slices.Contains(names, dbName) {
		t.Errorf("database %s survived a Delete Tenant (databases %v)", dbName, names)
	}
	for _, s := range []string{DBSecretName(name), KeysSecretName(name)} {
		if getSecret(t, s) != nil {
			t.Errorf("Secret %s survived a Delete Tenant", s)
		}
	}
	waitEvent(t, name, corev1.EventTypeNormal, ReasonDatabaseDropped)
}

// TestDatabaseNameConflictIsRefusedUntilFreed: a second Tenant naming the first one's database
// is Failed with DatabaseNameConflict, the first is untouched, and when the first goes the
// second takes the name on its own.
func TestDatabaseNameConflictIsRefusedUntilFreed(t *testing.T) {
	first, second := uniqueName("owner"), uniqueName("squatter")
	dbName := "authmesh_" + first
	createTenant(t, newTenant(first, func(tn *authmeshv1alpha1.Tenant) {
		tn.Spec.DeletionPolicy = authmeshv1alpha1.DeletionPolicyDelete
	}))
	waitReady(t, first)
	createTenant(t, newTenant(second, func(tn *authmeshv1alpha1.Tenant) {
		tn.Spec.Database.Name = dbName
	}))
	refused := waitTenant(t, second, "refused for the conflict", func(tn *authmeshv1alpha1.Tenant) error {
		if tn.Status.Phase != authmeshv1alpha1.TenantPhaseFailed {
			return fmt.Errorf("phase %q", tn.Status.Phase)
		}
		return hasCondition(ConditionDatabaseReady, metav1.ConditionFalse, ReasonDatabaseNameConflict)(tn)
	})
	if msg := meta.FindStatusCondition(refused.Status.Conditions, ConditionDatabaseReady).Message; !strings.Contains(msg, first) {
		t.Errorf("conflict message %q does not name Tenant %s", msg, first)
	}
	if refused.Status.DatabaseName != "" || getSecret(t, DBSecretName(second)) != nil {
		t.Errorf("the refused Tenant claimed the database: status.databaseName %q", refused.Status.DatabaseName)
	}
	waitEvent(t, second, corev1.EventTypeWarning, ReasonDatabaseNameConflict)
	if err := isReady(getTenant(t, first)); err != nil {
		t.Errorf("the first Tenant is disturbed: %v", err)
	}

	deleteTenantForGood(t, first)
	got := waitReady(t, second)
	if got.Status.DatabaseName != dbName {
		t.Errorf("status.databaseName = %q, want %q", got.Status.DatabaseName, dbName)
	}
}

// TestSuspendedTenantStaysProvisioned: phase Suspended, Ready False, everything still there;
// resuming makes it Ready.
func TestSuspendedTenantStaysProvisioned(t *testing.T) {
	name := uniqueName("suspend")
	createTenant(t, newTenant(name, func(tn *authmeshv1alpha1.Tenant) { tn.Spec.Suspended = true }))
	tn := waitTenant(t, name, "Suspended", func(tn *authmeshv1alpha1.Tenant) error {
		if tn.Status.Phase != authmeshv1alpha1.TenantPhaseSuspended {
			return fmt.Errorf("phase %q", tn.Status.Phase)
		}
		return hasCondition(ConditionReady, metav1.ConditionFalse, ReasonSuspended)(tn)
	})
	for _, check := range []func(*authmeshv1alpha1.Tenant) error{
		hasCondition(ConditionDatabaseReady, metav1.ConditionTrue, meta.FindStatusCondition(tn.Status.Conditions, ConditionDatabaseReady).Reason),
		hasCondition(ConditionSigningKeysReady, metav1.ConditionTrue, ReasonSigningKeysActive),
	} {
		if err := check(tn); err != nil {
			t.Error(err)
		}
	}
	if getSecret(t, DBSecretName(name)) == nil || getSecret(t, KeysSecretName(name)) == nil || tn.Status.ActiveKeyID == "" {
		t.Error("a suspended Tenant is not fully provisioned")
	}

	if err := updateTenant(name, func(tn *authmeshv1alpha1.Tenant) { tn.Spec.Suspended = false }); err != nil {
		t.Fatal(err)
	}
	waitReady(t, name)
}

// TestSteadyStateReconcileWritesNothing proves that once a Tenant is Ready, reconciling it again
// writes nothing: neither through the running manager (periodic re-checks) nor when Reconcile is
// called directly, counted by a client wrapper and confirmed by unchanged resourceVersions.
func TestSteadyStateReconcileWritesNothing(t *testing.T) {
	name := uniqueName("steady")
	createTenant(t, newTenant(name))
	waitReady(t, name)
	waitReconciles(t, name, 1) // let the reconcile triggered by the last status write finish

	versions := func() []string {
		return []string{getTenant(t, name).ResourceVersion, getSecret(t, DBSecretName(name)).ResourceVersion, getSecret(t, KeysSecretName(name)).ResourceVersion}
	}
	beforeVersions, beforeWrites := versions(), calls.writesTo(name)
	waitReconciles(t, name, 3)

	direct := newCountingClient(calls.Client) // the manager's client: Tenants from its indexed cache
	r := *reconciler
	r.Client = direct
	res, err := r.Reconcile(t.Context(), ctrl.Request{NamespacedName: types.NamespacedName{Name: name}})
	if err != nil || res.RequeueAfter != recheckInterval {
		t.Errorf("Reconcile = %+v, %v; want a re-check after %s and no error", res, err, recheckInterval)
	}
	// Without periodic re-checks, the next reconcile is due when the key rotates (720h by
	// default, counted from the key's creation in whole seconds).
	r.RecheckInterval = 0
	res, err = r.Reconcile(t.Context(), ctrl.Request{NamespacedName: types.NamespacedName{Name: name}})
	if err != nil || res.RequeueAfter <= 720*time.Hour-time.Second || res.RequeueAfter > 720*time.Hour {
		t.Errorf("Reconcile without re-checks = %+v, %v; want a requeue at the next rotation, 720h after the key was made", res, err)
	}
	if len(direct.writes) != 0 {
		t.Errorf("a direct Reconcile of a Ready Tenant wrote %v", direct.writes)
	}
	if got := calls.writesTo(name); !cmp.Equal(got, beforeWrites) {
		t.Errorf("the manager's re-checks wrote: %s", cmp.Diff(beforeWrites, got))
	}
	if got := versions(); !slices.Equal(got, beforeVersions) {
		t.Errorf("resourceVersions of Tenant, -db and -keys went from %v to %v", beforeVersions, got)
	}
}

// TestDatabaseOutageAndRecovery kills the database: a Ready Tenant turns DatabaseReady False
// with a reason, a Tenant created meanwhile still gets its keys, and after a restart both
// become Ready with nobody touching them.
func TestDatabaseOutageAndRecovery(t *testing.T) {
	if os.Getenv("AUTHMESH_TEST_MONGO_URI") != "" {
		t.Skip("the database is external (AUTHMESH_TEST_MONGO_URI); a test cannot stop it")
	}
	before, during := uniqueName("outage"), uniqueName("during")
	createTenant(t, newTenant(before))
	waitReady(t, before)

	if err := mongoDB.Kill(); err != nil {
		t.Fatal(err)
	}
	restarted := false
	t.Cleanup(func() { // before the Tenants' cleanups, which need the database
		if !restarted {
			if err := mongoDB.Restart(); err != nil {
				t.Errorf("restarting the database: %v", err)
			}
		}
	})

	unreachable := func(tn *authmeshv1alpha1.Tenant) error {
		if tn.Status.Phase != authmeshv1alpha1.TenantPhasePending {
			return fmt.Errorf("phase %q", tn.Status.Phase)
		}
		if err := hasCondition(ConditionReady, metav1.ConditionFalse, ReasonDatabaseNotReady)(tn); err != nil {
			return err
		}
		return hasCondition(ConditionDatabaseReady, metav1.ConditionFalse, ReasonDatabaseUnreachable)(tn)
	}
	waitTenant(t, before, "DatabaseUnreachable", unreachable)
	waitEvent(t, before, corev1.EventTypeWarning, ReasonDatabaseUnreachable)

	createTenant(t, newTenant(during))
	tn := waitTenant(t, during, "keys provisioned while the database is down", func(tn *authmeshv1alpha1.Tenant) error {
		if err := unreachable(tn); err != nil {
			return err
		}
		return hasCondition(ConditionSigningKeysReady, metav1.ConditionTrue, ReasonSigningKeysActive)(tn)
	})
	if getSecret(t, KeysSecretName(during)) == nil || tn.Status.ActiveKeyID == "" {
		t.Error("no signing keys for a Tenant created during the outage")
	}

	if err := mongoDB.Restart(); err != nil {
		t.Fatal(err)
	}
	restarted = true
	waitReady(t, before)
	waitReady(t, during)
	if s := getSecret(t, DBSecretName(during)); s == nil || len(s.Data[DBSecretURI]) == 0 {
		t.Errorf("after recovery, %s = %v; want a connection string", DBSecretName(during), s)
	}
}

// TestConnectionSecretRef: a Tenant naming its own MongoDB waits for the Secret, uses its
// connection string, and is Failed when the Secret holds no usable one.
func TestConnectionSecretRef(t *testing.T) {
	name, secretName := uniqueName("dedicated"), uniqueName("mongo")
	createTenant(t, newTenant(name, func(tn *authmeshv1alpha1.Tenant) {
		tn.Spec.Database.ConnectionSecretRef.Name = secretName
	}))
	waitTenant(t, name, "waiting for its connection Secret", func(tn *authmeshv1alpha1.Tenant) error {
		if tn.Status.Phase != authmeshv1alpha1.TenantPhasePending {
			return fmt.Errorf("phase %q", tn.Status.Phase)
		}
		return hasCondition(ConditionDatabaseReady, metav1.ConditionFalse, ReasonConnectionSecretNotFound)(tn)
	})

	dedicated := mongoDB.URI + "?appName=dedicated"
	conn := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: testNamespace, Name: secretName},
		Data:       map[string][]byte{"uri": []byte(dedicated)},
	}
	if err := apiServer.Client.Create(t.Context(), conn); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = apiServer.Client.Delete(t.Context(), conn) })
	waitReady(t, name)
	uri := string(getSecret(t, DBSecretName(name)).Data[DBSecretURI])
	if u, err := url.Parse(uri); err != nil || u.Query().Get("appName") != "dedicated" || u.Path != "/authmesh_"+name {
		t.Errorf("tenant uri = %q; want the dedicated server's, with the tenant database", uri)
	}

	conn.Data["uri"] = []byte("postgres://nope")
	if err := apiServer.Client.Update(t.Context(), conn); err != nil {
		t.Fatal(err)
	}
	failed := waitTenant(t, name, "Failed on an unusable connection string", func(tn *authmeshv1alpha1.Tenant) error {
		if tn.Status.Phase != authmeshv1alpha1.TenantPhaseFailed {
			return fmt.Errorf("phase %q", tn.Status.Phase)
		}
		return hasCondition(ConditionDatabaseReady, metav1.ConditionFalse, ReasonConnectionStringInvalid)(tn)
	})
	if msg := meta.FindStatusCondition(failed.Status.Conditions, ConditionDatabaseReady).Message; strings.Contains(msg, "nope") || !strings.Contains(msg, secretName) {
		t.Errorf("message %q: want it to name Secret %s and not quote its connection string", msg, secretName)
	}
	conn.Data["uri"] = []byte(dedicated) // so the cleanup can drop the database
	if err := apiServer.Client.Update(t.Context(), conn); err != nil {
		t.Fatal(err)
	}
	waitReady(t, name)
}

// TestEmailReadyFollowsTheSMTPSecret: EmailReady says whether the SMTP Secret a Tenant names
// exists and reads, follows the Secret as it appears and changes, never quotes its values,
// and never holds back Ready.
func TestEmailReadyFollowsTheSMTPSecret(t *testing.T) {
	plain := uniqueName("servermail")
	createTenant(t, newTenant(plain))
	if c := meta.FindStatusCondition(waitReady(t, plain).Status.Conditions, ConditionEmailReady); c == nil || c.Status != metav1.ConditionTrue || c.Reason != ReasonServerSMTP {
		t.Errorf("EmailReady of a Tenant without smtpSecretRef: %+v, want True %s", c, ReasonServerSMTP)
	}

	name, secretName := uniqueName("ownmail"), uniqueName("smtp")
	createTenant(t, newTenant(name, func(tn *authmeshv1alpha1.Tenant) { tn.Spec.Email.SMTPSecretRef.Name = secretName }))
	waitReady(t, name) // mail does not gate Ready
	waitTenant(t, name, "EmailReady=False for the missing Secret", hasCondition(ConditionEmailReady, metav1.ConditionFalse, ReasonSMTPSecretNotFound))

	secret := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: testNamespace, Name: secretName},
		Data: map[string][]byte{"host": []byte("smtp.acme.example"), "password": []byte("pw-never-shown")}}
	if err := apiServer.Client.Create(t.Context(), secret); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = apiServer.Client.Delete(context.Background(), secret) })
	bad := waitTenant(t, name, "EmailReady=False for a password without a username", hasCondition(ConditionEmailReady, metav1.ConditionFalse, ReasonSMTPSecretInvalid))
	msg := meta.FindStatusCondition(bad.Status.Conditions, ConditionEmailReady).Message
	if !strings.Contains(msg, `key "password"`) || !strings.Contains(msg, secretName) || strings.Contains(msg, "pw-never-shown") {
		t.Errorf("message %q: want it to name the Secret and the key, and not quote the password", msg)
	}
	if err := isReady(bad); err != nil {
		t.Errorf("an unusable SMTP Secret held back Ready: %v", err)
	}

	secret.Data["username"] = []byte("mailer")
	if err := apiServer.Client.Update(t.Context(), secret); err != nil {
		t.Fatal(err)
	}
	good := waitTenant(t, name, "EmailReady=True once the Secret reads", hasCondition(ConditionEmailReady, metav1.ConditionTrue, ReasonTenantSMTP))
	if msg := meta.FindStatusCondition(good.Status.Conditions, ConditionEmailReady).Message; !strings.Contains(msg, "smtp.acme.example:587 (TLS starttls)") {
		t.Errorf("message %q: want the server it names", msg)
	}
	waitEvent(t, name, corev1.EventTypeWarning, ReasonSMTPSecretInvalid)
}

// TestTenantCannotTakeOverADatabase: spec.database.name may name any database, so a Tenant
// must neither adopt nor, with deletionPolicy Delete, drop one that was not created for it:
// another application's, or the one a deleted Tenant retained. A Tenant re-created under the
// retaining Tenant's name gets its data back.
func TestTenantCannotTakeOverADatabase(t *testing.T) {
	ctx := t.Context()
	docCount := func(db string) int64 {
		t.Helper()
		n, err := mongoDB.Client.Database(db).Collection("records").CountDocuments(ctx, bson.D{})
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	notOwned := func(tn *authmeshv1alpha1.Tenant) error {
		if err := hasCondition(ConditionDatabaseReady, metav1.ConditionFalse, ReasonDatabaseNotOwned)(tn); err != nil {
			return err
		}
		if tn.Status.DatabaseName != "" {
			return fmt.Errorf("status.databaseName %q", tn.Status.DatabaseName)
		}
		return nil
	}

	// Another application's database.
	foreign := "payroll_" + strings.ReplaceAll(uniqueName("x"), "-", "_")
	if _, err := mongoDB.Client.Database(foreign).Collection("records").InsertOne(ctx, bson.D{{Key: "salary", Value: 1}}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = mongoDB.Client.Database(foreign).Drop(context.Background()) })
	grabber := uniqueName("grab")
	createTenant(t, newTenant(grabber, func(tn *authmeshv1alpha1.Tenant) {
		tn.Spec.Database.Name = foreign
		tn.Spec.DeletionPolicy = authmeshv1alpha1.DeletionPolicyDelete
	}))
	waitTenant(t, grabber, "DatabaseNotOwned on another application's database", notOwned)
	if getSecret(t, DBSecretName(grabber)) != nil {
		t.Error("a credentials Secret was written for a database the Tenant does not own")
	}
	deleteTenantForGood(t, grabber)
	if n := docCount(foreign); n != 1 {
		t.Fatalf("after deleting the Tenant (deletionPolicy Delete) the foreign database holds %d records; want 1", n)
	}

	// A database a deleted Tenant retained.
	retainer := uniqueName("reta")
	if err := apiServer.Client.Create(ctx, newTenant(retainer)); err != nil {
		t.Fatal(err)
	}
	waitReady(t, retainer)
	retained := getTenant(t, retainer).Status.DatabaseName
	t.Cleanup(func() { _ = mongoDB.Client.Database(retained).Drop(context.Background()) })
	if _, err := mongoDB.Client.Database(retained).Collection("records").InsertOne(ctx, bson.D{{Key: "user", Value: "alice"}}); err != nil {
		t.Fatal(err)
	}
	if err := apiServer.Client.Delete(ctx, newTenant(retainer)); err != nil {
		t.Fatal(err)
	}
	waitGone(t, newTenant(retainer))
	other := uniqueName("other")
	createTenant(t, newTenant(other, func(tn *authmeshv1alpha1.Tenant) {
		tn.Spec.Database.Name = retained
		tn.Spec.DeletionPolicy = authmeshv1alpha1.DeletionPolicyDelete
	}))
	waitTenant(t, other, "DatabaseNotOwned on a retained database", notOwned)
	deleteTenantForGood(t, other)
	if n := docCount(retained); n != 1 {
		t.Fatalf("after deleting the other Tenant the retained database holds %d records; want 1", n)
	}

	// The retaining Tenant's name, applied again, gets its database back.
	createTenant(t, newTenant(retainer))
	waitReady(t, retainer)
	if got := getTenant(t, retainer).Status.DatabaseName; got != retained {
		t.Fatalf("the re-created Tenant uses %q; want its retained %q", got, retained)
	}
	if n := docCount(retained); n != 1 {
		t.Fatalf("the re-created Tenant's database holds %d records; want 1", n)
	}
}
