package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// ModuleSpec is one module of the registry (modules.v1 protocol): <namespace>/<name>/<system>.
// It is served by the registry for the OIDCProviders of the object's Kubernetes namespace.
type ModuleSpec struct {
	// namespace is the registry namespace of the module (the first segment of its address,
	// e.g. "team-a" in 127.0.0.1:8443/team-a/network/aws).
	// +kubebuilder:validation:MaxLength=64
	// +kubebuilder:validation:Pattern=`^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$`
	// +required
	Namespace string `json:"namespace"`

	// name of the module (second segment of its address).
	// +kubebuilder:validation:MaxLength=64
	// +kubebuilder:validation:Pattern=`^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$`
	// +required
	Name string `json:"name"`

	// system is the main provider the module targets (third segment), e.g. "aws".
	// +kubebuilder:validation:MaxLength=64
	// +kubebuilder:validation:Pattern=`^[a-z0-9]{1,64}$`
	// +required
	System string `json:"system"`

	// versions of the module; each source is returned to clients as X-Terraform-Get.
	// +listType=map
	// +listMapKey=version
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=500
	// +required
	Versions []ModuleVersion `json:"versions"`
}

// ModuleVersion is one released version of a module.
type ModuleVersion struct {
	// version is a semantic version without a leading "v", e.g. 1.2.0.
	// +kubebuilder:validation:MaxLength=128
	// +kubebuilder:validation:Pattern=`^(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)(-[0-9A-Za-z.-]+)?(\+[0-9A-Za-z.-]+)?$`
	// +required
	Version string `json:"version"`

	// source is a module source address OpenTofu/Terraform can download, e.g.
	// https://example.org/modules/network-1.2.0.tar.gz or git::https://example.org/network.git?ref=v1.2.0.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=4096
	// +required
	Source string `json:"source"`
}

// Module is a registry module served by the embedded registry server.
// +kubebuilder:object:root=true
// +kubebuilder:resource:shortName=mod
// +kubebuilder:printcolumn:name="Reg-Namespace",type=string,JSONPath=`.spec.namespace`,description="Registry namespace"
// +kubebuilder:printcolumn:name="Module",type=string,JSONPath=`.spec.name`
// +kubebuilder:printcolumn:name="System",type=string,JSONPath=`.spec.system`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type Module struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec ModuleSpec `json:"spec"`
}

// +kubebuilder:object:root=true

// ModuleList is a list of Modules.
type ModuleList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []Module `json:"items"`
}

// ProviderSpec is one provider of the registry (providers.v1 protocol): <namespace>/<type>.
// It is served by the registry for the OIDCProviders of the object's Kubernetes namespace.
type ProviderSpec struct {
	// namespace is the registry namespace of the provider (source address
	// <host>/<namespace>/<type>).
	// +kubebuilder:validation:MaxLength=64
	// +kubebuilder:validation:Pattern=`^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$`
	// +required
	Namespace string `json:"namespace"`

	// type of the provider, e.g. "random".
	// +kubebuilder:validation:MaxLength=64
	// +kubebuilder:validation:Pattern=`^[a-z0-9][a-z0-9-]{0,63}$`
	// +required
	Type string `json:"type"`

	// signingKeys are the GPG public keys whose signatures of the SHA256SUMS files clients accept.
	// +required
	SigningKeys SigningKeys `json:"signingKeys"`

	// versions of the provider.
	// +listType=map
	// +listMapKey=version
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=500
	// +required
	Versions []ProviderVersion `json:"versions"`
}

// SigningKeys lists the keys a provider's releases are signed with.
type SigningKeys struct {
	// gpgPublicKeys are ASCII-armored GPG public keys.
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=20
	// +required
	GPGPublicKeys []GPGPublicKey `json:"gpgPublicKeys"`
}

// GPGPublicKey is one GPG public key.
type GPGPublicKey struct {
	// keyId is the key's id in upper-case hex, e.g. 51852D87348FFC4C.
	// +kubebuilder:validation:MaxLength=40
	// +kubebuilder:validation:Pattern=`^[0-9A-Fa-f]{8,40}$`
	// +required
	KeyID string `json:"keyId"`

	// asciiArmor is the public key, "-----BEGIN PGP PUBLIC KEY BLOCK-----" ...
	// +kubebuilder:validation:Pattern=`-----BEGIN PGP PUBLIC KEY BLOCK-----`
	// +kubebuilder:validation:MaxLength=65536
	// +required
	ASCIIArmor string `json:"asciiArmor"`

	// trustSignature, source and sourceUrl are passed through to clients as in the registry
	// protocol (used for partner keys; usually empty).
	// +kubebuilder:validation:MaxLength=16384
	// +optional
	TrustSignature string `json:"trustSignature,omitempty"`
	// +kubebuilder:validation:MaxLength=256
	// +optional
	Source string `json:"source,omitempty"`
	// +kubebuilder:validation:MaxLength=2048
	// +optional
	SourceURL string `json:"sourceUrl,omitempty"`
}

// ProviderVersion is one released version of a provider.
type ProviderVersion struct {
	// version is a semantic version without a leading "v", e.g. 3.6.0.
	// +kubebuilder:validation:MaxLength=128
	// +kubebuilder:validation:Pattern=`^(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)(-[0-9A-Za-z.-]+)?(\+[0-9A-Za-z.-]+)?$`
	// +required
	Version string `json:"version"`

	// protocols are the plugin protocol versions the release supports.
	// +kubebuilder:default={"5.0"}
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=10
	// +kubebuilder:validation:items:MaxLength=16
	// +optional
	Protocols []string `json:"protocols,omitempty"`

	// platforms are the builds of this version.
	// +listType=map
	// +listMapKey=os
	// +listMapKey=arch
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=50
	// +required
	Platforms []ProviderPlatform `json:"platforms"`
}

// ProviderPlatform is one build (os/arch) of a provider version.
type ProviderPlatform struct {
	// os, e.g. linux, darwin, windows.
	// +kubebuilder:validation:MaxLength=32
	// +kubebuilder:validation:Pattern=`^[a-z0-9]+$`
	// +required
	OS string `json:"os"`

	// arch, e.g. amd64, arm64.
	// +kubebuilder:validation:MaxLength=32
	// +kubebuilder:validation:Pattern=`^[a-z0-9_]+$`
	// +required
	Arch string `json:"arch"`

	// filename of the zip archive, e.g. terraform-provider-random_3.6.0_linux_amd64.zip.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=255
	// +required
	Filename string `json:"filename"`

	// downloadUrl of the zip archive.
	// +kubebuilder:validation:Pattern=`^https?://[^\s/]+[^\s]*$`
	// +kubebuilder:validation:MaxLength=2048
	// +required
	DownloadURL string `json:"downloadUrl"`

	// shasum is the SHA-256 of the zip archive, lower-case hex.
	// +kubebuilder:validation:MaxLength=64
	// +kubebuilder:validation:Pattern=`^[0-9a-f]{64}$`
	// +required
	Shasum string `json:"shasum"`

	// shasumsUrl is the URL of the release's SHA256SUMS file.
	// +kubebuilder:validation:Pattern=`^https?://[^\s/]+[^\s]*$`
	// +kubebuilder:validation:MaxLength=2048
	// +required
	ShasumsURL string `json:"shasumsUrl"`

	// shasumsSignatureUrl is the URL of the detached GPG signature of the SHA256SUMS file.
	// +kubebuilder:validation:Pattern=`^https?://[^\s/]+[^\s]*$`
	// +kubebuilder:validation:MaxLength=2048
	// +required
	ShasumsSignatureURL string `json:"shasumsSignatureUrl"`
}

// Provider is a registry provider served by the embedded registry server.
// +kubebuilder:object:root=true
// +kubebuilder:resource:shortName=prov
// +kubebuilder:printcolumn:name="Reg-Namespace",type=string,JSONPath=`.spec.namespace`,description="Registry namespace"
// +kubebuilder:printcolumn:name="Type",type=string,JSONPath=`.spec.type`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type Provider struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec ProviderSpec `json:"spec"`
}

// +kubebuilder:object:root=true

// ProviderList is a list of Providers.
type ProviderList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []Provider `json:"items"`
}

// ModuleAddress is the registry address of a module: <namespace>/<name>/<system>.
func (m *Module) ModuleAddress() string {
	return m.Spec.Namespace + "/" + m.Spec.Name + "/" + m.Spec.System
}

// ProviderAddress is the registry address of a provider: <namespace>/<type>.
func (p *Provider) ProviderAddress() string {
	return p.Spec.Namespace + "/" + p.Spec.Type
}

func init() {
	SchemeBuilder.Register(&Module{}, &ModuleList{}, &Provider{}, &ProviderList{})
}
