package authserver_test

import (
	"strings"
	"testing"
	"time"

	"github.com/authmesh/authmesh/authserver"
)

func TestSessionsConfigValidate(t *testing.T) {
	cases := map[string]struct {
		change func(c *authserver.Config)
		want   string // "" for valid
	}{
		"defaults":                       {func(*authserver.Config) {}, ""},
		"none on IPv6 loopback":          {func(c *authserver.Config) { c.InternalAddr = "[::1]:3503" }, ""},
		"none on localhost":              {func(c *authserver.Config) { c.InternalAddr = "localhost:3503" }, ""},
		"none on every interface":        {func(c *authserver.Config) { c.InternalAddr = ":3503" }, "requires a loopback internal-addr"},
		"none on a pod IP":               {func(c *authserver.Config) { c.InternalAddr = "10.0.0.7:3503" }, "requires a loopback internal-addr"},
		"tokenreview on every interface": {func(c *authserver.Config) { c.InternalAddr = ":3503"; c.Sessions.InternalAuth = "tokenreview" }, ""},
		"unknown mode":                   {func(c *authserver.Config) { c.Sessions.InternalAuth = "mtls" }, `internal-auth "mtls"`},
		"no audience": {func(c *authserver.Config) {
			c.Sessions.InternalAuth = "tokenreview"
			c.Sessions.InternalAudience = " "
		}, "internal-audience is required"},
		"bad allowed entry": {func(c *authserver.Config) {
			c.Sessions.InternalAuth = "tokenreview"
			c.Sessions.InternalAllowed = []string{"default"}
		}, "internal-allowed"},
		"poll too fast":      {func(c *authserver.Config) { c.Sessions.FeedPollInterval = time.Millisecond }, "revocation-poll-interval"},
		"long poll too long": {func(c *authserver.Config) { c.Sessions.FeedMaxWait = time.Hour }, "revocation-max-wait"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			c := authserver.DefaultConfig()
			c.TenantSource = authserver.SourceKubernetes
			tc.change(&c)
			err := c.Validate()
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("got %v, want valid", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Fatalf("got %v, want an error mentioning %q", err, tc.want)
			}
		})
	}
}
