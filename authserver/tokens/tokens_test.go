package tokens_test

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	josejwt "github.com/go-jose/go-jose/v4/jwt"

	"github.com/authmesh/authmesh/authserver/tokens"
	"github.com/authmesh/authmesh/internal/keys"
)

func newSigner(t testing.TB, alg string, extra ...jose.JSONWebKey) (*tokens.Signer, *keys.PrivateSet) {
	t.Helper()
	k, err := keys.Generate(alg)
	if err != nil {
		t.Fatal(err)
	}
	set := &keys.PrivateSet{Keys: append([]jose.JSONWebKey{k}, extra...), ActiveKID: k.KeyID}
	s, err := tokens.NewSigner(set, tokens.Settings{
		TenantID: "darmist1", Issuer: "https://auth.example.com/t/darmist1", Audience: "authmesh", TTL: 15 * time.Minute,
	})
	if err != nil {
		t.Fatal(err)
	}
	return s, set
}

// TestTokensVerifyWithPublishedJWKS checks a token against the Signer's own JWKS with an
// independent JOSE library, pinning the algorithm as verifiers do.
func TestTokensVerifyWithPublishedJWKS(t *testing.T) {
	for _, alg := range []string{keys.EdDSA, keys.ES256} {
		t.Run(alg, func(t *testing.T) {
			retired, err := keys.Generate(keys.ES256)
			if err != nil {
				t.Fatal(err)
			}
			s, _ := newSigner(t, alg, retired)
			now := time.Now()
			issued, err := s.IssueAt(now, tokens.Subject{UserID: "u1", Role: "admin", SessionID: "s1"})
			if err != nil {
				t.Fatal(err)
			}
			var jwks jose.JSONWebKeySet
			if err := json.Unmarshal(s.JWKS().Body, &jwks); err != nil {
				t.Fatal(err)
			}
			if len(jwks.Keys) != 2 {
				t.Fatalf("JWKS has %d keys, want the active and the retired one", len(jwks.Keys))
			}
			if strings.Contains(string(s.JWKS().Body), `"d":`) {
				t.Fatal("JWKS leaks a private key")
			}
			tok, err := josejwt.ParseSigned(issued.Token, []jose.SignatureAlgorithm{jose.SignatureAlgorithm(alg)})
			if err != nil {
				t.Fatal(err)
			}
			h := tok.Headers[0]
			if h.KeyID != s.KeyID() || h.ExtraHeaders["typ"] != "at+jwt" {
				t.Fatalf("header kid %q typ %v, want %q at+jwt", h.KeyID, h.ExtraHeaders["typ"], s.KeyID())
			}
			keysByID := jwks.Key(h.KeyID)
			if len(keysByID) != 1 {
				t.Fatalf("kid %q is in the JWKS %d times", h.KeyID, len(keysByID))
			}
			var std josejwt.Claims
			var custom struct {
				TenantID  string `json:"tid"`
				Role      string `json:"role"`
				SessionID string `json:"sid"`
			}
			if err := tok.Claims(keysByID[0].Key, &std, &custom); err != nil {
				t.Fatalf("signature does not verify with the published key: %v", err)
			}
			if err := std.ValidateWithLeeway(josejwt.Expected{
				Issuer: "https://auth.example.com/t/darmist1", AnyAudience: josejwt.Audience{"authmesh"}, Time: now,
			}, 30*time.Second); err != nil {
				t.Fatal(err)
			}
			if std.Subject != "u1" || custom.TenantID != "darmist1" || custom.Role != "admin" || custom.SessionID != "s1" || std.ID == "" {
				t.Fatalf("claims %+v %+v", std, custom)
			}
			if got := std.Expiry.Time().Sub(std.IssuedAt.Time()); got != 15*time.Minute {
				t.Fatalf("exp - iat = %s, want the 15m TTL", got)
			}
			var aud struct {
				Aud any `json:"aud"`
			}
			if err := tok.UnsafeClaimsWithoutVerification(&aud); err != nil || aud.Aud != "authmesh" {
				t.Fatalf("aud = %#v, want the single string \"authmesh\"", aud.Aud)
			}
		})
	}
}

func TestDiscoveryDocument(t *testing.T) {
	retired, err := keys.Generate(keys.ES256)
	if err != nil {
		t.Fatal(err)
	}
	s, _ := newSigner(t, keys.EdDSA, retired)
	var doc map[string]any
	if err := json.Unmarshal(s.Discovery().Body, &doc); err != nil {
		t.Fatal(err)
	}
	if doc["issuer"] != "https://auth.example.com/t/darmist1" || doc["jwks_uri"] != "https://auth.example.com/t/darmist1/.well-known/jwks.json" {
		t.Fatalf("issuer %v, jwks_uri %v", doc["issuer"], doc["jwks_uri"])
	}
	algs, _ := json.Marshal(doc["id_token_signing_alg_values_supported"])
	if string(algs) != `["ES256","EdDSA"]` {
		t.Fatalf("algorithms %s, want every published key's", algs)
	}
	if pub := s.PublicKeys(); len(pub) != 2 || pub[s.KeyID()].Algorithm != "EdDSA" || pub[retired.KeyID].Algorithm != "ES256" {
		t.Fatalf("PublicKeys() = %v, want both keys with their algorithms", pub)
	}
	if s.JWKS().ETag == "" || s.JWKS().ETag == s.Discovery().ETag {
		t.Fatalf("ETags %q and %q, want distinct non-empty", s.JWKS().ETag, s.Discovery().ETag)
	}
}

func TestIssueRefusesIncompleteSubject(t *testing.T) {
	s, _ := newSigner(t, keys.EdDSA)
	for name, sub := range map[string]tokens.Subject{
		"no user":    {Role: "user", SessionID: "s"},
		"no role":    {UserID: "u", SessionID: "s"},
		"no session": {UserID: "u", Role: "user"},
	} {
		if _, err := s.Issue(sub); err == nil {
			t.Errorf("%s: Issue succeeded, want an error", name)
		}
	}
}

// TestTokenNeverOutlivesItsSession: exp is the TTL's, or the session's end when that comes
// first, and expiresIn agrees with exp.
func TestTokenNeverOutlivesItsSession(t *testing.T) {
	s, _ := newSigner(t, keys.EdDSA) // TTL 15 minutes
	now := time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)
	sub := tokens.Subject{UserID: "u", Role: "user", SessionID: "s"}
	for name, tc := range map[string]struct {
		end     time.Time
		wantExp time.Time
	}{
		"no session end":          {time.Time{}, now.Add(15 * time.Minute)},
		"session ends later":      {now.Add(time.Hour), now.Add(15 * time.Minute)},
		"session ends sooner":     {now.Add(4*time.Minute + 500*time.Millisecond), now.Add(4 * time.Minute)},
		"session ends at the TTL": {now.Add(15 * time.Minute), now.Add(15 * time.Minute)},
	} {
		sub.SessionEnd = tc.end
		got, err := s.IssueAt(now, sub)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if exp := got.Claims.ExpiresAt.Time; !exp.Equal(tc.wantExp) || got.ExpiresIn != tc.wantExp.Sub(now) {
			t.Errorf("%s: exp %s, expiresIn %s; want %s, %s", name, exp, got.ExpiresIn, tc.wantExp, tc.wantExp.Sub(now))
		}
	}
	sub.SessionEnd = now.Add(999 * time.Millisecond)
	if _, err := s.IssueAt(now, sub); !errors.Is(err, tokens.ErrSessionEnded) {
		t.Errorf("a session ending within the second: %v, want ErrSessionEnded", err)
	}
}

func TestNewSignerRefusesBadSettings(t *testing.T) {
	k, _ := keys.Generate(keys.EdDSA)
	set := &keys.PrivateSet{Keys: []jose.JSONWebKey{k}, ActiveKID: k.KeyID}
	if _, err := tokens.NewSigner(set, tokens.Settings{}); err == nil || !strings.Contains(err.Error(), "no issuer") {
		t.Fatalf("err = %v, want one listing the missing settings", err)
	}
}

// BenchmarkSign measures the cost of issuing one access token per algorithm.
func BenchmarkSign(b *testing.B) {
	for _, alg := range []string{keys.EdDSA, keys.ES256} {
		b.Run(alg, func(b *testing.B) {
			s, _ := newSigner(b, alg)
			sub := tokens.Subject{UserID: "6552c0ffee", Role: "user", SessionID: "e8c7fa5f-166b-4de2-b2e4-2d290c57cf58"}
			b.ReportAllocs()
			for b.Loop() {
				if _, err := s.Issue(sub); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
