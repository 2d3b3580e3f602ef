package testenv_test

import (
	"context"
	"errors"
	"fmt"
	"net/smtp"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	authmeshv1alpha1 "github.com/authmesh/authmesh/api/v1alpha1"
	"github.com/authmesh/authmesh/internal/testenv"
)

var (
	apiServer *testenv.APIServer
	db        *testenv.Mongo
	mailer    *testenv.SMTPServer
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
	if db, err = testenv.StartMongo(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer db.Stop()
	if mailer, err = testenv.StartSMTP(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer mailer.Stop()
	return m.Run()
}

func TestTenantRoundTripsThroughAPIServer(t *testing.T) {
	ctx := t.Context()
	in := &authmeshv1alpha1.Tenant{
		ObjectMeta: metav1.ObjectMeta{Name: "roundtrip"},
		Spec:       authmeshv1alpha1.TenantSpec{DisplayName: "Round Trip"},
	}
	if err := apiServer.Client.Create(ctx, in); err != nil {
		t.Fatalf("creating a Tenant: %v", err)
	}
	t.Cleanup(func() { _ = apiServer.Client.Delete(context.Background(), in) })
	got := &authmeshv1alpha1.Tenant{}
	if err := apiServer.Client.Get(ctx, client.ObjectKey{Name: "roundtrip"}, got); err != nil {
		t.Fatalf("reading it back: %v", err)
	}
	if got.Spec.DisplayName != "Round Trip" {
		t.Errorf("displayName = %q, want %q", got.Spec.DisplayName, "Round Trip")
	}
	// The schema's defaults were applied by the real API server.
	if got.Spec.Tokens.AccessTokenTTL.Duration != 15*time.Minute {
		t.Errorf("accessTokenTTL = %s, want the 15m default", got.Spec.Tokens.AccessTokenTTL.Duration)
	}
	if got.Spec.DefaultRole != "user" || len(got.Spec.Roles) != 3 {
		t.Errorf("roles = %v, defaultRole = %q; want the defaults", got.Spec.Roles, got.Spec.DefaultRole)
	}
}

func TestAPIServerRefusesInvalidTenant(t *testing.T) {
	bad := &authmeshv1alpha1.Tenant{
		ObjectMeta: metav1.ObjectMeta{Name: "badrole"},
		Spec:       authmeshv1alpha1.TenantSpec{Roles: []string{"user"}, DefaultRole: "owner"},
	}
	err := apiServer.Client.Create(t.Context(), bad)
	if err == nil || !strings.Contains(err.Error(), "defaultRole must be one of spec.roles") {
		t.Fatalf("creating a Tenant whose defaultRole is not a role: err = %v, want the CEL message", err)
	}
}

func TestUniqueIndexRejectsDuplicateWith11000(t *testing.T) {
	ctx := t.Context()
	coll := db.Database(t).Collection("users")
	if _, err := coll.Indexes().CreateOne(ctx, mongo.IndexModel{
		Keys: bson.D{{Key: "email", Value: 1}}, Options: options.Index().SetUnique(true),
	}); err != nil {
		t.Fatalf("creating a unique index: %v", err)
	}
	if _, err := coll.InsertOne(ctx, bson.M{"email": "a@example.com"}); err != nil {
		t.Fatalf("first insert: %v", err)
	}
	_, err := coll.InsertOne(ctx, bson.M{"email": "a@example.com"})
	var we mongo.WriteException
	if !mongo.IsDuplicateKeyError(err) || !errors.As(err, &we) || len(we.WriteErrors) == 0 || we.WriteErrors[0].Code != 11000 {
		t.Fatalf("duplicate insert: err = %v, want a duplicate-key write error with code 11000", err)
	}
}

// TestCompareAndSwapHasOneWinner races 8 goroutines on the same compare-and-swap, 100 times.
// MongoDB applies a single-document update atomically, so exactly one may win each round;
// bare FerretDB lets several win (run with AUTHMESH_DEVDB_FLAGS=-serialize=false to see it).
func TestCompareAndSwapHasOneWinner(t *testing.T) {
	ctx := t.Context()
	coll := db.Database(t).Collection("cas")
	if _, err := coll.InsertOne(ctx, bson.M{"_id": "doc", "generation": 0}); err != nil {
		t.Fatal(err)
	}
	const racers, rounds = 8, 100
	badRounds := 0
	for round := range rounds {
		var wg sync.WaitGroup
		var mu sync.Mutex
		winners := 0
		start := make(chan struct{})
		for range racers {
			wg.Go(func() {
				<-start
				err := coll.FindOneAndUpdate(ctx,
					bson.M{"_id": "doc", "generation": round},
					bson.M{"$set": bson.M{"generation": round + 1}},
				).Err()
				switch {
				case err == nil:
					mu.Lock()
					winners++
					mu.Unlock()
				case !errors.Is(err, mongo.ErrNoDocuments):
					t.Errorf("round %d: %v", round, err)
				}
			})
		}
		close(start)
		wg.Wait()
		if winners != 1 {
			badRounds++
			// Put the document where the next round expects it.
			if _, err := coll.UpdateOne(ctx, bson.M{"_id": "doc"}, bson.M{"$set": bson.M{"generation": round + 1}}); err != nil {
				t.Fatal(err)
			}
		}
	}
	if badRounds != 0 {
		t.Fatalf("%d of %d rounds had other than exactly one winner among %d racers", badRounds, rounds, racers)
	}
}

func TestConcurrentIncrementsAreNotLost(t *testing.T) {
	ctx := t.Context()
	coll := db.Database(t).Collection("counters")
	if _, err := coll.InsertOne(ctx, bson.M{"_id": "c", "n": 0}); err != nil {
		t.Fatal(err)
	}
	const workers, each = 8, 50
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for range each {
				if _, err := coll.UpdateOne(ctx, bson.M{"_id": "c"}, bson.M{"$inc": bson.M{"n": 1}}); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	var got struct{ N int }
	if err := coll.FindOne(ctx, bson.M{"_id": "c"}).Decode(&got); err != nil {
		t.Fatal(err)
	}
	if got.N != workers*each {
		t.Fatalf("after %dx%d concurrent $inc the counter is %d, want %d", workers, each, got.N, workers*each)
	}
}

func TestSMTPListenerCapturesMail(t *testing.T) {
	// A recipient of this run only, so that -count=N does not find earlier runs' mail.
	to := fmt.Sprintf("alice.%d@example.com", time.Now().UnixNano())
	body := "To: " + to + "\r\nSubject: Your code\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nYour login code is 123456.\r\n"
	if err := smtp.SendMail(mailer.Addr, nil, "no-reply@example.com", []string{to}, []byte(body)); err != nil {
		t.Fatalf("sending: %v", err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	msg, err := mailer.WaitFor(ctx, strings.ToUpper(to), 0)
	if err != nil {
		t.Fatal(err)
	}
	if msg.From != "no-reply@example.com" || msg.Subject != "Your code" || !strings.Contains(msg.Text, "123456") {
		t.Fatalf("captured %+v; want the message that was sent", msg)
	}
	short, cancelShort := context.WithTimeout(t.Context(), 200*time.Millisecond)
	defer cancelShort()
	if _, err := mailer.WaitFor(short, to, 1); err == nil {
		t.Fatal("WaitFor found a second message that was never sent")
	}
}
