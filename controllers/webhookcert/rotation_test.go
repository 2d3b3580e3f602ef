package webhookcert

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"sync"
	"testing"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	clocktesting "k8s.io/utils/clock/testing"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

func needAPIServer(t *testing.T) {
	t.Helper()
	if apiServer == nil {
		t.Skip("no API server (-short)")
	}
}

// waitFor polls cond until it holds or waitTimeout passes.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// step moves the fake clock by d and waits until the rotator's loop has synced and waits on
// the clock again.
func step(t *testing.T, r *Rotator, clk *clocktesting.FakeClock, d time.Duration) {
	t.Helper()
	waitFor(t, "the rotator to wait on the clock", clk.HasWaiters)
	before := r.syncs.Load()
	clk.Step(d)
	waitFor(t, "a sync after the clock moved", func() bool { return r.syncs.Load() > before && clk.HasWaiters() })
}

// state is what the API server holds: the Secret and both webhooks' caBundles.
type state struct {
	secret    corev1.Secret
	cas       []*x509.Certificate
	leaf      *x509.Certificate
	caBundles [][]byte
	configRV  string
}

func readState(t *testing.T, opts Options) state {
	t.Helper()
	ctx := context.Background()
	var s state
	if err := apiServer.Client.Get(ctx, client.ObjectKey{Namespace: opts.Namespace, Name: opts.SecretName}, &s.secret); err != nil {
		t.Fatal(err)
	}
	s.cas = parseCerts(s.secret.Data[KeyCA])
	if leafs := parseCerts(s.secret.Data[KeyCert]); len(leafs) == 1 {
		s.leaf = leafs[0]
	} else {
		t.Fatalf("Secret holds %d serving certificates, want 1", len(leafs))
	}
	var cfg admissionregistrationv1.MutatingWebhookConfiguration
	if err := apiServer.Client.Get(ctx, client.ObjectKey{Name: "authmesh-sidecar-injector"}, &cfg); err != nil {
		t.Fatal(err)
	}
	s.configRV = cfg.ResourceVersion
	for _, w := range cfg.Webhooks {
		s.caBundles = append(s.caBundles, w.ClientConfig.CABundle)
	}
	return s
}

// check verifies what must hold after every sync: both webhooks carry the Secret's bundle,
// the served certificate is the Secret's, and it verifies against the bundle at the fake time
// for every configured host.
func (s state) check(t *testing.T, r *Rotator, now time.Time) {
	t.Helper()
	if len(s.caBundles) != 2 {
		t.Fatalf("got %d webhooks, want 2", len(s.caBundles))
	}
	for i, b := range s.caBundles {
		if !bytes.Equal(b, s.secret.Data[KeyCA]) {
			t.Errorf("webhook %d: caBundle is not the Secret's ca.crt", i)
		}
	}
	served, err := r.GetCertificate(nil)
	if err != nil {
		t.Fatal(err)
	}
	if !served.Leaf.Equal(s.leaf) {
		t.Errorf("served certificate (serial %s) is not the Secret's (serial %s)", served.Leaf.SerialNumber, s.leaf.SerialNumber)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(s.secret.Data[KeyCA])
	for _, host := range hosts {
		if _, err := s.leaf.Verify(x509.VerifyOptions{Roots: pool, DNSName: host, CurrentTime: now}); err != nil {
			t.Errorf("the serving certificate does not verify for %s at %s: %v", host, now.Format(time.RFC3339), err)
		}
	}
}

// servedSerial is the serial number of the certificate the webhook server presents, over a
// real TLS connection verified against the bundle.
func servedSerial(t *testing.T, bundle []byte) string {
	t.Helper()
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(bundle)
	conn, err := tls.Dial("tcp", serverAddr, &tls.Config{RootCAs: pool, ServerName: hosts[0]})
	if err != nil {
		t.Fatalf("TLS to the webhook server: %v", err)
	}
	defer conn.Close()
	return conn.ConnectionState().PeerCertificates[0].SerialNumber.String()
}

// TestRotationWithInjectedClock follows the certificates through a CA's life with the fake
// clock: first issue, steady state, serving certificate renewal, CA renewal with the old CA kept
// in the bundle, the serving certificate moving to the new CA, and the old CA leaving the
// bundle once expired. While the fake time is within an hour of the real one, the real API
// server calls the webhook, so it trusts what the rotator published.
func TestRotationWithInjectedClock(t *testing.T) {
	needAPIServer(t)
	ctx := context.Background()
	opts := e2eOptions(hosts...)
	rotator, clk := startRotator(t, opts)
	t0 := clk.Now()

	waitFor(t, "the first sync", func() bool { return rotator.cert.Load() != nil && clk.HasWaiters() })
	first := readState(t, opts)
	first.check(t, rotator, clk.Now())
	if len(first.cas) != 1 {
		t.Fatalf("first sync: %d CAs in the bundle, want 1", len(first.cas))
	}
	if first.secret.Type != corev1.SecretTypeTLS {
		t.Errorf("Secret type %s, want %s", first.secret.Type, corev1.SecretTypeTLS)
	}
	// The API server learns the new caBundle through its informer; allow it that moment.
	var lastErr error
	deadline := time.Now().Add(waitTimeout)
	for lastErr = createInjectedPod(ctx); lastErr != nil; lastErr = createInjectedPod(ctx) {
		if time.Now().After(deadline) {
			t.Fatalf("the API server never called the webhook with the rotator's CA: %v", lastErr)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if got := servedSerial(t, first.secret.Data[KeyCA]); got != first.leaf.SerialNumber.String() {
		t.Errorf("served serial %s, want %s", got, first.leaf.SerialNumber)
	}
	ca0 := first.cas[0]

	t.Run("steady state writes nothing", func(t *testing.T) {
		step(t, rotator, clk, opts.ResyncInterval)
		s := readState(t, opts)
		if s.secret.ResourceVersion != first.secret.ResourceVersion || s.configRV != first.configRV {
			t.Errorf("Secret or webhook configuration rewritten in the steady state (resourceVersion %s -> %s, %s -> %s)",
				first.secret.ResourceVersion, s.secret.ResourceVersion, first.configRV, s.configRV)
		}
	})

	var leaf1 *x509.Certificate
	t.Run("serving certificate renewed by the same CA, served without a restart", func(t *testing.T) {
		step(t, rotator, clk, t0.Add(time.Hour).Sub(clk.Now())) // renewal is due 1 h after issue
		s := readState(t, opts)
		s.check(t, rotator, clk.Now())
		leaf1 = s.leaf
		if leaf1.Equal(first.leaf) {
			t.Fatal("the serving certificate was not renewed")
		}
		if len(s.cas) != 1 || !s.cas[0].Equal(ca0) || s.configRV != first.configRV {
			t.Errorf("the CA bundle changed on a serving certificate renewal")
		}
		if got := servedSerial(t, s.secret.Data[KeyCA]); got != leaf1.SerialNumber.String() {
			t.Errorf("served serial %s, want the renewed %s", got, leaf1.SerialNumber)
		}
		if err := createInjectedPod(ctx); err != nil {
			t.Errorf("after renewal: %v", err)
		}
	})

	var leaf2 *x509.Certificate
	t.Run("CA renewed: the new CA leads the bundle, the old one stays, the serving certificate is kept", func(t *testing.T) {
		step(t, rotator, clk, t0.Add(7*time.Hour+30*time.Minute).Sub(clk.Now())) // a fresh serving certificate from ca0
		leaf2 = readState(t, opts).leaf
		step(t, rotator, clk, t0.Add(8*time.Hour).Sub(clk.Now())) // the CA is due 8 h after issue
		s := readState(t, opts)
		s.check(t, rotator, clk.Now())
		if len(s.cas) != 2 || s.cas[0].Equal(ca0) || !s.cas[1].Equal(ca0) {
			t.Fatalf("bundle after CA renewal: %d CAs, want [new, old]", len(s.cas))
		}
		if !s.leaf.Equal(leaf2) {
			t.Errorf("the serving certificate changed on CA renewal; it should stay until its own renewal")
		}
	})

	t.Run("the next serving certificate comes from the new CA", func(t *testing.T) {
		step(t, rotator, clk, t0.Add(8*time.Hour+30*time.Minute).Sub(clk.Now()))
		s := readState(t, opts)
		s.check(t, rotator, clk.Now())
		if s.leaf.Equal(leaf2) {
			t.Fatal("the serving certificate was not renewed")
		}
		if err := s.leaf.CheckSignatureFrom(s.cas[0]); err != nil {
			t.Errorf("the renewed serving certificate is not signed by the new CA: %v", err)
		}
	})

	t.Run("the old CA leaves the bundle when it expires", func(t *testing.T) {
		step(t, rotator, clk, ca0.NotAfter.Sub(clk.Now()))
		s := readState(t, opts)
		s.check(t, rotator, clk.Now())
		if len(s.cas) != 1 || s.cas[0].Equal(ca0) {
			t.Errorf("bundle after the old CA expired: %d CAs, want the new one alone", len(s.cas))
		}
	})
}

// TestReplicasConverge: two replicas syncing at once from nothing end up serving the same
// certificate from the same Secret; the loser of the write race retries and adopts the
// winner's.
func TestReplicasConverge(t *testing.T) {
	needAPIServer(t)
	ctx := context.Background()
	cfg := &admissionregistrationv1.MutatingWebhookConfiguration{
		ObjectMeta: metav1.ObjectMeta{Name: "converge-test"},
		Webhooks: []admissionregistrationv1.MutatingWebhook{{
			Name:                    "never.converge-test.authmesh.dev",
			AdmissionReviewVersions: []string{"v1"},
			SideEffects:             ptr.To(admissionregistrationv1.SideEffectClassNone),
			ClientConfig:            admissionregistrationv1.WebhookClientConfig{URL: ptr.To("https://127.0.0.1:1/never")},
			ObjectSelector:          &metav1.LabelSelector{MatchLabels: map[string]string{"never": "matches"}},
			Rules: []admissionregistrationv1.RuleWithOperations{{
				Operations: []admissionregistrationv1.OperationType{admissionregistrationv1.Create},
				Rule:       admissionregistrationv1.Rule{APIGroups: []string{""}, APIVersions: []string{"v1"}, Resources: []string{"configmaps"}},
			}},
		}},
	}
	if err := apiServer.Client.Create(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = apiServer.Client.Delete(context.Background(), cfg) })

	opts := e2eOptions("converge.example.test")
	opts.SecretName = "converge-test"
	secret := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: opts.Namespace, Name: opts.SecretName}}
	if err := apiServer.Client.Delete(ctx, secret); client.IgnoreNotFound(err) != nil {
		t.Fatal(err)
	}
	opts.WebhookConfigurations = []string{cfg.Name}
	replicas := make([]*Rotator, 2)
	for i := range replicas {
		r, err := New(opts)
		if err != nil {
			t.Fatal(err)
		}
		r.client, r.reader = apiServer.Client, apiServer.Client
		replicas[i] = r
	}
	var wg sync.WaitGroup
	for _, r := range replicas {
		wg.Go(func() {
			for attempt := 0; attempt < 5; attempt++ {
				if _, err := r.sync(ctx); err == nil {
					return
				}
			}
		})
	}
	wg.Wait()
	var serials []string
	for i, r := range replicas {
		c, err := r.GetCertificate(nil)
		if err != nil {
			t.Fatalf("replica %d: %v", i, err)
		}
		serials = append(serials, c.Leaf.SerialNumber.String())
	}
	if serials[0] != serials[1] {
		t.Errorf("replicas serve different certificates: %v", serials)
	}
	if err := apiServer.Client.Get(ctx, client.ObjectKeyFromObject(secret), secret); err != nil {
		t.Fatal(err)
	}
	if got := fmt.Sprint(parseCerts(secret.Data[KeyCert])[0].SerialNumber); got != serials[0] {
		t.Errorf("replicas serve %s, the Secret holds %s", serials[0], got)
	}
	if err := apiServer.Client.Get(ctx, client.ObjectKeyFromObject(cfg), cfg); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(cfg.Webhooks[0].ClientConfig.CABundle, secret.Data[KeyCA]) {
		t.Errorf("the webhook's caBundle is not the Secret's ca.crt")
	}
}
