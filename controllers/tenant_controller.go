package controllers

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"go.mongodb.org/mongo-driver/v2/mongo"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	"k8s.io/client-go/util/workqueue"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	authmeshv1alpha1 "github.com/authmesh/authmesh/api/v1alpha1"
	"github.com/authmesh/authmesh/internal/keys"
	"github.com/authmesh/authmesh/internal/smtpsecret"
	"github.com/authmesh/authmesh/internal/tenantdb"
)

// TenantReconciler provisions a Tenant's database, credentials and signing keys, and applies
// its deletion policy when it goes.
type TenantReconciler struct {
	// Client reads Tenants (from the manager's cache) and writes everything.
	Client client.Client
	// APIReader reads the tenant's own Secrets uncached: acting on a stale copy could, for
	// example, reset a database user's password that a fresh copy would have had.
	APIReader client.Reader
	Recorder  events.EventRecorder
	Mongo     *MongoClients
	Metrics   *Metrics
	Clock     clock.PassiveClock

	// Namespace holds every Secret the controller reads or writes.
	Namespace string
	// AuthServerURL is the auth server's public URL; a tenant's issuer is AuthServerURL/t/<name>.
	AuthServerURL string
	// PlatformMongoURI is the platform MongoDB; or else PlatformMongoURISecret names a Secret
	// in Namespace whose key "uri" holds it. A Tenant's connectionSecretRef overrides both.
	PlatformMongoURI       string
	PlatformMongoURISecret string
	// OperationTimeout bounds the database work of one reconcile.
	OperationTimeout time.Duration
	// RecheckInterval re-reconciles a healthy Tenant this often, so a database that goes
	// away shows in its conditions; 0 disables it.
	RecheckInterval time.Duration
	// MaxConcurrent is how many Tenants are reconciled at once (default 1). A Tenant is never
	// reconciled by two workers at once.
	MaxConcurrent int
}

// +kubebuilder:rbac:groups=authmesh.dev,resources=tenants,verbs=get;list;watch;update;patch
// +kubebuilder:rbac:groups=authmesh.dev,resources=tenants/status,verbs=get;update;patch
// +kubebuilder:rbac:groups=authmesh.dev,resources=tenants/finalizers,verbs=update
// +kubebuilder:rbac:groups="",namespace=authmesh-system,resources=secrets,verbs=get;list;watch;create;update;patch;delete
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch

// Reconcile brings one Tenant's database, Secrets and status in line with its spec. It writes
// status once, on a copy, and only when something changed, so a steady-state reconcile
// writes nothing.
func (r *TenantReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	var tenant authmeshv1alpha1.Tenant
	if err := r.Client.Get(ctx, req.NamespacedName, &tenant); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if !tenant.DeletionTimestamp.IsZero() {
		return ctrl.Result{}, r.finalize(ctx, &tenant)
	}
	if controllerutil.AddFinalizer(&tenant, Finalizer) {
		if err := r.Client.Update(ctx, &tenant); err != nil {
			return staleOr(fmt.Errorf("adding finalizer: %w", err))
		}
	}

	next := tenant.DeepCopy()
	dbErr := r.reconcileDatabase(ctx, next)
	untilKeyEvent, keysErr := r.reconcileSigningKeys(ctx, next)
	mailErr := r.reconcileEmail(ctx, next)
	next.Status.Issuer = strings.TrimSuffix(r.AuthServerURL, "/") + "/t/" + next.Name
	next.Status.ObservedGeneration = next.Generation
	r.summarize(next)

	if !equality.Semantic.DeepEqual(tenant.Status, next.Status) {
		if err := r.Client.Status().Update(ctx, next); err != nil {
			return staleOr(fmt.Errorf("writing status: %w", err))
		}
		r.recordTransitions(&tenant, next)
	}
	if err := errors.Join(dbErr, keysErr, mailErr); err != nil {
		return ctrl.Result{}, err
	}
	requeue := untilKeyEvent
	if r.RecheckInterval > 0 && r.RecheckInterval < requeue {
		requeue = r.RecheckInterval
	}
	return ctrl.Result{RequeueAfter: requeue}, nil
}

// staleOr turns a conflict into a quiet, short requeue: the cached Tenant was older than the
// stored one, whose own watch event brings a fresh reconcile anyway. Other errors are returned.
func staleOr(err error) (ctrl.Result, error) {
	if apierrors.IsConflict(err) {
		return ctrl.Result{RequeueAfter: time.Second}, nil
	}
	return ctrl.Result{}, err
}

// databaseName is the database a Tenant asks for.
func databaseName(t *authmeshv1alpha1.Tenant) string {
	if t.Spec.Database.Name != "" {
		return t.Spec.Database.Name
	}
	return DatabasePrefix + t.Name
}

// claimsFirst reports whether a's claim on database name comes before b's: a Tenant that has
// provisioned it (status.databaseName) before one that has not, then the older Tenant, then
// the name. MongoDB database names differ by more than case, so case is ignored.
func claimsFirst(a, b *authmeshv1alpha1.Tenant, name string) bool {
	ac, bc := strings.EqualFold(a.Status.DatabaseName, name), strings.EqualFold(b.Status.DatabaseName, name)
	if ac != bc {
		return ac
	}
	if !a.CreationTimestamp.Equal(&b.CreationTimestamp) {
		return a.CreationTimestamp.Before(&b.CreationTimestamp)
	}
	return a.Name < b.Name
}

// conflictingTenant returns another Tenant whose claim on name comes before t's.
func conflictingTenant(t *authmeshv1alpha1.Tenant, name string, all []authmeshv1alpha1.Tenant) *authmeshv1alpha1.Tenant {
	for i := range all {
		o := &all[i]
		if o.Name == t.Name {
			continue
		}
		uses := strings.EqualFold(databaseName(o), name) || strings.EqualFold(o.Status.DatabaseName, name)
		if uses && claimsFirst(o, t, name) {
			return o
		}
	}
	return nil
}

// reconcileDatabase provisions the tenant database and tenant-<name>-db and sets
// DatabaseReady. It returns an error when the work should be retried with backoff.
func (r *TenantReconciler) reconcileDatabase(ctx context.Context, t *authmeshv1alpha1.Tenant) error {
	name := databaseName(t)
	// A database this Tenant provisioned before databases carried an owner mark is adopted.
	provisioned := t.Status.DatabaseName == name && meta.IsStatusConditionTrue(t.Status.Conditions, ConditionDatabaseReady)
	claimants, err := r.claimants(ctx, name)
	if err != nil {
		return fmt.Errorf("listing Tenants: %w", err)
	}
	if other := conflictingTenant(t, name, claimants); other != nil {
		t.Status.DatabaseName = ""
		r.setCondition(t, ConditionDatabaseReady, false, ReasonDatabaseNameConflict,
			fmt.Sprintf("database %q is already used by Tenant %q; choose another spec.database.name", name, other.Name))
		return nil // the other Tenant's changes requeue this one
	}
	t.Status.DatabaseName = name

	base, source, reason, err := r.connectionURI(ctx, t)
	if err != nil {
		r.setCondition(t, ConditionDatabaseReady, false, reason, err.Error())
		return nil // a change of the Secret requeues this Tenant
	}
	mc, err := r.Mongo.Client(base)
	if err != nil {
		r.setCondition(t, ConditionDatabaseReady, false, ReasonConnectionStringInvalid, source+" does not hold a valid MongoDB connection string")
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, r.OperationTimeout)
	defer cancel()

	err = tenantdb.Claim(ctx, mc.Database(name), t.Name, provisioned)
	var owned *tenantdb.OwnedError
	var notOwned string
	switch {
	case errors.As(err, &owned):
		notOwned = fmt.Sprintf("database %q was created for Tenant %q (deleted with deletionPolicy Retain?); a Tenant of that name can use it again, or choose another spec.database.name", name, owned.Tenant)
	case errors.Is(err, tenantdb.ErrForeignDatabase):
		notOwned = fmt.Sprintf("database %q already holds data that authmesh did not create; choose another spec.database.name", name)
	case err != nil:
		return r.databaseFailed(t, err)
	}
	if notOwned != "" {
		t.Status.DatabaseName = ""
		r.setCondition(t, ConditionDatabaseReady, false, ReasonDatabaseNotOwned, notOwned)
		return nil
	}
	report, err := tenantdb.EnsureSchema(ctx, mc.Database(name))
	if err != nil {
		return r.databaseFailed(t, err)
	}
	user, err := r.ensureCredentials(ctx, t, mc, base, name)
	if err != nil {
		return r.databaseFailed(t, err)
	}
	t.Status.CredentialsSecret = DBSecretName(t.Name)

	var msg string
	reason = ReasonDatabaseProvisioned
	if user != "" {
		msg = fmt.Sprintf("database %s is ready; Secret %s/%s holds the connection string of its user %s", name, r.Namespace, DBSecretName(t.Name), user)
	} else {
		reason = ReasonSharedCredentials
		msg = fmt.Sprintf("database %s is ready; the server has no user management (createUser: CommandNotFound), so Secret %s/%s holds the platform's connection string", name, r.Namespace, DBSecretName(t.Name))
	}
	if report.TTLUnsupported {
		msg += "; the server has no TTL indexes, so expiring collections have plain indexes"
	}
	r.setCondition(t, ConditionDatabaseReady, true, reason, msg)
	return nil
}

// databaseFailed sets DatabaseReady=False for err and returns the error to retry with.
func (r *TenantReconciler) databaseFailed(t *authmeshv1alpha1.Tenant, err error) error {
	var apiErr secretWriteError
	switch {
	case errors.As(err, &apiErr):
		r.setCondition(t, ConditionDatabaseReady, false, ReasonCredentialsSecretFailed, shortError(err))
	case isUnreachable(err):
		r.setCondition(t, ConditionDatabaseReady, false, ReasonDatabaseUnreachable, "MongoDB is unreachable: "+shortError(err))
	default:
		r.setCondition(t, ConditionDatabaseReady, false, ReasonDatabaseProvisioningFailed, shortError(err))
	}
	return fmt.Errorf("database %s: %w", databaseName(t), err)
}

// secretWriteError marks a failed read or write of tenant-<name>-db, as opposed to a database error.
type secretWriteError struct{ err error }

func (e secretWriteError) Error() string { return e.err.Error() }
func (e secretWriteError) Unwrap() error { return e.err }

// connectionURI returns the MongoDB connection string for t and where it came from, or a
// reason and a message saying why there is none. Messages never quote the string itself.
func (r *TenantReconciler) connectionURI(ctx context.Context, t *authmeshv1alpha1.Tenant) (uri, source, reason string, err error) {
	name := t.Spec.Database.ConnectionSecretRef.Name
	if name == "" {
		if r.PlatformMongoURI != "" {
			return r.PlatformMongoURI, "the platform MongoDB setting", "", nil
		}
		name = r.PlatformMongoURISecret
	}
	source = fmt.Sprintf("Secret %s/%s", r.Namespace, name)
	var s corev1.Secret
	if err := r.Client.Get(ctx, types.NamespacedName{Namespace: r.Namespace, Name: name}, &s); err != nil {
		if apierrors.IsNotFound(err) {
			return "", source, ReasonConnectionSecretNotFound, fmt.Errorf("%s with the MongoDB connection string does not exist", source)
		}
		return "", source, ReasonConnectionSecretNotFound, fmt.Errorf("reading %s: %w", source, err)
	}
	uri = strings.TrimSpace(string(s.Data[DBSecretURI]))
	if !strings.HasPrefix(uri, "mongodb://") && !strings.HasPrefix(uri, "mongodb+srv://") {
		return "", source, ReasonConnectionStringInvalid, fmt.Errorf("%s has no MongoDB connection string (mongodb://...) in key %q", source, DBSecretURI)
	}
	return uri, source, "", nil
}

// ensureCredentials writes tenant-<name>-db and, where the server manages users, makes sure
// the tenant's user exists. It returns the user's name, or "" when the server has no user
// management and the Secret carries the server's own connection string. A new password is
// written to the Secret before the user gets it, so it can never be set and then lost.
func (r *TenantReconciler) ensureCredentials(ctx context.Context, t *authmeshv1alpha1.Tenant, mc *mongo.Client, base, dbName string) (string, error) {
	existing, err := r.getSecret(ctx, DBSecretName(t.Name))
	if err != nil {
		return "", secretWriteError{err}
	}
	var user, password string
	if existing != nil && string(existing.Data[DBSecretDatabase]) == dbName {
		user, password = string(existing.Data[DBSecretUsername]), string(existing.Data[DBSecretPassword])
	}
	if user == "" || password == "" {
		user, password = "tenant-"+t.Name, ""
	}
	db := mc.Database(dbName)
	supported, exists, err := lookupUser(ctx, db, user)
	if err != nil {
		return "", err
	}
	if !supported {
		user, password = "", ""
	} else if password == "" {
		if password, err = newPassword(); err != nil {
			return "", err
		}
		exists = false // whatever password it had is lost: set this one
	}
	uri, err := tenantURI(base, dbName, user, password)
	if err != nil {
		return "", err
	}
	data := map[string][]byte{DBSecretURI: []byte(uri), DBSecretDatabase: []byte(dbName)}
	if user != "" {
		data[DBSecretUsername], data[DBSecretPassword] = []byte(user), []byte(password)
	}
	// Only a Delete policy lets the Secret go with its Tenant; a retained Secret is never
	// owned, so nothing (a garbage collector included) removes it with the Tenant.
	var owner *metav1.OwnerReference
	if t.Spec.DeletionPolicy == authmeshv1alpha1.DeletionPolicyDelete {
		owner = ownerRef(t)
	}
	if err := r.applySecret(ctx, t, existing, DBSecretName(t.Name), data, nil, owner); err != nil {
		return "", secretWriteError{err}
	}
	if supported && !exists {
		if err := createUser(ctx, db, user, password); err != nil {
			return "", err
		}
	}
	return user, nil
}

// reconcileSigningKeys writes tenant-<name>-keys: creates, rotates and prunes keys as
// planKeys decides, and sets SigningKeysReady. It returns the time until the next key event.
func (r *TenantReconciler) reconcileSigningKeys(ctx context.Context, t *authmeshv1alpha1.Tenant) (time.Duration, error) {
	name := KeysSecretName(t.Name)
	fail := func(err error) (time.Duration, error) {
		r.setCondition(t, ConditionSigningKeysReady, false, ReasonSigningKeysFailed, shortError(err))
		return 0, fmt.Errorf("signing keys: %w", err)
	}
	existing, err := r.getSecret(ctx, name)
	if err != nil {
		return fail(err)
	}
	var cur *keys.PrivateSet
	var book keyBook
	if existing != nil {
		book = readKeyBook(existing.Annotations)
		var perr error
		if cur, perr = keys.ParsePrivateSet(existing.Data[keys.SecretKeyJWKS], string(existing.Data[keys.SecretKeyActiveKID])); perr != nil {
			r.event(t, corev1.EventTypeWarning, ReasonSigningKeysRegenerate, "RotateKeys",
				fmt.Sprintf("Secret %s/%s holds no usable key set (%v); generating a new one", r.Namespace, name, perr))
		}
	}
	pol := keyPolicy{
		Algorithm:     string(t.Spec.Tokens.SigningAlgorithm),
		Interval:      durationOr(t.Spec.Tokens.KeyRotationInterval, 720*time.Hour),
		AccessTTL:     durationOr(t.Spec.Tokens.AccessTokenTTL, 15*time.Minute),
		RotateRequest: t.Annotations[AnnotationRotateKeys],
	}
	if pol.Algorithm == "" {
		pol.Algorithm = keys.EdDSA
	}
	plan, err := planKeys(cur, book, pol, r.Clock.Now(), keys.Generate)
	if err != nil {
		return fail(err)
	}
	data := map[string][]byte(nil)
	if existing != nil {
		data = existing.Data
	}
	if plan.Changed {
		jwks, err := plan.Set.MarshalJWKS()
		if err != nil {
			return fail(err)
		}
		data = map[string][]byte{keys.SecretKeyJWKS: jwks, keys.SecretKeyActiveKID: []byte(plan.Set.ActiveKID)}
	}
	if err := r.applySecret(ctx, t, existing, name, data, plan.Book.annotations(), ownerRef(t)); err != nil {
		return fail(err)
	}

	if plan.Rotated != "" {
		r.Metrics.keyRotated(plan.Rotated)
		r.event(t, corev1.EventTypeNormal, ReasonSigningKeyRotated, "RotateKeys",
			fmt.Sprintf("key %s signs now (%s rotation); the previous key stays published until its tokens expire", plan.Set.ActiveKID, plan.Rotated))
	}
	for _, kid := range plan.Removed {
		r.event(t, corev1.EventTypeNormal, ReasonSigningKeyRemoved, "RotateKeys",
			fmt.Sprintf("retired key %s is no longer published: every token it signed has expired", kid))
	}
	t.Status.SigningKeysSecret = name
	t.Status.ActiveKeyID = plan.Set.ActiveKID
	r.setCondition(t, ConditionSigningKeysReady, true, ReasonSigningKeysActive,
		fmt.Sprintf("Secret %s/%s publishes %d key(s); %s signs", r.Namespace, name, len(plan.Set.Keys), plan.Set.ActiveKID))
	return plan.Next, nil
}

// reconcileEmail sets EmailReady from the SMTP Secret the tenant names, if any. It returns
// an error only when the Secret could not be read (retried with backoff); a missing Secret's
// creation requeues the Tenant through the Secret watch.
func (r *TenantReconciler) reconcileEmail(ctx context.Context, t *authmeshv1alpha1.Tenant) error {
	name := t.Spec.Email.SMTPSecretRef.Name
	if name == "" {
		r.setCondition(t, ConditionEmailReady, true, ReasonServerSMTP, "mail goes through the auth server's SMTP server")
		return nil
	}
	where := fmt.Sprintf("Secret %s/%s (spec.email.smtpSecretRef)", r.Namespace, name)
	var s corev1.Secret
	err := r.Client.Get(ctx, types.NamespacedName{Namespace: r.Namespace, Name: name}, &s)
	switch {
	case apierrors.IsNotFound(err):
		r.setCondition(t, ConditionEmailReady, false, ReasonSMTPSecretNotFound, where+" does not exist; the tenant's mail fails until it does")
		return nil
	case err != nil:
		r.setCondition(t, ConditionEmailReady, false, ReasonSMTPSecretNotFound, "reading "+where+": "+shortError(err))
		return fmt.Errorf("reading %s: %w", where, err)
	}
	server, err := smtpsecret.Parse(s.Data)
	if err != nil {
		r.setCondition(t, ConditionEmailReady, false, ReasonSMTPSecretInvalid, where+": "+strings.ReplaceAll(err.Error(), "\n", "; "))
		return nil
	}
	r.setCondition(t, ConditionEmailReady, true, ReasonTenantSMTP,
		fmt.Sprintf("mail goes through %s:%d (TLS %s), from %s", server.Host, server.Port, server.TLS, where))
	return nil
}

func durationOr(d *metav1.Duration, def time.Duration) time.Duration {
	if d == nil {
		return def
	}
	return d.Duration
}

// summarize sets the Ready condition and the phase from the other two conditions.
func (r *TenantReconciler) summarize(t *authmeshv1alpha1.Tenant) {
	db := conditionOrUnknown(t, ConditionDatabaseReady)
	ks := conditionOrUnknown(t, ConditionSigningKeysReady)
	switch {
	case db.Status != metav1.ConditionTrue:
		r.setCondition(t, ConditionReady, false, ReasonDatabaseNotReady, db.Message)
		switch db.Reason {
		case ReasonDatabaseNameConflict, ReasonConnectionStringInvalid:
			t.Status.Phase = authmeshv1alpha1.TenantPhaseFailed // a person has to act
		case ReasonDatabaseUnreachable, ReasonConnectionSecretNotFound:
			t.Status.Phase = authmeshv1alpha1.TenantPhasePending // waiting for something outside the Tenant
		default:
			t.Status.Phase = authmeshv1alpha1.TenantPhaseProvisioning
		}
	case ks.Status != metav1.ConditionTrue:
		r.setCondition(t, ConditionReady, false, ReasonSigningKeysNotReady, ks.Message)
		t.Status.Phase = authmeshv1alpha1.TenantPhaseProvisioning
	case t.Spec.Suspended:
		r.setCondition(t, ConditionReady, false, ReasonSuspended, "spec.suspended is true: the tenant stays provisioned but issues no tokens")
		t.Status.Phase = authmeshv1alpha1.TenantPhaseSuspended
	default:
		r.setCondition(t, ConditionReady, true, ReasonReady, "database and signing keys are ready")
		t.Status.Phase = authmeshv1alpha1.TenantPhaseReady
	}
}

func conditionOrUnknown(t *authmeshv1alpha1.Tenant, typ string) metav1.Condition {
	if c := meta.FindStatusCondition(t.Status.Conditions, typ); c != nil {
		return *c
	}
	return metav1.Condition{Type: typ, Status: metav1.ConditionUnknown, Message: typ + " has not been reconciled"}
}

// setCondition sets a condition, keeping its LastTransitionTime unless its status flips.
func (r *TenantReconciler) setCondition(t *authmeshv1alpha1.Tenant, typ string, ok bool, reason, message string) {
	status := metav1.ConditionFalse
	if ok {
		status = metav1.ConditionTrue
	}
	meta.SetStatusCondition(&t.Status.Conditions, metav1.Condition{
		Type:               typ,
		Status:             status,
		Reason:             reason,
		Message:            message,
		ObservedGeneration: t.Generation,
		LastTransitionTime: metav1.NewTime(r.Clock.Now().Truncate(time.Second)),
	})
}

// recordTransitions emits an Event for every condition whose status or reason changed.
func (r *TenantReconciler) recordTransitions(before, after *authmeshv1alpha1.Tenant) {
	for _, c := range after.Status.Conditions {
		old := meta.FindStatusCondition(before.Status.Conditions, c.Type)
		if old != nil && old.Status == c.Status && old.Reason == c.Reason {
			continue
		}
		kind := corev1.EventTypeNormal
		if c.Status != metav1.ConditionTrue && c.Reason != ReasonSuspended {
			kind = corev1.EventTypeWarning
		}
		r.event(after, kind, c.Reason, "Reconcile", fmt.Sprintf("%s=%s: %s", c.Type, c.Status, c.Message))
	}
}

func (r *TenantReconciler) event(t *authmeshv1alpha1.Tenant, kind, reason, action, note string) {
	if r.Recorder != nil {
		r.Recorder.Eventf(t, nil, kind, reason, action, "%s", note)
	}
}

// finalize applies the deletion policy, then lets the Tenant go. Retain keeps the database
// and tenant-<name>-db (owned by nothing, for a new Tenant of the same name to adopt); Delete
// drops the database and its user and deletes that Secret. The keys go either way.
func (r *TenantReconciler) finalize(ctx context.Context, cached *authmeshv1alpha1.Tenant) error {
	// Dropping a database on a stale copy could hit a new Tenant of the same name that has
	// provisioned it since: act only on the stored object, and only once.
	var t authmeshv1alpha1.Tenant
	if err := r.APIReader.Get(ctx, client.ObjectKeyFromObject(cached), &t); err != nil {
		return client.IgnoreNotFound(err)
	}
	if t.UID != cached.UID || t.DeletionTimestamp.IsZero() || !controllerutil.ContainsFinalizer(&t, Finalizer) {
		return nil
	}
	return r.applyDeletionPolicy(ctx, &t)
}

func (r *TenantReconciler) applyDeletionPolicy(ctx context.Context, t *authmeshv1alpha1.Tenant) error {
	dbSecret, err := r.getSecret(ctx, DBSecretName(t.Name))
	if err != nil {
		return err
	}
	if t.Spec.DeletionPolicy == authmeshv1alpha1.DeletionPolicyDelete {
		if err := r.dropDatabase(ctx, t, dbSecret); err != nil {
			r.event(t, corev1.EventTypeWarning, ReasonDeletionBlocked, "Delete", "cannot drop the database yet: "+shortError(err))
			return err
		}
		if err := r.deleteSecret(ctx, dbSecret); err != nil {
			return err
		}
	} else if dbSecret != nil {
		released := dbSecret.DeepCopy()
		released.OwnerReferences = withoutTenantOwners(released.OwnerReferences)
		if !equality.Semantic.DeepEqual(released.OwnerReferences, dbSecret.OwnerReferences) {
			if err := r.Client.Update(ctx, released); err != nil {
				return fmt.Errorf("releasing Secret %s: %w", released.Name, err)
			}
		}
		r.event(t, corev1.EventTypeNormal, ReasonDatabaseRetained, "Delete",
			fmt.Sprintf("deletionPolicy Retain: database %s and Secret %s/%s are kept for a new Tenant %s to adopt", t.Status.DatabaseName, r.Namespace, dbSecret.Name, t.Name))
	}
	keysSecret, err := r.getSecret(ctx, KeysSecretName(t.Name))
	if err != nil {
		return err
	}
	if err := r.deleteSecret(ctx, keysSecret); err != nil {
		return err
	}
	controllerutil.RemoveFinalizer(t, Finalizer)
	if err := r.Client.Update(ctx, t); err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("removing finalizer: %w", err)
	}
	return nil
}

// dropDatabase drops the database t provisioned, and its user, unless another Tenant's claim
// on it comes first (then it was never t's to drop).
func (r *TenantReconciler) dropDatabase(ctx context.Context, t *authmeshv1alpha1.Tenant, dbSecret *corev1.Secret) error {
	name := t.Status.DatabaseName
	if name == "" {
		return nil // nothing was provisioned
	}
	claimants, err := r.claimants(ctx, name)
	if err != nil {
		return err
	}
	if other := conflictingTenant(t, name, claimants); other != nil {
		return nil
	}
	base, _, _, err := r.connectionURI(ctx, t)
	if err != nil {
		return err
	}
	mc, err := r.Mongo.Client(base)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, r.OperationTimeout)
	defer cancel()
	db := mc.Database(name)
	owner, err := tenantdb.OwnerOf(ctx, db)
	if err != nil {
		return err
	}
	if owner != t.Name {
		r.event(t, corev1.EventTypeWarning, ReasonDatabaseNotDropped, "Delete",
			fmt.Sprintf("deletionPolicy Delete: database %s not dropped, it is not marked as this Tenant's", name))
		return nil
	}
	if dbSecret != nil {
		if user := string(dbSecret.Data[DBSecretUsername]); user != "" {
			if err := dropUser(ctx, db, user); err != nil {
				return err
			}
		}
	}
	if err := db.Drop(ctx); err != nil {
		return fmt.Errorf("dropping database %s: %w", name, err)
	}
	r.event(t, corev1.EventTypeNormal, ReasonDatabaseDropped, "Delete", fmt.Sprintf("deletionPolicy Delete: database %s dropped", name))
	return nil
}

// getSecret reads a Secret in the controller's namespace uncached; nil when it does not exist.
func (r *TenantReconciler) getSecret(ctx context.Context, name string) (*corev1.Secret, error) {
	var s corev1.Secret
	if err := r.APIReader.Get(ctx, types.NamespacedName{Namespace: r.Namespace, Name: name}, &s); err != nil {
		if apierrors.IsNotFound(err) {
			return nil, nil
		}
		return nil, fmt.Errorf("reading Secret %s/%s: %w", r.Namespace, name, err)
	}
	return &s, nil
}

func (r *TenantReconciler) deleteSecret(ctx context.Context, s *corev1.Secret) error {
	if s == nil {
		return nil
	}
	if err := r.Client.Delete(ctx, s, client.Preconditions{UID: &s.UID}); err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("deleting Secret %s: %w", s.Name, err)
	}
	return nil
}

// applySecret creates the named Secret, or updates existing when its data, our labels, our
// annotations (a "" value removes one) or its Tenant owner differ; otherwise it writes nothing.
// owner nil means no Tenant owns it; owner references to anything else are kept.
func (r *TenantReconciler) applySecret(ctx context.Context, t *authmeshv1alpha1.Tenant, existing *corev1.Secret, name string,
	data map[string][]byte, annotations map[string]string, owner *metav1.OwnerReference,
) error {
	desired := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: r.Namespace, Name: name},
		Type:       corev1.SecretTypeOpaque,
	}
	if existing != nil {
		desired = existing.DeepCopy()
	}
	desired.Data = data
	if desired.Labels == nil {
		desired.Labels = map[string]string{}
	}
	desired.Labels[LabelTenant] = t.Name
	desired.Labels[LabelManagedBy] = ManagedBy
	for k, v := range annotations {
		if v == "" {
			delete(desired.Annotations, k)
			continue
		}
		if desired.Annotations == nil {
			desired.Annotations = map[string]string{}
		}
		desired.Annotations[k] = v
	}
	desired.OwnerReferences = withoutTenantOwners(desired.OwnerReferences)
	if owner != nil {
		desired.OwnerReferences = append(desired.OwnerReferences, *owner)
	}
	if existing == nil {
		if err := r.Client.Create(ctx, desired); err != nil {
			return fmt.Errorf("creating Secret %s/%s: %w", r.Namespace, name, err)
		}
		return nil
	}
	if equality.Semantic.DeepEqual(existing, desired) {
		return nil
	}
	if err := r.Client.Update(ctx, desired); err != nil {
		return fmt.Errorf("updating Secret %s/%s: %w", r.Namespace, name, err)
	}
	return nil
}

func ownerRef(t *authmeshv1alpha1.Tenant) *metav1.OwnerReference {
	return metav1.NewControllerRef(t, authmeshv1alpha1.GroupVersion.WithKind("Tenant"))
}

func withoutTenantOwners(refs []metav1.OwnerReference) []metav1.OwnerReference {
	var out []metav1.OwnerReference
	for _, ref := range refs {
		if ref.Kind == "Tenant" && strings.HasPrefix(ref.APIVersion, authmeshv1alpha1.GroupVersion.Group+"/") {
			continue
		}
		out = append(out, ref)
	}
	return out
}

// Field indexes on the cached Tenants, so that what one Tenant or Secret event looks up costs
// the Tenants it concerns rather than all of them.
const (
	// indexDatabase: the lower-cased database names a Tenant asks for or holds.
	indexDatabase = "authmesh.dev/database"
	// indexConnectionSecret: the Secret holding a Tenant's connection string, or
	// platformConnection when it uses the platform's.
	indexConnectionSecret = "authmesh.dev/connection-secret"
	// indexNameConflict: "true" on Tenants refused for a database-name conflict.
	indexNameConflict = "authmesh.dev/database-name-conflict"
	// indexSMTPSecret: the Secret a Tenant names as its SMTP server.
	indexSMTPSecret = "authmesh.dev/smtp-secret"

	platformConnection = "/platform" // not a valid Secret name, so it never collides with one
)

func databaseIndex(obj client.Object) []string {
	t := obj.(*authmeshv1alpha1.Tenant)
	names := []string{strings.ToLower(databaseName(t))}
	if held := strings.ToLower(t.Status.DatabaseName); held != "" && held != names[0] {
		names = append(names, held)
	}
	return names
}

func connectionSecretIndex(obj client.Object) []string {
	if ref := obj.(*authmeshv1alpha1.Tenant).Spec.Database.ConnectionSecretRef.Name; ref != "" {
		return []string{ref}
	}
	return []string{platformConnection}
}

func smtpSecretIndex(obj client.Object) []string {
	if ref := obj.(*authmeshv1alpha1.Tenant).Spec.Email.SMTPSecretRef.Name; ref != "" {
		return []string{ref}
	}
	return nil
}

func nameConflictIndex(obj client.Object) []string {
	c := meta.FindStatusCondition(obj.(*authmeshv1alpha1.Tenant).Status.Conditions, ConditionDatabaseReady)
	if c != nil && c.Reason == ReasonDatabaseNameConflict {
		return []string{"true"}
	}
	return nil
}

// claimants returns the Tenants that ask for or hold database name.
func (r *TenantReconciler) claimants(ctx context.Context, name string) ([]authmeshv1alpha1.Tenant, error) {
	var list authmeshv1alpha1.TenantList
	err := r.Client.List(ctx, &list, client.MatchingFields{indexDatabase: strings.ToLower(name)})
	return list.Items, err
}

// SetupWithManager registers the reconciler and its field indexes: it watches Tenants, the
// Secrets in Namespace (its own, and the ones holding connection strings), and re-queues a
// Tenant refused for a database-name conflict whenever another Tenant changes.
func (r *TenantReconciler) SetupWithManager(mgr ctrl.Manager) error {
	ctx := context.Background()
	indexer := mgr.GetFieldIndexer()
	for field, extract := range map[string]client.IndexerFunc{
		indexDatabase:         databaseIndex,
		indexConnectionSecret: connectionSecretIndex,
		indexNameConflict:     nameConflictIndex,
		indexSMTPSecret:       smtpSecretIndex,
	} {
		if err := indexer.IndexField(ctx, &authmeshv1alpha1.Tenant{}, field, extract); err != nil {
			return fmt.Errorf("indexing Tenants by %s: %w", field, err)
		}
	}
	return ctrl.NewControllerManagedBy(mgr).
		For(&authmeshv1alpha1.Tenant{}).
		Watches(&authmeshv1alpha1.Tenant{}, handler.EnqueueRequestsFromMapFunc(r.conflictedTenants)).
		Watches(&corev1.Secret{}, handler.EnqueueRequestsFromMapFunc(r.tenantsForSecret)).
		WithOptions(controller.Options{
			MaxConcurrentReconciles: max(r.MaxConcurrent, 1),
			// Retries of an unreachable database back off from 250ms to at most a minute.
			RateLimiter: workqueue.NewTypedItemExponentialFailureRateLimiter[reconcile.Request](250*time.Millisecond, time.Minute),
		}).
		Named("tenant").
		Complete(r)
}

// conflictedTenants maps any Tenant event to the other Tenants waiting on a database-name
// conflict: the Tenant that held the name may have let it go.
func (r *TenantReconciler) conflictedTenants(ctx context.Context, obj client.Object) []reconcile.Request {
	var waiting authmeshv1alpha1.TenantList
	if err := r.Client.List(ctx, &waiting, client.MatchingFields{indexNameConflict: "true"}); err != nil {
		return nil
	}
	var reqs []reconcile.Request
	for _, t := range waiting.Items {
		if t.Name != obj.GetName() {
			reqs = append(reqs, reconcile.Request{NamespacedName: types.NamespacedName{Name: t.Name}})
		}
	}
	return reqs
}

// tenantsForSecret maps a Secret in Namespace to the Tenants it concerns: the one named by its
// authmesh.dev/tenant label, those whose connection string it holds, and those that name it
// as their SMTP server.
func (r *TenantReconciler) tenantsForSecret(ctx context.Context, obj client.Object) []reconcile.Request {
	if obj.GetNamespace() != r.Namespace {
		return nil
	}
	var reqs []reconcile.Request
	if name := obj.GetLabels()[LabelTenant]; name != "" {
		reqs = append(reqs, reconcile.Request{NamespacedName: types.NamespacedName{Name: name}})
	}
	type lookup struct{ index, value string }
	lookups := []lookup{{indexConnectionSecret, obj.GetName()}, {indexSMTPSecret, obj.GetName()}}
	if r.PlatformMongoURI == "" && r.PlatformMongoURISecret == obj.GetName() {
		lookups = append(lookups, lookup{indexConnectionSecret, platformConnection})
	}
	for _, l := range lookups {
		var users authmeshv1alpha1.TenantList
		if err := r.Client.List(ctx, &users, client.MatchingFields{l.index: l.value}); err != nil {
			return reqs
		}
		for _, t := range users.Items {
			reqs = append(reqs, reconcile.Request{NamespacedName: types.NamespacedName{Name: t.Name}})
		}
	}
	return reqs
}
