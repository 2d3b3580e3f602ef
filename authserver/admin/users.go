package admin

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/authmesh/authmesh/authserver"
	"github.com/authmesh/authmesh/authserver/audit"
	"github.com/authmesh/authmesh/authserver/httpapi"
	"github.com/authmesh/authmesh/authserver/identity"
	"github.com/authmesh/authmesh/authserver/sessions"
	"github.com/authmesh/authmesh/authserver/tenancy"
	"github.com/authmesh/authmesh/internal/tenantdb"
)

// UserView is what the admin API shows of a user: never the password hash or the failure
// count.
type UserView struct {
	ID          string `json:"id"`
	Username    string `json:"username"`
	Email       string `json:"email"`
	Mobile      string `json:"mobile,omitempty"`
	Role        string `json:"role"`
	Disabled    bool   `json:"disabled"`
	Locked      bool   `json:"locked"`
	LockedUntil string `json:"lockedUntil,omitempty"`
	CreatedAt   string `json:"createdAt"`
	UpdatedAt   string `json:"updatedAt"`
}

func view(u *identity.User, now time.Time) UserView {
	v := UserView{
		ID: u.ID, Username: u.Username, Email: u.Email, Mobile: u.Mobile, Role: u.Role, Disabled: u.Disabled,
		CreatedAt: httpapi.Timestamp(u.CreatedAt), UpdatedAt: httpapi.Timestamp(u.UpdatedAt),
	}
	if u.LockedUntil != nil && u.LockedUntil.After(now) {
		v.Locked, v.LockedUntil = true, httpapi.Timestamp(*u.LockedUntil)
	}
	return v
}

// UserPage is the data of USERS_RETRIEVED.
type UserPage struct {
	Items    []UserView `json:"items"`
	Page     int        `json:"page"`
	PageSize int        `json:"pageSize"`
	Total    int64      `json:"total"`
}

// Paging bounds of the user list.
const (
	defaultPageSize = 20
	maxPageSize     = 100
	maxPage         = 100_000
	maxQueryLen     = 254
)

// userProjection leaves out what the admin API never shows.
var userProjection = bson.D{{Key: "passwordHash", Value: 0}}

// listUsers pages through the tenant's users, newest first, optionally those whose username
// or email starts with query (case-insensitive).
func (s *Service) listUsers(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	page, err := intParam(q, "page", 1, 1, maxPage)
	if err != nil {
		return err
	}
	size, err := intParam(q, "pageSize", defaultPageSize, 1, maxPageSize)
	if err != nil {
		return err
	}
	query := strings.TrimSpace(q.Get("query"))
	if len(query) > maxQueryLen {
		return invalid("query", "max", fmt.Sprintf("query must be at most %d characters", maxQueryLen))
	}
	if !utf8.ValidString(query) { // it becomes a regular expression, which must be UTF-8
		return invalid("query", "utf8", "query must be UTF-8 text")
	}
	filter := bson.D{}
	if query != "" {
		// FerretDB has no text index: an anchored, case-insensitive prefix match.
		prefix := bson.D{{Key: "$regex", Value: "^" + regexp.QuoteMeta(query)}, {Key: "$options", Value: "i"}}
		filter = bson.D{{Key: "$or", Value: bson.A{
			bson.D{{Key: "username", Value: prefix}}, bson.D{{Key: "email", Value: prefix}},
		}}}
	}
	ctx := r.Context()
	users := tenancy.FromContext(ctx).DB.Collection(tenantdb.Users)
	total, err := users.CountDocuments(ctx, filter)
	if err != nil {
		return fmt.Errorf("admin: counting users: %w", err)
	}
	cur, err := users.Find(ctx, filter, options.Find().
		SetSort(bson.D{{Key: "createdAt", Value: -1}, {Key: "_id", Value: 1}}).
		SetSkip(int64(page-1)*int64(size)).SetLimit(int64(size)).SetProjection(userProjection))
	if err != nil {
		return fmt.Errorf("admin: listing users: %w", err)
	}
	var found []identity.User
	if err := cur.All(ctx, &found); err != nil {
		return fmt.Errorf("admin: listing users: %w", err)
	}
	now := s.now().UTC()
	out := UserPage{Items: make([]UserView, len(found)), Page: page, PageSize: size, Total: total}
	for i := range found {
		out.Items[i] = view(&found[i], now)
	}
	return httpapi.WriteSuccess(w, r, http.StatusOK, CodeUsersRetrieved, "Users retrieved successfully.", out)
}

// UserDetail is the data of USER_RETRIEVED.
type UserDetail struct {
	User     UserView               `json:"user"`
	Sessions []sessions.SessionView `json:"sessions"`
}

// getUser answers a user and their active sessions.
func (s *Service) getUser(w http.ResponseWriter, r *http.Request) error {
	ctx := r.Context()
	t := tenancy.FromContext(ctx)
	u, err := s.findUser(r, t)
	if err != nil {
		return err
	}
	list, err := s.sessions.List(ctx, t, u.ID)
	if err != nil {
		return err
	}
	caller, _ := sessions.Caller(ctx)
	out := UserDetail{User: view(u, s.now().UTC()), Sessions: make([]sessions.SessionView, len(list))}
	for i, d := range list {
		out.Sessions[i] = sessions.SessionView{
			SessionID: d.ID, DeviceName: d.DeviceName, IP: d.IP, UA: d.UserAgent,
			CreatedAt: httpapi.Timestamp(d.CreatedAt), LastSeen: httpapi.Timestamp(d.LastSeen),
			Current: d.ID == caller.SessionID,
		}
	}
	return httpapi.WriteSuccess(w, r, http.StatusOK, CodeUserRetrieved, "User retrieved successfully.", out)
}

// patchRequest is the body of PATCH /auth/admin/users/{userId}.
type patchRequest struct {
	Role           *string `json:"role" validate:"omitempty,max=32"`
	Disabled       *bool   `json:"disabled"`
	RevokeSessions bool    `json:"revokeSessions"`
}

// UpdateResult is the data of USER_UPDATED.
type UpdateResult struct {
	User         UserView `json:"user"`
	RevokedCount int      `json:"revokedCount"`
}

// patchUser changes a user's role or disabled flag and may revoke their sessions. Disabling
// revokes every session at once (RevokeAllOfUser, so sidecars learn it from the feed); a new
// role reaches tokens at the next refresh, or at once with revokeSessions (the user logs in
// again).
func (s *Service) patchUser(w http.ResponseWriter, r *http.Request) error {
	var in patchRequest
	if err := s.decoder.Decode(r, &in); err != nil {
		return err
	}
	ctx := r.Context()
	t := tenancy.FromContext(ctx)
	if in.Role == nil && in.Disabled == nil && !in.RevokeSessions {
		return invalid("", "required", "give at least one of role, disabled and revokeSessions")
	}
	if in.Role != nil && !slices.Contains(t.Spec.Roles, *in.Role) {
		return invalid("role", "oneof", "role must be one of "+strings.Join(t.Spec.Roles, ", "))
	}
	caller, _ := sessions.Caller(ctx)
	userID := r.PathValue("userId")
	if userID == caller.UserID && (in.Disabled != nil && *in.Disabled || in.Role != nil && *in.Role != authserver.AdminRole) {
		s.record(ctx, audit.Event{Type: audit.TypeAdminSelfLockout, Outcome: audit.OutcomeFailure, Reason: "self_lockout", SubjectID: userID})
		return errSelfLockout()
	}
	u, err := s.findUser(r, t)
	if err != nil {
		return err
	}
	now := s.now().UTC()
	set := bson.D{{Key: "updatedAt", Value: now}}
	roleChanged := in.Role != nil && *in.Role != u.Role
	disabledChanged := in.Disabled != nil && *in.Disabled != u.Disabled
	if roleChanged {
		set = append(set, bson.E{Key: "role", Value: *in.Role})
	}
	if disabledChanged {
		set = append(set, bson.E{Key: "disabled", Value: *in.Disabled})
	}
	if roleChanged || disabledChanged {
		res, err := t.DB.Collection(tenantdb.Users).UpdateOne(ctx, bson.D{{Key: "_id", Value: u.ID}}, bson.D{{Key: "$set", Value: set}})
		if err != nil {
			return fmt.Errorf("admin: updating a user: %w", err)
		}
		if res.MatchedCount == 0 {
			return errUserNotFound(u.ID)
		}
		if err := s.keepAnAdmin(ctx, t, u, in); err != nil {
			return err
		}
	}
	if roleChanged {
		s.record(ctx, audit.Event{Type: audit.TypeRoleChanged, SubjectID: u.ID, Details: map[string]string{"from": u.Role, "to": *in.Role}})
		u.Role = *in.Role
	}
	revoked := 0
	switch {
	case in.Disabled != nil && *in.Disabled:
		// Even when already disabled: a session that slipped in meanwhile goes too.
		if revoked, err = s.sessions.RevokeAllOfUser(ctx, t, u.ID, sessions.ReasonUserDisabled, ""); err != nil {
			return err
		}
		if disabledChanged {
			s.record(ctx, audit.Event{Type: audit.TypeUserDisabled, SubjectID: u.ID, Details: map[string]string{"revokedCount": strconv.Itoa(revoked)}})
		}
	case in.RevokeSessions:
		if revoked, err = s.sessions.RevokeAllOfUser(ctx, t, u.ID, sessions.ReasonAdmin, ""); err != nil {
			return err
		}
		s.record(ctx, audit.Event{Type: audit.TypeSessionsRevoked, SubjectID: u.ID, Details: map[string]string{"revokedCount": strconv.Itoa(revoked)}})
	}
	if disabledChanged {
		u.Disabled = *in.Disabled
		if !u.Disabled {
			s.record(ctx, audit.Event{Type: audit.TypeUserEnabled, SubjectID: u.ID})
		}
	}
	if roleChanged || disabledChanged {
		u.UpdatedAt = now
	}
	return httpapi.WriteSuccess(w, r, http.StatusOK, CodeUserUpdated, "User updated successfully.",
		UpdateResult{User: view(u, now), RevokedCount: revoked})
}

// revokeSession ends one session of a user.
func (s *Service) revokeSession(w http.ResponseWriter, r *http.Request) error {
	ctx := r.Context()
	t := tenancy.FromContext(ctx)
	u, err := s.findUser(r, t)
	if err != nil {
		return err
	}
	sid := r.PathValue("sessionId")
	ok, err := s.sessions.Revoke(ctx, t, u.ID, sid, sessions.ReasonAdmin)
	if err != nil {
		return err
	}
	if !ok {
		if len(sid) > 64 {
			sid = sid[:64]
		}
		return httpapi.NewError(http.StatusNotFound, sessions.CodeSessionNotFound, "Session not found or already ended.").
			WithDetails(map[string]string{"sessionId": sid})
	}
	s.record(ctx, audit.Event{Type: audit.TypeSessionRevoked, SubjectID: u.ID, Details: map[string]string{"revokedSessionId": sid}})
	return httpapi.WriteSuccess(w, r, http.StatusOK, sessions.CodeSessionRevoked, "Session has been revoked successfully.",
		map[string]string{"sessionId": sid})
}

// listAudit pages through the tenant's audit trail, oldest first, or newest first with
// order=newest.
func (s *Service) listAudit(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	var newest bool
	switch q.Get("order") {
	case "", "oldest":
	case "newest":
		newest = true
	default:
		return invalid("order", "oneof", "order must be oldest or newest")
	}
	after := q.Get("after")
	if after != "" && !audit.ValidCursor(after) {
		return invalid("after", "cursor", "after must be the next cursor of a previous page")
	}
	limit, err := intParam(q, "limit", audit.DefaultLimit, 1, audit.MaxLimit)
	if err != nil {
		return err
	}
	userID, typ := q.Get("userId"), q.Get("type")
	if len(userID) > 128 {
		return invalid("userId", "max", "userId must be at most 128 characters")
	}
	if len(typ) > 64 {
		return invalid("type", "max", "type must be at most 64 characters")
	}
	ctx := r.Context()
	page, err := s.audit.List(ctx, tenancy.FromContext(ctx), audit.Query{After: after, Newest: newest, Limit: limit, UserID: userID, Type: typ})
	if err != nil {
		return err
	}
	return httpapi.WriteSuccess(w, r, http.StatusOK, CodeAuditRetrieved, "Audit events retrieved successfully.", page)
}

// findUser reads the user the route's {userId} names, or answers USER_NOT_FOUND.
func (s *Service) findUser(r *http.Request, t *tenancy.Tenant) (*identity.User, error) {
	id := r.PathValue("userId")
	if id == "" || len(id) > 128 {
		return nil, errUserNotFound(id)
	}
	u, err := identity.FindUser(r.Context(), t.DB, id)
	if errors.Is(err, identity.ErrUserNotFound) {
		return nil, errUserNotFound(id)
	}
	return u, err
}

// intParam reads an integer query parameter between lo and hi, def when absent.
func intParam(q url.Values, name string, def, lo, hi int) (int, error) {
	v := q.Get(name)
	if v == "" {
		return def, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < lo || n > hi {
		return 0, invalid(name, "range", fmt.Sprintf("%s must be an integer from %d to %d", name, lo, hi))
	}
	return n, nil
}

// keepAnAdmin undoes a change that took admin power from u (a demotion or a disable) when it
// left the tenant without an enabled admin. Each admin may change any other, so two admins
// demoting each other at once both pass the caller checks; counting after the write, and
// undoing one's own write, leaves at least one of them an admin whatever the interleaving
// (the last writer to count sees the other's write, and a write undone is counted by no one).
func (s *Service) keepAnAdmin(ctx context.Context, t *tenancy.Tenant, u *identity.User, in patchRequest) error {
	wasAdmin := u.Role == authserver.AdminRole && !u.Disabled
	staysAdmin := (in.Role == nil || *in.Role == authserver.AdminRole) && (in.Disabled == nil || !*in.Disabled)
	if !wasAdmin || staysAdmin {
		return nil
	}
	users := t.DB.Collection(tenantdb.Users)
	admins, err := users.CountDocuments(ctx, bson.D{{Key: "role", Value: authserver.AdminRole}, {Key: "disabled", Value: bson.D{{Key: "$ne", Value: true}}}})
	if err != nil {
		return fmt.Errorf("admin: counting admins: %w", err)
	}
	if admins > 0 {
		return nil
	}
	undo := bson.D{{Key: "role", Value: u.Role}, {Key: "disabled", Value: u.Disabled}}
	if _, err := users.UpdateOne(context.WithoutCancel(ctx), bson.D{{Key: "_id", Value: u.ID}}, bson.D{{Key: "$set", Value: undo}}); err != nil {
		return fmt.Errorf("admin: undoing the change of the last admin: %w", err)
	}
	s.record(ctx, audit.Event{Type: audit.TypeAdminSelfLockout, Outcome: audit.OutcomeFailure, Reason: "last_admin", SubjectID: u.ID})
	return httpapi.NewError(http.StatusForbidden, CodeAdminSelfLockout,
		"This would leave the tenant without an enabled admin; the change was not made.")
}
