package audit

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/authmesh/authmesh/authserver/clientinfo"
	"github.com/authmesh/authmesh/authserver/httpapi"
	"github.com/authmesh/authmesh/authserver/tenancy"
	"github.com/authmesh/authmesh/internal/tenantdb"
)

// Event types.
const (
	TypeSignup           = "user.signup"               // a signup (failure: user_exists)
	TypeLoginPassword    = "login.password"            // the password step of a login (failure: invalid_credentials, unknown_account, locked, disabled)
	TypeLoginOTP         = "login.otp"                 // the code step (failure: invalid_otp, attempts_exceeded, expired, locked, disabled)
	TypeLoginSuccess     = "login.success"             // a session started
	TypeAccountLocked    = "account.locked"            // too many failures locked the account
	TypeAccountUnlocked  = "account.unlocked"          // an unlock link was used
	TypeRefreshReused    = "session.refresh_reused"    // a rotated refresh token came back: the session was revoked
	TypeLogout           = "session.logout"            // the user ended one session
	TypeLogoutAll        = "session.logout_all"        // the user ended all sessions
	TypePasswordChange   = "password.change"           // a password change (failure: invalid_credentials, locked, disabled)
	TypePasswordForgot   = "password.reset_requested"  // forgot-password (failure: unknown_account, disabled)
	TypePasswordReset    = "password.reset"            // a reset link was used (failure: invalid_token)
	TypeRoleChanged      = "user.role_changed"         // details from, to
	TypeUserDisabled     = "user.disabled"             // by an admin; details revokedCount
	TypeUserEnabled      = "user.enabled"              // by an admin
	TypeSessionsRevoked  = "user.sessions_revoked"     // an admin ended all of a user's sessions; details revokedCount
	TypeSessionRevoked   = "user.session_revoked"      // an admin ended one session of a user
	TypeBootstrapAdmin   = "user.bootstrap_admin"      // the tenant's first admin was created
	TypeKeyRotationSeen  = "keys.rotation_seen"        // this replica saw the active signing key change; details kid, previousKid
	TypeAdminSelfLockout = "user.self_lockout_refused" // an admin tried to disable or demote themself
)

// Outcomes.
const (
	OutcomeSuccess = "success"
	OutcomeFailure = "failure"
)

// ActorSystem is the actor of what the server does by itself.
const ActorSystem = "system"

// Event is one entry of a tenant's audit trail.
type Event struct {
	// ID orders the trail (see the package doc); set by Record.
	ID string `bson:"_id"`
	// At is when it happened; set by Record.
	At      time.Time `bson:"at"`
	Type    string    `bson:"type"`
	Outcome string    `bson:"outcome"`
	// Reason says why a failure failed, in snake_case.
	Reason    string `bson:"reason,omitempty"`
	ActorID   string `bson:"actorId,omitempty"`
	SubjectID string `bson:"subjectId,omitempty"`
	SessionID string `bson:"sessionId,omitempty"`
	// IP, UserAgent and RequestID default to the request's (see the package doc).
	IP        string            `bson:"ip,omitempty"`
	UserAgent string            `bson:"ua,omitempty"`
	RequestID string            `bson:"requestId,omitempty"`
	Details   map[string]string `bson:"details,omitempty"`
	// ExpiresAt is when retention ends; unset when events are kept forever.
	ExpiresAt *time.Time `bson:"expiresAt,omitempty"`
}

// MarshalJSON writes the event as the admin API shows it: times as the API formats them
// everywhere, no expiry.
func (e Event) MarshalJSON() ([]byte, error) {
	return json.Marshal(struct {
		ID        string            `json:"id"`
		At        string            `json:"at"`
		Type      string            `json:"type"`
		Outcome   string            `json:"outcome"`
		Reason    string            `json:"reason,omitempty"`
		ActorID   string            `json:"actorId,omitempty"`
		SubjectID string            `json:"subjectId,omitempty"`
		SessionID string            `json:"sessionId,omitempty"`
		IP        string            `json:"ip,omitempty"`
		UserAgent string            `json:"userAgent,omitempty"`
		RequestID string            `json:"requestId,omitempty"`
		Details   map[string]string `json:"details,omitempty"`
	}{e.ID, httpapi.Timestamp(e.At), e.Type, e.Outcome, e.Reason, e.ActorID, e.SubjectID, e.SessionID, e.IP, e.UserAgent, e.RequestID, e.Details})
}

// Recorder records events of a tenant. *Log is the one the server uses; identity, sessions,
// account and admin take one in their options, where nil records nothing.
type Recorder interface {
	Record(ctx context.Context, t *tenancy.Tenant, e Event)
}

// RecorderFunc is a Recorder made of a function.
type RecorderFunc func(ctx context.Context, t *tenancy.Tenant, e Event)

// Record implements Recorder.
func (f RecorderFunc) Record(ctx context.Context, t *tenancy.Tenant, e Event) { f(ctx, t, e) }

// Options configures a Log.
type Options struct {
	// Registry finds tenants for background work (pruning, key rotation events) and reports
	// key rotations. Required.
	Registry *tenancy.Registry
	// Retention is how long events are kept; 0 keeps them forever.
	Retention time.Duration
	// PruneInterval is how often Run deletes events past the retention (default 1h).
	PruneInterval time.Duration
	// Now is the clock of event times and retention; time.Now when nil.
	Now func() time.Time
	// Logger receives write failures; nil discards them.
	Logger *slog.Logger
	// Registerer receives the metrics; nil registers none.
	Registerer prometheus.Registerer
}

// Log writes and reads the tenants' audit trails. A nil *Log records nothing and lists
// nothing.
type Log struct {
	opts Options
	now  func() time.Time
	log  *slog.Logger

	events   *prometheus.CounterVec
	failures prometheus.Counter

	tenantsMu sync.Mutex
	tenants   map[string]time.Time // tenants this replica served recently, for pruning

	rotations chan tenancy.Change
}

// writeTimeout bounds one event's write; it runs even when the client has gone away.
const writeTimeout = 10 * time.Second

// New returns a Log and starts watching opts.Registry for key rotations (recorded by Run).
func New(opts Options) (*Log, error) {
	if opts.Registry == nil {
		return nil, errors.New("audit: Options.Registry is required")
	}
	if opts.Retention < 0 {
		return nil, errors.New("audit: Options.Retention must not be negative")
	}
	if opts.PruneInterval <= 0 {
		opts.PruneInterval = time.Hour
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	l := &Log{
		opts: opts,
		now:  opts.Now,
		log:  opts.Logger,
		events: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "authmesh_authserver_audit_events_total",
			Help: "Audit events written, by type and outcome.",
		}, []string{"type", "outcome"}),
		failures: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "authmesh_authserver_audit_write_failures_total",
			Help: "Audit events that could not be written (logged instead).",
		}),
		tenants:   map[string]time.Time{},
		rotations: make(chan tenancy.Change, 256),
	}
	if l.now == nil {
		l.now = time.Now
	}
	if opts.Registerer != nil {
		for _, c := range []prometheus.Collector{l.events, l.failures} {
			if err := opts.Registerer.Register(c); err != nil {
				return nil, err
			}
		}
	}
	opts.Registry.Watch(l.watch)
	return l, nil
}

// secretKey matches detail keys that name a secret.
var secretKey = regexp.MustCompile(`(?i)password|token|secret|otp|hash`)

// Record writes e to t's trail, filling in its id, time, outcome (success unless set), and
// the request's IP, user agent and request id from ctx where e leaves them empty. t.DB must
// be usable (a request's tenant, or one acquired from the registry). Failures are logged and
// counted, never returned.
func (l *Log) Record(ctx context.Context, t *tenancy.Tenant, e Event) {
	if l == nil || t == nil || t.DB == nil {
		return
	}
	l.noteTenant(t.ID)
	e.At = l.now().UTC().Truncate(time.Millisecond)
	e.ID = newID(e.At)
	if e.Outcome == "" {
		e.Outcome = OutcomeSuccess
	}
	ip, ua := clientinfo.FromContext(ctx)
	if e.IP == "" {
		e.IP = ip
	}
	if e.UserAgent == "" {
		e.UserAgent = ua
	}
	if e.RequestID == "" {
		e.RequestID = httpapi.RequestID(ctx)
	}
	for k := range e.Details {
		if secretKey.MatchString(k) {
			l.log.Error("audit: dropping a detail whose key names a secret", "type", e.Type, "key", k)
			delete(e.Details, k)
		}
	}
	if len(e.Details) == 0 {
		e.Details = nil
	}
	if l.opts.Retention > 0 {
		exp := e.At.Add(l.opts.Retention)
		e.ExpiresAt = &exp
	}
	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), writeTimeout)
	defer cancel()
	if _, err := t.DB.Collection(tenantdb.Audit).InsertOne(wctx, e); err != nil {
		l.failures.Inc()
		l.log.Error("writing an audit event failed", "tenant", t.ID, "type", e.Type, "outcome", e.Outcome,
			"subject", e.SubjectID, "error", err.Error())
		return
	}
	l.events.WithLabelValues(e.Type, e.Outcome).Inc()
}

// newID is an event id for time at: 13 digits of Unix milliseconds, "-", an ObjectID.
func newID(at time.Time) string {
	return fmt.Sprintf("%013d-%s", max(at.UnixMilli(), 0), bson.NewObjectID().Hex())
}

var idRE = regexp.MustCompile(`^[0-9]{13}-[0-9a-f]{24}$`)

// ValidCursor reports whether s has the shape of an event id (what List takes as After).
func ValidCursor(s string) bool { return idRE.MatchString(s) }

// Query selects a page of the trail.
type Query struct {
	// After is the id of the last event of the previous page; "" starts at the oldest (at the
	// newest with Newest).
	After string
	// Newest pages from the newest event back in time; After then continues with older events.
	Newest bool
	// Limit bounds the page (1 to MaxLimit; 0 means DefaultLimit).
	Limit int
	// UserID keeps events whose actor or subject is this user.
	UserID string
	// Type keeps events of this type.
	Type string
}

// Page limits.
const (
	DefaultLimit = 50
	MaxLimit     = 500
)

// Page is one page of the trail, oldest first. Next is the cursor of the following page, or
// "" when no more events follow now.
type Page struct {
	Items []Event `json:"items"`
	Next  string  `json:"next"`
}

// List returns a page of t's trail.
func (l *Log) List(ctx context.Context, t *tenancy.Tenant, q Query) (Page, error) {
	if l == nil {
		return Page{Items: []Event{}}, nil
	}
	limit := q.Limit
	if limit <= 0 {
		limit = DefaultLimit
	}
	limit = min(limit, MaxLimit)
	filter := bson.D{}
	beyond, order := "$gt", 1
	if q.Newest {
		beyond, order = "$lt", -1
	}
	if q.After != "" {
		filter = append(filter, bson.E{Key: "_id", Value: bson.D{{Key: beyond, Value: q.After}}})
	}
	if l.opts.Retention > 0 {
		filter = append(filter, bson.E{Key: "at", Value: bson.D{{Key: "$gte", Value: l.now().UTC().Add(-l.opts.Retention)}}})
	}
	if q.Type != "" {
		filter = append(filter, bson.E{Key: "type", Value: q.Type})
	}
	if q.UserID != "" {
		filter = append(filter, bson.E{Key: "$or", Value: bson.A{
			bson.D{{Key: "actorId", Value: q.UserID}}, bson.D{{Key: "subjectId", Value: q.UserID}},
		}})
	}
	cur, err := t.DB.Collection(tenantdb.Audit).Find(ctx, filter, options.Find().
		SetSort(bson.D{{Key: "_id", Value: order}}).SetLimit(int64(limit)+1))
	if err != nil {
		return Page{}, fmt.Errorf("audit: listing: %w", err)
	}
	items := []Event{}
	if err := cur.All(ctx, &items); err != nil {
		return Page{}, fmt.Errorf("audit: listing: %w", err)
	}
	page := Page{Items: items}
	if len(items) > limit {
		page.Items = items[:limit]
		page.Next = items[limit-1].ID
	}
	return page, nil
}

// Prune deletes t's events past the retention and returns how many it deleted.
func (l *Log) Prune(ctx context.Context, t *tenancy.Tenant) (int64, error) {
	if l == nil || l.opts.Retention <= 0 {
		return 0, nil
	}
	res, err := t.DB.Collection(tenantdb.Audit).DeleteMany(ctx, bson.D{
		{Key: "at", Value: bson.D{{Key: "$lt", Value: l.now().UTC().Add(-l.opts.Retention)}}},
	})
	if err != nil {
		return 0, fmt.Errorf("audit: pruning: %w", err)
	}
	return res.DeletedCount, nil
}

// watch is the registry's callback: it notes serving tenants for pruning and queues key
// rotations for Run. It never blocks.
func (l *Log) watch(c tenancy.Change) {
	if !c.Serving {
		return
	}
	l.noteTenant(c.Tenant)
	if c.PreviousKeyID == "" || c.KeyID == "" || c.KeyID == c.PreviousKeyID {
		return
	}
	select {
	case l.rotations <- c:
	default:
		l.log.Warn("audit: too many key rotations queued; not recording one", "tenant", c.Tenant, "kid", c.KeyID)
	}
}

// Run records key rotations as they are seen, and prunes the trails of the tenants this
// replica served every PruneInterval, until ctx ends.
func (l *Log) Run(ctx context.Context) error {
	tick := time.NewTicker(l.opts.PruneInterval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case c := <-l.rotations:
			l.recordRotation(ctx, c)
		case <-tick.C:
			l.pruneAll(ctx)
		}
	}
}

func (l *Log) recordRotation(ctx context.Context, c tenancy.Change) {
	t, release, err := l.opts.Registry.Acquire(ctx, c.Tenant, true)
	if err != nil {
		l.log.Warn("audit: cannot record a key rotation", "tenant", c.Tenant, "kid", c.KeyID, "error", err.Error())
		return
	}
	defer release()
	l.Record(ctx, t, Event{
		Type: TypeKeyRotationSeen, ActorID: ActorSystem,
		Details: map[string]string{"kid": c.KeyID, "previousKid": c.PreviousKeyID},
	})
}

// forgetAfter is how long a tenant this replica no longer serves stays in pruning.
const forgetAfter = 24 * time.Hour

func (l *Log) noteTenant(id string) {
	l.tenantsMu.Lock()
	l.tenants[id] = time.Now()
	l.tenantsMu.Unlock()
}

func (l *Log) pruneAll(ctx context.Context) {
	if l.opts.Retention <= 0 {
		return
	}
	l.tenantsMu.Lock()
	var ids []string
	for id, seen := range l.tenants {
		if time.Since(seen) > forgetAfter {
			delete(l.tenants, id)
			continue
		}
		ids = append(ids, id)
	}
	l.tenantsMu.Unlock()
	for _, id := range ids {
		if ctx.Err() != nil {
			return
		}
		err := func() error {
			t, release, err := l.opts.Registry.Acquire(ctx, id, true)
			if err != nil {
				return err
			}
			defer release()
			pctx, cancel := context.WithTimeout(ctx, time.Minute)
			defer cancel()
			_, err = l.Prune(pctx, t)
			return err
		}()
		var he *httpapi.Error
		if errors.As(err, &he) && he.Code != httpapi.CodeTenantConnectionMissing {
			// The tenant is gone or suspended: stop pruning it.
			l.tenantsMu.Lock()
			delete(l.tenants, id)
			l.tenantsMu.Unlock()
			continue
		}
		if err != nil {
			l.log.Warn("audit: pruning failed", "tenant", id, "error", err.Error())
		}
	}
}
