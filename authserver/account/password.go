package account

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/authmesh/authmesh/authserver/audit"
	"github.com/authmesh/authmesh/authserver/httpapi"
	"github.com/authmesh/authmesh/authserver/identity"
	"github.com/authmesh/authmesh/authserver/sessions"
	"github.com/authmesh/authmesh/authserver/tenancy"
	"github.com/authmesh/authmesh/internal/tenantdb"
)

// changeRequest is the body of POST /auth/password/change. The new password follows
// signup's rule.
type changeRequest struct {
	CurrentPassword string `json:"currentPassword" validate:"required,max=1024"`
	NewPassword     string `json:"newPassword" validate:"required,min=8,max=128"`
}

// change sets a new password for the caller, who proves the current one, and revokes every
// other session of theirs.
func (s *Service) change(w http.ResponseWriter, r *http.Request) error {
	var in changeRequest
	if err := s.decoder.Decode(r, &in); err != nil {
		return err
	}
	ctx := r.Context()
	t := tenancy.FromContext(ctx)
	caller, _ := sessions.Caller(ctx)
	if _, err := s.identity.CheckPassword(ctx, t, caller.UserID, in.CurrentPassword); err != nil {
		var he *httpapi.Error
		if errors.As(err, &he) {
			s.record(ctx, t, audit.Event{Type: audit.TypePasswordChange, Outcome: audit.OutcomeFailure, Reason: reasonOf(he.Code),
				ActorID: caller.UserID, SubjectID: caller.UserID, SessionID: caller.SessionID})
		}
		return err
	}
	hash, err := s.hasher.Hash(ctx, in.NewPassword)
	if err != nil {
		return err
	}
	now := s.now().UTC()
	res, err := t.DB.Collection(tenantdb.Users).UpdateOne(ctx, bson.D{{Key: "_id", Value: caller.UserID}},
		bson.D{{Key: "$set", Value: bson.D{{Key: "passwordHash", Value: hash}, {Key: "updatedAt", Value: now}}}})
	if err != nil {
		return fmt.Errorf("account: storing the new password: %w", err)
	}
	if res.MatchedCount == 0 {
		return httpapi.NewError(http.StatusUnauthorized, identity.CodeInvalidCredentials, "Invalid credentials.")
	}
	n, err := s.sessions.RevokeAllOfUser(ctx, t, caller.UserID, sessions.ReasonPasswordChange, caller.SessionID)
	if err != nil {
		return err
	}
	s.dropTokens(ctx, t, caller.UserID)
	s.record(ctx, t, audit.Event{Type: audit.TypePasswordChange, ActorID: caller.UserID, SubjectID: caller.UserID,
		SessionID: caller.SessionID, Details: map[string]string{"revokedCount": strconv.Itoa(n)}})
	return httpapi.WriteSuccess(w, r, http.StatusOK, CodePasswordChanged,
		"Password changed. Your other sessions have been signed out.", map[string]int{"revokedCount": n})
}

// reasonOf turns an answer's code into an audit reason: INVALID_CREDENTIALS -> invalid_credentials.
func reasonOf(code string) string {
	switch code {
	case identity.CodeInvalidCredentials:
		return "invalid_credentials"
	case identity.CodeAccountLocked:
		return "locked"
	case identity.CodeAccountDisabled:
		return "disabled"
	}
	return "error"
}
