package sessions

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/google/uuid"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/authmesh/authmesh/authserver/tenancy"
	"github.com/authmesh/authmesh/guard"
	"github.com/authmesh/authmesh/internal/tenantdb"
)

// maxListed bounds the sessions one list answers with (newest first).
const maxListed = 1000

// publicProjection leaves out everything a client must never see.
var publicProjection = bson.D{
	{Key: "refreshHash", Value: 0}, {Key: "prevHash", Value: 0}, {Key: "tagKey", Value: 0}, {Key: "revokeOp", Value: 0},
	{Key: "revokePending", Value: 0},
}

// revokedProjection is what publishing a revocation needs.
var revokedProjection = bson.D{{Key: "_id", Value: 1}, {Key: "userId", Value: 1}, {Key: "accessExpiresAt", Value: 1}}

// with returns filter followed by more conditions, leaving filter untouched.
func with(filter bson.D, more ...bson.E) bson.D {
	out := make(bson.D, 0, len(filter)+len(more))
	return append(append(out, filter...), more...)
}

// List returns the user's active sessions, newest first.
func (s *Service) List(ctx context.Context, t *tenancy.Tenant, userID string) ([]Session, error) {
	filter := with(bson.D{{Key: "userId", Value: userID}}, ActiveFilter(s.now())...)
	cur, err := t.DB.Collection(tenantdb.Sessions).Find(ctx, filter, options.Find().
		SetSort(bson.D{{Key: "createdAt", Value: -1}, {Key: "_id", Value: -1}}).
		SetLimit(maxListed).
		SetProjection(publicProjection))
	if err != nil {
		return nil, fmt.Errorf("sessions: listing: %w", err)
	}
	var out []Session
	if err := cur.All(ctx, &out); err != nil {
		return nil, fmt.Errorf("sessions: listing: %w", err)
	}
	return out, nil
}

// Active reports whether the session exists, belongs to userID and is neither revoked nor
// expired.
func (s *Service) Active(ctx context.Context, t *tenancy.Tenant, userID, sessionID string) (bool, error) {
	filter := with(bson.D{{Key: "_id", Value: sessionID}, {Key: "userId", Value: userID}}, ActiveFilter(s.now())...)
	err := t.DB.Collection(tenantdb.Sessions).FindOne(ctx, filter, options.FindOne().SetProjection(bson.D{{Key: "_id", Value: 1}})).Err()
	switch {
	case errors.Is(err, mongo.ErrNoDocuments):
		return false, nil
	case err != nil:
		return false, fmt.Errorf("sessions: checking a session: %w", err)
	}
	return true, nil
}

// Revoke revokes one active session of userID. It reports false when there is no such
// session (unknown, another user's, already revoked or expired).
func (s *Service) Revoke(ctx context.Context, t *tenancy.Tenant, userID, sessionID, reason string) (bool, error) {
	filter := with(bson.D{{Key: "_id", Value: sessionID}, {Key: "userId", Value: userID}}, ActiveFilter(s.now())...)
	return s.revokeOne(ctx, t, filter, reason)
}

// revokeOne revokes the session filter matches, if it is not revoked yet, and publishes the
// revocation.
func (s *Service) revokeOne(ctx context.Context, t *tenancy.Tenant, filter bson.D, reason string) (bool, error) {
	now := s.now()
	if !hasKey(filter, "revokedAt") {
		filter = with(filter, bson.E{Key: "revokedAt", Value: nil})
	}
	var d Session
	err := t.DB.Collection(tenantdb.Sessions).FindOneAndUpdate(ctx, filter,
		bson.D{{Key: "$set", Value: bson.D{{Key: "revokedAt", Value: now}, {Key: "revokeReason", Value: reason}, {Key: "revokePending", Value: true}}}},
		// No projection: FerretDB does not support one on findAndModify.
		options.FindOneAndUpdate().SetReturnDocument(options.After)).Decode(&d)
	switch {
	case errors.Is(err, mongo.ErrNoDocuments):
		return false, nil
	case err != nil:
		return false, fmt.Errorf("sessions: revoking: %w", err)
	}
	s.metrics.revoked(reason, 1)
	s.publishOrRetry(ctx, t, []Session{d}, reason)
	return true, nil
}

// RevokeAllOfUser revokes every active session of the user except exceptSessionID (""
// for none) and publishes the revocations; it returns how many it revoked. Password change
// (keeping the caller's session), password reset and disabling a user call it.
func (s *Service) RevokeAllOfUser(ctx context.Context, t *tenancy.Tenant, userID, reason, exceptSessionID string) (int, error) {
	s.noteTenant(t.ID)
	now := s.now()
	filter := with(bson.D{{Key: "userId", Value: userID}}, ActiveFilter(now)...)
	if exceptSessionID != "" {
		filter = with(filter, bson.E{Key: "_id", Value: bson.D{{Key: "$ne", Value: exceptSessionID}}})
	}
	// Mark exactly the sessions this call revokes, so it publishes those and no others.
	op := uuid.NewString()
	coll := t.DB.Collection(tenantdb.Sessions)
	res, err := coll.UpdateMany(ctx, filter, bson.D{{Key: "$set", Value: bson.D{
		{Key: "revokedAt", Value: now}, {Key: "revokeReason", Value: reason}, {Key: "revokeOp", Value: op},
		{Key: "revokePending", Value: true},
	}}})
	if err != nil {
		return 0, fmt.Errorf("sessions: revoking all of a user: %w", err)
	}
	if res.ModifiedCount == 0 {
		return 0, nil
	}
	cur, err := coll.Find(ctx, bson.D{{Key: "revokeOp", Value: op}}, options.Find().SetProjection(revokedProjection))
	if err != nil {
		return 0, fmt.Errorf("sessions: reading revoked sessions: %w", err)
	}
	var revoked []Session
	if err := cur.All(ctx, &revoked); err != nil {
		return 0, fmt.Errorf("sessions: reading revoked sessions: %w", err)
	}
	s.metrics.revoked(reason, len(revoked))
	s.publishOrRetry(ctx, t, revoked, reason)
	return len(revoked), nil
}

// publishOrRetry publishes revocations; when that fails (the sessions are revoked already, and
// the auth server's own routes refuse them), it queues them for Run to publish again, so a
// database blip delays the feed instead of failing a logout that happened.
func (s *Service) publishOrRetry(ctx context.Context, t *tenancy.Tenant, revoked []Session, reason string) {
	err := s.publish(ctx, t, revoked, reason)
	if err == nil {
		return
	}
	s.logger().Error("publishing revocations failed; retrying in the background", "tenant", t.ID, "sessions", len(revoked), "error", err.Error())
	s.retryMu.Lock()
	defer s.retryMu.Unlock()
	s.retry = append(s.retry, unpublished{tenant: t.ID, sessions: revoked, reason: reason})
	if n := len(s.retry); n > maxUnpublished {
		s.logger().Error("too many unpublished revocations; dropping the oldest", "dropped", n-maxUnpublished)
		s.retry = slices.Clone(s.retry[n-maxUnpublished:])
	}
}

// unpublished are revocations whose publication failed.
type unpublished struct {
	tenant   string
	sessions []Session
	reason   string
}

// maxUnpublished bounds the retry queue (in batches).
const maxUnpublished = 10_000

// retryUnpublished publishes what failed before; what fails again stays queued. Entries whose
// access tokens have all expired meanwhile need no publishing and are dropped by publish.
func (s *Service) retryUnpublished(ctx context.Context) {
	s.retryMu.Lock()
	queue := s.retry
	s.retry = nil
	s.retryMu.Unlock()
	var failed []unpublished
	for _, u := range queue {
		err := func() error {
			t, release, err := s.opts.Registry.Acquire(ctx, u.tenant, true)
			if err != nil {
				return err
			}
			defer release()
			return s.publishInBackground(ctx, t, u.sessions, u.reason)
		}()
		if err != nil {
			failed = append(failed, u)
		}
	}
	if len(failed) > 0 {
		s.retryMu.Lock()
		s.retry = append(failed, s.retry...)
		s.retryMu.Unlock()
	}
}

// revocationDoc is one entry of the tenant's revocations collection, the source of the
// revocation feed.
type revocationDoc struct {
	ID        int64     `bson:"_id"` // = Seq
	Seq       int64     `bson:"seq"`
	SessionID string    `bson:"sid"`
	UserID    string    `bson:"userId"`
	Exp       int64     `bson:"exp"`       // Unix seconds: when the session's last access token expires
	ExpiresAt time.Time `bson:"expiresAt"` // Exp + guard.ClockSkew: kept (and served) until then
	At        time.Time `bson:"at"`        // wall-clock time of publication, for the lag metric
	Reason    string    `bson:"reason"`
}

// counterRevocations is the counters document whose seq numbers the revocations.
const counterRevocations = "revocations"

// publishTimeout bounds publishing once the sessions are revoked; it runs even when the
// client has gone away, since the revocation already happened.
const publishTimeout = 10 * time.Second

// publish appends revocations of the sessions to the tenant's revocations collection, with
// seq numbers from the tenant's counter, wakes this replica's feed at once, and clears the
// sessions' revokePending mark off the request's path (inline on a zero Service, which has no
// registry to lease the database from). Sessions whose last access token has expired
// (beyond the clock-skew leeway) need no entry.
func (s *Service) publish(ctx context.Context, t *tenancy.Tenant, revoked []Session, reason string) error {
	return s.publishAndClear(ctx, t, revoked, reason, s.opts.Registry == nil)
}

// publishInBackground is publish for work off a request's path (retries, sweeps): it clears
// the marks before it returns, so a sweep that follows never publishes the same sessions again.
func (s *Service) publishInBackground(ctx context.Context, t *tenancy.Tenant, revoked []Session, reason string) error {
	return s.publishAndClear(ctx, t, revoked, reason, true)
}

// publishAndClear appends the entries, then clears the sessions' revokePending marks: before
// it returns when inline, else in the background with a database lease of its own (the
// caller's ends with its request). A mark a crash leaves only makes a sweep publish the
// sessions once more, which followers take as the same revocation.
func (s *Service) publishAndClear(ctx context.Context, t *tenancy.Tenant, revoked []Session, reason string, inline bool) error {
	if err := s.append(ctx, t, revoked, reason); err != nil {
		return err
	}
	ids := make([]string, len(revoked))
	for i, d := range revoked {
		ids[i] = d.ID
	}
	if inline {
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), publishTimeout)
		defer cancel()
		s.clearPending(ctx, t.ID, t.DB, ids)
		return nil
	}
	go func() {
		ctx, cancel := context.WithTimeout(s.bg, publishTimeout)
		defer cancel()
		lease, release, err := s.opts.Registry.Acquire(ctx, t.ID, true)
		if err != nil {
			return // the sweep will see the mark
		}
		defer release()
		s.clearPending(ctx, t.ID, lease.DB, ids)
	}()
	return nil
}

// clearPending unsets the revokePending mark of published sessions.
func (s *Service) clearPending(ctx context.Context, tenant string, db *mongo.Database, ids []string) {
	_, err := db.Collection(tenantdb.Sessions).UpdateMany(ctx, bson.D{{Key: "_id", Value: bson.D{{Key: "$in", Value: ids}}}},
		bson.D{{Key: "$unset", Value: bson.D{{Key: "revokePending", Value: ""}}}})
	if err != nil && ctx.Err() == nil {
		s.logger().Warn("clearing the pending mark of published revocations failed; a sweep will publish them again", "tenant", tenant, "error", err.Error())
	}
}

// append writes the feed entries of publish.
func (s *Service) append(ctx context.Context, t *tenancy.Tenant, revoked []Session, reason string) error {
	now := s.now()
	keep := revoked[:0:0]
	for _, d := range revoked {
		if d.AccessExpiresAt.Add(guard.ClockSkew).After(now) {
			keep = append(keep, d)
		}
	}
	if len(keep) == 0 {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), publishTimeout)
	defer cancel()
	var counter struct {
		Seq int64 `bson:"seq"`
	}
	err := t.DB.Collection(tenantdb.Counters).FindOneAndUpdate(ctx,
		bson.D{{Key: "_id", Value: counterRevocations}},
		bson.D{{Key: "$inc", Value: bson.D{{Key: "seq", Value: int64(len(keep))}}}},
		options.FindOneAndUpdate().SetUpsert(true).SetReturnDocument(options.After)).Decode(&counter)
	if err != nil {
		return fmt.Errorf("sessions: numbering revocations: %w", err)
	}
	first := counter.Seq - int64(len(keep)) + 1
	wall := time.Now().UTC()
	docs := make([]any, len(keep))
	entries := make([]revocationDoc, len(keep))
	for i, d := range keep {
		exp := d.AccessExpiresAt.Add(time.Second - time.Nanosecond).Unix() // round up
		entries[i] = revocationDoc{
			ID: first + int64(i), Seq: first + int64(i), SessionID: d.ID, UserID: d.UserID,
			Exp: exp, ExpiresAt: time.Unix(exp, 0).Add(guard.ClockSkew).UTC(), At: wall, Reason: reason,
		}
		docs[i] = entries[i]
	}
	if _, err := t.DB.Collection(tenantdb.Revocations).InsertMany(ctx, docs, options.InsertMany().SetOrdered(false)); err != nil {
		return fmt.Errorf("sessions: publishing revocations: %w", err)
	}
	s.feeds.deliver(t.ID, entries)
	return nil
}

// countActive counts the tenant's active sessions.
func (s *Service) countActive(ctx context.Context, t *tenancy.Tenant) (int64, error) {
	n, err := t.DB.Collection(tenantdb.Sessions).CountDocuments(ctx, ActiveFilter(s.now()))
	if err != nil {
		return 0, fmt.Errorf("sessions: counting active sessions: %w", err)
	}
	return n, nil
}

// prune deletes expired revocations and sessions past their absolute expiry, what TTL
// indexes do where the database has them. Queries never depend on it.
func (s *Service) prune(ctx context.Context, t *tenancy.Tenant) error {
	expired := bson.D{{Key: tenantdb.ExpiresAtField, Value: bson.D{{Key: "$lt", Value: s.now()}}}}
	if _, err := t.DB.Collection(tenantdb.Revocations).DeleteMany(ctx, expired); err != nil {
		return fmt.Errorf("sessions: pruning revocations: %w", err)
	}
	if _, err := t.DB.Collection(tenantdb.Sessions).DeleteMany(ctx, expired); err != nil {
		return fmt.Errorf("sessions: pruning sessions: %w", err)
	}
	return nil
}

// userDoc is what sessions read of a user (package identity's users collection: _id is the
// user id as a string): the role tokens carry, and whether the user may still use the service.
type userDoc struct {
	Role     string `bson:"role"`
	Disabled bool   `bson:"disabled"`
}

// readUser reads the user a session belongs to; ok is false when there is no such user.
func readUser(ctx context.Context, t *tenancy.Tenant, userID string) (u userDoc, ok bool, err error) {
	err = t.DB.Collection(tenantdb.Users).FindOne(ctx, bson.D{{Key: "_id", Value: userID}},
		options.FindOne().SetProjection(bson.D{{Key: "role", Value: 1}, {Key: "disabled", Value: 1}})).Decode(&u)
	switch {
	case errors.Is(err, mongo.ErrNoDocuments):
		return u, false, nil
	case err != nil:
		return u, false, fmt.Errorf("sessions: reading the user: %w", err)
	}
	return u, true, nil
}

func hasKey(d bson.D, key string) bool {
	for _, e := range d {
		if e.Key == key {
			return true
		}
	}
	return false
}

// pendingSweepAge is how long after its revocation a session still marked revokePending is
// taken to have lost its publisher (a replica that crashed between the two writes, or a retry
// queue that gave up): longer than a publication can take.
const pendingSweepAge = 2 * publishTimeout

// maxSweptPerTenant bounds what one sweep publishes for a tenant; the next sweep takes more.
const maxSweptPerTenant = 1000

// sweepPending publishes, for every serving tenant, the revocations that were written but
// never reached the feed. Any replica does it, so a crashed one's revocations are not lost.
func (s *Service) sweepPending(ctx context.Context) {
	for _, id := range s.opts.Registry.Serving() {
		if ctx.Err() != nil {
			return
		}
		n, err := s.sweepTenant(ctx, id)
		if err != nil {
			s.logger().Warn("sweeping unpublished revocations failed", "tenant", id, "error", err.Error())
		} else if n > 0 {
			s.logger().Warn("published revocations a replica had left unpublished", "tenant", id, "sessions", n)
		}
	}
}

// sweepTenant is sweepPending for one tenant; it returns how many sessions it published.
func (s *Service) sweepTenant(ctx context.Context, id string) (int, error) {
	t, release, err := s.opts.Registry.Acquire(ctx, id, true)
	if err != nil {
		return 0, err
	}
	defer release()
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	filter := bson.D{
		{Key: "revokePending", Value: true},
		{Key: "revokedAt", Value: bson.D{{Key: "$lt", Value: s.now().Add(-pendingSweepAge)}}},
	}
	cur, err := t.DB.Collection(tenantdb.Sessions).Find(ctx, filter, options.Find().SetLimit(maxSweptPerTenant).
		SetProjection(append(slices.Clone(revokedProjection), bson.E{Key: "revokeReason", Value: 1})))
	if err != nil {
		return 0, fmt.Errorf("sessions: finding unpublished revocations: %w", err)
	}
	var pending []Session
	if err := cur.All(ctx, &pending); err != nil {
		return 0, fmt.Errorf("sessions: finding unpublished revocations: %w", err)
	}
	byReason := map[string][]Session{}
	for _, d := range pending {
		byReason[d.RevokeReason] = append(byReason[d.RevokeReason], d)
	}
	for reason, revoked := range byReason {
		if err := s.publishInBackground(ctx, t, revoked, reason); err != nil {
			return 0, err
		}
	}
	return len(pending), nil
}
