package tenantdb

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
)

// Owner is the collection holding the one document that names the Tenant a database was
// created for. A Tenant may name any database (spec.database.name); the mark keeps it from
// taking over, and with deletionPolicy Delete dropping, a database that is another
// application's or that a deleted Tenant left behind.
const Owner = "owner"

const ownerID = "tenant"

// ErrForeignDatabase: the database holds collections but no owner mark, so authmesh did not
// create it.
var ErrForeignDatabase = errors.New("tenantdb: the database already holds data that authmesh did not create")

// OwnedError: the database is marked as another Tenant's (one deleted with deletionPolicy
// Retain, say).
type OwnedError struct{ Tenant string }

func (e *OwnedError) Error() string {
	return fmt.Sprintf("tenantdb: the database was created for Tenant %q", e.Tenant)
}

// OwnerOf returns the Tenant db is marked for, or "" when it carries no mark.
func OwnerOf(ctx context.Context, db *mongo.Database) (string, error) {
	var doc struct {
		Tenant string `bson:"tenant"`
	}
	err := db.Collection(Owner).FindOne(ctx, bson.D{{Key: "_id", Value: ownerID}}).Decode(&doc)
	switch {
	case errors.Is(err, mongo.ErrNoDocuments):
		return "", nil
	case err != nil:
		return "", fmt.Errorf("tenantdb: reading the owner of %s: %w", db.Name(), err)
	}
	return doc.Tenant, nil
}

// Claim marks db as tenant's before anything is written to it. A database marked for tenant
// already is fine (a retry, or a Tenant re-created under the name that retained it); one
// marked for another Tenant gives *OwnedError; an unmarked database that holds collections
// gives ErrForeignDatabase, unless adopt says tenant provisioned it before databases were
// marked.
func Claim(ctx context.Context, db *mongo.Database, tenant string, adopt bool) error {
	owner, err := OwnerOf(ctx, db)
	if err != nil {
		return err
	}
	switch {
	case owner == tenant:
		return nil
	case owner != "":
		return &OwnedError{Tenant: owner}
	}
	if !adopt {
		names, err := db.ListCollectionNames(ctx, bson.D{})
		if err != nil {
			return fmt.Errorf("tenantdb: listing collections of %s: %w", db.Name(), err)
		}
		if len(names) > 0 {
			return ErrForeignDatabase
		}
	}
	_, err = db.Collection(Owner).InsertOne(ctx, bson.D{{Key: "_id", Value: ownerID}, {Key: "tenant", Value: tenant}, {Key: "claimedAt", Value: time.Now().UTC()}})
	if mongo.IsDuplicateKeyError(err) { // another claimant got there first
		if owner, err = OwnerOf(ctx, db); err != nil || owner == tenant {
			return err
		}
		return &OwnedError{Tenant: owner}
	}
	if err != nil {
		return fmt.Errorf("tenantdb: marking %s as Tenant %s's: %w", db.Name(), tenant, err)
	}
	return nil
}
