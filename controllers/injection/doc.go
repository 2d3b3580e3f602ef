// Package injection owns the Pod mutating webhook that injects authmesh's sidecar into pods
// that opt in. It answers three questions, each in its own file, as linkerd's proxy injector
// separates its report from its patch:
//
//   - should this pod be injected, and if not, why (report.go: Decide, with the Reason
//     constants of reasons.go);
//   - can it be protected as its annotations ask (validate.go): a pod that opted in but names
//     an unknown or unready Tenant, has no usable port, an invalid policy, bad sidecar
//     resources, hostNetwork, or already uses a name or port the sidecar needs, is refused with
//     a message listing every problem and what to fix;
//   - what changes (mutate.go): a JSON patch built operation by operation.
//
// webhook.go is the admission handler; setup.go registers it with a manager. Every decision is
// counted and recorded as an Event (on the pod's controlling owner, such as its ReplicaSet,
// since the pod does not exist yet; on the pod itself when it has a name and no owner), with the
// same reason; dry-run requests are answered alike but neither counted nor recorded.
//
// # Opting in
//
// A pod opts in with the label authmesh.dev/inject=true, a namespace with the label
// authmesh.dev/inject=enabled, and a pod opts out of an opted-in namespace with
// authmesh.dev/inject=false. A webhook's objectSelector and namespaceSelector are ANDed, so
// config/webhook/manifests.yaml has two entries, one per way in, each on its own path
// (PathPodOptIn, PathNamespaceOptIn), which tells the handler which selector matched without
// reading the Namespace. The namespace entry's objectSelector leaves out pods labelled true
// (the pod entry has them) and false: an opted-out pod never reaches the webhook, so it can be
// created while the manager is down (failurePolicy is Fail). Neither entry ever sees
// kube-system or the manager's namespace, and the handler checks again (ReasonProtectedNamespace).
//
// The handler is idempotent: a pod carrying authmesh.dev/status=injected and the sidecar
// container is left alone (ReasonAlreadyInjected). The annotation alone does not skip
// injection, and neither do the annotation and a container of that name that is not the
// injector's sidecar (another image or entrypoint, other flags, or policy and token volumes
// that are not the pod's annotations and the injector's token): such a pod is refused
// (ReasonForgedSidecar), so neither can be used to run an opted-in pod unprotected.
//
// # The mutation
//
// The sidecar is a native sidecar: an init container named authmesh-sidecar with
// restartPolicy Always, appended after the pod's init containers, so it starts before the app's
// containers (once its startup probe passes) and stops after them. It listens on 15080 (proxy)
// and 15090 (admin: /healthz for the startup and liveness probes, /readyz for readiness, which
// passes once the tenant's keys are fetched). Its image, pull policy and resources come from
// Options; a pod may change the resources with authmesh.dev/sidecar-cpu, -memory (requests),
// -cpu-limit and -memory-limit (limits), each at most Options.MaxCPU or Options.MaxMemory. An
// annotated request above the default limit raises the limit to it; an annotated limit below the
// default request lowers the request; both annotated with the request above the limit is refused.
// It runs as a non-root UID with a read-only root filesystem, no privilege escalation, every
// capability dropped and the RuntimeDefault seccomp profile, whatever the pod's own security
// context says.
//
// It is started with:
//
//	-listen=:15080 -admin-listen=:15090
//	-annotations-file=/etc/authmesh/podinfo/annotations   the pod's annotations (downward API volume
//	                                                      authmesh-podinfo), watched: policy changes
//	                                                      apply without a restart
//	-upstream=http://127.0.0.1:<port>                     authmesh.dev/port, else the first TCP
//	                                                      container port of the app's containers
//	-auth-url, -issuer-url, -feed-url                     from Options (JWKS, iss, revocation feed)
//	-internal-token-file=/var/run/secrets/authmesh.dev/serviceaccount/token
//	                                                      a projected ServiceAccount token with the
//	                                                      audience Options.InternalTokenAudience
//	                                                      (volume authmesh-token), renewed by the kubelet
//	-audience=<the Tenant's spec.tokens.audience>         omitted for tenant "*" (the sidecar's default)
//
// A pod without spec.serviceAccountName gets "default", as the ServiceAccount admission plugin
// (which runs before webhooks) would have set, because a projected token needs one. The pod is
// labelled and annotated authmesh.dev/status=injected; the label lets a NetworkPolicy select
// injected pods.
//
// # Traffic reaches the sidecar without extra privileges
//
// There is no iptables redirection (which needs NET_ADMIN or a CNI plugin). Instead the sidecar
// takes over the name of the app's port: the port the sidecar forwards to, when a container
// declares it with a name, is renamed "app-<name>" (cut to 15 characters; "app2-<name>" and on
// when taken) and the sidecar's 15080 port gets the old name. A Service whose targetPort is that
// name resolves it, per pod, to 15080: the EndpointSlice controller looks in the app containers
// first, then in native sidecars, and the app's container no longer has the name. A pod where
// another container or native sidecar declares a port of the same name is refused, since the
// Service would then reach that one. When the app's port has no name, the sidecar's port is
// named authmesh-proxy, and the response carries a warning.
//
// The kubelet's probes carry no token, so they do not go through the sidecar: the app
// container's HTTP and TCP probes and lifecycle hooks that named the renamed port are pointed at
// its new name, which resolves to the same number in the same container. Numeric ports, exec
// and gRPC probes are left as they are; all of them reach the app directly.
//
// # What this does not close, and what does
//
// Renaming a port protects what finds the app by that name. It does not protect:
//
//   - a Service whose targetPort is the app's port number (it keeps reaching the app directly;
//     use the port's name, or 15080);
//   - direct calls to <pod IP>:<app port> from inside the cluster, and every other port the app
//     listens on.
//
// Two things close them, and either suffices: bind the app to 127.0.0.1, so only the sidecar
// (same network namespace) reaches it (then the kubelet's HTTP and TCP probes on the app's port,
// which come from the node to the pod IP, fail too: use exec probes); or apply the NetworkPolicy
// in config/networkpolicy/sidecar-only.yaml, which admits only 15080 and 15090 to injected pods
// and keeps the kubelet's probes working (traffic from a pod's own node is always allowed).
// hostNetwork pods are refused: the sidecar would open its ports on the node and could not take
// over anything.
//
// Validation happens at admission only: a Tenant deleted later, or a policy annotation changed
// to something invalid after creation, is the sidecar's business (it keeps its last good
// policy). The tenant and port cannot change while the pod runs (the sidecar refuses), and the
// -audience flag is the Tenant's at admission time. The injector changes pods on creation only.
//
// # Metrics
//
// Registered on the Registerer in Options (controller-runtime's metrics.Registry by default):
//
//	authmesh_controller_injections_total{outcome,reason}  counter; outcome injected|skipped|rejected|error
//
// The package deliberately does not: watch or re-inject running pods, read Namespaces (the
// webhook entry says which selector matched), redirect traffic with iptables, import package
// sidecar (parts never import each other; the annotation names are declared again here and a
// test keeps them equal), or manage the webhook's certificates (package webhookcert).
package injection
