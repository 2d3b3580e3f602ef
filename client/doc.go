// Package client is a typed Go client for the auth server's public HTTP API: the tutorial's
// message patterns (signup, login, verify, sessions, logout, refresh) as methods that return
// the decoded envelope or an error carrying its code.
package client
