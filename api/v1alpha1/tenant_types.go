package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Tenant is one customer of the auth system: its own database, credentials, signing keys, roles
// and login rules. Its name is the tenant id that clients send as x-tenant-id.
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:scope=Cluster,shortName=tn
// +kubebuilder:printcolumn:name="Phase",type=string,JSONPath=`.status.phase`
// +kubebuilder:printcolumn:name="Database",type=string,JSONPath=`.status.databaseName`
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Email",type=string,JSONPath=`.status.conditions[?(@.type=="EmailReady")].reason`,priority=1
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
// +kubebuilder:validation:XValidation:rule="self.metadata.name.matches('^[a-z0-9]([-a-z0-9]*[a-z0-9])?$')",message="metadata.name must be a DNS-1123 label: lower-case letters, digits and '-', starting and ending with a letter or digit"
// +kubebuilder:validation:XValidation:rule="self.metadata.name.size() <= 54",message="metadata.name must be at most 54 characters, so that the database name authmesh_<name> fits MongoDB's 63-byte limit"
// +kubebuilder:validation:XValidation:rule="!has(oldSelf.status) || !has(oldSelf.status.databaseName) || ((has(self.spec) && has(self.spec.database) && has(self.spec.database.name) && size(self.spec.database.name) > 0 ? self.spec.database.name : 'authmesh_' + self.metadata.name) == oldSelf.status.databaseName)",message="spec.database.name cannot change once the database is provisioned (status.databaseName); create a new Tenant to use another database"
type Tenant struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// +kubebuilder:default={}
	Spec   TenantSpec   `json:"spec,omitempty"`
	Status TenantStatus `json:"status,omitempty"`
}

// TenantSpec is what the platform team asks for.
//
// +kubebuilder:validation:XValidation:rule="!has(self.roles) || !has(self.defaultRole) || self.roles.exists(r, r == self.defaultRole)",message="spec.defaultRole must be one of spec.roles"
type TenantSpec struct {
	// DisplayName is a human-readable name, shown in emails.
	// +kubebuilder:validation:MaxLength=128
	// +optional
	DisplayName string `json:"displayName,omitempty"`

	// +kubebuilder:default={}
	// +optional
	Database DatabaseSpec `json:"database,omitempty"`

	// +kubebuilder:default={}
	// +optional
	Tokens TokensSpec `json:"tokens,omitempty"`

	// +kubebuilder:default={}
	// +optional
	Login LoginSpec `json:"login,omitempty"`

	// Roles a user of this tenant may hold.
	// +kubebuilder:default={user,manager,admin}
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=32
	// +kubebuilder:validation:items:Pattern=`^[a-z][a-z0-9_-]{0,31}$`
	// +kubebuilder:validation:items:MaxLength=32
	// +listType=set
	// +optional
	Roles []string `json:"roles,omitempty"`

	// DefaultRole is the role a user gets at signup; one of Roles.
	// +kubebuilder:default=user
	// +kubebuilder:validation:MaxLength=32
	// +optional
	DefaultRole string `json:"defaultRole,omitempty"`

	// BootstrapAdmin creates the first admin once, who sets a password through an emailed link.
	// +optional
	BootstrapAdmin BootstrapAdminSpec `json:"bootstrapAdmin,omitempty"`

	// +optional
	CORS CORSSpec `json:"cors,omitempty"`

	// +kubebuilder:default={}
	// +optional
	Email EmailSpec `json:"email,omitempty"`

	// Suspended tenants answer TENANT_SUSPENDED and issue no tokens.
	// +optional
	Suspended bool `json:"suspended,omitempty"`

	// DeletionPolicy says what happens to the database when the Tenant is deleted: Retain
	// keeps it (and its -db Secret) for a Tenant of the same name to adopt; Delete drops the
	// database, its user and both Secrets.
	// +kubebuilder:default=Retain
	// +optional
	DeletionPolicy DeletionPolicy `json:"deletionPolicy,omitempty"`
}

// DeletionPolicy is Retain or Delete.
// +kubebuilder:validation:Enum=Retain;Delete
type DeletionPolicy string

const (
	DeletionPolicyRetain DeletionPolicy = "Retain"
	DeletionPolicyDelete DeletionPolicy = "Delete"
)

// SigningAlgorithm is the JWS algorithm of the tenant's keys.
// +kubebuilder:validation:Enum=EdDSA;ES256
type SigningAlgorithm string

const (
	SigningAlgorithmEdDSA SigningAlgorithm = "EdDSA"
	SigningAlgorithmES256 SigningAlgorithm = "ES256"
)

// DatabaseSpec says where the tenant's data lives.
type DatabaseSpec struct {
	// Name of the MongoDB database; default authmesh_<tenant>. Two Tenants may not share one.
	// It cannot change once the controller has provisioned the database (status.databaseName).
	// +kubebuilder:validation:MaxLength=63
	// +kubebuilder:validation:XValidation:rule="size(self) == 0 || self.matches('^[a-zA-Z0-9_-]+$')",message="spec.database.name may contain only letters, digits, '_' and '-' (empty means authmesh_<tenant>)"
	// +kubebuilder:validation:XValidation:rule="!(self.lowerAscii() in ['admin', 'local', 'config'])",message="spec.database.name must not be one of MongoDB's system databases (admin, local, config)"
	// +optional
	Name string `json:"name,omitempty"`

	// ConnectionSecretRef names a Secret in the controller's namespace whose key "uri" is a
	// dedicated MongoDB for this tenant; empty means the platform's MongoDB.
	// +optional
	ConnectionSecretRef SecretReference `json:"connectionSecretRef,omitempty"`
}

// SecretReference names a Secret in the controller's namespace.
type SecretReference struct {
	// +kubebuilder:validation:MaxLength=253
	// +optional
	Name string `json:"name,omitempty"`
}

// TokensSpec shapes the tenant's access and refresh tokens.
//
// +kubebuilder:validation:XValidation:rule="!has(self.refreshTokenTTL) || !has(self.accessTokenTTL) || !self.refreshTokenTTL.matches('^([0-9]+([.][0-9]+)?(h|m|s|ms|us|ns))+$') || !self.accessTokenTTL.matches('^([0-9]+([.][0-9]+)?(h|m|s|ms|us|ns))+$') || duration(self.refreshTokenTTL) > duration(self.accessTokenTTL)",message="spec.tokens.refreshTokenTTL must be longer than spec.tokens.accessTokenTTL"
type TokensSpec struct {
	// Audience is the `aud` claim of access tokens.
	// +kubebuilder:default=authmesh
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=256
	// +optional
	Audience string `json:"audience,omitempty"`

	// AccessTokenTTL is the lifetime of an access token; at least 10s.
	// +kubebuilder:default="15m"
	// +kubebuilder:validation:XValidation:rule="!self.matches('^([0-9]+([.][0-9]+)?(h|m|s|ms|us|ns))+$') || duration(self) >= duration('10s')",message="accessTokenTTL must be at least 10s"
	// +kubebuilder:validation:XValidation:rule="!self.matches('^([0-9]+([.][0-9]+)?(h|m|s|ms|us|ns))+$') || duration(self) <= duration('24h')",message="accessTokenTTL must be at most 24h"
	// +kubebuilder:validation:XValidation:rule="self.matches('^([0-9]+([.][0-9]+)?(h|m|s|ms|us|ns))+$')",message="accessTokenTTL must be a duration such as 90s, 15m or 1h30m"
	// +optional
	AccessTokenTTL *metav1.Duration `json:"accessTokenTTL,omitempty"`

	// RefreshTokenTTL is a session's absolute lifetime; longer than AccessTokenTTL.
	// +kubebuilder:default="168h"
	// +kubebuilder:validation:XValidation:rule="!self.matches('^([0-9]+([.][0-9]+)?(h|m|s|ms|us|ns))+$') || duration(self) <= duration('8760h')",message="refreshTokenTTL must be at most 8760h (a year)"
	// +kubebuilder:validation:XValidation:rule="self.matches('^([0-9]+([.][0-9]+)?(h|m|s|ms|us|ns))+$')",message="refreshTokenTTL must be a duration such as 24h or 168h"
	// +optional
	RefreshTokenTTL *metav1.Duration `json:"refreshTokenTTL,omitempty"`

	// IdleTimeout ends a session unused this long; 0 means none.
	// +kubebuilder:default="0s"
	// +kubebuilder:validation:XValidation:rule="self.matches('^([0-9]+([.][0-9]+)?(h|m|s|ms|us|ns))+$')",message="idleTimeout must be a duration such as 0s, 30m or 12h (0s means no idle timeout)"
	// +optional
	IdleTimeout *metav1.Duration `json:"idleTimeout,omitempty"`

	// RefreshReuseGrace lets the immediate predecessor of a rotated refresh token be presented
	// again within this time (a lost response can be retried); 0 means strict reuse detection.
	// +kubebuilder:default="0s"
	// +kubebuilder:validation:XValidation:rule="!self.matches('^([0-9]+([.][0-9]+)?(h|m|s|ms|us|ns))+$') || (duration(self) >= duration('0s') && duration(self) <= duration('1m'))",message="refreshReuseGrace must be between 0s and 1m"
	// +kubebuilder:validation:XValidation:rule="self.matches('^([0-9]+([.][0-9]+)?(h|m|s|ms|us|ns))+$')",message="refreshReuseGrace must be a duration such as 0s or 10s"
	// +optional
	RefreshReuseGrace *metav1.Duration `json:"refreshReuseGrace,omitempty"`

	// +kubebuilder:default=EdDSA
	// +optional
	SigningAlgorithm SigningAlgorithm `json:"signingAlgorithm,omitempty"`

	// KeyRotationInterval is how long a signing key signs before a new one replaces it; at least 1m.
	// +kubebuilder:default="720h"
	// +kubebuilder:validation:XValidation:rule="!self.matches('^([0-9]+([.][0-9]+)?(h|m|s|ms|us|ns))+$') || duration(self) >= duration('1m')",message="keyRotationInterval must be at least 1m"
	// +kubebuilder:validation:XValidation:rule="self.matches('^([0-9]+([.][0-9]+)?(h|m|s|ms|us|ns))+$')",message="keyRotationInterval must be a duration such as 720h"
	// +optional
	KeyRotationInterval *metav1.Duration `json:"keyRotationInterval,omitempty"`
}

// LoginSpec holds the tenant's login rules.
type LoginSpec struct {
	// +kubebuilder:default={}
	// +optional
	OTP OTPSpec `json:"otp,omitempty"`

	// +kubebuilder:default={}
	// +optional
	Lockout LockoutSpec `json:"lockout,omitempty"`
}

// OTPSpec configures the emailed one-time code of the second login step.
type OTPSpec struct {
	// +kubebuilder:default=true
	// +optional
	Enabled *bool `json:"enabled,omitempty"`

	// Length of the code in digits.
	// +kubebuilder:default=6
	// +kubebuilder:validation:Minimum=6
	// +kubebuilder:validation:Maximum=10
	// +optional
	Length int32 `json:"length,omitempty"`

	// TTL of a code; at most 10m.
	// +kubebuilder:default="5m"
	// +kubebuilder:validation:XValidation:rule="!self.matches('^([0-9]+([.][0-9]+)?(h|m|s|ms|us|ns))+$') || (duration(self) >= duration('30s') && duration(self) <= duration('10m'))",message="otp.ttl must be between 30s and 10m"
	// +kubebuilder:validation:XValidation:rule="self.matches('^([0-9]+([.][0-9]+)?(h|m|s|ms|us|ns))+$')",message="otp.ttl must be a duration such as 5m or 90s"
	// +optional
	TTL *metav1.Duration `json:"ttl,omitempty"`

	// MaxAttempts is how many wrong codes end a login attempt.
	// +kubebuilder:default=5
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=10
	// +optional
	MaxAttempts int32 `json:"maxAttempts,omitempty"`
}

// LockoutSpec locks an account after repeated wrong passwords.
type LockoutSpec struct {
	// +kubebuilder:default=5
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=100
	// +optional
	MaxFailedAttempts int32 `json:"maxFailedAttempts,omitempty"`

	// +kubebuilder:default="15m"
	// +kubebuilder:validation:XValidation:rule="!self.matches('^([0-9]+([.][0-9]+)?(h|m|s|ms|us|ns))+$') || (duration(self) >= duration('1m') && duration(self) <= duration('720h'))",message="lockout.duration must be between 1m and 720h"
	// +kubebuilder:validation:XValidation:rule="self.matches('^([0-9]+([.][0-9]+)?(h|m|s|ms|us|ns))+$')",message="lockout.duration must be a duration such as 15m or 1h"
	// +optional
	Duration *metav1.Duration `json:"duration,omitempty"`
}

// BootstrapAdminSpec names the tenant's first admin.
type BootstrapAdminSpec struct {
	// +kubebuilder:validation:MaxLength=254
	// +kubebuilder:validation:Pattern=`^$|^[^@\s]+@[^@\s]+$`
	// +optional
	Email string `json:"email,omitempty"`
}

// CORSSpec lists the browser origins allowed to call the auth server for this tenant.
type CORSSpec struct {
	// +kubebuilder:validation:MaxItems=64
	// +kubebuilder:validation:items:Pattern=`^https?://[^/\s]+$`
	// +listType=set
	// +optional
	AllowedOrigins []string `json:"allowedOrigins,omitempty"`
}

// EmailSpec says how the tenant's mail is sent.
type EmailSpec struct {
	// +kubebuilder:default="no-reply@example.com"
	// +kubebuilder:validation:Pattern=`^[^@\s]+@[^@\s]+$`
	// +optional
	From string `json:"from,omitempty"`

	// SMTPSecretRef names a Secret in the controller's namespace with the SMTP server to use.
	// +optional
	SMTPSecretRef SecretReference `json:"smtpSecretRef,omitempty"`
}

// TenantPhase summarises the Tenant's state.
// +kubebuilder:validation:Enum=Pending;Provisioning;Ready;Failed;Suspended
type TenantPhase string

const (
	TenantPhasePending      TenantPhase = "Pending"
	TenantPhaseProvisioning TenantPhase = "Provisioning"
	TenantPhaseReady        TenantPhase = "Ready"
	TenantPhaseFailed       TenantPhase = "Failed"
	TenantPhaseSuspended    TenantPhase = "Suspended"
)

// TenantStatus is what the controller observed and provisioned.
type TenantStatus struct {
	// +optional
	Phase TenantPhase `json:"phase,omitempty"`

	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`

	// Conditions: DatabaseReady, SigningKeysReady, Ready.
	// +listType=map
	// +listMapKey=type
	// +optional
	Conditions []metav1.Condition `json:"conditions,omitempty"`

	// +optional
	DatabaseName string `json:"databaseName,omitempty"`
	// +optional
	CredentialsSecret string `json:"credentialsSecret,omitempty"`
	// +optional
	SigningKeysSecret string `json:"signingKeysSecret,omitempty"`
	// +optional
	ActiveKeyID string `json:"activeKeyID,omitempty"`
	// Issuer is the `iss` of the tenant's access tokens: the auth server's public URL + /t/<tenant>.
	// +optional
	Issuer string `json:"issuer,omitempty"`
}

// TenantList is a list of Tenants.
//
// +kubebuilder:object:root=true
type TenantList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []Tenant `json:"items"`
}
