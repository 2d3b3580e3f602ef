package injection

// Labels and annotations the injector reads and writes, all under authmesh.dev/ (DESIGN.md pins
// them). The policy annotations (tenant, port, public, roles) belong to the sidecar, which reads
// them from the downward-API file; they are declared again here because the parts of authmesh
// never import each other. TestAnnotationNamesMatchSidecar keeps both declarations equal.
const (
	// LabelInject opts in: on a pod, "true" (InjectPodEnabled) injects it and "false"
	// (InjectPodDisabled) keeps it out even in an opted-in namespace; on a namespace, "enabled"
	// (InjectNamespaceEnabled) injects every pod created there. A label, not an annotation,
	// because a webhook's objectSelector and namespaceSelector match labels only.
	LabelInject            = "authmesh.dev/inject"
	InjectPodEnabled       = "true"
	InjectPodDisabled      = "false"
	InjectNamespaceEnabled = "enabled"

	// AnnotationStatus is written on every pod the injector changed, with the value
	// StatusInjected. A pod carrying it and the sidecar container is left alone.
	AnnotationStatus = "authmesh.dev/status"
	// LabelStatus repeats AnnotationStatus as a label, so that a NetworkPolicy or a Service can
	// select exactly the injected pods.
	LabelStatus    = "authmesh.dev/status"
	StatusInjected = "injected"

	// The sidecar's policy: the tenant whose tokens the app accepts (a tenant id, or "*"), the
	// app's port (default: the first TCP container port), the public routes and the role
	// routes (syntax in package guard).
	AnnotationTenant = "authmesh.dev/tenant"
	AnnotationPort   = "authmesh.dev/port"
	AnnotationPublic = "authmesh.dev/public"
	AnnotationRoles  = "authmesh.dev/roles"

	// The sidecar's resources, overriding the manager's defaults (Options.Resources) up to
	// Options.MaxCPU and Options.MaxMemory: requests, then limits. Values are Kubernetes
	// quantities ("250m", "128Mi").
	AnnotationSidecarCPU         = "authmesh.dev/sidecar-cpu"
	AnnotationSidecarMemory      = "authmesh.dev/sidecar-memory"
	AnnotationSidecarCPULimit    = "authmesh.dev/sidecar-cpu-limit"
	AnnotationSidecarMemoryLimit = "authmesh.dev/sidecar-memory-limit"
)

// Names the injection adds to a pod. A pod that already uses one of them (other than as the
// result of an earlier injection) is refused with reason Conflict.
const (
	// SidecarName is the name of the injected init container (a native sidecar).
	SidecarName = "authmesh-sidecar"
	// ProxyPort is the sidecar's proxy port, AdminPort its /healthz, /readyz and /metrics.
	ProxyPort = 15080
	AdminPort = 15090
	// ProxyPortName names the sidecar's proxy port when the app's port has no name to take over.
	ProxyPortName = "authmesh-proxy"
	AdminPortName = "authmesh-admin"

	// PodInfoVolume projects the pod's annotations (downward API) to AnnotationsFile.
	PodInfoVolume   = "authmesh-podinfo"
	PodInfoDir      = "/etc/authmesh/podinfo"
	AnnotationsFile = PodInfoDir + "/annotations"
	// TokenVolume holds a ServiceAccount token for the auth server's internal API
	// (Options.InternalTokenAudience), at InternalTokenFile.
	TokenVolume       = "authmesh-token"
	TokenDir          = "/var/run/secrets/authmesh.dev/serviceaccount"
	InternalTokenFile = TokenDir + "/token"
)

// The admission paths the manager's webhook server serves, one per entry of the
// MutatingWebhookConfiguration (config/webhook/manifests.yaml).
const (
	// PathPodOptIn is called for pods labelled authmesh.dev/inject=true.
	PathPodOptIn = "/inject-sidecar/pod"
	// PathNamespaceOptIn is called for the other pods of namespaces labelled
	// authmesh.dev/inject=enabled.
	PathNamespaceOptIn = "/inject-sidecar/namespace"
)
