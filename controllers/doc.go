// Package controllers owns authmesh's Kubernetes control loops: the Tenant reconciler, which
// provisions each tenant's database, credentials and signing keys, and the Pod mutating webhook
// that injects the sidecar into pods that opt in. It never serves the auth API and never
// imports the auth server or the sidecar.
package controllers
