package client

import (
	"context"
	"net/url"
	"strconv"
	"time"
)

// Success codes of account management and the admin API.
const (
	CodePasswordChanged   = "PASSWORD_CHANGED"
	CodePasswordResetSent = "PASSWORD_RESET_SENT"
	CodePasswordReset     = "PASSWORD_RESET"
	CodeResetTokenValid   = "RESET_TOKEN_VALID"
	CodeUsersRetrieved    = "USERS_RETRIEVED"
	CodeUserRetrieved     = "USER_RETRIEVED"
	CodeUserUpdated       = "USER_UPDATED"
	CodeAuditRetrieved    = "AUDIT_RETRIEVED"
)

// ChangePassword sets a new password for the caller, who proves the current one; every
// other session of theirs is revoked, and how many is returned (PASSWORD_CHANGED). A wrong
// current password is INVALID_CREDENTIALS and counts toward the account's lockout.
func (c *Client) ChangePassword(ctx context.Context, accessToken, currentPassword, newPassword string) (int, error) {
	var data struct {
		RevokedCount int `json:"revokedCount"`
	}
	_, err := c.Call(ctx, "POST", "/auth/password/change", accessToken, map[string]string{
		"currentPassword": currentPassword, "newPassword": newPassword,
	}, &data)
	return data.RevokedCount, err
}

// ForgotPassword asks for a reset link to be mailed to the account's email
// (PASSWORD_RESET_SENT, whether or not the account exists).
func (c *Client) ForgotPassword(ctx context.Context, usernameOrEmailOrMobile string) error {
	_, err := c.Call(ctx, "POST", "/auth/password/forgot", "", map[string]string{"usernameOrEmailOrMobile": usernameOrEmailOrMobile}, nil)
	return err
}

// CheckResetToken reports when a mailed reset token expires, without using it
// (RESET_TOKEN_VALID; INVALID_RESET_TOKEN when it is no longer good).
func (c *Client) CheckResetToken(ctx context.Context, token string) (time.Time, error) {
	var data struct {
		ExpiresAt time.Time `json:"expiresAt"`
	}
	_, err := c.Call(ctx, "GET", "/auth/password/reset?token="+url.QueryEscape(token), "", nil, &data)
	return data.ExpiresAt, err
}

// ResetPassword sets a new password with a mailed reset token (PASSWORD_RESET): every
// session of the user is revoked and a lockout cleared. The token works once.
func (c *Client) ResetPassword(ctx context.Context, token, newPassword string) error {
	_, err := c.Call(ctx, "POST", "/auth/password/reset", "", map[string]string{"token": token, "newPassword": newPassword}, nil)
	return err
}

// AdminUser is a user as the admin API shows it.
type AdminUser struct {
	ID          string     `json:"id"`
	Username    string     `json:"username"`
	Email       string     `json:"email"`
	Mobile      string     `json:"mobile,omitempty"`
	Role        string     `json:"role"`
	Disabled    bool       `json:"disabled"`
	Locked      bool       `json:"locked"`
	LockedUntil *time.Time `json:"lockedUntil,omitempty"`
	CreatedAt   time.Time  `json:"createdAt"`
	UpdatedAt   time.Time  `json:"updatedAt"`
}

// UserPage is a page of the user list.
type UserPage struct {
	Items    []AdminUser `json:"items"`
	Page     int         `json:"page"`
	PageSize int         `json:"pageSize"`
	Total    int64       `json:"total"`
}

// ListUsersOptions selects a page of users; zero values take the server's defaults.
type ListUsersOptions struct {
	// Query keeps users whose username or email starts with it (case-insensitive).
	Query    string
	Page     int
	PageSize int
}

// ListUsers pages through the tenant's users, newest first (admin; USERS_RETRIEVED).
func (c *Client) ListUsers(ctx context.Context, accessToken string, o ListUsersOptions) (*UserPage, error) {
	q := url.Values{}
	if o.Query != "" {
		q.Set("query", o.Query)
	}
	if o.Page > 0 {
		q.Set("page", strconv.Itoa(o.Page))
	}
	if o.PageSize > 0 {
		q.Set("pageSize", strconv.Itoa(o.PageSize))
	}
	path := "/auth/admin/users"
	if len(q) > 0 {
		path += "?" + q.Encode()
	}
	var page UserPage
	if _, err := c.Call(ctx, "GET", path, accessToken, nil, &page); err != nil {
		return nil, err
	}
	return &page, nil
}

// UserDetail is a user with their active sessions.
type UserDetail struct {
	User     AdminUser `json:"user"`
	Sessions []Session `json:"sessions"`
}

// GetUser returns a user and their active sessions (admin; USER_RETRIEVED, or USER_NOT_FOUND).
func (c *Client) GetUser(ctx context.Context, accessToken, userID string) (*UserDetail, error) {
	var d UserDetail
	if _, err := c.Call(ctx, "GET", "/auth/admin/users/"+url.PathEscape(userID), accessToken, nil, &d); err != nil {
		return nil, err
	}
	return &d, nil
}

// UserUpdate is what UpdateUser changes; nil fields stay as they are.
type UserUpdate struct {
	Role           *string `json:"role,omitempty"`
	Disabled       *bool   `json:"disabled,omitempty"`
	RevokeSessions bool    `json:"revokeSessions,omitempty"`
}

// UpdateResult is the answer of UpdateUser.
type UpdateResult struct {
	User         AdminUser `json:"user"`
	RevokedCount int       `json:"revokedCount"`
}

// UpdateUser changes a user's role or disabled flag and may end their sessions (admin;
// USER_UPDATED). Disabling ends every session at once. An admin cannot disable or demote
// themself (ADMIN_SELF_LOCKOUT).
func (c *Client) UpdateUser(ctx context.Context, accessToken, userID string, u UserUpdate) (*UpdateResult, error) {
	var res UpdateResult
	if _, err := c.Call(ctx, "PATCH", "/auth/admin/users/"+url.PathEscape(userID), accessToken, u, &res); err != nil {
		return nil, err
	}
	return &res, nil
}

// RevokeUserSession ends one session of a user (admin; SESSION_REVOKED, or SESSION_NOT_FOUND).
func (c *Client) RevokeUserSession(ctx context.Context, accessToken, userID, sessionID string) error {
	_, err := c.Call(ctx, "DELETE", "/auth/admin/users/"+url.PathEscape(userID)+"/sessions/"+url.PathEscape(sessionID), accessToken, nil, nil)
	return err
}

// AuditEvent is one entry of the tenant's audit trail.
type AuditEvent struct {
	ID        string            `json:"id"`
	At        time.Time         `json:"at"`
	Type      string            `json:"type"`
	Outcome   string            `json:"outcome"`
	Reason    string            `json:"reason,omitempty"`
	ActorID   string            `json:"actorId,omitempty"`
	SubjectID string            `json:"subjectId,omitempty"`
	SessionID string            `json:"sessionId,omitempty"`
	IP        string            `json:"ip,omitempty"`
	UserAgent string            `json:"userAgent,omitempty"`
	RequestID string            `json:"requestId,omitempty"`
	Details   map[string]string `json:"details,omitempty"`
}

// AuditPage is a page of the audit trail, oldest first; Next is the After of the following
// page, "" when no more events follow now.
type AuditPage struct {
	Items []AuditEvent `json:"items"`
	Next  string       `json:"next"`
}

// AuditQuery selects a page of the audit trail; zero values take the server's defaults.
type AuditQuery struct {
	After  string
	Limit  int
	UserID string // events whose actor or subject is this user
	Type   string
	// Newest pages from the newest event back in time (order=newest); After then continues
	// with older events.
	Newest bool
}

// Audit returns a page of the tenant's audit trail (admin; AUDIT_RETRIEVED).
func (c *Client) Audit(ctx context.Context, accessToken string, q AuditQuery) (*AuditPage, error) {
	v := url.Values{}
	for k, s := range map[string]string{"after": q.After, "userId": q.UserID, "type": q.Type} {
		if s != "" {
			v.Set(k, s)
		}
	}
	if q.Limit > 0 {
		v.Set("limit", strconv.Itoa(q.Limit))
	}
	if q.Newest {
		v.Set("order", "newest")
	}
	path := "/auth/admin/audit"
	if len(v) > 0 {
		path += "?" + v.Encode()
	}
	var page AuditPage
	if _, err := c.Call(ctx, "GET", path, accessToken, nil, &page); err != nil {
		return nil, err
	}
	return &page, nil
}
