package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// DexStaticClientSpec is one OAuth2 client registered in Dex.
// +kubebuilder:validation:XValidation:rule="(has(self.public) && self.public) || has(self.secretRef)",fieldPath=".secretRef",message="a confidential client (spec.public=false) needs a secret: set spec.secretRef (with spec.generateSecret=true to have the Secret created), or set spec.public=true"
// +kubebuilder:validation:XValidation:rule="has(self.clientId) == has(oldSelf.clientId) && (!has(self.clientId) || self.clientId == oldSelf.clientId)",fieldPath=".clientId",message="clientId is immutable; create a new DexStaticClient for a new client id"
// +kubebuilder:validation:XValidation:rule="!has(self.generateSecret) || !self.generateSecret || has(self.secretRef)",fieldPath=".generateSecret",message="generateSecret needs spec.secretRef to name the Secret to create"
// +kubebuilder:validation:XValidation:rule="!has(self.credentials) || !has(self.secretRef) || self.credentials.secretName != self.secretRef.name",fieldPath=".credentials.secretName",message="the credentials Secret is written by the operator: give it another name than spec.secretRef.name"
type DexStaticClientSpec struct {
	// providerRef names the OIDCProvider (with spec.dex) whose Dex holds this client. Immutable:
	// to move a client to another Dex, create a new DexStaticClient.
	// +kubebuilder:validation:XValidation:rule="self == oldSelf",message="providerRef is immutable; create a new DexStaticClient to register the client in another Dex"
	// +required
	ProviderRef ObjectRef `json:"providerRef"`

	// clientId in Dex; defaults to <namespace>-<name>. Immutable.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern=`^[A-Za-z0-9][A-Za-z0-9._:-]*$`
	// +optional
	ClientID string `json:"clientId,omitempty"`

	// displayName is the name Dex shows on its approval page.
	// +kubebuilder:validation:MaxLength=256
	// +optional
	DisplayName string `json:"displayName,omitempty"`

	// public marks a public client (no secret; e.g. CLIs such as tofu login).
	// +optional
	Public bool `json:"public,omitempty"`

	// redirectURIs are absolute http(s) URIs (plain http only for loopback hosts: localhost,
	// ::1, or an IPv4 address 127.x.y.z). At most 200, each at most 2048 bytes: with
	// loopbackRedirect's at most 100 ports, the effective list has at most 300 entries.
	// +kubebuilder:validation:items:XValidation:rule="isURL(self) && (url(self).getScheme() == 'https' || (url(self).getScheme() == 'http' && (url(self).getHostname() in ['localhost', '::1'] || self.matches('^http://127([.](25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])){3}(:[0-9]*)?([/?#]|$)'))))",message="each redirect URI must be an absolute https URL, or http on a loopback host (localhost, an IPv4 address 127.x.y.z, ::1)"
	// +kubebuilder:validation:MaxItems=200
	// +kubebuilder:validation:items:MaxLength=2048
	// +optional
	RedirectURIs []string `json:"redirectURIs,omitempty"`

	// loopbackRedirect adds http://localhost:<port><path> for every port of a range.
	// +optional
	LoopbackRedirect *LoopbackRedirect `json:"loopbackRedirect,omitempty"`

	// trustedPeers are client ids allowed to exchange tokens on behalf of this client.
	// +listType=set
	// +kubebuilder:validation:MaxItems=100
	// +kubebuilder:validation:items:MaxLength=253
	// +optional
	TrustedPeers []string `json:"trustedPeers,omitempty"`

	// logoUrl shown by Dex.
	// +kubebuilder:validation:XValidation:rule="isURL(self) && url(self).getScheme() in ['http', 'https']",message="must be an absolute http(s) URL"
	// +kubebuilder:validation:MaxLength=2048
	// +optional
	LogoURL string `json:"logoUrl,omitempty"`

	// secretRef names the Secret key holding the client secret; required unless public.
	// +optional
	SecretRef *SecretKeyRef `json:"secretRef,omitempty"`

	// generateSecret creates the secretRef Secret with a random value when it is missing. The
	// Secret is owned by this object.
	// +optional
	GenerateSecret bool `json:"generateSecret,omitempty"`

	// adoptExisting lets this object take over a client that already exists in Dex and that
	// Dexterity did not create.
	// +optional
	// +kubebuilder:default=false
	AdoptExisting bool `json:"adoptExisting,omitempty"`

	// credentials asks for a Secret, in this object's namespace and owned by it, that holds what
	// an application needs to log users in with this client: the client id, the client secret
	// (confidential clients) and the issuer URL, under key names the application reads.
	// +optional
	Credentials *ClientCredentials `json:"credentials,omitempty"`

	// deletionPolicy says what deleting this object does to the client in Dex: Delete (default)
	// deletes it; Orphan releases the object's claim and leaves the client in Dex (migrations,
	// uninstalling without losing logins).
	// +kubebuilder:default=Delete
	// +optional
	DeletionPolicy DeletionPolicy `json:"deletionPolicy,omitempty"`
}

// ClientCredentials describes the credentials Secret of a DexStaticClient.
type ClientCredentials struct {
	// secretName is the name of the Secret (in the object's namespace) the operator writes and
	// owns. It must not be the Secret of spec.secretRef.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`
	// +required
	SecretName string `json:"secretName"`

	// keys are the key names in the Secret (defaults clientID, clientSecret, issuerURL).
	// +optional
	Keys *CredentialKeys `json:"keys,omitempty"`

	// labels added to the Secret (for example the label Argo CD reads).
	// +kubebuilder:validation:MaxProperties=32
	// +optional
	Labels map[string]LabelValue `json:"labels,omitempty"`

	// annotations added to the Secret.
	// +kubebuilder:validation:MaxProperties=32
	// +optional
	Annotations map[string]AnnotationValue `json:"annotations,omitempty"`
}

// LabelValue is the value of a label.
// +kubebuilder:validation:MaxLength=63
type LabelValue string

// AnnotationValue is the value of an annotation written by the operator for a tenant.
// +kubebuilder:validation:MaxLength=4096
type AnnotationValue string

// CredentialKeys are the key names of a credentials Secret.
// +kubebuilder:validation:XValidation:rule="[self.clientID, self.clientSecret, self.issuerURL].all(k, [self.clientID, self.clientSecret, self.issuerURL].filter(o, o == k).size() == 1)",message="clientID, clientSecret and issuerURL must be three different key names"
type CredentialKeys struct {
	// clientID is the key of the client id.
	// +kubebuilder:default=clientID
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern=`^[-._a-zA-Z0-9]+$`
	// +optional
	ClientID string `json:"clientID,omitempty"`
	// clientSecret is the key of the client secret (confidential clients only).
	// +kubebuilder:default=clientSecret
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern=`^[-._a-zA-Z0-9]+$`
	// +optional
	ClientSecret string `json:"clientSecret,omitempty"`
	// issuerURL is the key of the issuer URL.
	// +kubebuilder:default=issuerURL
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern=`^[-._a-zA-Z0-9]+$`
	// +optional
	IssuerURL string `json:"issuerURL,omitempty"`
}

// LoopbackRedirect expands to http://localhost:<port><path> for every port of ports: at most
// 100 ports of at most 256-byte paths, so the expansion stays under 28 KiB.
type LoopbackRedirect struct {
	// ports is the [from, to] range, at most 100 ports, e.g. [10000, 10010] (tofu login's).
	// +kubebuilder:validation:MinItems=2
	// +kubebuilder:validation:MaxItems=2
	// +kubebuilder:validation:items:Minimum=1
	// +kubebuilder:validation:items:Maximum=65535
	// +kubebuilder:validation:XValidation:rule="self[0] <= self[1] && self[1] - self[0] < 100",message="must be [from, to] with from <= to and at most 100 ports, e.g. [10000, 10010]"
	// +required
	Ports []int32 `json:"ports"`

	// path of the redirect URIs: an absolute URL path (no query or fragment), at most 256 bytes.
	// +kubebuilder:default=/login
	// +kubebuilder:validation:MaxLength=256
	// +kubebuilder:validation:Pattern=`^/[-A-Za-z0-9._~!$&'()*+,;=:@%/]*$`
	// +optional
	Path string `json:"path,omitempty"`
}

// DexStaticClientStatus is the observed state of a DexStaticClient.
type DexStaticClientStatus struct {
	// clientId is the effective client id in Dex.
	// +optional
	ClientID string `json:"clientId,omitempty"`

	// redirectURIs is the effective, sorted list registered in Dex (spec.redirectURIs plus the
	// loopbackRedirect expansion: at most 200 + 100).
	// +kubebuilder:validation:MaxItems=300
	// +kubebuilder:validation:items:MaxLength=2048
	// +optional
	RedirectURIs []string `json:"redirectURIs,omitempty"`

	// conditions: Ready, Registered, SecretReady.
	// +listType=map
	// +listMapKey=type
	// +optional
	Conditions []metav1.Condition `json:"conditions,omitempty"`

	// observedGeneration is the generation the conditions describe (set after every reconcile,
	// failed ones included).
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`

	// lastSyncTime is when the client was last written to Dex, or found to match it after the
	// spec or the status changed. A periodic resync that finds everything in sync writes nothing
	// (neither to Dex nor to the API server), so it does not move this time.
	// +optional
	LastSyncTime *metav1.Time `json:"lastSyncTime,omitempty"`

	// credentialsSecret is the name of the credentials Secret the operator wrote for this object
	// (spec.credentials), so that it can delete it when spec.credentials goes or is renamed.
	// +kubebuilder:validation:MaxLength=253
	// +optional
	CredentialsSecret string `json:"credentialsSecret,omitempty"`
}

// DexStaticClient is one OAuth2 client in a Dex administered by this operator.
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=dsc;dexclient
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Client ID",type=string,JSONPath=`.status.clientId`
// +kubebuilder:printcolumn:name="Provider",type=string,JSONPath=`.spec.providerRef.name`,priority=1
// +kubebuilder:printcolumn:name="Reason",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].reason`,priority=1
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type DexStaticClient struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec   DexStaticClientSpec   `json:"spec"`
	Status DexStaticClientStatus `json:"status,omitempty"`
}

// EffectiveClientID is spec.clientId, or <namespace>-<name> when it is empty.
func (c *DexStaticClient) EffectiveClientID() string {
	if c.Spec.ClientID != "" {
		return c.Spec.ClientID
	}
	return c.Namespace + "-" + c.Name
}

// GetConditions returns the status conditions.
func (o *DexStaticClient) GetConditions() []metav1.Condition { return o.Status.Conditions }

// SetConditions replaces the status conditions.
func (o *DexStaticClient) SetConditions(c []metav1.Condition) { o.Status.Conditions = c }

// +kubebuilder:object:root=true

// DexStaticClientList is a list of DexStaticClients.
type DexStaticClientList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []DexStaticClient `json:"items"`
}

func init() {
	SchemeBuilder.Register(&DexStaticClient{}, &DexStaticClientList{})
}
