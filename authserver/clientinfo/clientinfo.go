package clientinfo

import (
	"context"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/mileusna/useragent"
)

// Resolver finds a request's client IP, trusting X-Forwarded-For from the given proxies only.
type Resolver struct {
	trusted []netip.Prefix
}

// NewResolver returns a Resolver that trusts X-Forwarded-For from peers in trusted.
func NewResolver(trusted []netip.Prefix) *Resolver {
	return &Resolver{trusted: append([]netip.Prefix(nil), trusted...)}
}

type ipKey struct{}

type uaKey struct{}

// Middleware resolves the client IP of each request and keeps it for IP, and keeps the
// User-Agent too, so code that has only the request's context can say who called
// (FromContext).
func (res *Resolver) Middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ip := res.Resolve(r)
		ctx := context.WithValue(r.Context(), ipKey{}, ip)
		ctx = context.WithValue(ctx, uaKey{}, UserAgent(r))
		next.ServeHTTP(w, r.WithContext(ctx))
	})
}

// FromContext returns the client IP and User-Agent (truncated as UserAgent does) the
// middleware kept in a request's context; both are "" outside a request that passed through it.
func FromContext(ctx context.Context) (ip, userAgent string) {
	ip, _ = ctx.Value(ipKey{}).(string)
	userAgent, _ = ctx.Value(uaKey{}).(string)
	return ip, userAgent
}

// IP returns the client IP the middleware resolved for r, or r's peer address when r did not
// pass through it. It is "" when neither is known.
func IP(r *http.Request) string {
	if ip, ok := r.Context().Value(ipKey{}).(string); ok {
		return ip
	}
	return peer(r).String()
}

// Resolve returns r's client IP as text ("" when the peer address is unknown).
func (res *Resolver) Resolve(r *http.Request) string {
	addr := peer(r)
	if !addr.IsValid() {
		return ""
	}
	if !res.isTrusted(addr) {
		return addr.String()
	}
	hops := forwardedFor(r.Header.Values("X-Forwarded-For"))
	for i := len(hops) - 1; i >= 0; i-- {
		hop, err := netip.ParseAddr(strings.TrimSpace(hops[i]))
		if err != nil {
			break // garbage: keep what the last trusted proxy saw
		}
		addr = hop.Unmap()
		if !res.isTrusted(addr) {
			break
		}
	}
	return addr.String()
}

func (res *Resolver) isTrusted(a netip.Addr) bool {
	for _, p := range res.trusted {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

func forwardedFor(values []string) []string {
	var hops []string
	for _, v := range values {
		for h := range strings.SplitSeq(v, ",") {
			hops = append(hops, h)
		}
	}
	return hops
}

func peer(r *http.Request) netip.Addr {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	a, err := netip.ParseAddr(host)
	if err != nil {
		return netip.Addr{}
	}
	return a.Unmap()
}

// maxUserAgent bounds the user agent kept with a session.
const maxUserAgent = 512

// UserAgent returns r's User-Agent, truncated to a length worth storing, as valid UTF-8 (a
// header may carry any bytes, and a cut may fall inside a character).
func UserAgent(r *http.Request) string {
	return clip(r.UserAgent(), maxUserAgent)
}

// DeviceName names the device a User-Agent describes: "<browser> <major version> on <OS>",
// or what of that is known; "Unknown device" when nothing is.
func DeviceName(ua string) string {
	if strings.TrimSpace(ua) == "" {
		return "Unknown device"
	}
	p := useragent.Parse(ua)
	name := p.Name
	if name != "" && p.VersionNo.Major > 0 {
		name += " " + strconv.Itoa(p.VersionNo.Major)
	}
	switch {
	case name != "" && p.OS != "":
		return clip(name+" on "+p.OS, maxDeviceName)
	case name != "":
		return clip(name, maxDeviceName)
	case p.OS != "":
		return clip("Unknown browser on "+p.OS, maxDeviceName)
	}
	return "Unknown device"
}

// maxDeviceName bounds a device name, in bytes.
const maxDeviceName = 64

// clip returns s as valid UTF-8 (each invalid byte sequence becomes U+FFFD) in at most n bytes,
// cut between characters.
func clip(s string, n int) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}
