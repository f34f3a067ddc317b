package ownership

import (
	"context"
	"fmt"
	"hash/maphash"
	"slices"
	"strings"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"

	claimsv1 "dexterity.dev/dexterity/api/claims/v1alpha1"
	dexv1 "dexterity.dev/dexterity/api/v1alpha1"
	"dexterity.dev/dexterity/internal/tenancy"
)

// IndexOwnerUID is the field index of claims by a bucket of their owner's UID (OwnerBucket).
const IndexOwnerUID = "spec.owner.uid"

// OwnerBucket is the value IndexOwnerUID holds for a claim of owner uid: the UID's first three
// characters (UIDs are random hex, so 4,096 buckets). An index by the UID itself would hold a set
// per claim, for lists that find one claim or none; the lists filter by the UID.
func OwnerBucket(uid types.UID) string {
	return string(uid[:min(3, len(uid))])
}

// kind is what ownership knows of a kind of entry beyond its objects (dexv1.DexEntry): the owner
// kind its claims name, the field index of its objects by entry id, and how a conflict reads.
type kind struct {
	owner          string
	idIndex        string
	conflictReason string
	idField        string
}

func kindOf(k claimsv1.EntryKind) kind {
	if k == claimsv1.EntryConnector {
		return kind{owner: "DexConnector", idIndex: tenancy.IndexConnectorID, conflictReason: dexv1.ReasonConnectorIDConflict, idField: "spec.connectorId"}
	}
	return kind{owner: "DexStaticClient", idIndex: tenancy.IndexClientID, conflictReason: dexv1.ReasonClientIDConflict, idField: "spec.clientId"}
}

// IDIndex is the field index of the objects of kind k by a bucket of their entry id (IDBucket;
// registered by the controllers' indexes). List through ListByID, which filters by the id.
func IDIndex(k claimsv1.EntryKind) string { return kindOf(k).idIndex }

// idBuckets is the number of buckets of IDBucket.
const idBuckets = 256

// idSeed keys IDBucket's hash, a new one in every process (the indexes live in memory only), so
// that nobody can choose ids that fall in one bucket.
var idSeed = maphash.MakeSeed()

// IDBucket is the value the id indexes (IDIndex) hold for an object with entry id: one of 256
// buckets of the id's keyed hash. An index by the id itself holds a set per object (330 bytes
// each, measured with 10,000 objects, against 50 for 256 buckets; design.md §7: 4 KiB per
// client), for lists that find one object or none. Every list by it keeps only the objects with
// the id (ListByID; the webhooks filter the same way), reading the bucket's others without
// copying them.
func IDBucket(id string) string {
	return fmt.Sprintf("%02x", maphash.String(idSeed, id)%idBuckets)
}

// ListByID lists, from the cache (c), the objects of kind k whose entry id is id: the objects of
// the id's bucket are read without copying, and only those with the id are copied.
func ListByID(ctx context.Context, c client.Reader, k claimsv1.EntryKind, id string) ([]dexv1.DexEntry, error) {
	list := NewList(k)
	if err := c.List(ctx, list, client.MatchingFields{kindOf(k).idIndex: IDBucket(id)}, client.UnsafeDisableDeepCopy); err != nil {
		return nil, fmt.Errorf("failed to list %ss for %s id %s: %w", kindOf(k).owner, strings.ToLower(string(k)), id, err)
	}
	var out []dexv1.DexEntry
	err := apimeta.EachListItem(list, func(o runtime.Object) error {
		if obj, ok := o.(dexv1.DexEntry); ok && obj.EntryID() == id {
			out = append(out, obj.DeepCopyObject().(dexv1.DexEntry))
		}
		return nil
	})
	return out, err
}

// what names obj's kind of entry in messages: "client" or "connector".
func what(obj dexv1.DexEntry) string { return strings.ToLower(string(obj.EntryKind())) }

// NewList returns an empty list of the objects that keep entries of kind k.
func NewList(k claimsv1.EntryKind) client.ObjectList {
	if k == claimsv1.EntryConnector {
		return &dexv1.DexConnectorList{}
	}
	return &dexv1.DexStaticClientList{}
}

// newOwner returns an empty object of a claim's owner kind (DexStaticClient unless it says
// DexConnector).
func newOwner(ownerKind string) dexv1.DexEntry {
	if ownerKind == kindOf(claimsv1.EntryConnector).owner {
		return &dexv1.DexConnector{}
	}
	return &dexv1.DexStaticClient{}
}

// ownedBy reports whether claim cl belongs to obj (same UID: a recreated object is not its owner).
func ownedBy(cl *claimsv1.DexEntryClaim, obj client.Object) bool {
	return cl != nil && cl.Spec.Owner.UID == obj.GetUID()
}

// Holder returns the claim on id in p's Dex, or nil, read through r (the cache, or the API
// server). A Dex may be reached under several addresses (a Service's short and long names, an
// IP): a claim made through another provider of the same issuer, under its address, counts too,
// so that another spelling of the address never lets an object write an entry someone else owns.
func Holder(ctx context.Context, r client.Reader, k claimsv1.EntryKind, p *dexv1.OIDCProvider, id string) (*claimsv1.DexEntryClaim, error) {
	own := tenancy.DexAddress(p)
	cl, err := ClaimAt(ctx, r, k, own, id)
	if cl != nil || err != nil {
		return cl, err
	}
	addrs, err := tenancy.DexAddresses(ctx, r, p)
	if err != nil {
		return nil, err
	}
	for _, addr := range addrs {
		if addr == own {
			continue // looked at above
		}
		if cl, err := ClaimAt(ctx, r, k, addr, id); cl != nil || err != nil {
			return cl, err
		}
	}
	return nil, nil
}

// ClaimAt returns the claim on the entry of kind k with id in the Dex at addr, or nil.
func ClaimAt(ctx context.Context, r client.Reader, k claimsv1.EntryKind, addr, id string) (*claimsv1.DexEntryClaim, error) {
	cl := &claimsv1.DexEntryClaim{}
	err := r.Get(ctx, types.NamespacedName{Name: claimsv1.EntryClaimName(k, addr, id)}, cl)
	switch {
	case apierrors.IsNotFound(err):
		return nil, nil
	case err != nil:
		return nil, fmt.Errorf("failed to get the claim on %s id %s: %w", strings.ToLower(string(k)), id, err)
	}
	return cl, nil
}

// Peers lists, from the cache, the objects of kind k that name id through one of providers (keys
// "namespace/name"): those that compete for it in one Dex. They are listed by the id index and
// told apart by provider here: an index by (provider, id) would hold a set per object, for lists
// that find one object or none.
func (l Ledger) Peers(ctx context.Context, k claimsv1.EntryKind, providers []string, id string) ([]dexv1.DexEntry, error) {
	withID, err := ListByID(ctx, l.Client, k, id)
	if err != nil {
		return nil, err
	}
	var out []dexv1.DexEntry
	for _, peer := range withID {
		if slices.Contains(providers, tenancy.RefKey(peer.GetNamespace(), peer.EntryProviderRef()).String()) {
			out = append(out, peer)
		}
	}
	return out, nil
}

// ClaimsOf lists the claims obj owns: from the cache, and from the API server when the cache has
// none (a claim made just now may not have reached it).
func (l Ledger) ClaimsOf(ctx context.Context, obj dexv1.DexEntry) ([]claimsv1.DexEntryClaim, error) {
	var list claimsv1.DexEntryClaimList
	if err := l.Client.List(ctx, &list, client.MatchingFields{IndexOwnerUID: OwnerBucket(obj.GetUID())}); err != nil {
		return nil, fmt.Errorf("failed to list the claims of %s %s/%s: %w", kindOf(obj.EntryKind()).owner, obj.GetNamespace(), obj.GetName(), err)
	}
	out := ownClaims(list.Items, obj)
	if len(out) == 0 && l.API != nil {
		if err := l.API.List(ctx, &list, client.MatchingLabels{LabelOwnerUID: string(obj.GetUID())}); err != nil {
			return nil, fmt.Errorf("failed to list the claims of %s %s/%s: %w", kindOf(obj.EntryKind()).owner, obj.GetNamespace(), obj.GetName(), err)
		}
		out = ownClaims(list.Items, obj)
	}
	return out, nil
}

// ownClaims keeps the claims of obj's kind that obj owns.
func ownClaims(claims []claimsv1.DexEntryClaim, obj dexv1.DexEntry) []claimsv1.DexEntryClaim {
	out := claims[:0]
	for _, cl := range claims {
		if cl.Spec.Owner.UID == obj.GetUID() && cl.Spec.EntryKind == obj.EntryKind() {
			out = append(out, cl)
		}
	}
	return out
}

// OwnerAlive reports whether the owner of claim cl exists (same UID), read through r, and is not
// on its way out without its finalizer (its own finalizer releases the claim then). A claim whose
// owner is not alive is garbage.
func OwnerAlive(ctx context.Context, r client.Reader, cl *claimsv1.DexEntryClaim) (bool, error) {
	obj := newOwner(cl.Spec.Owner.Kind)
	err := r.Get(ctx, types.NamespacedName{Namespace: cl.Spec.Owner.Namespace, Name: cl.Spec.Owner.Name}, obj)
	switch {
	case apierrors.IsNotFound(err):
		return false, nil
	case err != nil:
		return false, fmt.Errorf("failed to get the owner of claim %s: %w", cl.Name, err)
	}
	if obj.GetUID() != cl.Spec.Owner.UID {
		return false, nil
	}
	return obj.GetDeletionTimestamp().IsZero() || controllerutil.ContainsFinalizer(obj, obj.EntryFinalizer()), nil
}
