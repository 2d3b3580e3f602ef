package injection

import (
	"fmt"
	"slices"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
)

// Trigger says which entry of the MutatingWebhookConfiguration called: the one selecting pods
// by their own label, or the one selecting the pods of opted-in namespaces. The API server
// only calls an entry whose selectors match, so the trigger is what the injector knows about
// the namespace's label without reading the Namespace.
type Trigger string

const (
	// TriggerPod: the pod is labelled authmesh.dev/inject=true (PathPodOptIn).
	TriggerPod Trigger = "pod"
	// TriggerNamespace: the pod's namespace is labelled authmesh.dev/inject=enabled
	// (PathNamespaceOptIn).
	TriggerNamespace Trigger = "namespace"
)

// Report answers "should this pod be injected, and if not, why". It looks at labels,
// annotations and container names only; whether an opted-in pod can be protected as it asks
// (tenant, port, policy) is validate's job.
type Report struct {
	Inject bool
	Reason Reason
}

// Decide reports whether pod, being created in namespace, should be injected. The checks run
// in this order, and the first that applies decides:
//
//  1. a protected namespace is never injected (ReasonProtectedNamespace);
//  2. a pod carrying the status annotation and the sidecar is left alone (ReasonAlreadyInjected);
//     the annotation alone is not enough, so it cannot be used to skip injection;
//  3. the pod label authmesh.dev/inject=false opts out, even in an opted-in namespace
//     (ReasonPodOptedOut);
//  4. the pod label authmesh.dev/inject=true (ReasonPodOptIn), or an opted-in namespace
//     (ReasonNamespaceOptIn), injects; anything else is ReasonNotOptedIn.
func Decide(pod *corev1.Pod, namespace string, trigger Trigger, protected []string) Report {
	switch {
	case slices.Contains(protected, namespace):
		return Report{Reason: ReasonProtectedNamespace}
	case AlreadyInjected(pod):
		return Report{Reason: ReasonAlreadyInjected}
	case pod.Labels[LabelInject] == InjectPodDisabled:
		return Report{Reason: ReasonPodOptedOut}
	case pod.Labels[LabelInject] == InjectPodEnabled:
		return Report{Inject: true, Reason: ReasonPodOptIn}
	case trigger == TriggerNamespace:
		return Report{Inject: true, Reason: ReasonNamespaceOptIn}
	default:
		return Report{Reason: ReasonNotOptedIn}
	}
}

// AlreadyInjected reports whether pod carries both the status annotation and the sidecar.
func AlreadyInjected(pod *corev1.Pod) bool {
	if pod.Annotations[AnnotationStatus] != StatusInjected {
		return false
	}
	return slices.ContainsFunc(pod.Spec.InitContainers, func(c corev1.Container) bool { return c.Name == SidecarName })
}

// forgedSidecar says what makes the sidecar of a pod that claims to be injected other than
// the injector's, or "". Whoever creates a pod can write the status annotation and a container
// named authmesh-sidecar; skipping injection for them must not leave the pod unprotected. The
// check covers what decides enforcement: the image and its entrypoint, the flags the injector
// sets, and the volumes the sidecar reads its policy and its token from (a ConfigMap posing as
// the annotations would set any policy). Fields the API server defaults are not compared.
func forgedSidecar(pod *corev1.Pod, opts *Options) string {
	i := slices.IndexFunc(pod.Spec.InitContainers, func(c corev1.Container) bool { return c.Name == SidecarName })
	if i < 0 {
		return "it has no " + SidecarName + " init container"
	}
	c := pod.Spec.InitContainers[i]
	switch {
	case c.Image != opts.Image:
		return fmt.Sprintf("its image is %q, not %q", c.Image, opts.Image)
	case len(c.Command) > 0:
		return "it replaces the image's entrypoint"
	case c.RestartPolicy == nil || *c.RestartPolicy != corev1.ContainerRestartPolicyAlways:
		return "it is not a sidecar (restartPolicy Always)"
	}
	want := map[string]bool{
		"-listen=:" + strconv.Itoa(ProxyPort):       true,
		"-admin-listen=:" + strconv.Itoa(AdminPort): true,
		"-annotations-file=" + AnnotationsFile:      true,
		"-auth-url=" + opts.AuthURL:                 true,
		"-feed-url=" + opts.FeedURL:                 true,
		"-internal-token-file=" + InternalTokenFile: true,
	}
	if opts.IssuerURL != "" {
		want["-issuer-url="+opts.IssuerURL] = true
	}
	seen, upstreams := 0, 0
	for _, arg := range c.Args {
		switch {
		case want[arg]:
			seen++
		case strings.HasPrefix(arg, "-upstream=http://127.0.0.1:"):
			upstreams++
		case strings.HasPrefix(arg, "-audience="):
		default:
			return fmt.Sprintf("its flag %q is not one the injector sets", arg)
		}
	}
	if seen != len(want) || upstreams != 1 || len(c.Args) != len(slices.Compact(slices.Sorted(slices.Values(c.Args)))) {
		return "its flags are not the injector's"
	}
	mounts := map[string]string{PodInfoVolume: PodInfoDir, TokenVolume: TokenDir}
	if len(c.VolumeMounts) != len(mounts) {
		return "its volume mounts are not the injector's"
	}
	for _, m := range c.VolumeMounts {
		if mounts[m.Name] != m.MountPath || !m.ReadOnly || m.SubPath != "" || m.SubPathExpr != "" {
			return fmt.Sprintf("its mount of %q is not the injector's", m.Name)
		}
	}
	for _, v := range pod.Spec.Volumes {
		switch v.Name {
		case PodInfoVolume:
			d := v.DownwardAPI
			if d == nil || len(d.Items) != 1 || d.Items[0].Path != "annotations" || d.Items[0].FieldRef == nil ||
				d.Items[0].FieldRef.FieldPath != "metadata.annotations" || v.Projected != nil || v.ConfigMap != nil || v.Secret != nil || v.EmptyDir != nil {
				return "its volume " + PodInfoVolume + " is not the pod's own annotations"
			}
		case TokenVolume:
			p := v.Projected
			if p == nil || len(p.Sources) != 1 || p.Sources[0].ServiceAccountToken == nil ||
				p.Sources[0].ServiceAccountToken.Audience != opts.InternalTokenAudience || p.Sources[0].ServiceAccountToken.Path != "token" {
				return "its volume " + TokenVolume + " is not the injector's token"
			}
		}
	}
	return ""
}
