package sessions_test

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/authmesh/authmesh/authserver/sessions"
	"github.com/authmesh/authmesh/internal/tenantdb"
)

// Shape of the benchmark's data: every user has sessionsPerUser sessions.
const (
	benchUsers      = 5
	sessionsPerUser = 100
	benchSessions   = benchUsers * sessionsPerUser
)

// BenchmarkSessions measures, over real HTTP against the test database, refresh (one
// rotation each) and the session list (100 sessions), and next to them, on the same
// collection in the same run, the raw driver calls they are built on: findOneAndUpdate by _id
// and find by userId. The dev database is slow and serialises every command, so the figures
// that mean something are the ratios to the raw calls; run it against a real MongoDB with
// AUTHMESH_TEST_MONGO_URI for absolute numbers. FerretDB finds a document by _id without a
// scan only when the filter is _id alone; the rotation's compare-and-swap must filter on more,
// so raw-findOneAndUpdate-rotation-shape (the same filter, raw) is the fair baseline there.
//
//	go test ./authserver/sessions -run '^$' -bench Sessions -benchtime 200x
func BenchmarkSessions(b *testing.B) {
	h := start(b, map[string]string{"alpha": ""})
	ctx := context.Background()
	c := h.client("alpha")
	coll := h.db("alpha").Collection(tenantdb.Sessions)

	type chain struct{ refresh, access string }
	var (
		users  []string
		chains []*chain
		sids   []string
	)
	for range benchUsers {
		uid := h.user("alpha", "user")
		users = append(users, uid)
		for range sessionsPerUser {
			p := h.login("alpha", uid, "user")
			chains = append(chains, &chain{refresh: p.RefreshToken, access: p.AccessToken})
			sids = append(sids, p.SessionID)
		}
	}
	rates := map[string]float64{}
	run := func(name string, op func(i int) error) {
		b.Run(name, func(b *testing.B) {
			lat := make([]time.Duration, 0, b.N)
			b.ResetTimer()
			start := time.Now()
			for i := range b.N {
				t0 := time.Now()
				if err := op(i); err != nil {
					b.Fatal(err)
				}
				lat = append(lat, time.Since(t0))
			}
			elapsed := time.Since(start)
			b.StopTimer()
			slices.Sort(lat)
			rate := float64(b.N) / elapsed.Seconds()
			rates[name] = rate
			b.ReportMetric(rate, "ops/s")
			b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
			b.ReportMetric(float64(lat[min(len(lat)-1, len(lat)*99/100)].Microseconds())/1000, "p99-ms")
		})
	}

	run("refresh", func(i int) error {
		s := chains[i%len(chains)]
		pair, err := c.Refresh(ctx, s.refresh)
		if err != nil {
			return err
		}
		s.refresh, s.access = pair.RefreshToken, pair.AccessToken
		return nil
	})
	run("raw-findOneAndUpdate", func(i int) error {
		return coll.FindOneAndUpdate(ctx, bson.D{{Key: "_id", Value: sids[i%len(sids)]}},
			bson.D{{Key: "$inc", Value: bson.D{{Key: "benchTouch", Value: 1}}}},
			options.FindOneAndUpdate().SetReturnDocument(options.After)).Err()
	})
	// The same call with the filter and update a rotation uses, to tell the database's share
	// from the server's.
	run("raw-findOneAndUpdate-rotation-shape", func(i int) error {
		now := time.Now()
		filter := append(bson.D{{Key: "_id", Value: sids[i%len(sids)]}}, sessions.ActiveFilter(now)...)
		return coll.FindOneAndUpdate(ctx, filter, bson.D{
			{Key: "$inc", Value: bson.D{{Key: "benchTouch", Value: 1}}},
			{Key: "$set", Value: bson.D{{Key: "lastSeen", Value: now}, {Key: "benchHash", Value: "x"}}},
		}, options.FindOneAndUpdate().SetReturnDocument(options.After)).Err()
	})
	run("list", func(i int) error {
		list, err := c.Sessions(ctx, chains[(i%benchUsers)*sessionsPerUser].access)
		if err == nil && len(list) != sessionsPerUser {
			err = fmt.Errorf("listed %d sessions, want %d", len(list), sessionsPerUser)
		}
		return err
	})
	run("raw-find", func(i int) error {
		cur, err := coll.Find(ctx, bson.D{{Key: "userId", Value: users[i%benchUsers]}})
		if err != nil {
			return err
		}
		var docs []bson.Raw
		if err := cur.All(ctx, &docs); err != nil {
			return err
		}
		if len(docs) != sessionsPerUser {
			return fmt.Errorf("found %d sessions, want %d", len(docs), sessionsPerUser)
		}
		return nil
	})
	if rates["raw-findOneAndUpdate"] > 0 && rates["raw-find"] > 0 {
		b.Logf("refresh: %.0f/s = %.2f x raw findOneAndUpdate by _id (%.0f/s), %.2f x the same with the rotation's filter (%.0f/s); "+
			"list: %.0f/s = %.2f x raw find (%.0f/s); %d sessions, %d per user",
			rates["refresh"], rates["refresh"]/rates["raw-findOneAndUpdate"], rates["raw-findOneAndUpdate"],
			rates["refresh"]/rates["raw-findOneAndUpdate-rotation-shape"], rates["raw-findOneAndUpdate-rotation-shape"],
			rates["list"], rates["list"]/rates["raw-find"], rates["raw-find"], benchSessions, sessionsPerUser)
	}
}
