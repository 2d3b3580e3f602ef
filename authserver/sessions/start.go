package sessions

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"net/http"
	"strconv"
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
	RefreshHash   string     `bson:"refreshHash"` // hex SHA-256 of the current secret
	PrevHash      string     `bson:"prevHash,omitempty"`
	RotatedAt     *time.Time `bson:"rotatedAt,omitempty"`
	RevokedAt     *time.Time `bson:"revokedAt,omitempty"`
	RevokeReason  string     `bson:"revokeReason,omitempty"`
	// AccessExpiresAt is when the last access token issued for the session expires; a
	// revocation must be published until then.
	AccessExpiresAt time.Time `bson:"accessExpiresAt"`
}

// Service starts and manages sessions.
type Service struct {
	// Now is the clock; time.Now when nil.
	Now func() time.Time
}

func (s *Service) now() time.Time {
	if s.Now != nil {
		return s.Now().UTC()
	}
	return time.Now().UTC()
}

// Start creates a session for a user who just proved who they are, and its first token pair.
func (s *Service) Start(ctx context.Context, t *tenancy.Tenant, userID, role string, d Device) (TokenPair, error) {
	now := s.now()
	sid := uuid.NewString()
	secret, hash, err := newSecret()
	if err != nil {
		return TokenPair{}, err
	}
	access, err := t.Tokens.IssueAt(now, tokens.Subject{UserID: userID, Role: role, SessionID: sid})
	if err != nil {
		return TokenPair{}, err
	}
	sess := Session{
		ID: sid, UserID: userID, DeviceName: d.Name, IP: d.IP, UserAgent: d.UserAgent,
		CreatedAt: now, LastSeen: now, ExpiresAt: now.Add(t.Spec.Tokens.RefreshTokenTTL.Duration),
		Generation: 0, RefreshHash: hash, AccessExpiresAt: now.Add(access.ExpiresIn),
	}
	if idle := t.Spec.Tokens.IdleTimeout.Duration; idle > 0 {
		at := now.Add(idle)
		sess.IdleExpiresAt = &at
	}
	if _, err := t.DB.Collection(tenantdb.Sessions).InsertOne(ctx, sess); err != nil {
		return TokenPair{}, fmt.Errorf("sessions: creating: %w", err)
	}
	return TokenPair{
		AccessToken:  access.Token,
		RefreshToken: RefreshToken(sid, 0, secret),
		TokenType:    TokenType,
		ExpiresIn:    int64(access.ExpiresIn / time.Second),
		SessionID:    sid,
	}, nil
}

// RefreshToken formats a refresh token.
func RefreshToken(sid string, generation int64, secret string) string {
	return sid + "." + strconv.FormatInt(generation, 10) + "." + secret
}

// newSecret returns a 256-bit secret (base64url) and the hash stored in its place.
func newSecret() (secret, hash string, err error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", "", err
	}
	secret = base64.RawURLEncoding.EncodeToString(b)
	return secret, HashSecret(secret), nil
}

// HashSecret is the stored form of a refresh secret.
func HashSecret(secret string) string {
	sum := sha256.Sum256([]byte(secret))
	return hex.EncodeToString(sum[:])
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

// DeviceFromRequest describes the client of r. The name is the raw user agent for now.
func DeviceFromRequest(r *http.Request) Device {
	ua := r.UserAgent()
	return Device{Name: ua, IP: clientIP(r), UserAgent: ua}
}

func clientIP(r *http.Request) string {
	host := r.RemoteAddr
	for i := len(host) - 1; i >= 0; i-- {
		if host[i] == ':' {
			return host[:i]
		}
	}
	return host
}
