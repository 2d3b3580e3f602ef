package identity

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"net/http"
	"strings"
	"time"

	"github.com/google/uuid"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/authmesh/authmesh/authserver/audit"
	"github.com/authmesh/authmesh/authserver/httpapi"
	"github.com/authmesh/authmesh/authserver/sessions"
	"github.com/authmesh/authmesh/authserver/tenancy"
	"github.com/authmesh/authmesh/internal/tenantdb"
)

// signup creates a user with the tenant's default role.
func (s *Service) signup(w http.ResponseWriter, r *http.Request) error {
	var in signupRequest
	if err := s.decoder.Decode(r, &in); err != nil {
		return err
	}
	ctx := r.Context()
	t := tenancy.FromContext(ctx)
	if err := s.limits.signupAccount.Take(t.ID + "|" + NormalizeEmail(in.Email)); err != nil {
		return err
	}
	hash, err := s.hasher.Hash(ctx, in.Password)
	if err != nil {
		return err
	}
	u, err := createUser(ctx, t.DB, t.Spec, NewUser{
		Username: in.Username, Email: in.Email, Mobile: in.Mobile, PasswordHash: hash, Role: t.Spec.DefaultRole,
	}, s.now().UTC())
	var exists *ExistsError
	if errors.As(err, &exists) {
		s.record(ctx, t, audit.Event{Type: audit.TypeSignup, Outcome: audit.OutcomeFailure, Reason: "user_exists",
			Details: map[string]string{"field": exists.Field}})
		return httpapi.NewError(http.StatusConflict, CodeUserExists, "A user with this "+exists.Field+" already exists.").
			WithDetails(map[string]string{"field": exists.Field})
	}
	if errors.Is(err, ErrInvalidUser) { // the request's rules are meant to catch this first
		return httpapi.NewError(http.StatusBadRequest, httpapi.CodeValidationFailed, "Validation failed: "+strings.TrimPrefix(err.Error(), ErrInvalidUser.Error()+": "))
	}
	if err != nil {
		return err
	}
	httpapi.LogAttrs(ctx, slog.String("userId", u.ID))
	s.record(ctx, t, audit.Event{Type: audit.TypeSignup, ActorID: u.ID, SubjectID: u.ID})
	return httpapi.WriteSuccess(w, r, http.StatusCreated, CodeSignupSuccess, "User registered successfully.", u.View())
}

// login checks a password and either mails a one-time code or, when the tenant has no OTP
// step, starts the session.
func (s *Service) login(w http.ResponseWriter, r *http.Request) error {
	var in loginRequest
	if err := s.decoder.Decode(r, &in); err != nil {
		return err
	}
	ctx := r.Context()
	t := tenancy.FromContext(ctx)
	key := lookupKey(in.Identifier)
	if err := s.limits.loginAccount.Take(t.ID + "|" + key); err != nil {
		return err
	}
	u, err := findByIdentifier(ctx, t.DB, key)
	if errors.Is(err, errNoUser) {
		// Spend the work a known account's wrong password costs (the user read, the failure
		// reservation's write, then a hash), so the answer's timing does not tell the two apart.
		nobody := uuid.NewString()
		_, _ = findUser(ctx, t.DB, nobody)
		_, _, _ = reserveFailure(ctx, t.DB, nobody, t.Spec.Login.Lockout.MaxFailedAttempts, s.now().UTC())
		if err := s.hasher.VerifyDummy(ctx, in.Password); err != nil {
			return err
		}
		// Not what was typed: people type passwords into the identifier field.
		s.record(ctx, t, failure(audit.TypeLoginPassword, "unknown_account", ""))
		return errInvalidCredentials()
	}
	if err != nil {
		return err
	}
	httpapi.LogAttrs(ctx, slog.String("userId", u.ID))
	now := s.now().UTC()
	if u.lockedAt(now) {
		s.record(ctx, t, failure(audit.TypeLoginPassword, "locked", u.ID))
		return errAccountLocked(*u.LockedUntil, now)
	}
	// Count the attempt as a failure before checking it, so parallel guesses cannot pass
	// the threshold; a right password gives the reservation back.
	reserved, ok, err := reserveFailure(ctx, t.DB, u.ID, t.Spec.Login.Lockout.MaxFailedAttempts, now)
	if err != nil {
		return err
	}
	if !ok {
		s.record(ctx, t, failure(audit.TypeLoginPassword, "locked", u.ID))
		return s.lockedAnswer(ctx, t, u.ID, now)
	}
	right, rehash, err := s.hasher.Verify(ctx, in.Password, u.PasswordHash)
	if err != nil {
		_ = releaseFailure(ctx, t.DB, u.ID, now)
		return err
	}
	if !right {
		s.record(ctx, t, failure(audit.TypeLoginPassword, "invalid_credentials", u.ID))
		if err := s.failed(ctx, t, reserved, now); err != nil {
			return err
		}
		return errInvalidCredentials()
	}
	if u.Disabled {
		_ = releaseFailure(ctx, t.DB, u.ID, now)
		s.record(ctx, t, failure(audit.TypeLoginPassword, "disabled", u.ID))
		return errAccountDisabled()
	}
	if rehash {
		s.rehash(ctx, t, u, in.Password)
	}
	if !*t.Spec.Login.OTP.Enabled {
		if err := resetFailures(ctx, t.DB, u.ID, now); err != nil {
			return err
		}
		return s.startSession(w, r, t, u)
	}
	if err := releaseFailure(ctx, t.DB, u.ID, now); err != nil {
		return err
	}
	s.record(ctx, t, audit.Event{Type: audit.TypeLoginPassword, ActorID: u.ID, SubjectID: u.ID, Details: map[string]string{"next": "otp"}})
	return s.sendCode(w, r, t, u, now)
}

// lockedAnswer answers an attempt refused because the account is locked or at its threshold.
func (s *Service) lockedAnswer(ctx context.Context, t *tenancy.Tenant, userID string, now time.Time) error {
	u, _ := findUser(ctx, t.DB, userID)
	return lockedAnswerFor(t, u, now)
}

// lockedAnswerFor is lockedAnswer for a user already read (nil when it could not be): until
// the user's lock ends, or a lock's duration from now when none is in force yet.
func lockedAnswerFor(t *tenancy.Tenant, u *User, now time.Time) error {
	if u != nil && u.lockedAt(now) {
		return errAccountLocked(*u.LockedUntil, now)
	}
	return errAccountLocked(now.Add(t.Spec.Login.Lockout.Duration.Duration), now)
}

// rehash stores a hash of pw with the current parameters, unless the hash changed meanwhile.
func (s *Service) rehash(ctx context.Context, t *tenancy.Tenant, u *User, pw string) {
	hash, err := s.hasher.Hash(ctx, pw)
	if err == nil {
		_, err = t.DB.Collection(tenantdb.Users).UpdateOne(ctx,
			bson.D{{Key: "_id", Value: u.ID}, {Key: "passwordHash", Value: u.PasswordHash}},
			bson.D{{Key: "$set", Value: bson.D{{Key: "passwordHash", Value: hash}}}})
	}
	if err != nil {
		s.logger.Warn("rehashing a password with the current parameters failed", "tenant", t.ID, "userId", u.ID, "error", err.Error())
	}
}

// startSession answers LOGIN_SUCCESS with a new session's tokens.
func (s *Service) startSession(w http.ResponseWriter, r *http.Request, t *tenancy.Tenant, u *User) error {
	pair, err := s.sessions.Start(r.Context(), t, u.ID, u.Role, sessions.DeviceFromRequest(r))
	if err != nil {
		return err
	}
	// Disabling a user sets the flag and then revokes the user's sessions. A disable that
	// came after this login read the user, but revoked before the insert above, missed this
	// session; reading the flag again after the insert closes that gap.
	if again, err := findUser(r.Context(), t.DB, u.ID); err != nil || again.Disabled {
		if _, rerr := s.sessions.Revoke(context.WithoutCancel(r.Context()), t, u.ID, pair.SessionID, sessions.ReasonUserDisabled); rerr != nil {
			return errors.Join(err, rerr)
		}
		if err != nil && !errors.Is(err, errNoUser) {
			return err
		}
		step := audit.TypeLoginPassword
		if *t.Spec.Login.OTP.Enabled {
			step = audit.TypeLoginOTP
		}
		s.record(r.Context(), t, failure(step, "disabled", u.ID))
		return errAccountDisabled()
	}
	httpapi.LogAttrs(r.Context(), slog.String("sessionId", pair.SessionID))
	s.record(r.Context(), t, audit.Event{Type: audit.TypeLoginSuccess, ActorID: u.ID, SubjectID: u.ID, SessionID: pair.SessionID})
	return httpapi.WriteSuccess(w, r, http.StatusOK, CodeLoginSuccess, "Login successful.", pair)
}

// challenge is one login waiting for its emailed code (collection login_challenges).
type challenge struct {
	ID          string    `bson:"_id"` // the loginId
	UserID      string    `bson:"userId"`
	CodeHash    string    `bson:"codeHash"`
	Attempts    int32     `bson:"attempts"`
	MaxAttempts int32     `bson:"maxAttempts"`
	CreatedAt   time.Time `bson:"createdAt"`
	ExpiresAt   time.Time `bson:"expiresAt"`
}

// Bounds on the code's lifetime: the tenant's ttl, never above 10 minutes.
const (
	defaultOTPTTL = 5 * time.Minute
	maxOTPTTL     = 10 * time.Minute
)

func otpTTL(t *tenancy.Tenant) time.Duration {
	ttl := defaultOTPTTL
	if d := t.Spec.Login.OTP.TTL; d != nil && d.Duration > 0 {
		ttl = d.Duration
	}
	return min(ttl, maxOTPTTL)
}

// sendCode creates a login challenge and mails its code; when the mail cannot be sent the
// challenge is removed and the answer is EMAIL_UNAVAILABLE.
func (s *Service) sendCode(w http.ResponseWriter, r *http.Request, t *tenancy.Tenant, u *User, now time.Time) error {
	ctx := r.Context()
	otp := t.Spec.Login.OTP
	code, err := newCode(int(otp.Length))
	if err != nil {
		return err
	}
	loginID, err := newLoginID()
	if err != nil {
		return err
	}
	ttl := otpTTL(t)
	ch := challenge{
		ID: loginID, UserID: u.ID, CodeHash: codeHash(loginID, code), MaxAttempts: otp.MaxAttempts,
		CreatedAt: now, ExpiresAt: now.Add(ttl),
	}
	coll := t.DB.Collection(tenantdb.LoginChallenges)
	if _, err := coll.InsertOne(ctx, ch); err != nil {
		return fmt.Errorf("identity: storing a login challenge: %w", err)
	}
	mailCtx, cancel := context.WithTimeout(ctx, mailTimeout)
	defer cancel()
	if err := s.send(mailCtx, t, u, codeMessage(t, u, code, ttl, ch.ExpiresAt)); err != nil {
		cleanup, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		if _, derr := coll.DeleteOne(cleanup, bson.D{{Key: "_id", Value: loginID}}); derr != nil {
			err = errors.Join(err, fmt.Errorf("removing the challenge: %w", derr))
		}
		s.logger.Error("mailing a login code failed", "tenant", t.ID, "userId", u.ID, "error", err.Error())
		return errEmailUnavailable(err)
	}
	return httpapi.WriteSuccess(w, r, http.StatusOK, CodeOTPSent, "A login code was sent to your email.", map[string]string{
		"loginId": loginID, "expiresAt": httpapi.Timestamp(ch.ExpiresAt),
	})
}

// verify checks a login's code and starts the session.
func (s *Service) verify(w http.ResponseWriter, r *http.Request) error {
	var in verifyRequest
	if err := s.decoder.Decode(r, &in); err != nil {
		return err
	}
	ctx := r.Context()
	t := tenancy.FromContext(ctx)
	coll := t.DB.Collection(tenantdb.LoginChallenges)
	now := s.now().UTC()

	var ch challenge
	err := coll.FindOne(ctx, bson.D{{Key: "_id", Value: in.LoginID}}).Decode(&ch)
	if errors.Is(err, mongo.ErrNoDocuments) {
		return errOTPExpired()
	}
	if err != nil {
		return err
	}
	httpapi.LogAttrs(ctx, slog.String("userId", ch.UserID))
	if err := s.limits.verifyAccount.Take(t.ID + "|" + ch.UserID); err != nil {
		return err
	}
	if !ch.ExpiresAt.After(now) {
		_, _ = coll.DeleteOne(ctx, bson.D{{Key: "_id", Value: ch.ID}})
		s.record(ctx, t, failure(audit.TypeLoginOTP, "expired", ch.UserID))
		return errOTPExpired()
	}
	// Take one attempt before comparing, so parallel guesses cannot exceed maxAttempts.
	err = coll.FindOneAndUpdate(ctx,
		bson.D{
			{Key: "_id", Value: ch.ID},
			{Key: "attempts", Value: bson.D{{Key: "$lt", Value: ch.MaxAttempts}}},
			{Key: tenantdb.ExpiresAtField, Value: bson.D{{Key: "$gt", Value: now}}},
		},
		bson.D{{Key: "$inc", Value: bson.D{{Key: "attempts", Value: int32(1)}}}},
		options.FindOneAndUpdate().SetReturnDocument(options.After),
	).Decode(&ch)
	if errors.Is(err, mongo.ErrNoDocuments) {
		// Used up, consumed or expired in the meantime.
		var again challenge
		if err := coll.FindOne(ctx, bson.D{{Key: "_id", Value: ch.ID}}).Decode(&again); err == nil && again.ExpiresAt.After(now) {
			s.record(ctx, t, failure(audit.TypeLoginOTP, "attempts_exceeded", ch.UserID))
			return errOTPAttemptsExceeded()
		}
		s.record(ctx, t, failure(audit.TypeLoginOTP, "expired", ch.UserID))
		return errOTPExpired()
	}
	if err != nil {
		return err
	}

	// Count the attempt as a failure of the account before comparing, as the password step
	// does: a code is never compared, nor let through, while the account is locked or its
	// counter is full, which parallel logins holding reservations can make it for a moment.
	// A right code gives the reservation back.
	reserved, ok, err := reserveFailure(ctx, t.DB, ch.UserID, t.Spec.Login.Lockout.MaxFailedAttempts, now)
	if err != nil {
		return err
	}
	if !ok {
		_, _ = coll.DeleteOne(ctx, bson.D{{Key: "_id", Value: ch.ID}})
		u, err := findUser(ctx, t.DB, ch.UserID)
		if errors.Is(err, errNoUser) {
			return errInvalidCredentials() // deleted since the code was sent
		}
		s.record(ctx, t, failure(audit.TypeLoginOTP, "locked", ch.UserID))
		return lockedAnswerFor(t, u, now)
	}

	if subtle.ConstantTimeCompare([]byte(codeHash(ch.ID, in.OTP)), []byte(ch.CodeHash)) != 1 {
		// A wrong code is a failed login of the account too.
		s.record(ctx, t, failure(audit.TypeLoginOTP, "invalid_otp", ch.UserID))
		if lockErr := s.failed(ctx, t, reserved, now); lockErr != nil {
			_, _ = coll.DeleteOne(ctx, bson.D{{Key: "_id", Value: ch.ID}})
			return lockErr
		}
		return errInvalidOTP(ch.MaxAttempts - ch.Attempts)
	}

	// Right code: consume it; only the request whose delete removed it goes on.
	res, err := coll.DeleteOne(ctx, bson.D{{Key: "_id", Value: ch.ID}})
	if err != nil || res.DeletedCount != 1 {
		_ = releaseFailure(ctx, t.DB, ch.UserID, now)
		if err != nil {
			return err
		}
		return errOTPExpired()
	}
	u, err := findUser(ctx, t.DB, ch.UserID)
	if errors.Is(err, errNoUser) {
		return errInvalidCredentials()
	}
	if err != nil {
		_ = releaseFailure(ctx, t.DB, ch.UserID, now)
		return err
	}
	switch {
	case u.Disabled:
		_ = releaseFailure(ctx, t.DB, u.ID, now)
		s.record(ctx, t, failure(audit.TypeLoginOTP, "disabled", u.ID))
		return errAccountDisabled()
	case u.lockedAt(now):
		s.record(ctx, t, failure(audit.TypeLoginOTP, "locked", u.ID))
		return errAccountLocked(*u.LockedUntil, now)
	}
	if err := resetFailures(ctx, t.DB, u.ID, now); err != nil {
		return err
	}
	return s.startSession(w, r, t, u)
}

// newCode returns n random decimal digits.
func newCode(n int) (string, error) {
	if n < 6 || n > 10 {
		n = 6
	}
	limit := new(big.Int).Exp(big.NewInt(10), big.NewInt(int64(n)), nil)
	v, err := rand.Int(rand.Reader, limit)
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("%0*s", n, v.String()), nil
}

// newLoginID returns 128 random bits, base64url.
func newLoginID() (string, error) {
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}

// codeHash is the stored form of a code, bound to its login.
func codeHash(loginID, code string) string {
	sum := sha256.Sum256([]byte("authmesh-otp\x00" + loginID + "\x00" + code))
	return hex.EncodeToString(sum[:])
}
