package kube_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	josejwt "github.com/go-jose/go-jose/v4/jwt"
	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	authmeshv1alpha1 "github.com/authmesh/authmesh/api/v1alpha1"
	"github.com/authmesh/authmesh/authserver"
	"github.com/authmesh/authmesh/authserver/httpapi"
	"github.com/authmesh/authmesh/authserver/mail"
	"github.com/authmesh/authmesh/authserver/tenancy"
	"github.com/authmesh/authmesh/authserver/tenancy/kube"
	"github.com/authmesh/authmesh/authserver/tokens"
	"github.com/authmesh/authmesh/internal/keys"
	"github.com/authmesh/authmesh/internal/testenv"
)

const namespace = "authmesh-system"

var (
	apiServer *testenv.APIServer
	testDB    *testenv.Mongo
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
	if testDB, err = testenv.StartMongo(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer testDB.Stop()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: namespace}}
	if err := apiServer.Client.Create(contextTODO(), ns); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return m.Run()
}

// TestDefaultsMatchTheAPIServer proves that the defaults applied in Go to file tenants are
// the ones the CRD schema gives Tenants in Kubernetes.
func TestDefaultsMatchTheAPIServer(t *testing.T) {
	c := apiServer.Client
	in := &authmeshv1alpha1.Tenant{ObjectMeta: metav1.ObjectMeta{Name: uniqueName("defaults")}}
	if err := c.Create(t.Context(), in); err != nil {
		t.Fatal(err)
	}
	var got authmeshv1alpha1.Tenant
	if err := c.Get(t.Context(), client.ObjectKey{Name: in.Name}, &got); err != nil {
		t.Fatal(err)
	}
	var want authmeshv1alpha1.TenantSpec
	tenancy.ApplyDefaults(&want)
	if diff := cmp.Diff(want, got.Spec); diff != "" {
		t.Errorf("Go defaults differ from the API server's (-go +apiserver):\n%s", diff)
	}
	again := *got.Spec.DeepCopy()
	tenancy.ApplyDefaults(&again)
	if diff := cmp.Diff(got.Spec, again); diff != "" {
		t.Errorf("ApplyDefaults changed a defaulted spec:\n%s", diff)
	}
	if p := tenancy.Validate(got.Name, &got.Spec); len(p) > 0 {
		t.Errorf("Validate refuses what the API server accepted: %v", p)
	}
}

// cluster is a tenant registry fed by the Kubernetes source, behind the real public handler.
type cluster struct {
	srv    *authserver.Server
	public *httptest.Server
}

func startCluster(t *testing.T) *cluster {
	t.Helper()
	cfg := authserver.DefaultConfig()
	cfg.MongoPingTimeout = 500 * time.Millisecond
	public := httptest.NewUnstartedServer(nil)
	cfg.PublicURL = "http://" + public.Listener.Addr().String()
	srv, err := authserver.New(cfg, nil, prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	public.Config.Handler = srv.PublicHandler()
	public.Start()
	src, err := kube.NewSource(kube.Options{Config: apiServer.Config, Namespace: namespace})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	ctx, cancel := contextWithCancel()
	go func() { done <- srv.Run(ctx, src) }()
	t.Cleanup(func() {
		public.Close()
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
		srv.Close()
	})
	eventually(t, "the cache syncs", func() bool { return srv.Registry.Ready() == nil })
	return &cluster{srv: srv, public: public}
}

// provision does what the controller does for a Ready tenant: its Secrets and its status.
func provision(t *testing.T, name string, set *keys.PrivateSet) (dbName string) {
	t.Helper()
	c := apiServer.Client
	tenant := &authmeshv1alpha1.Tenant{ObjectMeta: metav1.ObjectMeta{Name: name}}
	if err := c.Create(t.Context(), tenant); err != nil {
		t.Fatal(err)
	}
	db := testDB.Database(t)
	secrets := []*corev1.Secret{
		{ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: kube.DBSecretName(name)},
			Data: map[string][]byte{"uri": []byte(testDB.URI), "database": []byte(db.Name())}},
		keysSecret(t, name, set),
	}
	for _, s := range secrets {
		if err := c.Create(t.Context(), s); err != nil {
			t.Fatal(err)
		}
	}
	setPhase(t, name, authmeshv1alpha1.TenantPhaseReady)
	return db.Name()
}

func keysSecret(t *testing.T, name string, set *keys.PrivateSet) *corev1.Secret {
	t.Helper()
	data, err := set.MarshalJWKS()
	if err != nil {
		t.Fatal(err)
	}
	return &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: kube.KeysSecretName(name)},
		Data:       map[string][]byte{keys.SecretKeyJWKS: data, keys.SecretKeyActiveKID: []byte(set.ActiveKID)},
	}
}

func setPhase(t *testing.T, name string, phase authmeshv1alpha1.TenantPhase) {
	t.Helper()
	update(t, name, func(tn *authmeshv1alpha1.Tenant) error {
		tn.Status.Phase = phase
		tn.Status.DatabaseName = "authmesh_" + name
		return apiServer.Client.Status().Update(t.Context(), tn)
	})
}

// update applies change to the current Tenant, retrying on conflicts.
func update(t *testing.T, name string, change func(*authmeshv1alpha1.Tenant) error) {
	t.Helper()
	if err := testenv.UpdateTenant(t.Context(), apiServer.Client, name, change); err != nil {
		t.Fatal(err)
	}
}

func rotateSecret(t *testing.T, name string, set *keys.PrivateSet, alg string) *keys.PrivateSet {
	t.Helper()
	k, err := keys.Generate(alg)
	if err != nil {
		t.Fatal(err)
	}
	next := &keys.PrivateSet{Keys: append([]jose.JSONWebKey{k}, set.Keys...), ActiveKID: k.KeyID}
	if err := apiServer.Client.Update(t.Context(), keysSecret(t, name, next)); err != nil {
		t.Fatal(err)
	}
	return next
}

func newSet(t *testing.T, alg string) *keys.PrivateSet {
	t.Helper()
	k, err := keys.Generate(alg)
	if err != nil {
		t.Fatal(err)
	}
	return &keys.PrivateSet{Keys: []jose.JSONWebKey{k}, ActiveKID: k.KeyID}
}

// code is the outcome of acquiring the tenant with its database: "" or the error code.
func (c *cluster) code(t *testing.T, name string) string {
	t.Helper()
	_, release, err := c.srv.Registry.Acquire(t.Context(), name, true)
	if err == nil {
		release()
		return ""
	}
	var e *httpapi.Error
	if !errors.As(err, &e) {
		t.Fatalf("Acquire: %v", err)
	}
	return e.Code
}

func (c *cluster) kid(t *testing.T, name string) string {
	t.Helper()
	tenant, release, err := c.srv.Registry.Acquire(t.Context(), name, false)
	if err != nil {
		return ""
	}
	release()
	return tenant.Tokens.KeyID()
}

func TestSourceFollowsTenantsAndSecrets(t *testing.T) {
	c := startCluster(t)
	name := uniqueName("kt1")
	set := newSet(t, keys.EdDSA)
	dbName := provision(t, name, set)
	eventually(t, "the tenant serves", func() bool { return c.code(t, name) == "" })

	tenant, release, err := c.srv.Registry.Acquire(t.Context(), name, true)
	if err != nil {
		t.Fatal(err)
	}
	if tenant.Tokens.KeyID() != set.ActiveKID || tenant.Spec.Tokens.AccessTokenTTL.Duration != 15*time.Minute || tenant.DB == nil {
		t.Errorf("tenant %+v, want the Secret's key, the spec's defaults and a database", tenant)
	}
	if tenant.DatabaseName != dbName {
		t.Errorf("database %q, want the -db Secret's %q", tenant.DatabaseName, dbName)
	}
	if err := tenant.DB.Client().Ping(t.Context(), nil); err != nil {
		t.Errorf("the tenant's database does not answer: %v", err)
	}
	release()

	steps := []struct {
		name     string
		change   func()
		wantCode string
	}{
		{"key rotation", func() { set = rotateSecret(t, name, set, keys.ES256) }, ""},
		{"suspended", func() {
			update(t, name, func(tn *authmeshv1alpha1.Tenant) error {
				tn.Spec.Suspended = true
				return apiServer.Client.Update(t.Context(), tn)
			})
		}, httpapi.CodeTenantSuspended},
		{"resumed", func() {
			update(t, name, func(tn *authmeshv1alpha1.Tenant) error {
				tn.Spec.Suspended = false
				return apiServer.Client.Update(t.Context(), tn)
			})
		}, ""},
		{"not ready", func() { setPhase(t, name, authmeshv1alpha1.TenantPhaseProvisioning) }, httpapi.CodeTenantConnectionMissing},
		{"ready again", func() { setPhase(t, name, authmeshv1alpha1.TenantPhaseReady) }, ""},
		{"db Secret deleted", func() {
			sec := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: kube.DBSecretName(name)}}
			if err := apiServer.Client.Delete(t.Context(), sec); err != nil {
				t.Fatal(err)
			}
		}, httpapi.CodeTenantConnectionMissing},
		{"Tenant deleted", func() {
			if err := apiServer.Client.Delete(t.Context(), &authmeshv1alpha1.Tenant{ObjectMeta: metav1.ObjectMeta{Name: name}}); err != nil {
				t.Fatal(err)
			}
		}, httpapi.CodeTenantNotFound},
	}
	for _, step := range steps {
		step.change()
		eventually(t, step.name+" answers "+step.wantCode, func() bool { return c.code(t, name) == step.wantCode })
		if step.name == "key rotation" {
			eventually(t, "the new key signs", func() bool { return c.kid(t, name) == set.ActiveKID })
		}
	}
}

// TestSecretRotationFailsNoRequest rotates the keys Secret while clients get tokens and
// verify them against the tenant's JWKS over HTTP.
func TestSecretRotationFailsNoRequest(t *testing.T) {
	c := startCluster(t)
	name := uniqueName("kt2")
	set := newSet(t, keys.EdDSA)
	provision(t, name, set)
	eventually(t, "the tenant serves", func() bool { return c.code(t, name) == "" })

	var (
		done      atomic.Bool
		succeeded atomic.Int64
		mu        sync.Mutex
		failures  []string
		seen      = map[string]bool{}
		wg        sync.WaitGroup
	)
	for range 3 {
		wg.Go(func() {
			for i := 0; i < 2000 && !done.Load(); i++ {
				kid, err := issueAndVerify(c, name)
				mu.Lock()
				if err != nil {
					failures = append(failures, err.Error())
				} else {
					seen[kid] = true
					succeeded.Add(1)
				}
				mu.Unlock()
			}
		})
	}
	waitForTraffic := func(n int64) {
		target := succeeded.Load() + n
		eventually(t, "requests flow", func() bool { return succeeded.Load() >= target })
	}
	waitForTraffic(10)
	kids := []string{set.ActiveKID}
	for _, alg := range []string{keys.ES256, keys.EdDSA} {
		set = rotateSecret(t, name, set, alg)
		eventually(t, "the new key signs", func() bool { return c.kid(t, name) == set.ActiveKID })
		kids = append(kids, set.ActiveKID)
		waitForTraffic(10)
	}
	done.Store(true)
	wg.Wait()
	if len(failures) > 0 {
		t.Fatalf("%d requests failed during rotation, first: %s", len(failures), failures[0])
	}
	for _, kid := range kids {
		if !seen[kid] {
			t.Errorf("no verified token was signed by %s", kid)
		}
	}
}

// issueAndVerify issues a token the way a login handler does (a tenant snapshot's signer) and
// verifies it against the JWKS served over HTTP at that moment.
func issueAndVerify(c *cluster, name string) (string, error) {
	tenant, release, err := c.srv.Registry.Acquire(contextTODO(), name, false)
	if err != nil {
		return "", err
	}
	issued, err := tenant.Tokens.Issue(tokens.Subject{UserID: "u1", Role: "user", SessionID: "s1"})
	release()
	if err != nil {
		return "", err
	}
	resp, err := http.Get(c.public.URL + "/t/" + name + "/.well-known/jwks.json")
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	var set jose.JSONWebKeySet
	if err := json.NewDecoder(resp.Body).Decode(&set); err != nil || resp.StatusCode != 200 {
		return "", fmt.Errorf("JWKS: %d %v", resp.StatusCode, err)
	}
	tok, err := josejwt.ParseSigned(issued.Token, []jose.SignatureAlgorithm{jose.EdDSA, jose.ES256})
	if err != nil {
		return "", err
	}
	kid := tok.Headers[0].KeyID
	matching := set.Key(kid)
	if len(matching) != 1 {
		return kid, fmt.Errorf("kid %s not in the JWKS", kid)
	}
	var claims josejwt.Claims
	if err := tok.Claims(matching[0].Key, &claims); err != nil {
		return kid, err
	}
	return kid, claims.ValidateWithLeeway(josejwt.Expected{Issuer: c.public.URL + "/t/" + name, Time: time.Now()}, 30*time.Second)
}

var names atomic.Int64

// uniqueName keeps tests apart on the shared API server, also under -count.
func uniqueName(prefix string) string {
	return fmt.Sprintf("%s-%d", prefix, names.Add(1))
}

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting until %s", what)
		}
		time.Sleep(25 * time.Millisecond)
	}
}

// TestTenantSMTPSecret: a tenant's spec.email.smtpSecretRef gives it its own mail server,
// followed as the Secret appears and changes; a missing or unusable one fails the tenant's
// mail instead of falling back to the auth server's; without one the tenant has no Mailer.
func TestTenantSMTPSecret(t *testing.T) {
	own, err := testenv.StartSMTP()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = own.Stop() })
	host, port, _ := strings.Cut(own.Addr, ":")

	c := startCluster(t)
	name, secretName := uniqueName("smtp"), uniqueName("smtp-secret")
	provision(t, name, newSet(t, keys.EdDSA))
	update(t, name, func(tn *authmeshv1alpha1.Tenant) error {
		tn.Spec.Email.SMTPSecretRef.Name = secretName
		return apiServer.Client.Update(t.Context(), tn)
	})
	send := func() error {
		tenant, release, err := c.srv.Registry.Acquire(t.Context(), name, false)
		if err != nil {
			return err
		}
		defer release()
		if tenant.Mailer == nil {
			return errors.New("no Mailer of its own")
		}
		return tenant.Mailer.Send(t.Context(), mail.Message{From: "no-reply@acme.example", To: "user@acme.example", Subject: "s", Text: "t"})
	}
	var last error
	eventually(t, "mail fails while the named Secret is missing", func() bool {
		last = send()
		return last != nil && strings.Contains(last.Error(), secretName+" (spec.email.smtpSecretRef) does not exist")
	})

	secret := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: secretName},
		Data: map[string][]byte{"host": []byte(host), "port": []byte(port), "tls": []byte("none")}}
	if err := apiServer.Client.Create(t.Context(), secret); err != nil {
		t.Fatal(err)
	}
	eventually(t, "mail goes through the tenant's server once the Secret exists", func() bool { last = send(); return last == nil })
	if msgs := own.Messages(); len(msgs) != 1 || msgs[0].To[0] != "user@acme.example" {
		t.Fatalf("the tenant's SMTP server received %+v, want the one message", msgs)
	}

	secret.Data["port"] = []byte("smtp")
	if err := apiServer.Client.Update(t.Context(), secret); err != nil {
		t.Fatal(err)
	}
	eventually(t, "an unusable Secret fails the tenant's mail", func() bool {
		last = send()
		return last != nil && strings.Contains(last.Error(), `key "port"`)
	})

	update(t, name, func(tn *authmeshv1alpha1.Tenant) error {
		tn.Spec.Email.SMTPSecretRef.Name = ""
		return apiServer.Client.Update(t.Context(), tn)
	})
	eventually(t, "without a reference the tenant uses the auth server's mail", func() bool {
		tenant, release, err := c.srv.Registry.Acquire(t.Context(), name, false)
		if err != nil {
			return false
		}
		defer release()
		return tenant.Mailer == nil
	})
}
