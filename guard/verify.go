package guard

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/authmesh/authmesh/internal/keys"
)

// ClockSkew is how far verifiers let exp, nbf and iat miss the local clock.
const ClockSkew = 30 * time.Second

// AccessTokenType is the JOSE `typ` of authmesh access tokens (RFC 9068).
const AccessTokenType = "at+jwt"

// Claims are the claims of an authmesh access token.
type Claims struct {
	jwt.RegisteredClaims
	TenantID  string `json:"tid"`
	Role      string `json:"role"`
	SessionID string `json:"sid"`
}

// Identity is who a verified token speaks for.
type Identity struct {
	UserID    string
	TenantID  string
	Role      string
	SessionID string
	TokenID   string
	ExpiresAt time.Time
}

// KeySource finds a verification key by kid.
type KeySource interface {
	// Key returns the key with this kid, or ErrUnknownKey.
	Key(ctx context.Context, kid string) (keys.PublicKey, error)
}

// Errors a verification can end with. Every one of them means "refuse the request"; they are
// told apart for logs and metrics, never shown to the caller beyond the envelope's code.
var (
	ErrNoToken         = errors.New("no bearer token")
	ErrUnknownKey      = errors.New("unknown signing key")
	ErrInvalidToken    = errors.New("invalid token")
	ErrWrongTenant     = errors.New("token of another tenant")
	ErrSessionEnded    = errors.New("session revoked or expired")
	ErrKeysUnavailable = errors.New("signing keys unavailable")
)

// VerifierConfig says what a valid token of one tenant looks like.
type VerifierConfig struct {
	TenantID string
	Issuer   string
	Audience string
	Keys     KeySource
	// Now is the clock; time.Now when nil.
	Now func() time.Time
	// CacheSize bounds how many verified tokens are remembered (default 10,000; negative
	// disables the cache). A remembered token skips signature verification until it expires;
	// revocation is still checked on every request by the caller.
	CacheSize int
}

// Verifier checks access tokens of one tenant: signature with the key its kid names and only
// that key's algorithm, `typ`, issuer, audience, tenant, expiry and not-before with ClockSkew.
type Verifier struct {
	cfg    VerifierConfig
	parser *jwt.Parser

	mu        sync.RWMutex
	cache     map[[sha256.Size]byte]Identity // keyed by the token's hash: no token is kept in memory
	cacheHits atomic.Int64
}

// CacheHits counts verifications answered from the verified-token cache.
func (v *Verifier) CacheHits() int64 { return v.cacheHits.Load() }

// NewVerifier returns a Verifier for cfg.
func NewVerifier(cfg VerifierConfig) (*Verifier, error) {
	if cfg.TenantID == "" || cfg.Issuer == "" || cfg.Audience == "" || cfg.Keys == nil {
		return nil, errors.New("guard: a verifier needs a tenant, an issuer, an audience and keys")
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.CacheSize == 0 {
		cfg.CacheSize = 10_000
	}
	v := &Verifier{cfg: cfg, cache: map[[sha256.Size]byte]Identity{}}
	v.parser = jwt.NewParser(
		jwt.WithValidMethods([]string{keys.EdDSA, keys.ES256}),
		jwt.WithIssuer(cfg.Issuer),
		jwt.WithAudience(cfg.Audience),
		jwt.WithLeeway(ClockSkew),
		jwt.WithExpirationRequired(),
		jwt.WithIssuedAt(),
		jwt.WithTimeFunc(cfg.Now),
	)
	return v, nil
}

// TenantID is the tenant whose tokens this verifier accepts.
func (v *Verifier) TenantID() string { return v.cfg.TenantID }

// Verify checks raw and returns the identity it carries.
func (v *Verifier) Verify(ctx context.Context, raw string) (Identity, error) {
	if raw == "" {
		return Identity{}, ErrNoToken
	}
	now := v.cfg.Now()
	var sum [sha256.Size]byte
	if v.cfg.CacheSize > 0 {
		sum = sha256.Sum256([]byte(raw))
		v.mu.RLock()
		id, ok := v.cache[sum]
		v.mu.RUnlock()
		if ok {
			if now.Before(id.ExpiresAt.Add(ClockSkew)) {
				v.cacheHits.Add(1)
				return id, nil
			}
			v.mu.Lock()
			delete(v.cache, sum)
			v.mu.Unlock()
			return Identity{}, fmt.Errorf("%w: expired", ErrInvalidToken)
		}
	}

	var claims Claims
	var keyErr error
	_, err := v.parser.ParseWithClaims(raw, &claims, func(t *jwt.Token) (any, error) {
		if typ, _ := t.Header["typ"].(string); typ != AccessTokenType {
			return nil, fmt.Errorf("typ %q, want %q", typ, AccessTokenType)
		}
		kid, _ := t.Header["kid"].(string)
		if kid == "" {
			return nil, errors.New("no kid")
		}
		k, err := v.cfg.Keys.Key(ctx, kid)
		if err != nil {
			keyErr = err
			return nil, err
		}
		if t.Method.Alg() != k.Algorithm { // pin the algorithm to the key, not the header
			return nil, fmt.Errorf("alg %q does not match key %q (%s)", t.Method.Alg(), kid, k.Algorithm)
		}
		return k.Key, nil
	})
	if err != nil {
		if keyErr != nil && !errors.Is(keyErr, ErrUnknownKey) {
			return Identity{}, fmt.Errorf("%w: %v", ErrKeysUnavailable, keyErr)
		}
		if keyErr != nil {
			return Identity{}, keyErr
		}
		return Identity{}, fmt.Errorf("%w: %v", ErrInvalidToken, err)
	}
	if claims.TenantID != v.cfg.TenantID {
		return Identity{}, ErrWrongTenant
	}
	if claims.Subject == "" || claims.SessionID == "" || claims.ExpiresAt == nil {
		return Identity{}, fmt.Errorf("%w: sub, sid and exp are required", ErrInvalidToken)
	}
	id := Identity{
		UserID:    claims.Subject,
		TenantID:  claims.TenantID,
		Role:      claims.Role,
		SessionID: claims.SessionID,
		TokenID:   claims.ID,
		ExpiresAt: claims.ExpiresAt.Time,
	}
	if v.cfg.CacheSize > 0 {
		v.remember(sum, id, now)
	}
	return id, nil
}

// remember caches a verified token; when the cache is full it first drops expired entries,
// then, if still full, everything (a flood of distinct valid tokens costs verification, never
// unbounded memory).
func (v *Verifier) remember(sum [sha256.Size]byte, id Identity, now time.Time) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if len(v.cache) >= v.cfg.CacheSize {
		for k, e := range v.cache {
			if !now.Before(e.ExpiresAt.Add(ClockSkew)) {
				delete(v.cache, k)
			}
		}
		if len(v.cache) >= v.cfg.CacheSize {
			clear(v.cache)
		}
	}
	v.cache[sum] = id
}
