package sessions

import (
	"context"
	"log/slog"
	"net/http"
	"slices"
	"sync"

	"github.com/authmesh/authmesh/authserver/httpapi"
	"github.com/authmesh/authmesh/authserver/tenancy"
	"github.com/authmesh/authmesh/authserver/tokens"
	"github.com/authmesh/authmesh/guard"
)

// Authenticate is the middleware of the auth server's own bearer routes; put it after the
// tenant middleware (it needs the tenant's database). It verifies the access token with guard
// (the tenant's keys, issuer, audience and tenant; 401 UNAUTHORIZED otherwise), then checks
// the token's session in the database on every request, so a logout takes effect at once
// (401 SESSION_INVALID), and, when roles are given, that the token's role is one of them (403
// FORBIDDEN_ROLE). The handler finds the caller with Caller.
func (s *Service) Authenticate(roles ...string) httpapi.Middleware {
	return func(next http.Handler) http.Handler {
		return httpapi.HandlerFunc(func(w http.ResponseWriter, r *http.Request) error {
			ctx := r.Context()
			t := tenancy.FromContext(ctx)
			raw := guard.BearerToken(r)
			if raw == "" {
				return errNoBearer()
			}
			id, err := s.verifier(t).Verify(ctx, raw)
			if err != nil {
				return errBadBearer(err)
			}
			httpapi.LogAttrs(ctx, slog.String("user", id.UserID), slog.String("sid", id.SessionID))
			ok, err := s.Active(ctx, t, id.UserID, id.SessionID)
			if err != nil {
				return err
			}
			if !ok {
				return errSessionInvalid()
			}
			if len(roles) > 0 && !slices.Contains(roles, id.Role) {
				return errForbiddenRole(roles)
			}
			next.ServeHTTP(w, r.WithContext(guard.WithIdentity(ctx, id)))
			return nil
		})
	}
}

// Caller returns the identity Authenticate verified for this request.
func Caller(ctx context.Context) (guard.Identity, bool) { return guard.IdentityFrom(ctx) }

// verifierCache keeps one guard.Verifier per tenant for the key-set snapshot it was built
// from: a key rotation or spec change (a new tokens.Signer) builds a new one.
type verifierCache struct {
	mu sync.Mutex
	m  map[string]cachedVerifier
}

type cachedVerifier struct {
	signer *tokens.Signer
	v      *guard.Verifier
}

// verifier returns the verifier of t's tokens.
func (s *Service) verifier(t *tenancy.Tenant) *guard.Verifier {
	c := &s.verifiers
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.m[t.ID]; ok && e.signer == t.Tokens {
		return e.v
	}
	v, err := guard.NewVerifier(guard.VerifierConfig{
		TenantID: t.ID,
		Issuer:   t.Issuer,
		Audience: t.Spec.Tokens.Audience,
		Keys:     guard.NewStaticKeys(t.Tokens.PublicKeys()),
		Now:      s.Now,
	})
	if err != nil {
		// Only a tenant without an id, issuer or audience gets here, which the registry
		// never serves; refuse every token of it.
		v, _ = guard.NewVerifier(guard.VerifierConfig{TenantID: "-", Issuer: "-", Audience: "-", Keys: guard.NewStaticKeys(nil)})
	}
	if c.m == nil {
		c.m = map[string]cachedVerifier{}
	}
	c.m[t.ID] = cachedVerifier{signer: t.Tokens, v: v}
	return v
}
