// Package controllers owns authmesh's Tenant reconciler, which provisions each tenant's
// database, credentials and signing keys; its subpackages own the Pod mutating webhook that
// injects the sidecar into pods that opt in (injection) and that webhook's certificates
// (webhookcert). It never serves the auth API and never imports the auth server or the sidecar.
//
// # Tenant reconciler
//
// For each cluster-scoped Tenant it keeps, in the controller's namespace:
//
//   - the tenant database (default authmesh_<name>) with the collections and indexes of
//     internal/tenantdb. A database name another Tenant already uses is refused (phase Failed,
//     reason DatabaseNameConflict); the Tenant that provisioned it first, else the older one,
//     keeps it, and the refused Tenant is retried whenever another Tenant changes.
//   - tenant-<name>-db: "uri" and "database", plus "username" and "password" of a user with
//     readWrite on that database alone, where the server manages users. Where it does not (the
//     dev database: createUser is CommandNotFound), DatabaseReady says so with reason
//     SharedCredentials and "uri" is the platform's connection string with the tenant
//     database in its path. A new password is written to the Secret before the user gets it.
//   - tenant-<name>-keys: "jwks.json" and "active-kid" (see internal/keys), with the bookkeeping
//     in its annotations: authmesh.dev/active-key-since, authmesh.dev/retired-keys (kid -> when
//     it stopped signing) and authmesh.dev/rotate-keys-handled. A new key replaces the active
//     one every keyRotationInterval, when the Tenant's authmesh.dev/rotate-keys annotation
//     takes a value not acted on before, and when signingAlgorithm changes. A retired key stays
//     published for one access-token TTL plus 30 s of clock skew, then goes.
//
// EmailReady reports on the SMTP Secret a Tenant may name in spec.email.smtpSecretRef
// (internal/smtpsecret reads it, as the auth server does): True ServerSMTP without one, True
// TenantSMTP when it reads, False SMTPSecretNotFound or SMTPSecretInvalid (naming the key at
// fault, never a value) otherwise. It does not gate Ready: a tenant whose logins need no
// emailed code still works without mail.
//
// Status is computed on a copy and written once per reconcile, only when it changed;
// Secrets are written only when they differ. A steady-state reconcile therefore writes
// nothing. Events are recorded when a condition changes status or reason, and when a key is
// rotated or removed.
//
// The platform MongoDB comes from a connection string or a Secret (key "uri"); a Tenant's
// spec.database.connectionSecretRef names its own. The platform user needs to create databases,
// indexes and users and to drop databases and users (on MongoDB: readWriteAnyDatabase,
// dbAdminAnyDatabase, userAdminAnyDatabase). While the server is unreachable, DatabaseReady is
// False with reason DatabaseUnreachable and the reconcile is retried with backoff (250 ms up to
// a minute); the signing keys are provisioned regardless. A healthy Tenant is re-checked every
// RecheckInterval, so an outage shows in its conditions.
//
// Several Tenants are reconciled at once (MaxConcurrent; the workqueue never gives one Tenant
// to two workers). What an event looks up goes through field indexes on the cached Tenants
// (database name, connection Secret, refused for a conflict), so one event costs the Tenants it
// concerns, not all of them: at 1,000 Tenants that took the controller's CPU from ~47 s to ~8 s.
//
// Deletion: a finalizer applies spec.deletionPolicy. Retain keeps the database and
// tenant-<name>-db, which is never owned by the Tenant under Retain, so nothing removes it; a new
// Tenant of the same name adopts both (same user, same password). Delete drops the user and the
// database and deletes tenant-<name>-db, which is then owned by the Tenant so a garbage
// collector removes it too. tenant-<name>-keys is owned by its Tenant and deleted either way.
// Deleting with Delete waits (and retries) until the database can be reached.
//
// # Metrics
//
// Beside controller-runtime's own, registered on the registry given to NewMetrics:
//
//	authmesh_controller_tenants{phase}               gauge, Tenants by status.phase
//	authmesh_controller_key_rotations_total{reason}  counter, reason scheduled|requested|algorithm
//
// It deliberately does not: verify that a stored user password still works (it cannot read the
// server's copy), move data when a Tenant's database changes (the CRD refuses changing
// spec.database.name once provisioned), or close a cached MongoDB client whose connection string
// is no longer used.
package controllers
