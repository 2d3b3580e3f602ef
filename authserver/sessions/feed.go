package sessions

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/authmesh/authmesh/authserver/httpapi"
	"github.com/authmesh/authmesh/authserver/tenancy"
	"github.com/authmesh/authmesh/guard"
	"github.com/authmesh/authmesh/internal/tenantdb"
)

// Feed tuning. The poll interval is an Option; these are fixed.
const (
	// gapTimeout is how long the feed waits for a seq that was numbered but is not visible
	// yet (its insert is in flight on another replica) before it skips it. Entries after a
	// gap are held back meanwhile, so a follower's cursor never passes an entry it has not
	// seen; a seq whose insert never happens (a crash between numbering and inserting) costs
	// one gapTimeout once.
	gapTimeout = time.Second
	// reloadInterval is how often a hub re-reads the tenant's whole current set, picking up
	// entries that became visible only after the gap was given up and trimming expired ones.
	reloadInterval = 10 * time.Second
	// hubIdle is how long a hub nobody reads keeps polling before it stops.
	hubIdle = 2 * time.Minute
	// pollBatch bounds one poll's query.
	pollBatch = 1000
	// firstLoadWait bounds how long a call without wait waits for a hub's first load.
	firstLoadWait = 10 * time.Second
)

// feeds holds one hub per tenant whose feed this replica serves.
type feeds struct {
	s    *Service
	mu   sync.Mutex
	hubs map[string]*hub
	// queries counts the database queries of every hub (tests check it does not grow with
	// the number of followers).
	queries atomic.Int64
}

func newFeeds(s *Service) *feeds { return &feeds{s: s, hubs: map[string]*hub{}} }

// acquire returns the tenant's hub, starting it if needed; call release when done.
func (f *feeds) acquire(tenant string) *hub {
	f.mu.Lock()
	defer f.mu.Unlock()
	h := f.hubs[tenant]
	if h == nil {
		h = newHub(f.s, tenant)
		f.hubs[tenant] = h
		go h.run()
	}
	h.users++
	return h
}

func (f *feeds) release(h *hub) {
	f.mu.Lock()
	h.users--
	h.lastUse = time.Now()
	f.mu.Unlock()
}

// deliver hands entries this replica just published to the tenant's hub, if one runs, so
// its waiters wake without waiting for the next poll.
func (f *feeds) deliver(tenant string, entries []revocationDoc) {
	if f == nil {
		return
	}
	f.mu.Lock()
	h := f.hubs[tenant]
	f.mu.Unlock()
	if h != nil {
		h.merge(entries, time.Now())
	}
}

// stopIfIdle removes h when nobody has used it for hubIdle; it reports whether it did.
func (f *feeds) stopIfIdle(h *hub) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if h.users > 0 || time.Since(h.lastUse) < hubIdle {
		return false
	}
	delete(f.hubs, h.tenant)
	return true
}

// hub is one tenant's revocation feed on this replica: the tenant's current set of
// revocations in memory, kept up to date by one poller, so any number of followers cost one
// query per poll interval and every answer (incremental or full) comes from memory.
//
// The watermark is the highest seq up to which every entry is known (or given up, see
// gapTimeout); answers say seq = watermark and hold back entries above it.
type hub struct {
	s      *Service
	tenant string
	loaded chan struct{} // closed after the first load

	mu         sync.Mutex
	entries    []revocationDoc // seq <= watermark, ascending
	pending    map[int64]revocationDoc
	gapSince   time.Time
	watermark  int64
	changed    chan struct{} // closed and replaced when the watermark advances
	lastReload time.Time

	// Guarded by feeds.mu.
	users   int
	lastUse time.Time
}

func newHub(s *Service, tenant string) *hub {
	return &hub{
		s: s, tenant: tenant, loaded: make(chan struct{}),
		pending: map[int64]revocationDoc{}, changed: make(chan struct{}), lastUse: time.Now(),
	}
}

// run loads the tenant's set, then polls until the service stops or nobody follows.
func (h *hub) run() {
	ctx := h.s.bg
	backoff := h.s.opts.FeedPollInterval
	for {
		err := h.load(ctx)
		if err == nil {
			break
		}
		h.s.log.Warn("revocation feed: loading failed", "tenant", h.tenant, "error", err.Error())
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, 5*time.Second)
		if h.s.feeds.stopIfIdle(h) {
			return
		}
	}
	close(h.loaded)
	tick := time.NewTicker(h.s.opts.FeedPollInterval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		if h.s.feeds.stopIfIdle(h) {
			return
		}
		var err error
		if time.Since(h.lastReloadTime()) >= reloadInterval {
			err = h.load(ctx)
		} else {
			err = h.poll(ctx)
		}
		if err != nil && ctx.Err() == nil {
			h.s.log.Debug("revocation feed: polling failed", "tenant", h.tenant, "error", err.Error())
		}
	}
}

func (h *hub) lastReloadTime() time.Time {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.lastReload
}

// withDB runs fn with the tenant's database.
func (h *hub) withDB(ctx context.Context, fn func(ctx context.Context, db *mongo.Database) error) error {
	h.s.feeds.queries.Add(1)
	t, release, err := h.s.opts.Registry.Acquire(ctx, h.tenant, true)
	if err != nil {
		return err
	}
	defer release()
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	return fn(ctx, t.DB)
}

// load reads the tenant's whole current set (and, the first time, the counter, so the
// watermark starts at the last seq numbered).
func (h *hub) load(ctx context.Context) error {
	return h.withDB(ctx, func(ctx context.Context, db *mongo.Database) error {
		var counter struct {
			Seq int64 `bson:"seq"`
		}
		err := db.Collection(tenantdb.Counters).FindOne(ctx, bson.D{{Key: "_id", Value: counterRevocations}}).Decode(&counter)
		if err != nil && !errors.Is(err, mongo.ErrNoDocuments) {
			return fmt.Errorf("reading the revocation counter: %w", err)
		}
		cur, err := db.Collection(tenantdb.Revocations).Find(ctx,
			bson.D{{Key: tenantdb.ExpiresAtField, Value: bson.D{{Key: "$gt", Value: h.s.now()}}}},
			options.Find().SetSort(bson.D{{Key: "seq", Value: 1}}))
		if err != nil {
			return fmt.Errorf("reading revocations: %w", err)
		}
		var docs []revocationDoc
		if err := cur.All(ctx, &docs); err != nil {
			return fmt.Errorf("reading revocations: %w", err)
		}
		h.mu.Lock()
		first := h.lastReload.IsZero()
		h.lastReload = time.Now()
		var above []revocationDoc
		if !first && counter.Seq < h.watermark {
			// The counter went back: the database was reset or restored. Start over, and
			// wake the waiters: their cursors are from another history now, so they get the
			// full set with reset: true.
			h.s.log.Warn("revocation feed: the revocation counter went back; starting over",
				"tenant", h.tenant, "counter", counter.Seq, "watermark", h.watermark)
			first = true
			clear(h.pending)
			h.gapSince = time.Time{}
			close(h.changed)
			h.changed = make(chan struct{})
		}
		if first {
			h.watermark = counter.Seq
			if n := len(docs); n > 0 {
				h.watermark = max(h.watermark, docs[n-1].Seq)
			}
			h.entries = docs
		} else {
			// The database is the truth for what is at or below the watermark.
			i := sort.Search(len(docs), func(i int) bool { return docs[i].Seq > h.watermark })
			h.entries, above = docs[:i:i], docs[i:]
		}
		h.mu.Unlock()
		h.merge(above, time.Now())
		return nil
	})
}

// poll reads what was numbered after the watermark.
func (h *hub) poll(ctx context.Context) error {
	h.mu.Lock()
	after := h.watermark
	h.mu.Unlock()
	return h.withDB(ctx, func(ctx context.Context, db *mongo.Database) error {
		cur, err := db.Collection(tenantdb.Revocations).Find(ctx,
			bson.D{{Key: "seq", Value: bson.D{{Key: "$gt", Value: after}}}},
			options.Find().SetSort(bson.D{{Key: "seq", Value: 1}}).SetLimit(pollBatch))
		if err != nil {
			return err
		}
		var docs []revocationDoc
		if err := cur.All(ctx, &docs); err != nil {
			return err
		}
		h.merge(docs, time.Now())
		return nil
	})
}

// merge adds entries (from a poll, a reload or this replica's own publishing) and moves the
// watermark over every seq now known, waking the waiters when it moves.
func (h *hub) merge(docs []revocationDoc, wall time.Time) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, d := range docs {
		if d.Seq > h.watermark {
			h.pending[d.Seq] = d
			continue
		}
		// Late (visible only after its gap was given up) or a duplicate.
		h.insertLocked(d)
	}
	for seq, d := range h.pending {
		if seq <= h.watermark { // delivered before a load moved the watermark past it
			delete(h.pending, seq)
			h.insertLocked(d)
		}
	}
	var published []revocationDoc
	for len(h.pending) > 0 {
		if d, ok := h.pending[h.watermark+1]; ok {
			delete(h.pending, d.Seq)
			h.watermark = d.Seq
			h.entries = append(h.entries, d)
			published = append(published, d)
			h.gapSince = time.Time{}
			continue
		}
		// A gap: the next seq is numbered but not visible yet.
		if h.gapSince.IsZero() {
			h.gapSince = wall
		}
		if wall.Sub(h.gapSince) < gapTimeout {
			break
		}
		lowest := int64(-1)
		for seq := range h.pending {
			if lowest < 0 || seq < lowest {
				lowest = seq
			}
		}
		h.s.log.Warn("revocation feed: skipping seq numbers that never became visible",
			"tenant", h.tenant, "from", h.watermark+1, "to", lowest-1)
		h.watermark = lowest - 1
		h.gapSince = time.Time{}
	}
	if len(h.pending) == 0 {
		h.gapSince = time.Time{} // no gap left; the next one gets its own timeout
	}
	if len(published) > 0 {
		close(h.changed)
		h.changed = make(chan struct{})
		for _, d := range published {
			h.s.metrics.published(wall.Sub(d.At))
		}
	}
}

// insertLocked adds an entry at or below the watermark, unless it is there already.
func (h *hub) insertLocked(d revocationDoc) {
	i := sort.Search(len(h.entries), func(i int) bool { return h.entries[i].Seq >= d.Seq })
	if i == len(h.entries) || h.entries[i].Seq != d.Seq {
		h.entries = slices.Insert(h.entries, i, d)
	}
}

// answer is the feed's answer to a cursor at this moment; ready is false when there is
// nothing new (the caller may wait on changed).
func (h *hub) answer(after int64, now time.Time) (feed guard.RevocationFeed, ready bool, changed <-chan struct{}) {
	h.mu.Lock()
	defer h.mu.Unlock()
	feed = guard.RevocationFeed{Seq: h.watermark, Revoked: []guard.RevokedSession{}}
	oldest := h.watermark
	if len(h.entries) > 0 {
		oldest = h.entries[0].Seq - 1
	}
	from := 0
	switch {
	case after > h.watermark || after < oldest:
		// A cursor from before what is kept, or from another history (a reset database):
		// the full current set.
		feed.Reset = true
	case after == h.watermark:
		return feed, false, h.changed
	default:
		from = sort.Search(len(h.entries), func(i int) bool { return h.entries[i].Seq > after })
	}
	for _, d := range h.entries[from:] {
		if d.ExpiresAt.After(now) {
			feed.Revoked = append(feed.Revoked, guard.RevokedSession{SessionID: d.SessionID, Exp: d.Exp})
		}
	}
	return feed, true, h.changed
}

// read answers a feed call: at once when there is something after the cursor, else when
// something arrives or wait passes.
func (h *hub) read(ctx context.Context, after int64, wait time.Duration) (guard.RevocationFeed, error) {
	deadline := time.NewTimer(max(wait, firstLoadWait))
	defer deadline.Stop()
	select {
	case <-h.loaded:
	case <-ctx.Done():
		return guard.RevocationFeed{}, ctx.Err()
	case <-h.s.bg.Done():
		return guard.RevocationFeed{}, errors.New("sessions: shutting down")
	case <-deadline.C:
		return guard.RevocationFeed{}, httpapi.ErrTenantConnectionMissing(h.tenant).WithCause(errors.New("revocations not loaded yet"))
	}
	deadline.Reset(wait)
	for {
		feed, ready, changed := h.answer(after, h.s.now())
		if ready || wait <= 0 {
			return feed, nil
		}
		select {
		case <-changed:
		case <-deadline.C:
			return feed, nil
		case <-h.s.bg.Done():
			return feed, nil
		case <-ctx.Done():
			return guard.RevocationFeed{}, ctx.Err()
		}
	}
}

// handleFeed serves GET /internal/v1/tenants/{tenant}/revocations?after=<seq>&wait=<seconds>.
func (s *Service) handleFeed(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	after, err := queryInt(q.Get("after"))
	if err != nil {
		return httpapi.NewError(http.StatusBadRequest, httpapi.CodeValidationFailed, "after must be a non-negative integer.")
	}
	waitSec, err := queryInt(q.Get("wait"))
	if err != nil {
		return httpapi.NewError(http.StatusBadRequest, httpapi.CodeValidationFailed, "wait must be a non-negative integer (seconds).")
	}
	wait := min(time.Duration(min(waitSec, 1<<20))*time.Second, s.opts.FeedMaxWait)
	t := tenancy.FromContext(r.Context())
	h := s.feeds.acquire(t.ID)
	defer s.feeds.release(h)
	s.metrics.subscriber(t.ID, 1)
	defer s.metrics.subscriber(t.ID, -1)
	feed, err := h.read(r.Context(), after, wait)
	if err != nil {
		if r.Context().Err() != nil {
			return nil // the caller has gone
		}
		return err
	}
	body, err := json.Marshal(feed)
	if err != nil {
		return err
	}
	w.Header().Set("Cache-Control", "no-store")
	httpapi.WriteRaw(w, http.StatusOK, body)
	return nil
}

func queryInt(v string) (int64, error) {
	if v == "" {
		return 0, nil
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < 0 {
		return 0, errors.New("not a non-negative integer")
	}
	return n, nil
}
