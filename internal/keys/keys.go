package keys

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/go-jose/go-jose/v4"
)

// Signing algorithms a tenant may choose (spec.tokens.signingAlgorithm). Verifiers pin the
// algorithm to the one named in the key, never the token header's word alone.
const (
	EdDSA = "EdDSA"
	ES256 = "ES256"
)

// Data keys of the tenant-<name>-keys Secret.
const (
	SecretKeyJWKS      = "jwks.json"  // a JWK Set of private keys
	SecretKeyActiveKID = "active-kid" // the kid of the key that signs
)

// Generate creates a private signing key for alg with use "sig" and a kid that is the key's
// RFC 7638 thumbprint, so a kid is never reused for different key material.
func Generate(alg string) (jose.JSONWebKey, error) {
	var priv crypto.Signer
	var err error
	switch alg {
	case EdDSA:
		_, priv, err = ed25519.GenerateKey(rand.Reader)
	case ES256:
		priv, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	default:
		return jose.JSONWebKey{}, fmt.Errorf("keys: unsupported signing algorithm %q (want %s or %s)", alg, EdDSA, ES256)
	}
	if err != nil {
		return jose.JSONWebKey{}, fmt.Errorf("keys: generating %s key: %w", alg, err)
	}
	k := jose.JSONWebKey{Key: priv, Algorithm: alg, Use: "sig"}
	thumb, err := k.Thumbprint(crypto.SHA256)
	if err != nil {
		return jose.JSONWebKey{}, err
	}
	k.KeyID = base64.RawURLEncoding.EncodeToString(thumb)
	return k, nil
}

// PrivateSet is a tenant's signing keys as stored in its keys Secret: every key it may sign
// with or has signed with recently, and the one that signs now.
type PrivateSet struct {
	Keys      []jose.JSONWebKey
	ActiveKID string
}

// ParsePrivateSet reads the Secret's jwks.json and active-kid. Every key must be a private
// EdDSA or ES256 key with a kid and use "sig", kids must be unique, and the active kid must
// name one of them.
func ParsePrivateSet(jwks []byte, activeKID string) (*PrivateSet, error) {
	var set jose.JSONWebKeySet
	if err := json.Unmarshal(jwks, &set); err != nil {
		return nil, fmt.Errorf("keys: %s is not a JWK Set: %w", SecretKeyJWKS, err)
	}
	if len(set.Keys) == 0 {
		return nil, fmt.Errorf("keys: %s holds no keys", SecretKeyJWKS)
	}
	seen := map[string]bool{}
	for i, k := range set.Keys {
		if err := checkKey(k, true); err != nil {
			return nil, fmt.Errorf("keys: key %d: %w", i, err)
		}
		if seen[k.KeyID] {
			return nil, fmt.Errorf("keys: kid %q appears twice", k.KeyID)
		}
		seen[k.KeyID] = true
	}
	if !seen[activeKID] {
		return nil, fmt.Errorf("keys: %s %q names no key in %s", SecretKeyActiveKID, activeKID, SecretKeyJWKS)
	}
	return &PrivateSet{Keys: set.Keys, ActiveKID: activeKID}, nil
}

// Active returns the key that signs.
func (s *PrivateSet) Active() jose.JSONWebKey {
	for _, k := range s.Keys {
		if k.KeyID == s.ActiveKID {
			return k
		}
	}
	return jose.JSONWebKey{}
}

// Signer returns the active key's crypto.Signer, its kid and its algorithm.
func (s *PrivateSet) Signer() (signer crypto.Signer, kid, alg string, err error) {
	k := s.Active()
	signer, ok := k.Key.(crypto.Signer)
	if !ok {
		return nil, "", "", errors.New("keys: the active key is not a private key")
	}
	return signer, k.KeyID, k.Algorithm, nil
}

// MarshalJWKS renders the private set for the Secret's jwks.json.
func (s *PrivateSet) MarshalJWKS() ([]byte, error) {
	return json.Marshal(jose.JSONWebKeySet{Keys: s.Keys})
}

// PublicJWKS renders the public half of every key, as the tenant's JWKS endpoint serves it.
func (s *PrivateSet) PublicJWKS() ([]byte, error) {
	pub := jose.JSONWebKeySet{Keys: make([]jose.JSONWebKey, 0, len(s.Keys))}
	for _, k := range s.Keys {
		pub.Keys = append(pub.Keys, k.Public())
	}
	return json.Marshal(pub)
}

// PublicKey is one verification key: its kid, the only algorithm it verifies, and the key.
type PublicKey struct {
	ID        string
	Algorithm string
	Key       crypto.PublicKey // ed25519.PublicKey or *ecdsa.PublicKey
}

// ParsePublicSet reads a JWKS document (as served by the auth server) into verification keys by
// kid. Keys of other algorithms or uses are skipped, since a verifier must never accept them; a
// private key is reduced to its public half. It fails only when the document is not a JWK Set
// or holds a usable key that is malformed.
func ParsePublicSet(data []byte) (map[string]PublicKey, error) {
	var raw struct {
		Keys []json.RawMessage `json:"keys"`
	}
	if err := json.Unmarshal(data, &raw); err != nil {
		return nil, fmt.Errorf("keys: not a JWK Set: %w", err)
	}
	out := make(map[string]PublicKey, len(raw.Keys))
	for i, msg := range raw.Keys {
		var k jose.JSONWebKey
		if err := k.UnmarshalJSON(msg); err != nil {
			// An unknown key type or curve from some other issuer is not ours to use.
			continue
		}
		if k.Algorithm != EdDSA && k.Algorithm != ES256 || k.Use != "" && k.Use != "sig" {
			continue
		}
		if !k.IsPublic() {
			k = k.Public()
		}
		if err := checkKey(k, false); err != nil {
			return nil, fmt.Errorf("keys: key %d: %w", i, err)
		}
		if _, dup := out[k.KeyID]; dup {
			return nil, fmt.Errorf("keys: kid %q appears twice", k.KeyID)
		}
		out[k.KeyID] = PublicKey{ID: k.KeyID, Algorithm: k.Algorithm, Key: k.Key}
	}
	return out, nil
}

// checkKey verifies that k is a signing key whose type matches its algorithm.
func checkKey(k jose.JSONWebKey, wantPrivate bool) error {
	if k.KeyID == "" {
		return errors.New("no kid")
	}
	if k.Use != "sig" && (wantPrivate || k.Use != "") {
		return fmt.Errorf("kid %q: use %q, want \"sig\"", k.KeyID, k.Use)
	}
	var ok bool
	switch k.Algorithm {
	case EdDSA:
		if wantPrivate {
			_, ok = k.Key.(ed25519.PrivateKey)
		} else {
			_, ok = k.Key.(ed25519.PublicKey)
		}
	case ES256:
		var curve elliptic.Curve
		if wantPrivate {
			if p, isEC := k.Key.(*ecdsa.PrivateKey); isEC {
				curve, ok = p.Curve, true
			}
		} else if p, isEC := k.Key.(*ecdsa.PublicKey); isEC {
			curve, ok = p.Curve, true
		}
		ok = ok && curve == elliptic.P256()
	default:
		return fmt.Errorf("kid %q: algorithm %q, want %s or %s", k.KeyID, k.Algorithm, EdDSA, ES256)
	}
	if !ok {
		kind := "public"
		if wantPrivate {
			kind = "private"
		}
		return fmt.Errorf("kid %q: not a %s %s key", k.KeyID, kind, k.Algorithm)
	}
	return nil
}
