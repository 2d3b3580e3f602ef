package tenancy

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.mongodb.org/mongo-driver/v2/mongo"

	authmeshv1alpha1 "github.com/authmesh/authmesh/api/v1alpha1"
	"github.com/authmesh/authmesh/authserver/httpapi"
	"github.com/authmesh/authmesh/authserver/mail"
	"github.com/authmesh/authmesh/authserver/tokens"
	"github.com/authmesh/authmesh/internal/keys"
	"github.com/authmesh/authmesh/internal/tenantdb"
)

// Tenant is one request's snapshot of a serving tenant. It is never modified after it is
// handed out; treat Spec as read-only.
type Tenant struct {
	// ID is the tenant id (the Tenant's name).
	ID string
	// Spec is the Tenant's spec with defaults applied.
	Spec *authmeshv1alpha1.TenantSpec
	// Issuer is the iss of the tenant's tokens: the public URL + /t/<id>.
	Issuer string
	// DatabaseName is the tenant's MongoDB database.
	DatabaseName string
	// Tokens signs the tenant's access tokens and holds its JWKS and discovery documents.
	Tokens *tokens.Signer
	// Mailer sends the tenant's mail when it has an SMTP server of its own (or one it names
	// but cannot use, which fails every Send); nil means the auth server's. See MailSender.
	Mailer mail.Sender
	// DB is the tenant's database, leased for the request: do not use it after the handler
	// returns (background work calls Registry.Acquire itself). Nil on routes registered with
	// RouteOptions.NoDatabase.
	DB *mongo.Database
}

// DisplayName is how mail and pages name the tenant: spec.displayName, else its id.
func (t *Tenant) DisplayName() string {
	if t.Spec.DisplayName != "" {
		return t.Spec.DisplayName
	}
	return t.ID
}

// MailSender returns the tenant's own Sender, or fallback (the auth server's) when it has none.
func (t *Tenant) MailSender(fallback mail.Sender) mail.Sender {
	if t.Mailer != nil {
		return t.Mailer
	}
	return fallback
}

// RegistryOptions configures a Registry.
type RegistryOptions struct {
	// PublicURL is the auth server's public base URL (no trailing slash); issuers are
	// PublicURL + "/t/" + tenant.
	PublicURL string
	// Pool provides database clients.
	Pool *Pool
	// Logger receives tenant changes; nil discards them.
	Logger *slog.Logger
	// Registerer receives the registry's metrics; nil registers none.
	Registerer prometheus.Registerer
}

// Registry holds the tenants a Source reports and serves them to requests. It implements Sink.
type Registry struct {
	opts RegistryOptions

	mu      sync.RWMutex
	tenants map[string]*tenantState
	origins map[string]int // allowed CORS origins of serving tenants, with counts
	synced  atomic.Bool

	bg     context.Context // background work (schema creation); cancelled by Run's end
	stopBG context.CancelFunc
	bgWG   sync.WaitGroup

	tenantsGauge *prometheus.GaugeVec
	keyChanges   prometheus.Counter

	watchMu  sync.Mutex
	watchers []func(Change)
}

// Change is what Watch reports after a source set a tenant's state.
type Change struct {
	// Tenant is the tenant id.
	Tenant string
	// Serving says the tenant serves now; Started that it did not before this change (it was
	// just added, or came back from suspended or unavailable).
	Serving, Started bool
	// KeyID is the active signing key now and PreviousKeyID the one before this change ("" when
	// unknown); they differ when the key rotated.
	KeyID, PreviousKeyID string
	// Spec is the tenant's spec with defaults applied; read-only.
	Spec *authmeshv1alpha1.TenantSpec
}

// Watch calls fn after every Upsert with what the tenant looks like now, outside the
// registry's lock, from the source's goroutine: fn must return quickly (hand work to a
// goroutine of its own). Background work that depends on a tenant being served (the bootstrap
// admin, the audit trail's key rotation events) hooks in here.
func (r *Registry) Watch(fn func(Change)) {
	r.watchMu.Lock()
	defer r.watchMu.Unlock()
	r.watchers = append(r.watchers, fn)
}

func (r *Registry) notify(c *Change) {
	if c == nil {
		return
	}
	r.watchMu.Lock()
	watchers := slices.Clone(r.watchers)
	r.watchMu.Unlock()
	for _, fn := range watchers {
		fn(*c)
	}
}

// Tenant states, the label values of authmesh_authserver_tenants.
const (
	stateServing     = "serving"
	stateSuspended   = "suspended"
	stateUnavailable = "unavailable"
)

type tenantState struct {
	cfg       Config
	keys      *keys.PrivateSet // the keys in use: cfg.Keys, or the last good ones
	view      Tenant           // the snapshot requests copy; DB unset
	suspended bool
	// unavailable says why the tenant does not serve; "" when it does.
	unavailable string

	schemaKey    string
	schemaCancel context.CancelFunc
}

func (s *tenantState) state() string {
	switch {
	case s.suspended:
		return stateSuspended
	case s.unavailable != "":
		return stateUnavailable
	}
	return stateServing
}

// NewRegistry returns an empty Registry.
func NewRegistry(opts RegistryOptions) (*Registry, error) {
	if opts.Pool == nil {
		return nil, errors.New("tenancy: a Registry needs a Pool")
	}
	opts.PublicURL = strings.TrimRight(opts.PublicURL, "/")
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	r := &Registry{
		opts:    opts,
		tenants: map[string]*tenantState{},
		origins: map[string]int{},
		tenantsGauge: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "authmesh_authserver_tenants",
			Help: "Tenants known to the auth server, by state: serving, suspended, unavailable (not Ready, no usable keys).",
		}, []string{"state"}),
		keyChanges: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "authmesh_authserver_signing_key_changes_total",
			Help: "Times a tenant's active signing key changed while the auth server ran.",
		}),
	}
	r.bg, r.stopBG = context.WithCancel(context.Background())
	if opts.Registerer != nil {
		for _, c := range []prometheus.Collector{r.tenantsGauge, r.keyChanges} {
			if err := opts.Registerer.Register(c); err != nil {
				return nil, err
			}
		}
	}
	r.updateGaugesLocked()
	return r, nil
}

// Run feeds the registry from src and closes idle pool clients until ctx ends. It does not
// close the pool: do that after the HTTP servers have drained.
func (r *Registry) Run(ctx context.Context, src Source) error {
	go r.opts.Pool.Run(ctx)
	defer func() {
		r.stopBG()
		r.bgWG.Wait()
	}()
	if err := src.Run(ctx, r); err != nil && ctx.Err() == nil {
		return err
	}
	return nil
}

// Ready reports whether the source's initial set of tenants has been loaded.
func (r *Registry) Ready() error {
	if !r.synced.Load() {
		return errors.New("tenants not loaded yet")
	}
	return nil
}

// Synced implements Sink.
func (r *Registry) Synced() {
	if !r.synced.Swap(true) {
		r.mu.RLock()
		n := len(r.tenants)
		r.mu.RUnlock()
		r.opts.Logger.Info("tenants loaded", "tenants", n)
	}
}

// Issuer is the iss of a tenant's tokens.
func (r *Registry) Issuer(tenantID string) string {
	return r.opts.PublicURL + "/t/" + tenantID
}

// Upsert implements Sink.
func (r *Registry) Upsert(cfg Config) {
	var change *Change
	defer func() { r.notify(change) }() // after the lock is released
	r.mu.Lock()
	defer r.mu.Unlock()
	prev := r.tenants[cfg.Name]
	st := &tenantState{cfg: cfg, keys: cfg.Keys}
	log := r.opts.Logger.With("tenant", cfg.Name)

	if cfg.KeysErr != nil {
		if prev != nil && prev.keys != nil {
			st.keys = prev.keys
			log.Warn("signing keys unusable, keeping the last good ones", "error", cfg.KeysErr.Error())
		} else {
			log.Error("signing keys unusable", "error", cfg.KeysErr.Error())
		}
	}
	ApplyDefaults(&cfg.Spec) // sources apply them; a Config built by hand may not have
	st.cfg.Spec = cfg.Spec
	st.suspended = cfg.Spec.Suspended || cfg.Phase == authmeshv1alpha1.TenantPhaseSuspended
	spec := cfg.Spec
	st.view = Tenant{ID: cfg.Name, Spec: &spec, Issuer: r.Issuer(cfg.Name), DatabaseName: cfg.DatabaseName}
	switch {
	case cfg.Phase != authmeshv1alpha1.TenantPhaseReady && !st.suspended:
		st.unavailable = fmt.Sprintf("phase is %q, not Ready", cfg.Phase)
	case st.keys == nil:
		st.unavailable = "no signing keys"
	}
	if st.keys != nil {
		signer, err := tokens.NewSigner(st.keys, tokens.Settings{
			TenantID: cfg.Name,
			Issuer:   st.view.Issuer,
			Audience: spec.Tokens.Audience,
			TTL:      spec.Tokens.AccessTokenTTL.Duration,
		})
		if err != nil {
			if st.unavailable == "" {
				st.unavailable = "signing keys unusable"
			}
			log.Error("signing keys unusable", "error", err.Error())
		}
		st.view.Tokens = signer
	}
	switch {
	case cfg.SMTPErr != nil:
		st.view.Mailer = mail.Unavailable(cfg.SMTPErr)
		if prev == nil || fmt.Sprint(prev.cfg.SMTPErr) != cfg.SMTPErr.Error() {
			log.Error("the tenant's SMTP server cannot be used; its mail fails until this is fixed", "error", cfg.SMTPErr.Error())
		}
	case cfg.SMTP != nil:
		sender, err := mail.NewSMTP(*cfg.SMTP)
		if err != nil {
			st.view.Mailer = mail.Unavailable(err)
			log.Error("the tenant's SMTP server cannot be used; its mail fails until this is fixed", "error", err.Error())
		} else {
			st.view.Mailer = sender
		}
	}
	if cfg.StatusIssuer != "" && cfg.StatusIssuer != st.view.Issuer && (prev == nil || prev.cfg.StatusIssuer != cfg.StatusIssuer) {
		log.Warn("status.issuer differs from this auth server's issuer; tokens carry this server's",
			"statusIssuer", cfg.StatusIssuer, "issuer", st.view.Issuer)
	}

	r.carrySchemaLocked(prev, st)
	r.tenants[cfg.Name] = st
	r.changedLocked()

	// Say what changed, once.
	kid := ""
	if st.view.Tokens != nil {
		kid = st.view.Tokens.KeyID()
	}
	switch {
	case prev == nil:
		log.Info("tenant added", "state", st.state(), "reason", st.unavailable, "kid", kid)
	case prev.state() != st.state() || prev.unavailable != st.unavailable:
		log.Info("tenant state changed", "state", st.state(), "reason", st.unavailable, "kid", kid)
	}
	prevKid := ""
	if prev != nil && prev.view.Tokens != nil {
		prevKid = prev.view.Tokens.KeyID()
	}
	if prevKid != "" && kid != "" && prevKid != kid {
		r.keyChanges.Inc()
		log.Info("signing key changed", "kid", kid, "previousKid", prevKid)
	}
	serving := st.state() == stateServing
	change = &Change{
		Tenant: cfg.Name, Serving: serving, Started: serving && (prev == nil || prev.state() != stateServing),
		KeyID: kid, PreviousKeyID: prevKid, Spec: st.view.Spec,
	}
}

// Delete implements Sink.
func (r *Registry) Delete(name string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	st := r.tenants[name]
	if st == nil {
		return
	}
	if st.schemaCancel != nil {
		st.schemaCancel()
	}
	delete(r.tenants, name)
	r.changedLocked()
	r.opts.Logger.Info("tenant removed", "tenant", name)
}

// changedLocked recomputes what depends on the whole set: CORS origins, gauges, and the URIs
// the pool must keep.
func (r *Registry) changedLocked() {
	origins := map[string]int{}
	uris := map[string]bool{}
	for _, st := range r.tenants {
		if st.cfg.URI != "" {
			uris[st.cfg.URI] = true
		}
		if st.state() != stateServing {
			continue
		}
		for _, o := range st.cfg.Spec.CORS.AllowedOrigins {
			origins[o]++
		}
	}
	r.origins = origins
	r.updateGaugesLocked()
	r.opts.Pool.Retain(uris)
}

func (r *Registry) updateGaugesLocked() {
	counts := map[string]int{stateServing: 0, stateSuspended: 0, stateUnavailable: 0}
	for _, st := range r.tenants {
		counts[st.state()]++
	}
	for state, n := range counts {
		r.tenantsGauge.WithLabelValues(state).Set(float64(n))
	}
}

// carrySchemaLocked keeps or (re)starts the schema creation of a tenant whose source asks for it.
func (r *Registry) carrySchemaLocked(prev, st *tenantState) {
	key := ""
	if st.cfg.EnsureSchema && st.cfg.URI != "" {
		key = st.cfg.URI + "\x00" + st.cfg.DatabaseName
	}
	if prev != nil && prev.schemaKey == key {
		st.schemaKey, st.schemaCancel = prev.schemaKey, prev.schemaCancel
		return
	}
	if prev != nil && prev.schemaCancel != nil {
		prev.schemaCancel()
	}
	if key == "" {
		return
	}
	ctx, cancel := context.WithCancel(r.bg)
	st.schemaKey, st.schemaCancel = key, cancel
	r.bgWG.Add(1)
	go func() {
		defer r.bgWG.Done()
		r.ensureSchema(ctx, st.cfg.Name, st.cfg.URI, st.cfg.DatabaseName)
	}()
}

// ensureSchema creates the tenant's collections and indexes, retrying with backoff until it
// succeeds or ctx ends.
func (r *Registry) ensureSchema(ctx context.Context, tenant, uri, database string) {
	log := r.opts.Logger.With("tenant", tenant, "database", database)
	backoff := time.Second
	for {
		err := func() error {
			lease, err := r.opts.Pool.Acquire(ctx, uri)
			if err != nil {
				return err
			}
			defer lease.Release()
			opCtx, cancel := context.WithTimeout(ctx, time.Minute)
			defer cancel()
			report, err := tenantdb.EnsureSchema(opCtx, lease.Client().Database(database))
			if err == nil {
				log.Info("tenant database schema ensured", "ttlIndexes", !report.TTLUnsupported)
			}
			return err
		}()
		if err == nil || ctx.Err() != nil {
			return
		}
		log.Warn("ensuring the tenant database schema failed; retrying", "error", err.Error(), "retryIn", backoff)
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, 30*time.Second)
	}
}

func (r *Registry) lookup(id string) *tenantState {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.tenants[id]
}

// Serving returns the ids of the tenants that serve now (neither suspended nor unavailable),
// in no particular order, for background work over every tenant.
func (r *Registry) Serving() []string {
	r.mu.RLock()
	defer r.mu.RUnlock()
	ids := make([]string, 0, len(r.tenants))
	for id, st := range r.tenants {
		if !st.suspended && st.unavailable == "" {
			ids = append(ids, id)
		}
	}
	return ids
}

// Acquire returns a snapshot of a serving tenant, with its database leased when withDB is
// set. Call release when done. Its errors are *httpapi.Error values: TENANT_NOT_FOUND,
// TENANT_SUSPENDED, TENANT_CONNECTION_MISSING.
func (r *Registry) Acquire(ctx context.Context, id string, withDB bool) (t *Tenant, release func(), err error) {
	return r.acquire(ctx, r.lookup(id), id, withDB)
}

func (r *Registry) acquire(ctx context.Context, st *tenantState, id string, withDB bool) (*Tenant, func(), error) {
	switch {
	case st == nil:
		return nil, nil, httpapi.ErrTenantNotFound(truncateID(id))
	case st.suspended:
		return nil, nil, httpapi.ErrTenantSuspended(id)
	case st.unavailable != "":
		return nil, nil, httpapi.ErrTenantConnectionMissing(id).WithCause(errors.New(st.unavailable))
	}
	t := st.view
	if !withDB {
		return &t, func() {}, nil
	}
	if st.cfg.URI == "" {
		return nil, nil, httpapi.ErrTenantConnectionMissing(id).WithCause(errors.New("no database connection URI"))
	}
	lease, err := r.opts.Pool.Acquire(ctx, st.cfg.URI)
	if err != nil {
		return nil, nil, httpapi.ErrTenantConnectionMissing(id).WithCause(err)
	}
	t.DB = lease.Client().Database(st.cfg.DatabaseName)
	return &t, lease.Release, nil
}

func truncateID(id string) string {
	if len(id) > 64 {
		return id[:64]
	}
	return id
}
