// Package v1alpha1 contains the API types of the claims.dexterity.dev v1alpha1 group:
// DexEntryClaim, the operator's own record of which object owns a client or connector id in a
// Dex. It is cluster-scoped and written only by the operator, so no tenant can forge it.
// +kubebuilder:object:generate=true
// +groupName=claims.dexterity.dev
package v1alpha1

import (
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/scheme"
)

var (
	// GroupVersion is the group and version of these types.
	GroupVersion = schema.GroupVersion{Group: "claims.dexterity.dev", Version: "v1alpha1"}

	// SchemeBuilder registers the types of this package with a scheme.
	SchemeBuilder = &scheme.Builder{GroupVersion: GroupVersion}

	// AddToScheme adds the types of this package to a scheme.
	AddToScheme = SchemeBuilder.AddToScheme
)
