// Command benchproxy is the lean side of make bench: the trivial upstream app, the tuned bare
// httputil.ReverseProxy baseline, and a stand-in auth server (one tenant's JWKS and an empty
// revocation feed). It lives apart from hack/bench so the baseline proxy runs in a small
// binary, as a real bare proxy would, not in one that links the whole auth server.
//
//	benchproxy upstream ADDR
//	benchproxy bare ADDR UPSTREAM_URL
//	benchproxy authstub ADDR      (prints a valid access token on its first output line)
package main

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"strconv"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/golang-jwt/jwt/v5"

	"github.com/authmesh/authmesh/guard"
	"github.com/authmesh/authmesh/internal/keys"
)

func main() {
	var err error
	switch {
	case len(os.Args) == 3 && os.Args[1] == "upstream":
		err = serveUpstream(os.Args[2])
	case len(os.Args) == 4 && os.Args[1] == "bare":
		err = serveBare(os.Args[2], os.Args[3])
	case len(os.Args) == 3 && os.Args[1] == "authstub":
		err = serveAuthStub(os.Args[2])
	default:
		err = fmt.Errorf("usage: benchproxy upstream ADDR | bare ADDR UPSTREAM_URL | authstub ADDR")
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "benchproxy:", err)
		os.Exit(1)
	}
}

// serveUpstream is the trivial app behind both proxies.
func serveUpstream(addr string) error {
	body := []byte(`{"ok":true}`)
	return http.ListenAndServe(addr, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(body)
	}))
}

// serveBare is the baseline: httputil.ReverseProxy with a pool of 256 idle upstream connections.
func serveBare(addr, upstream string) error {
	target, err := url.Parse(upstream)
	if err != nil {
		return err
	}
	proxy := &httputil.ReverseProxy{
		Rewrite:   func(pr *httputil.ProxyRequest) { pr.SetURL(target); pr.SetXForwarded() },
		Transport: &http.Transport{MaxIdleConns: 256, MaxIdleConnsPerHost: 256, IdleConnTimeout: 90 * time.Second},
	}
	return http.ListenAndServe(addr, proxy)
}

// serveAuthStub publishes one tenant's JWKS and an empty revocation feed, and prints a valid
// access token of that tenant on its first output line.
func serveAuthStub(addr string) error {
	k, err := keys.Generate(keys.EdDSA)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	base := "http://" + ln.Addr().String()
	now := time.Now()
	tok := jwt.NewWithClaims(jwt.SigningMethodEdDSA, guard.Claims{
		RegisteredClaims: jwt.RegisteredClaims{
			Issuer: base + "/t/bench", Audience: jwt.ClaimStrings{"authmesh"}, Subject: "bench-user",
			IssuedAt: jwt.NewNumericDate(now), ExpiresAt: jwt.NewNumericDate(now.Add(2 * time.Hour)), ID: "bench",
		},
		TenantID: "bench", Role: "user", SessionID: "bench-session",
	})
	tok.Header["kid"], tok.Header["typ"] = k.KeyID, guard.AccessTokenType
	signed, err := tok.SignedString(k.Key)
	if err != nil {
		return err
	}
	jwks, err := json.Marshal(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{k.Public()}})
	if err != nil {
		return err
	}
	fmt.Println(signed)
	mux := http.NewServeMux()
	mux.HandleFunc("GET /t/bench/.well-known/jwks.json", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write(jwks) })
	mux.HandleFunc("GET /internal/v1/tenants/bench/revocations", func(w http.ResponseWriter, r *http.Request) {
		wait, _ := strconv.Atoi(r.URL.Query().Get("wait"))
		select {
		case <-time.After(time.Duration(wait) * time.Second):
		case <-r.Context().Done():
		}
		_, _ = w.Write([]byte(`{"seq":0,"reset":false,"revoked":[]}`))
	})
	return http.Serve(ln, mux)
}
