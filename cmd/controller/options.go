package main

import (
	"cmp"
	"errors"
	"flag"
	"fmt"
	"net/url"
	"os"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/util/validation"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"

	"github.com/authmesh/authmesh/controllers/injection"
	"github.com/authmesh/authmesh/controllers/webhookcert"
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
	MaxConcurrent    int
	MetricsAddr      string
	ProbeAddr        string
	LeaderElect      bool
	LeaderElectionID string
	Verbosity        int

	// The sidecar injection webhook.
	WebhookPort           int
	WebhookSelfSigned     bool
	WebhookCertDir        string
	WebhookCertSecret     string
	WebhookService        string
	WebhookConfiguration  string
	SidecarImage          string
	SidecarPullPolicy     string
	SidecarCPU            string
	SidecarMemory         string
	SidecarCPULimit       string
	SidecarMemoryLimit    string
	SidecarMaxCPU         string
	SidecarMaxMemory      string
	SidecarAuthURL        string
	SidecarFeedURL        string
	InternalTokenAudience string
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
	fs.IntVar(&o.MaxConcurrent, "max-concurrent-reconciles", 4,
		"Tenants reconciled at once (one Tenant is never reconciled twice at once)")
	fs.StringVar(&o.MetricsAddr, "metrics-bind-address", ":8080", "address of the Prometheus /metrics endpoint (0 disables)")
	fs.StringVar(&o.ProbeAddr, "health-probe-bind-address", ":8081", "address of /healthz and /readyz")
	fs.BoolVar(&o.LeaderElect, "leader-elect", true, "run the controllers only while holding the leader-election lease")
	fs.StringVar(&o.LeaderElectionID, "leader-election-id", "authmesh-controller.authmesh.dev", "name of the leader-election lease")
	fs.IntVar(&o.Verbosity, "v", 0, "log verbosity: 0 info, 1 and up debug")

	fs.IntVar(&o.WebhookPort, "webhook-port", 9443, "port of the sidecar injection webhook (0 disables injection)")
	fs.BoolVar(&o.WebhookSelfSigned, "webhook-self-signed", true,
		"manage the webhook's CA and serving certificate in a Secret and patch caBundle; false: use -webhook-cert-dir (cert-manager)")
	fs.StringVar(&o.WebhookCertDir, "webhook-cert-dir", "/tmp/k8s-webhook-server/serving-certs", "serving certificate directory when not self-signed")
	fs.StringVar(&o.WebhookCertSecret, "webhook-cert-secret", "authmesh-webhook-cert", "Secret in -namespace holding the self-managed webhook certificates")
	fs.StringVar(&o.WebhookService, "webhook-service", "authmesh-webhook-service", "Service in -namespace in front of the webhook")
	fs.StringVar(&o.WebhookConfiguration, "webhook-configuration", "authmesh-sidecar-injector", "MutatingWebhookConfiguration whose caBundle is patched")
	fs.StringVar(&o.SidecarImage, "sidecar-image", envOr("AUTHMESH_SIDECAR_IMAGE", "authmesh/sidecar:dev"), "image of the injected sidecar (env AUTHMESH_SIDECAR_IMAGE)")
	fs.StringVar(&o.SidecarPullPolicy, "sidecar-image-pull-policy", "IfNotPresent", "pull policy of the sidecar image")
	fs.StringVar(&o.SidecarCPU, "sidecar-cpu", "50m", "the sidecar's CPU request")
	fs.StringVar(&o.SidecarMemory, "sidecar-memory", "64Mi", "the sidecar's memory request")
	fs.StringVar(&o.SidecarCPULimit, "sidecar-cpu-limit", "", "the sidecar's CPU limit (empty: none)")
	fs.StringVar(&o.SidecarMemoryLimit, "sidecar-memory-limit", "256Mi", "the sidecar's memory limit")
	fs.StringVar(&o.SidecarMaxCPU, "sidecar-max-cpu", "2", "most CPU a pod's annotations may give its sidecar")
	fs.StringVar(&o.SidecarMaxMemory, "sidecar-max-memory", "1Gi", "most memory a pod's annotations may give its sidecar")
	fs.StringVar(&o.SidecarAuthURL, "sidecar-auth-url", os.Getenv("AUTHMESH_SIDECAR_AUTH_URL"),
		"the auth server's public API as sidecars reach it, e.g. http://authmesh-authserver.authmesh-system.svc:3502 (default -auth-server-url; env AUTHMESH_SIDECAR_AUTH_URL)")
	fs.StringVar(&o.SidecarFeedURL, "sidecar-feed-url", os.Getenv("AUTHMESH_SIDECAR_FEED_URL"),
		"the auth server's internal API as sidecars reach it, e.g. http://authmesh-authserver.authmesh-system.svc:3503 (env AUTHMESH_SIDECAR_FEED_URL)")
	fs.StringVar(&o.InternalTokenAudience, "internal-token-audience", "authmesh-internal",
		"audience of the ServiceAccount token sidecars present to the internal API")
}

// injectionOptions builds the sidecar injector's options from the flags.
func (o *options) injectionOptions() (injection.Options, error) {
	io := injection.DefaultOptions()
	var errs []error
	quantity := func(flagName, value string) (resource.Quantity, bool) {
		if value == "" {
			return resource.Quantity{}, false
		}
		q, err := resource.ParseQuantity(value)
		if err != nil {
			errs = append(errs, fmt.Errorf("-%s %q: %w", flagName, value, err))
			return resource.Quantity{}, false
		}
		return q, true
	}
	io.Resources = corev1.ResourceRequirements{Requests: corev1.ResourceList{}, Limits: corev1.ResourceList{}}
	for _, q := range []struct {
		flag, value string
		list        corev1.ResourceList
		name        corev1.ResourceName
	}{
		{"sidecar-cpu", o.SidecarCPU, io.Resources.Requests, corev1.ResourceCPU},
		{"sidecar-memory", o.SidecarMemory, io.Resources.Requests, corev1.ResourceMemory},
		{"sidecar-cpu-limit", o.SidecarCPULimit, io.Resources.Limits, corev1.ResourceCPU},
		{"sidecar-memory-limit", o.SidecarMemoryLimit, io.Resources.Limits, corev1.ResourceMemory},
	} {
		if v, ok := quantity(q.flag, q.value); ok {
			q.list[q.name] = v
		}
	}
	if v, ok := quantity("sidecar-max-cpu", o.SidecarMaxCPU); ok {
		io.MaxCPU = v
	}
	if v, ok := quantity("sidecar-max-memory", o.SidecarMaxMemory); ok {
		io.MaxMemory = v
	}
	io.Image, io.ImagePullPolicy = o.SidecarImage, corev1.PullPolicy(o.SidecarPullPolicy)
	io.AuthURL = cmp.Or(o.SidecarAuthURL, o.AuthServerURL)
	io.IssuerURL = o.AuthServerURL // tokens' iss is <auth-server-url>/t/<tenant>
	io.FeedURL = o.SidecarFeedURL
	io.InternalTokenAudience = o.InternalTokenAudience
	io.Namespace = o.Namespace
	io.Registerer = ctrlmetrics.Registry
	return io, errors.Join(append(errs, io.Validate())...)
}

// webhookCertOptions builds the certificate rotator's options from the flags.
func (o *options) webhookCertOptions() webhookcert.Options {
	co := webhookcert.DefaultOptions()
	co.Namespace, co.SecretName, co.ServiceName = o.Namespace, o.WebhookCertSecret, o.WebhookService
	co.WebhookConfigurations = []string{o.WebhookConfiguration}
	return co
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
	if o.MaxConcurrent < 1 || o.MaxConcurrent > 64 {
		errs = append(errs, fmt.Errorf("-max-concurrent-reconciles %d: want 1 to 64", o.MaxConcurrent))
	}
	if o.LeaderElect && len(validation.IsDNS1123Subdomain(o.LeaderElectionID)) > 0 {
		errs = append(errs, fmt.Errorf("-leader-election-id %q is not a valid lease name", o.LeaderElectionID))
	}
	if o.Verbosity < 0 {
		errs = append(errs, fmt.Errorf("-v %d: want 0 or more", o.Verbosity))
	}
	if o.WebhookPort < 0 || o.WebhookPort > 65535 {
		errs = append(errs, fmt.Errorf("-webhook-port %d: want 0 (off) or a port", o.WebhookPort))
	}
	if o.WebhookPort > 0 {
		if _, err := o.injectionOptions(); err != nil {
			errs = append(errs, err)
		}
		if o.WebhookSelfSigned {
			co := o.webhookCertOptions()
			if err := co.Validate(); err != nil {
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
}

func envOr(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}
