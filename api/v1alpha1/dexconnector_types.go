package v1alpha1

import (
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// ConnectorType is a Dex connector type.
// +kubebuilder:validation:Enum=github;gitlab;microsoft;oidc;google;ldap;saml;oauth;bitbucket-cloud;gitea;openshift;keystone;atlassian-crowd;authproxy;linkedin;mockCallback;mockPassword
type ConnectorType string

// DexConnectorSpec is one upstream identity provider connector in Dex.
// +kubebuilder:validation:XValidation:rule="self.connectorId == oldSelf.connectorId",fieldPath=".connectorId",message="connectorId is immutable; create a new DexConnector for a new connector id"
type DexConnectorSpec struct {
	// providerRef names the OIDCProvider (with spec.dex) whose Dex holds this connector. Immutable.
	// +kubebuilder:validation:XValidation:rule="self == oldSelf",message="providerRef is immutable; create a new DexConnector to add the connector to another Dex"
	// +required
	ProviderRef ObjectRef `json:"providerRef"`

	// connectorId in Dex (the <id> of <issuer>/auth/<id>). Immutable.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=128
	// +kubebuilder:validation:Pattern=`^[A-Za-z0-9][A-Za-z0-9_-]*$`
	// +kubebuilder:validation:XValidation:rule="self != 'local'",message="the id 'local' is Dex's password database; choose another connectorId"
	// +required
	ConnectorID string `json:"connectorId"`

	// type of the connector.
	// +required
	Type ConnectorType `json:"type"`

	// displayName shown on Dex's login page.
	// +kubebuilder:validation:MaxLength=256
	// +optional
	DisplayName string `json:"displayName,omitempty"`

	// config is the Dex connector config for the type, without secret values (use secrets).
	// +kubebuilder:validation:Type=object
	// +kubebuilder:pruning:PreserveUnknownFields
	// +optional
	Config *apiextensionsv1.JSON `json:"config,omitempty"`

	// secrets are injected into config at reconcile time and never written back.
	// +listType=map
	// +listMapKey=path
	// +kubebuilder:validation:MaxItems=64
	// +optional
	Secrets []ConnectorSecret `json:"secrets,omitempty"`

	// deletionPolicy says what deleting this object does to the connector in Dex: Delete
	// (default) deletes it; Orphan releases the object's claim and leaves the connector in Dex.
	// +kubebuilder:default=Delete
	// +optional
	DeletionPolicy DeletionPolicy `json:"deletionPolicy,omitempty"`
}

// ConnectorSecret injects one Secret value into the connector config.
type ConnectorSecret struct {
	// path in config, dot-separated, e.g. clientSecret or bindPW.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=256
	// +kubebuilder:validation:Pattern=`^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$`
	// +required
	Path string `json:"path"`

	// secretRef is the Secret key holding the value.
	// +required
	SecretRef SecretKeyRef `json:"secretRef"`
}

// DexConnectorStatus is the observed state of a DexConnector.
type DexConnectorStatus struct {
	// conditions: Ready, Registered, ConnectorHealthy.
	// +listType=map
	// +listMapKey=type
	// +optional
	Conditions []metav1.Condition `json:"conditions,omitempty"`

	// observedGeneration is the generation the conditions describe (set after every reconcile,
	// failed ones included).
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`
}

// DexConnector is one upstream identity provider connector in a Dex administered by this operator.
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=dexconn;dexconnector
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Connector ID",type=string,JSONPath=`.spec.connectorId`
// +kubebuilder:printcolumn:name="Type",type=string,JSONPath=`.spec.type`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type DexConnector struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec   DexConnectorSpec   `json:"spec"`
	Status DexConnectorStatus `json:"status,omitempty"`
}

// GetConditions returns the status conditions.
func (o *DexConnector) GetConditions() []metav1.Condition { return o.Status.Conditions }

// SetConditions replaces the status conditions.
func (o *DexConnector) SetConditions(c []metav1.Condition) { o.Status.Conditions = c }

// +kubebuilder:object:root=true

// DexConnectorList is a list of DexConnectors.
type DexConnectorList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []DexConnector `json:"items"`
}

func init() {
	SchemeBuilder.Register(&DexConnector{}, &DexConnectorList{})
}
