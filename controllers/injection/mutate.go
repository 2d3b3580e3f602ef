package injection

import (
	"fmt"
	"strconv"
	"strings"

	jsonpatch "gomodules.xyz/jsonpatch/v2"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"
)

// buildPatch returns the JSON patch (RFC 6902) that injects the sidecar into pod, as p and opts
// describe. It is written operation by operation, in a fixed order (metadata, the app's port
// and the handlers that named it, the ServiceAccount, volumes, the sidecar), rather than diffed
// from a mutated copy, so that the patch is small, readable and the same every time.
func buildPatch(pod *corev1.Pod, p plan, opts *Options) []jsonpatch.JsonPatchOperation {
	var ops []jsonpatch.JsonPatchOperation
	ops = append(ops, addToMap("/metadata/annotations", pod.Annotations, AnnotationStatus, StatusInjected)...)
	ops = append(ops, addToMap("/metadata/labels", pod.Labels, LabelStatus, StatusInjected)...)

	proxyPortName := p.proxyPortName(pod)
	if p.renameTo != "" {
		ops = append(ops, renamePort(pod, p)...)
	}
	if pod.Spec.ServiceAccountName == "" {
		// A projected token needs a ServiceAccount. The ServiceAccount admission plugin, which
		// runs before webhooks, sets "default"; where it is disabled (envtest), do the same.
		ops = append(ops, jsonpatch.NewOperation("add", "/spec/serviceAccountName", "default"))
	}
	ops = append(ops, appendTo("/spec/volumes", len(pod.Spec.Volumes), volumes(opts))...)
	ops = append(ops, appendTo("/spec/initContainers", len(pod.Spec.InitContainers), []corev1.Container{sidecar(p, proxyPortName, opts)})...)
	return ops
}

// renamePort renames the app's port so the sidecar can take its name, and points the
// container's probes and lifecycle hooks that named the port at the new name: the kubelet
// keeps calling the app directly, bypassing the sidecar (kubelet requests carry no token).
// Named ports in probes resolve within their own container, so only this container's are
// affected.
func renamePort(pod *corev1.Pod, p plan) []jsonpatch.JsonPatchOperation {
	c := pod.Spec.Containers[p.container]
	oldName := c.Ports[p.portIndex].Name
	base := "/spec/containers/" + strconv.Itoa(p.container)
	ops := []jsonpatch.JsonPatchOperation{
		jsonpatch.NewOperation("replace", fmt.Sprintf("%s/ports/%d/name", base, p.portIndex), p.renameTo),
	}
	named := func(port intstr.IntOrString) bool { return port.Type == intstr.String && port.StrVal == oldName }
	newPort := intstr.FromString(p.renameTo)
	for _, probe := range []struct {
		field string
		probe *corev1.Probe
	}{{"livenessProbe", c.LivenessProbe}, {"readinessProbe", c.ReadinessProbe}, {"startupProbe", c.StartupProbe}} {
		if probe.probe == nil {
			continue
		}
		if h := probe.probe.HTTPGet; h != nil && named(h.Port) {
			ops = append(ops, jsonpatch.NewOperation("replace", base+"/"+probe.field+"/httpGet/port", newPort))
		}
		if t := probe.probe.TCPSocket; t != nil && named(t.Port) {
			ops = append(ops, jsonpatch.NewOperation("replace", base+"/"+probe.field+"/tcpSocket/port", newPort))
		}
	}
	if c.Lifecycle != nil {
		for _, hook := range []struct {
			field   string
			handler *corev1.LifecycleHandler
		}{{"postStart", c.Lifecycle.PostStart}, {"preStop", c.Lifecycle.PreStop}} {
			if hook.handler == nil {
				continue
			}
			if h := hook.handler.HTTPGet; h != nil && named(h.Port) {
				ops = append(ops, jsonpatch.NewOperation("replace", base+"/lifecycle/"+hook.field+"/httpGet/port", newPort))
			}
			if t := hook.handler.TCPSocket; t != nil && named(t.Port) {
				ops = append(ops, jsonpatch.NewOperation("replace", base+"/lifecycle/"+hook.field+"/tcpSocket/port", newPort))
			}
		}
	}
	return ops
}

// sidecar is the injected container: a native sidecar (an init container with restartPolicy
// Always), so it starts before the app's containers and stops after them.
func sidecar(p plan, proxyPortName string, opts *Options) corev1.Container {
	args := []string{
		"-listen=:" + strconv.Itoa(ProxyPort),
		"-admin-listen=:" + strconv.Itoa(AdminPort),
		"-annotations-file=" + AnnotationsFile,
		"-upstream=http://127.0.0.1:" + strconv.Itoa(int(p.port)),
		"-auth-url=" + opts.AuthURL,
	}
	if opts.IssuerURL != "" {
		args = append(args, "-issuer-url="+opts.IssuerURL)
	}
	args = append(args, "-feed-url="+opts.FeedURL, "-internal-token-file="+InternalTokenFile)
	if p.audience != "" {
		args = append(args, "-audience="+p.audience)
	}
	admin := func(path string, period, failures int32) *corev1.Probe {
		return &corev1.Probe{
			ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{
				Path: path, Port: intstr.FromInt32(AdminPort), Scheme: corev1.URISchemeHTTP,
			}},
			TimeoutSeconds:   1,
			PeriodSeconds:    period,
			SuccessThreshold: 1,
			FailureThreshold: failures,
		}
	}
	return corev1.Container{
		Name:            SidecarName,
		Image:           opts.Image,
		ImagePullPolicy: opts.ImagePullPolicy,
		Args:            args,
		Ports: []corev1.ContainerPort{
			{Name: proxyPortName, ContainerPort: ProxyPort, Protocol: corev1.ProtocolTCP},
			{Name: AdminPortName, ContainerPort: AdminPort, Protocol: corev1.ProtocolTCP},
		},
		Resources: p.resources,
		VolumeMounts: []corev1.VolumeMount{
			{Name: PodInfoVolume, MountPath: PodInfoDir, ReadOnly: true},
			{Name: TokenVolume, MountPath: TokenDir, ReadOnly: true},
		},
		// Up as soon as it listens: the app starts once this passes (up to 30 s).
		StartupProbe: admin("/healthz", 1, 30),
		// Ready once the tenant's keys are fetched (or the tenant is "*").
		ReadinessProbe:           admin("/readyz", 5, 3),
		LivenessProbe:            admin("/healthz", 10, 3),
		TerminationMessagePolicy: corev1.TerminationMessageFallbackToLogsOnError,
		RestartPolicy:            ptr.To(corev1.ContainerRestartPolicyAlways),
		SecurityContext: &corev1.SecurityContext{
			RunAsNonRoot:             ptr.To(true),
			RunAsUser:                ptr.To(opts.RunAsUser),
			RunAsGroup:               ptr.To(opts.RunAsUser),
			ReadOnlyRootFilesystem:   ptr.To(true),
			AllowPrivilegeEscalation: ptr.To(false),
			Privileged:               ptr.To(false),
			Capabilities:             &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
			SeccompProfile:           &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
		},
	}
}

// volumes are the sidecar's: the pod's annotations through the downward API (the sidecar
// watches the file, so a policy change applies without a restart) and a ServiceAccount token
// for the auth server's internal API, which the kubelet renews.
func volumes(opts *Options) []corev1.Volume {
	return []corev1.Volume{
		{Name: PodInfoVolume, VolumeSource: corev1.VolumeSource{DownwardAPI: &corev1.DownwardAPIVolumeSource{
			Items: []corev1.DownwardAPIVolumeFile{{
				Path:     "annotations",
				FieldRef: &corev1.ObjectFieldSelector{APIVersion: "v1", FieldPath: "metadata.annotations"},
			}},
		}}},
		{Name: TokenVolume, VolumeSource: corev1.VolumeSource{Projected: &corev1.ProjectedVolumeSource{
			Sources: []corev1.VolumeProjection{{ServiceAccountToken: &corev1.ServiceAccountTokenProjection{
				Audience:          opts.InternalTokenAudience,
				ExpirationSeconds: ptr.To(int64(opts.InternalTokenExpiration.Seconds())),
				Path:              "token",
			}}},
		}}},
	}
}

// addToMap sets key=value in the object at path (annotations, labels), creating it if absent.
func addToMap(path string, m map[string]string, key, value string) []jsonpatch.JsonPatchOperation {
	if m == nil {
		return []jsonpatch.JsonPatchOperation{jsonpatch.NewOperation("add", path, map[string]string{key: value})}
	}
	return []jsonpatch.JsonPatchOperation{jsonpatch.NewOperation("add", path+"/"+escapePointer(key), value)}
}

// appendTo appends values to the array at path, which holds n elements (0: absent or null).
func appendTo[T any](path string, n int, values []T) []jsonpatch.JsonPatchOperation {
	if n == 0 {
		return []jsonpatch.JsonPatchOperation{jsonpatch.NewOperation("add", path, values)}
	}
	ops := make([]jsonpatch.JsonPatchOperation, len(values))
	for i, v := range values {
		ops[i] = jsonpatch.NewOperation("add", path+"/-", v)
	}
	return ops
}

// escapePointer escapes a JSON pointer reference token (RFC 6901).
func escapePointer(s string) string {
	return strings.NewReplacer("~", "~0", "/", "~1").Replace(s)
}
