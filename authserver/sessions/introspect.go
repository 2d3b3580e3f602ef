package sessions

import (
	"encoding/json"
	"errors"
	"mime"
	"net/http"

	"github.com/golang-jwt/jwt/v5"

	"github.com/authmesh/authmesh/authserver/httpapi"
	"github.com/authmesh/authmesh/guard"
)

// Introspection is the RFC 7662 answer for an active access token. An inactive (or unknown,
// expired, revoked, foreign) token is answered with {"active": false} only.
type Introspection struct {
	Active    bool   `json:"active"`
	Subject   string `json:"sub,omitempty"`
	TenantID  string `json:"tid,omitempty"`
	Role      string `json:"role,omitempty"`
	SessionID string `json:"sid,omitempty"`
	ExpiresAt int64  `json:"exp,omitempty"`
	IssuedAt  int64  `json:"iat,omitempty"`
	Issuer    string `json:"iss,omitempty"`
	Audience  string `json:"aud,omitempty"`
	TokenID   string `json:"jti,omitempty"`
	TokenType string `json:"token_type,omitempty"`
}

// maxIntrospectBody bounds the form of an introspection request.
const maxIntrospectBody = 64 << 10

// handleIntrospect serves POST /internal/v1/introspect (RFC 7662): form field token, an
// access token of any tenant (its tid names the tenant). The answer is active only when the
// token verifies with its tenant's keys and its session is active now. Refresh tokens are
// never introspected (they name no tenant): {"active": false}.
func (s *Service) handleIntrospect(w http.ResponseWriter, r *http.Request) {
	if mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); mt != "application/x-www-form-urlencoded" {
		writeIntrospection(w, http.StatusBadRequest, map[string]string{"error": "invalid_request",
			"error_description": "the body must be application/x-www-form-urlencoded"})
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, maxIntrospectBody)
	if err := r.ParseForm(); err != nil {
		writeIntrospection(w, http.StatusBadRequest, map[string]string{"error": "invalid_request"})
		return
	}
	raw := r.PostForm.Get("token")
	if raw == "" {
		writeIntrospection(w, http.StatusBadRequest, map[string]string{"error": "invalid_request",
			"error_description": "token is required"})
		return
	}
	answer, err := s.introspect(r, raw)
	if err != nil {
		httpapi.WriteError(w, r, err)
		return
	}
	writeIntrospection(w, http.StatusOK, answer)
}

func (s *Service) introspect(r *http.Request, raw string) (Introspection, error) {
	inactive := Introspection{Active: false}
	// The tenant comes from the token; nothing in it is trusted until its tenant's keys
	// have verified it.
	var unverified guard.Claims
	if _, _, err := jwt.NewParser().ParseUnverified(raw, &unverified); err != nil || unverified.TenantID == "" {
		return inactive, nil
	}
	ctx := r.Context()
	t, release, err := s.opts.Registry.Acquire(ctx, unverified.TenantID, true)
	if err != nil {
		var he *httpapi.Error
		if errors.As(err, &he) && he.Code != httpapi.CodeTenantConnectionMissing {
			return inactive, nil // unknown or suspended tenant
		}
		return inactive, err
	}
	defer release()
	id, err := s.verifier(t).Verify(ctx, raw)
	if err != nil {
		return inactive, nil
	}
	ok, err := s.Active(ctx, t, id.UserID, id.SessionID)
	if err != nil || !ok {
		return inactive, err
	}
	var iat int64
	if unverified.IssuedAt != nil {
		iat = unverified.IssuedAt.Unix()
	}
	return Introspection{
		Active:    true,
		Subject:   id.UserID,
		TenantID:  id.TenantID,
		Role:      id.Role,
		SessionID: id.SessionID,
		ExpiresAt: id.ExpiresAt.Unix(),
		IssuedAt:  iat,
		Issuer:    t.Issuer,
		Audience:  t.Spec.Tokens.Audience,
		TokenID:   id.TokenID,
		TokenType: TokenType,
	}, nil
}

func writeIntrospection(w http.ResponseWriter, status int, v any) {
	body, _ := json.Marshal(v)
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Pragma", "no-cache")
	httpapi.WriteRaw(w, status, body)
}
