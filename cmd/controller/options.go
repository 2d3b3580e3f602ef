package main

import (
	"errors"
	"flag"
	"fmt"
	"net/url"
	"os"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/util/validation"
)

// options is the controller's configuration: flags, each with an environment fallback where
// a deployment is likely to set it from a Secret or the downward API.
type options struct {
	Namespace        string
	AuthServerURL    string
	MongoURI         string
	MongoURISecret   string
	MongoTimeout     time.Duration
	OperationTimeout time.Duration
	RecheckInterval  time.Duration
	MetricsAddr      string
	ProbeAddr        string
	LeaderElect      bool
	LeaderElectionID string
	Verbosity        int
}

func (o *options) addFlags(fs *flag.FlagSet) {
	fs.StringVar(&o.Namespace, "namespace", envOr("AUTHMESH_NAMESPACE", "authmesh-system"),
		"namespace of every Secret the controller reads and writes, and of its leader-election lease (env AUTHMESH_NAMESPACE)")
	fs.StringVar(&o.AuthServerURL, "auth-server-url", os.Getenv("AUTHMESH_AUTH_SERVER_URL"),
		"the auth server's public URL; a tenant's issuer is <url>/t/<tenant> (env AUTHMESH_AUTH_SERVER_URL)")
	fs.StringVar(&o.MongoURI, "mongodb-uri", os.Getenv("AUTHMESH_MONGODB_URI"),
		"connection string of the platform MongoDB (env AUTHMESH_MONGODB_URI); or use -mongodb-uri-secret")
	fs.StringVar(&o.MongoURISecret, "mongodb-uri-secret", os.Getenv("AUTHMESH_MONGODB_URI_SECRET"),
		"name of a Secret in -namespace whose key \"uri\" is the platform MongoDB's connection string (env AUTHMESH_MONGODB_URI_SECRET)")
	fs.DurationVar(&o.MongoTimeout, "mongodb-timeout", 5*time.Second,
		"how long to look for a reachable MongoDB server before reporting it unreachable")
	fs.DurationVar(&o.OperationTimeout, "operation-timeout", 30*time.Second, "bound on the database work of one reconcile")
	fs.DurationVar(&o.RecheckInterval, "recheck-interval", 5*time.Minute,
		"re-check a healthy Tenant's database this often (0 disables)")
	fs.StringVar(&o.MetricsAddr, "metrics-bind-address", ":8080", "address of the Prometheus /metrics endpoint (0 disables)")
	fs.StringVar(&o.ProbeAddr, "health-probe-bind-address", ":8081", "address of /healthz and /readyz")
	fs.BoolVar(&o.LeaderElect, "leader-elect", true, "run the controllers only while holding the leader-election lease")
	fs.StringVar(&o.LeaderElectionID, "leader-election-id", "authmesh-controller.authmesh.dev", "name of the leader-election lease")
	fs.IntVar(&o.Verbosity, "v", 0, "log verbosity: 0 info, 1 and up debug")
}

// validate returns every problem at once.
func (o *options) validate() error {
	var errs []error
	if msgs := validation.IsDNS1123Label(o.Namespace); len(msgs) > 0 {
		errs = append(errs, fmt.Errorf("-namespace %q: %s", o.Namespace, strings.Join(msgs, "; ")))
	}
	if u, err := url.Parse(o.AuthServerURL); o.AuthServerURL == "" {
		errs = append(errs, errors.New("-auth-server-url (or AUTHMESH_AUTH_SERVER_URL) is required: the issuer of every tenant's tokens derives from it"))
	} else if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
		errs = append(errs, fmt.Errorf("-auth-server-url %q: want an absolute http(s) URL without query or fragment", o.AuthServerURL))
	}
	switch {
	case o.MongoURI == "" && o.MongoURISecret == "":
		errs = append(errs, errors.New("one of -mongodb-uri (AUTHMESH_MONGODB_URI) or -mongodb-uri-secret (AUTHMESH_MONGODB_URI_SECRET) is required"))
	case o.MongoURI != "" && o.MongoURISecret != "":
		errs = append(errs, errors.New("-mongodb-uri and -mongodb-uri-secret are both set; choose one"))
	case o.MongoURI != "" && !strings.HasPrefix(o.MongoURI, "mongodb://") && !strings.HasPrefix(o.MongoURI, "mongodb+srv://"):
		errs = append(errs, errors.New("-mongodb-uri: want a mongodb:// or mongodb+srv:// connection string"))
	case o.MongoURISecret != "" && len(validation.IsDNS1123Subdomain(o.MongoURISecret)) > 0:
		errs = append(errs, fmt.Errorf("-mongodb-uri-secret %q is not a valid Secret name", o.MongoURISecret))
	}
	if o.MongoTimeout <= 0 {
		errs = append(errs, fmt.Errorf("-mongodb-timeout %s: want a positive duration", o.MongoTimeout))
	}
	if o.OperationTimeout < o.MongoTimeout {
		errs = append(errs, fmt.Errorf("-operation-timeout %s: want at least -mongodb-timeout (%s)", o.OperationTimeout, o.MongoTimeout))
	}
	if o.RecheckInterval < 0 {
		errs = append(errs, fmt.Errorf("-recheck-interval %s: want 0 (off) or a positive duration", o.RecheckInterval))
	}
	if o.LeaderElect && len(validation.IsDNS1123Subdomain(o.LeaderElectionID)) > 0 {
		errs = append(errs, fmt.Errorf("-leader-election-id %q is not a valid lease name", o.LeaderElectionID))
	}
	if o.Verbosity < 0 {
		errs = append(errs, fmt.Errorf("-v %d: want 0 or more", o.Verbosity))
	}
	return errors.Join(errs...)
}

func envOr(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}
