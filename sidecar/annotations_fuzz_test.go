package sidecar

import (
	"maps"
	"strconv"
	"strings"
	"testing"

	"github.com/authmesh/authmesh/guard"
)

// FuzzParseAnnotationsFile feeds the downward API's annotations file, whose values the pod's
// owners write, to the parser and the policy built from it: no panic; a file that parses
// writes back (one key="value" line per annotation) to the same map; and a policy is either
// built or refused with an error, never both or neither.
func FuzzParseAnnotationsFile(f *testing.F) {
	f.Add([]byte(AnnotationTenant + "=\"darmist1\"\n" + AnnotationPublic + "=\"GET /healthz, /docs/*\"\n" + AnnotationRoles + "=\"/admin/*: admin\"\n"))
	f.Add([]byte(AnnotationTenant + "=" + strconv.Quote(guard.AnyTenant) + "\n" + AnnotationPort + "=\"8080\"\nkubernetes.io/config.seen=\"2026-01-01T00:00:00Z\"\n"))
	f.Add([]byte("a=\"multi\\nline \\\"quoted\\\" \\u00e9\"\n\n  b = \"x\"  \n"))
	f.Add([]byte("no-equals\n"))
	f.Add([]byte("k=unquoted\n"))
	f.Add([]byte(AnnotationTenant + "=\"../../etc\"\n" + AnnotationPort + "=\"99999\"\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		got, err := ParseAnnotationsFile(data)
		if err != nil {
			if got != nil {
				t.Fatalf("an error (%v) came with annotations %v", err, got)
			}
			return
		}
		var again strings.Builder
		for k, v := range got {
			again.WriteString(k + "=" + strconv.Quote(v) + "\n")
		}
		back, err := ParseAnnotationsFile([]byte(again.String()))
		if err != nil || !maps.Equal(back, got) {
			t.Fatalf("written back, %v read as %v (%v)", got, back, err)
		}
		pp, err := PodPolicyFromAnnotations(got)
		if err == nil && (pp.Policy == nil || pp.Tenant == "" || pp.Port < 0 || pp.Port > 65535) {
			t.Fatalf("PodPolicyFromAnnotations(%v) = %+v with no error; want a usable policy", got, pp)
		}
		if err == nil && pp.Tenant != guard.AnyTenant && !ValidTenantID(pp.Tenant) {
			t.Fatalf("PodPolicyFromAnnotations(%v) accepted tenant %q", got, pp.Tenant)
		}
	})
}
