package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
)

// HostnameClaimProvider is the OIDCProvider that serves a registry host name.
type HostnameClaimProvider struct {
	// namespace of the OIDCProvider.
	// +kubebuilder:validation:MaxLength=63
	// +required
	Namespace string `json:"namespace"`
	// name of the OIDCProvider.
	// +kubebuilder:validation:MaxLength=253
	// +required
	Name string `json:"name"`
	// uid of the OIDCProvider: a provider deleted and recreated under the same name is another
	// holder.
	// +required
	UID types.UID `json:"uid"`
}

// HostnameClaimSpec says which OIDCProvider serves which registry host name.
// +kubebuilder:validation:XValidation:rule="self == oldSelf",message="a claim never changes; it is deleted when its host name is released"
type HostnameClaimSpec struct {
	// hostname is the registry host name (lower case), as listed in the provider's
	// spec.hostnames.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +required
	Hostname string `json:"hostname"`
	// provider is the OIDCProvider that serves the host name.
	// +required
	Provider HostnameClaimProvider `json:"provider"`
}

// HostnameClaim records that one OIDCProvider serves one registry host name. The operator creates
// it when the provider first lists the host and deletes it when the provider stops listing it or
// goes away; its name is derived from the host name, so creating it is the atomic "first come,
// first served" of a host, whatever the clocks and the names of the providers say. Users do not
// write these.
// +kubebuilder:object:root=true
// +kubebuilder:resource:scope=Cluster,categories=dexterity-internal
// +kubebuilder:printcolumn:name="Hostname",type=string,JSONPath=`.spec.hostname`
// +kubebuilder:printcolumn:name="Provider-Namespace",type=string,JSONPath=`.spec.provider.namespace`
// +kubebuilder:printcolumn:name="Provider",type=string,JSONPath=`.spec.provider.name`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type HostnameClaim struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec HostnameClaimSpec `json:"spec"`
}

// +kubebuilder:object:root=true

// HostnameClaimList is a list of HostnameClaims.
type HostnameClaimList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []HostnameClaim `json:"items"`
}

func init() {
	SchemeBuilder.Register(&HostnameClaim{}, &HostnameClaimList{})
}
