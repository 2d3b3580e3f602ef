// Package clientinfo owns what the auth server believes about the client of a request: its IP
// address and a readable name of its device.
//
// IP: the peer address of the connection, unless the peer is one of the configured trusted
// proxies; then X-Forwarded-For is read from the right, skipping trusted proxies, and the first
// address that is not a trusted proxy is the client (a client cannot forge its way past a
// proxy that appends what it saw). Without trusted proxies X-Forwarded-For is ignored.
// Resolver.Middleware resolves the address once per request and keeps it in the request
// context, where IP finds it; IP falls back to the peer address outside the middleware. The
// middleware keeps the (truncated) User-Agent too, so code that has only the request's context,
// such as the audit trail, finds both with FromContext.
//
// Device names come from the User-Agent through github.com/mileusna/useragent, e.g.
// "Chrome 120 on macOS", "Safari 17 on iOS", "curl 8"; they are for people reading their
// session list, never for security decisions.
package clientinfo
