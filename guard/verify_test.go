package guard

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/golang-jwt/jwt/v5"

	"github.com/authmesh/authmesh/internal/keys"
)

const (
	testTenant   = "darmist1"
	testIssuer   = "https://auth.example.com/t/darmist1"
	testAudience = "authmesh"
)

// testKey is a signing key with its public half.
type testKey struct {
	jwk jose.JSONWebKey
	pub keys.PublicKey
}

func newTestKey(t testing.TB, alg string) testKey {
	t.Helper()
	k, err := keys.Generate(alg)
	if err != nil {
		t.Fatal(err)
	}
	pub := k.Public()
	return testKey{jwk: k, pub: keys.PublicKey{ID: k.KeyID, Algorithm: alg, Key: pub.Key}}
}

func validClaims(now time.Time) Claims {
	return Claims{
		RegisteredClaims: jwt.RegisteredClaims{
			Issuer:    testIssuer,
			Audience:  jwt.ClaimStrings{testAudience},
			Subject:   "user-1",
			IssuedAt:  jwt.NewNumericDate(now),
			ExpiresAt: jwt.NewNumericDate(now.Add(15 * time.Minute)),
			ID:        "jti-1",
		},
		TenantID:  testTenant,
		Role:      "manager",
		SessionID: "sid-1",
	}
}

func sign(t testing.TB, k testKey, claims Claims, edit func(*jwt.Token)) string {
	t.Helper()
	method := jwt.GetSigningMethod(k.jwk.Algorithm)
	tok := jwt.NewWithClaims(method, claims)
	tok.Header["kid"] = k.jwk.KeyID
	tok.Header["typ"] = AccessTokenType
	if edit != nil {
		edit(tok)
	}
	s, err := tok.SignedString(k.jwk.Key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func newTestVerifier(t testing.TB, now func() time.Time, ks ...testKey) *Verifier {
	t.Helper()
	set := map[string]keys.PublicKey{}
	for _, k := range ks {
		set[k.jwk.KeyID] = k.pub
	}
	v, err := NewVerifier(VerifierConfig{TenantID: testTenant, Issuer: testIssuer, Audience: testAudience, Keys: NewStaticKeys(set), Now: now})
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func TestVerifyAcceptsValidTokens(t *testing.T) {
	now := time.Now()
	for _, alg := range []string{keys.EdDSA, keys.ES256} {
		t.Run(alg, func(t *testing.T) {
			k := newTestKey(t, alg)
			v := newTestVerifier(t, func() time.Time { return now }, k)
			id, err := v.Verify(t.Context(), sign(t, k, validClaims(now), nil))
			if err != nil {
				t.Fatalf("Verify: %v", err)
			}
			want := Identity{UserID: "user-1", TenantID: testTenant, Role: "manager", SessionID: "sid-1", TokenID: "jti-1", ExpiresAt: now.Add(15 * time.Minute).Truncate(time.Second)}
			if id != want {
				t.Fatalf("identity = %+v, want %+v", id, want)
			}
		})
	}
}

func TestVerifyRefusesBadTokens(t *testing.T) {
	now := time.Now()
	clock := func() time.Time { return now }
	ed := newTestKey(t, keys.EdDSA)
	es := newTestKey(t, keys.ES256)
	other := newTestKey(t, keys.EdDSA) // not published
	v := newTestVerifier(t, clock, ed, es)

	edPub := ed.pub.Key.(ed25519.PublicKey)
	hsWithPublicKey := func() string {
		tok := jwt.NewWithClaims(jwt.SigningMethodHS256, validClaims(now))
		tok.Header["kid"] = ed.jwk.KeyID
		tok.Header["typ"] = AccessTokenType
		s, err := tok.SignedString([]byte(edPub))
		if err != nil {
			t.Fatal(err)
		}
		return s
	}()
	algNone := func() string {
		tok := jwt.NewWithClaims(jwt.SigningMethodNone, validClaims(now))
		tok.Header["kid"] = ed.jwk.KeyID
		tok.Header["typ"] = AccessTokenType
		s, err := tok.SignedString(jwt.UnsafeAllowNoneSignatureType)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}()
	with := func(edit func(*Claims)) Claims {
		c := validClaims(now)
		edit(&c)
		return c
	}
	cases := map[string]struct {
		token string
		want  error
	}{
		"empty":                         {"", ErrNoToken},
		"garbage":                       {"not.a.jwt", ErrInvalidToken},
		"alg none":                      {algNone, ErrInvalidToken},
		"HS256 keyed with public key":   {hsWithPublicKey, ErrInvalidToken},
		"unknown kid":                   {sign(t, other, validClaims(now), nil), ErrUnknownKey},
		"EdDSA kid with ES256 key":      {sign(t, es, validClaims(now), func(tok *jwt.Token) { tok.Header["kid"] = ed.jwk.KeyID }), ErrInvalidToken},
		"signature by another key":      {sign(t, other, validClaims(now), func(tok *jwt.Token) { tok.Header["kid"] = ed.jwk.KeyID }), ErrInvalidToken},
		"another tenant":                {sign(t, ed, with(func(c *Claims) { c.TenantID = "acme2" }), nil), ErrWrongTenant},
		"wrong issuer":                  {sign(t, ed, with(func(c *Claims) { c.Issuer = "https://auth.example.com/t/acme2" }), nil), ErrInvalidToken},
		"wrong audience":                {sign(t, ed, with(func(c *Claims) { c.Audience = jwt.ClaimStrings{"other"} }), nil), ErrInvalidToken},
		"expired beyond the skew":       {sign(t, ed, with(func(c *Claims) { c.ExpiresAt = jwt.NewNumericDate(now.Add(-ClockSkew - time.Second)) }), nil), ErrInvalidToken},
		"not yet valid beyond skew":     {sign(t, ed, with(func(c *Claims) { c.NotBefore = jwt.NewNumericDate(now.Add(ClockSkew + 5*time.Second)) }), nil), ErrInvalidToken},
		"no exp":                        {sign(t, ed, with(func(c *Claims) { c.ExpiresAt = nil }), nil), ErrInvalidToken},
		"no sid":                        {sign(t, ed, with(func(c *Claims) { c.SessionID = "" }), nil), ErrInvalidToken},
		"typ JWT (not an access token)": {sign(t, ed, validClaims(now), func(tok *jwt.Token) { tok.Header["typ"] = "JWT" }), ErrInvalidToken},
		"no kid":                        {sign(t, ed, validClaims(now), func(tok *jwt.Token) { delete(tok.Header, "kid") }), ErrInvalidToken},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			id, err := v.Verify(t.Context(), tc.token)
			if !errors.Is(err, tc.want) {
				t.Fatalf("Verify = %+v, %v; want error %v", id, err, tc.want)
			}
		})
	}
}

func TestVerifyAllowsClockSkew(t *testing.T) {
	now := time.Now()
	k := newTestKey(t, keys.EdDSA)
	v := newTestVerifier(t, func() time.Time { return now }, k)
	c := validClaims(now)
	c.ExpiresAt = jwt.NewNumericDate(now.Add(-ClockSkew + 5*time.Second))
	c.IssuedAt = jwt.NewNumericDate(now.Add(ClockSkew - 5*time.Second))
	if _, err := v.Verify(t.Context(), sign(t, k, c, nil)); err != nil {
		t.Fatalf("a token within the %s skew was refused: %v", ClockSkew, err)
	}
}

func TestCachedTokenStillExpires(t *testing.T) {
	now := time.Now()
	k := newTestKey(t, keys.EdDSA)
	v := newTestVerifier(t, func() time.Time { return now }, k)
	tok := sign(t, k, validClaims(now), nil)
	if _, err := v.Verify(t.Context(), tok); err != nil {
		t.Fatal(err)
	}
	now = now.Add(15*time.Minute + ClockSkew + time.Second)
	if _, err := v.Verify(t.Context(), tok); !errors.Is(err, ErrInvalidToken) {
		t.Fatalf("a remembered token past its expiry: err = %v, want ErrInvalidToken", err)
	}
}

// jwksServer serves a JWKS document that the test can change or break, counting fetches.
type jwksServer struct {
	*httptest.Server
	mu      sync.Mutex
	doc     []byte
	down    bool
	fetches atomic.Int64
}

func newJWKSServer(t *testing.T, ks ...testKey) *jwksServer {
	s := &jwksServer{}
	s.publish(t, ks...)
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.fetches.Add(1)
		s.mu.Lock()
		doc, down := s.doc, s.down
		s.mu.Unlock()
		if down {
			http.Error(w, "down", http.StatusServiceUnavailable)
			return
		}
		w.Header().Set("Content-Type", "application/jwk-set+json")
		_, _ = w.Write(doc)
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *jwksServer) publish(t *testing.T, ks ...testKey) {
	set := jose.JSONWebKeySet{}
	for _, k := range ks {
		set.Keys = append(set.Keys, k.jwk.Public())
	}
	doc, err := json.Marshal(set)
	if err != nil {
		t.Fatal(err)
	}
	s.mu.Lock()
	s.doc = doc
	s.mu.Unlock()
}

func (s *jwksServer) setDown(down bool) {
	s.mu.Lock()
	s.down = down
	s.mu.Unlock()
}

func TestRemoteKeysPicksUpRotationAndSurvivesOutage(t *testing.T) {
	now := time.Now()
	first, second := newTestKey(t, keys.EdDSA), newTestKey(t, keys.EdDSA)
	srv := newJWKSServer(t, first)
	remote := NewRemoteKeys(RemoteKeysConfig{URL: srv.URL, MinFetchInterval: time.Millisecond})
	v, err := NewVerifier(VerifierConfig{TenantID: testTenant, Issuer: testIssuer, Audience: testAudience, Keys: remote, CacheSize: -1})
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	if _, err := v.Verify(ctx, sign(t, first, validClaims(now), nil)); err != nil {
		t.Fatalf("first key: %v", err)
	}
	srv.publish(t, first, second) // rotation: the new key signs, the old one stays published
	time.Sleep(2 * time.Millisecond)
	if _, err := v.Verify(ctx, sign(t, second, validClaims(now), nil)); err != nil {
		t.Fatalf("a token of the rotated-in key: %v", err)
	}
	srv.setDown(true)
	for _, k := range []testKey{first, second} {
		if _, err := v.Verify(ctx, sign(t, k, validClaims(now), nil)); err != nil {
			t.Fatalf("while the JWKS source is down, a known key was refused: %v", err)
		}
	}
}

// TestUnknownKidFloodIsBounded sends 10,000 tokens with unknown kids at once and counts the
// JWKS fetches they cause.
func TestUnknownKidFloodIsBounded(t *testing.T) {
	now := time.Now()
	published := newTestKey(t, keys.EdDSA)
	srv := newJWKSServer(t, published)
	remote := NewRemoteKeys(RemoteKeysConfig{URL: srv.URL, MinFetchInterval: time.Second})
	v, err := NewVerifier(VerifierConfig{TenantID: testTenant, Issuer: testIssuer, Audience: testAudience, Keys: remote})
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	if _, err := v.Verify(ctx, sign(t, published, validClaims(now), nil)); err != nil {
		t.Fatal(err)
	}
	forger := newTestKey(t, keys.EdDSA)
	const total = 10_000
	tokens := make([]string, total)
	for i := range tokens {
		tokens[i] = sign(t, forger, validClaims(now), func(tok *jwt.Token) { tok.Header["kid"] = fmt.Sprintf("forged-%d", i) })
	}
	before := srv.fetches.Load()
	start := time.Now()
	var wg sync.WaitGroup
	var accepted atomic.Int64
	for _, tok := range tokens {
		wg.Go(func() {
			if _, err := v.Verify(ctx, tok); err == nil {
				accepted.Add(1)
			}
		})
	}
	wg.Wait()
	fetched := srv.fetches.Load() - before
	if accepted.Load() != 0 {
		t.Fatalf("%d forged tokens were accepted", accepted.Load())
	}
	if limit := int64(time.Since(start)/time.Second) + 2; fetched > limit {
		t.Fatalf("10,000 unknown-kid tokens caused %d JWKS fetches; want at most %d (one per MinFetchInterval, plus one)", fetched, limit)
	}
	t.Logf("10,000 unknown-kid tokens caused %d JWKS fetch(es) in %s", fetched, time.Since(start).Round(time.Millisecond))
}

func TestRemoteKeysUnavailableBeforeFirstFetch(t *testing.T) {
	srv := newJWKSServer(t)
	srv.setDown(true)
	remote := NewRemoteKeys(RemoteKeysConfig{URL: srv.URL})
	_, err := remote.Key(context.Background(), "any")
	if err == nil || errors.Is(err, ErrUnknownKey) {
		t.Fatalf("Key with an unreachable source and no keys: err = %v, want a fetch error", err)
	}
}

func BenchmarkVerify(b *testing.B) {
	now := time.Now()
	for _, alg := range []string{keys.EdDSA, keys.ES256} {
		k := newTestKey(b, alg)
		tok := sign(b, k, validClaims(now), nil)
		b.Run(alg+"/uncached", func(b *testing.B) {
			v, _ := NewVerifier(VerifierConfig{TenantID: testTenant, Issuer: testIssuer, Audience: testAudience, Keys: NewStaticKeys(map[string]keys.PublicKey{k.jwk.KeyID: k.pub}), CacheSize: -1})
			for b.Loop() {
				if _, err := v.Verify(context.Background(), tok); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(alg+"/cached", func(b *testing.B) {
			v, _ := NewVerifier(VerifierConfig{TenantID: testTenant, Issuer: testIssuer, Audience: testAudience, Keys: NewStaticKeys(map[string]keys.PublicKey{k.jwk.KeyID: k.pub})})
			for b.Loop() {
				if _, err := v.Verify(context.Background(), tok); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// TestKeyRotatedJustAfterAFetchIsFound publishes a new key right after the verifier fetched
// the set: a token of the new key waits for the next allowed fetch instead of failing.
func TestKeyRotatedJustAfterAFetchIsFound(t *testing.T) {
	now := time.Now()
	first, second := newTestKey(t, keys.EdDSA), newTestKey(t, keys.EdDSA)
	srv := newJWKSServer(t, first)
	remote := NewRemoteKeys(RemoteKeysConfig{URL: srv.URL, MinFetchInterval: 300 * time.Millisecond})
	v, err := NewVerifier(VerifierConfig{TenantID: testTenant, Issuer: testIssuer, Audience: testAudience, Keys: remote})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := v.Verify(t.Context(), sign(t, first, validClaims(now), nil)); err != nil {
		t.Fatal(err)
	}
	srv.publish(t, first, second)
	start := time.Now()
	if _, err := v.Verify(t.Context(), sign(t, second, validClaims(now), nil)); err != nil {
		t.Fatalf("a token of a key published just after a fetch was refused: %v", err)
	}
	if waited := time.Since(start); waited > time.Second {
		t.Fatalf("waited %s for the next fetch; want at most MinFetchInterval", waited)
	}
}

// FuzzVerify feeds arbitrary strings to the verifier: it must never panic, and it must never
// accept anything but a token signed by the published key with the right claims.
func FuzzVerify(f *testing.F) {
	now := time.Now()
	k := newTestKey(f, keys.EdDSA)
	valid := sign(f, k, validClaims(now), nil)
	f.Add(valid)
	f.Add(valid[:len(valid)-2])
	f.Add("eyJhbGciOiJub25lIn0.e30.")
	f.Add("a.b.c")
	f.Add("")
	v := newTestVerifier(f, func() time.Time { return now }, k)
	want, err := v.Verify(context.Background(), valid)
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		id, err := v.Verify(context.Background(), raw)
		if err == nil && id != want {
			// Only the one signed token exists; anything accepted must carry exactly its claims.
			t.Fatalf("Verify accepted %q as %+v", raw, id)
		}
	})
}
