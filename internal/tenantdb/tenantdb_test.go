package tenantdb_test

import (
	"os"
	"testing"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/authmesh/authmesh/internal/tenantdb"
	"github.com/authmesh/authmesh/internal/testenv"
)

var mongoServer *testenv.Mongo

func TestMain(m *testing.M) { os.Exit(testenv.RunWithMongo(m, &mongoServer)) }

func TestEnsureSchemaCreatesEveryIndexAndIsIdempotent(t *testing.T) {
	ctx := t.Context()
	db := mongoServer.Database(t)
	first, err := tenantdb.EnsureSchema(ctx, db)
	if err != nil {
		t.Fatalf("first EnsureSchema: %v", err)
	}
	second, err := tenantdb.EnsureSchema(ctx, db)
	if err != nil {
		t.Fatalf("second EnsureSchema: %v", err)
	}
	if first != second {
		t.Errorf("reports differ between runs: %+v then %+v", first, second)
	}
	for _, ix := range tenantdb.Indexes {
		specs, err := db.Collection(ix.Collection).Indexes().ListSpecifications(ctx)
		if err != nil {
			t.Fatal(err)
		}
		found := false
		for _, s := range specs {
			if s.Name == ix.Name {
				found = true
				if ix.Unique && (s.Unique == nil || !*s.Unique) {
					t.Errorf("%s.%s is not unique", ix.Collection, ix.Name)
				}
				if ix.TTL && !first.TTLUnsupported && s.ExpireAfterSeconds == nil {
					t.Errorf("%s.%s is not a TTL index although the server supports them", ix.Collection, ix.Name)
				}
			}
		}
		if !found {
			t.Errorf("index %s.%s missing", ix.Collection, ix.Name)
		}
	}
}

func TestIdentifiersAreUniqueByID(t *testing.T) {
	ctx := t.Context()
	db := mongoServer.Database(t)
	if _, err := tenantdb.EnsureSchema(ctx, db); err != nil {
		t.Fatal(err)
	}
	ids := db.Collection(tenantdb.Identifiers)
	if _, err := ids.InsertOne(ctx, bson.M{"_id": "email:a@example.com", "userId": "u1"}); err != nil {
		t.Fatal(err)
	}
	_, err := ids.InsertOne(ctx, bson.M{"_id": "email:a@example.com", "userId": "u2"})
	if err == nil {
		t.Fatal("a second user took the same email identifier")
	}
}
