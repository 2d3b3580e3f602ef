// Package webhookcert keeps the certificates of the manager's webhook server itself, so that
// installing authmesh needs no cert-manager: a CA and a serving certificate in a Secret of the
// manager's namespace (a kubernetes.io/tls Secret with tls.crt, tls.key, ca.crt, as cert-manager
// writes it, plus ca.key), the CA bundle patched into the MutatingWebhookConfiguration's
// caBundle, and the serving certificate handed to the webhook server in memory
// (Rotator.TLSOpts: no files, no restart on rotation).
//
// # Rotation
//
// Defaults: ECDSA P-256 keys; a CA of 5 years, replaced 1 year before its end; serving
// certificates of 90 days, replaced 30 days before theirs; certificates are valid from an hour
// before issue, to allow for clock skew. When the CA is replaced, the new CA leads the bundle
// and the old one stays in it until it expires, and the serving certificate is left alone: it
// moves to the new CA at its own renewal (up to 60 days later; when that renewal falls due in
// the very sync that replaced the CA, it waits one more sync), so API servers trust a new CA
// before they are shown a certificate it signed. Because CARenewBefore exceeds CertValidity
// (Validate insists), no serving certificate outlives, in the bundle, the CA that signed it.
// Anything unusable in the Secret (unparseable, a key that does not match, certificates naming
// other hosts or not verifying against the bundle) is replaced at once.
//
// The Rotator is a manager.Runnable that runs on every replica (every replica serves webhooks).
// It syncs at start, when a certificate falls due, at least every ResyncInterval (one minute),
// and after failures with a backoff. Replicas agree through the Secret: writes carry the
// resourceVersion they read, so when two replicas renew at once one write wins and the other
// reads and serves the winner's. A steady-state sync writes nothing. Time comes from an
// injected clock (Options.Clock), which the tests move through a CA's whole life.
//
// With cert-manager instead (the manager's flag that turns self-management off), none of this
// runs: cert-manager writes the Secret, its CA injector patches caBundle
// (config/certmanager), and the webhook server reads the Secret mounted at its CertDir.
//
// It deliberately does not: manage certificates other than the webhook server's, record Events
// or metrics for rotations (the log says what changed and why), or patch validating webhook
// configurations (authmesh has none).
package webhookcert
