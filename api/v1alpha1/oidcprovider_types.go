package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// OIDCProviderSpec describes an OIDC issuer whose tokens the registry accepts and, optionally, the
// Dex this operator administers through its gRPC API.
// +kubebuilder:validation:XValidation:rule="!(self.enabled && self.useBearerToken)",fieldPath=".useBearerToken",message="bearer-token mode and OIDC are mutually exclusive; set spec.enabled=false for bearer mode, or keep OIDC and set spec.allowServiceAccountFallback=true for service-account tokens"
// +kubebuilder:validation:XValidation:rule="self.enabled || !self.allowServiceAccountFallback",fieldPath=".allowServiceAccountFallback",message="service-account fallback only applies when OIDC is on; set spec.enabled=true, or remove spec.allowServiceAccountFallback (bearer mode already sends every token to Kubernetes)"
// +kubebuilder:validation:XValidation:rule="self.enabled || !self.allowClientCredentials",fieldPath=".allowClientCredentials",message="client-credentials tokens are verified with OIDC; set spec.enabled=true or remove spec.allowClientCredentials"
type OIDCProviderSpec struct {
	// issuerUrl is the issuer; it must serve /.well-known/openid-configuration and equal the
	// tokens' iss claim. https is required except for loopback and in-cluster hosts
	// (*.svc, *.svc.cluster.local, *.cluster.local).
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:XValidation:rule="isURL(self) && (url(self).getScheme() == 'https' || (url(self).getScheme() == 'http' && (url(self).getHostname() in ['localhost', '::1'] || self.matches('^http://127([.](25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])){3}(:[0-9]*)?([/?#]|$)') || url(self).getHostname().endsWith('.svc') || url(self).getHostname().endsWith('.cluster.local'))))",message="must be an absolute https URL (http is allowed only for loopback hosts and in-cluster *.svc / *.cluster.local hosts), e.g. https://dex.example.com/dex"
	// +kubebuilder:validation:MaxLength=2048
	// +required
	IssuerURL string `json:"issuerUrl"`

	// discoveryUrl is where discovery and the JWKS are fetched instead of issuerUrl (split
	// network, e.g. an in-cluster Service address). Tokens' iss must still equal issuerUrl.
	// +kubebuilder:validation:XValidation:rule="isURL(self) && url(self).getScheme() in ['http', 'https']",message="must be an absolute http(s) URL, e.g. http://dex.dex.svc:5556/dex"
	// +kubebuilder:validation:MaxLength=2048
	// +optional
	DiscoveryURL string `json:"discoveryUrl,omitempty"`

	// clientId is the registry's own client id in the issuer: the primary audience.
	// +kubebuilder:validation:MinLength=1
	// +required
	ClientID string `json:"clientId"`

	// clientSecret refers to the registry client's secret, for confidential registry clients.
	// +optional
	ClientSecret *SecretKeyRef `json:"clientSecret,omitempty"`

	// audiences accepted in tokens; empty means [clientId].
	// +optional
	Audiences []string `json:"audiences,omitempty"`

	// usernameClaim is the claim that names the user.
	// +kubebuilder:default=sub
	// +optional
	UsernameClaim string `json:"usernameClaim,omitempty"`

	// groupsClaim is the claim that lists the user's groups.
	// +kubebuilder:default=groups
	// +optional
	GroupsClaim string `json:"groupsClaim,omitempty"`

	// usernamePrefix is prepended to the username.
	// +optional
	UsernamePrefix string `json:"usernamePrefix,omitempty"`

	// groupsPrefix is prepended to every group.
	// +optional
	GroupsPrefix string `json:"groupsPrefix,omitempty"`

	// requiredClaims must be present in every token, with the given value when value is set.
	// +listType=map
	// +listMapKey=name
	// +optional
	RequiredClaims []RequiredClaim `json:"requiredClaims,omitempty"`

	// caBundle is a PEM bundle of CAs trusted for the issuer's TLS (private CAs).
	// +kubebuilder:validation:XValidation:rule="self.contains('-----BEGIN CERTIFICATE-----')",message="must be PEM: one or more -----BEGIN CERTIFICATE----- blocks"
	// +kubebuilder:validation:MaxLength=1048576
	// +optional
	CABundle string `json:"caBundle,omitempty"`

	// jwksRefreshIntervalSeconds is how often the signing keys are refreshed.
	// +kubebuilder:default=3600
	// +kubebuilder:validation:Minimum=60
	// +optional
	JWKSRefreshIntervalSeconds int32 `json:"jwksRefreshIntervalSeconds,omitempty"`

	// enabled turns on validation of this issuer's JWTs in the registry server.
	// +kubebuilder:default=true
	// +optional
	Enabled *bool `json:"enabled,omitempty"`

	// useBearerToken selects bearer mode: tokens are checked by the Kubernetes API instead.
	// Mutually exclusive with enabled=true.
	// +kubebuilder:default=false
	// +optional
	UseBearerToken bool `json:"useBearerToken,omitempty"`

	// allowServiceAccountFallback sends tokens whose (unverified) iss is not this issuer to
	// Kubernetes (TokenReview + SubjectAccessReview).
	// +kubebuilder:default=false
	// +optional
	AllowServiceAccountFallback bool `json:"allowServiceAccountFallback,omitempty"`

	// allowClientCredentials accepts valid tokens of this issuer issued to another Dex client,
	// with the virtual group client:<client id>.
	// +kubebuilder:default=false
	// +optional
	AllowClientCredentials bool `json:"allowClientCredentials,omitempty"`

	// authzUrl overrides the authorization URL advertised in login.v1 (default: from discovery).
	// +kubebuilder:validation:XValidation:rule="isURL(self) && url(self).getScheme() in ['http', 'https']",message="must be an absolute http(s) URL, e.g. https://dex.example.com/dex/auth"
	// +kubebuilder:validation:MaxLength=2048
	// +optional
	AuthzURL string `json:"authzUrl,omitempty"`

	// tokenUrl overrides the token URL advertised in login.v1 (default: from discovery).
	// +kubebuilder:validation:XValidation:rule="isURL(self) && url(self).getScheme() in ['http', 'https']",message="must be an absolute http(s) URL, e.g. https://dex.example.com/dex/token"
	// +kubebuilder:validation:MaxLength=2048
	// +optional
	TokenURL string `json:"tokenUrl,omitempty"`

	// scopes advertised in login.v1.
	// +kubebuilder:default={openid,profile,email,groups}
	// +optional
	Scopes []string `json:"scopes,omitempty"`

	// loginPorts is the [from, to] range of loopback ports advertised in login.v1.
	// +kubebuilder:default={10000,10010}
	// +kubebuilder:validation:MinItems=2
	// +kubebuilder:validation:MaxItems=2
	// +kubebuilder:validation:XValidation:rule="self[0] <= self[1]",message="must be [from, to] with from <= to, e.g. [10000, 10010]"
	// +optional
	LoginPorts []int32 `json:"loginPorts,omitempty"`

	// hostnames are the registry Host names served with this provider.
	// +listType=set
	// +optional
	Hostnames []string `json:"hostnames,omitempty"`

	// dex is present when this operator administers the issuer's Dex through its gRPC API.
	// +optional
	Dex *DexAdminSpec `json:"dex,omitempty"`
}

// RequiredClaim is a claim every accepted token must carry.
type RequiredClaim struct {
	// name of the claim.
	// +kubebuilder:validation:MinLength=1
	// +required
	Name string `json:"name"`

	// value the claim must equal; when empty, presence is enough.
	// +optional
	Value string `json:"value,omitempty"`
}

// DexAdminSpec says how to reach and govern the Dex gRPC API.
// +kubebuilder:validation:XValidation:rule="!(self.insecure && has(self.tls))",fieldPath=".insecure",message="insecure (plaintext) and tls are mutually exclusive; remove spec.dex.insecure to use TLS, or remove spec.dex.tls"
// +kubebuilder:validation:XValidation:rule="self.insecure || has(self.tls)",fieldPath=".tls",message="Dex's gRPC API must be reached with TLS: set spec.dex.tls.secretRef (Secret with ca.crt, and tls.crt/tls.key for mTLS), or set spec.dex.insecure=true for loopback/dev setups"
type DexAdminSpec struct {
	// grpcAddress is Dex's gRPC API address, host:port.
	// +kubebuilder:validation:Pattern=`^[^\s/]+:[0-9]{1,5}$`
	// +required
	GRPCAddress string `json:"grpcAddress"`

	// tls configures TLS (ca.crt) and mutual TLS (tls.crt, tls.key) from a Secret in this
	// provider's namespace.
	// +optional
	TLS *DexTLSSpec `json:"tls,omitempty"`

	// insecure uses plaintext gRPC; admitted only with a loopback grpcAddress (localhost,
	// 127.0.0.0/8, ::1), for development.
	// +kubebuilder:default=false
	// +optional
	Insecure bool `json:"insecure,omitempty"`

	// allowedNamespaces says which namespaces may attach DexStaticClients to this Dex.
	// +kubebuilder:default={from: Same}
	// +optional
	AllowedNamespaces *AllowedNamespaces `json:"allowedNamespaces,omitempty"`

	// connectorNamespaces says which namespaces may attach DexConnectors to this Dex (default
	// Same). A connector decides who everyone logging in through this Dex is, so admitting a
	// namespace's clients (allowedNamespaces) never admits its connectors.
	// +kubebuilder:default={from: Same}
	// +optional
	ConnectorNamespaces *AllowedNamespaces `json:"connectorNamespaces,omitempty"`

	// clientIdPrefix is an optional policy for tenant client ids, e.g. "{namespace}-" requires
	// every client id to start with its namespace and a dash. Namespace names may contain "-", so
	// an id belongs to the namespace with the longest name whose rendered prefix it starts with
	// ("team-b-portal" belongs to team-b, not team), and only that namespace may register it.
	// +kubebuilder:validation:MaxLength=253
	// +optional
	ClientIDPrefix string `json:"clientIdPrefix,omitempty"`

	// clientIdentityNamespaces says which namespaces' confidential clients may act as
	// client:<id> in this provider's registry (default Same: only this provider's namespace). A
	// confidential client registered from another namespace authenticates as itself, not as a
	// member of this registry's clients.
	// +kubebuilder:default={from: Same}
	// +optional
	ClientIdentityNamespaces *AllowedNamespaces `json:"clientIdentityNamespaces,omitempty"`
}

// DexTLSSpec names the Secret holding Dex gRPC TLS material.
type DexTLSSpec struct {
	// secretRef names a Secret with ca.crt, and tls.crt/tls.key for mutual TLS.
	// +required
	SecretRef LocalObjectReference `json:"secretRef"`
}

// NamespacesFrom selects which namespaces may use a provider.
// +kubebuilder:validation:Enum=Same;All;Selector
type NamespacesFrom string

const (
	// NamespacesFromSame allows only the provider's own namespace.
	NamespacesFromSame NamespacesFrom = "Same"
	// NamespacesFromAll allows every namespace.
	NamespacesFromAll NamespacesFrom = "All"
	// NamespacesFromSelector allows namespaces whose labels match selector.
	NamespacesFromSelector NamespacesFrom = "Selector"
)

// AllowedNamespaces selects the namespaces allowed to attach objects to a provider.
// +kubebuilder:validation:XValidation:rule="self.from != 'Selector' || has(self.selector)",fieldPath=".selector",message="from: Selector needs a selector, e.g. selector: {matchLabels: {dexterity.dev/tenant: \"true\"}}"
type AllowedNamespaces struct {
	// from is Same (default), All or Selector.
	// +kubebuilder:default=Same
	// +optional
	From NamespacesFrom `json:"from,omitempty"`

	// selector of namespaces, used when from is Selector.
	// +optional
	Selector *metav1.LabelSelector `json:"selector,omitempty"`
}

// ProviderPhase is a coarse summary of an OIDCProvider's state.
// +kubebuilder:validation:Enum=Pending;Ready;Failed
type ProviderPhase string

const (
	// PhasePending means the provider has not been reconciled successfully yet.
	PhasePending ProviderPhase = "Pending"
	// PhaseReady means the provider is usable.
	PhaseReady ProviderPhase = "Ready"
	// PhaseFailed means the provider is not usable; message says why.
	PhaseFailed ProviderPhase = "Failed"
)

// OIDCProviderStatus is the observed state of an OIDCProvider.
type OIDCProviderStatus struct {
	// phase is Pending, Ready or Failed.
	// +optional
	Phase ProviderPhase `json:"phase,omitempty"`

	// message explains the phase.
	// +optional
	Message string `json:"message,omitempty"`

	// jwksUri is the JWKS URL from discovery.
	// +optional
	JWKSURI string `json:"jwksUri,omitempty"`

	// lastJwksFetch is the time of the last successful key fetch.
	// +optional
	LastJWKSFetch *metav1.Time `json:"lastJwksFetch,omitempty"`

	// keys is the number of signing keys loaded.
	// +optional
	Keys int32 `json:"keys"`

	// dex is the release of the Dex administered through spec.dex, as its GetVersion answers
	// (a Dex built from source without a release tag says DEV).
	// +optional
	Dex *DexVersionStatus `json:"dex,omitempty"`

	// conditions: Ready, DiscoveryReady, KeysReady, and DexReachable when spec.dex is set.
	// +listType=map
	// +listMapKey=type
	// +optional
	Conditions []metav1.Condition `json:"conditions,omitempty"`

	// observedGeneration is the generation the conditions describe (set after every reconcile,
	// failed ones included).
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`
}

// OIDCProvider is an OIDC issuer trusted by the registry and, with spec.dex, a Dex administered
// by this operator.
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=oidcp;oidcprovider
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Issuer",type=string,JSONPath=`.spec.issuerUrl`
// +kubebuilder:printcolumn:name="Phase",type=string,JSONPath=`.status.phase`
// +kubebuilder:printcolumn:name="Keys",type=integer,JSONPath=`.status.keys`,priority=1
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type OIDCProvider struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec   OIDCProviderSpec   `json:"spec"`
	Status OIDCProviderStatus `json:"status,omitempty"`
}

// GetConditions returns the status conditions.
func (p *OIDCProvider) GetConditions() []metav1.Condition { return p.Status.Conditions }

// SetConditions replaces the status conditions.
func (p *OIDCProvider) SetConditions(c []metav1.Condition) { p.Status.Conditions = c }

// +kubebuilder:object:root=true

// OIDCProviderList is a list of OIDCProviders.
type OIDCProviderList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []OIDCProvider `json:"items"`
}

// OIDCEnabled reports whether the registry validates this issuer's JWTs (spec.enabled, default true).
func (p *OIDCProvider) OIDCEnabled() bool { return p.Spec.Enabled == nil || *p.Spec.Enabled }

func init() {
	SchemeBuilder.Register(&OIDCProvider{}, &OIDCProviderList{})
}

// DexVersionStatus is what a Dex says of its release.
type DexVersionStatus struct {
	// version is Dex's server version (e.g. v2.45.1).
	// +optional
	Version string `json:"version,omitempty"`
	// api is the version of Dex's gRPC API.
	// +optional
	API int32 `json:"api,omitempty"`
}
