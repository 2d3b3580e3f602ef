// Package sidecar owns the wiring of the enforcing reverse proxy: listeners, the upstream
// transport, watching the policy file projected from pod annotations, and gateway mode. The
// decisions themselves (token verification, policy matching) belong to package guard. The
// sidecar links no Kubernetes or MongoDB package.
package sidecar
