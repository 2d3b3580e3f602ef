// Package tenantdb owns the shape of a tenant's MongoDB database: the collection names and the
// indexes every part relies on. The controller calls EnsureSchema when it provisions a tenant;
// the auth server calls it for tenants loaded from files (make dev, outside Kubernetes). The
// documents themselves belong to the auth server's store.
//
// Portability: the dev database (FerretDB) has no TTL, sparse or partial indexes. Uniqueness of
// optional identifiers therefore lives in the identifiers collection, whose _id is
// "username:<x>", "email:<x>" or "mobile:<x>" (an _id insert is atomic and unique everywhere),
// and TTL indexes are created where the server supports them: queries always filter out
// expired documents, so a TTL index only saves space.
package tenantdb

import (
	"context"
	"errors"
	"fmt"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// Collection names.
const (
	Users           = "users"
	Identifiers     = "identifiers"
	Sessions        = "sessions"
	LoginChallenges = "login_challenges"
	AccountTokens   = "account_tokens" // unlock and password-reset tokens, stored hashed
	Revocations     = "revocations"
	Counters        = "counters"
	Audit           = "audit"
)

// ExpiresAtField is the field TTL indexes and expiry filters use in every expiring collection.
const ExpiresAtField = "expiresAt"

// Index describes one index EnsureSchema creates.
type Index struct {
	Collection string
	Name       string
	Keys       bson.D
	Unique     bool
	// TTL marks an index whose documents expire at the time in ExpiresAtField; created as
	// a TTL index where the server supports one, else as a plain index.
	TTL bool
}

// Indexes is every index of a tenant database.
var Indexes = []Index{
	{Collection: Identifiers, Name: "by_user", Keys: bson.D{{Key: "userId", Value: 1}}},
	{Collection: Users, Name: "by_created", Keys: bson.D{{Key: "createdAt", Value: -1}}},
	{Collection: Sessions, Name: "by_user", Keys: bson.D{{Key: "userId", Value: 1}, {Key: "createdAt", Value: -1}}},
	{Collection: Sessions, Name: "expiry", Keys: bson.D{{Key: ExpiresAtField, Value: 1}}, TTL: true},
	// Revocations written but not yet in the feed (the outbox every replica sweeps).
	{Collection: Sessions, Name: "revoke_pending", Keys: bson.D{{Key: "revokePending", Value: 1}}},
	{Collection: LoginChallenges, Name: "expiry", Keys: bson.D{{Key: ExpiresAtField, Value: 1}}, TTL: true},
	{Collection: AccountTokens, Name: "expiry", Keys: bson.D{{Key: ExpiresAtField, Value: 1}}, TTL: true},
	{Collection: Revocations, Name: "by_seq", Keys: bson.D{{Key: "seq", Value: 1}}, Unique: true},
	{Collection: Revocations, Name: "expiry", Keys: bson.D{{Key: ExpiresAtField, Value: 1}}, TTL: true},
	{Collection: Audit, Name: "by_time", Keys: bson.D{{Key: "at", Value: 1}, {Key: "_id", Value: 1}}},
	// Audit events carry expiresAt only when the auth server keeps them for a limited time.
	{Collection: Audit, Name: "expiry", Keys: bson.D{{Key: ExpiresAtField, Value: 1}}, TTL: true},
}

// Report says what EnsureSchema could not do in full on this server.
type Report struct {
	// TTLUnsupported is set when the server refused TTL indexes; plain indexes were made instead.
	TTLUnsupported bool
}

// EnsureSchema creates the collections and indexes of a tenant database. It is idempotent.
func EnsureSchema(ctx context.Context, db *mongo.Database) (Report, error) {
	var report Report
	existing, err := db.ListCollectionNames(ctx, bson.D{})
	if err != nil {
		return report, fmt.Errorf("tenantdb: listing collections of %s: %w", db.Name(), err)
	}
	have := map[string]bool{}
	for _, name := range existing {
		have[name] = true
	}
	for _, name := range []string{Users, Identifiers, Sessions, LoginChallenges, AccountTokens, Revocations, Counters, Audit} {
		if have[name] {
			continue
		}
		if err := db.CreateCollection(ctx, name); err != nil && !isNamespaceExists(err) {
			return report, fmt.Errorf("tenantdb: creating %s.%s: %w", db.Name(), name, err)
		}
	}
	for _, ix := range Indexes {
		opts := options.Index().SetName(ix.Name)
		if ix.Unique {
			opts.SetUnique(true)
		}
		if ix.TTL && !report.TTLUnsupported {
			_, err := db.Collection(ix.Collection).Indexes().CreateOne(ctx, mongo.IndexModel{Keys: ix.Keys, Options: options.Index().SetName(ix.Name).SetExpireAfterSeconds(0)})
			if err == nil {
				continue
			}
			if !isNotImplemented(err) {
				return report, fmt.Errorf("tenantdb: creating TTL index %s.%s: %w", ix.Collection, ix.Name, err)
			}
			report.TTLUnsupported = true
		}
		if _, err := db.Collection(ix.Collection).Indexes().CreateOne(ctx, mongo.IndexModel{Keys: ix.Keys, Options: opts}); err != nil {
			return report, fmt.Errorf("tenantdb: creating index %s.%s: %w", ix.Collection, ix.Name, err)
		}
	}
	return report, nil
}

// Server error codes this package tells apart.
const (
	codeNamespaceExists = 48
	codeNotImplemented  = 238
)

func isNamespaceExists(err error) bool { return hasCode(err, codeNamespaceExists) }

func isNotImplemented(err error) bool {
	var ce mongo.CommandError
	return hasCode(err, codeNotImplemented) || errors.As(err, &ce) && ce.Name == "NotImplemented"
}

func hasCode(err error, code int) bool {
	var se mongo.ServerError
	return errors.As(err, &se) && se.HasErrorCode(code)
}
