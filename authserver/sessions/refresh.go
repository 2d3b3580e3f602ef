package sessions

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/authmesh/authmesh/authserver/audit"
	"github.com/authmesh/authmesh/authserver/tenancy"
	"github.com/authmesh/authmesh/authserver/tokens"
	"github.com/authmesh/authmesh/internal/tenantdb"
)

// maxRefreshAttempts bounds how often a refresh re-reads a session that changed under it.
// Each retry follows a committed change of the session, so more than two are not expected.
const maxRefreshAttempts = 4

// Refresh rotates a refresh token: it answers a new token pair, or an *httpapi.Error with one
// of the codes DESIGN.md pins (INVALID_REFRESH_TOKEN, SESSION_NOT_FOUND, INVALID_REFRESH_HASH,
// REFRESH_TOKEN_REUSED). See the package doc for the rules.
func (s *Service) Refresh(ctx context.Context, t *tenancy.Tenant, token string) (TokenPair, error) {
	pair, outcome, err := s.refresh(ctx, t, token)
	s.metrics.refreshed(outcome)
	return pair, err
}

func (s *Service) refresh(ctx context.Context, t *tenancy.Tenant, raw string) (TokenPair, string, error) {
	tok, err := parseRefreshToken(raw)
	if err != nil {
		return TokenPair{}, OutcomeInvalidToken, errInvalidRefreshToken()
	}
	s.noteTenant(t.ID)
	presented := tok.hash()
	// The session's user is read before the rotation, so the swap is the last database
	// operation of a refresh: a refresh that fails (the database going away, say) has not
	// spent the presented token behind its error, and the client's retry is no reuse.
	u, found, err := s.readOwner(ctx, t, tok.SessionID)
	if errors.Is(err, mongo.ErrNoDocuments) {
		return TokenPair{}, OutcomeInvalidToken, errInvalidRefreshToken()
	}
	if err != nil {
		return TokenPair{}, OutcomeError, err
	}
	for range maxRefreshAttempts {
		now := s.now()
		// The common case first: the presented token is the current one.
		d, random, err := s.swap(ctx, t, tok.SessionID, bson.D{
			{Key: "generation", Value: tok.Generation},
			{Key: "refreshHash", Value: presented},
		}, presented, now)
		if err == nil {
			return s.issue(ctx, t, d, u, found, random, now, OutcomeRefreshed)
		}
		if !errors.Is(err, mongo.ErrNoDocuments) {
			return TokenPair{}, OutcomeError, err
		}

		// It did not match: find out why.
		var cur Session
		err = t.DB.Collection(tenantdb.Sessions).FindOne(ctx, bson.D{{Key: "_id", Value: tok.SessionID}}).Decode(&cur)
		switch {
		case errors.Is(err, mongo.ErrNoDocuments):
			return TokenPair{}, OutcomeInvalidToken, errInvalidRefreshToken()
		case err != nil:
			return TokenPair{}, OutcomeError, fmt.Errorf("sessions: reading a session: %w", err)
		}
		switch {
		case !cur.active(now):
			return TokenPair{}, OutcomeSessionNotFound, errRefreshSessionNotFound()
		case tok.Generation > cur.Generation:
			// A generation never handed out.
			return TokenPair{}, OutcomeInvalidToken, errInvalidRefreshToken()
		case !tok.issuedBy(cur.TagKey):
			// Not a token of this session: a forgery, whatever generation it names.
			return TokenPair{}, OutcomeInvalidHash, errInvalidRefreshHash()
		case tok.Generation == cur.Generation:
			if !hashEqual(presented, cur.RefreshHash) {
				return TokenPair{}, OutcomeInvalidHash, errInvalidRefreshHash()
			}
			continue // the session changed between the two reads (say, its idle expiry moved): try again
		}

		// An earlier generation, genuinely issued. Within the grace, the immediate predecessor
		// is rotated again.
		grace := t.Spec.Tokens.RefreshReuseGrace.Duration
		if grace > 0 && tok.Generation == cur.Generation-1 && cur.RotatedAt != nil &&
			hashEqual(presented, cur.PrevHash) && !now.After(cur.RotatedAt.Add(grace)) {
			d, random, err := s.swap(ctx, t, tok.SessionID, bson.D{
				{Key: "generation", Value: cur.Generation},
				{Key: "refreshHash", Value: cur.RefreshHash},
				{Key: "prevHash", Value: presented},
				{Key: "rotatedAt", Value: *cur.RotatedAt},
			}, cur.RefreshHash, now)
			if err == nil {
				return s.issue(ctx, t, d, u, found, random, now, OutcomeGrace)
			}
			if !errors.Is(err, mongo.ErrNoDocuments) {
				return TokenPair{}, OutcomeError, err
			}
			continue // another refresh won; look again
		}

		// Reuse (RFC 9700): whoever holds the newer token, the session is compromised.
		if _, err := s.revokeOne(ctx, t, bson.D{{Key: "_id", Value: tok.SessionID}}, ReasonReuse); err != nil {
			return TokenPair{}, OutcomeError, err
		}
		s.metrics.reused(t.ID)
		s.record(ctx, t, audit.Event{Type: audit.TypeRefreshReused, Outcome: audit.OutcomeFailure, Reason: "refresh_token_reused",
			SubjectID: cur.UserID, SessionID: cur.ID, Details: map[string]string{"generation": strconv.FormatInt(tok.Generation, 10)}})
		return TokenPair{}, OutcomeReused, errRefreshTokenReused()
	}
	return TokenPair{}, OutcomeError, errors.New("sessions: a refresh kept losing races; giving up")
}

// swap is the rotation's compare-and-swap: if session sid is active and matches match, it
// gets a new secret (generation + 1), with prev as the hash of its predecessor, in one
// findOneAndUpdate. It returns the updated session and the new secret's random part, or
// mongo.ErrNoDocuments when nothing matched.
func (s *Service) swap(ctx context.Context, t *tenancy.Tenant, sid string, match bson.D, prev string, now time.Time) (Session, []byte, error) {
	random, hash, err := newRandom()
	if err != nil {
		return Session{}, nil, err
	}
	set := bson.D{
		{Key: "refreshHash", Value: hash},
		{Key: "prevHash", Value: prev},
		{Key: "lastSeen", Value: now},
		{Key: "rotatedAt", Value: now},
		{Key: "accessExpiresAt", Value: accessExpiry(t, now)},
	}
	update := bson.D{{Key: "$inc", Value: bson.D{{Key: "generation", Value: int64(1)}}}}
	if idle := t.Spec.Tokens.IdleTimeout.Duration; idle > 0 {
		set = append(set, bson.E{Key: "idleExpiresAt", Value: now.Add(idle)})
	} else {
		update = append(update, bson.E{Key: "$unset", Value: bson.D{{Key: "idleExpiresAt", Value: ""}}})
	}
	update = append(update, bson.E{Key: "$set", Value: set})
	filter := with(with(bson.D{{Key: "_id", Value: sid}}, match...), ActiveFilter(now)...)
	var d Session
	err = t.DB.Collection(tenantdb.Sessions).FindOneAndUpdate(ctx, filter, update,
		options.FindOneAndUpdate().SetReturnDocument(options.After)).Decode(&d)
	if err != nil && !errors.Is(err, mongo.ErrNoDocuments) {
		return Session{}, nil, fmt.Errorf("sessions: rotating: %w", err)
	}
	return d, random, err
}

// accessExpiry is the exp of an access token issued at now (tokens.Signer.IssueAt's rule),
// before the cap at the session's end: the stored value may be later than the token's exp,
// which only keeps a revocation entry a little longer than needed.
func accessExpiry(t *tenancy.Tenant, now time.Time) time.Time {
	return now.Truncate(time.Second).Add(t.Spec.Tokens.AccessTokenTTL.Duration)
}

// readOwner reads the user of session sid (mongo.ErrNoDocuments when there is no such
// session; found is false when its user is gone).
func (s *Service) readOwner(ctx context.Context, t *tenancy.Tenant, sid string) (u userDoc, found bool, err error) {
	var owner struct {
		UserID string `bson:"userId"`
	}
	err = t.DB.Collection(tenantdb.Sessions).FindOne(ctx, bson.D{{Key: "_id", Value: sid}},
		options.FindOne().SetProjection(bson.D{{Key: "userId", Value: 1}})).Decode(&owner)
	switch {
	case errors.Is(err, mongo.ErrNoDocuments):
		return u, false, err
	case err != nil:
		return u, false, fmt.Errorf("sessions: reading a session: %w", err)
	}
	return readUser(ctx, t, owner.UserID)
}

// issue answers a successful rotation of d, whose user u (found: it exists) was read just
// before it: the role is the user's current one, so a role change takes effect at the next
// refresh, and a user who is gone or disabled loses the session instead.
func (s *Service) issue(ctx context.Context, t *tenancy.Tenant, d Session, u userDoc, found bool, random []byte, now time.Time, outcome string) (TokenPair, string, error) {
	if !found || u.Disabled {
		if _, err := s.revokeOne(ctx, t, bson.D{{Key: "_id", Value: d.ID}}, ReasonUserDisabled); err != nil {
			return TokenPair{}, OutcomeError, err
		}
		return TokenPair{}, OutcomeUserDisabled, errRefreshSessionNotFound()
	}
	role := u.Role
	if role == "" {
		role = t.Spec.DefaultRole
	}
	secret, err := sealSecret(d.TagKey, d.ID, d.Generation, random)
	if err != nil {
		return TokenPair{}, OutcomeError, err
	}
	access, err := t.Tokens.IssueAt(now, tokens.Subject{UserID: d.UserID, Role: role, SessionID: d.ID, SessionEnd: d.end()})
	switch {
	case errors.Is(err, tokens.ErrSessionEnded): // rotated in the session's last second
		return TokenPair{}, OutcomeSessionNotFound, errRefreshSessionNotFound()
	case err != nil:
		return TokenPair{}, OutcomeError, err
	}
	return TokenPair{
		AccessToken:  access.Token,
		RefreshToken: RefreshToken(d.ID, d.Generation, secret),
		TokenType:    TokenType,
		ExpiresIn:    int64(access.ExpiresIn / time.Second),
		SessionID:    d.ID,
	}, outcome, nil
}
