package injection

import (
	"slices"

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
