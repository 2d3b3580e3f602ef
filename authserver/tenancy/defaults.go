package tenancy

import (
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	authmeshv1alpha1 "github.com/authmesh/authmesh/api/v1alpha1"
)

// ApplyDefaults fills in every default the CRD schema gives a Tenant's spec (the
// +kubebuilder:default markers in api/v1alpha1), for tenants that never pass through the API
// server. Fields already set are kept, so applying it to a Tenant read from Kubernetes changes
// nothing.
func ApplyDefaults(spec *authmeshv1alpha1.TenantSpec) {
	tok := &spec.Tokens
	if tok.Audience == "" {
		tok.Audience = "authmesh"
	}
	defaultDuration(&tok.AccessTokenTTL, 15*time.Minute)
	defaultDuration(&tok.RefreshTokenTTL, 168*time.Hour)
	defaultDuration(&tok.IdleTimeout, 0)
	defaultDuration(&tok.RefreshReuseGrace, 0)
	if tok.SigningAlgorithm == "" {
		tok.SigningAlgorithm = authmeshv1alpha1.SigningAlgorithmEdDSA
	}
	defaultDuration(&tok.KeyRotationInterval, 720*time.Hour)

	otp := &spec.Login.OTP
	if otp.Enabled == nil {
		enabled := true
		otp.Enabled = &enabled
	}
	if otp.Length == 0 {
		otp.Length = 6
	}
	defaultDuration(&otp.TTL, 5*time.Minute)
	if otp.MaxAttempts == 0 {
		otp.MaxAttempts = 5
	}
	lock := &spec.Login.Lockout
	if lock.MaxFailedAttempts == 0 {
		lock.MaxFailedAttempts = 5
	}
	defaultDuration(&lock.Duration, 15*time.Minute)

	if len(spec.Roles) == 0 {
		spec.Roles = []string{"user", "manager", "admin"}
	}
	if spec.DefaultRole == "" {
		spec.DefaultRole = "user"
	}
	if spec.Email.From == "" {
		spec.Email.From = "no-reply@example.com"
	}
	if spec.DeletionPolicy == "" {
		spec.DeletionPolicy = authmeshv1alpha1.DeletionPolicyRetain
	}
}

func defaultDuration(d **metav1.Duration, v time.Duration) {
	if *d == nil {
		*d = &metav1.Duration{Duration: v}
	}
}

var (
	tenantNameRE = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`)
	roleRE       = regexp.MustCompile(`^[a-z][a-z0-9_-]{0,31}$`)
	dbNameRE     = regexp.MustCompile(`^[a-zA-Z0-9_-]{1,63}$`)
	originRE     = regexp.MustCompile(`^https?://[^/\s]+$`)
)

// ValidTenantID reports whether id can name a tenant: a DNS-1123 label of at most 54 characters.
func ValidTenantID(id string) bool {
	return len(id) <= 54 && tenantNameRE.MatchString(id)
}

// Validate checks, for a tenant that never passed through the API server, the rules of the CRD
// schema the auth server relies on. spec must have its defaults applied. It returns every
// problem found.
func Validate(name string, spec *authmeshv1alpha1.TenantSpec) []string {
	var problems []string
	add := func(format string, args ...any) { problems = append(problems, fmt.Sprintf(format, args...)) }
	if !ValidTenantID(name) {
		add("metadata.name %q must be a DNS-1123 label of at most 54 characters", name)
	}
	if n := spec.Database.Name; n != "" && !dbNameRE.MatchString(n) {
		add("spec.database.name %q must match %s", n, dbNameRE)
	} else if slices.Contains([]string{"admin", "local", "config"}, strings.ToLower(n)) {
		add("spec.database.name must not be one of MongoDB's system databases (admin, local, config)")
	}
	tok := spec.Tokens
	if l := len(tok.Audience); l < 1 || l > 256 {
		add("spec.tokens.audience must have 1 to 256 characters")
	}
	if at := tok.AccessTokenTTL.Duration; at < 10*time.Second || at > 24*time.Hour {
		add("spec.tokens.accessTokenTTL %s must be between 10s and 24h", at)
	}
	if rt := tok.RefreshTokenTTL.Duration; rt <= tok.AccessTokenTTL.Duration || rt > 8760*time.Hour {
		add("spec.tokens.refreshTokenTTL %s must be longer than accessTokenTTL and at most 8760h", rt)
	}
	if tok.IdleTimeout.Duration < 0 {
		add("spec.tokens.idleTimeout must not be negative")
	}
	if g := tok.RefreshReuseGrace.Duration; g < 0 || g > time.Minute {
		add("spec.tokens.refreshReuseGrace %s must be between 0s and 1m", g)
	}
	switch tok.SigningAlgorithm {
	case authmeshv1alpha1.SigningAlgorithmEdDSA, authmeshv1alpha1.SigningAlgorithmES256:
	default:
		add("spec.tokens.signingAlgorithm %q must be EdDSA or ES256", tok.SigningAlgorithm)
	}
	if tok.KeyRotationInterval.Duration < time.Minute {
		add("spec.tokens.keyRotationInterval must be at least 1m")
	}
	otp := spec.Login.OTP
	if otp.Length < 6 || otp.Length > 10 {
		add("spec.login.otp.length %d must be between 6 and 10", otp.Length)
	}
	if ttl := otp.TTL.Duration; ttl < 30*time.Second || ttl > 10*time.Minute {
		add("spec.login.otp.ttl %s must be between 30s and 10m", ttl)
	}
	if otp.MaxAttempts < 1 || otp.MaxAttempts > 10 {
		add("spec.login.otp.maxAttempts %d must be between 1 and 10", otp.MaxAttempts)
	}
	lock := spec.Login.Lockout
	if lock.MaxFailedAttempts < 1 || lock.MaxFailedAttempts > 100 {
		add("spec.login.lockout.maxFailedAttempts %d must be between 1 and 100", lock.MaxFailedAttempts)
	}
	if d := lock.Duration.Duration; d < time.Minute || d > 720*time.Hour {
		add("spec.login.lockout.duration %s must be between 1m and 720h", d)
	}
	if len(spec.Roles) > 32 {
		add("spec.roles has %d entries, at most 32 allowed", len(spec.Roles))
	}
	for _, r := range spec.Roles {
		if !roleRE.MatchString(r) {
			add("spec.roles: %q must match %s", r, roleRE)
		}
	}
	if !slices.Contains(spec.Roles, spec.DefaultRole) {
		add("spec.defaultRole %q must be one of spec.roles", spec.DefaultRole)
	}
	for _, o := range spec.CORS.AllowedOrigins {
		if !originRE.MatchString(o) {
			add("spec.cors.allowedOrigins: %q must be scheme://host[:port]", o)
		}
	}
	return problems
}
