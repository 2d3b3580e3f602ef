package webhookcert

import (
	"bytes"
	"context"
	"crypto"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/clock"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/manager"
)

// The rotator reads and writes its Secret in the manager's namespace and patches the caBundle
// of the injector's webhook configuration.
// +kubebuilder:rbac:groups="",namespace=authmesh-system,resources=secrets,verbs=get;create;update
// +kubebuilder:rbac:groups=admissionregistration.k8s.io,resources=mutatingwebhookconfigurations,resourceNames=authmesh-sidecar-injector,verbs=get;update

// ManagedBy labels the Secret.
const ManagedBy = "authmesh-controller"

// Rotator keeps the webhook server's certificate: a CA and a serving certificate in a Secret,
// the CA bundle in the webhook configurations, and the serving certificate in memory for the
// webhook server's TLS (TLSOpts). It is a manager.Runnable that runs on every replica, leader
// or not, since every replica serves webhooks; replicas agree through the Secret (optimistic
// concurrency: one write wins, the others read what it wrote).
type Rotator struct {
	opts   Options
	hosts  []string
	clock  clock.Clock
	client client.Client // writes
	reader client.Reader // reads, uncached

	cert    atomic.Pointer[tls.Certificate]
	mu      sync.Mutex
	certPEM []byte       // what cert was loaded from
	syncs   atomic.Int64 // sync attempts by Start, for tests
}

// New validates opts and returns a Rotator with no clients yet: give its TLSOpts to the webhook
// server when creating the manager, then call SetupWithManager.
func New(opts Options) (*Rotator, error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	r := &Rotator{opts: opts, hosts: opts.hosts(), clock: opts.Clock}
	if r.clock == nil {
		r.clock = clock.RealClock{}
	}
	return r, nil
}

// SetupWithManager gives the Rotator mgr's clients (writes through the client, reads straight
// from the API server) and adds it to mgr.
func (r *Rotator) SetupWithManager(mgr manager.Manager) error {
	r.client, r.reader = mgr.GetClient(), mgr.GetAPIReader()
	return mgr.Add(r)
}

// TLSOpts makes a TLS server present the Rotator's serving certificate:
// webhook.Options{TLSOpts: rotator.TLSOpts()}. The certificate changes without a restart.
func (r *Rotator) TLSOpts() []func(*tls.Config) {
	return []func(*tls.Config){func(c *tls.Config) {
		c.GetCertificate = r.GetCertificate
		c.MinVersion = tls.VersionTLS12
	}}
}

// GetCertificate returns the current serving certificate, or an error before the first sync.
func (r *Rotator) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	if c := r.cert.Load(); c != nil {
		return c, nil
	}
	return nil, errors.New("authmesh webhook: no serving certificate yet")
}

// ReadyCheck fails until the Rotator holds a serving certificate; add it to the manager's
// readiness checks, so the webhook Service sends requests only to replicas that can answer.
func (r *Rotator) ReadyCheck() healthz.Checker {
	return func(*http.Request) error {
		if r.cert.Load() == nil {
			return errors.New("no webhook serving certificate yet")
		}
		return nil
	}
}

// NeedLeaderElection is false: every replica serves webhooks and needs the certificate.
func (r *Rotator) NeedLeaderElection() bool { return false }

// Start syncs at once, then whenever a certificate falls due for renewal, at least every
// ResyncInterval, and after a failure with a backoff from 1 s up to ResyncInterval. It returns
// when ctx ends.
func (r *Rotator) Start(ctx context.Context) error {
	log := logf.FromContext(ctx).WithName("webhookcert")
	ctx = logf.IntoContext(ctx, log)
	backoff := time.Second
	for {
		wait := r.opts.ResyncInterval
		next, err := r.sync(ctx)
		r.syncs.Add(1)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			log.Error(err, "syncing the webhook certificate; retrying", "in", backoff)
			wait, backoff = backoff, min(2*backoff, r.opts.ResyncInterval)
		} else {
			backoff = time.Second
			if due := next.Sub(r.clock.Now()); due < wait {
				wait = max(due, 0)
			}
		}
		t := r.clock.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C():
		}
	}
}

// sync brings the Secret, the in-memory certificate and the caBundles up to date, and returns
// when something falls due next.
func (r *Rotator) sync(ctx context.Context) (time.Time, error) {
	now := r.clock.Now()
	key := client.ObjectKey{Namespace: r.opts.Namespace, Name: r.opts.SecretName}
	var secret corev1.Secret
	err := r.reader.Get(ctx, key, &secret)
	exists := err == nil
	if err != nil && !apierrors.IsNotFound(err) {
		return time.Time{}, fmt.Errorf("reading Secret %s: %w", key, err)
	}
	d, err := r.decide(now, secret.Data)
	if err != nil {
		return time.Time{}, err
	}
	data := secret.Data
	if d.data != nil {
		if exists {
			secret.Data = d.data
			err = r.client.Update(ctx, &secret)
		} else {
			secret = corev1.Secret{
				ObjectMeta: metav1.ObjectMeta{Namespace: key.Namespace, Name: key.Name, Labels: map[string]string{
					"app.kubernetes.io/managed-by": ManagedBy,
					"app.kubernetes.io/component":  "webhook",
				}},
				Type: corev1.SecretTypeTLS,
				Data: d.data,
			}
			err = r.client.Create(ctx, &secret)
		}
		if err != nil {
			// A conflict or AlreadyExists means another replica wrote first: the retry reads it.
			return time.Time{}, fmt.Errorf("writing Secret %s: %w", key, err)
		}
		logf.FromContext(ctx).Info("webhook certificate Secret written", "secret", key.String(), "changes", d.why)
		data = d.data
	}
	if err := r.load(data); err != nil {
		return time.Time{}, err
	}
	if err := r.patchCABundles(ctx, data[KeyCA]); err != nil {
		return time.Time{}, err
	}
	return d.next, nil
}

// decision is what a sync decided about the Secret's data.
type decision struct {
	data byte2d    // the new data, or nil when nothing changes
	why  []string  // what changed, for the log
	next time.Time // when something falls due next
}

// byte2d is a Secret's data.
type byte2d = map[string][]byte

// decide works out the Secret's data at now:
//
//   - the CA is kept while it has more than CARenewBefore left and its key matches; otherwise a
//     new CA becomes current, and the previous ones stay in the bundle until they expire;
//   - the serving certificate is kept while it has more than CertRenewBefore left, matches its
//     key, names exactly the configured hosts and verifies against the bundle; otherwise a new
//     one is issued by the current CA. When its renewal falls due in the sync that renewed the
//     CA, it is kept one more sync (ResyncInterval), so that the new CA is in every caBundle
//     before a certificate it signed is served.
func (r *Rotator) decide(now time.Time, old byte2d) (decision, error) {
	o := r.opts
	m := parseMaterial(old)
	data := maps.Clone(old)
	if data == nil {
		data = byte2d{}
	}
	var d decision

	// The CA bundle: the current CA first, then earlier CAs until they expire.
	var ca *x509.Certificate
	caKey := m.caKey
	if len(m.cas) > 0 && m.cas[0].IsCA && matches(m.cas[0], caKey) && now.Before(m.cas[0].NotAfter.Add(-o.CARenewBefore)) {
		ca = m.cas[0]
	}
	var retired []*x509.Certificate
	for i, c := range m.cas {
		if (i > 0 || ca == nil) && c.IsCA && now.Before(c.NotAfter) {
			retired = append(retired, c)
		}
	}
	if ca == nil {
		var err error
		if ca, caKey, err = newCA(now, o.CAValidity, "authmesh-webhook"); err != nil {
			return decision{}, err
		}
		keyPEM, err := encodeKey(caKey)
		if err != nil {
			return decision{}, err
		}
		data[KeyCAKey] = keyPEM
		if len(m.cas) == 0 {
			d.why = append(d.why, "CA created")
		} else {
			d.why = append(d.why, "CA renewed")
		}
	}
	cas := append([]*x509.Certificate{ca}, retired...)
	if bundle := encodeCerts(cas...); !bytes.Equal(bundle, old[KeyCA]) {
		data[KeyCA] = bundle
		if len(d.why) == 0 {
			d.why = append(d.why, "expired CA removed from the bundle")
		}
	}

	// The serving certificate.
	leaf := m.leaf
	caRenewed := len(d.why) > 0 && d.why[0] == "CA renewed"
	deferred := false
	switch {
	case leaf == nil || !matches(leaf, m.leafKey):
		d.why = append(d.why, "serving certificate issued")
		leaf = nil
	case !coversExactly(leaf, r.hosts):
		d.why = append(d.why, "serving certificate reissued for new hosts")
		leaf = nil
	case !now.Before(leaf.NotAfter):
		d.why = append(d.why, "serving certificate expired: issued anew")
		leaf = nil
	case !chainsTo(leaf, cas, now):
		d.why = append(d.why, "serving certificate reissued: not signed by a CA in the bundle")
		leaf = nil
	case !now.Before(leaf.NotAfter.Add(-o.CertRenewBefore)) && caRenewed:
		// Due, but still valid: keep it one more sync, so the new CA is in every caBundle
		// before anything it signs is served.
		deferred = true
	case !now.Before(leaf.NotAfter.Add(-o.CertRenewBefore)):
		d.why = append(d.why, "serving certificate renewed")
		leaf = nil
	}
	if leaf == nil {
		var (
			key crypto.Signer
			err error
		)
		if leaf, key, err = newLeaf(now, o.CertValidity, r.hosts, ca, caKey); err != nil {
			return decision{}, err
		}
		keyPEM, err := encodeKey(key)
		if err != nil {
			return decision{}, err
		}
		data[KeyCert], data[KeyKey] = encodeCerts(leaf), keyPEM
	}

	// Next due: the CA's or the serving certificate's renewal, or a retired CA's expiry.
	d.next = ca.NotAfter.Add(-o.CARenewBefore)
	if t := leaf.NotAfter.Add(-o.CertRenewBefore); t.Before(d.next) {
		d.next = t
	}
	if deferred {
		d.next = now.Add(o.ResyncInterval)
	}
	for _, c := range retired {
		if c.NotAfter.Before(d.next) {
			d.next = c.NotAfter
		}
	}
	if len(d.why) > 0 {
		d.data = data
	}
	return d, nil
}

// load makes data's serving certificate the one the webhook server presents.
func (r *Rotator) load(data byte2d) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.cert.Load() != nil && bytes.Equal(r.certPEM, data[KeyCert]) {
		return nil
	}
	pair, err := keyPair(data)
	if err != nil {
		return fmt.Errorf("loading the serving certificate: %w", err)
	}
	r.cert.Store(pair)
	r.certPEM = bytes.Clone(data[KeyCert])
	return nil
}

// patchCABundles writes bundle into every webhook of the configured webhook configurations
// whose caBundle differs.
func (r *Rotator) patchCABundles(ctx context.Context, bundle []byte) error {
	for _, name := range r.opts.WebhookConfigurations {
		var cfg admissionregistrationv1.MutatingWebhookConfiguration
		if err := r.reader.Get(ctx, client.ObjectKey{Name: name}, &cfg); err != nil {
			return fmt.Errorf("reading MutatingWebhookConfiguration %s: %w", name, err)
		}
		changed := false
		for i := range cfg.Webhooks {
			if !bytes.Equal(cfg.Webhooks[i].ClientConfig.CABundle, bundle) {
				cfg.Webhooks[i].ClientConfig.CABundle = bytes.Clone(bundle)
				changed = true
			}
		}
		if !changed {
			continue
		}
		if err := r.client.Update(ctx, &cfg); err != nil {
			return fmt.Errorf("writing the caBundle of MutatingWebhookConfiguration %s: %w", name, err)
		}
		logf.FromContext(ctx).Info("caBundle written", "mutatingWebhookConfiguration", name)
	}
	return nil
}
