// Package client is a typed Go client for the auth server's public HTTP API: the tutorial's
// message patterns (signup, login, verify, sessions, logout one and all, refresh) as methods
// of a Client bound to one server and one tenant (the x-tenant-id header). Each method
// returns the decoded data of the success envelope, or an *APIError carrying the HTTP status
// and the envelope's code, message and details:
//
//	c := client.New("http://localhost:3502", "darmist1")
//	pending, err := c.Login(ctx, "testuser", "secret123")
//	pair, err := c.Verify(ctx, pending.LoginID, otp)
//	list, err := c.Sessions(ctx, pair.AccessToken)
//	pair, err = c.Refresh(ctx, pair.RefreshToken)
//	if client.ErrorCode(err) == "REFRESH_TOKEN_REUSED" { ... log in again ... }
//
// Account management and the admin API have methods too: ChangePassword, ForgotPassword,
// CheckResetToken and ResetPassword; for admins ListUsers, GetUser, UpdateUser,
// RevokeUserSession and Audit (a page of the tenant's audit trail; pass Next as After to go
// on).
//
// Call reaches any other enveloped route. The client keeps no tokens: callers pass the access
// token to bearer routes and store the refresh token themselves.
//
// It depends on the standard library only, so any Go program can use it.
package client
