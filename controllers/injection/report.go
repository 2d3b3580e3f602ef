package injection

import (
	"fmt"
	"reflect"
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
// claimed sidecar is compared with the one sidecar() builds for the same upstream port and
// audience, in what decides enforcement: the image and its entrypoint, the flags, the mounts,
// and the volumes it reads its policy and its token from (a ConfigMap posing as the
// annotations would set any policy). Fields the API server defaults are not compared.
func forgedSidecar(pod *corev1.Pod, opts *Options) string {
	i := slices.IndexFunc(pod.Spec.InitContainers, func(c corev1.Container) bool { return c.Name == SidecarName })
	if i < 0 {
		return "it has no " + SidecarName + " init container"
	}
	c := pod.Spec.InitContainers[i]
	var p plan
	for _, arg := range c.Args {
		if v, ok := strings.CutPrefix(arg, "-upstream=http://127.0.0.1:"); ok {
			port, _ := strconv.ParseInt(v, 10, 32)
			p.port = int32(port)
		}
		if v, ok := strings.CutPrefix(arg, "-audience="); ok {
			p.audience = v
		}
	}
	want := sidecar(p, "", opts)
	switch {
	case c.Image != want.Image:
		return fmt.Sprintf("its image is %q, not %q", c.Image, want.Image)
	case len(c.Command) > 0:
		return "it replaces the image's entrypoint"
	case c.RestartPolicy == nil || *c.RestartPolicy != *want.RestartPolicy:
		return "it is not a sidecar (restartPolicy Always)"
	case !slices.Equal(c.Args, want.Args):
		return "its flags are not the injector's"
	case !slices.EqualFunc(c.VolumeMounts, want.VolumeMounts, func(got, want corev1.VolumeMount) bool {
		return got.Name == want.Name && got.MountPath == want.MountPath && got.ReadOnly == want.ReadOnly &&
			got.SubPath == "" && got.SubPathExpr == ""
	}):
		return "its volume mounts are not the injector's"
	}
	for _, w := range volumes(opts) {
		for _, v := range pod.Spec.Volumes {
			if v.Name == w.Name && !reflect.DeepEqual(withoutDefaultModes(v.VolumeSource), w.VolumeSource) {
				return "its volume " + w.Name + " is not the injector's"
			}
		}
	}
	return ""
}

// withoutDefaultModes returns src without the file modes the API server fills in.
func withoutDefaultModes(src corev1.VolumeSource) corev1.VolumeSource {
	out := *src.DeepCopy()
	if out.DownwardAPI != nil {
		out.DownwardAPI.DefaultMode = nil
	}
	if out.Projected != nil {
		out.Projected.DefaultMode = nil
	}
	return out
}
