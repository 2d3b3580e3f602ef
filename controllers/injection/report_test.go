package injection

import (
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
)

func TestDecide(t *testing.T) {
	protected := []string{"authmesh-system", "kube-system"}
	sidecarContainer := corev1.Container{Name: SidecarName, RestartPolicy: ptr.To(corev1.ContainerRestartPolicyAlways)}
	pod := func(label string, status string, initContainers ...corev1.Container) *corev1.Pod {
		p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p", Labels: map[string]string{}, Annotations: map[string]string{}}}
		if label != "" {
			p.Labels[LabelInject] = label
		}
		if status != "" {
			p.Annotations[AnnotationStatus] = status
		}
		p.Spec.InitContainers = initContainers
		return p
	}
	tests := map[string]struct {
		pod       *corev1.Pod
		namespace string
		trigger   Trigger
		want      Report
	}{
		"pod label true":                       {pod("true", ""), "shop", TriggerPod, Report{Inject: true, Reason: ReasonPodOptIn}},
		"pod label true, namespace entry":      {pod("true", ""), "shop", TriggerNamespace, Report{Inject: true, Reason: ReasonPodOptIn}},
		"namespace opted in, no pod label":     {pod("", ""), "shop", TriggerNamespace, Report{Inject: true, Reason: ReasonNamespaceOptIn}},
		"namespace opted in, other pod label":  {pod("yes", ""), "shop", TriggerNamespace, Report{Inject: true, Reason: ReasonNamespaceOptIn}},
		"opted out in an opted-in namespace":   {pod("false", ""), "shop", TriggerNamespace, Report{Reason: ReasonPodOptedOut}},
		"opted out, pod entry":                 {pod("false", ""), "shop", TriggerPod, Report{Reason: ReasonPodOptedOut}},
		"no label, pod entry":                  {pod("", ""), "shop", TriggerPod, Report{Reason: ReasonNotOptedIn}},
		"label value other than true":          {pod("True", ""), "shop", TriggerPod, Report{Reason: ReasonNotOptedIn}},
		"kube-system":                          {pod("true", ""), "kube-system", TriggerPod, Report{Reason: ReasonProtectedNamespace}},
		"the manager's namespace":              {pod("", ""), "authmesh-system", TriggerNamespace, Report{Reason: ReasonProtectedNamespace}},
		"already injected":                     {pod("true", StatusInjected, sidecarContainer), "shop", TriggerPod, Report{Reason: ReasonAlreadyInjected}},
		"already injected, then opted out":     {pod("false", StatusInjected, sidecarContainer), "shop", TriggerPod, Report{Reason: ReasonAlreadyInjected}},
		"status annotation without a sidecar":  {pod("true", StatusInjected), "shop", TriggerPod, Report{Inject: true, Reason: ReasonPodOptIn}},
		"sidecar without the status":           {pod("true", "", sidecarContainer), "shop", TriggerPod, Report{Inject: true, Reason: ReasonPodOptIn}},
		"status annotation with another value": {pod("true", "skipped", sidecarContainer), "shop", TriggerPod, Report{Inject: true, Reason: ReasonPodOptIn}},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			if got := Decide(tc.pod, tc.namespace, tc.trigger, protected); got != tc.want {
				t.Errorf("got %+v, want %+v", got, tc.want)
			}
		})
	}
}
