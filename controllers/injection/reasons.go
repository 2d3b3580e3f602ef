package injection

// Outcome is what the injector did with a pod: the outcome label of
// authmesh_controller_injections_total.
type Outcome string

const (
	// OutcomeInjected: the sidecar was added.
	OutcomeInjected Outcome = "injected"
	// OutcomeSkipped: the pod was admitted unchanged.
	OutcomeSkipped Outcome = "skipped"
	// OutcomeRejected: the pod opted in but cannot be protected as asked; it was refused with a
	// message that says what to fix.
	OutcomeRejected Outcome = "rejected"
	// OutcomeError: the request could not be decided (undecodable, or Tenants unreadable); the
	// API server refuses the pod (failurePolicy Fail semantics) and the client may retry.
	OutcomeError Outcome = "error"
)

// Reason says why. Every reason is both the reason of the Event recorded for the pod's owner
// and the reason label of authmesh_controller_injections_total; they are all declared here.
type Reason string

// Injected.
const (
	// ReasonPodOptIn: the pod is labelled authmesh.dev/inject=true.
	ReasonPodOptIn Reason = "PodOptIn"
	// ReasonNamespaceOptIn: the pod's namespace is labelled authmesh.dev/inject=enabled.
	ReasonNamespaceOptIn Reason = "NamespaceOptIn"
)

// Skipped.
const (
	// ReasonAlreadyInjected: the pod carries authmesh.dev/status=injected and the sidecar
	// container (both webhook entries matched, or a reinvocation). No Event is recorded.
	ReasonAlreadyInjected Reason = "AlreadyInjected"
	// ReasonPodOptedOut: the pod is labelled authmesh.dev/inject=false.
	ReasonPodOptedOut Reason = "PodOptedOut"
	// ReasonNotOptedIn: the webhook was called for a pod that did not opt in (a webhook
	// configuration broader than the one shipped).
	ReasonNotOptedIn Reason = "NotOptedIn"
	// ReasonProtectedNamespace: kube-system, the manager's own namespace, or another namespace
	// in Options.ExcludedNamespaces. Never injected, whatever the labels say.
	ReasonProtectedNamespace Reason = "ProtectedNamespace"
)

// Rejected: the pod opted in but is refused, with a message saying what to fix.
const (
	// ReasonInvalidAnnotations: authmesh.dev/tenant missing or not a tenant id, or
	// authmesh.dev/port not a port number.
	ReasonInvalidAnnotations Reason = "InvalidAnnotations"
	// ReasonTenantNotFound: no Tenant of the annotated name exists.
	ReasonTenantNotFound Reason = "TenantNotFound"
	// ReasonTenantNotReady: the Tenant exists but its status.phase is not Ready.
	ReasonTenantNotReady Reason = "TenantNotReady"
	// ReasonNoUsablePort: no authmesh.dev/port and no TCP container port to protect.
	ReasonNoUsablePort Reason = "NoUsablePort"
	// ReasonInvalidPolicy: authmesh.dev/public or authmesh.dev/roles does not parse.
	ReasonInvalidPolicy Reason = "InvalidPolicy"
	// ReasonInvalidResources: a sidecar resource annotation does not parse, is not positive,
	// exceeds the configured maximum, or asks for a request above its limit.
	ReasonInvalidResources Reason = "InvalidResources"
	// ReasonConflict: the pod already uses a name or port the sidecar needs.
	ReasonConflict Reason = "Conflict"
	// ReasonHostNetwork: the pod uses the node's network, where the sidecar would open its
	// ports on the node and could not take over the app's port.
	ReasonHostNetwork Reason = "HostNetwork"
	// ReasonForgedSidecar: the pod arrives claiming to be injected (authmesh.dev/status and an
	// authmesh-sidecar container), but that container or its volumes are not the injector's.
	ReasonForgedSidecar Reason = "ForgedSidecar"
)

// Errors.
const (
	// ReasonBadRequest: the request holds no decodable Pod.
	ReasonBadRequest Reason = "BadRequest"
	// ReasonTenantLookupFailed: the Tenant could not be read.
	ReasonTenantLookupFailed Reason = "TenantLookupFailed"
)

// knownOutcomes lists every (outcome, reason) pair, so the metric shows zeros from the start.
var knownOutcomes = map[Outcome][]Reason{
	OutcomeInjected: {ReasonPodOptIn, ReasonNamespaceOptIn},
	OutcomeSkipped:  {ReasonAlreadyInjected, ReasonPodOptedOut, ReasonNotOptedIn, ReasonProtectedNamespace},
	OutcomeRejected: {
		ReasonInvalidAnnotations, ReasonTenantNotFound, ReasonTenantNotReady, ReasonNoUsablePort,
		ReasonInvalidPolicy, ReasonInvalidResources, ReasonConflict, ReasonHostNetwork, ReasonForgedSidecar,
	},
	OutcomeError: {ReasonBadRequest, ReasonTenantLookupFailed},
}
