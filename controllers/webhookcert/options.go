package webhookcert

import (
	"errors"
	"fmt"
	"net"
	"time"

	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/utils/clock"
)

// Options say where the certificates live, who they are for, and when they rotate.
type Options struct {
	// Namespace and SecretName locate the Secret holding the CA and the serving certificate:
	// the manager's namespace.
	Namespace  string
	SecretName string
	// ServiceName is the webhook Service; the certificate names <svc>, <svc>.<ns>,
	// <svc>.<ns>.svc and <svc>.<ns>.svc.cluster.local unless Hosts is set.
	ServiceName string
	// Hosts, when set, are the certificate's names instead (DNS names or IP addresses).
	Hosts []string
	// WebhookConfigurations are the MutatingWebhookConfigurations whose every webhook gets
	// the CA bundle as its clientConfig.caBundle.
	WebhookConfigurations []string

	// CAValidity is the CA's lifetime; a new CA is made CARenewBefore its end, and the old one
	// stays in the bundle until it expires. CertValidity is the serving certificate's lifetime;
	// it is reissued CertRenewBefore its end. CARenewBefore must exceed CertValidity, so every
	// serving certificate expires before the CA that signed it leaves the bundle, and a new CA is
	// in every caBundle long before a serving certificate signed by it is served.
	CAValidity      time.Duration
	CARenewBefore   time.Duration
	CertValidity    time.Duration
	CertRenewBefore time.Duration
	// ResyncInterval is how often the Secret and the caBundles are checked again anyway (another
	// replica may have rotated; someone may have re-applied the webhook configuration).
	ResyncInterval time.Duration

	// Clock tells the time; nil means the real clock.
	Clock clock.Clock
}

// DefaultOptions: Secret authmesh-webhook-cert for Service authmesh-webhook-service in
// authmesh-system, patching authmesh-sidecar-injector; a CA of 5 years renewed a year before
// its end, serving certificates of 90 days renewed 30 days before theirs; a check every minute.
func DefaultOptions() Options {
	return Options{
		Namespace:             "authmesh-system",
		SecretName:            "authmesh-webhook-cert",
		ServiceName:           "authmesh-webhook-service",
		WebhookConfigurations: []string{"authmesh-sidecar-injector"},
		CAValidity:            5 * 365 * 24 * time.Hour,
		CARenewBefore:         365 * 24 * time.Hour,
		CertValidity:          90 * 24 * time.Hour,
		CertRenewBefore:       30 * 24 * time.Hour,
		ResyncInterval:        time.Minute,
	}
}

// hosts are the names the serving certificate carries.
func (o *Options) hosts() []string {
	if len(o.Hosts) > 0 {
		return o.Hosts
	}
	svc, ns := o.ServiceName, o.Namespace
	return []string{svc + "." + ns + ".svc", svc, svc + "." + ns, svc + "." + ns + ".svc.cluster.local"}
}

// Validate reports every problem at once.
func (o *Options) Validate() error {
	var errs []error
	add := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if msgs := validation.IsDNS1123Label(o.Namespace); len(msgs) > 0 {
		add("webhook certificate namespace %q: %v", o.Namespace, msgs)
	}
	if msgs := validation.IsDNS1123Subdomain(o.SecretName); len(msgs) > 0 {
		add("webhook certificate Secret name %q: %v", o.SecretName, msgs)
	}
	if len(o.Hosts) == 0 {
		if msgs := validation.IsDNS1035Label(o.ServiceName); len(msgs) > 0 {
			add("webhook Service name %q: %v", o.ServiceName, msgs)
		}
	}
	for _, h := range o.Hosts {
		if net.ParseIP(h) == nil && len(validation.IsDNS1123Subdomain(h)) > 0 {
			add("webhook certificate host %q is neither an IP address nor a DNS name", h)
		}
	}
	if len(o.WebhookConfigurations) == 0 {
		add("name at least one MutatingWebhookConfiguration to receive the CA bundle")
	}
	if o.CertRenewBefore <= 0 || o.CertValidity <= o.CertRenewBefore {
		add("serving certificate validity %s and renew-before %s: want 0 < renew-before < validity", o.CertValidity, o.CertRenewBefore)
	}
	if o.CARenewBefore <= o.CertValidity || o.CAValidity <= o.CARenewBefore {
		add("CA validity %s and renew-before %s: want serving certificate validity (%s) < renew-before < validity", o.CAValidity, o.CARenewBefore, o.CertValidity)
	}
	if o.ResyncInterval <= 0 {
		add("resync interval %s: want a positive duration", o.ResyncInterval)
	}
	return errors.Join(errs...)
}
