package sessions

import (
	"net/http"
	"strconv"
	"time"

	"github.com/authmesh/authmesh/authserver/audit"
	"github.com/authmesh/authmesh/authserver/httpapi"
	"github.com/authmesh/authmesh/authserver/tenancy"
)

// SessionView is one entry of GET /auth/sessions.
type SessionView struct {
	SessionID  string `json:"sessionId"`
	DeviceName string `json:"deviceName"`
	IP         string `json:"ip"`
	UA         string `json:"ua"`
	CreatedAt  string `json:"createdAt"`
	LastSeen   string `json:"lastSeen"`
	Current    bool   `json:"current"`
}

// logoutSessionRequest is the body of POST /auth/logout/session.
type logoutSessionRequest struct {
	SessionID string `json:"sessionId" validate:"required,uuid"`
}

// refreshRequest is the body of POST /auth/refresh.
type refreshRequest struct {
	RefreshToken string `json:"refreshToken" validate:"required"`
}

func (s *Service) handleList(w http.ResponseWriter, r *http.Request) error {
	ctx := r.Context()
	caller, _ := Caller(ctx)
	list, err := s.List(ctx, tenancy.FromContext(ctx), caller.UserID)
	if err != nil {
		return err
	}
	out := make([]SessionView, len(list))
	for i, d := range list {
		out[i] = SessionView{
			SessionID:  d.ID,
			DeviceName: d.DeviceName,
			IP:         d.IP,
			UA:         d.UserAgent,
			CreatedAt:  timestamp(d.CreatedAt),
			LastSeen:   timestamp(d.LastSeen),
			Current:    d.ID == caller.SessionID,
		}
	}
	return httpapi.WriteSuccess(w, r, http.StatusOK, CodeSessionsRetrieved, msgSessionsRetrieved, out)
}

func (s *Service) handleLogoutSession(w http.ResponseWriter, r *http.Request) error {
	var in logoutSessionRequest
	if err := s.opts.Decoder.Decode(r, &in); err != nil {
		return err
	}
	ctx := r.Context()
	caller, _ := Caller(ctx)
	ok, err := s.Revoke(ctx, tenancy.FromContext(ctx), caller.UserID, in.SessionID, ReasonLogout)
	if err != nil {
		return err
	}
	if !ok {
		return errLogoutSessionNotFound(in.SessionID)
	}
	s.record(ctx, tenancy.FromContext(ctx), audit.Event{Type: audit.TypeLogout, ActorID: caller.UserID, SubjectID: caller.UserID, SessionID: in.SessionID})
	return httpapi.WriteSuccess(w, r, http.StatusOK, CodeSessionRevoked, msgSessionRevoked, map[string]string{"sessionId": in.SessionID})
}

func (s *Service) handleLogoutAll(w http.ResponseWriter, r *http.Request) error {
	ctx := r.Context()
	caller, _ := Caller(ctx)
	n, err := s.RevokeAllOfUser(ctx, tenancy.FromContext(ctx), caller.UserID, ReasonLogoutAll, "")
	if err != nil {
		return err
	}
	s.record(ctx, tenancy.FromContext(ctx), audit.Event{Type: audit.TypeLogoutAll, ActorID: caller.UserID, SubjectID: caller.UserID,
		SessionID: caller.SessionID, Details: map[string]string{"revokedCount": strconv.Itoa(n)}})
	return httpapi.WriteSuccess(w, r, http.StatusOK, CodeAllSessionsRevoked, msgAllSessionsRevoked, map[string]int{"revokedCount": n})
}

func (s *Service) handleRefresh(w http.ResponseWriter, r *http.Request) error {
	var in refreshRequest
	if err := s.opts.Decoder.Decode(r, &in); err != nil {
		return err
	}
	ctx := r.Context()
	t := tenancy.FromContext(ctx)
	// A session's bucket is checked first but charged only for a rotation that happened: a
	// forged token naming someone's session can never use up that session's refreshes.
	var sessionKey string
	if rt, err := parseRefreshToken(in.RefreshToken); err == nil {
		sessionKey = t.ID + "|" + rt.SessionID
		if err := s.refreshSession.Check(sessionKey); err != nil {
			return err
		}
	}
	pair, err := s.Refresh(ctx, t, in.RefreshToken)
	if err != nil {
		return err
	}
	s.refreshSession.Allow(sessionKey)
	return httpapi.WriteSuccess(w, r, http.StatusOK, CodeTokensRefreshed, msgTokensRefreshed, pair)
}

// timestamp formats a time as the API does everywhere (UTC, milliseconds).
func timestamp(t time.Time) string { return httpapi.Timestamp(t) }
