package identity

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/authmesh/authmesh/authserver/audit"
	"github.com/authmesh/authmesh/authserver/httpapi"
	"github.com/authmesh/authmesh/authserver/tenancy"
	"github.com/authmesh/authmesh/internal/tenantdb"
)

// notLocked matches users without a lock in force at now.
func notLocked(now time.Time) bson.E {
	return bson.E{Key: "$or", Value: bson.A{
		bson.D{{Key: "lockedUntil", Value: nil}},
		bson.D{{Key: "lockedUntil", Value: bson.D{{Key: "$lte", Value: now}}}},
	}}
}

// reserveFailure counts one failure of u in advance, unless the account is locked or its
// counter is at the threshold already. It returns the user as the increment left it (its
// FailedLogins is the counter after it); ok is false when nothing was counted (the attempt
// must be refused as locked).
func reserveFailure(ctx context.Context, db *mongo.Database, userID string, limit int32, now time.Time) (after *User, ok bool, err error) {
	var u User
	err = db.Collection(tenantdb.Users).FindOneAndUpdate(ctx,
		// $not also matches users written without the field (counted as 0).
		bson.D{{Key: "_id", Value: userID}, {Key: "failedLogins", Value: bson.D{{Key: "$not", Value: bson.D{{Key: "$gte", Value: limit}}}}}, notLocked(now)},
		bson.D{{Key: "$inc", Value: bson.D{{Key: "failedLogins", Value: int32(1)}}}},
		options.FindOneAndUpdate().SetReturnDocument(options.After),
	).Decode(&u)
	if errors.Is(err, mongo.ErrNoDocuments) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("identity: counting a failed login: %w", err)
	}
	return &u, true, nil
}

// releaseFailure gives back a reservation whose attempt turned out right. A lock taken
// meanwhile reset the counter already, so a locked account is left alone.
func releaseFailure(ctx context.Context, db *mongo.Database, userID string, now time.Time) error {
	_, err := db.Collection(tenantdb.Users).UpdateOne(context.WithoutCancel(ctx),
		bson.D{{Key: "_id", Value: userID}, {Key: "failedLogins", Value: bson.D{{Key: "$gt", Value: int32(0)}}}, notLocked(now)},
		bson.D{{Key: "$inc", Value: bson.D{{Key: "failedLogins", Value: int32(-1)}}}})
	return err
}

// resetFailures clears the counter after a complete login.
func resetFailures(ctx context.Context, db *mongo.Database, userID string, now time.Time) error {
	_, err := db.Collection(tenantdb.Users).UpdateOne(ctx,
		bson.D{{Key: "_id", Value: userID}, notLocked(now)},
		bson.D{{Key: "$set", Value: bson.D{{Key: "failedLogins", Value: int32(0)}}}})
	return err
}

// failed handles a wrong password or code whose failure was reserved; u is the user as the
// reservation left it (reserveFailure's answer). It locks the account when the counter reached
// the threshold, and returns the answer for a lock (ACCOUNT_LOCKED), or nil when this failure
// did not lock it.
func (s *Service) failed(ctx context.Context, t *tenancy.Tenant, u *User, now time.Time) error {
	lock := t.Spec.Login.Lockout
	if u.FailedLogins < lock.MaxFailedAttempts {
		return nil
	}
	until := now.Add(lock.Duration.Duration)
	res, err := t.DB.Collection(tenantdb.Users).UpdateOne(ctx,
		bson.D{{Key: "_id", Value: u.ID}, {Key: "failedLogins", Value: bson.D{{Key: "$gte", Value: lock.MaxFailedAttempts}}}, notLocked(now)},
		bson.D{{Key: "$set", Value: bson.D{
			{Key: "lockedUntil", Value: until}, {Key: "failedLogins", Value: int32(0)}, {Key: "updatedAt", Value: now},
		}}})
	if err != nil {
		return fmt.Errorf("identity: locking an account: %w", err)
	}
	if res.MatchedCount == 0 {
		// A right attempt gave its reservation back meanwhile (the counter is below the
		// threshold), or another request locked first; either way, not this one's lock.
		return nil
	}
	s.logger.LogAttrs(ctx, slog.LevelInfo, "account locked", slog.String("tenant", t.ID), slog.String("userId", u.ID),
		slog.Time("lockedUntil", until))
	s.metrics.locks.Inc()
	s.record(ctx, t, audit.Event{Type: audit.TypeAccountLocked, SubjectID: u.ID, Details: map[string]string{
		"lockedUntil": httpapi.Timestamp(until), "failures": strconv.Itoa(int(lock.MaxFailedAttempts)),
	}})
	s.mailUnlockLink(ctx, t, u, until, lock.MaxFailedAttempts)
	return errAccountLocked(until, now)
}

// mailUnlockLink issues an unlock token for the lock ending at until and mails it. Failures
// are logged: the lock stands and ends by itself.
func (s *Service) mailUnlockLink(ctx context.Context, t *tenancy.Tenant, u *User, until time.Time, failures int32) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), mailTimeout)
	defer cancel()
	log := s.logger.With("tenant", t.ID, "userId", u.ID)
	token, hash, err := NewAccountToken(t.ID)
	if err != nil {
		log.Error("creating an unlock token", "error", err.Error())
		return
	}
	now := s.now()
	doc := accountToken{ID: hash, Kind: tokenKindUnlock, UserID: u.ID, CreatedAt: now, ExpiresAt: until}
	if _, err := t.DB.Collection(tenantdb.AccountTokens).InsertOne(ctx, doc); err != nil {
		log.Error("storing an unlock token", "error", err.Error())
		return
	}
	link := s.publicURL + "/auth/unlock?token=" + token
	if err := s.send(ctx, t, u, unlockMessage(t, u, link, failures, until, now)); err != nil {
		log.Error("mailing the unlock link failed; the account unlocks by itself", "error", err.Error(), "lockedUntil", until)
		_, _ = t.DB.Collection(tenantdb.AccountTokens).DeleteOne(ctx, bson.D{{Key: "_id", Value: hash}})
	}
}

// accountToken is an unlock (or, later, password reset) token, stored by its hash
// (collection account_tokens).
type accountToken struct {
	ID        string    `bson:"_id"` // hex SHA-256 of the whole token
	Kind      string    `bson:"kind"`
	UserID    string    `bson:"userId"`
	CreatedAt time.Time `bson:"createdAt"`
	ExpiresAt time.Time `bson:"expiresAt"`
}

const tokenKindUnlock = "unlock"

// accountTokenSecretBytes is the randomness of an account token.
const accountTokenSecretBytes = 32

// NewAccountToken returns a token for a mailed link (unlock, password reset),
// "<tenant>.<256-bit secret>", and the SHA-256 stored in its place (account_tokens._id).
func NewAccountToken(tenantID string) (token, hash string, err error) {
	b := make([]byte, accountTokenSecretBytes)
	if _, err := rand.Read(b); err != nil {
		return "", "", err
	}
	token = tenantID + "." + base64.RawURLEncoding.EncodeToString(b)
	return token, HashAccountToken(token), nil
}

// HashAccountToken is the stored form of an account token.
func HashAccountToken(token string) string {
	sum := sha256.Sum256([]byte(token))
	return hex.EncodeToString(sum[:])
}

// ParseAccountToken returns the tenant an account token names, when it has the right shape.
func ParseAccountToken(token string) (tenantID string, ok bool) {
	tenantID, secret, found := strings.Cut(token, ".")
	if !found || !tenancy.ValidTenantID(tenantID) || len(secret) != base64.RawURLEncoding.EncodedLen(accountTokenSecretBytes) {
		return "", false
	}
	// The length check alone is not enough: the decoder skips CR and LF.
	if raw, err := base64.RawURLEncoding.DecodeString(secret); err != nil || len(raw) != accountTokenSecretBytes {
		return "", false
	}
	return tenantID, true
}

// unlock redeems an unlock token: single use, unexpired; it clears the lock and the counter.
func (s *Service) unlock(ctx context.Context, token string) error {
	tenantID, ok := ParseAccountToken(strings.TrimSpace(token))
	if !ok {
		return errInvalidUnlockToken()
	}
	token = strings.TrimSpace(token)
	hash := HashAccountToken(token)
	if err := s.limits.unlockAccount.Take(hash); err != nil {
		return err
	}
	t, release, err := s.registry.Acquire(ctx, tenantID, true)
	if err != nil {
		var he *httpapi.Error
		if errors.As(err, &he) && he.Code == httpapi.CodeTenantNotFound {
			return errInvalidUnlockToken()
		}
		return err
	}
	defer release()
	httpapi.LogAttrs(ctx, slog.String("tenant", t.ID))
	now := s.now()
	var doc accountToken
	err = t.DB.Collection(tenantdb.AccountTokens).FindOneAndDelete(ctx, bson.D{
		{Key: "_id", Value: hash}, {Key: "kind", Value: tokenKindUnlock}, {Key: tenantdb.ExpiresAtField, Value: bson.D{{Key: "$gt", Value: now}}},
	}).Decode(&doc)
	if errors.Is(err, mongo.ErrNoDocuments) {
		s.record(ctx, t, audit.Event{Type: audit.TypeAccountUnlocked, Outcome: audit.OutcomeFailure, Reason: "invalid_token"})
		return errInvalidUnlockToken()
	}
	if err != nil {
		return fmt.Errorf("identity: redeeming an unlock token: %w", err)
	}
	if _, err := t.DB.Collection(tenantdb.Users).UpdateOne(ctx, bson.D{{Key: "_id", Value: doc.UserID}}, bson.D{
		{Key: "$set", Value: bson.D{{Key: "failedLogins", Value: int32(0)}, {Key: "updatedAt", Value: now}}},
		{Key: "$unset", Value: bson.D{{Key: "lockedUntil", Value: ""}}},
	}); err != nil {
		return fmt.Errorf("identity: unlocking: %w", err)
	}
	httpapi.LogAttrs(ctx, slog.String("userId", doc.UserID))
	s.record(ctx, t, audit.Event{Type: audit.TypeAccountUnlocked, ActorID: doc.UserID, SubjectID: doc.UserID})
	return nil
}
