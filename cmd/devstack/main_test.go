package main

import (
	"path/filepath"
	"testing"

	"github.com/authmesh/authmesh/sidecar"
)

// TestDemoAnnotationsAreTheSidecarsPolicy reads the demo Deployment as make dev does and checks
// that the sidecar accepts the policy with the pinned routes.
func TestDemoAnnotationsAreTheSidecarsPolicy(t *testing.T) {
	text, err := demoAnnotations(filepath.Join("..", "..", "config", "samples", "demo-app.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	a, err := sidecar.ParseAnnotationsFile([]byte(text))
	if err != nil {
		t.Fatalf("the sidecar cannot read %q: %v", text, err)
	}
	pp, err := sidecar.PodPolicyFromAnnotations(a)
	if err != nil {
		t.Fatal(err)
	}
	if pp.Tenant != "darmist1" || pp.Port != 3501 {
		t.Fatalf("tenant %q port %d; want darmist1 and 3501", pp.Tenant, pp.Port)
	}
	for path, wantPublic := range map[string]bool{"/healthz": true, "/public/a": true, "/orders": false} {
		if d := pp.Policy.Decide("GET", path); d.Public != wantPublic {
			t.Errorf("%s public = %t, want %t", path, d.Public, wantPublic)
		}
	}
	if d := pp.Policy.Decide("GET", "/reports/q3"); d.Allows("user") || !d.Allows("manager") || !d.Allows("admin") {
		t.Errorf("/reports/** roles = %v, want manager and admin", d.Roles)
	}
}

func TestSampleTenantsParseWithDefaults(t *testing.T) {
	for tenant := range demoUsers {
		spec, err := sampleSpec(filepath.Join("..", "..", "config", "samples", "tenant-"+tenant+".yaml"))
		if err != nil {
			t.Fatal(err)
		}
		if spec.DefaultRole != "user" || spec.Tokens.AccessTokenTTL == nil || spec.Login.OTP.Enabled == nil || !*spec.Login.OTP.Enabled {
			t.Errorf("%s: defaults not applied: %+v", tenant, spec)
		}
		for _, u := range demoUsers[tenant] {
			found := false
			for _, r := range spec.Roles {
				found = found || r == u.Role
			}
			if !found {
				t.Errorf("%s: seeded user %s has role %q, not one of %v", tenant, u.Username, u.Role, spec.Roles)
			}
		}
	}
}
