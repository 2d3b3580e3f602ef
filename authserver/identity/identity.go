package identity

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/go-playground/validator/v10"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/authmesh/authmesh/authserver"
	"github.com/authmesh/authmesh/authserver/audit"
	"github.com/authmesh/authmesh/authserver/httpapi"
	"github.com/authmesh/authmesh/authserver/mail"
	"github.com/authmesh/authmesh/authserver/password"
	"github.com/authmesh/authmesh/authserver/ratelimit"
	"github.com/authmesh/authmesh/authserver/sessions"
	"github.com/authmesh/authmesh/authserver/tenancy"
)

// Codes this package answers with (see the package doc).
const (
	CodeSignupSuccess       = "SIGNUP_SUCCESS"
	CodeUserExists          = "USER_EXISTS"
	CodeOTPSent             = "OTP_SENT"
	CodeLoginSuccess        = "LOGIN_SUCCESS"
	CodeInvalidCredentials  = "INVALID_CREDENTIALS"
	CodeAccountLocked       = "ACCOUNT_LOCKED"
	CodeAccountDisabled     = "ACCOUNT_DISABLED"
	CodeInvalidOTP          = "INVALID_OTP"
	CodeOTPExpired          = "OTP_EXPIRED"
	CodeOTPAttemptsExceeded = "OTP_ATTEMPTS_EXCEEDED"
	CodeAccountUnlocked     = "ACCOUNT_UNLOCKED"
	CodeInvalidUnlockToken  = "INVALID_UNLOCK_TOKEN"
	CodeEmailUnavailable    = "EMAIL_UNAVAILABLE"
)

// SessionStarter starts a session once a user has proved who they are; *sessions.Service is
// the one the server uses.
type SessionStarter interface {
	Start(ctx context.Context, t *tenancy.Tenant, userID, role string, d sessions.Device) (sessions.TokenPair, error)
	// Revoke takes back a session just started for a user disabled meanwhile.
	Revoke(ctx context.Context, t *tenancy.Tenant, userID, sessionID, reason string) (bool, error)
}

// Options are what Register needs besides the server.
type Options struct {
	// Sessions starts the session of a successful login. Required.
	Sessions SessionStarter
	// Mailer sends codes and links; nil means SMTP as s.Config.Identity.SMTP says.
	Mailer mail.Sender
	// Hasher hashes passwords; nil means one made from s.Config.Identity.
	Hasher *password.Hasher
	// Now is the clock of expiries, locks and rate limits; time.Now when nil.
	Now func() time.Time
	// Registerer receives the package's metrics; nil registers none.
	Registerer prometheus.Registerer
	// Audit records the flows' security events (see audit.go); nil records nothing.
	Audit audit.Recorder
}

// Service serves the identity routes.
type Service struct {
	registry  *tenancy.Registry
	decoder   *httpapi.Decoder
	sessions  SessionStarter
	mailer    mail.Sender
	hasher    *password.Hasher
	publicURL string
	now       func() time.Time
	logger    *slog.Logger
	limits    limiters
	metrics   metrics
	audit     audit.Recorder
}

type limiters struct {
	signupIP, signupAccount *ratelimit.Limiter
	loginIP, loginAccount   *ratelimit.Limiter
	verifyIP, verifyAccount *ratelimit.Limiter
	unlockIP, unlockAccount *ratelimit.Limiter
}

// mailTimeout bounds sending one mail, SMTP dialogue included.
const mailTimeout = 30 * time.Second

// New builds the Service for s without registering routes; Register does both.
func New(s *authserver.Server, opts Options) (*Service, error) {
	if opts.Sessions == nil {
		return nil, errors.New("identity: Options.Sessions is required")
	}
	cfg := s.Config.Identity
	svc := &Service{
		registry:  s.Registry,
		decoder:   s.Decoder,
		sessions:  opts.Sessions,
		mailer:    opts.Mailer,
		hasher:    opts.Hasher,
		publicURL: s.Config.PublicURL,
		now:       opts.Now,
		logger:    s.Logger.With("component", "identity"),
		audit:     opts.Audit,
	}
	if svc.now == nil {
		svc.now = time.Now
	}
	if svc.hasher == nil {
		h, err := password.NewHasher(cfg.Password, cfg.PasswordConcurrency)
		if err != nil {
			return nil, err
		}
		svc.hasher = h
	}
	if svc.mailer == nil {
		m, err := mail.NewSMTP(cfg.SMTP)
		if err != nil {
			return nil, err
		}
		if !m.Configured() {
			svc.logger.Warn("no SMTP server configured: logins that need an emailed code will fail with EMAIL_UNAVAILABLE")
		}
		svc.mailer = m
	}
	rl, n := cfg.RateLimits, cfg.RateLimitMaxKeys
	newLimiter := func(l ratelimit.Limit) *ratelimit.Limiter { return ratelimit.New(l, n, svc.now) }
	svc.limits = limiters{
		signupIP: newLimiter(rl.SignupIP), signupAccount: newLimiter(rl.SignupAccount),
		loginIP: newLimiter(rl.LoginIP), loginAccount: newLimiter(rl.LoginAccount),
		verifyIP: newLimiter(rl.VerifyIP), verifyAccount: newLimiter(rl.VerifyAccount),
		unlockIP: newLimiter(rl.UnlockIP), unlockAccount: newLimiter(rl.UnlockAccount),
	}
	var err error
	if svc.metrics, err = newMetrics(opts.Registerer); err != nil {
		return nil, err
	}
	if err := registerRules(s.Decoder); err != nil {
		return nil, err
	}
	return svc, nil
}

// Register builds the Service and adds its routes to s.Public.
func Register(s *authserver.Server, opts Options) (*Service, error) {
	svc, err := New(s, opts)
	if err != nil {
		return nil, err
	}
	tenant := s.Registry.Middleware(tenancy.RouteOptions{})
	s.Public.Handle("POST /auth/signup", httpapi.HandlerFunc(svc.signup), svc.limits.signupIP.PerClientIP(), tenant, svc.counted("signup"))
	s.Public.Handle("POST /auth/login", httpapi.HandlerFunc(svc.login), svc.limits.loginIP.PerClientIP(), tenant, svc.counted("login"))
	s.Public.Handle("POST /auth/login/verify", httpapi.HandlerFunc(svc.verify), svc.limits.verifyIP.PerClientIP(), tenant, svc.counted("verify"))
	// The unlock token names its tenant: no x-tenant-id.
	s.Public.Handle("GET /auth/unlock", httpapi.HandlerFunc(svc.unlockGet), svc.limits.unlockIP.PerClientIP())
	s.Public.Handle("POST /auth/unlock", httpapi.HandlerFunc(svc.unlockPost), svc.limits.unlockIP.PerClientIP())
	return svc, nil
}

// counted counts every answer of flow by tenant and envelope code, after the handler ran; it
// goes inside the tenant middleware, so only known tenants become label values.
func (s *Service) counted(flow string) httpapi.Middleware {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			next.ServeHTTP(w, r)
			if t := tenancy.FromContext(r.Context()); t != nil {
				s.metrics.outcomes.WithLabelValues(t.ID, flow, httpapi.Code(r.Context())).Inc()
			}
		})
	}
}

// Hasher returns the password hasher, e.g. for tools that create users with CreateUser.
func (s *Service) Hasher() *password.Hasher { return s.hasher }

// send mails m to u from the tenant's sender.
func (s *Service) send(ctx context.Context, t *tenancy.Tenant, u *User, m message) error {
	err := t.MailSender(s.mailer).Send(ctx, mail.Message{From: t.Spec.Email.From, To: u.Email, Subject: m.subject, Text: m.text})
	result := "sent"
	if err != nil {
		result = "failed"
	}
	s.metrics.mails.WithLabelValues(m.kind, result).Inc()
	return err
}

// Request bodies.

type signupRequest struct {
	Username string `json:"username" validate:"required,noat,notdigits,username"`
	Email    string `json:"email" validate:"required,max=254,email"`
	Mobile   string `json:"mobile" validate:"omitempty,e164"`
	Password string `json:"password" validate:"required,min=8,max=128"`
}

type loginRequest struct {
	Identifier string `json:"usernameOrEmailOrMobile" validate:"required,max=254"`
	Password   string `json:"password" validate:"required,max=1024"`
}

type verifyRequest struct {
	LoginID string `json:"loginId" validate:"required,max=128"`
	OTP     string `json:"otp" validate:"required,max=32"`
}

type unlockRequest struct {
	Token string `json:"token" validate:"required,max=512"`
}

// registerRules adds the user field rules to the decoder (once per decoder). They are the
// checks CreateUser makes, so a request that passes them is never refused later as invalid;
// "email" and "e164" replace the validator's own rules of those names, which accept what
// CreateUser does not (a quoted local part, a number without its "+"), while details keep
// naming the rule as clients know it.
func registerRules(d *httpapi.Decoder) error {
	rules := []struct {
		tag, message string
		fn           validator.Func
	}{
		{"noat", "{0} must not contain '@'", func(fl validator.FieldLevel) bool {
			return !strings.Contains(fl.Field().String(), "@")
		}},
		{"notdigits", "{0} must not be all digits", func(fl validator.FieldLevel) bool {
			return !allDigits.MatchString(fl.Field().String())
		}},
		{"username", "{0} must be 3 to 32 letters, digits, '.', '_' or '-'", func(fl validator.FieldLevel) bool {
			return usernameRE.MatchString(fl.Field().String())
		}},
		{"email", "{0} must be an email address such as name@example.com", func(fl validator.FieldLevel) bool {
			return validEmail(NormalizeEmail(fl.Field().String()))
		}},
		{"e164", "{0} must be in E.164 form, e.g. +4915112345678", func(fl validator.FieldLevel) bool {
			return e164RE.MatchString(strings.TrimSpace(fl.Field().String()))
		}},
	}
	for _, r := range rules {
		if err := d.RegisterRule(r.tag, r.fn, r.message); err != nil {
			return fmt.Errorf("identity: registering validation rule %s: %w", r.tag, err)
		}
	}
	return nil
}

// Errors with the messages clients see.

func errInvalidCredentials() *httpapi.Error {
	return httpapi.NewError(http.StatusUnauthorized, CodeInvalidCredentials, "Invalid credentials.")
}

func errAccountLocked(until, now time.Time) *httpapi.Error {
	secs := int(until.Sub(now).Round(time.Second) / time.Second)
	return httpapi.NewError(http.StatusLocked, CodeAccountLocked,
		"Account is locked after too many failed attempts. Use the unlock link sent by email, or try again later.").
		WithDetails(map[string]string{"lockedUntil": httpapi.Timestamp(until)}).
		WithHeader("Retry-After", strconv.Itoa(max(secs, 1)))
}

func errAccountDisabled() *httpapi.Error {
	return httpapi.NewError(http.StatusForbidden, CodeAccountDisabled, "Account is disabled.")
}

func errOTPExpired() *httpapi.Error {
	return httpapi.NewError(http.StatusGone, CodeOTPExpired, "The login code has expired or was already used. Please log in again.")
}

func errOTPAttemptsExceeded() *httpapi.Error {
	return httpapi.NewError(http.StatusTooManyRequests, CodeOTPAttemptsExceeded, "Too many wrong codes for this login. Please log in again.")
}

func errInvalidOTP(attemptsLeft int32) *httpapi.Error {
	return httpapi.NewError(http.StatusUnauthorized, CodeInvalidOTP, "Invalid login code.").
		WithDetails(map[string]int32{"attemptsLeft": max(attemptsLeft, 0)})
}

func errInvalidUnlockToken() *httpapi.Error {
	return httpapi.NewError(http.StatusBadRequest, CodeInvalidUnlockToken, "The unlock link is invalid, expired or was already used.")
}

func errEmailUnavailable(cause error) *httpapi.Error {
	return httpapi.NewError(http.StatusServiceUnavailable, CodeEmailUnavailable,
		"The login code could not be sent by email. Please try again later.").WithCause(cause)
}

// metrics of the package; see doc.go.
type metrics struct {
	locks    prometheus.Counter
	mails    *prometheus.CounterVec
	outcomes *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) (metrics, error) {
	m := metrics{
		locks: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "authmesh_authserver_account_locks_total",
			Help: "Accounts locked after reaching the tenant's maxFailedAttempts.",
		}),
		mails: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "authmesh_authserver_mails_total",
			Help: "Mails the identity flows tried to send, by kind (otp, unlock) and result (sent, failed).",
		}, []string{"kind", "result"}),
		outcomes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "authmesh_authserver_identity_outcomes_total",
			Help: "Answers of signup, login and login/verify, by tenant, flow and envelope code (OTP_SENT, LOGIN_SUCCESS, INVALID_CREDENTIALS, ACCOUNT_LOCKED, INVALID_OTP, ...).",
		}, []string{"tenant", "flow", "code"}),
	}
	if reg != nil {
		for _, c := range []prometheus.Collector{m.locks, m.mails, m.outcomes} {
			if err := reg.Register(c); err != nil {
				return m, err
			}
		}
	}
	return m, nil
}
