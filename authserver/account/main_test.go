package account_test

import (
	"context"
	"errors"
	"os"
	"testing"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/authmesh/authmesh/authserver/audit"
	"github.com/authmesh/authmesh/client"
	"github.com/authmesh/authmesh/internal/tenantdb"
	"github.com/authmesh/authmesh/internal/testenv"
	"github.com/authmesh/authmesh/internal/testenv/authstack"
)

var testDB *testenv.Mongo

func TestMain(m *testing.M) { os.Exit(testenv.RunWithMongo(m, &testDB)) }

const tenantSpec = "  displayName: Darmist One\n  email: {from: no-reply@darmist.example}\n"

func start(t *testing.T, o authstack.Options) *authstack.Stack {
	t.Helper()
	if o.Tenants == nil {
		o.Tenants = map[string]string{"darmist1": tenantSpec}
	}
	return authstack.Start(t, testDB, o)
}

// wantCode fails the test unless err is an *client.APIError with this status and code.
func wantCode(t testing.TB, what string, err error, status int, code string) *client.APIError {
	t.Helper()
	var e *client.APIError
	if !errors.As(err, &e) {
		t.Fatalf("%s: err = %v, want %d %s", what, err, status, code)
	}
	if e.Status != status || e.Code != code {
		t.Fatalf("%s: got %d %s (%q, details %s), want %d %s", what, e.Status, e.Code, e.Message, e.Details, status, code)
	}
	return e
}

// userDoc is what tests read of a stored user.
type userDoc struct {
	ID           string `bson:"_id"`
	Username     string `bson:"username"`
	Role         string `bson:"role"`
	PasswordHash string `bson:"passwordHash"`
	FailedLogins int32  `bson:"failedLogins"`
	LockedUntil  any    `bson:"lockedUntil"`
}

func readUser(t testing.TB, s *authstack.Stack, tenant string, filter bson.D) userDoc {
	t.Helper()
	var u userDoc
	if err := s.DB(tenant).Collection(tenantdb.Users).FindOne(context.Background(), filter).Decode(&u); err != nil {
		t.Fatalf("reading user %v: %v", filter, err)
	}
	return u
}

// events reads a tenant's audit events of one type, oldest first.
func events(t testing.TB, s *authstack.Stack, tenant, typ string) []audit.Event {
	t.Helper()
	cur, err := s.DB(tenant).Collection(tenantdb.Audit).Find(context.Background(), bson.D{{Key: "type", Value: typ}})
	if err != nil {
		t.Fatal(err)
	}
	var out []audit.Event
	if err := cur.All(context.Background(), &out); err != nil {
		t.Fatal(err)
	}
	return out
}

// hasEvent reports whether evs has one with this outcome, reason and subject.
func hasEvent(evs []audit.Event, outcome, reason, subject string) bool {
	for _, e := range evs {
		if e.Outcome == outcome && e.Reason == reason && e.SubjectID == subject {
			return true
		}
	}
	return false
}
