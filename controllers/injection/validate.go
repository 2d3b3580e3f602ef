package injection

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	"sigs.k8s.io/controller-runtime/pkg/client"

	authmeshv1alpha1 "github.com/authmesh/authmesh/api/v1alpha1"
	"github.com/authmesh/authmesh/guard"
)

// plan is what validation resolved for a pod that can be injected: everything the mutation
// needs besides the pod and the Options.
type plan struct {
	tenant   string // a tenant id, or guard.AnyTenant
	audience string // the tenant's spec.tokens.audience; "" for guard.AnyTenant
	port     int32  // the app's port: the sidecar's upstream is http://127.0.0.1:<port>

	// Where the app's port is declared (container index, port index), or container -1 when
	// the annotated port is declared nowhere. renameTo is the app port's new name when it has
	// a name for the sidecar to take over, else "".
	container, portIndex int
	renameTo             string

	resources corev1.ResourceRequirements
}

// proxyPortName is the name of the sidecar's proxy port: the app port's name, taken over so
// that Services with a named targetPort reach the sidecar, or ProxyPortName.
func (p *plan) proxyPortName(pod *corev1.Pod) string {
	if p.renameTo == "" {
		return ProxyPortName
	}
	return pod.Spec.Containers[p.container].Ports[p.portIndex].Name
}

// problem is one reason to refuse a pod that opted in, with what to fix.
type problem struct {
	reason Reason
	msg    string
}

// rejection builds the admission message for problems: every problem, the first first.
func rejection(problems []problem) string {
	msgs := make([]string, len(problems))
	for i, p := range problems {
		msgs[i] = p.msg
	}
	return "the pod opted in to the authmesh sidecar but cannot be protected: " + strings.Join(msgs, "; ")
}

// tenantPattern is a tenant id: a DNS-1123 label of at most 54 bytes (the sidecar's rule).
var tenantPattern = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]{0,52}[a-z0-9])?$`)

// validate checks that a pod that opted in can be protected as its annotations ask, and
// resolves the plan. It returns every problem it finds (in a fixed order, so the first one's
// reason labels the metric), and an error only when it could not decide (the Tenant could not
// be read).
func validate(ctx context.Context, pod *corev1.Pod, tenants client.Reader, opts *Options) (plan, []problem, error) {
	var (
		p        = plan{container: -1}
		problems []problem
	)
	add := func(reason Reason, format string, args ...any) {
		problems = append(problems, problem{reason: reason, msg: fmt.Sprintf(format, args...)})
	}
	a := pod.Annotations

	if pod.Spec.HostNetwork {
		add(ReasonHostNetwork, "the pod uses hostNetwork, where the sidecar would listen on the node's ports %d and %d: "+
			"remove hostNetwork, or opt the pod out with the label %s=%s", ProxyPort, AdminPort, LabelInject, InjectPodDisabled)
	}

	// The tenant.
	p.tenant = strings.TrimSpace(a[AnnotationTenant])
	switch {
	case p.tenant == "":
		add(ReasonInvalidAnnotations, "the annotation %s is required: set it to the id of the Tenant whose tokens the app accepts, or to %q to take the tenant from each request's %s header",
			AnnotationTenant, guard.AnyTenant, guard.TenantHeader)
	case p.tenant != guard.AnyTenant && !tenantPattern.MatchString(p.tenant):
		add(ReasonInvalidAnnotations, "the annotation %s=%q is not a tenant id (a DNS-1123 label of at most 54 characters) or %q",
			AnnotationTenant, p.tenant, guard.AnyTenant)
	}
	var (
		annotatedPort int
		badPort       bool
	)
	if s := strings.TrimSpace(a[AnnotationPort]); s != "" { // blank counts as unset, as for the sidecar
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > 65535 {
			add(ReasonInvalidAnnotations, "the annotation %s=%q is not a port number (1-65535): set it to the port the app listens on", AnnotationPort, s)
			badPort = true
		} else {
			annotatedPort = n
		}
	}
	if p.tenant != guard.AnyTenant && tenantPattern.MatchString(p.tenant) {
		var t authmeshv1alpha1.Tenant
		err := tenants.Get(ctx, client.ObjectKey{Name: p.tenant}, &t)
		switch {
		case apierrors.IsNotFound(err):
			add(ReasonTenantNotFound, "the Tenant %q named by the annotation %s does not exist: create it, or correct the annotation", p.tenant, AnnotationTenant)
		case err != nil:
			return plan{}, nil, fmt.Errorf("reading Tenant %q: %w", p.tenant, err)
		case t.Status.Phase != authmeshv1alpha1.TenantPhaseReady:
			phase := t.Status.Phase
			if phase == "" {
				phase = authmeshv1alpha1.TenantPhasePending
			}
			add(ReasonTenantNotReady, "the Tenant %q is not Ready (phase %s): create the pod again once `kubectl get tenant %s` shows Ready", p.tenant, phase, p.tenant)
		default:
			p.audience = t.Spec.Tokens.Audience
		}
	}

	// The app's port.
	if annotatedPort != 0 {
		p.port = int32(annotatedPort)
		p.container, p.portIndex = findPort(pod, p.port)
	} else if c, i := firstTCPPort(pod); c >= 0 {
		p.container, p.portIndex = c, i
		p.port = pod.Spec.Containers[c].Ports[i].ContainerPort
	} else if !badPort {
		add(ReasonNoUsablePort, "no port to protect: declare the app's port in its container's ports (TCP), or set the annotation %s", AnnotationPort)
	}

	// The policy, with the parser the sidecar uses.
	if _, err := guard.ParsePolicy(a[AnnotationPublic], a[AnnotationRoles]); err != nil {
		for _, e := range unjoin(err) {
			var pe *guard.PolicyError
			if errors.As(e, &pe) {
				add(ReasonInvalidPolicy, "%s: %s", pe.Annotation, pe.Error())
			} else {
				add(ReasonInvalidPolicy, "%s", e.Error())
			}
		}
	}

	// Resources.
	var resourceProblems []string
	p.resources, resourceProblems = sidecarResources(a, opts)
	for _, msg := range resourceProblems {
		add(ReasonInvalidResources, "%s", msg)
	}

	// Names and ports the sidecar needs.
	for _, msg := range conflicts(pod, p.port) {
		add(ReasonConflict, "%s", msg)
	}
	if p.container >= 0 {
		port := pod.Spec.Containers[p.container].Ports[p.portIndex]
		if port.Name != "" {
			for _, other := range sameNamedPorts(pod, p.container, port.Name) {
				add(ReasonConflict, "containers %q and %q both name a port %q, so a Service targeting it would reach %q instead of the sidecar: give the ports distinct names",
					pod.Spec.Containers[p.container].Name, other, port.Name, other)
			}
			p.renameTo = renamedPort(port.Name, pod.Spec.Containers[p.container].Ports)
			if p.renameTo == "" {
				add(ReasonConflict, "container %q: found no free name for its port %q, which the sidecar takes over: rename the container's ports",
					pod.Spec.Containers[p.container].Name, port.Name)
			}
		}
	}
	return p, problems, nil
}

// unjoin lists the errors joined by errors.Join, or err alone.
func unjoin(err error) []error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		return j.Unwrap()
	}
	return []error{err}
}

func isTCP(p corev1.ContainerPort) bool {
	return p.Protocol == "" || p.Protocol == corev1.ProtocolTCP
}

// firstTCPPort finds the first TCP port of the app's containers, or returns -1.
func firstTCPPort(pod *corev1.Pod) (container, port int) {
	for c, ctr := range pod.Spec.Containers {
		for i, p := range ctr.Ports {
			if isTCP(p) {
				return c, i
			}
		}
	}
	return -1, -1
}

// findPort finds where the app's containers declare the TCP port n, or returns -1.
func findPort(pod *corev1.Pod, n int32) (container, port int) {
	for c, ctr := range pod.Spec.Containers {
		for i, p := range ctr.Ports {
			if p.ContainerPort == n && isTCP(p) {
				return c, i
			}
		}
	}
	return -1, -1
}

// sameNamedPorts lists the containers, other than the app's (index app), that declare a TCP
// port named name where a Service's named targetPort would find it: the other app containers
// and the native sidecars (init containers with restartPolicy Always).
func sameNamedPorts(pod *corev1.Pod, app int, name string) []string {
	var out []string
	has := func(c corev1.Container) bool {
		for _, p := range c.Ports {
			if p.Name == name && isTCP(p) {
				return true
			}
		}
		return false
	}
	for i, c := range pod.Spec.Containers {
		if i != app && has(c) {
			out = append(out, c.Name)
		}
	}
	for _, c := range pod.Spec.InitContainers {
		if c.RestartPolicy != nil && *c.RestartPolicy == corev1.ContainerRestartPolicyAlways && has(c) {
			out = append(out, c.Name)
		}
	}
	return out
}

// renamedPort is the app port's new name: "app-<name>" cut to 15 characters (the limit of a
// port name), or, when that is taken in the container, "app2-<name>" ... "app9-<name>". It
// returns "" when every candidate is taken.
func renamedPort(name string, ports []corev1.ContainerPort) string {
	taken := map[string]bool{ProxyPortName: true, AdminPortName: true, name: true}
	for _, p := range ports {
		taken[p.Name] = true
	}
	for i := 1; i <= 9; i++ {
		prefix := "app-"
		if i > 1 {
			prefix = "app" + strconv.Itoa(i) + "-"
		}
		candidate := prefix + name
		if len(candidate) > 15 {
			candidate = strings.TrimRight(candidate[:15], "-")
		}
		if !taken[candidate] {
			return candidate
		}
	}
	return ""
}

// conflicts lists the names and ports the pod already uses that the sidecar needs.
func conflicts(pod *corev1.Pod, appPort int32) []string {
	var out []string
	all := func(yield func(kind string, c corev1.Container) bool) {
		for _, c := range pod.Spec.InitContainers {
			if !yield("init container", c) {
				return
			}
		}
		for _, c := range pod.Spec.Containers {
			if !yield("container", c) {
				return
			}
		}
	}
	for kind, c := range all {
		if c.Name == SidecarName {
			out = append(out, fmt.Sprintf("the %s name %q is reserved for the sidecar: rename the %s", kind, SidecarName, kind))
		}
		for _, p := range c.Ports {
			if isTCP(p) && (p.ContainerPort == ProxyPort || p.ContainerPort == AdminPort) {
				out = append(out, fmt.Sprintf("%s %q declares port %d, which the sidecar listens on: move it to another port", kind, c.Name, p.ContainerPort))
			}
			if p.Name == ProxyPortName || p.Name == AdminPortName {
				out = append(out, fmt.Sprintf("%s %q names a port %q, a name reserved for the sidecar: rename the port", kind, c.Name, p.Name))
			}
		}
	}
	for _, c := range pod.Spec.EphemeralContainers {
		if c.Name == SidecarName {
			out = append(out, fmt.Sprintf("the ephemeral container name %q is reserved for the sidecar", SidecarName))
		}
	}
	for _, v := range pod.Spec.Volumes {
		if v.Name == PodInfoVolume || v.Name == TokenVolume {
			out = append(out, fmt.Sprintf("the volume name %q is reserved for the sidecar: rename the volume", v.Name))
		}
	}
	if c, _ := findPort(pod, appPort); c < 0 && (appPort == ProxyPort || appPort == AdminPort) {
		// A declared port was reported above.
		out = append(out, fmt.Sprintf("the annotation %s=\"%d\" names the sidecar's own port: set it to the port the app listens on", AnnotationPort, appPort))
	}
	return out
}

// resourceAnnotations maps each sidecar resource annotation to what it sets.
var resourceAnnotations = []struct {
	annotation string
	resource   corev1.ResourceName
	limit      bool
}{
	{AnnotationSidecarCPU, corev1.ResourceCPU, false},
	{AnnotationSidecarCPULimit, corev1.ResourceCPU, true},
	{AnnotationSidecarMemory, corev1.ResourceMemory, false},
	{AnnotationSidecarMemoryLimit, corev1.ResourceMemory, true},
}

// sidecarResources applies the pod's resource annotations to the configured defaults. Each
// annotated value must be a positive quantity of at most the configured maximum. When an
// annotated request exceeds the default limit, the limit rises to the request; when an
// annotated limit is below the default request, the request falls to the limit; both annotated
// and the request above the limit is a problem.
func sidecarResources(a map[string]string, opts *Options) (corev1.ResourceRequirements, []string) {
	out := corev1.ResourceRequirements{
		Requests: opts.Resources.Requests.DeepCopy(),
		Limits:   opts.Resources.Limits.DeepCopy(),
	}
	var problems []string
	annotated := map[string]bool{}
	for _, ra := range resourceAnnotations {
		s, ok := a[ra.annotation]
		if !ok {
			continue
		}
		q, err := resource.ParseQuantity(strings.TrimSpace(s))
		maxQ := opts.max(ra.resource)
		switch {
		case err != nil:
			problems = append(problems, fmt.Sprintf("the annotation %s=%q is not a quantity (such as %s)", ra.annotation, s, map[corev1.ResourceName]string{corev1.ResourceCPU: `"250m"`, corev1.ResourceMemory: `"128Mi"`}[ra.resource]))
			continue
		case q.Sign() <= 0:
			problems = append(problems, fmt.Sprintf("the annotation %s=%q must be more than 0", ra.annotation, s))
			continue
		case q.Cmp(maxQ) > 0:
			problems = append(problems, fmt.Sprintf("the annotation %s=%q is above the maximum %s the manager allows", ra.annotation, s, maxQ.String()))
			continue
		}
		if out.Requests == nil {
			out.Requests = corev1.ResourceList{}
		}
		if out.Limits == nil {
			out.Limits = corev1.ResourceList{}
		}
		if ra.limit {
			out.Limits[ra.resource] = q
		} else {
			out.Requests[ra.resource] = q
		}
		annotated[ra.annotation] = true
	}
	for i := 0; i < len(resourceAnnotations); i += 2 {
		reqA, limA := resourceAnnotations[i], resourceAnnotations[i+1]
		res := reqA.resource
		req, hasReq := out.Requests[res]
		limit, hasLimit := out.Limits[res]
		if !hasReq || !hasLimit || req.Cmp(limit) <= 0 {
			continue
		}
		switch {
		case annotated[reqA.annotation] && annotated[limA.annotation]:
			problems = append(problems, fmt.Sprintf("the annotation %s=%q is above %s=%q: a request cannot exceed its limit",
				reqA.annotation, a[reqA.annotation], limA.annotation, a[limA.annotation]))
		case annotated[reqA.annotation]:
			out.Limits[res] = req
		default:
			out.Requests[res] = limit
		}
	}
	if len(out.Requests) == 0 {
		out.Requests = nil
	}
	if len(out.Limits) == 0 {
		out.Limits = nil
	}
	return out, problems
}
