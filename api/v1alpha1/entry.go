package v1alpha1

import (
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	claimsv1 "dexterity.dev/dexterity/api/claims/v1alpha1"
)

// DexEntry is an object that keeps one entry (an OAuth2 client, an upstream connector) in the
// Dex of the OIDCProvider it names: a DexStaticClient or a DexConnector. Ownership of entries
// (internal/ownership) and the controllers' shared flow read a kind through it, so each kind is
// described once, here, next to its fields.
// +kubebuilder:object:generate=false
type DexEntry interface {
	client.Object
	// EntryKind is the kind of entry the object keeps (the entryKind of its DexEntryClaim).
	EntryKind() claimsv1.EntryKind
	// EntryID is the entry's id in Dex (spec.clientId or spec.connectorId; immutable).
	EntryID() string
	// EntryProviderRef is the OIDCProvider whose Dex holds the entry (spec.providerRef).
	EntryProviderRef() ObjectRef
	// EntryFinalizer keeps the object until its entry is deleted from Dex.
	EntryFinalizer() string
	// Orphans reports whether deleting the object leaves its entry in Dex (spec.deletionPolicy
	// Orphan).
	Orphans() bool
	// AdoptsExisting reports whether an entry already in Dex that no object registered may be
	// taken over (spec.adoptExisting; connectors never are).
	AdoptsExisting() bool
	// Registered reports whether the status, which only the operator writes, says that the
	// operator registered the entry under the object's id.
	Registered() bool
	// ForgetRegistration clears what the status says of a registered entry: the object gave its
	// id up (it lost the id to another object, or it was revoked).
	ForgetRegistration()
}

var (
	_ DexEntry = &DexStaticClient{}
	_ DexEntry = &DexConnector{}
)

// EntryKind is Client: a DexStaticClient keeps an OAuth2 client in Dex.
func (c *DexStaticClient) EntryKind() claimsv1.EntryKind { return claimsv1.EntryClient }

// EntryID is the client id (EffectiveClientID).
func (c *DexStaticClient) EntryID() string { return c.EffectiveClientID() }

// EntryProviderRef is spec.providerRef.
func (c *DexStaticClient) EntryProviderRef() ObjectRef { return c.Spec.ProviderRef }

// EntryFinalizer is ClientFinalizer.
func (c *DexStaticClient) EntryFinalizer() string { return ClientFinalizer }

// Orphans reports whether spec.deletionPolicy is Orphan.
func (c *DexStaticClient) Orphans() bool { return c.Spec.DeletionPolicy == DeletionPolicyOrphan }

// AdoptsExisting is spec.adoptExisting.
func (c *DexStaticClient) AdoptsExisting() bool { return c.Spec.AdoptExisting }

// Registered reports whether status.clientId is the object's client id.
func (c *DexStaticClient) Registered() bool { return c.Status.ClientID == c.EffectiveClientID() }

// ForgetRegistration clears status.clientId.
func (c *DexStaticClient) ForgetRegistration() { c.Status.ClientID = "" }

// EntryKind is Connector: a DexConnector keeps an upstream connector in Dex.
func (c *DexConnector) EntryKind() claimsv1.EntryKind { return claimsv1.EntryConnector }

// EntryID is spec.connectorId.
func (c *DexConnector) EntryID() string { return c.Spec.ConnectorID }

// EntryProviderRef is spec.providerRef.
func (c *DexConnector) EntryProviderRef() ObjectRef { return c.Spec.ProviderRef }

// EntryFinalizer is ConnectorFinalizer.
func (c *DexConnector) EntryFinalizer() string { return ConnectorFinalizer }

// Orphans reports whether spec.deletionPolicy is Orphan.
func (c *DexConnector) Orphans() bool { return c.Spec.DeletionPolicy == DeletionPolicyOrphan }

// AdoptsExisting is false: a connector already in Dex (from Dex's configuration file, or made by
// hand) is never taken over.
func (c *DexConnector) AdoptsExisting() bool { return false }

// Registered reports whether the Registered condition is True with reason Reconciled (the status
// has no connector id of its own; spec.connectorId is immutable).
func (c *DexConnector) Registered() bool {
	r := meta.FindStatusCondition(c.Status.Conditions, ConditionRegistered)
	return r != nil && r.Status == metav1.ConditionTrue && r.Reason == ReasonReconciled
}

// ForgetRegistration does nothing: the Registered condition says what the reconcile found.
func (c *DexConnector) ForgetRegistration() {}
