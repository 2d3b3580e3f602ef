package main

import (
	"strings"
	"testing"
	"time"
)

func TestParseConfigReadsEnvironmentThenFlags(t *testing.T) {
	env := map[string]string{
		"AUTHMESH_TENANT_SOURCE":      "files",
		"AUTHMESH_PUBLIC_URL":         "https://auth.example.com",
		"AUTHMESH_MONGO_IDLE_TIMEOUT": "3m",
		"AUTHMESH_PUBLIC_ADDR":        ":1111",
		"POD_NAMESPACE":               "from-downward-api",
	}
	cfg, err := parseConfig([]string{"-public-addr", ":2222"}, func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ name, got, want string }{
		{"tenant source (env)", cfg.TenantSource, "files"},
		{"public URL (env)", cfg.PublicURL, "https://auth.example.com"},
		{"public addr (flag beats env)", cfg.PublicAddr, ":2222"},
		{"admin addr (default)", cfg.AdminAddr, ":9502"},
		{"namespace (POD_NAMESPACE)", cfg.Namespace, "from-downward-api"},
	} {
		if c.got != c.want {
			t.Errorf("%s: got %q, want %q", c.name, c.got, c.want)
		}
	}
	if cfg.MongoIdleTimeout != 3*time.Minute {
		t.Errorf("mongo idle timeout: got %s, want 3m", cfg.MongoIdleTimeout)
	}
}

func TestParseConfigRefusesBadInput(t *testing.T) {
	cases := map[string]struct {
		args []string
		env  map[string]string
		want string
	}{
		"bad env duration": {nil, map[string]string{"AUTHMESH_SHUTDOWN_TIMEOUT": "soon"}, "AUTHMESH_SHUTDOWN_TIMEOUT"},
		"unknown flag":     {[]string{"-no-such-flag"}, nil, "no-such-flag"},
		"stray argument":   {[]string{"serve"}, nil, "unexpected arguments"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			_, err := parseConfig(tc.args, func(k string) string { return tc.env[k] })
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want one mentioning %q", err, tc.want)
			}
		})
	}
}
