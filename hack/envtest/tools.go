//go:build tools

// Package envtest pins the Kubernetes binaries the test harness runs, kube-apiserver and
// kubectl, built from source at the version this module requires, since no prebuilt
// binaries can be downloaded where this project is built.
package envtest

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kubectl"
)
