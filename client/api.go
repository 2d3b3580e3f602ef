package client

import (
	"context"
	"time"
)

// SignupRequest is the body of POST /auth/signup.
type SignupRequest struct {
	Username string `json:"username"`
	Email    string `json:"email"`
	Mobile   string `json:"mobile,omitempty"`
	Password string `json:"password"`
}

// User is a user as the API shows it.
type User struct {
	ID        string    `json:"id"`
	Username  string    `json:"username"`
	Email     string    `json:"email"`
	Mobile    string    `json:"mobile,omitempty"`
	Role      string    `json:"role"`
	CreatedAt time.Time `json:"createdAt"`
}

// TokenPair is what a login or a refresh answers with.
type TokenPair struct {
	AccessToken  string `json:"accessToken"`
	RefreshToken string `json:"refreshToken"`
	TokenType    string `json:"tokenType"`
	ExpiresIn    int64  `json:"expiresIn"`
	SessionID    string `json:"sessionId"`
}

// LoginResult is the answer of POST /auth/login: a pending login waiting for its emailed code
// (OTP_SENT: LoginID and ExpiresAt), or, when the tenant has switched codes off, the tokens
// themselves (LOGIN_SUCCESS: Tokens).
type LoginResult struct {
	LoginID   string
	ExpiresAt time.Time
	Tokens    *TokenPair
}

// Session is one entry of the caller's session list.
type Session struct {
	SessionID  string    `json:"sessionId"`
	DeviceName string    `json:"deviceName"`
	IP         string    `json:"ip"`
	UA         string    `json:"ua"`
	CreatedAt  time.Time `json:"createdAt"`
	LastSeen   time.Time `json:"lastSeen"`
	Current    bool      `json:"current"`
}

// Success codes of the typed methods.
const (
	CodeSignupSuccess      = "SIGNUP_SUCCESS"
	CodeOTPSent            = "OTP_SENT"
	CodeLoginSuccess       = "LOGIN_SUCCESS"
	CodeSessionsRetrieved  = "SESSIONS_RETRIEVED"
	CodeSessionRevoked     = "SESSION_REVOKED"
	CodeAllSessionsRevoked = "ALL_SESSIONS_REVOKED"
	CodeTokensRefreshed    = "TOKENS_REFRESHED"
)

// Signup registers a user (SIGNUP_SUCCESS).
func (c *Client) Signup(ctx context.Context, in SignupRequest) (*User, error) {
	var u User
	if _, err := c.Call(ctx, "POST", "/auth/signup", "", in, &u); err != nil {
		return nil, err
	}
	return &u, nil
}

// Login starts a login with a password.
func (c *Client) Login(ctx context.Context, usernameOrEmailOrMobile, password string) (*LoginResult, error) {
	var data struct {
		LoginID   string    `json:"loginId"`
		ExpiresAt time.Time `json:"expiresAt"`
		TokenPair
	}
	res, err := c.Call(ctx, "POST", "/auth/login", "", map[string]string{
		"usernameOrEmailOrMobile": usernameOrEmailOrMobile, "password": password,
	}, &data)
	if err != nil {
		return nil, err
	}
	out := &LoginResult{LoginID: data.LoginID, ExpiresAt: data.ExpiresAt}
	if res.Code == CodeLoginSuccess {
		pair := data.TokenPair
		out.Tokens = &pair
	}
	return out, nil
}

// Verify completes a login with the emailed code (LOGIN_SUCCESS).
func (c *Client) Verify(ctx context.Context, loginID, otp string) (*TokenPair, error) {
	var pair TokenPair
	if _, err := c.Call(ctx, "POST", "/auth/login/verify", "", map[string]string{"loginId": loginID, "otp": otp}, &pair); err != nil {
		return nil, err
	}
	return &pair, nil
}

// Sessions lists the caller's active sessions, newest first (SESSIONS_RETRIEVED).
func (c *Client) Sessions(ctx context.Context, accessToken string) ([]Session, error) {
	var list []Session
	if _, err := c.Call(ctx, "GET", "/auth/sessions", accessToken, nil, &list); err != nil {
		return nil, err
	}
	return list, nil
}

// LogoutSession revokes one of the caller's sessions (SESSION_REVOKED).
func (c *Client) LogoutSession(ctx context.Context, accessToken, sessionID string) error {
	_, err := c.Call(ctx, "POST", "/auth/logout/session", accessToken, map[string]string{"sessionId": sessionID}, nil)
	return err
}

// LogoutAll revokes every session of the caller, the current one included, and returns how
// many it revoked (ALL_SESSIONS_REVOKED).
func (c *Client) LogoutAll(ctx context.Context, accessToken string) (int, error) {
	var data struct {
		RevokedCount int `json:"revokedCount"`
	}
	if _, err := c.Call(ctx, "POST", "/auth/logout/all", accessToken, nil, &data); err != nil {
		return 0, err
	}
	return data.RevokedCount, nil
}

// Refresh exchanges a refresh token for a new pair (TOKENS_REFRESHED). The old refresh token
// is spent: presenting it again ends the session (REFRESH_TOKEN_REUSED).
func (c *Client) Refresh(ctx context.Context, refreshToken string) (*TokenPair, error) {
	var pair TokenPair
	if _, err := c.Call(ctx, "POST", "/auth/refresh", "", map[string]string{"refreshToken": refreshToken}, &pair); err != nil {
		return nil, err
	}
	return &pair, nil
}
