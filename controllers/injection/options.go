package injection

import (
	"errors"
	"fmt"
	"net/url"
	"slices"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/util/validation"
)

// Options configure the injector: what the sidecar looks like and where it finds the auth
// server. cmd/controller fills them from flags; DefaultOptions gives every default and Validate
// reports every problem at once.
type Options struct {
	// Image is the sidecar's image; ImagePullPolicy how the kubelet pulls it.
	Image           string
	ImagePullPolicy corev1.PullPolicy

	// Resources are the sidecar's requests and limits unless a pod's annotations override them
	// (AnnotationSidecarCPU and friends), each override at most MaxCPU or MaxMemory.
	Resources corev1.ResourceRequirements
	MaxCPU    resource.Quantity
	MaxMemory resource.Quantity

	// AuthURL is the auth server's public API, where the sidecar fetches tenants' JWKS
	// (-auth-url). IssuerURL is the auth server's public URL as it appears in tokens' iss
	// (-issuer-url), when it differs from AuthURL (for example when AuthURL is the in-cluster
	// Service and IssuerURL the public hostname). FeedURL is the internal API (port 3503) with
	// the revocation feed (-feed-url).
	AuthURL   string
	IssuerURL string
	FeedURL   string

	// InternalTokenAudience is the audience of the projected ServiceAccount token the sidecar
	// presents to the internal API (-internal-token-file); the auth server's TokenReview must ask
	// for the same audience. InternalTokenExpiration is that token's lifetime (the kubelet
	// renews it at 80%); at least 10 minutes.
	InternalTokenAudience   string
	InternalTokenExpiration time.Duration

	// RunAsUser is the sidecar's UID (and GID); it runs as non-root with a read-only root
	// filesystem whatever the pod's own security context says.
	RunAsUser int64

	// Namespace is the manager's own namespace; like ExcludedNamespaces (default kube-system),
	// it is never injected, whatever its labels or its pods' labels say.
	Namespace          string
	ExcludedNamespaces []string

	// Registerer receives the injector's metrics; nil means controller-runtime's
	// metrics.Registry, which the manager serves on its metrics endpoint.
	Registerer prometheus.Registerer
}

// DefaultOptions returns Options with every default filled in. AuthURL and FeedURL have no
// default.
func DefaultOptions() Options {
	return Options{
		Image:           "authmesh/sidecar:dev",
		ImagePullPolicy: corev1.PullIfNotPresent,
		Resources: corev1.ResourceRequirements{
			Requests: corev1.ResourceList{
				corev1.ResourceCPU:    resource.MustParse("50m"),
				corev1.ResourceMemory: resource.MustParse("64Mi"),
			},
			Limits: corev1.ResourceList{
				corev1.ResourceMemory: resource.MustParse("256Mi"),
			},
		},
		MaxCPU:                  resource.MustParse("2"),
		MaxMemory:               resource.MustParse("1Gi"),
		InternalTokenAudience:   "authmesh-internal",
		InternalTokenExpiration: time.Hour,
		RunAsUser:               65532,
		Namespace:               "authmesh-system",
		ExcludedNamespaces:      []string{"kube-system"},
	}
}

// Validate reports every problem with o at once.
func (o *Options) Validate() error {
	var errs []error
	add := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if o.Image == "" {
		add("the sidecar image is required")
	}
	switch o.ImagePullPolicy {
	case corev1.PullAlways, corev1.PullIfNotPresent, corev1.PullNever:
	default:
		add("image pull policy %q: want Always, IfNotPresent or Never", o.ImagePullPolicy)
	}
	for _, res := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
		maxQ := o.max(res)
		if maxQ.Sign() <= 0 {
			add("the maximum sidecar %s must be positive", res)
		}
		req, hasReq := o.Resources.Requests[res]
		limit, hasLimit := o.Resources.Limits[res]
		if hasReq && (req.Sign() <= 0 || req.Cmp(maxQ) > 0) {
			add("the sidecar's default %s request %s: want more than 0 and at most the maximum %s", res, req.String(), maxQ.String())
		}
		if hasLimit && (limit.Sign() <= 0 || limit.Cmp(maxQ) > 0) {
			add("the sidecar's default %s limit %s: want more than 0 and at most the maximum %s", res, limit.String(), maxQ.String())
		}
		if hasReq && hasLimit && req.Cmp(limit) > 0 {
			add("the sidecar's default %s request %s is above its limit %s", res, req.String(), limit.String())
		}
	}
	for _, u := range []struct {
		name, value string
		required    bool
	}{{"auth server URL", o.AuthURL, true}, {"issuer URL", o.IssuerURL, false}, {"revocation feed URL", o.FeedURL, true}} {
		name := u.name
		if u.value == "" {
			if u.required {
				add("the %s is required", name)
			}
			continue
		}
		u := u.value
		if p, err := url.Parse(u); err != nil || (p.Scheme != "http" && p.Scheme != "https") || p.Host == "" || p.RawQuery != "" || p.Fragment != "" {
			add("%s %q: want an absolute http(s) URL without query or fragment", name, u)
		}
	}
	if o.InternalTokenAudience == "" {
		add("the internal API token audience is required")
	}
	if o.InternalTokenExpiration < 10*time.Minute || o.InternalTokenExpiration > 48*time.Hour {
		add("internal API token expiration %s: want between 10m and 48h", o.InternalTokenExpiration)
	}
	if o.RunAsUser <= 0 {
		add("the sidecar's UID %d: want a non-root UID (more than 0)", o.RunAsUser)
	}
	for _, ns := range append([]string{o.Namespace}, o.ExcludedNamespaces...) {
		if msgs := validation.IsDNS1123Label(ns); len(msgs) > 0 {
			add("namespace %q: %v", ns, msgs)
		}
	}
	return errors.Join(errs...)
}

// ProtectedNamespaces are the namespaces never injected: Namespace and ExcludedNamespaces.
func (o *Options) ProtectedNamespaces() []string {
	out := append([]string{o.Namespace}, o.ExcludedNamespaces...)
	slices.Sort(out)
	return slices.Compact(out)
}

func (o *Options) max(res corev1.ResourceName) resource.Quantity {
	if res == corev1.ResourceCPU {
		return o.MaxCPU
	}
	return o.MaxMemory
}
