package sidecar

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"

	"github.com/authmesh/authmesh/guard"
)

// The pod annotations the sidecar reads (DESIGN.md pins them).
const (
	AnnotationTenant = "authmesh.dev/tenant"
	AnnotationPort   = "authmesh.dev/port"
	AnnotationPublic = "authmesh.dev/public"
	AnnotationRoles  = "authmesh.dev/roles"
)

// PodPolicy is what the sidecar enforces, as read from the pod's annotations.
type PodPolicy struct {
	Tenant string // a tenant id, or guard.AnyTenant
	Port   int    // the app's port; 0 when not annotated
	Policy *guard.Policy
}

var tenantPattern = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]{0,52}[a-z0-9])?$`)

// ValidTenantID reports whether s can name a tenant (a DNS-1123 label of at most 54 bytes).
func ValidTenantID(s string) bool { return tenantPattern.MatchString(s) }

// ParseAnnotationsFile reads the downward API's annotations file: one `key="value"` line per
// annotation, the value quoted as a Go string literal.
func ParseAnnotationsFile(data []byte) (map[string]string, error) {
	out := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" {
			continue
		}
		key, quoted, ok := strings.Cut(line, "=")
		if !ok {
			return nil, fmt.Errorf("annotations line %d: no '='", n)
		}
		value, err := strconv.Unquote(quoted)
		if err != nil {
			return nil, fmt.Errorf("annotations line %d (%s): value is not a quoted string", n, key)
		}
		out[key] = value
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	return out, nil
}

// PodPolicyFromAnnotations builds the policy from annotation values, reporting every problem.
func PodPolicyFromAnnotations(a map[string]string) (PodPolicy, error) {
	var problems []error
	pp := PodPolicy{Tenant: strings.TrimSpace(a[AnnotationTenant])}
	switch {
	case pp.Tenant == "":
		problems = append(problems, fmt.Errorf("%s is required (a tenant id, or %q)", AnnotationTenant, guard.AnyTenant))
	case pp.Tenant != guard.AnyTenant && !ValidTenantID(pp.Tenant):
		problems = append(problems, fmt.Errorf("%s %q is not a tenant id (a DNS-1123 label of at most 54 characters) or %q", AnnotationTenant, pp.Tenant, guard.AnyTenant))
	}
	if p := strings.TrimSpace(a[AnnotationPort]); p != "" {
		port, err := strconv.Atoi(p)
		if err != nil || port < 1 || port > 65535 {
			problems = append(problems, fmt.Errorf("%s %q is not a port number", AnnotationPort, p))
		}
		pp.Port = port
	}
	policy, err := guard.ParsePolicy(a[AnnotationPublic], a[AnnotationRoles])
	if err != nil {
		problems = append(problems, err)
	}
	pp.Policy = policy
	if len(problems) > 0 {
		return PodPolicy{}, errors.Join(problems...)
	}
	return pp, nil
}
