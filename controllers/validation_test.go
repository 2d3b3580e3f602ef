package controllers

import (
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// invalidTenants are Tenants the API server must refuse, each with the field and the message a
// person sees. Specs are untyped so that values Go's types cannot even hold (a duration of
// "abc") can be sent, as kubectl would.
var invalidTenants = map[string]struct {
	name  string // default "bad"
	spec  map[string]any
	field string
	want  string
}{
	"name is not a DNS-1123 label": {
		name: "a.b", want: "metadata.name must be a DNS-1123 label",
	},
	"name too long for the database name": {
		name: strings.Repeat("a", 55), want: "metadata.name must be at most 54 characters",
	},
	"database name with a dot": {
		spec:  map[string]any{"database": map[string]any{"name": "a.b"}},
		field: "spec.database.name", want: "spec.database.name may contain only letters, digits, '_' and '-'",
	},
	"database name of a system database": {
		spec:  map[string]any{"database": map[string]any{"name": "Admin"}},
		field: "spec.database.name", want: "must not be one of MongoDB's system databases (admin, local, config)",
	},
	"access-token TTL below 10s": {
		spec:  map[string]any{"tokens": map[string]any{"accessTokenTTL": "5s"}},
		field: "spec.tokens.accessTokenTTL", want: "accessTokenTTL must be at least 10s",
	},
	"access-token TTL that is no duration": {
		spec:  map[string]any{"tokens": map[string]any{"accessTokenTTL": "fifteen minutes"}},
		field: "spec.tokens.accessTokenTTL", want: "accessTokenTTL must be a duration such as 90s, 15m or 1h30m",
	},
	"refresh-token TTL in days": {
		spec:  map[string]any{"tokens": map[string]any{"refreshTokenTTL": "7d"}},
		field: "spec.tokens.refreshTokenTTL", want: "refreshTokenTTL must be a duration such as 24h or 168h",
	},
	"refresh-token TTL not longer than the access token's": {
		spec:  map[string]any{"tokens": map[string]any{"accessTokenTTL": "1h", "refreshTokenTTL": "1h"}},
		field: "spec.tokens", want: "spec.tokens.refreshTokenTTL must be longer than spec.tokens.accessTokenTTL",
	},
	"negative idle timeout": {
		spec:  map[string]any{"tokens": map[string]any{"idleTimeout": "-1s"}},
		field: "spec.tokens.idleTimeout", want: "idleTimeout must be a duration such as 0s, 30m or 12h",
	},
	"refresh reuse grace over a minute": {
		spec:  map[string]any{"tokens": map[string]any{"refreshReuseGrace": "2m"}},
		field: "spec.tokens.refreshReuseGrace", want: "refreshReuseGrace must be between 0s and 1m",
	},
	"key rotation every 30s": {
		spec:  map[string]any{"tokens": map[string]any{"keyRotationInterval": "30s"}},
		field: "spec.tokens.keyRotationInterval", want: "keyRotationInterval must be at least 1m",
	},
	"unknown signing algorithm": {
		spec:  map[string]any{"tokens": map[string]any{"signingAlgorithm": "HS256"}},
		field: "spec.tokens.signingAlgorithm", want: `Unsupported value: "HS256": supported values: "EdDSA", "ES256"`,
	},
	"unknown deletion policy": {
		spec:  map[string]any{"deletionPolicy": "Orphan"},
		field: "spec.deletionPolicy", want: `Unsupported value: "Orphan": supported values: "Retain", "Delete"`,
	},
	"default role not among the roles": {
		spec:  map[string]any{"roles": []any{"user", "admin"}, "defaultRole": "manager"},
		field: "spec", want: "spec.defaultRole must be one of spec.roles",
	},
	"OTP of 4 digits": {
		spec:  map[string]any{"login": map[string]any{"otp": map[string]any{"length": 4}}},
		field: "spec.login.otp.length", want: "should be greater than or equal to 6",
	},
	"OTP of 12 digits": {
		spec:  map[string]any{"login": map[string]any{"otp": map[string]any{"length": 12}}},
		field: "spec.login.otp.length", want: "should be less than or equal to 10",
	},
	"OTP valid for 15m": {
		spec:  map[string]any{"login": map[string]any{"otp": map[string]any{"ttl": "15m"}}},
		field: "spec.login.otp.ttl", want: "otp.ttl must be between 30s and 10m",
	},
	"no OTP attempts": {
		spec:  map[string]any{"login": map[string]any{"otp": map[string]any{"maxAttempts": 0}}},
		field: "spec.login.otp.maxAttempts", want: "should be greater than or equal to 1",
	},
	"1000 failed logins before lockout": {
		spec:  map[string]any{"login": map[string]any{"lockout": map[string]any{"maxFailedAttempts": 1000}}},
		field: "spec.login.lockout.maxFailedAttempts", want: "should be less than or equal to 100",
	},
	"lockout of 10s": {
		spec:  map[string]any{"login": map[string]any{"lockout": map[string]any{"duration": "10s"}}},
		field: "spec.login.lockout.duration", want: "lockout.duration must be between 1m and 720h",
	},
}

// TestAPIServerRefusesInvalidTenants applies each invalid Tenant to the real API server: each
// must be refused naming its field with its own message, and never with CEL's "type
// conversion error" noise that a malformed duration used to cause.
func TestAPIServerRefusesInvalidTenants(t *testing.T) {
	for desc, tc := range invalidTenants {
		t.Run(desc, func(t *testing.T) {
			name := tc.name
			if name == "" {
				name = "bad"
			}
			obj := &unstructured.Unstructured{Object: map[string]any{
				"apiVersion": "authmesh.dev/v1alpha1",
				"kind":       "Tenant",
				"metadata":   map[string]any{"name": name},
			}}
			if tc.spec != nil {
				obj.Object["spec"] = tc.spec
			}
			err := apiServer.Client.Create(t.Context(), obj)
			if err == nil {
				_ = apiServer.Client.Delete(t.Context(), obj)
				t.Fatalf("the API server accepted it; want %q", tc.want)
			}
			msg := err.Error()
			if !strings.Contains(msg, tc.want) {
				t.Errorf("error %q\nwant it to say %q", msg, tc.want)
			}
			if tc.field != "" && !strings.Contains(msg, tc.field+": ") {
				t.Errorf("error %q\nwant it to name the field %s", msg, tc.field)
			}
			if strings.Contains(msg, "type conversion error") {
				t.Errorf("error %q carries CEL's type conversion noise", msg)
			}
		})
	}
}

// TestAPIServerAcceptsBoundaryTenant: the limits themselves are allowed (0s idle timeout and
// reuse grace, 10s tokens, 1m rotation, 10-digit OTP valid 10m), so the rules are not too strict.
func TestAPIServerAcceptsBoundaryTenant(t *testing.T) {
	obj := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "authmesh.dev/v1alpha1",
		"kind":       "Tenant",
		"metadata":   map[string]any{"name": uniqueName("edge")},
		"spec": map[string]any{
			"database": map[string]any{"name": "Edge_Case-1"},
			"tokens": map[string]any{
				"accessTokenTTL": "10s", "refreshTokenTTL": "11s", "idleTimeout": "0s",
				"refreshReuseGrace": "0s", "keyRotationInterval": "1m", "signingAlgorithm": "ES256",
			},
			"login":          map[string]any{"otp": map[string]any{"length": 10, "ttl": "10m", "maxAttempts": 10}},
			"roles":          []any{"reader"},
			"defaultRole":    "reader",
			"deletionPolicy": "Delete",
		},
	}}
	if err := apiServer.Client.Create(t.Context(), obj); err != nil {
		t.Fatalf("a Tenant at every limit was refused: %v", err)
	}
	t.Cleanup(func() { deleteTenantForGood(t, obj.GetName()) })
}
