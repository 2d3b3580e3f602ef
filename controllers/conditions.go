package controllers

import "time"

// Condition types of a Tenant's status.
const (
	// ConditionDatabaseReady: the tenant's database, collections and indexes exist and
	// tenant-<name>-db holds a connection string for it.
	ConditionDatabaseReady = "DatabaseReady"
	// ConditionSigningKeysReady: tenant-<name>-keys holds the tenant's signing keys.
	ConditionSigningKeysReady = "SigningKeysReady"
	// ConditionReady: both of the above, and the tenant is not suspended.
	ConditionReady = "Ready"
	// ConditionEmailReady: the SMTP server the tenant's mail goes through is usable as far
	// as the controller can tell (its Secret exists and reads). It does not gate Ready: a
	// tenant without mail still signs users in where no emailed code is needed.
	ConditionEmailReady = "EmailReady"
)

// Reasons of the conditions above, also used as the reasons of the Events recorded when a
// condition changes. Every reason the controller writes is declared here.
const (
	// DatabaseReady=True.
	ReasonDatabaseProvisioned = "DatabaseProvisioned" // with a database user of its own
	ReasonSharedCredentials   = "SharedCredentials"   // the server has no user management (createUser is CommandNotFound)

	// DatabaseReady=False.
	ReasonDatabaseUnreachable        = "DatabaseUnreachable"        // no MongoDB server answered; retried with backoff
	ReasonDatabaseNameConflict       = "DatabaseNameConflict"       // another Tenant uses the database; waits for it to go
	ReasonDatabaseNotOwned           = "DatabaseNotOwned"           // the database exists and was not created for this Tenant
	ReasonConnectionSecretNotFound   = "ConnectionSecretNotFound"   // the Secret with the connection string does not exist (yet)
	ReasonConnectionStringInvalid    = "ConnectionStringInvalid"    // that Secret has no usable key "uri"
	ReasonDatabaseProvisioningFailed = "DatabaseProvisioningFailed" // the server refused a command; retried with backoff
	ReasonCredentialsSecretFailed    = "CredentialsSecretFailed"    // writing tenant-<name>-db failed; retried

	// SigningKeysReady.
	ReasonSigningKeysActive = "SigningKeysActive"
	ReasonSigningKeysFailed = "SigningKeysFailed"

	// EmailReady.
	ReasonServerSMTP         = "ServerSMTP"         // no smtpSecretRef: the auth server's SMTP server
	ReasonTenantSMTP         = "TenantSMTP"         // the Secret it names reads as an SMTP server
	ReasonSMTPSecretNotFound = "SMTPSecretNotFound" // the Secret it names does not exist (yet)
	ReasonSMTPSecretInvalid  = "SMTPSecretInvalid"  // that Secret lacks a host, or has a bad port or TLS mode

	// Ready.
	ReasonReady               = "Ready"
	ReasonSuspended           = "Suspended"
	ReasonDatabaseNotReady    = "DatabaseNotReady"
	ReasonSigningKeysNotReady = "SigningKeysNotReady"

	// Events only.
	ReasonSigningKeyRotated     = "SigningKeyRotated"
	ReasonSigningKeyRemoved     = "RetiredSigningKeyRemoved"
	ReasonSigningKeysRegenerate = "SigningKeysRegenerated" // tenant-<name>-keys held no usable key set
	ReasonDatabaseDropped       = "DatabaseDropped"
	ReasonDatabaseRetained      = "DatabaseRetained"
	ReasonDatabaseNotDropped    = "DatabaseNotDropped" // deletionPolicy Delete, but the database is not marked as this Tenant's
	ReasonDeletionBlocked       = "DeletionBlocked"
)

// Why a signing key was rotated: the label values of authmesh_controller_key_rotations_total.
const (
	RotationScheduled        = "scheduled" // keyRotationInterval passed
	RotationRequested        = "requested" // a new value of the authmesh.dev/rotate-keys annotation
	RotationAlgorithmChanged = "algorithm" // spec.tokens.signingAlgorithm changed
)

// Annotations, labels and the finalizer, all under authmesh.dev.
const (
	// AnnotationRotateKeys on a Tenant: setting it to a value not seen before rotates the
	// signing key at once (emergency rotation).
	AnnotationRotateKeys = "authmesh.dev/rotate-keys"

	// Bookkeeping on tenant-<name>-keys.
	AnnotationActiveKeySince    = "authmesh.dev/active-key-since"    // RFC 3339: when the active key started signing
	AnnotationRetiredKeys       = "authmesh.dev/retired-keys"        // JSON {kid: RFC 3339 time it stopped signing}
	AnnotationRotateKeysHandled = "authmesh.dev/rotate-keys-handled" // the last rotate-keys value acted on

	// LabelTenant on both Secrets names their Tenant.
	LabelTenant    = "authmesh.dev/tenant"
	LabelManagedBy = "app.kubernetes.io/managed-by"
	ManagedBy      = "authmesh-controller"

	// Finalizer lets the controller apply the deletion policy before a Tenant goes.
	Finalizer = "authmesh.dev/deletion-policy"
)

// Data keys of tenant-<name>-db. The keys of tenant-<name>-keys are in internal/keys.
const (
	DBSecretURI      = "uri"
	DBSecretDatabase = "database"
	DBSecretUsername = "username"
	DBSecretPassword = "password"
)

const (
	// DatabasePrefix + the tenant name is the default database name.
	DatabasePrefix = "authmesh_"
	// ClockSkew is the verifiers' leeway: a retired key stays published for one access-token
	// TTL plus this.
	ClockSkew = 30 * time.Second
)

// DBSecretName is the name of a tenant's connection Secret.
func DBSecretName(tenant string) string { return "tenant-" + tenant + "-db" }

// KeysSecretName is the name of a tenant's signing-keys Secret.
func KeysSecretName(tenant string) string { return "tenant-" + tenant + "-keys" }
