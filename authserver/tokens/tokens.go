package tokens

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/authmesh/authmesh/internal/keys"
)

// TokenType is the JWT typ header of access tokens (RFC 9068).
const TokenType = "at+jwt"

// Settings are a tenant's token parameters.
type Settings struct {
	TenantID string        // the tid claim
	Issuer   string        // the iss claim: public URL + /t/<tenant>
	Audience string        // the aud claim
	TTL      time.Duration // access-token lifetime
}

// AccessClaims are the claims of an access token.
type AccessClaims struct {
	Issuer    string           `json:"iss"`
	Subject   string           `json:"sub"`
	Audience  string           `json:"aud"`
	TenantID  string           `json:"tid"`
	Role      string           `json:"role"`
	SessionID string           `json:"sid"`
	IssuedAt  *jwt.NumericDate `json:"iat"`
	ExpiresAt *jwt.NumericDate `json:"exp"`
	ID        string           `json:"jti"`
}

var _ jwt.Claims = AccessClaims{}

// The jwt.Claims methods; a token has no nbf.

func (c AccessClaims) GetExpirationTime() (*jwt.NumericDate, error) { return c.ExpiresAt, nil }
func (c AccessClaims) GetIssuedAt() (*jwt.NumericDate, error)       { return c.IssuedAt, nil }
func (c AccessClaims) GetNotBefore() (*jwt.NumericDate, error)      { return nil, nil }
func (c AccessClaims) GetIssuer() (string, error)                   { return c.Issuer, nil }
func (c AccessClaims) GetSubject() (string, error)                  { return c.Subject, nil }
func (c AccessClaims) GetAudience() (jwt.ClaimStrings, error) {
	return jwt.ClaimStrings{c.Audience}, nil
}

// Subject is who a token is for.
type Subject struct {
	UserID    string // sub
	Role      string // role
	SessionID string // sid
	// SessionEnd, when set, is when the session ends (its absolute or idle expiry): the
	// token expires then if that comes before the tenant's TTL, so no token outlives its
	// session at a verifier that only checks exp.
	SessionEnd time.Time
}

// Issued is a signed access token.
type Issued struct {
	Token     string
	Claims    AccessClaims
	ExpiresIn time.Duration // exp - iat, for the response's expiresIn
}

// Document is a JSON document verifiers fetch, with its strong ETag.
type Document struct {
	Body []byte
	ETag string
}

// Signer signs a tenant's access tokens with the active key of one key set and holds that
// set's public documents. It is immutable and safe for concurrent use.
type Signer struct {
	settings  Settings
	method    jwt.SigningMethod
	key       any // ed25519.PrivateKey or *ecdsa.PrivateKey
	kid       string
	jwks      Document
	discovery Document
	public    map[string]keys.PublicKey
}

// NewSigner builds a Signer for the active key of set.
func NewSigner(set *keys.PrivateSet, s Settings) (*Signer, error) {
	var problems []string
	if s.TenantID == "" {
		problems = append(problems, "no tenant id")
	}
	if s.Issuer == "" {
		problems = append(problems, "no issuer")
	}
	if s.Audience == "" {
		problems = append(problems, "no audience")
	}
	if s.TTL <= 0 {
		problems = append(problems, "TTL is not positive")
	}
	if len(problems) > 0 {
		return nil, fmt.Errorf("tokens: %s", strings.Join(problems, "; "))
	}
	if set == nil {
		return nil, errors.New("tokens: no key set")
	}
	active := set.Active()
	if active.KeyID == "" {
		return nil, errors.New("tokens: the key set has no active key")
	}
	var method jwt.SigningMethod
	switch active.Algorithm {
	case keys.EdDSA:
		method = jwt.SigningMethodEdDSA
	case keys.ES256:
		method = jwt.SigningMethodES256
	default:
		return nil, fmt.Errorf("tokens: active key %q has unsupported algorithm %q", active.KeyID, active.Algorithm)
	}
	jwksBody, err := set.PublicJWKS()
	if err != nil {
		return nil, fmt.Errorf("tokens: rendering the public JWKS: %w", err)
	}
	public, err := keys.ParsePublicSet(jwksBody)
	if err != nil {
		return nil, fmt.Errorf("tokens: reading back the public JWKS: %w", err)
	}
	var algs []string
	for _, k := range set.Keys {
		if !slices.Contains(algs, k.Algorithm) {
			algs = append(algs, k.Algorithm)
		}
	}
	slices.Sort(algs)
	disc, err := json.Marshal(discoveryDoc{
		Issuer:                           s.Issuer,
		JWKSURI:                          s.Issuer + "/.well-known/jwks.json",
		ResponseTypesSupported:           []string{"id_token"},
		SubjectTypesSupported:            []string{"public"},
		IDTokenSigningAlgValuesSupported: algs,
		ClaimsSupported:                  []string{"iss", "aud", "sub", "tid", "role", "sid", "iat", "exp", "jti"},
	})
	if err != nil {
		return nil, err
	}
	return &Signer{
		settings:  s,
		method:    method,
		key:       active.Key,
		kid:       active.KeyID,
		jwks:      newDocument(jwksBody),
		discovery: newDocument(disc),
		public:    public,
	}, nil
}

type discoveryDoc struct {
	Issuer                           string   `json:"issuer"`
	JWKSURI                          string   `json:"jwks_uri"`
	ResponseTypesSupported           []string `json:"response_types_supported"`
	SubjectTypesSupported            []string `json:"subject_types_supported"`
	IDTokenSigningAlgValuesSupported []string `json:"id_token_signing_alg_values_supported"`
	ClaimsSupported                  []string `json:"claims_supported"`
}

func newDocument(body []byte) Document {
	sum := sha256.Sum256(body)
	return Document{Body: body, ETag: `"` + base64.RawURLEncoding.EncodeToString(sum[:16]) + `"`}
}

// ErrSessionEnded is IssueAt's answer for a session that ends within the second: no token can
// be issued for it.
var ErrSessionEnded = errors.New("tokens: the session ends within the second; no token can be issued for it")

// Issue signs an access token for sub, valid from now for the tenant's TTL, or until
// sub.SessionEnd if that is sooner.
func (s *Signer) Issue(sub Subject) (Issued, error) {
	return s.IssueAt(time.Now(), sub)
}

// IssueAt is Issue with the clock given.
func (s *Signer) IssueAt(now time.Time, sub Subject) (Issued, error) {
	if sub.UserID == "" || sub.SessionID == "" || sub.Role == "" {
		return Issued{}, errors.New("tokens: a token needs a user id, a role and a session id")
	}
	now = now.Truncate(time.Second)
	exp := now.Add(s.settings.TTL)
	if end := sub.SessionEnd.Truncate(time.Second); !sub.SessionEnd.IsZero() && end.Before(exp) {
		if !end.After(now) {
			return Issued{}, ErrSessionEnded
		}
		exp = end
	}
	claims := AccessClaims{
		Issuer:    s.settings.Issuer,
		Subject:   sub.UserID,
		Audience:  s.settings.Audience,
		TenantID:  s.settings.TenantID,
		Role:      sub.Role,
		SessionID: sub.SessionID,
		IssuedAt:  jwt.NewNumericDate(now),
		ExpiresAt: jwt.NewNumericDate(exp),
		ID:        rand.Text(),
	}
	t := jwt.NewWithClaims(s.method, claims)
	t.Header["kid"] = s.kid
	t.Header["typ"] = TokenType
	signed, err := t.SignedString(s.key)
	if err != nil {
		return Issued{}, fmt.Errorf("tokens: signing with key %q: %w", s.kid, err)
	}
	return Issued{Token: signed, Claims: claims, ExpiresIn: exp.Sub(now)}, nil
}

// KeyID is the kid of the key that signs.
func (s *Signer) KeyID() string { return s.kid }

// Algorithm is the JWS algorithm of the key that signs.
func (s *Signer) Algorithm() string { return s.method.Alg() }

// Settings returns the tenant's token parameters.
func (s *Signer) Settings() Settings { return s.settings }

// JWKS is the public half of every key in the set.
func (s *Signer) JWKS() Document { return s.jwks }

// PublicKeys are the verification keys of the set by kid, for in-process verification of the
// tenant's tokens (e.g. guard.NewStaticKeys on the auth server's own bearer routes). Do not
// modify the map.
func (s *Signer) PublicKeys() map[string]keys.PublicKey { return s.public }

// Discovery is the tenant's OpenID discovery document.
func (s *Signer) Discovery() Document { return s.discovery }
