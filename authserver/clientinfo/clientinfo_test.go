package clientinfo

import (
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestResolve(t *testing.T) {
	res := NewResolver([]netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("::1/128")})
	cases := map[string]struct {
		remote string
		xff    []string
		want   string
	}{
		"direct client":                     {"203.0.113.7:5555", nil, "203.0.113.7"},
		"untrusted peer's XFF is ignored":   {"203.0.113.7:5555", []string{"198.51.100.1"}, "203.0.113.7"},
		"trusted proxy":                     {"10.1.2.3:80", []string{"198.51.100.1"}, "198.51.100.1"},
		"client prepends a forged hop":      {"10.1.2.3:80", []string{"1.1.1.1, 198.51.100.1"}, "198.51.100.1"},
		"chain of trusted proxies":          {"10.1.2.3:80", []string{"198.51.100.1, 10.9.9.9", "10.8.8.8"}, "198.51.100.1"},
		"garbage keeps the proxy's view":    {"10.1.2.3:80", []string{"198.51.100.1, not-an-ip"}, "10.1.2.3"},
		"trusted proxy without XFF":         {"10.1.2.3:80", nil, "10.1.2.3"},
		"IPv6 loopback proxy":               {"[::1]:80", []string{"2001:db8::5"}, "2001:db8::5"},
		"IPv4-mapped IPv6 peer":             {"[::ffff:203.0.113.9]:1", nil, "203.0.113.9"},
		"everything trusted: leftmost wins": {"10.1.2.3:80", []string{"10.4.4.4, 10.5.5.5"}, "10.4.4.4"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			r := httptest.NewRequest("GET", "/", nil)
			r.RemoteAddr = tc.remote
			for _, v := range tc.xff {
				r.Header.Add("X-Forwarded-For", v)
			}
			var got string
			res.Middleware(http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) { got = IP(r) })).ServeHTTP(httptest.NewRecorder(), r)
			if got != tc.want {
				t.Fatalf("got %q, want %q", got, tc.want)
			}
		})
	}
	r := httptest.NewRequest("GET", "/", nil)
	r.RemoteAddr = "192.0.2.1:9"
	if got := IP(r); got != "192.0.2.1" {
		t.Fatalf("IP outside the middleware = %q, want the peer", got)
	}
}

func TestDeviceName(t *testing.T) {
	cases := map[string]string{
		"Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36":                   "Chrome 120 on macOS",
		"Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:121.0) Gecko/20100101 Firefox/121.0":                                                        "Firefox 121 on Windows",
		"Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.1 Mobile/15E148 Safari/604.1": "Safari 17 on iOS",
		"": "Unknown device",
	}
	for ua, want := range cases {
		if got := DeviceName(ua); got != want {
			t.Errorf("DeviceName(%.40q) = %q, want %q", ua, got, want)
		}
	}
}

func TestUserAgentKeepsCharactersWhole(t *testing.T) {
	r := httptest.NewRequest("GET", "/", nil)
	r.Header.Set("User-Agent", strings.Repeat("a", maxUserAgent-1)+"é") // the cut falls inside é
	if got := UserAgent(r); got != strings.Repeat("a", maxUserAgent-1) {
		t.Fatalf("UserAgent kept %d bytes ending %q; want the %d whole characters before é", len(got), got[len(got)-3:], maxUserAgent-1)
	}
	r.Header.Set("User-Agent", "curl/8\xff\xfe")
	if got := UserAgent(r); got != "curl/8\uFFFD" {
		t.Fatalf("UserAgent = %q; want the invalid bytes replaced", got)
	}
}

// FuzzClientInfo feeds the attacker-controlled headers (User-Agent, X-Forwarded-For) and peer
// address through everything that reads them: no panic, and what is stored or shown is valid
// UTF-8 within its bound, and the resolved IP is one of the addresses given.
func FuzzClientInfo(f *testing.F) {
	f.Add("Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:121.0) Gecko/20100101 Firefox/121.0", "198.51.100.1, 10.9.9.9", "10.1.2.3:80")
	f.Add(strings.Repeat("é", 300), "not-an-ip", "[::1]:80")
	f.Add("\xff\xfe Safari/604.1 (iPhone; CPU iPhone OS 17_1 like Mac OS X)", "2001:db8::5,,", "[::ffff:203.0.113.9]:1")
	f.Add("", ",", "garbage")
	res := NewResolver([]netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("::1/128")})
	f.Fuzz(func(t *testing.T, ua, xff, remote string) {
		r := httptest.NewRequest("GET", "/", nil)
		r.RemoteAddr = remote
		r.Header["User-Agent"] = []string{ua}
		r.Header["X-Forwarded-For"] = []string{xff}

		stored := UserAgent(r)
		if !utf8.ValidString(stored) || len(stored) > maxUserAgent {
			t.Fatalf("UserAgent(%q) = %q: want valid UTF-8 of at most %d bytes", ua, stored, maxUserAgent)
		}
		if ua != "" && utf8.ValidString(ua) && len(ua) <= maxUserAgent && stored != ua {
			t.Fatalf("UserAgent changed a short valid %q to %q", ua, stored)
		}
		name := DeviceName(stored)
		if name == "" || !utf8.ValidString(name) || len(name) > maxDeviceName {
			t.Fatalf("DeviceName(%q) = %q: want a non-empty valid UTF-8 name of at most %d bytes", stored, name, maxDeviceName)
		}

		ip := res.Resolve(r)
		if ip == "" {
			return // no usable peer address
		}
		given := strings.Split(xff, ",")
		if host, _, err := net.SplitHostPort(remote); err == nil {
			given = append(given, host)
		}
		given = append(given, remote)
		if !slices.ContainsFunc(given, func(s string) bool {
			a, err := netip.ParseAddr(strings.TrimSpace(s))
			return err == nil && a.Unmap().String() == ip
		}) {
			t.Fatalf("Resolve(peer %q, X-Forwarded-For %q) = %q: want one of the addresses given", remote, xff, ip)
		}
	})
}
