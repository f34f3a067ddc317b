package controllers

import (
	"context"
	"fmt"
	"slices"
	"sync"

	corev1 "k8s.io/api/core/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/record"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	"sigs.k8s.io/controller-runtime/pkg/log"

	claimsv1 "dexterity.dev/dexterity/api/claims/v1alpha1"
	dexv1 "dexterity.dev/dexterity/api/v1alpha1"
	"dexterity.dev/dexterity/internal/dex"
	"dexterity.dev/dexterity/internal/tenancy"
)

// Ownership of Dex entries.
//
// The proof that an object owns a client or connector id in a Dex is a DexEntryClaim: a
// cluster-scoped object that only the operator writes (tenants hold no role on it), named after
// (entry kind, Dex address, id) and holding the owner's UID. Creating it is atomic, so the first
// object to claim an id owns it; a recreated object with the same name is another owner. Nothing
// a tenant writes on its own objects (annotations, labels, finalizers) makes the operator create,
// overwrite, adopt or delete an entry: only the claim does.
//
// Order of writes, crash-safe at every point: claim, then the finalizer on the object, then Dex.
// On deletion: Dex, then the claim, then the finalizer. A claim whose owner is gone (its finalizer
// removed by hand, or the object deleted before its finalizer landed) is garbage: the
// DexEntryClaim controller deletes its entry from Dex, then the claim.

const (
	// LabelClaimOwnerUID on a DexEntryClaim is its owner's UID (for listing an object's claims
	// from the API server).
	LabelClaimOwnerUID = "claims.dexterity.dev/owner-uid"

	indexClaimOwnerUID = "spec.owner.uid"
	indexClaimProvider = "spec.provider"

	// AnnotationClaimDeletionPolicy on a DexEntryClaim mirrors its owner's spec.deletionPolicy when
	// that is Orphan, so that a claim whose owner vanished (its finalizer removed by hand) is
	// released without deleting the entry. Only the operator writes claims.
	AnnotationClaimDeletionPolicy = "claims.dexterity.dev/deletion-policy"
)

// entryOwnership is how one kind of object (DexStaticClient, DexConnector) owns its entries.
type entryOwnership struct {
	what      string // "client" or "connector", for messages
	kind      claimsv1.EntryKind
	ownerKind string
	finalizer string
	// legacyAnnotation is the annotation older versions recorded the claim in. It is never
	// trusted on its own: see legacyOwned.
	legacyAnnotation string
	// registered reports whether the object's status (which tenants cannot write) says that the
	// operator registered id in Dex.
	registered func(obj client.Object, id string) bool
	// peers lists the objects of this kind that compete for an id through a provider (the
	// key "namespace/name"), and lost clears what the status says of an id the object lost.
	peers func() client.ObjectList
	// idIndex is the field index of the kind by entry id; providerKey is the key
	// ("namespace/name") of the provider an object names. Peers are listed by id and told apart
	// by provider here: an index by (provider, id) would hold a set per object, for lists that
	// find one object or none.
	idIndex     string
	providerKey func(obj client.Object) string
	lost        func(obj client.Object)
	// orphan reports whether the object's spec.deletionPolicy is Orphan.
	orphan func(obj client.Object) bool
}

var (
	clientOwnership = entryOwnership{
		what: "client", kind: claimsv1.EntryClient, ownerKind: "DexStaticClient",
		finalizer: ClientFinalizer, legacyAnnotation: LegacyAnnotationRegisteredClientID,
		registered: func(obj client.Object, id string) bool {
			c, ok := obj.(*dexv1.DexStaticClient)
			return ok && c.Status.ClientID == id
		},
		peers: func() client.ObjectList { return &dexv1.DexStaticClientList{} }, idIndex: indexClientID,
		providerKey: func(obj client.Object) string {
			c := obj.(*dexv1.DexStaticClient)
			return tenancy.RefKey(c.Namespace, c.Spec.ProviderRef).String()
		},
		lost: func(obj client.Object) { obj.(*dexv1.DexStaticClient).Status.ClientID = "" },
		orphan: func(obj client.Object) bool {
			c, ok := obj.(*dexv1.DexStaticClient)
			return ok && c.Spec.DeletionPolicy == dexv1.DeletionPolicyOrphan
		},
	}
	connectorOwnership = entryOwnership{
		what: "connector", kind: claimsv1.EntryConnector, ownerKind: "DexConnector",
		finalizer: ConnectorFinalizer, legacyAnnotation: LegacyAnnotationRegisteredConnectorID,
		registered: func(obj client.Object, id string) bool {
			c, ok := obj.(*dexv1.DexConnector)
			if !ok {
				return false
			}
			r := findCondition(c.Status.Conditions, dexv1.ConditionRegistered)
			return r.Status == metav1.ConditionTrue && r.Reason == dexv1.ReasonReconciled
		},
		peers: func() client.ObjectList { return &dexv1.DexConnectorList{} }, idIndex: indexConnectorID,
		providerKey: func(obj client.Object) string {
			c := obj.(*dexv1.DexConnector)
			return tenancy.RefKey(c.Namespace, c.Spec.ProviderRef).String()
		},
		lost: func(client.Object) {},
		orphan: func(obj client.Object) bool {
			c, ok := obj.(*dexv1.DexConnector)
			return ok && c.Spec.DeletionPolicy == dexv1.DeletionPolicyOrphan
		},
	}
)

// ClaimName is the name of the DexEntryClaim of an entry: one name per (kind, Dex, id), so that
// two claims on one id cannot both be created.
func ClaimName(kind claimsv1.EntryKind, dexAddress, id string) string {
	return claimsv1.EntryClaimName(kind, dexAddress, id)
}

// dexAddress is the Dex a provider administers, as ownership compares it.
func dexAddress(p *dexv1.OIDCProvider) string { return tenancy.DexAddress(p) }

// current returns the claim on id in p's Dex, or nil. A Dex may be reached under several
// addresses (a Service's short and long names, an IP): a claim made through another provider of
// the same issuer, under its address, counts too, so that another spelling of the address never
// lets an object write an entry someone else owns.
func (o entryOwnership) current(ctx context.Context, r client.Reader, p *dexv1.OIDCProvider, id string) (*claimsv1.DexEntryClaim, error) {
	cl, err := o.claimAt(ctx, r, dexAddress(p), id)
	if cl != nil || err != nil {
		return cl, err
	}
	addrs, err := tenancy.DexAddresses(ctx, r, p)
	if err != nil {
		return nil, err
	}
	for _, addr := range addrs {
		if addr == dexAddress(p) {
			continue // looked at above
		}
		if cl, err := o.claimAt(ctx, r, addr, id); cl != nil || err != nil {
			return cl, err
		}
	}
	return nil, nil
}

// claimAt returns the claim on id in the Dex at addr, or nil.
func (o entryOwnership) claimAt(ctx context.Context, r client.Reader, addr, id string) (*claimsv1.DexEntryClaim, error) {
	cl := &claimsv1.DexEntryClaim{}
	err := r.Get(ctx, types.NamespacedName{Name: ClaimName(o.kind, addr, id)}, cl)
	switch {
	case apierrors.IsNotFound(err):
		return nil, nil
	case err != nil:
		return nil, fmt.Errorf("failed to get the claim on %s id %s: %w", o.what, id, err)
	}
	return cl, nil
}

// confirm re-reads the claim on id from the API server when the cached one (held) is not obj's:
// the cache may not have seen a claim this manager made a moment ago (a reconcile retried right
// after its first write to Dex), and an entry in Dex must not then look like someone else's.
func (o entryOwnership) confirm(ctx context.Context, api client.Reader, obj client.Object, p *dexv1.OIDCProvider, id string, held *claimsv1.DexEntryClaim) (*claimsv1.DexEntryClaim, error) {
	if ownedBy(held, obj) || api == nil {
		return held, nil
	}
	return o.current(ctx, api, p, id)
}

// ownedBy reports whether claim cl belongs to obj (same UID: a recreated object is not its owner).
func ownedBy(cl *claimsv1.DexEntryClaim, obj client.Object) bool {
	return cl != nil && cl.Spec.Owner.UID == obj.GetUID()
}

// legacyOwned reports whether obj owns id under the annotation of older versions: the annotation
// names the object's own (immutable) id, the status (which only the operator writes) says the
// operator registered it, and the object is not younger than the DexEntryClaim CRD, i.e. it was
// created before the upgrade installed claims (objects created since were never owned that way, so not
// even a tenant allowed to write status can forge it). Such objects are carried over to a claim
// on their next reconcile.
func (o entryOwnership) legacyOwned(ctx context.Context, obj client.Object, id string) bool {
	if obj.GetAnnotations()[o.legacyAnnotation] != id || !controllerutil.ContainsFinalizer(obj, o.finalizer) || !o.registered(obj, id) {
		return false
	}
	cutoff, ok := claimsSince(ctx)
	created := obj.GetCreationTimestamp()
	return ok && !cutoff.Before(&created) // timestamps have whole seconds: the same second counts
}

// ClaimsCRDName is the name of the DexEntryClaim CRD; its creation time is when claims arrived.
const ClaimsCRDName = "dexentryclaims.claims.dexterity.dev"

// claimsInstalled is when the DexEntryClaim CRD was created (read once).
var claimsInstalled struct {
	sync.Mutex
	reader client.Reader
	at     metav1.Time
	ok     bool
}

// setClaimsCRDReader sets where claimsSince reads the CRD from.
func setClaimsCRDReader(r client.Reader) {
	claimsInstalled.Lock()
	defer claimsInstalled.Unlock()
	claimsInstalled.reader, claimsInstalled.ok = r, false
}

// claimsSince returns the creation time of the DexEntryClaim CRD.
func claimsSince(ctx context.Context) (metav1.Time, bool) {
	claimsInstalled.Lock()
	defer claimsInstalled.Unlock()
	if claimsInstalled.ok || claimsInstalled.reader == nil {
		return claimsInstalled.at, claimsInstalled.ok
	}
	crd := &apiextensionsv1.CustomResourceDefinition{}
	if err := claimsInstalled.reader.Get(ctx, types.NamespacedName{Name: ClaimsCRDName}, crd); err != nil {
		log.FromContext(ctx).Error(err, "Failed to read the DexEntryClaim CRD; objects of older versions are not carried over until it can be read")
		return metav1.Time{}, false
	}
	claimsInstalled.at, claimsInstalled.ok = crd.CreationTimestamp, true
	return claimsInstalled.at, true
}

// conflict is the blocked error of an object that does not own id because holder does.
func (o entryOwnership) conflict(p *dexv1.OIDCProvider, id, holderNamespace, holderName string) error {
	reason := dexv1.ReasonClientIDConflict
	field := "spec.clientId"
	if o.kind == claimsv1.EntryConnector {
		reason, field = dexv1.ReasonConnectorIDConflict, "spec.connectorId"
	}
	return newBlocked(reason, fmt.Sprintf("%s id %q in the Dex of OIDCProvider %s is owned by %s %s/%s; choose another %s (this object never writes to Dex while it conflicts)", o.what, id, providerKey(p), o.ownerKind, holderNamespace, holderName, field))
}

// reconcile returns the claim obj holds on id in p's Dex (nil when it holds none yet), or a
// conflict when another object holds it or, until it is carried over, owns it under the legacy
// annotation. An object without a claim may claim the id only through a provider that takes new
// entries. A loser drops a finalizer it no longer needs.
func (o entryOwnership) reconcile(ctx context.Context, c client.Client, obj client.Object, p *dexv1.OIDCProvider, id string) (*claimsv1.DexEntryClaim, error) {
	held, err := o.current(ctx, c, p, id)
	if err != nil || ownedBy(held, obj) {
		return held, err
	}
	if held != nil {
		return nil, o.lose(ctx, c, obj, p, id, held.Spec.Owner.Namespace, held.Spec.Owner.Name)
	}
	if !o.legacyOwned(ctx, obj, id) {
		if err := providerTakesNewEntries(p); err != nil {
			return nil, err
		}
	}
	providers, err := tenancy.SameDex(ctx, c, p)
	if err != nil {
		return nil, err
	}
	peers, err := o.peersOf(ctx, c, providers, id)
	if err != nil {
		return nil, err
	}
	for _, peer := range peers {
		if peer.GetUID() != obj.GetUID() && o.legacyOwned(ctx, peer, id) {
			return nil, o.lose(ctx, c, obj, p, id, peer.GetNamespace(), peer.GetName())
		}
	}
	return nil, nil
}

// peersOf lists the objects of the kind that name id through one of the providers (keys
// "namespace/name").
func (o entryOwnership) peersOf(ctx context.Context, c client.Reader, providers []string, id string) ([]client.Object, error) {
	list := o.peers()
	if err := c.List(ctx, list, client.MatchingFields{o.idIndex: id}); err != nil {
		return nil, fmt.Errorf("failed to list %ss for %s id %s: %w", o.ownerKind, o.what, id, err)
	}
	items, err := apimeta.ExtractList(list)
	if err != nil {
		return nil, err
	}
	var out []client.Object
	for _, it := range items {
		if peer, ok := it.(client.Object); ok && slices.Contains(providers, o.providerKey(peer)) {
			out = append(out, peer)
		}
	}
	return out, nil
}

// lose reports a conflict with the owner of id, dropping a finalizer obj no longer needs.
func (o entryOwnership) lose(ctx context.Context, c client.Client, obj client.Object, p *dexv1.OIDCProvider, id, ns, name string) error {
	if !o.legacyOwned(ctx, obj, id) {
		if err := o.releaseFinalizer(ctx, c, obj); err != nil {
			return err
		}
		o.lost(obj)
	}
	return o.conflict(p, id, ns, name)
}

// claim makes obj the owner of id in p's Dex: it creates the claim (unless obj holds it already)
// and adds the finalizer, before any write to Dex. A claim held by another object is a conflict.
// A legacy annotation is dropped in the same patch as the finalizer.
func (o entryOwnership) claim(ctx context.Context, c client.Client, api client.Reader, obj client.Object, p *dexv1.OIDCProvider, id string, held *claimsv1.DexEntryClaim) error {
	if !ownedBy(held, obj) {
		cl := &claimsv1.DexEntryClaim{
			ObjectMeta: metav1.ObjectMeta{
				Name:        ClaimName(o.kind, dexAddress(p), id),
				Labels:      map[string]string{LabelClaimOwnerUID: string(obj.GetUID()), "app.kubernetes.io/managed-by": "dexterity"},
				Annotations: o.policyAnnotations(obj),
			},
			Spec: claimsv1.DexEntryClaimSpec{
				EntryKind: o.kind, EntryID: id, DexAddress: dexAddress(p),
				Owner:    claimsv1.ClaimOwner{Kind: o.ownerKind, Namespace: obj.GetNamespace(), Name: obj.GetName(), UID: obj.GetUID()},
				Provider: claimsv1.ClaimProvider{Namespace: p.Namespace, Name: p.Name},
			},
		}
		err := c.Create(ctx, cl)
		if apierrors.IsAlreadyExists(err) {
			// Claimed meanwhile (the cache had not seen it): read the holder from the API server.
			if err := api.Get(ctx, client.ObjectKeyFromObject(cl), cl); err != nil {
				return fmt.Errorf("failed to read the claim on %s id %s: %w", o.what, id, err)
			}
			if !ownedBy(cl, obj) {
				return o.conflict(p, id, cl.Spec.Owner.Namespace, cl.Spec.Owner.Name)
			}
		} else if err != nil {
			return fmt.Errorf("failed to claim %s id %s: %w", o.what, id, err)
		}
	}
	_, hasLegacy := obj.GetAnnotations()[o.legacyAnnotation]
	if controllerutil.ContainsFinalizer(obj, o.finalizer) && !hasLegacy {
		return nil
	}
	orig := obj.DeepCopyObject().(client.Object)
	controllerutil.AddFinalizer(obj, o.finalizer)
	if hasLegacy {
		ann := obj.GetAnnotations()
		delete(ann, o.legacyAnnotation)
		obj.SetAnnotations(ann)
	}
	if err := patchMetadata(ctx, c, obj, client.MergeFromWithOptions(orig, client.MergeFromWithOptimisticLock{})); err != nil {
		return fmt.Errorf("failed to add the finalizer for %s id %s: %w", o.what, id, err)
	}
	return nil
}

// claimForWrite makes obj the owner of id right before it writes its entry to Dex. An entry
// already in Dex (inDex) is written only when it is obj's (its claim, re-read from the API server
// when the cache shows none, or a legacy claim) or when adopt is set; otherwise foreign is
// returned and Dex is left untouched.
func (o entryOwnership) claimForWrite(ctx context.Context, c client.Client, api client.Reader, obj client.Object, p *dexv1.OIDCProvider, id string, held *claimsv1.DexEntryClaim, inDex, adopt bool, foreign *blocked) error {
	if inDex {
		var err error
		if held, err = o.confirm(ctx, api, obj, p, id, held); err != nil {
			return err
		}
	}
	ours := ownedBy(held, obj) || o.legacyOwned(ctx, obj, id)
	if inDex && !ours && !adopt {
		return foreign
	}
	return o.claim(ctx, c, api, obj, p, id, held)
}

// policyAnnotations are the annotations a claim of obj carries for its deletion policy.
func (o entryOwnership) policyAnnotations(obj client.Object) map[string]string {
	if o.orphan(obj) {
		return map[string]string{AnnotationClaimDeletionPolicy: string(dexv1.DeletionPolicyOrphan)}
	}
	return nil
}

// syncPolicy keeps the deletion-policy annotation of the claim obj holds in step with obj's
// spec.deletionPolicy (a patch only when they differ).
func (o entryOwnership) syncPolicy(ctx context.Context, c client.Client, obj client.Object, held *claimsv1.DexEntryClaim) error {
	if held == nil || !ownedBy(held, obj) {
		return nil
	}
	_, marked := held.Annotations[AnnotationClaimDeletionPolicy]
	if marked == o.orphan(obj) {
		return nil
	}
	cp := held.DeepCopy()
	if o.orphan(obj) {
		metav1.SetMetaDataAnnotation(&cp.ObjectMeta, AnnotationClaimDeletionPolicy, string(dexv1.DeletionPolicyOrphan))
	} else {
		delete(cp.Annotations, AnnotationClaimDeletionPolicy)
	}
	if err := c.Patch(ctx, cp, client.MergeFrom(held)); err != nil {
		return fmt.Errorf("failed to record the deletion policy on claim %s: %w", held.Name, err)
	}
	return nil
}

// releaseFinalizer drops the finalizer of an object that owns nothing (it lost the race for its id).
func (o entryOwnership) releaseFinalizer(ctx context.Context, c client.Client, obj client.Object) error {
	if !controllerutil.ContainsFinalizer(obj, o.finalizer) {
		return nil
	}
	orig := obj.DeepCopyObject().(client.Object)
	controllerutil.RemoveFinalizer(obj, o.finalizer)
	if err := patchMetadata(ctx, c, obj, client.MergeFrom(orig)); err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("failed to release the %s finalizer: %w", o.what, err)
	}
	return nil
}

// claimsOf lists the claims obj owns: from the cache, and from the API server when the cache has
// none (a claim made just now may not have reached it).
func (o entryOwnership) claimsOf(ctx context.Context, c client.Reader, api client.Reader, obj client.Object) ([]claimsv1.DexEntryClaim, error) {
	var list claimsv1.DexEntryClaimList
	if err := c.List(ctx, &list, client.MatchingFields{indexClaimOwnerUID: ownerBucket(obj.GetUID())}); err != nil {
		return nil, fmt.Errorf("failed to list the claims of %s %s/%s: %w", o.ownerKind, obj.GetNamespace(), obj.GetName(), err)
	}
	out := o.ownClaims(list.Items, obj)
	if len(out) == 0 && api != nil {
		if err := api.List(ctx, &list, client.MatchingLabels{LabelClaimOwnerUID: string(obj.GetUID())}); err != nil {
			return nil, fmt.Errorf("failed to list the claims of %s %s/%s: %w", o.ownerKind, obj.GetNamespace(), obj.GetName(), err)
		}
		out = o.ownClaims(list.Items, obj)
	}
	return out, nil
}

// ownClaims keeps the claims of the kind that obj owns.
func (o entryOwnership) ownClaims(claims []claimsv1.DexEntryClaim, obj client.Object) []claimsv1.DexEntryClaim {
	out := claims[:0]
	for _, cl := range claims {
		if cl.Spec.Owner.UID == obj.GetUID() && cl.Spec.EntryKind == o.kind {
			out = append(out, cl)
		}
	}
	return out
}

// finalize deletes from Dex exactly the entries obj provably owns (its claims, or a legacy claim
// the status confirms), then the claims, then releases the finalizer. While Dex is unavailable the
// finalizer stays and the delete is retried.
func (o entryOwnership) finalize(ctx context.Context, c client.Client, api client.Reader, pool dex.Connections, rec record.EventRecorder, obj conditionsObject, ref dexv1.ObjectRef, id string, del func(dc dex.Client, id string) error) (ctrl.Result, error) {
	if !controllerutil.ContainsFinalizer(obj, o.finalizer) {
		return ctrl.Result{}, nil
	}
	setCondition(obj, dexv1.ConditionReady, metav1.ConditionFalse, dexv1.ReasonDeleting, "deleting the "+o.what+" from Dex")
	claims, err := o.claimsOf(ctx, c, api, obj)
	if err != nil {
		return ctrl.Result{}, err
	}
	for i := range claims {
		cl := &claims[i]
		if api != nil {
			// The cache may still show a claim this object already gave up (a retried
			// finalizer), while another object has claimed the id since: confirm it is ours.
			fresh := &claimsv1.DexEntryClaim{}
			err := api.Get(ctx, client.ObjectKeyFromObject(cl), fresh)
			if apierrors.IsNotFound(err) || (err == nil && (fresh.UID != cl.UID || !ownedBy(fresh, obj))) {
				continue
			}
			if err != nil {
				return ctrl.Result{}, fmt.Errorf("failed to read claim %s: %w", cl.Name, err)
			}
		}
		if o.orphan(obj) {
			// deletionPolicy Orphan: the entry stays in Dex, the claim goes (anyone may claim
			// the id, or adopt the entry, afterwards).
			if err := deleteClaim(ctx, c, cl); err != nil {
				return ctrl.Result{}, err
			}
			rec.Eventf(obj, corev1.EventTypeNormal, "Orphaned", "Left %s %s in Dex (spec.deletionPolicy: Orphan) and released its claim", o.what, cl.Spec.EntryID)
			continue
		}
		pref := dexv1.ObjectRef{Namespace: cl.Spec.Provider.Namespace, Name: cl.Spec.Provider.Name}
		if err := deleteFromDex(ctx, c, pool, rec, obj, pref, cl.Spec.DexAddress, o.what, cl.Spec.EntryID, func(dc dex.Client) error { return del(dc, cl.Spec.EntryID) }); err != nil {
			return ctrl.Result{}, err
		}
		if err := deleteClaim(ctx, c, cl); err != nil {
			return ctrl.Result{}, err
		}
	}
	if len(claims) == 0 && !o.orphan(obj) && o.legacyOwned(ctx, obj, id) {
		if err := deleteFromDex(ctx, c, pool, rec, obj, ref, "", o.what, id, func(dc dex.Client) error { return del(dc, id) }); err != nil {
			return ctrl.Result{}, err
		}
	}
	return ctrl.Result{}, o.releaseFinalizer(ctx, c, obj)
}

// revoke gives back an entry obj holds but may no longer own (why says why): it deletes the entry
// from the Dex of its claim, then the claim, clears what the status says of it and drops the
// finalizer, with a Warning event. While Dex is unavailable the error is returned and nothing
// else changes.
func (o entryOwnership) revoke(ctx context.Context, d *DexEntryDeps, obj conditionsObject, ref dexv1.ObjectRef, held *claimsv1.DexEntryClaim, why string, del func(dc dex.Client, id string) error) error {
	id := held.Spec.EntryID
	if err := deleteFromDex(ctx, d.Client, d.Pool, d.Recorder, obj, ref, held.Spec.DexAddress, o.what, id, func(dc dex.Client) error { return del(dc, id) }); err != nil {
		return err
	}
	if err := deleteClaim(ctx, d.Client, held); err != nil {
		return err
	}
	d.Recorder.Eventf(obj, corev1.EventTypeWarning, "Revoked", "Gave %s id %s back (deleted from Dex, claim released): %s", o.what, id, why)
	o.lost(obj)
	return o.releaseFinalizer(ctx, d.Client, obj)
}

// deleteClaim deletes exactly this claim (by UID), so that a claim made by a new owner since is
// left alone.
func deleteClaim(ctx context.Context, c client.Client, cl *claimsv1.DexEntryClaim) error {
	err := c.Delete(ctx, cl, client.Preconditions{UID: &cl.UID})
	if err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
		return fmt.Errorf("failed to delete claim %s: %w", cl.Name, err)
	}
	return nil
}

// patchMetadata patches annotations and finalizers. The patch is sent from a copy so that the
// response does not overwrite the status this reconcile has computed so far; only the new
// resourceVersion is taken over.
func patchMetadata(ctx context.Context, c client.Client, obj client.Object, patch client.Patch) error {
	cp := obj.DeepCopyObject().(client.Object)
	if err := c.Patch(ctx, cp, patch); err != nil {
		return err
	}
	obj.SetResourceVersion(cp.GetResourceVersion())
	return nil
}
