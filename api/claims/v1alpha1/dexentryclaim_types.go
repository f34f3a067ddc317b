package v1alpha1

import (
	"crypto/sha256"
	"encoding/hex"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
)

// EntryKind is the kind of Dex entry a claim is for.
// +kubebuilder:validation:Enum=Client;Connector
type EntryKind string

const (
	// EntryClient is an OAuth2 client (a DexStaticClient).
	EntryClient EntryKind = "Client"
	// EntryConnector is an upstream connector (a DexConnector).
	EntryConnector EntryKind = "Connector"
)

// ClaimOwner is the object that owns the entry.
type ClaimOwner struct {
	// kind of the owner: DexStaticClient or DexConnector.
	// +kubebuilder:validation:Enum=DexStaticClient;DexConnector
	// +required
	Kind string `json:"kind"`
	// namespace of the owner.
	// +required
	Namespace string `json:"namespace"`
	// name of the owner.
	// +required
	Name string `json:"name"`
	// uid of the owner: a recreated object with the same name is another owner.
	// +required
	UID types.UID `json:"uid"`
}

// ClaimProvider is the OIDCProvider the entry was registered through.
type ClaimProvider struct {
	// namespace of the OIDCProvider.
	// +required
	Namespace string `json:"namespace"`
	// name of the OIDCProvider.
	// +required
	Name string `json:"name"`
}

// DexEntryClaimSpec says which object owns which entry in which Dex.
// +kubebuilder:validation:XValidation:rule="self == oldSelf",message="a claim never changes; it is deleted when its entry is released"
type DexEntryClaimSpec struct {
	// entryKind is Client or Connector.
	// +required
	EntryKind EntryKind `json:"entryKind"`
	// entryId is the client or connector id in Dex.
	// +kubebuilder:validation:MinLength=1
	// +required
	EntryID string `json:"entryId"`
	// dexAddress is the gRPC address of the Dex (lower-cased): ownership is per Dex.
	// +kubebuilder:validation:MinLength=1
	// +required
	DexAddress string `json:"dexAddress"`
	// owner is the object that owns the entry.
	// +required
	Owner ClaimOwner `json:"owner"`
	// provider is the OIDCProvider the entry is registered through.
	// +required
	Provider ClaimProvider `json:"provider"`
}

// DexEntryClaim records that one DexStaticClient or DexConnector owns one client or connector id
// in one Dex. The operator creates it before its first write of that entry to Dex and deletes it
// after deleting the entry; its name is derived from (entry kind, Dex address, id), so creating it
// is the atomic "first come, first served" of an id. Users do not write these.
// +kubebuilder:object:root=true
// +kubebuilder:resource:scope=Cluster,categories=dexterity-internal
// +kubebuilder:printcolumn:name="Kind",type=string,JSONPath=`.spec.entryKind`
// +kubebuilder:printcolumn:name="Entry",type=string,JSONPath=`.spec.entryId`
// +kubebuilder:printcolumn:name="Owner-Namespace",type=string,JSONPath=`.spec.owner.namespace`
// +kubebuilder:printcolumn:name="Owner",type=string,JSONPath=`.spec.owner.name`
// +kubebuilder:printcolumn:name="Dex",type=string,JSONPath=`.spec.dexAddress`,priority=1
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type DexEntryClaim struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec DexEntryClaimSpec `json:"spec"`
}

// +kubebuilder:object:root=true

// DexEntryClaimList is a list of DexEntryClaims.
type DexEntryClaimList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []DexEntryClaim `json:"items"`
}

func init() {
	SchemeBuilder.Register(&DexEntryClaim{}, &DexEntryClaimList{})
}

// EntryClaimName is the name of the DexEntryClaim of an entry: one name per (kind, Dex address
// without case, id), so that two claims on one id cannot both be created. Only the claim under
// this name is the operator's record of the entry.
func EntryClaimName(kind EntryKind, dexAddress, id string) string {
	h := sha256.Sum256([]byte(strings.ToLower(dexAddress) + "\x00" + id))
	return strings.ToLower(string(kind)) + "-" + hex.EncodeToString(h[:20])
}
