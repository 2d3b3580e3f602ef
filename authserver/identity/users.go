package identity

import (
	"context"
	"errors"
	"fmt"
	"net/mail"
	"regexp"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"

	authmeshv1alpha1 "github.com/authmesh/authmesh/api/v1alpha1"
	"github.com/authmesh/authmesh/authserver/password"
	"github.com/authmesh/authmesh/internal/tenantdb"
)

// User is the stored document of one user (collection users).
type User struct {
	ID           string `bson:"_id"`
	Username     string `bson:"username"`
	Email        string `bson:"email"`
	Mobile       string `bson:"mobile,omitempty"`
	Role         string `bson:"role"`
	PasswordHash string `bson:"passwordHash"`
	Disabled     bool   `bson:"disabled"`
	// FailedLogins counts failed passwords and codes since the last success or lock.
	FailedLogins int32 `bson:"failedLogins"`
	// LockedUntil is the end of the current lock; unset or past means not locked.
	LockedUntil *time.Time `bson:"lockedUntil,omitempty"`
	CreatedAt   time.Time  `bson:"createdAt"`
	UpdatedAt   time.Time  `bson:"updatedAt"`
}

// lockedAt reports whether the account is locked at now.
func (u *User) lockedAt(now time.Time) bool {
	return u.LockedUntil != nil && u.LockedUntil.After(now)
}

// UserView is what the API shows of a user: never the hash or the lockout state.
type UserView struct {
	ID        string    `json:"id"`
	Username  string    `json:"username"`
	Email     string    `json:"email"`
	Mobile    string    `json:"mobile,omitempty"`
	Role      string    `json:"role"`
	CreatedAt time.Time `json:"createdAt"`
}

// View returns what the API shows of u.
func (u *User) View() UserView {
	return UserView{ID: u.ID, Username: u.Username, Email: u.Email, Mobile: u.Mobile, Role: u.Role, CreatedAt: u.CreatedAt}
}

// NewUser is a user to create.
type NewUser struct {
	Username string
	Email    string
	Mobile   string // optional, E.164
	// Password is hashed with password.DefaultParams unless PasswordHash is set (an argon2id
	// PHC string, as a password.Hasher makes).
	Password     string
	PasswordHash string
	// Role must be one of the tenant's roles; empty means spec.defaultRole.
	Role string
}

// ExistsError says an identifier of a new user belongs to another user already.
type ExistsError struct {
	// Field is the identifier taken: "username", "email" or "mobile".
	Field string
}

func (e *ExistsError) Error() string { return "identity: " + e.Field + " is taken" }

// ErrInvalidUser wraps what is wrong with a NewUser that CreateUser refuses.
var ErrInvalidUser = errors.New("identity: invalid user")

// Identifier rules, shared by the request validator and CreateUser.
var (
	usernameRE = regexp.MustCompile(`^[A-Za-z0-9._-]{3,32}$`)
	allDigits  = regexp.MustCompile(`^[0-9]+$`)
	e164RE     = regexp.MustCompile(`^\+[1-9][0-9]{1,14}$`)
)

const (
	minPasswordLen = 8
	maxPasswordLen = 128
	maxEmailLen    = 254
)

// NormalizeEmail returns the form emails are stored and compared in: trimmed, lower-case.
func NormalizeEmail(s string) string { return strings.ToLower(strings.TrimSpace(s)) }

func validEmail(s string) bool {
	if len(s) > maxEmailLen {
		return false
	}
	a, err := mail.ParseAddress(s)
	return err == nil && a.Address == s && a.Name == ""
}

// validate checks nu's fields, normalised, and returns every problem.
func (nu *NewUser) validate(spec *authmeshv1alpha1.TenantSpec) error {
	var errs []error
	nu.Username = strings.TrimSpace(nu.Username)
	nu.Email = NormalizeEmail(nu.Email)
	nu.Mobile = strings.TrimSpace(nu.Mobile)
	switch {
	case strings.Contains(nu.Username, "@"):
		errs = append(errs, errors.New("username must not contain '@'"))
	case allDigits.MatchString(nu.Username):
		errs = append(errs, errors.New("username must not be all digits"))
	case !usernameRE.MatchString(nu.Username):
		errs = append(errs, errors.New("username must be 3 to 32 letters, digits, '.', '_' or '-'"))
	}
	if !validEmail(nu.Email) {
		errs = append(errs, fmt.Errorf("email %q is not an email address", nu.Email))
	}
	if nu.Mobile != "" && !e164RE.MatchString(nu.Mobile) {
		errs = append(errs, errors.New("mobile must be in E.164 form, e.g. +4915112345678"))
	}
	if nu.PasswordHash == "" {
		if n := utf8.RuneCountInString(nu.Password); n < minPasswordLen || n > maxPasswordLen {
			errs = append(errs, fmt.Errorf("password must have %d to %d characters", minPasswordLen, maxPasswordLen))
		}
	}
	if nu.Role == "" {
		nu.Role = spec.DefaultRole
	}
	if !slices.Contains(spec.Roles, nu.Role) {
		errs = append(errs, fmt.Errorf("role %q is not one of the tenant's roles %v", nu.Role, spec.Roles))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidUser, err)
	}
	return nil
}

// identifierDoc maps one identifier to its user (collection identifiers).
type identifierDoc struct {
	ID        string    `bson:"_id"` // "username:<x>", "email:<x>", "mobile:<x>"
	UserID    string    `bson:"userId"`
	CreatedAt time.Time `bson:"createdAt"`
}

// Identifier kinds, the prefixes of identifier _ids and the fields USER_EXISTS names.
const (
	kindUsername = "username"
	kindEmail    = "email"
	kindMobile   = "mobile"
)

func identifierID(kind, value string) string {
	if kind == kindUsername {
		value = strings.ToLower(value)
	}
	return kind + ":" + value
}

// lookupKey turns what a user typed into usernameOrEmailOrMobile into an identifier _id.
func lookupKey(input string) string {
	s := strings.TrimSpace(input)
	switch {
	case strings.Contains(s, "@"):
		return identifierID(kindEmail, NormalizeEmail(s))
	case strings.HasPrefix(s, "+"):
		return identifierID(kindMobile, s)
	}
	return identifierID(kindUsername, s)
}

// staleIdentifierAge is how old an identifier whose user does not exist must be before a new
// signup may take it over: older than any signup still in progress.
const staleIdentifierAge = time.Minute

// CreateUser creates a user of the tenant whose spec is given (roles, default role) in db,
// enforcing unique username, email and mobile through the identifiers collection. It returns
// an *ExistsError when an identifier is taken and an error wrapping ErrInvalidUser when nu
// breaks a rule. Signup uses it; so can seeding and tools.
func CreateUser(ctx context.Context, db *mongo.Database, spec *authmeshv1alpha1.TenantSpec, nu NewUser) (*User, error) {
	return createUser(ctx, db, spec, nu, time.Now().UTC())
}

func createUser(ctx context.Context, db *mongo.Database, spec *authmeshv1alpha1.TenantSpec, nu NewUser, now time.Time) (*User, error) {
	if err := nu.validate(spec); err != nil {
		return nil, err
	}
	hash := nu.PasswordHash
	if hash == "" {
		var err error
		if hash, err = password.Hash(nu.Password, password.DefaultParams); err != nil {
			return nil, err
		}
	}
	u := &User{
		ID: uuid.NewString(), Username: nu.Username, Email: nu.Email, Mobile: nu.Mobile, Role: nu.Role,
		PasswordHash: hash, CreatedAt: now, UpdatedAt: now,
	}
	ids := []struct{ kind, id string }{
		{kindUsername, identifierID(kindUsername, u.Username)},
		{kindEmail, identifierID(kindEmail, u.Email)},
	}
	if u.Mobile != "" {
		ids = append(ids, struct{ kind, id string }{kindMobile, identifierID(kindMobile, u.Mobile)})
	}
	idents := db.Collection(tenantdb.Identifiers)
	var inserted []string
	rollback := func() {
		cleanup, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		for _, id := range inserted {
			// Only ours: the filter names our user.
			_, _ = idents.DeleteOne(cleanup, bson.D{{Key: "_id", Value: id}, {Key: "userId", Value: u.ID}})
		}
	}
	for _, ident := range ids {
		err := insertIdentifier(ctx, db, identifierDoc{ID: ident.id, UserID: u.ID, CreatedAt: now}, now)
		if err == nil {
			inserted = append(inserted, ident.id)
			continue
		}
		rollback()
		if mongo.IsDuplicateKeyError(err) {
			return nil, &ExistsError{Field: ident.kind}
		}
		return nil, fmt.Errorf("identity: inserting identifier %s: %w", ident.kind, err)
	}
	if _, err := db.Collection(tenantdb.Users).InsertOne(ctx, u); err != nil {
		rollback()
		return nil, fmt.Errorf("identity: inserting user: %w", err)
	}
	return u, nil
}

// insertIdentifier inserts doc; when its _id is taken by an identifier whose user does not
// exist and that is older than staleIdentifierAge (a signup that died half way), it removes
// that one and tries once more.
func insertIdentifier(ctx context.Context, db *mongo.Database, doc identifierDoc, now time.Time) error {
	idents := db.Collection(tenantdb.Identifiers)
	_, err := idents.InsertOne(ctx, doc)
	if !mongo.IsDuplicateKeyError(err) {
		return err
	}
	var old identifierDoc
	if e := idents.FindOne(ctx, bson.D{{Key: "_id", Value: doc.ID}}).Decode(&old); e != nil || old.CreatedAt.After(now.Add(-staleIdentifierAge)) {
		return err
	}
	n, e := db.Collection(tenantdb.Users).CountDocuments(ctx, bson.D{{Key: "_id", Value: old.UserID}})
	if e != nil || n > 0 {
		return err
	}
	if _, e := idents.DeleteOne(ctx, bson.D{{Key: "_id", Value: old.ID}, {Key: "userId", Value: old.UserID}}); e != nil {
		return err
	}
	_, err = idents.InsertOne(ctx, doc)
	return err
}

// errNoUser says no user has the identifier or id looked up.
var errNoUser = errors.New("identity: no such user")

// findByIdentifier returns the user an identifier _id points at.
func findByIdentifier(ctx context.Context, db *mongo.Database, key string) (*User, error) {
	var ident identifierDoc
	err := db.Collection(tenantdb.Identifiers).FindOne(ctx, bson.D{{Key: "_id", Value: key}}).Decode(&ident)
	if errors.Is(err, mongo.ErrNoDocuments) {
		return nil, errNoUser
	}
	if err != nil {
		return nil, err
	}
	return findUser(ctx, db, ident.UserID)
}

// findUser returns the user with the given id.
func findUser(ctx context.Context, db *mongo.Database, id string) (*User, error) {
	var u User
	err := db.Collection(tenantdb.Users).FindOne(ctx, bson.D{{Key: "_id", Value: id}}).Decode(&u)
	if errors.Is(err, mongo.ErrNoDocuments) {
		return nil, errNoUser
	}
	if err != nil {
		return nil, err
	}
	return &u, nil
}
