// Package v1alpha1 holds the authmesh.dev/v1alpha1 API: the cluster-scoped Tenant, which a
// platform team applies to get a tenant's database, credentials and signing keys provisioned.
// Field validation lives in the CRD schema (OpenAPI and CEL) generated from the markers here,
// so the API server refuses a bad Tenant with a message a person understands.
//
// +kubebuilder:object:generate=true
// +groupName=authmesh.dev
package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

var (
	// GroupVersion is the group and version of every type in this package.
	GroupVersion = schema.GroupVersion{Group: "authmesh.dev", Version: "v1alpha1"}

	// SchemeBuilder registers this package's types with a runtime.Scheme.
	SchemeBuilder = runtime.NewSchemeBuilder(addKnownTypes)

	// AddToScheme adds this package's types to a runtime.Scheme.
	AddToScheme = SchemeBuilder.AddToScheme
)

// addKnownTypes registers Tenant and TenantList, and the meta types every group version needs.
func addKnownTypes(s *runtime.Scheme) error {
	s.AddKnownTypes(GroupVersion, &Tenant{}, &TenantList{})
	metav1.AddToGroupVersion(s, GroupVersion)
	return nil
}
