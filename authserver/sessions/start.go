package sessions

import (
	"context"
	"fmt"
	"time"

	"github.com/google/uuid"
	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/authmesh/authmesh/authserver/tenancy"
	"github.com/authmesh/authmesh/authserver/tokens"
	"github.com/authmesh/authmesh/internal/tenantdb"
)

// TokenType is the tokenType of every token pair.
const TokenType = "Bearer"

// Device describes where a session was started.
type Device struct {
	Name      string // a readable device name, e.g. "Chrome on macOS"
	IP        string
	UserAgent string
}

// TokenPair is what a login or a refresh answers with.
type TokenPair struct {
	AccessToken  string `json:"accessToken"`
	RefreshToken string `json:"refreshToken"`
	TokenType    string `json:"tokenType"`
	ExpiresIn    int64  `json:"expiresIn"` // seconds until the access token expires
	SessionID    string `json:"sessionId"`
}

// Session is the stored document of one session.
type Session struct {
	ID            string     `bson:"_id"`
	UserID        string     `bson:"userId"`
	DeviceName    string     `bson:"deviceName"`
	IP            string     `bson:"ip"`
	UserAgent     string     `bson:"ua"`
	CreatedAt     time.Time  `bson:"createdAt"`
	LastSeen      time.Time  `bson:"lastSeen"`
	ExpiresAt     time.Time  `bson:"expiresAt"`               // absolute end: refreshTokenTTL after login
	IdleExpiresAt *time.Time `bson:"idleExpiresAt,omitempty"` // when the tenant sets idleTimeout
	Generation    int64      `bson:"generation"`
	RefreshHash   string     `bson:"refreshHash"` // HashSecret of the current secret
	PrevHash      string     `bson:"prevHash,omitempty"`
	RotatedAt     *time.Time `bson:"rotatedAt,omitempty"`
	RevokedAt     *time.Time `bson:"revokedAt,omitempty"`
	RevokeReason  string     `bson:"revokeReason,omitempty"`
	// AccessExpiresAt is when the last access token issued for the session expires; a
	// revocation must be published until then.
	AccessExpiresAt time.Time `bson:"accessExpiresAt"`
	// TagKey (base64url, 256 bits) authenticates the refresh tokens of this session, every
	// generation of them, so a token of an earlier generation can be told from a forgery
	// (see the package doc). It is never returned by any API.
	TagKey string `bson:"tagKey"`
	// RevokeOp marks the sessions one logout-all revoked, so it can publish exactly those.
	RevokeOp string `bson:"revokeOp,omitempty"`
	// RevokePending is set with revokedAt and unset once the revocation is in the feed: the
	// outbox that lets a replica that died between the two writes be caught up by any other.
	RevokePending bool `bson:"revokePending,omitempty"`
}

// Start creates a session for a user who just proved who they are, and its first token pair.
func (s *Service) Start(ctx context.Context, t *tenancy.Tenant, userID, role string, d Device) (TokenPair, error) {
	now := s.now()
	sid := uuid.NewString()
	tagKey, err := newTagKey()
	if err != nil {
		return TokenPair{}, err
	}
	secret, hash, err := newSecret(tagKey, sid, 0)
	if err != nil {
		return TokenPair{}, err
	}
	sess := Session{
		ID: sid, UserID: userID, DeviceName: d.Name, IP: d.IP, UserAgent: d.UserAgent,
		CreatedAt: now, LastSeen: now, ExpiresAt: now.Add(t.Spec.Tokens.RefreshTokenTTL.Duration),
		Generation: 0, RefreshHash: hash, TagKey: tagKey,
	}
	if idle := t.Spec.Tokens.IdleTimeout.Duration; idle > 0 {
		at := now.Add(idle)
		sess.IdleExpiresAt = &at
	}
	access, err := t.Tokens.IssueAt(now, tokens.Subject{UserID: userID, Role: role, SessionID: sid, SessionEnd: sess.end()})
	if err != nil {
		return TokenPair{}, err
	}
	sess.AccessExpiresAt = access.Claims.ExpiresAt.UTC()
	if _, err := t.DB.Collection(tenantdb.Sessions).InsertOne(ctx, sess); err != nil {
		return TokenPair{}, fmt.Errorf("sessions: creating: %w", err)
	}
	s.noteTenant(t.ID)
	return TokenPair{
		AccessToken:  access.Token,
		RefreshToken: RefreshToken(sid, 0, secret),
		TokenType:    TokenType,
		ExpiresIn:    int64(access.ExpiresIn / time.Second),
		SessionID:    sid,
	}, nil
}

// ActiveFilter matches sessions that are neither revoked nor expired at now; every query for
// live sessions uses it, so expiry holds even where the database has no TTL index.
func ActiveFilter(now time.Time) bson.D {
	return bson.D{
		{Key: "revokedAt", Value: nil},
		{Key: tenantdb.ExpiresAtField, Value: bson.D{{Key: "$gt", Value: now}}},
		{Key: "$or", Value: bson.A{
			bson.D{{Key: "idleExpiresAt", Value: nil}},
			bson.D{{Key: "idleExpiresAt", Value: bson.D{{Key: "$gt", Value: now}}}},
		}},
	}
}

// active reports whether a session is neither revoked nor expired at now (ActiveFilter in Go).
func (d *Session) active(now time.Time) bool {
	return d.RevokedAt == nil && d.end().After(now)
}

// end is when the session stops being usable: its absolute expiry, or its idle expiry if sooner.
func (d *Session) end() time.Time {
	if d.IdleExpiresAt != nil && d.IdleExpiresAt.Before(d.ExpiresAt) {
		return *d.IdleExpiresAt
	}
	return d.ExpiresAt
}
