package account

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/authmesh/authmesh/authserver"
	"github.com/authmesh/authmesh/authserver/audit"
	"github.com/authmesh/authmesh/authserver/httpapi"
	"github.com/authmesh/authmesh/authserver/identity"
	"github.com/authmesh/authmesh/authserver/tenancy"
)

// watch is the registry's callback: a serving tenant that names a bootstrap admin this
// replica has not handled yet is queued for Run. It never blocks.
func (s *Service) watch(c tenancy.Change) {
	if !c.Serving || c.Spec == nil {
		return
	}
	email := identity.NormalizeEmail(c.Spec.BootstrapAdmin.Email)
	if email == "" || s.bootstrapDone(c.Tenant, email) {
		return
	}
	select {
	case s.bootstraps <- c.Tenant:
	default:
		s.logger.Warn("too many tenants waiting for their bootstrap admin; the next change of this one retries", "tenant", c.Tenant)
	}
}

func (s *Service) bootstrapDone(tenant, email string) bool {
	s.bootMu.Lock()
	defer s.bootMu.Unlock()
	return s.bootstrapped[tenant] == email
}

func (s *Service) markBootstrapped(tenant, email string) {
	s.bootMu.Lock()
	defer s.bootMu.Unlock()
	s.bootstrapped[tenant] = email
}

// bootstrapAttempts bounds the tries of one bootstrap (database or mail trouble); the next
// change of the tenant, or a restart, tries again.
const bootstrapAttempts = 6

// ensureBootstrapAdmin creates the tenant's bootstrap admin unless a user with that email
// exists, retrying with backoff while the database or the mail server fails.
func (s *Service) ensureBootstrapAdmin(ctx context.Context, tenant string) {
	delay := time.Second
	for attempt := 1; ; attempt++ {
		err := s.bootstrapOnce(ctx, tenant)
		if err == nil || ctx.Err() != nil {
			return
		}
		if attempt == bootstrapAttempts {
			s.logger.Error("creating the bootstrap admin failed; giving up until the tenant changes or the server restarts",
				"tenant", tenant, "error", err.Error())
			return
		}
		s.logger.Warn("creating the bootstrap admin failed; retrying", "tenant", tenant, "error", err.Error(), "retryIn", delay)
		select {
		case <-ctx.Done():
			return
		case <-time.After(delay):
		}
		delay = min(delay*2, maxRetryDelay)
	}
}

// bootstrapOnce does the work of ensureBootstrapAdmin once. Whoever inserts the email's
// identifier first creates the admin (the identifiers collection makes that one replica), and
// only that replica mails the set-password link.
func (s *Service) bootstrapOnce(ctx context.Context, tenant string) error {
	t, release, err := s.registry.Acquire(ctx, tenant, true)
	if err != nil {
		var he *httpapi.Error
		if errors.As(err, &he) && he.Code != httpapi.CodeTenantConnectionMissing {
			return nil // gone or suspended: nothing to do
		}
		return err
	}
	defer release()
	email := identity.NormalizeEmail(t.Spec.BootstrapAdmin.Email)
	if email == "" || s.bootstrapDone(tenant, email) {
		return nil
	}
	log := s.logger.With("tenant", tenant)
	if !slices.Contains(t.Spec.Roles, authserver.AdminRole) {
		log.Error("spec.bootstrapAdmin is set but the tenant has no role " + strconv.Quote(authserver.AdminRole) + "; no bootstrap admin created")
		s.markBootstrapped(tenant, email)
		return nil
	}
	switch _, err := identity.FindByIdentifier(ctx, t.DB, email); {
	case err == nil:
		s.markBootstrapped(tenant, email) // created before, here or by another replica
		return nil
	case !errors.Is(err, identity.ErrUserNotFound):
		return err
	}
	u, err := s.createAdmin(ctx, t, email)
	switch {
	case errors.Is(err, errEmailTaken):
		s.markBootstrapped(tenant, email) // another replica won the race
		return nil
	case errors.Is(err, identity.ErrInvalidUser):
		log.Error("spec.bootstrapAdmin.email cannot be a user's email; no bootstrap admin created", "error", err.Error())
		s.markBootstrapped(tenant, email)
		return nil
	case err != nil:
		return err
	}
	s.markBootstrapped(tenant, email)
	log.Info("bootstrap admin created", "userId", u.ID, "username", u.Username)
	s.record(ctx, t, audit.Event{Type: audit.TypeBootstrapAdmin, ActorID: audit.ActorSystem, SubjectID: u.ID,
		Details: map[string]string{"username": u.Username, "role": u.Role}})

	ttl := s.cfg.SetPasswordTokenTTL
	delay := time.Second
	for attempt := 1; ; attempt++ {
		err := s.issueLink(ctx, t, u, ttl, func(link string, expires time.Time) message {
			return setPasswordMessage(t, u, link, ttl, expires)
		})
		if err == nil {
			return nil
		}
		if attempt == bootstrapAttempts || ctx.Err() != nil {
			log.Error("mailing the bootstrap admin's set-password link failed; they can use forgot-password", "userId", u.ID, "error", err.Error())
			return nil
		}
		log.Warn("mailing the bootstrap admin's set-password link failed; retrying", "error", err.Error(), "retryIn", delay)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(delay):
		}
		delay = min(delay*2, maxRetryDelay)
	}
}

// errEmailTaken says a user with the bootstrap email exists after all.
var errEmailTaken = errors.New("account: the bootstrap admin's email belongs to a user already")

// maxUsernameTries bounds the suffixes tried when the derived username is taken.
const maxUsernameTries = 100

// createAdmin creates an admin with email and a password nobody knows (a valid hash of a
// random secret that is thrown away, so a login attempt is an ordinary wrong password). The
// username comes from the email (BootstrapUsername), with -2, -3, ... when taken.
func (s *Service) createAdmin(ctx context.Context, t *tenancy.Tenant, email string) (*identity.User, error) {
	hash, err := s.hasher.Hash(ctx, rand.Text()+rand.Text())
	if err != nil {
		return nil, err
	}
	base := BootstrapUsername(email)
	for i := 1; i <= maxUsernameTries; i++ {
		name := base
		if i > 1 {
			name = base + "-" + strconv.Itoa(i)
		}
		u, err := identity.CreateUser(ctx, t.DB, t.Spec, identity.NewUser{
			Username: name, Email: email, PasswordHash: hash, Role: authserver.AdminRole,
		})
		var exists *identity.ExistsError
		if errors.As(err, &exists) {
			if exists.Field == "username" {
				continue
			}
			return nil, errEmailTaken
		}
		return u, err
	}
	return nil, fmt.Errorf("account: no free username from %q after %d tries", base, maxUsernameTries)
}

// BootstrapUsername derives a username from an email address: the local part without a
// "+tag", lower-case, every character other than a-z, 0-9, '.', '_' and '-' made '-', runs of
// '-' collapsed, separators trimmed from the ends, at most 28 characters (room for a "-NN"
// suffix); "admin-" is put in front of what is shorter than 3 characters or all digits, and an
// empty result is "admin".
func BootstrapUsername(email string) string {
	local, _, _ := strings.Cut(strings.ToLower(strings.TrimSpace(email)), "@")
	local, _, _ = strings.Cut(local, "+")
	var b strings.Builder
	for _, r := range local {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9', r == '.', r == '_':
			b.WriteRune(r)
		default:
			if s := b.String(); !strings.HasSuffix(s, "-") {
				b.WriteByte('-')
			}
		}
	}
	name := strings.Trim(b.String(), "._-")
	if len(name) > 28 {
		name = strings.TrimRight(name[:28], "._-")
	}
	if len(name) < 3 || strings.Trim(name, "0123456789") == "" {
		name = strings.Trim("admin-"+name, "-")
	}
	return name
}

// Bootstrapped returns the bootstrap admin email this replica has handled for tenant (created
// the admin, or found a user with that email), "" when none yet: for diagnostics and tests.
func (s *Service) Bootstrapped(tenant string) string {
	s.bootMu.Lock()
	defer s.bootMu.Unlock()
	return s.bootstrapped[tenant]
}
