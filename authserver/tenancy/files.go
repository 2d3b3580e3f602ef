package tenancy

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/go-jose/go-jose/v4"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"

	authmeshv1alpha1 "github.com/authmesh/authmesh/api/v1alpha1"
	"github.com/authmesh/authmesh/internal/keys"
)

// Files in a tenant's state directory, named like the keys of the Secrets the controller
// writes, so a mounted tenant-<name>-keys (and -db) Secret can serve as one.
const (
	StateFileJWKS      = keys.SecretKeyJWKS      // jwks.json: the private JWK Set
	StateFileActiveKID = keys.SecretKeyActiveKID // active-kid: the kid that signs
	StateFileURI       = "uri"                   // optional: the tenant's MongoDB connection string
	StateFileDatabase  = "database"              // optional: the database name
)

// FileSourceOptions configures a FileSource.
type FileSourceOptions struct {
	// TenantsDir holds Tenant manifests (*.yaml, *.yml, *.json; several documents per file
	// allowed). Documents of other kinds are skipped, so a folder of samples can be used as is.
	TenantsDir string
	// StateDir holds a directory per tenant with the files named by the StateFile constants.
	// Missing signing keys are generated there (internal/keys) and kept.
	StateDir string
	// DefaultURI is the MongoDB connection string of tenants whose state directory has no uri
	// file; empty leaves them without a database.
	DefaultURI string
	// PollInterval is how often the files are re-read (2s); changes, such as a key rotation,
	// apply without a restart.
	PollInterval time.Duration
	// Logger receives load problems; nil discards them.
	Logger *slog.Logger
}

// FileSource reads tenants from files, for `make dev` and for running outside Kubernetes.
// Defaults are applied in Go and the rules of the CRD schema the server relies on are
// checked (Validate); file tenants are Ready (or Suspended) and have their database schema
// ensured once when loaded.
type FileSource struct {
	opts FileSourceOptions
	// last is what was reported per tenant: a fingerprint of every input.
	last map[string][32]byte
	// fileOf is the manifest each reported tenant came from.
	fileOf map[string]string
	// logged remembers the last problem logged per file or tenant, to log each once.
	logged map[string]string
}

// NewFileSource returns a FileSource.
func NewFileSource(opts FileSourceOptions) (*FileSource, error) {
	if opts.TenantsDir == "" || opts.StateDir == "" {
		return nil, errors.New("tenancy: a file source needs a tenants directory and a state directory")
	}
	if opts.PollInterval <= 0 {
		opts.PollInterval = 2 * time.Second
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	return &FileSource{opts: opts, last: map[string][32]byte{}, fileOf: map[string]string{}, logged: map[string]string{}}, nil
}

// Run implements Source.
func (s *FileSource) Run(ctx context.Context, sink Sink) error {
	if err := s.Scan(sink); err != nil {
		return err
	}
	sink.Synced()
	tick := time.NewTicker(s.opts.PollInterval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
			if err := s.Scan(sink); err != nil {
				s.problem("dir", err.Error())
			}
		}
	}
}

// fileTenant is one Tenant document found in TenantsDir.
type fileTenant struct {
	file   string
	doc    []byte
	tenant authmeshv1alpha1.Tenant
}

// Scan reads every file once and reports what changed since the last scan. A tenant whose
// manifest file has a problem (say, a half-saved edit) keeps its last good configuration; one
// whose file is gone is deleted.
func (s *FileSource) Scan(sink Sink) error {
	found, troubled, err := s.readTenants()
	if err != nil {
		return err
	}
	seen := map[string]bool{}
	for _, ft := range found {
		name := ft.tenant.Name
		seen[name] = true
		cfg, fingerprint, err := s.load(ft)
		if err != nil {
			s.problem("tenant/"+name, err.Error())
			continue
		}
		s.problem("tenant/"+name, "")
		if s.last[name] == fingerprint {
			continue
		}
		s.last[name] = fingerprint
		s.fileOf[name] = ft.file
		sink.Upsert(cfg)
	}
	for name := range s.last {
		if !seen[name] && !troubled[s.fileOf[name]] {
			delete(s.last, name)
			delete(s.fileOf, name)
			sink.Delete(name)
		}
	}
	return nil
}

// readTenants returns the valid Tenants of every manifest, and the manifests with problems.
func (s *FileSource) readTenants() ([]fileTenant, map[string]bool, error) {
	entries, err := os.ReadDir(s.opts.TenantsDir)
	if err != nil {
		return nil, nil, fmt.Errorf("tenancy: reading tenants directory: %w", err)
	}
	var out []fileTenant
	troubled := map[string]bool{}
	names := map[string]string{}
	for _, e := range entries {
		ext := strings.ToLower(filepath.Ext(e.Name()))
		if e.IsDir() || ext != ".yaml" && ext != ".yml" && ext != ".json" {
			continue
		}
		path := filepath.Join(s.opts.TenantsDir, e.Name())
		docs, err := readDocuments(path)
		if err != nil {
			troubled[path] = true
			s.problem(path, err.Error())
			continue
		}
		var problems []string
		for i, doc := range docs {
			ft, ok, err := parseTenant(doc)
			switch {
			case err != nil:
				problems = append(problems, fmt.Sprintf("document %d: %v", i+1, err))
				continue
			case !ok:
				continue
			}
			if other, dup := names[ft.tenant.Name]; dup {
				problems = append(problems, fmt.Sprintf("document %d: tenant %q is already defined in %s", i+1, ft.tenant.Name, other))
				continue
			}
			names[ft.tenant.Name] = path
			ft.file = path
			out = append(out, ft)
		}
		troubled[path] = len(problems) > 0
		s.problem(path, strings.Join(problems, "; "))
	}
	return out, troubled, nil
}

func readDocuments(path string) ([][]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	r := utilyaml.NewYAMLReader(bufio.NewReader(f))
	var docs [][]byte
	for {
		doc, err := r.Read()
		if errors.Is(err, io.EOF) {
			return docs, nil
		}
		if err != nil {
			return nil, err
		}
		if len(bytes.TrimSpace(doc)) > 0 {
			docs = append(docs, doc)
		}
	}
}

// parseTenant decodes one document; ok is false for documents of other kinds.
func parseTenant(doc []byte) (ft fileTenant, ok bool, err error) {
	var tm metav1.TypeMeta
	if err := yaml.Unmarshal(doc, &tm); err != nil {
		return ft, false, err
	}
	if tm.Kind != "Tenant" || tm.APIVersion != authmeshv1alpha1.GroupVersion.String() {
		return ft, false, nil
	}
	if err := yaml.UnmarshalStrict(doc, &ft.tenant); err != nil {
		return ft, false, err
	}
	ApplyDefaults(&ft.tenant.Spec)
	if problems := Validate(ft.tenant.Name, &ft.tenant.Spec); len(problems) > 0 {
		return ft, false, fmt.Errorf("tenant %q: %s", ft.tenant.Name, strings.Join(problems, "; "))
	}
	ft.doc = doc
	return ft, true, nil
}

// load reads a tenant's state directory, generating its keys when it has none.
func (s *FileSource) load(ft fileTenant) (Config, [32]byte, error) {
	name := ft.tenant.Name
	dir := filepath.Join(s.opts.StateDir, name)
	if err := s.ensureKeys(dir, string(ft.tenant.Spec.Tokens.SigningAlgorithm)); err != nil {
		return Config{}, [32]byte{}, err
	}
	read := func(file string) ([]byte, error) {
		b, err := os.ReadFile(filepath.Join(dir, file))
		if errors.Is(err, fs.ErrNotExist) {
			return nil, nil
		}
		return b, err
	}
	var files [4][]byte
	for i, f := range []string{StateFileJWKS, StateFileActiveKID, StateFileURI, StateFileDatabase} {
		b, err := read(f)
		if err != nil {
			return Config{}, [32]byte{}, err
		}
		files[i] = b
	}
	h := sha256.New()
	for _, part := range append([][]byte{ft.doc, []byte(s.opts.DefaultURI)}, files[:]...) {
		fmt.Fprintf(h, "%d:", len(part))
		h.Write(part)
	}
	var fingerprint [32]byte
	h.Sum(fingerprint[:0])

	phase := authmeshv1alpha1.TenantPhaseReady
	if ft.tenant.Spec.Suspended {
		phase = authmeshv1alpha1.TenantPhaseSuspended
	}
	cfg := Config{
		Name:         name,
		Spec:         ft.tenant.Spec,
		Phase:        phase,
		DatabaseName: DatabaseName(name, &ft.tenant.Spec),
		URI:          s.opts.DefaultURI,
		EnsureSchema: true,
	}
	if v := strings.TrimSpace(string(files[3])); v != "" {
		cfg.DatabaseName = v
	}
	if ref := ft.tenant.Spec.Email.SMTPSecretRef.Name; ref != "" {
		// Fail the tenant's mail rather than send it through a server it did not name.
		cfg.SMTPErr = fmt.Errorf("spec.email.smtpSecretRef names Kubernetes Secret %q, which the file tenant source cannot read; remove it to use the auth server's SMTP server", ref)
	}
	if v := strings.TrimSpace(string(files[2])); v != "" {
		cfg.URI = v
	}
	set, err := keys.ParsePrivateSet(files[0], strings.TrimSpace(string(files[1])))
	if err != nil {
		cfg.KeysErr = err
	} else {
		cfg.Keys = set
		if alg := set.Active().Algorithm; alg != string(ft.tenant.Spec.Tokens.SigningAlgorithm) {
			s.problem("alg/"+name, fmt.Sprintf("tenant %q: the active key is %s but spec.tokens.signingAlgorithm is %s; "+
				"the key decides until it is rotated", name, alg, ft.tenant.Spec.Tokens.SigningAlgorithm))
		}
	}
	return cfg, fingerprint, nil
}

// DatabaseName is a tenant's default database: spec.database.name, else authmesh_<tenant>.
func DatabaseName(tenant string, spec *authmeshv1alpha1.TenantSpec) string {
	if spec.Database.Name != "" {
		return spec.Database.Name
	}
	return "authmesh_" + tenant
}

// ensureKeys generates a signing key in dir when it has no jwks.json, and names the only key
// active when active-kid is missing. Existing keys are never overwritten.
func (s *FileSource) ensureKeys(dir, alg string) error {
	jwksPath := filepath.Join(dir, StateFileJWKS)
	kidPath := filepath.Join(dir, StateFileActiveKID)
	if _, err := os.Stat(jwksPath); errors.Is(err, fs.ErrNotExist) {
		k, err := keys.Generate(alg)
		if err != nil {
			return err
		}
		data, err := (&keys.PrivateSet{Keys: []jose.JSONWebKey{k}, ActiveKID: k.KeyID}).MarshalJWKS()
		if err != nil {
			return err
		}
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return err
		}
		if err := createExclusive(jwksPath, data); err != nil && !errors.Is(err, fs.ErrExist) {
			return err
		}
		s.opts.Logger.Info("generated a signing key", "dir", dir, "kid", k.KeyID, "alg", alg)
	} else if err != nil {
		return err
	}
	if _, err := os.Stat(kidPath); !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	data, err := os.ReadFile(jwksPath)
	if err != nil {
		return err
	}
	var only struct {
		Keys []struct {
			KeyID string `json:"kid"`
		} `json:"keys"`
	}
	if err := yaml.Unmarshal(data, &only); err != nil || len(only.Keys) != 1 || only.Keys[0].KeyID == "" {
		return fmt.Errorf("%s is missing and %s does not hold exactly one key to make active", kidPath, jwksPath)
	}
	if err := createExclusive(kidPath, []byte(only.Keys[0].KeyID)); err != nil && !errors.Is(err, fs.ErrExist) {
		return err
	}
	return nil
}

// createExclusive writes path atomically and only if it does not exist yet: a temporary file
// is linked into place, so readers never see a partial file and two writers never overwrite
// each other.
func createExclusive(path string, data []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Link(tmp.Name(), path)
}

// problem logs msg for key when it differs from what was last logged for key; "" clears it.
func (s *FileSource) problem(key, msg string) {
	if s.logged[key] == msg {
		return
	}
	s.logged[key] = msg
	if msg != "" {
		s.opts.Logger.Error("tenant files", "source", key, "problem", msg)
	}
}
