package admin

import (
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/authmesh/authmesh/authserver"
	"github.com/authmesh/authmesh/authserver/audit"
	"github.com/authmesh/authmesh/authserver/httpapi"
	"github.com/authmesh/authmesh/authserver/identity"
	"github.com/authmesh/authmesh/authserver/sessions"
	"github.com/authmesh/authmesh/authserver/tenancy"
)

// Codes this package answers with (see the package doc).
const (
	CodeUsersRetrieved   = "USERS_RETRIEVED"
	CodeUserRetrieved    = "USER_RETRIEVED"
	CodeUserUpdated      = "USER_UPDATED"
	CodeUserNotFound     = "USER_NOT_FOUND"
	CodeAuditRetrieved   = "AUDIT_RETRIEVED"
	CodeAdminSelfLockout = "ADMIN_SELF_LOCKOUT"
)

// Options are what Register needs besides the server.
type Options struct {
	// Sessions authenticates admins and lists and revokes users' sessions. Required.
	Sessions *sessions.Service
	// Audit records what admins do and is the trail GET /auth/admin/audit reads; nil records
	// nothing and lists nothing.
	Audit *audit.Log
	// Now is the clock of lock states and update times; time.Now when nil.
	Now func() time.Time
}

// Service serves the admin routes.
type Service struct {
	decoder  *httpapi.Decoder
	sessions *sessions.Service
	audit    *audit.Log
	now      func() time.Time
}

// Register adds the admin routes to s.Public, each behind the tenant middleware, the
// sessions bearer middleware requiring the admin role, and a check that the caller is still
// an enabled admin in the database:
//
//	GET    /auth/admin/users?query=&page=&pageSize=
//	GET    /auth/admin/users/{userId}
//	PATCH  /auth/admin/users/{userId}
//	DELETE /auth/admin/users/{userId}/sessions/{sessionId}
//	GET    /auth/admin/audit?after=&limit=&order=&userId=&type=
func Register(s *authserver.Server, opts Options) (*Service, error) {
	if opts.Sessions == nil {
		return nil, errors.New("admin: Options.Sessions is required")
	}
	svc := &Service{decoder: s.Decoder, sessions: opts.Sessions, audit: opts.Audit, now: opts.Now}
	if svc.now == nil {
		svc.now = time.Now
	}
	mws := []httpapi.Middleware{
		s.Registry.Middleware(tenancy.RouteOptions{}),
		opts.Sessions.Authenticate(authserver.AdminRole),
		svc.stillAdmin,
	}
	s.Public.Handle("GET /auth/admin/users", httpapi.HandlerFunc(svc.listUsers), mws...)
	s.Public.Handle("GET /auth/admin/users/{userId}", httpapi.HandlerFunc(svc.getUser), mws...)
	s.Public.Handle("PATCH /auth/admin/users/{userId}", httpapi.HandlerFunc(svc.patchUser), mws...)
	s.Public.Handle("DELETE /auth/admin/users/{userId}/sessions/{sessionId}", httpapi.HandlerFunc(svc.revokeSession), mws...)
	s.Public.Handle("GET /auth/admin/audit", httpapi.HandlerFunc(svc.listAudit), mws...)
	return svc, nil
}

// stillAdmin refuses a caller whose token says admin but whose user no longer is one (demoted
// or disabled since the token was issued), so admin power ends at once, not at the next
// refresh.
func (s *Service) stillAdmin(next http.Handler) http.Handler {
	return httpapi.HandlerFunc(func(w http.ResponseWriter, r *http.Request) error {
		ctx := r.Context()
		caller, _ := sessions.Caller(ctx)
		u, err := identity.FindUser(ctx, tenancy.FromContext(ctx).DB, caller.UserID)
		switch {
		case errors.Is(err, identity.ErrUserNotFound):
			return errForbiddenRole()
		case err != nil:
			return err
		case u.Disabled || u.Role != authserver.AdminRole:
			return errForbiddenRole()
		}
		next.ServeHTTP(w, r)
		return nil
	})
}

// record writes an audit event of the caller's action.
func (s *Service) record(ctx context.Context, e audit.Event) {
	caller, _ := sessions.Caller(ctx)
	e.ActorID, e.SessionID = caller.UserID, caller.SessionID
	s.audit.Record(ctx, tenancy.FromContext(ctx), e)
}

func errForbiddenRole() *httpapi.Error {
	return httpapi.NewError(http.StatusForbidden, httpapi.CodeForbiddenRole, "Insufficient role. Required: "+authserver.AdminRole).
		WithHeader("WWW-Authenticate", `Bearer realm="authmesh", error="insufficient_scope"`)
}

func errUserNotFound(userID string) *httpapi.Error {
	if len(userID) > 64 {
		userID = userID[:64]
	}
	return httpapi.NewError(http.StatusNotFound, CodeUserNotFound, "User not found.").WithDetails(map[string]string{"userId": userID})
}

func errSelfLockout() *httpapi.Error {
	return httpapi.NewError(http.StatusForbidden, CodeAdminSelfLockout,
		"Admins cannot disable their own account or take away their own admin role; ask another admin.")
}

// invalid is VALIDATION_FAILED for one field.
func invalid(field, rule, message string) *httpapi.Error {
	return httpapi.NewError(http.StatusBadRequest, httpapi.CodeValidationFailed, "Validation failed.").
		WithDetails([]httpapi.FieldError{{Field: field, Rule: rule, Message: message}})
}
