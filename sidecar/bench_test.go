package sidecar

import (
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"testing"
)

// BenchmarkSidecarRequest measures one authorised request through the sidecar over loopback
// (client, sidecar and app in one process); hack/bench compares it with a bare proxy.
func BenchmarkSidecarRequest(b *testing.B) {
	is := newIssuer(b, "darmist1")
	sc := startSidecar(b, testConfig(is, echoApp(b), "darmist1"))
	tok := is.token(tokenOpts{tenant: "darmist1", role: "admin"})
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			req, _ := http.NewRequest("GET", sc.url+"/admin/x", nil)
			req.Header.Set("Authorization", "Bearer "+tok)
			resp, err := client.Do(req)
			if err != nil {
				b.Error(err)
				return
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 {
				b.Errorf("status %d", resp.StatusCode)
				return
			}
		}
	})
}

// BenchmarkBareProxyRequest is the baseline of BenchmarkSidecarRequest: a tuned bare
// httputil.ReverseProxy (256 idle upstream connections) in the same setup.
func BenchmarkBareProxyRequest(b *testing.B) {
	app := echoApp(b)
	target, _ := url.Parse(app.URL)
	proxy := httptest.NewServer(&httputil.ReverseProxy{
		Rewrite:   func(pr *httputil.ProxyRequest) { pr.SetURL(target); pr.SetXForwarded() },
		Transport: &http.Transport{MaxIdleConns: 256, MaxIdleConnsPerHost: 256},
	})
	b.Cleanup(proxy.Close)
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			req, _ := http.NewRequest("GET", proxy.URL+"/admin/x", nil)
			req.Header.Set("Authorization", "Bearer x")
			resp, err := client.Do(req)
			if err != nil {
				b.Error(err)
				return
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
	})
}
