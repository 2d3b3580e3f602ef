// Package kube is the Kubernetes tenant source of the auth server: it watches Tenant objects
// (cluster-scoped) and their Secrets tenant-<name>-db and tenant-<name>-keys in the
// controller's namespace through controller-runtime's informer cache, and reports each tenant
// to a tenancy.Sink whenever any of the three changes. A key rotation (a new jwks.json /
// active-kid in the keys Secret) therefore reaches the registry within one watch event, with
// no restart.
//
// A Tenant's spec.email.smtpSecretRef names a Secret in the same namespace with its own SMTP
// server (keys host, port, username, password, tls; see mail.FromSecret); it is read from the
// API server directly, and a change of it reports the tenants that name it. A named Secret
// that is missing or unusable makes the tenant's mail fail (EMAIL_UNAVAILABLE) rather than go
// out through the auth server's SMTP server.
//
// It only reads: provisioning and status belong to the controller. Other Secrets of the
// namespace are cached with their data stripped. RBAC it needs: get/list/watch on
// tenants.authmesh.dev, and on secrets in the controller's namespace.
package kube

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	toolscache "k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/workqueue"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	authmeshv1alpha1 "github.com/authmesh/authmesh/api/v1alpha1"
	"github.com/authmesh/authmesh/authserver/mail"
	"github.com/authmesh/authmesh/authserver/tenancy"
	"github.com/authmesh/authmesh/internal/keys"
)

// Secret data keys of tenant-<name>-db.
const (
	SecretKeyURI      = "uri"
	SecretKeyDatabase = "database"
)

// DBSecretName and KeysSecretName are the Secrets the controller writes for a tenant.
func DBSecretName(tenant string) string   { return "tenant-" + tenant + "-db" }
func KeysSecretName(tenant string) string { return "tenant-" + tenant + "-keys" }

// tenantOfSecret returns the tenant a Secret belongs to, by its name.
func tenantOfSecret(name string) (string, bool) {
	rest, ok := strings.CutPrefix(name, "tenant-")
	if !ok {
		return "", false
	}
	for _, suffix := range []string{"-db", "-keys"} {
		if t, ok := strings.CutSuffix(rest, suffix); ok && t != "" {
			return t, true
		}
	}
	return "", false
}

// Options configures a Source.
type Options struct {
	// Config reaches the API server.
	Config *rest.Config
	// Namespace is the controller's namespace, where the tenants' Secrets live.
	Namespace string
	// Logger receives problems with Secrets; nil discards them.
	Logger *slog.Logger
}

// Source is the Kubernetes tenant source.
type Source struct {
	opts   Options
	scheme *runtime.Scheme

	// smtp is, per tenant that names an SMTP Secret, that Secret and what reading it last
	// gave (kept through a failed read of the API server); the Secret watch finds the tenants
	// to report in it. Written by report.
	smtpMu sync.Mutex
	smtp   map[string]smtpResult
}

// smtpResult is what a tenant's SMTP Secret read as.
type smtpResult struct {
	secret string
	cfg    *mail.SMTPConfig
	err    error
}

// smtpRetry is how soon a tenant is reported again after its SMTP Secret could not be read.
const smtpRetry = 5 * time.Second

// NewSource returns a Source.
func NewSource(opts Options) (*Source, error) {
	if opts.Config == nil || opts.Namespace == "" {
		return nil, errors.New("kube: a tenant source needs a rest config and the controller's namespace")
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	scheme := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		return nil, err
	}
	if err := authmeshv1alpha1.AddToScheme(scheme); err != nil {
		return nil, err
	}
	return &Source{opts: opts, scheme: scheme, smtp: map[string]smtpResult{}}, nil
}

// Run implements tenancy.Source.
func (s *Source) Run(ctx context.Context, sink tenancy.Sink) error {
	c, err := cache.New(s.opts.Config, cache.Options{
		Scheme: s.scheme,
		ByObject: map[client.Object]cache.ByObject{
			&corev1.Secret{}: {
				Namespaces: map[string]cache.Config{s.opts.Namespace: {}},
				Transform:  stripOtherSecrets,
			},
		},
	})
	if err != nil {
		return fmt.Errorf("kube: creating the cache: %w", err)
	}
	// SMTP Secrets are read straight from the API server: the cache strips the data of
	// every Secret that is not a tenant's own, and which ones Tenants name is only known
	// after they are read.
	direct, err := client.New(s.opts.Config, client.Options{Scheme: s.scheme})
	if err != nil {
		return fmt.Errorf("kube: creating a client: %w", err)
	}
	queue := workqueue.NewTypedDelayingQueue[string]()
	defer queue.ShutDown()

	tenantInformer, err := c.GetInformer(ctx, &authmeshv1alpha1.Tenant{})
	if err != nil {
		return fmt.Errorf("kube: watching Tenants: %w", err)
	}
	if _, err := tenantInformer.AddEventHandler(handler(func(obj any) {
		if key, err := toolscache.DeletionHandlingMetaNamespaceKeyFunc(obj); err == nil {
			queue.Add(key) // a cluster-scoped object's key is its name
		}
	})); err != nil {
		return err
	}
	secretInformer, err := c.GetInformer(ctx, &corev1.Secret{})
	if err != nil {
		return fmt.Errorf("kube: watching Secrets in %s: %w", s.opts.Namespace, err)
	}
	if _, err := secretInformer.AddEventHandler(handler(func(obj any) {
		key, err := toolscache.DeletionHandlingMetaNamespaceKeyFunc(obj)
		if err != nil {
			return
		}
		_, name, _ := toolscache.SplitMetaNamespaceKey(key)
		if tenant, ok := tenantOfSecret(name); ok {
			queue.Add(tenant)
		}
		for _, tenant := range s.tenantsUsingSMTP(name) {
			queue.Add(tenant)
		}
	})); err != nil {
		return err
	}

	cacheErr := make(chan error, 1)
	go func() { cacheErr <- c.Start(ctx) }()
	if !c.WaitForCacheSync(ctx) {
		select {
		case err := <-cacheErr:
			return fmt.Errorf("kube: tenant cache: %w", err)
		default:
		}
		if ctx.Err() != nil {
			return nil
		}
		return errors.New("kube: the tenant cache did not sync")
	}

	// Report every tenant once before saying the initial load is done.
	var list authmeshv1alpha1.TenantList
	if err := c.List(ctx, &list); err != nil {
		return fmt.Errorf("kube: listing Tenants: %w", err)
	}
	for i := range list.Items {
		if s.report(ctx, c, direct, sink, list.Items[i].Name) {
			queue.AddAfter(list.Items[i].Name, smtpRetry)
		}
	}
	sink.Synced()

	go func() {
		<-ctx.Done()
		queue.ShutDown()
	}()
	for {
		name, shutdown := queue.Get()
		if shutdown {
			return nil
		}
		if s.report(ctx, c, direct, sink, name) {
			queue.AddAfter(name, smtpRetry)
		}
		queue.Done(name)
	}
}

// report reads a tenant and its Secrets from the cache (its SMTP Secret from the API server,
// through direct) and tells the sink. It returns true when the SMTP Secret could not be read
// and the tenant should be reported again soon.
func (s *Source) report(ctx context.Context, c, direct client.Reader, sink tenancy.Sink, name string) (retry bool) {
	log := s.opts.Logger.With("tenant", name)
	var t authmeshv1alpha1.Tenant
	if err := c.Get(ctx, types.NamespacedName{Name: name}, &t); err != nil {
		if apierrors.IsNotFound(err) {
			s.forgetSMTP(name)
			sink.Delete(name)
		} else {
			log.Error("reading Tenant from the cache", "error", err.Error())
		}
		return false
	}
	if !t.DeletionTimestamp.IsZero() {
		s.forgetSMTP(name)
		sink.Delete(name)
		return false
	}
	spec := *t.Spec.DeepCopy()
	tenancy.ApplyDefaults(&spec)
	cfg := tenancy.Config{
		Name:         name,
		Spec:         spec,
		Phase:        t.Status.Phase,
		StatusIssuer: t.Status.Issuer,
		DatabaseName: t.Status.DatabaseName,
	}
	if cfg.DatabaseName == "" {
		cfg.DatabaseName = tenancy.DatabaseName(name, &spec)
	}

	dbSecret := DBSecretName(name)
	if data, err := s.secretData(ctx, c, dbSecret); err != nil {
		log.Error("reading the database Secret", "secret", dbSecret, "error", err.Error())
	} else if data != nil {
		cfg.URI = strings.TrimSpace(string(data[SecretKeyURI]))
		if db := strings.TrimSpace(string(data[SecretKeyDatabase])); db != "" {
			cfg.DatabaseName = db
		}
	}

	keysSecret := KeysSecretName(name)
	if data, err := s.secretData(ctx, c, keysSecret); err != nil {
		log.Error("reading the signing keys Secret", "secret", keysSecret, "error", err.Error())
	} else if data != nil {
		set, err := keys.ParsePrivateSet(data[keys.SecretKeyJWKS], strings.TrimSpace(string(data[keys.SecretKeyActiveKID])))
		if err != nil {
			cfg.KeysErr = fmt.Errorf("signing keys Secret %s/%s: %w", s.opts.Namespace, keysSecret, err)
		} else {
			cfg.Keys = set
		}
	}
	if ref := spec.Email.SMTPSecretRef.Name; ref == "" {
		s.forgetSMTP(name)
	} else {
		res, transient := s.smtpServer(ctx, direct, ref)
		if transient {
			log.Warn("reading the SMTP Secret failed; retrying", "secret", ref, "error", res.err.Error())
			retry = true
		}
		s.smtpMu.Lock()
		if last, ok := s.smtp[name]; transient && ok && last.secret == ref {
			// Keep what the Secret read as last time rather than fail the tenant's mail for
			// an API server blip, and try again soon.
			res = last
		}
		s.smtp[name] = res
		s.smtpMu.Unlock()
		cfg.SMTP, cfg.SMTPErr = res.cfg, res.err
	}
	sink.Upsert(cfg)
	return retry
}

// smtpServer reads the SMTP server a tenant names in spec.email.smtpSecretRef; transient is
// set when the API server could not be asked (as opposed to a missing or unusable Secret).
func (s *Source) smtpServer(ctx context.Context, direct client.Reader, secret string) (res smtpResult, transient bool) {
	where := fmt.Sprintf("Secret %s/%s (spec.email.smtpSecretRef)", s.opts.Namespace, secret)
	res.secret = secret
	data, err := s.secretData(ctx, direct, secret)
	switch {
	case err != nil:
		res.err = fmt.Errorf("reading %s: %w", where, err)
		return res, true
	case data == nil:
		res.err = fmt.Errorf("%s does not exist", where)
		return res, false
	}
	cfg, err := mail.FromSecret(data)
	if err != nil {
		res.err = fmt.Errorf("%s: %w", where, err)
		return res, false
	}
	res.cfg = &cfg
	return res, false
}

func (s *Source) forgetSMTP(tenant string) {
	s.smtpMu.Lock()
	defer s.smtpMu.Unlock()
	delete(s.smtp, tenant)
}

// tenantsUsingSMTP returns the tenants that name secret as their SMTP server.
func (s *Source) tenantsUsingSMTP(secret string) []string {
	s.smtpMu.Lock()
	defer s.smtpMu.Unlock()
	var out []string
	for tenant, r := range s.smtp {
		if r.secret == secret {
			out = append(out, tenant)
		}
	}
	return out
}

// secretData returns a Secret's data, or nil when it does not exist.
func (s *Source) secretData(ctx context.Context, c client.Reader, name string) (map[string][]byte, error) {
	var sec corev1.Secret
	err := c.Get(ctx, types.NamespacedName{Namespace: s.opts.Namespace, Name: name}, &sec)
	if apierrors.IsNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return sec.Data, nil
}

// stripOtherSecrets drops the data of Secrets that belong to no tenant before they are cached,
// so the auth server holds no credentials it does not use.
func stripOtherSecrets(obj any) (any, error) {
	if sec, ok := obj.(*corev1.Secret); ok {
		if _, mine := tenantOfSecret(sec.Name); !mine {
			sec.Data, sec.StringData = nil, nil
		}
	}
	return obj, nil
}

func handler(enqueue func(obj any)) toolscache.ResourceEventHandlerFuncs {
	return toolscache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj any) { enqueue(obj) },
		UpdateFunc: func(_, obj any) { enqueue(obj) },
		DeleteFunc: enqueue,
	}
}
