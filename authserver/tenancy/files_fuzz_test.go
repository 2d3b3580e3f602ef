package tenancy

import (
	"strings"
	"testing"
)

// FuzzParseTenant feeds documents of a tenants file (make dev's, or a platform team's file
// source) to the parser: no panic, and a document it takes names a valid tenant, which keys
// the tenant's state directory, with a spec that passes Validate.
func FuzzParseTenant(f *testing.F) {
	f.Add([]byte("apiVersion: authmesh.dev/v1alpha1\nkind: Tenant\nmetadata: {name: darmist1}\nspec: {displayName: Darmist}\n"))
	f.Add([]byte("apiVersion: authmesh.dev/v1alpha1\nkind: Tenant\nmetadata: {name: ../../etc}\n"))
	f.Add([]byte("apiVersion: authmesh.dev/v1alpha1\nkind: Tenant\nmetadata: {name: acme2}\nspec:\n  tokens: {accessTokenTTL: 1s, signingAlgorithm: HS256}\n  roles: [user, user]\n"))
	f.Add([]byte("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n"))
	f.Add([]byte("kind: Tenant\napiVersion: authmesh.dev/v1alpha1\nspec: {unknownField: 1}\n"))
	f.Add([]byte("{{{"))
	f.Fuzz(func(t *testing.T, doc []byte) {
		ft, ok, err := parseTenant(doc)
		if !ok {
			return
		}
		if err != nil {
			t.Fatalf("parseTenant took the document and returned %v", err)
		}
		name := ft.tenant.Name
		if !ValidTenantID(name) || strings.ContainsAny(name, "/\\.") {
			t.Fatalf("parseTenant took tenant name %q", name)
		}
		if problems := Validate(name, &ft.tenant.Spec); len(problems) > 0 {
			t.Fatalf("parseTenant took a spec Validate refuses: %v", problems)
		}
	})
}
