package tenancy

import (
	"context"

	authmeshv1alpha1 "github.com/authmesh/authmesh/api/v1alpha1"
	"github.com/authmesh/authmesh/authserver/mail"
	"github.com/authmesh/authmesh/internal/keys"
)

// Config is everything a Source knows about one tenant.
type Config struct {
	// Name is the tenant id.
	Name string
	// Spec is the Tenant's spec with defaults applied.
	Spec authmeshv1alpha1.TenantSpec
	// Phase is the Tenant's status.phase; only Ready tenants serve.
	Phase authmeshv1alpha1.TenantPhase
	// StatusIssuer is status.issuer as the controller wrote it, "" if unknown; the registry
	// logs a mismatch with its own issuer.
	StatusIssuer string
	// DatabaseName is the tenant's MongoDB database.
	DatabaseName string
	// URI is the connection string of the tenant's database; "" means none yet.
	URI string
	// Keys is the tenant's signing key set; nil means none.
	Keys *keys.PrivateSet
	// KeysErr says why the key material present could not be used. The registry then keeps
	// the tenant's last good keys, if any: a half-written rotation must not stop signing.
	KeysErr error
	// SMTP is the tenant's own SMTP server (spec.email.smtpSecretRef), nil for the auth
	// server's. SMTPErr says why the one it names cannot be used: its mail then fails
	// rather than go out through another server.
	SMTP    *mail.SMTPConfig
	SMTPErr error
	// EnsureSchema asks the registry to create the database's collections and indexes
	// (tenantdb.EnsureSchema) when the tenant is first loaded or its database changes; for
	// sources with no controller to do it.
	EnsureSchema bool
}

// Sink receives a Source's view of the tenants. Calls are made from one goroutine at a time.
type Sink interface {
	// Upsert sets the full current state of one tenant.
	Upsert(Config)
	// Delete forgets a tenant.
	Delete(name string)
	// Synced says the initial set of tenants has been reported.
	Synced()
}

// Source watches where tenants are defined and reports them to a Sink until ctx ends.
type Source interface {
	Run(ctx context.Context, sink Sink) error
}
