package guard

import (
	"context"
	"errors"
	"net/http"
	"strings"
)

// AnyTenant as the enforcer's tenant takes the tenant from the request's x-tenant-id header;
// the token's tid must then equal it.
const AnyTenant = "*"

// TenantHeader names the tenant in requests, as in the tutorial.
const TenantHeader = "x-tenant-id"

// tenantHeaderKey and authorizationKey are the canonical forms net/http stores the headers
// under, so the request path reads each header's values with one map lookup.
var tenantHeaderKey = http.CanonicalHeaderKey(TenantHeader)

const authorizationKey = "Authorization"

// Reasons an enforcement decision is made; they label metrics and logs.
const (
	ReasonInvalidPath      = "invalid_path"
	ReasonPublic           = "public"
	ReasonAllowed          = "allowed"
	ReasonNoToken          = "no_token"
	ReasonInvalidToken     = "invalid_token"
	ReasonUnknownKey       = "unknown_key"
	ReasonWrongTenant      = "wrong_tenant"
	ReasonKeysUnavailable  = "keys_unavailable"
	ReasonSessionRevoked   = "session_revoked"
	ReasonMissingRole      = "missing_role"
	ReasonInsufficientRole = "insufficient_role"
	ReasonTenantMissing    = "tenant_missing"
	ReasonTenantAmbiguous  = "tenant_ambiguous" // more than one x-tenant-id header
)

// VerifierSource returns the verifier for a tenant's tokens, or an error when there is none
// (an unknown tenant, say).
type VerifierSource func(ctx context.Context, tenant string) (*Verifier, error)

// SessionChecker says whether a session's tokens must be refused although they verify.
type SessionChecker interface {
	Revoked(ctx context.Context, tenant, sessionID string) bool
}

// EnforcerConfig wires an Enforcer.
type EnforcerConfig struct {
	// Policy returns the policy in force; it is called once per request, so it may change.
	// A nil policy means every route needs a token.
	Policy func() *Policy
	// Tenant whose tokens are accepted, or AnyTenant.
	Tenant string
	// Verifiers gives the verifier of a tenant.
	Verifiers VerifierSource
	// Sessions, when set, refuses tokens of revoked sessions.
	Sessions SessionChecker
	// OnDecision, when set, is told every decision (for metrics); it must be fast.
	OnDecision func(r *http.Request, reason string)
}

// Enforcer is the tutorial's global guards as net/http middleware: every route needs a valid
// access token unless the policy makes it public, and a role route also needs one of its roles.
// The wrapped handler finds the caller in the request context (IdentityFrom) and the decoded,
// authorised path in the request URL.
type Enforcer struct {
	cfg EnforcerConfig
}

// NewEnforcer returns an Enforcer for cfg.
func NewEnforcer(cfg EnforcerConfig) (*Enforcer, error) {
	if cfg.Verifiers == nil || cfg.Tenant == "" {
		return nil, errors.New("guard: an enforcer needs a tenant and a verifier source")
	}
	if cfg.Policy == nil {
		cfg.Policy = func() *Policy { return nil }
	}
	return &Enforcer{cfg: cfg}, nil
}

// Wrap returns next guarded by the enforcer.
func (e *Enforcer) Wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// Methods are case-sensitive on the wire, but many frameworks (Flask, Django, ...)
		// upper-case them before routing: "post" must meet the POST rules, and the app gets
		// the method that was decided on.
		if upper := strings.ToUpper(r.Method); upper != r.Method {
			r = r.WithContext(r.Context())
			r.Method = upper
		}
		d := e.cfg.Policy().Decide(r.Method, r.URL.EscapedPath())
		if d.InvalidPath {
			e.refuse(w, r, ReasonInvalidPath)
			return
		}
		if d.Public {
			e.decided(r, ReasonPublic)
			next.ServeHTTP(w, r)
			return
		}
		tenant := e.cfg.Tenant
		if tenant == AnyTenant {
			values := r.Header[tenantHeaderKey]
			if len(values) == 0 || values[0] == "" {
				e.refuse(w, r, ReasonTenantMissing)
				return
			}
			// Only the first would be checked, and an app reading the header could take another.
			if len(values) > 1 {
				e.refuse(w, r, ReasonTenantAmbiguous)
				return
			}
			tenant = values[0]
		}
		raw := BearerToken(r)
		if raw == "" {
			e.refuse(w, r, ReasonNoToken)
			return
		}
		if len(r.Header[authorizationKey]) > 1 {
			e.refuse(w, r, ReasonInvalidToken) // only the first would be verified
			return
		}
		v, err := e.cfg.Verifiers(r.Context(), tenant)
		if err != nil {
			reason := ReasonWrongTenant
			if errors.Is(err, ErrKeysUnavailable) {
				reason = ReasonKeysUnavailable
			}
			e.refuse(w, r, reason)
			return
		}
		id, err := v.Verify(r.Context(), raw)
		if err != nil {
			e.refuse(w, r, verifyReason(err))
			return
		}
		if e.cfg.Sessions != nil && e.cfg.Sessions.Revoked(r.Context(), tenant, id.SessionID) {
			e.refuse(w, r, ReasonSessionRevoked)
			return
		}
		if !d.Allows(id.Role) {
			if id.Role == "" {
				e.refuse(w, r, ReasonMissingRole, d.Roles...)
			} else {
				e.refuse(w, r, ReasonInsufficientRole, d.Roles...)
			}
			return
		}
		e.decided(r, ReasonAllowed)
		next.ServeHTTP(w, r.WithContext(WithIdentity(r.Context(), id)))
	})
}

func verifyReason(err error) string {
	switch {
	case errors.Is(err, ErrNoToken):
		return ReasonNoToken
	case errors.Is(err, ErrUnknownKey):
		return ReasonUnknownKey
	case errors.Is(err, ErrWrongTenant):
		return ReasonWrongTenant
	case errors.Is(err, ErrKeysUnavailable):
		return ReasonKeysUnavailable
	}
	return ReasonInvalidToken
}

func (e *Enforcer) decided(r *http.Request, reason string) {
	if e.cfg.OnDecision != nil {
		e.cfg.OnDecision(r, reason)
	}
}

// refuse answers a refused request with the envelope, the status its reason calls for and,
// for 401 and 403, the RFC 6750 WWW-Authenticate challenge.
func (e *Enforcer) refuse(w http.ResponseWriter, r *http.Request, reason string, roles ...string) {
	e.decided(r, reason)
	WriteRefusal(w, reason, roles...)
}

// WriteRefusal writes the answer for a refusal reason (see the Reason constants).
func WriteRefusal(w http.ResponseWriter, reason string, roles ...string) {
	switch reason {
	case ReasonInvalidPath:
		WriteError(w, http.StatusBadRequest, CodeInvalidPath, "Invalid request path.")
	case ReasonTenantMissing:
		WriteError(w, http.StatusBadRequest, CodeTenantIDMissing, "The x-tenant-id header is required.")
	case ReasonTenantAmbiguous:
		WriteError(w, http.StatusBadRequest, CodeTenantIDMissing, "Send the x-tenant-id header once.")
	case ReasonSessionRevoked:
		w.Header().Set("WWW-Authenticate", `Bearer realm="authmesh", error="invalid_token", error_description="session revoked or expired"`)
		WriteError(w, http.StatusUnauthorized, CodeSessionInvalid, "Session is no longer valid. Please log in again.")
	case ReasonMissingRole:
		w.Header().Set("WWW-Authenticate", `Bearer realm="authmesh", error="insufficient_scope"`)
		WriteError(w, http.StatusForbidden, CodeForbiddenRole, "Missing role")
	case ReasonInsufficientRole:
		w.Header().Set("WWW-Authenticate", `Bearer realm="authmesh", error="insufficient_scope"`)
		WriteError(w, http.StatusForbidden, CodeForbiddenRole, "Insufficient role. Required: "+strings.Join(roles, ", "))
	case ReasonNoToken:
		w.Header().Set("WWW-Authenticate", `Bearer realm="authmesh", error="invalid_token", error_description="missing bearer token"`)
		WriteError(w, http.StatusUnauthorized, CodeUnauthorized, "Missing bearer token.")
	default:
		w.Header().Set("WWW-Authenticate", `Bearer realm="authmesh", error="invalid_token"`)
		WriteError(w, http.StatusUnauthorized, CodeUnauthorized, "Invalid or expired token.")
	}
}

// WebSocketTokenPrefix marks the Sec-WebSocket-Protocol entry that carries a bearer token,
// since browsers cannot set headers on WebSocket requests.
const WebSocketTokenPrefix = "bearer."

// BearerToken returns the request's bearer token: from the Authorization header, or for a
// WebSocket upgrade without one, from a Sec-WebSocket-Protocol entry "bearer.<token>".
func BearerToken(r *http.Request) string {
	if h := r.Header.Get(authorizationKey); h != "" {
		scheme, token, ok := strings.Cut(h, " ")
		if !ok || !strings.EqualFold(scheme, "Bearer") {
			return ""
		}
		return strings.TrimSpace(token)
	}
	if !isWebSocketUpgrade(r) {
		return ""
	}
	for _, h := range r.Header.Values("Sec-WebSocket-Protocol") {
		for p := range strings.SplitSeq(h, ",") {
			if p = strings.TrimSpace(p); strings.HasPrefix(p, WebSocketTokenPrefix) {
				return p[len(WebSocketTokenPrefix):]
			}
		}
	}
	return ""
}

func isWebSocketUpgrade(r *http.Request) bool {
	return strings.EqualFold(r.Header.Get("Upgrade"), "websocket") && headerHasToken(r.Header, "Connection", "upgrade")
}

func headerHasToken(h http.Header, name, token string) bool {
	for _, v := range h.Values(name) {
		for t := range strings.SplitSeq(v, ",") {
			if strings.EqualFold(strings.TrimSpace(t), token) {
				return true
			}
		}
	}
	return false
}

type identityKey struct{}

// WithIdentity returns ctx carrying id.
func WithIdentity(ctx context.Context, id Identity) context.Context {
	return context.WithValue(ctx, identityKey{}, id)
}

// IdentityFrom returns the identity the enforcer verified for this request, if any.
func IdentityFrom(ctx context.Context) (Identity, bool) {
	id, ok := ctx.Value(identityKey{}).(Identity)
	return id, ok
}
