package account

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"

	"github.com/authmesh/authmesh/authserver/audit"
	"github.com/authmesh/authmesh/authserver/httpapi"
	"github.com/authmesh/authmesh/authserver/identity"
	"github.com/authmesh/authmesh/authserver/sessions"
	"github.com/authmesh/authmesh/authserver/tenancy"
	"github.com/authmesh/authmesh/internal/tenantdb"
)

// resetToken is a password reset (or bootstrap set-password) token, stored by its hash in
// account_tokens, next to identity's unlock tokens.
type resetToken struct {
	ID        string    `bson:"_id"` // hex SHA-256 of the whole token
	Kind      string    `bson:"kind"`
	UserID    string    `bson:"userId"`
	CreatedAt time.Time `bson:"createdAt"`
	ExpiresAt time.Time `bson:"expiresAt"`
}

// Token kinds of account_tokens: this package's, and identity's unlock tokens, which a reset
// makes pointless.
const (
	kindReset  = "password_reset"
	kindUnlock = "unlock"
)

// issueLink stores a reset token for u valid for ttl and mails its link with the message
// compose makes; when the mail fails the token is removed.
func (s *Service) issueLink(ctx context.Context, t *tenancy.Tenant, u *identity.User, ttl time.Duration,
	compose func(link string, expires time.Time) message) error {
	token, hash, err := identity.NewAccountToken(t.ID)
	if err != nil {
		return err
	}
	now := s.now().UTC()
	doc := resetToken{ID: hash, Kind: kindReset, UserID: u.ID, CreatedAt: now, ExpiresAt: now.Add(ttl)}
	coll := t.DB.Collection(tenantdb.AccountTokens)
	if _, err := coll.InsertOne(ctx, doc); err != nil {
		return fmt.Errorf("account: storing a reset token: %w", err)
	}
	link := s.publicURL + "/auth/password/reset?token=" + token
	mctx, cancel := context.WithTimeout(ctx, mailTimeout)
	defer cancel()
	if err := s.send(mctx, t, u.Email, compose(link, doc.ExpiresAt)); err != nil {
		cleanup, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		_, _ = coll.DeleteOne(cleanup, bson.D{{Key: "_id", Value: hash}})
		return fmt.Errorf("account: mailing a password link: %w", err)
	}
	return nil
}

// dropTokens removes the user's outstanding reset and unlock tokens: after a password change
// or reset they are pointless, and a reset link that survived a change would undo it.
func (s *Service) dropTokens(ctx context.Context, t *tenancy.Tenant, userID string) {
	_, err := t.DB.Collection(tenantdb.AccountTokens).DeleteMany(context.WithoutCancel(ctx), bson.D{
		{Key: "userId", Value: userID}, {Key: "kind", Value: bson.D{{Key: "$in", Value: bson.A{kindReset, kindUnlock}}}},
	})
	if err != nil {
		s.logger.Warn("removing a user's outstanding reset links failed", "tenant", t.ID, "userId", userID, "error", err.Error())
	}
}

// forgotRequest is the body of POST /auth/password/forgot.
type forgotRequest struct {
	Identifier string `json:"usernameOrEmailOrMobile" validate:"required,max=254"`
}

// forgot answers PASSWORD_RESET_SENT whether or not the account exists, after the same work
// (one lookup, one audit write): the link is issued and mailed in the background.
func (s *Service) forgot(w http.ResponseWriter, r *http.Request) error {
	var in forgotRequest
	if err := s.decoder.Decode(r, &in); err != nil {
		return err
	}
	ctx := r.Context()
	t := tenancy.FromContext(ctx)
	if err := s.limits.forgotAccount.Take(t.ID + "|" + strings.ToLower(strings.TrimSpace(in.Identifier))); err != nil {
		return err
	}
	u, err := identity.FindByIdentifier(ctx, t.DB, in.Identifier)
	switch {
	case errors.Is(err, identity.ErrUserNotFound):
		// Spend the user read a known account costs.
		_, _ = identity.FindUser(ctx, t.DB, uuid.NewString())
		// Not what was typed: people type passwords into the identifier field.
		s.record(ctx, t, audit.Event{Type: audit.TypePasswordForgot, Outcome: audit.OutcomeFailure, Reason: "unknown_account"})
	case err != nil:
		return err
	case u.Disabled:
		s.record(ctx, t, audit.Event{Type: audit.TypePasswordForgot, Outcome: audit.OutcomeFailure, Reason: "disabled", SubjectID: u.ID})
	default:
		httpapi.LogAttrs(ctx, slog.String("userId", u.ID))
		s.record(ctx, t, audit.Event{Type: audit.TypePasswordForgot, ActorID: u.ID, SubjectID: u.ID})
		select {
		case s.jobs <- mailJob{tenant: t.ID, userID: u.ID}:
		default:
			s.mails.WithLabelValues(kindResetMail, "dropped").Inc()
			s.logger.Error("too many reset links waiting to be mailed; dropping one", "tenant", t.ID, "userId", u.ID)
		}
	}
	return httpapi.WriteSuccess(w, r, http.StatusOK, CodePasswordResetSent,
		"If an account matches, a link to reset its password has been sent to its email address.", nil)
}

// mailReset issues a reset link for a forgot-password request and mails it.
func (s *Service) mailReset(ctx context.Context, j mailJob) {
	log := s.logger.With("tenant", j.tenant, "userId", j.userID)
	t, release, err := s.registry.Acquire(ctx, j.tenant, true)
	if err != nil {
		log.Error("cannot mail a reset link", "error", err.Error())
		return
	}
	defer release()
	u, err := identity.FindUser(ctx, t.DB, j.userID)
	if err != nil {
		log.Error("cannot mail a reset link", "error", err.Error())
		return
	}
	ttl := s.cfg.ResetTokenTTL
	err = s.issueLink(ctx, t, u, ttl, func(link string, expires time.Time) message {
		return resetMessage(t, u, link, ttl, expires)
	})
	if err != nil {
		log.Error("mailing a reset link failed", "error", err.Error())
	}
}

// resetRequest is the body of POST /auth/password/reset.
type resetRequest struct {
	Token       string `json:"token" validate:"required,max=512"`
	NewPassword string `json:"newPassword" validate:"required,min=8,max=128"`
}

// reset redeems a reset token: single use, unexpired. It sets the new password, clears a
// lockout, removes the user's other links and revokes all of their sessions.
func (s *Service) reset(ctx context.Context, token, newPassword string) error {
	token = strings.TrimSpace(token)
	tenantID, ok := identity.ParseAccountToken(token)
	if !ok {
		return errInvalidResetToken()
	}
	hash := identity.HashAccountToken(token)
	if err := s.limits.resetAccount.Take(hash); err != nil {
		return err
	}
	t, release, err := s.acquire(ctx, tenantID)
	if err != nil {
		return err
	}
	defer release()
	pwHash, err := s.hasher.Hash(ctx, newPassword)
	if err != nil {
		return err
	}
	now := s.now().UTC()
	var doc resetToken
	err = t.DB.Collection(tenantdb.AccountTokens).FindOneAndDelete(ctx, bson.D{
		{Key: "_id", Value: hash}, {Key: "kind", Value: kindReset}, {Key: tenantdb.ExpiresAtField, Value: bson.D{{Key: "$gt", Value: now}}},
	}).Decode(&doc)
	if errors.Is(err, mongo.ErrNoDocuments) {
		s.record(ctx, t, audit.Event{Type: audit.TypePasswordReset, Outcome: audit.OutcomeFailure, Reason: "invalid_token"})
		return errInvalidResetToken()
	}
	if err != nil {
		return fmt.Errorf("account: redeeming a reset token: %w", err)
	}
	res, err := t.DB.Collection(tenantdb.Users).UpdateOne(ctx, bson.D{{Key: "_id", Value: doc.UserID}}, bson.D{
		{Key: "$set", Value: bson.D{{Key: "passwordHash", Value: pwHash}, {Key: "failedLogins", Value: int32(0)}, {Key: "updatedAt", Value: now}}},
		{Key: "$unset", Value: bson.D{{Key: "lockedUntil", Value: ""}}},
	})
	if err != nil {
		return fmt.Errorf("account: storing the new password: %w", err)
	}
	if res.MatchedCount == 0 {
		return errInvalidResetToken() // the user is gone
	}
	httpapi.LogAttrs(ctx, slog.String("userId", doc.UserID))
	s.dropTokens(ctx, t, doc.UserID)
	n, err := s.sessions.RevokeAllOfUser(ctx, t, doc.UserID, sessions.ReasonPasswordReset, "")
	if err != nil {
		return err
	}
	s.record(ctx, t, audit.Event{Type: audit.TypePasswordReset, ActorID: doc.UserID, SubjectID: doc.UserID,
		Details: map[string]string{"revokedCount": strconv.Itoa(n)}})
	return nil
}

// peek reports when a reset token expires, without redeeming it.
func (s *Service) peek(ctx context.Context, token string) (time.Time, error) {
	token = strings.TrimSpace(token)
	tenantID, ok := identity.ParseAccountToken(token)
	if !ok {
		return time.Time{}, errInvalidResetToken()
	}
	hash := identity.HashAccountToken(token)
	if err := s.limits.resetAccount.Take(hash); err != nil {
		return time.Time{}, err
	}
	t, release, err := s.acquire(ctx, tenantID)
	if err != nil {
		return time.Time{}, err
	}
	defer release()
	var doc resetToken
	err = t.DB.Collection(tenantdb.AccountTokens).FindOne(ctx, bson.D{
		{Key: "_id", Value: hash}, {Key: "kind", Value: kindReset}, {Key: tenantdb.ExpiresAtField, Value: bson.D{{Key: "$gt", Value: s.now().UTC()}}},
	}).Decode(&doc)
	if errors.Is(err, mongo.ErrNoDocuments) {
		return time.Time{}, errInvalidResetToken()
	}
	if err != nil {
		return time.Time{}, fmt.Errorf("account: reading a reset token: %w", err)
	}
	return doc.ExpiresAt, nil
}

// acquire returns the tenant a token names; an unknown tenant is an invalid token.
func (s *Service) acquire(ctx context.Context, tenantID string) (*tenancy.Tenant, func(), error) {
	t, release, err := s.registry.Acquire(ctx, tenantID, true)
	if err != nil {
		var he *httpapi.Error
		if errors.As(err, &he) && he.Code == httpapi.CodeTenantNotFound {
			return nil, nil, errInvalidResetToken()
		}
		return nil, nil, err
	}
	httpapi.LogAttrs(ctx, slog.String("tenant", t.ID))
	return t, release, nil
}
