package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// GroupBindingSpec decides who may use which registry resources of its namespace.
type GroupBindingSpec struct {
	// expression is an expr-lang boolean over `groups []string`, e.g.
	// `"client:ci-pipeline" in groups` or `filter(groups, {# startsWith "team-a:"}) != []`.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=4096
	// +required
	Expression string `json:"expression"`

	// moduleResources are globs of modules (<namespace>/<name>/<system>) this binding grants: at
	// most 100, each at most 256 bytes (use several GroupBindings for more).
	// +kubebuilder:validation:MaxItems=100
	// +kubebuilder:validation:items:MaxLength=256
	// +optional
	ModuleResources []string `json:"moduleResources,omitempty"`

	// providerResources are globs of providers (<namespace>/<type>) this binding grants: at most
	// 100, each at most 256 bytes.
	// +kubebuilder:validation:MaxItems=100
	// +kubebuilder:validation:items:MaxLength=256
	// +optional
	ProviderResources []string `json:"providerResources,omitempty"`
}

// GroupBindingStatus is the observed state of a GroupBinding.
type GroupBindingStatus struct {
	// conditions: Ready, with the compile error as message when the expression is invalid.
	// +listType=map
	// +listMapKey=type
	// +optional
	Conditions []metav1.Condition `json:"conditions,omitempty"`

	// observedGeneration is the generation last reconciled successfully.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`
}

// GroupBinding grants registry resources to the identities whose groups match an expression.
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=gb;groupbinding
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Expression",type=string,JSONPath=`.spec.expression`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type GroupBinding struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec   GroupBindingSpec   `json:"spec"`
	Status GroupBindingStatus `json:"status,omitempty"`
}

// GetConditions returns the status conditions.
func (o *GroupBinding) GetConditions() []metav1.Condition { return o.Status.Conditions }

// SetConditions replaces the status conditions.
func (o *GroupBinding) SetConditions(c []metav1.Condition) { o.Status.Conditions = c }

// +kubebuilder:object:root=true

// GroupBindingList is a list of GroupBindings.
type GroupBindingList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []GroupBinding `json:"items"`
}

func init() {
	SchemeBuilder.Register(&GroupBinding{}, &GroupBindingList{})
}
