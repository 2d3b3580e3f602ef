package main

import (
	"flag"
	"io"
	"strings"
	"testing"
)

func parse(t *testing.T, args ...string) *options {
	t.Helper()
	for _, env := range []string{"AUTHMESH_NAMESPACE", "AUTHMESH_AUTH_SERVER_URL", "AUTHMESH_MONGODB_URI", "AUTHMESH_MONGODB_URI_SECRET", "AUTHMESH_SIDECAR_FEED_URL", "AUTHMESH_SIDECAR_AUTH_URL", "AUTHMESH_SIDECAR_IMAGE"} {
		t.Setenv(env, "")
	}
	var o options
	fs := flag.NewFlagSet("controller", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	o.addFlags(fs)
	if err := fs.Parse(args); err != nil {
		t.Fatal(err)
	}
	return &o
}

func TestOptionsValidate(t *testing.T) {
	valid := []string{"-auth-server-url", "https://auth.example.com", "-mongodb-uri", "mongodb://db:27017", "-sidecar-feed-url", "http://authserver.authmesh-system.svc:3503"}
	cases := map[string]struct {
		args []string
		want []string // every problem reported; none means valid
	}{
		"minimal":                      {args: valid},
		"URI from a Secret":            {args: []string{"-auth-server-url", "http://localhost:3502/", "-mongodb-uri-secret", "platform-mongo", "-webhook-port", "0"}},
		"injection without a feed URL": {args: []string{"-auth-server-url", "https://a.example", "-mongodb-uri", "mongodb://db"}, want: []string{"feed URL is required"}},
		"bad sidecar resources":        {args: append(valid, "-sidecar-memory", "lots", "-webhook-port", "70000"), want: []string{"-sidecar-memory", "-webhook-port 70000"}},
		"nothing set":                  {want: []string{"-auth-server-url (or AUTHMESH_AUTH_SERVER_URL) is required", "one of -mongodb-uri"}},
		"both URI sources":             {args: append(valid, "-mongodb-uri-secret", "x"), want: []string{"both set"}},
		"issuer with a query":          {args: []string{"-auth-server-url", "https://auth.example.com/?a=b", "-mongodb-uri", "mongodb://db"}, want: []string{"without query"}},
		"relative issuer":              {args: []string{"-auth-server-url", "auth.example.com", "-mongodb-uri", "mongodb://db"}, want: []string{"absolute http(s) URL"}},
		"not a MongoDB URI":            {args: []string{"-auth-server-url", "https://a.example", "-mongodb-uri", "postgres://db"}, want: []string{"mongodb:// or mongodb+srv://"}},
		"everything wrong at once": {
			args: append(valid, "-namespace", "Bad_NS", "-mongodb-timeout", "0s", "-recheck-interval", "-1s", "-leader-election-id", "Not Valid", "-v", "-2"),
			want: []string{"-namespace", "-mongodb-timeout", "-recheck-interval", "-leader-election-id", "-v -2"},
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			err := parse(t, tc.args...).validate()
			if len(tc.want) == 0 {
				if err != nil {
					t.Fatalf("validate() = %v; want no error", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("validate() = nil; want errors mentioning %q", tc.want)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("validate() = %q\nwant it to mention %q", err, w)
				}
			}
		})
	}
}

func TestOptionsDefaults(t *testing.T) {
	o := parse(t)
	if o.Namespace != "authmesh-system" || o.MetricsAddr != ":8080" || o.ProbeAddr != ":8081" || !o.LeaderElect ||
		o.LeaderElectionID != "authmesh-controller.authmesh.dev" {
		t.Errorf("defaults = %+v; want namespace authmesh-system, metrics :8080, probes :8081, leader election on", o)
	}
	t.Setenv("AUTHMESH_MONGODB_URI", "mongodb://from-env")
	var fromEnv options
	fs := flag.NewFlagSet("controller", flag.ContinueOnError)
	fromEnv.addFlags(fs)
	if err := fs.Parse(nil); err != nil {
		t.Fatal(err)
	}
	if fromEnv.MongoURI != "mongodb://from-env" {
		t.Errorf("MongoURI = %q; want it from AUTHMESH_MONGODB_URI", fromEnv.MongoURI)
	}
}
