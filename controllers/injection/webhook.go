package injection

import (
	"context"
	"fmt"
	"net/http"
	"strings"

	jsonpatch "gomodules.xyz/jsonpatch/v2"
	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/events"
	"sigs.k8s.io/controller-runtime/pkg/client"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"
)

// Injector is the admission handler behind both webhook entries. It decides (Decide), checks
// that an opted-in pod can be protected (validate) and builds the patch (buildPatch); it then
// counts the outcome and records an Event for the pod's owner. It never writes to the API
// server, so dry-run requests are answered the same way, without Events or counts.
type Injector struct {
	Options Options
	// Tenants reads Tenants (the manager's cached client).
	Tenants client.Reader
	Decoder admission.Decoder
	// Recorder and Metrics may be nil.
	Recorder events.EventRecorder
	Metrics  *Metrics
}

// result is the injector's answer to one pod.
type result struct {
	outcome  Outcome
	reason   Reason
	message  string // the refusal, or the Event's note
	patch    []jsonpatch.JsonPatchOperation
	warnings []string
}

// Handler returns the admission handler of one webhook entry.
func (i *Injector) Handler(trigger Trigger) admission.Handler {
	return admission.HandlerFunc(func(ctx context.Context, req admission.Request) admission.Response {
		return i.handle(ctx, req, trigger)
	})
}

func (i *Injector) handle(ctx context.Context, req admission.Request, trigger Trigger) admission.Response {
	if req.Operation != admissionv1.Create || req.Kind.Kind != "Pod" || req.SubResource != "" {
		return admission.Allowed("authmesh injects pods on creation only")
	}
	pod := &corev1.Pod{}
	var r result
	if err := i.Decoder.Decode(req, pod); err != nil {
		r = result{outcome: OutcomeError, reason: ReasonBadRequest, message: fmt.Sprintf("decoding the pod: %v", err)}
	} else {
		r = i.review(ctx, pod, req.Namespace, trigger)
	}
	dryRun := req.DryRun != nil && *req.DryRun
	if !dryRun {
		i.Metrics.observe(r.outcome, r.reason)
		i.event(pod, req.Namespace, r)
	}
	logf.FromContext(ctx).V(1).Info("sidecar injection", "outcome", r.outcome, "reason", r.reason,
		"namespace", req.Namespace, "pod", podName(pod), "dryRun", dryRun)

	switch r.outcome {
	case OutcomeInjected:
		return admission.Patched(string(r.reason), r.patch...).WithWarnings(r.warnings...)
	case OutcomeRejected:
		return admission.Denied(r.message)
	case OutcomeError:
		code := int32(http.StatusInternalServerError)
		if r.reason == ReasonBadRequest {
			code = http.StatusBadRequest
		}
		return admission.Errored(code, fmt.Errorf("authmesh sidecar injection: %s", r.message))
	default:
		return admission.Allowed(string(r.reason))
	}
}

// review decides what to do with pod, created in namespace.
func (i *Injector) review(ctx context.Context, pod *corev1.Pod, namespace string, trigger Trigger) result {
	report := Decide(pod, namespace, trigger, i.Options.ProtectedNamespaces())
	if report.Reason == ReasonAlreadyInjected {
		if problem := forgedSidecar(pod, &i.Options); problem != "" {
			return result{outcome: OutcomeRejected, reason: ReasonForgedSidecar,
				message: "the pod claims the authmesh sidecar, but " + problem + "; create it without the " + AnnotationStatus + " annotation and the " + SidecarName + " container, and it will be injected"}
		}
	}
	if !report.Inject {
		return result{outcome: OutcomeSkipped, reason: report.Reason, message: skipNotes[report.Reason]}
	}
	p, problems, err := validate(ctx, pod, i.Tenants, &i.Options)
	if err != nil {
		return result{outcome: OutcomeError, reason: ReasonTenantLookupFailed, message: err.Error() + " (try again)"}
	}
	if len(problems) > 0 {
		return result{outcome: OutcomeRejected, reason: problems[0].reason, message: rejection(problems)}
	}
	r := result{
		outcome: OutcomeInjected,
		reason:  report.Reason,
		patch:   buildPatch(pod, p, &i.Options),
		message: fmt.Sprintf("authmesh sidecar injected (tenant %s, app port %d, sidecar port %d named %q)", p.tenant, p.port, ProxyPort, p.proxyPortName(pod)),
	}
	if p.renameTo == "" {
		r.warnings = append(r.warnings, fmt.Sprintf("authmesh: the app's port %d has no name for the sidecar to take over, so Services reach the app directly unless they target port %d (named %s)",
			p.port, ProxyPort, ProxyPortName))
	}
	return r
}

// skipNotes are the Event notes of skipped pods.
var skipNotes = map[Reason]string{
	ReasonPodOptedOut:        "authmesh sidecar not injected: the pod is labelled " + LabelInject + "=" + InjectPodDisabled,
	ReasonNotOptedIn:         "authmesh sidecar not injected: neither the pod nor its namespace opted in",
	ReasonProtectedNamespace: "authmesh sidecar not injected: the namespace is never injected",
}

// event records r for the pod's controlling owner (a ReplicaSet, a Job, ...), which exists
// when the pod does not yet, or for the pod when it has a name and no owner. Pods already
// injected record nothing: a second call is expected whenever both webhook entries match.
func (i *Injector) event(pod *corev1.Pod, namespace string, r result) {
	if i.Recorder == nil || r.reason == ReasonAlreadyInjected {
		return
	}
	var regarding *corev1.ObjectReference
	if owner := metav1.GetControllerOf(pod); owner != nil {
		regarding = &corev1.ObjectReference{APIVersion: owner.APIVersion, Kind: owner.Kind, Name: owner.Name, UID: owner.UID, Namespace: namespace}
	} else if pod.Name != "" {
		regarding = &corev1.ObjectReference{APIVersion: "v1", Kind: "Pod", Name: pod.Name, Namespace: namespace}
	} else {
		return
	}
	kind := corev1.EventTypeNormal
	if r.outcome == OutcomeRejected || r.outcome == OutcomeError {
		kind = corev1.EventTypeWarning
	}
	note := r.message
	if len(note) > 1000 { // an Event's note holds at most 1 kB
		note = strings.ToValidUTF8(note[:997], "") + "..."
	}
	i.Recorder.Eventf(regarding, nil, kind, string(r.reason), "InjectSidecar", "%s", note)
}

func podName(pod *corev1.Pod) string {
	if pod.Name == "" && pod.GenerateName != "" {
		return pod.GenerateName + "<generated>"
	}
	return pod.Name
}
