package account

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/authmesh/authmesh/authserver"
	"github.com/authmesh/authmesh/authserver/audit"
	"github.com/authmesh/authmesh/authserver/httpapi"
	"github.com/authmesh/authmesh/authserver/identity"
	"github.com/authmesh/authmesh/authserver/mail"
	"github.com/authmesh/authmesh/authserver/password"
	"github.com/authmesh/authmesh/authserver/ratelimit"
	"github.com/authmesh/authmesh/authserver/sessions"
	"github.com/authmesh/authmesh/authserver/tenancy"
)

// Codes this package answers with (see the package doc).
const (
	CodePasswordChanged   = "PASSWORD_CHANGED"
	CodePasswordResetSent = "PASSWORD_RESET_SENT"
	CodePasswordReset     = "PASSWORD_RESET"
	CodeResetTokenValid   = "RESET_TOKEN_VALID"
	CodeInvalidResetToken = "INVALID_RESET_TOKEN"
)

// Options are what Register needs besides the server.
type Options struct {
	// Identity checks current passwords (counting toward the lockout) and lends its password
	// hasher and mail sender. Required.
	Identity *identity.Service
	// Sessions authenticates the bearer route and revokes sessions. Required.
	Sessions *sessions.Service
	// Mailer sends reset and set-password links; nil means Identity's.
	Mailer mail.Sender
	// Audit records the flows' events; nil records nothing.
	Audit audit.Recorder
	// Now is the clock of token expiries and rate limits; time.Now when nil.
	Now func() time.Time
	// Registerer receives the package's metrics; nil registers none.
	Registerer prometheus.Registerer
}

// Service serves the account routes and creates bootstrap admins.
type Service struct {
	registry  *tenancy.Registry
	decoder   *httpapi.Decoder
	identity  *identity.Service
	sessions  *sessions.Service
	mailer    mail.Sender
	hasher    *password.Hasher
	audit     audit.Recorder
	cfg       authserver.AccountConfig
	publicURL string
	now       func() time.Time
	logger    *slog.Logger
	limits    limiters
	mails     *prometheus.CounterVec

	// jobs are mails to send in the background (forgot-password), so that the answer takes
	// as long whether or not the account exists.
	jobs chan mailJob
	// bootstraps are tenants whose bootstrap admin to ensure.
	bootstraps chan string

	bootMu       sync.Mutex
	bootstrapped map[string]string // tenant -> bootstrap email handled
}

type limiters struct {
	forgotIP, forgotAccount *ratelimit.Limiter
	resetIP, resetAccount   *ratelimit.Limiter
}

// mailJob is one reset link to issue and mail.
type mailJob struct {
	tenant, userID string
}

// Queue sizes and workers of the background work.
const (
	mailQueue     = 1024
	mailWorkers   = 2
	mailTimeout   = 30 * time.Second
	maxRetryDelay = 30 * time.Second
)

// New builds the Service for s without registering routes; Register does both. It watches
// the tenant registry for tenants with a bootstrap admin; Run creates them.
func New(s *authserver.Server, opts Options) (*Service, error) {
	if opts.Identity == nil || opts.Sessions == nil {
		return nil, errors.New("account: Options.Identity and Options.Sessions are required")
	}
	svc := &Service{
		registry:     s.Registry,
		decoder:      s.Decoder,
		identity:     opts.Identity,
		sessions:     opts.Sessions,
		mailer:       opts.Mailer,
		hasher:       opts.Identity.Hasher(),
		audit:        opts.Audit,
		cfg:          s.Config.Account,
		publicURL:    s.Config.PublicURL,
		now:          opts.Now,
		logger:       s.Logger.With("component", "account"),
		jobs:         make(chan mailJob, mailQueue),
		bootstraps:   make(chan string, 256),
		bootstrapped: map[string]string{},
		mails: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "authmesh_authserver_account_mails_total",
			Help: "Password links the account flows tried to mail, by kind (reset, set_password) and result (sent, failed, dropped: the queue was full).",
		}, []string{"kind", "result"}),
	}
	if svc.now == nil {
		svc.now = time.Now
	}
	if svc.mailer == nil {
		svc.mailer = opts.Identity.Mailer()
	}
	if opts.Registerer != nil {
		if err := opts.Registerer.Register(svc.mails); err != nil {
			return nil, err
		}
	}
	rl, n := s.Config.Account.RateLimits, s.Config.Identity.RateLimitMaxKeys
	newLimiter := func(l ratelimit.Limit) *ratelimit.Limiter { return ratelimit.New(l, n, svc.now) }
	svc.limits = limiters{
		forgotIP: newLimiter(rl.ForgotIP), forgotAccount: newLimiter(rl.ForgotAccount),
		resetIP: newLimiter(rl.ResetIP), resetAccount: newLimiter(rl.ResetAccount),
	}
	s.Registry.Watch(svc.watch)
	return svc, nil
}

// Register builds the Service and adds its routes to s.Public:
//
//	POST /auth/password/change  bearer
//	POST /auth/password/forgot  x-tenant-id
//	GET  /auth/password/reset?token= ; POST /auth/password/reset  (the token names the tenant)
func Register(s *authserver.Server, opts Options) (*Service, error) {
	svc, err := New(s, opts)
	if err != nil {
		return nil, err
	}
	tenant := s.Registry.Middleware(tenancy.RouteOptions{})
	s.Public.Handle("POST /auth/password/change", httpapi.HandlerFunc(svc.change), tenant, svc.sessions.Authenticate())
	s.Public.Handle("POST /auth/password/forgot", httpapi.HandlerFunc(svc.forgot), svc.limits.forgotIP.PerClientIP(), tenant)
	s.Public.Handle("GET /auth/password/reset", httpapi.HandlerFunc(svc.resetGet), svc.limits.resetIP.PerClientIP())
	s.Public.Handle("POST /auth/password/reset", httpapi.HandlerFunc(svc.resetPost), svc.limits.resetIP.PerClientIP())
	return svc, nil
}

// Run mails reset links and creates bootstrap admins until ctx ends.
func (s *Service) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	for range mailWorkers {
		wg.Go(func() {
			for {
				select {
				case <-ctx.Done():
					return
				case j := <-s.jobs:
					s.mailReset(ctx, j)
				}
			}
		})
	}
	wg.Go(func() {
		for {
			select {
			case <-ctx.Done():
				return
			case tenant := <-s.bootstraps:
				s.ensureBootstrapAdmin(ctx, tenant)
			}
		}
	})
	wg.Wait()
	return nil
}

// record writes an audit event when the Service has a Recorder.
func (s *Service) record(ctx context.Context, t *tenancy.Tenant, e audit.Event) {
	if s.audit != nil {
		s.audit.Record(ctx, t, e)
	}
}

// send mails m to a user from the tenant's sender and counts it.
func (s *Service) send(ctx context.Context, t *tenancy.Tenant, to string, m message) error {
	err := t.MailSender(s.mailer).Send(ctx, mail.Message{From: t.Spec.Email.From, To: to, Subject: m.subject, Text: m.text})
	result := "sent"
	if err != nil {
		result = "failed"
	}
	s.mails.WithLabelValues(m.kind, result).Inc()
	return err
}

func errInvalidResetToken() *httpapi.Error {
	return httpapi.NewError(http.StatusBadRequest, CodeInvalidResetToken, "The password reset link is invalid, expired or was already used.")
}
