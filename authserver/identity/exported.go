package identity

import (
	"context"
	"errors"
	"net/http"

	"go.mongodb.org/mongo-driver/v2/mongo"

	"github.com/authmesh/authmesh/authserver/audit"
	"github.com/authmesh/authmesh/authserver/mail"
	"github.com/authmesh/authmesh/authserver/tenancy"
)

// What other packages of the auth server (account management, the admin API) use of identity.

// ErrUserNotFound says no user has the identifier or id looked up.
var ErrUserNotFound = errNoUser

// FindUser returns the user with the given id, or ErrUserNotFound.
func FindUser(ctx context.Context, db *mongo.Database, id string) (*User, error) {
	return findUser(ctx, db, id)
}

// FindByIdentifier returns the user a usernameOrEmailOrMobile input names, or
// ErrUserNotFound.
func FindByIdentifier(ctx context.Context, db *mongo.Database, input string) (*User, error) {
	return findByIdentifier(ctx, db, lookupKey(input))
}

// WantsHTML reports whether r's Accept header prefers HTML to JSON (browsers following a
// mailed link do; */* alone, as curl sends, means JSON).
func WantsHTML(r *http.Request) bool { return wantsHTML(r) }

// Mailer returns the mail sender of the identity flows.
func (s *Service) Mailer() mail.Sender { return s.mailer }

// CheckPassword checks pw as the password of user userID of t the way a login does, for
// routes that ask a signed-in user for their password again (password change): a wrong
// password counts toward the lockout (and may lock the account, mailing the unlock link), a
// locked account is refused even with the right password. It answers the user, or
// INVALID_CREDENTIALS (401, also for a user that does not exist), ACCOUNT_LOCKED (423) or
// ACCOUNT_DISABLED (403) as *httpapi.Error values. A right password clears the failure count.
func (s *Service) CheckPassword(ctx context.Context, t *tenancy.Tenant, userID, pw string) (*User, error) {
	u, err := findUser(ctx, t.DB, userID)
	if errors.Is(err, errNoUser) {
		if err := s.hasher.VerifyDummy(ctx, pw); err != nil {
			return nil, err
		}
		return nil, errInvalidCredentials()
	}
	if err != nil {
		return nil, err
	}
	now := s.now().UTC()
	if u.lockedAt(now) {
		return nil, errAccountLocked(*u.LockedUntil, now)
	}
	reserved, ok, err := reserveFailure(ctx, t.DB, u.ID, t.Spec.Login.Lockout.MaxFailedAttempts, now)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, s.lockedAnswer(ctx, t, u.ID, now)
	}
	right, _, err := s.hasher.Verify(ctx, pw, u.PasswordHash)
	if err != nil {
		_ = releaseFailure(ctx, t.DB, u.ID, now)
		return nil, err
	}
	if !right {
		if err := s.failed(ctx, t, reserved, now); err != nil {
			return nil, err
		}
		return nil, errInvalidCredentials()
	}
	if u.Disabled {
		_ = releaseFailure(ctx, t.DB, u.ID, now)
		return nil, errAccountDisabled()
	}
	if err := resetFailures(ctx, t.DB, u.ID, now); err != nil {
		return nil, err
	}
	return u, nil
}

// record writes an audit event when the Service has a Recorder.
func (s *Service) record(ctx context.Context, t *tenancy.Tenant, e audit.Event) {
	if s.audit != nil {
		s.audit.Record(ctx, t, e)
	}
}

// failure is an audit event of a failed step.
func failure(typ, reason, userID string) audit.Event {
	return audit.Event{Type: typ, Outcome: audit.OutcomeFailure, Reason: reason, ActorID: userID, SubjectID: userID}
}
