package tenancy_test

import (
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	authmeshv1alpha1 "github.com/authmesh/authmesh/api/v1alpha1"
	"github.com/authmesh/authmesh/authserver/mail"
	"github.com/authmesh/authmesh/authserver/tenancy"
)

// recorder is a Sink that keeps what it was told.
type recorder struct {
	mu      sync.Mutex
	upserts []tenancy.Config
	deletes []string
	synced  bool
}

func (r *recorder) Upsert(c tenancy.Config) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.upserts = append(r.upserts, c)
}

func (r *recorder) Delete(name string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.deletes = append(r.deletes, name)
}

func (r *recorder) Synced() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.synced = true
}

func (r *recorder) take() ([]tenancy.Config, []string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	u, d := r.upserts, r.deletes
	r.upserts, r.deletes = nil, nil
	return u, d
}

const sampleFile = `# a sample folder holds other manifests too
apiVersion: v1
kind: ConfigMap
metadata: {name: not-a-tenant}
---
apiVersion: authmesh.dev/v1alpha1
kind: Tenant
metadata:
  name: darmist1
spec:
  displayName: Darmist One
  tokens: {accessTokenTTL: 5m}
`

func write(t *testing.T, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func newFileSource(t *testing.T, tenantsDir, stateDir string) *tenancy.FileSource {
	t.Helper()
	src, err := tenancy.NewFileSource(tenancy.FileSourceOptions{TenantsDir: tenantsDir, StateDir: stateDir, DefaultURI: "mongodb://default/"})
	if err != nil {
		t.Fatal(err)
	}
	return src
}

func TestFileSourceAppliesDefaultsAndGeneratesKeysOnce(t *testing.T) {
	tenantsDir, stateDir := t.TempDir(), t.TempDir()
	write(t, filepath.Join(tenantsDir, "tenants.yaml"), sampleFile)

	rec := &recorder{}
	if err := newFileSource(t, tenantsDir, stateDir).Scan(rec); err != nil {
		t.Fatal(err)
	}
	got, _ := rec.take()
	if len(got) != 1 || got[0].Name != "darmist1" {
		t.Fatalf("reported %+v, want only darmist1", got)
	}
	cfg := got[0]
	want := authmeshv1alpha1.TenantSpec{DisplayName: "Darmist One", Tokens: authmeshv1alpha1.TokensSpec{AccessTokenTTL: &metav1.Duration{Duration: 5 * time.Minute}}}
	tenancy.ApplyDefaults(&want)
	if diff := cmp.Diff(want, cfg.Spec); diff != "" {
		t.Errorf("spec (-want +got):\n%s", diff)
	}
	if cfg.Phase != authmeshv1alpha1.TenantPhaseReady || cfg.DatabaseName != "authmesh_darmist1" || cfg.URI != "mongodb://default/" || !cfg.EnsureSchema {
		t.Errorf("phase %q database %q uri %q ensureSchema %v", cfg.Phase, cfg.DatabaseName, cfg.URI, cfg.EnsureSchema)
	}
	if cfg.Keys == nil || cfg.KeysErr != nil || cfg.Keys.Active().Algorithm != "EdDSA" {
		t.Fatalf("keys %+v err %v, want a generated EdDSA key", cfg.Keys, cfg.KeysErr)
	}
	fi, err := os.Stat(filepath.Join(stateDir, "darmist1", "jwks.json"))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("jwks.json: %v, mode %v; want a 0600 file", err, fi.Mode())
	}

	// A restart (a new source) reuses the persisted key.
	if err := newFileSource(t, tenantsDir, stateDir).Scan(rec); err != nil {
		t.Fatal(err)
	}
	again, _ := rec.take()
	if len(again) != 1 || again[0].Keys.ActiveKID != cfg.Keys.ActiveKID {
		t.Fatalf("after a restart the active kid is %v, want the persisted %q", again, cfg.Keys.ActiveKID)
	}
}

func TestFileSourceReportsOnlyChanges(t *testing.T) {
	tenantsDir, stateDir := t.TempDir(), t.TempDir()
	file := filepath.Join(tenantsDir, "tenants.yaml")
	write(t, file, sampleFile)
	src := newFileSource(t, tenantsDir, stateDir)
	rec := &recorder{}
	steps := []struct {
		name        string
		change      func()
		wantUpserts int
		wantDeletes []string
		check       func(tenancy.Config)
	}{
		{"first scan", func() {}, 1, nil, nil},
		{"nothing changed", func() {}, 0, nil, nil},
		{"suspended", func() { write(t, file, sampleFile+"  suspended: true\n") }, 1, nil, func(c tenancy.Config) {
			if c.Phase != authmeshv1alpha1.TenantPhaseSuspended {
				t.Errorf("phase %q, want Suspended", c.Phase)
			}
		}},
		{"own database URI", func() { write(t, filepath.Join(stateDir, "darmist1", "uri"), "mongodb://own/\n") }, 1, nil, func(c tenancy.Config) {
			if c.URI != "mongodb://own/" {
				t.Errorf("uri %q, want the state directory's", c.URI)
			}
		}},
		{"half-written rotation", func() { write(t, filepath.Join(stateDir, "darmist1", "active-kid"), "no-such-kid") }, 1, nil, func(c tenancy.Config) {
			if c.KeysErr == nil || c.Keys != nil {
				t.Errorf("keys %v err %v, want an error for the registry to ride out", c.Keys, c.KeysErr)
			}
		}},
		{"invalid tenant is skipped", func() {
			write(t, filepath.Join(tenantsDir, "bad.yaml"), "apiVersion: authmesh.dev/v1alpha1\nkind: Tenant\nmetadata: {name: bad}\nspec: {defaultRole: owner}\n")
		}, 0, nil, nil},
		{"half-saved edit keeps the last good tenant", func() { write(t, file, sampleFile+"  roles: [Admin]\n") }, 0, nil, nil},
		{"file removed", func() { os.Remove(file) }, 0, []string{"darmist1"}, nil},
	}
	for _, step := range steps {
		step.change()
		if err := src.Scan(rec); err != nil {
			t.Fatalf("%s: %v", step.name, err)
		}
		ups, dels := rec.take()
		if len(ups) != step.wantUpserts || !cmp.Equal(dels, step.wantDeletes) {
			t.Fatalf("%s: got %d upserts and deletes %v, want %d and %v", step.name, len(ups), dels, step.wantUpserts, step.wantDeletes)
		}
		if step.check != nil {
			step.check(ups[0])
		}
	}
}

func TestValidateFindsEveryProblem(t *testing.T) {
	spec := authmeshv1alpha1.TenantSpec{
		Roles:       []string{"User"},
		DefaultRole: "owner",
		Tokens: authmeshv1alpha1.TokensSpec{
			AccessTokenTTL:   &metav1.Duration{Duration: time.Second},
			SigningAlgorithm: "RS256",
		},
		CORS: authmeshv1alpha1.CORSSpec{AllowedOrigins: []string{"https://app.example.com/path"}},
	}
	tenancy.ApplyDefaults(&spec)
	problems := strings.Join(tenancy.Validate("Bad_Name", &spec), "\n")
	for _, want := range []string{"metadata.name", "accessTokenTTL", "signingAlgorithm", "spec.roles", "defaultRole", "allowedOrigins"} {
		if !strings.Contains(problems, want) {
			t.Errorf("problems do not mention %s:\n%s", want, problems)
		}
	}
	var good authmeshv1alpha1.TenantSpec
	tenancy.ApplyDefaults(&good)
	if p := tenancy.Validate("darmist1", &good); len(p) != 0 {
		t.Errorf("the defaults are invalid: %v", p)
	}
}

// TestFileTenantNamingAnSMTPSecretFailsItsMail: a file tenant cannot read a Kubernetes Secret,
// so naming one fails its mail (with a message saying so) instead of silently using the auth
// server's SMTP server; without one it has no error.
func TestFileTenantNamingAnSMTPSecretFailsItsMail(t *testing.T) {
	tenantsDir := t.TempDir()
	write(t, filepath.Join(tenantsDir, "tenants.yaml"), sampleFile+"  email: {from: a@acme.example, smtpSecretRef: {name: acme-smtp}}\n")
	rec := &recorder{}
	if err := newFileSource(t, tenantsDir, t.TempDir()).Scan(rec); err != nil {
		t.Fatal(err)
	}
	got, _ := rec.take()
	if len(got) != 1 || got[0].SMTP != nil || got[0].SMTPErr == nil || !strings.Contains(got[0].SMTPErr.Error(), `"acme-smtp"`) {
		t.Fatalf("reported %+v; want an SMTP error naming the Secret", got)
	}
	reg := newRegistry(t)
	reg.Upsert(got[0])
	reg.Synced()
	tenant, release, err := reg.Acquire(t.Context(), "darmist1", false)
	if err != nil {
		t.Fatal(err)
	}
	defer release()
	if err := tenant.MailSender(nil).Send(t.Context(), mail.Message{To: "u@acme.example"}); err == nil || !strings.Contains(err.Error(), "acme-smtp") {
		t.Errorf("Send = %v, want the tenant's SMTP error", err)
	}
}
