package fault

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/authmesh/authmesh/authserver/tokens"
	"github.com/authmesh/authmesh/guard"
	"github.com/authmesh/authmesh/internal/keys"
)

// keySource serves a signer's public keys to a verifier.
type keySource map[string]keys.PublicKey

func (k keySource) Key(_ context.Context, kid string) (keys.PublicKey, error) {
	if pk, ok := k[kid]; ok {
		return pk, nil
	}
	return keys.PublicKey{}, guard.ErrUnknownKey
}

// clock is a settable clock for a verifier.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time      { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Set(t time.Time)     { c.mu.Lock(); c.t = t; c.mu.Unlock() }
func (c *clock) Add(d time.Duration) { c.Set(c.Now().Add(d)) }

// TestClockSkewSignerAndVerifier signs access tokens with the auth server's tokens.Signer whose
// clock is off by some seconds, and verifies them with the sidecar's guard.Verifier: skew
// within guard.ClockSkew (30s) either way is accepted, a token issued further in the future is
// refused until the verifier's clock catches up, and expiry is honoured with the same leeway.
func TestClockSkewSignerAndVerifier(t *testing.T) {
	k, err := keys.Generate(keys.EdDSA)
	if err != nil {
		t.Fatal(err)
	}
	const ttl = 10 * time.Minute
	signer, err := tokens.NewSigner(&keys.PrivateSet{Keys: []jose.JSONWebKey{k}, ActiveKID: k.KeyID}, tokens.Settings{
		TenantID: tenant, Issuer: "http://auth.example/t/" + tenant, Audience: "authmesh", TTL: ttl,
	})
	if err != nil {
		t.Fatal(err)
	}
	// The sidecar's clock, half a second into a second so that iat's truncation to whole
	// seconds never lands on a boundary.
	now := time.Now().Truncate(time.Second).Add(500 * time.Millisecond)
	sidecarClock := &clock{t: now}
	newVerifier := func() *guard.Verifier {
		v, err := guard.NewVerifier(guard.VerifierConfig{
			TenantID: tenant, Issuer: "http://auth.example/t/" + tenant, Audience: "authmesh",
			Keys: keySource(signer.PublicKeys()), Now: sidecarClock.Now,
		})
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	issue := func(at time.Time) string {
		iss, err := signer.IssueAt(at, tokens.Subject{UserID: "u1", Role: "user", SessionID: "s1"})
		if err != nil {
			t.Fatal(err)
		}
		return iss.Token
	}

	for _, tc := range []struct {
		name string
		skew time.Duration // the auth server's clock minus the sidecar's, when it issued the token
		ok   bool
	}{
		{"auth server 20s ahead", 20 * time.Second, true},
		{"auth server 20s behind", -20 * time.Second, true},
		{"auth server 29s ahead", 29 * time.Second, true},
		{"auth server 40s ahead: issued in the future", 40 * time.Second, false},
		{"auth server 40s behind: a shorter life, still valid", -40 * time.Second, true},
		{"expired 20s ago by the sidecar's clock", -ttl - 20*time.Second, true},
		{"expired 40s ago by the sidecar's clock", -ttl - 40*time.Second, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sidecarClock.Set(now)
			_, err := newVerifier().Verify(context.Background(), issue(now.Add(tc.skew)))
			if tc.ok && err != nil {
				t.Fatalf("refused: %v", err)
			}
			if !tc.ok && !errors.Is(err, guard.ErrInvalidToken) {
				t.Fatalf("err = %v, want %v", err, guard.ErrInvalidToken)
			}
		})
	}

	t.Run("a token from 40s ahead is accepted once the sidecar's clock is within the leeway", func(t *testing.T) {
		sidecarClock.Set(now)
		v, tok := newVerifier(), issue(now.Add(40*time.Second))
		if _, err := v.Verify(context.Background(), tok); !errors.Is(err, guard.ErrInvalidToken) {
			t.Fatalf("err = %v, want %v", err, guard.ErrInvalidToken)
		}
		sidecarClock.Add(15 * time.Second) // now 25s behind the token's iat
		if _, err := v.Verify(context.Background(), tok); err != nil {
			t.Fatalf("refused within the leeway: %v", err)
		}
	})

	t.Run("a verified token stays accepted only until exp plus the leeway", func(t *testing.T) {
		sidecarClock.Set(now)
		v, tok := newVerifier(), issue(now.Add(20*time.Second)) // the cache remembers it
		if _, err := v.Verify(context.Background(), tok); err != nil {
			t.Fatal(err)
		}
		exp := now.Add(20 * time.Second).Truncate(time.Second).Add(ttl)
		sidecarClock.Set(exp.Add(guard.ClockSkew - time.Second))
		if _, err := v.Verify(context.Background(), tok); err != nil {
			t.Fatalf("refused %s after exp: %v", guard.ClockSkew-time.Second, err)
		}
		sidecarClock.Set(exp.Add(guard.ClockSkew + time.Second))
		if _, err := v.Verify(context.Background(), tok); !errors.Is(err, guard.ErrInvalidToken) {
			t.Fatalf("%s after exp: err = %v, want %v", guard.ClockSkew+time.Second, err, guard.ErrInvalidToken)
		}
	})
}

// TestClockSkewThroughSidecar runs the real auth server with its clock off from the sidecar's
// and sends the access tokens it issues through a real sidecar: 20s either way is admitted,
// tokens issued 40s in the sidecar's future are refused (401), and a token that expired 20s
// ago by the sidecar's clock is still admitted while one expired 40s ago is not.
func TestClockSkewThroughSidecar(t *testing.T) {
	s := startStack(t)
	s.Signup(tenant, "skewed", "skewed@fault.example", password)
	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, "ok") }))
	t.Cleanup(app.Close)
	sc := startSidecar(t, sidecarConfig(s, app.URL))
	ttl := time.Duration(s.Login(tenant, "skewed", password, "skewed@fault.example").ExpiresIn) * time.Second

	for _, tc := range []struct {
		name   string
		skew   time.Duration // the auth server's clock minus the real (sidecar's) clock
		status int
	}{
		{"auth server 20s ahead", 20 * time.Second, http.StatusOK},
		{"auth server 20s behind", -20 * time.Second, http.StatusOK},
		{"auth server 40s ahead", 40 * time.Second, http.StatusUnauthorized},
		{"auth server 40s behind", -40 * time.Second, http.StatusOK},
		{"token expired 20s ago", -ttl - 20*time.Second, http.StatusOK},
		{"token expired 40s ago", -ttl - 40*time.Second, http.StatusUnauthorized},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s.Clock.Advance(tc.skew - time.Until(s.Clock.Now()))
			access := s.Login(tenant, "skewed", password, "skewed@fault.example").AccessToken
			req, _ := http.NewRequest("GET", sc+"/orders", nil)
			req.Header.Set("Authorization", "Bearer "+access)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tc.status {
				t.Fatalf("status %d, want %d (%s)", resp.StatusCode, tc.status, body)
			}
			if tc.status == http.StatusUnauthorized {
				var env guard.Envelope
				if err := json.Unmarshal(body, &env); err != nil || env.Meta.Code != guard.CodeUnauthorized {
					t.Fatalf("refusal %s, want a %s envelope", body, guard.CodeUnauthorized)
				}
			}
		})
	}
}
