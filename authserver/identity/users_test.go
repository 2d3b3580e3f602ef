package identity_test

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"

	authmeshv1alpha1 "github.com/authmesh/authmesh/api/v1alpha1"
	"github.com/authmesh/authmesh/authserver/identity"
	"github.com/authmesh/authmesh/authserver/password"
	"github.com/authmesh/authmesh/authserver/tenancy"
	"github.com/authmesh/authmesh/internal/tenantdb"
)

func defaultSpec() *authmeshv1alpha1.TenantSpec {
	spec := &authmeshv1alpha1.TenantSpec{}
	tenancy.ApplyDefaults(spec)
	return spec
}

// TestCreateUser covers the exported function seeding uses: roles, rules, and that a
// collision leaves none of the new user's identifiers behind.
func TestCreateUser(t *testing.T) {
	ctx := context.Background()
	db := testDB.Database(t)
	spec := defaultSpec()
	idents := db.Collection(tenantdb.Identifiers)

	admin, err := identity.CreateUser(ctx, db, spec, identity.NewUser{Username: "admin1", Email: "Admin1@Example.com", Password: "secret123", Role: "admin"})
	if err != nil {
		t.Fatal(err)
	}
	if admin.Role != "admin" || admin.Email != "admin1@example.com" || !strings.HasPrefix(admin.PasswordHash, "$argon2id$") {
		t.Fatalf("created %+v", admin)
	}
	if _, err := identity.CreateUser(ctx, db, spec, identity.NewUser{Username: "u2", Email: "u2@example.com", Password: "secret123", Role: "root"}); !errors.Is(err, identity.ErrInvalidUser) {
		t.Fatalf("unknown role: err = %v, want ErrInvalidUser", err)
	}
	if _, err := identity.CreateUser(ctx, db, spec, identity.NewUser{Username: "2024", Email: "bad", Password: "short"}); !errors.Is(err, identity.ErrInvalidUser) ||
		!strings.Contains(err.Error(), "all digits") || !strings.Contains(err.Error(), "email") || !strings.Contains(err.Error(), "password") {
		t.Fatalf("several broken rules: err = %v, want every one named", err)
	}

	// username and mobile are new, the email is taken: nothing of the new user may stay.
	before, _ := idents.CountDocuments(ctx, bson.D{})
	_, err = identity.CreateUser(ctx, db, spec, identity.NewUser{Username: "fresh", Email: "admin1@example.com", Mobile: "+15551234567", Password: "secret123"})
	var exists *identity.ExistsError
	if !errors.As(err, &exists) || exists.Field != "email" {
		t.Fatalf("err = %v, want ExistsError for email", err)
	}
	after, _ := idents.CountDocuments(ctx, bson.D{})
	if after != before {
		t.Fatalf("identifiers %d -> %d: the inserted username was not rolled back", before, after)
	}
	// ... so the username is free for someone else.
	if _, err := identity.CreateUser(ctx, db, spec, identity.NewUser{Username: "fresh", Email: "fresh@example.com", Password: "secret123"}); err != nil {
		t.Fatal(err)
	}
}

// TestConcurrentSignupsOneWinner: 8 signups for one email at once make exactly one user.
func TestConcurrentSignupsOneWinner(t *testing.T) {
	ctx := context.Background()
	db := testDB.Database(t)
	spec := defaultSpec()
	hash, _ := password.Hash("secret123", password.DefaultParams)
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for i := range 8 {
		wg.Go(func() {
			_, err := identity.CreateUser(ctx, db, spec, identity.NewUser{Username: "racer" + string(rune('a'+i)), Email: "race@example.com", PasswordHash: hash})
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	won := 0
	for err := range errs {
		var exists *identity.ExistsError
		switch {
		case err == nil:
			won++
		case !errors.As(err, &exists):
			t.Errorf("unexpected error %v", err)
		}
	}
	users, _ := db.Collection(tenantdb.Users).CountDocuments(ctx, bson.D{})
	idents, _ := db.Collection(tenantdb.Identifiers).CountDocuments(ctx, bson.D{})
	if won != 1 || users != 1 || idents != 2 {
		t.Fatalf("%d winners, %d users, %d identifiers; want 1, 1, 2", won, users, idents)
	}
}

// TestStaleIdentifierIsReclaimed: an identifier whose signup died before the user was
// inserted does not block the name forever.
func TestStaleIdentifierIsReclaimed(t *testing.T) {
	ctx := context.Background()
	db := testDB.Database(t)
	spec := defaultSpec()
	_, err := db.Collection(tenantdb.Identifiers).InsertMany(ctx, []any{
		bson.D{{Key: "_id", Value: "email:ghost@example.com"}, {Key: "userId", Value: "dead"}, {Key: "createdAt", Value: time.Now().Add(-2 * time.Minute)}},
		bson.D{{Key: "_id", Value: "email:young@example.com"}, {Key: "userId", Value: "in-flight"}, {Key: "createdAt", Value: time.Now()}},
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := identity.CreateUser(ctx, db, spec, identity.NewUser{Username: "ghost", Email: "ghost@example.com", Password: "secret123"}); err != nil {
		t.Fatalf("stale identifier not reclaimed: %v", err)
	}
	var exists *identity.ExistsError
	if _, err := identity.CreateUser(ctx, db, spec, identity.NewUser{Username: "young", Email: "young@example.com", Password: "secret123"}); !errors.As(err, &exists) {
		t.Fatalf("a signup in progress lost its identifier: err = %v", err)
	}
}

// TestWeakHashIsRaisedAtLogin: a hash made with weaker parameters is replaced by one with the
// current parameters at the next successful login.
func TestWeakHashIsRaisedAtLogin(t *testing.T) {
	h := startServer(t, serverOptions{tenants: map[string]string{"nootp": "  login: {otp: {enabled: false}}\n"}, rateLimits: &unlimited})
	weak, err := password.Hash("old-password", password.Params{Memory: 8 * 1024, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 32})
	if err != nil {
		t.Fatal(err)
	}
	spec := defaultSpec()
	if _, err := identity.CreateUser(context.Background(), h.db("nootp"), spec, identity.NewUser{Username: "legacy", Email: "legacy@example.com", PasswordHash: weak}); err != nil {
		t.Fatal(err)
	}
	want(t, h.loginAs("nootp", testUser{username: "legacy"}, "old-password"), http.StatusOK, identity.CodeLoginSuccess)
	var doc struct {
		PasswordHash string `bson:"passwordHash"`
	}
	if err := h.db("nootp").Collection(tenantdb.Users).FindOne(context.Background(), bson.D{{Key: "username", Value: "legacy"}}).Decode(&doc); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(doc.PasswordHash, "$argon2id$v=19$m=19456,t=2,p=1$") {
		t.Fatalf("hash after login %q, want the current parameters", doc.PasswordHash)
	}
	want(t, h.loginAs("nootp", testUser{username: "legacy"}, "old-password"), http.StatusOK, identity.CodeLoginSuccess)
}
