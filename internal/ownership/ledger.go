// Package ownership decides which object owns which entry (a client or connector id) in which
// Dex, and keeps the record of it.
//
// The proof that an object owns an id in a Dex is a DexEntryClaim: a cluster-scoped object that
// only the operator writes (tenants hold no role on it), named after (entry kind, Dex address,
// id) and holding the owner's UID. Creating it is atomic, so the first object to claim an id owns
// it; a recreated object with the same name is another owner. Nothing a tenant writes on its own
// objects (annotations, labels, finalizers) makes the operator create, overwrite, adopt or delete
// an entry: only the claim does.
//
// Order of writes, crash-safe at every point: claim, then the finalizer on the object, then Dex
// (Hold, after ConfirmForWrite). On deletion: Dex, then the claim, then the finalizer (Release).
// A claim whose owner is gone (its finalizer removed by hand, or the object deleted before its
// finalizer landed) is garbage: the DexEntryClaim controller deletes its entry from Dex, then the
// claim (OwnerAlive tells).
//
// A Ledger does this for every object of both kinds (dexv1.DexEntry); each reconcile hands it one
// Scope. Objects of the versions before claims are carried over once, at start, by a Migration;
// the steady-state operations know nothing of them.
package ownership

import (
	"context"
	"errors"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/record"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"

	claimsv1 "dexterity.dev/dexterity/api/claims/v1alpha1"
	dexv1 "dexterity.dev/dexterity/api/v1alpha1"
	"dexterity.dev/dexterity/internal/outcome"
	"dexterity.dev/dexterity/internal/tenancy"
)

const (
	// LabelOwnerUID on a claim is its owner's UID (for listing an object's claims from the API
	// server, which has no field index).
	LabelOwnerUID = "claims.dexterity.dev/owner-uid"
	// AnnotationDeletionPolicy on a DexEntryClaim mirrors its owner's spec.deletionPolicy when
	// that is Orphan, so that a claim whose owner vanished (its finalizer removed by hand) is
	// released without deleting the entry. Only the operator writes claims.
	AnnotationDeletionPolicy = "claims.dexterity.dev/deletion-policy"
)

// ErrForeign is ConfirmForWrite's answer for an entry already in Dex that the object neither
// holds a claim on nor may adopt: Dex is left untouched. Each kind says so in its own words.
var ErrForeign = errors.New("the entry in Dex is not the object's")

// Ledger keeps the claims of DexStaticClients and DexConnectors. Its operations take the Scope of
// one reconcile; the Ledger itself holds only the clients they share.
type Ledger struct {
	// Client reads from the manager's cache and writes to the API server.
	Client client.Client
	// API reads from the API server, bypassing the cache: a claim made a moment ago (by this
	// manager, or by another object) may not have reached the cache. Nil in unit tests on a fake
	// client, where the cache is the API server.
	API client.Reader
	// Recorder records the events of released and revoked entries.
	Recorder record.EventRecorder
}

// Scope is what one reconcile of one object brings to the Ledger.
type Scope struct {
	// Object is the client or connector being reconciled; the Ledger adds and drops its
	// finalizer and clears its status of an id it gave up.
	Object dexv1.DexEntry
	// Provider is the OIDCProvider Object resolved (its Dex is where the id is claimed); nil on
	// deletion, where each claim names its own.
	Provider *dexv1.OIDCProvider
	// Held is the claim Object holds on its id in Provider's Dex, as last seen (nil: none
	// yet). Check sets it; ConfirmForWrite and Hold bring it up to date.
	Held *claimsv1.DexEntryClaim
	// Unregister deletes entry id from the Dex at addr, through the provider ref names or
	// another one reaching addr (Release and Revoke call it before they drop a claim). An
	// error leaves the claim and the finalizer in place, to be retried.
	Unregister func(ctx context.Context, ref dexv1.ObjectRef, addr, id string) error
}

// Holds reports whether Object holds its claim (Held is Object's).
func (s *Scope) Holds() bool { return ownedBy(s.Held, s.Object) }

// Check looks the id up before anything is written: Object holds it (Held is set), nobody does
// (Held is nil: Object may claim it when it writes to Dex, through a provider that takes new
// entries), or another object does. In that last case Object lost: it drops the finalizer it
// no longer needs, its status forgets the id, and a conflict naming the holder is returned.
func (l Ledger) Check(ctx context.Context, s *Scope) error {
	s.Held = nil
	held, err := Holder(ctx, l.Client, s.Object.EntryKind(), s.Provider, s.Object.EntryID())
	if err != nil {
		return err
	}
	if ownedBy(held, s.Object) {
		s.Held = held
		return nil
	}
	if held == nil {
		return nil
	}
	if err := l.releaseFinalizer(ctx, s.Object); err != nil {
		return err
	}
	s.Object.ForgetRegistration()
	return conflict(s.Object, s.Provider, held.Spec.Owner)
}

// ConfirmForWrite is the check right before Object writes to an entry that is already in Dex:
// only the object holding its claim may, the claim re-read from the API server when the one last
// seen is not Object's (the cache may not have seen a claim this manager made a moment ago, on a
// reconcile retried right after its first write to Dex), or an object that asks to adopt it
// (AdoptsExisting) when no other object claims the id under any Dex address (else a conflict
// naming that owner). Otherwise ErrForeign is returned and Dex must be left untouched. An entry
// Dex does not have needs no confirming. Hold must follow before the write.
func (l Ledger) ConfirmForWrite(ctx context.Context, s *Scope) error {
	if !s.Holds() && l.API != nil {
		held, err := Holder(ctx, l.API, s.Object.EntryKind(), s.Provider, s.Object.EntryID())
		if err != nil {
			return err
		}
		s.Held = held
	}
	if s.Holds() {
		return nil
	}
	if !s.Object.AdoptsExisting() {
		return ErrForeign
	}
	// Adoption takes an entry nobody holds. A claim on the id under another address (a provider
	// whose spec.dex.grpcAddress was changed to another spelling of the same Dex leaves its
	// claims under the old one) may be the entry's owner: adopting is left to it.
	if holder, err := l.claimedElsewhere(ctx, s.Object); err != nil || holder != nil {
		if err != nil {
			return err
		}
		return conflict(s.Object, s.Provider, *holder)
	}
	return nil
}

// claimedElsewhere returns the owner of a claim of another object on obj's kind and id in any
// Dex, or nil. It reads every claim in the cache without copying them, on adoption only (an
// entry already in Dex that obj does not hold and asks to adopt).
func (l Ledger) claimedElsewhere(ctx context.Context, obj dexv1.DexEntry) (*claimsv1.ClaimOwner, error) {
	var claims claimsv1.DexEntryClaimList
	if err := l.Client.List(ctx, &claims, client.UnsafeDisableDeepCopy); err != nil {
		return nil, fmt.Errorf("failed to list the claims on %s id %s: %w", what(obj), obj.EntryID(), err)
	}
	for i := range claims.Items {
		cl := &claims.Items[i]
		if cl.Spec.EntryKind == obj.EntryKind() && cl.Spec.EntryID == obj.EntryID() && !ownedBy(cl, obj) {
			owner := cl.Spec.Owner
			return &owner, nil
		}
	}
	return nil, nil
}

// Hold makes Object the owner of its id in Provider's Dex, before any write to Dex: it creates
// the claim (once: unless Object holds it already), then adds Object's finalizer. A claim
// created meanwhile by another object is a conflict, and nothing is written.
func (l Ledger) Hold(ctx context.Context, s *Scope) error {
	obj := s.Object
	if !s.Holds() {
		cl := newClaim(obj, s.Provider)
		err := l.Client.Create(ctx, cl)
		switch {
		case apierrors.IsAlreadyExists(err):
			// Claimed meanwhile (the cache had not seen it): read the holder from the API server.
			if err := l.fresh().Get(ctx, client.ObjectKeyFromObject(cl), cl); err != nil {
				return fmt.Errorf("failed to read the claim on %s id %s: %w", what(obj), obj.EntryID(), err)
			}
			if !ownedBy(cl, obj) {
				return conflict(obj, s.Provider, cl.Spec.Owner)
			}
		case err != nil:
			return fmt.Errorf("failed to claim %s id %s: %w", what(obj), obj.EntryID(), err)
		}
		s.Held = cl
	}
	if controllerutil.ContainsFinalizer(obj, obj.EntryFinalizer()) {
		return nil
	}
	orig := obj.DeepCopyObject().(client.Object)
	controllerutil.AddFinalizer(obj, obj.EntryFinalizer())
	if err := PatchMetadata(ctx, l.Client, obj, client.MergeFromWithOptions(orig, client.MergeFromWithOptimisticLock{})); err != nil {
		return fmt.Errorf("failed to add the finalizer for %s id %s: %w", what(obj), obj.EntryID(), err)
	}
	return nil
}

// SyncPolicy keeps the deletion-policy annotation of the claim Object holds in step with its
// spec.deletionPolicy (a patch only when they differ), so that the claim collector knows it
// once Object is gone.
func (l Ledger) SyncPolicy(ctx context.Context, s *Scope) error {
	if !s.Holds() {
		return nil
	}
	held, orphan := s.Held, s.Object.Orphans()
	if _, marked := held.Annotations[AnnotationDeletionPolicy]; marked == orphan {
		return nil
	}
	cp := held.DeepCopy()
	if orphan {
		metav1.SetMetaDataAnnotation(&cp.ObjectMeta, AnnotationDeletionPolicy, string(dexv1.DeletionPolicyOrphan))
	} else {
		delete(cp.Annotations, AnnotationDeletionPolicy)
	}
	if err := l.Client.Patch(ctx, cp, client.MergeFrom(held)); err != nil {
		return fmt.Errorf("failed to record the deletion policy on claim %s: %w", held.Name, err)
	}
	s.Held = cp
	return nil
}

// Release gives back everything Object, being deleted, owns: for each of its claims, the entry
// in the Dex the claim names (Unregister; kept there under deletionPolicy Orphan), then the
// claim; then the finalizer. Only claims the API server confirms are still Object's count, so
// an entry someone else has claimed since is left alone. While Dex is unavailable the error is
// returned and the finalizer stays.
func (l Ledger) Release(ctx context.Context, s *Scope) error {
	obj := s.Object
	if !controllerutil.ContainsFinalizer(obj, obj.EntryFinalizer()) {
		return nil
	}
	claims, err := l.ClaimsOf(ctx, obj)
	if err != nil {
		return err
	}
	for i := range claims {
		cl := &claims[i]
		if l.API != nil {
			// The cache may still show a claim this object already gave up (a retried
			// finalizer), while another object has claimed the id since: confirm it is ours.
			fresh := &claimsv1.DexEntryClaim{}
			err := l.API.Get(ctx, client.ObjectKeyFromObject(cl), fresh)
			if apierrors.IsNotFound(err) || (err == nil && (fresh.UID != cl.UID || !ownedBy(fresh, obj))) {
				continue
			}
			if err != nil {
				return fmt.Errorf("failed to read claim %s: %w", cl.Name, err)
			}
		}
		if obj.Orphans() {
			// The entry stays in Dex, the claim goes (anyone may claim the id, or adopt the
			// entry, afterwards).
			if err := DeleteClaim(ctx, l.Client, cl); err != nil {
				return err
			}
			l.Recorder.Eventf(obj, corev1.EventTypeNormal, "Orphaned", "Left %s %s in Dex (spec.deletionPolicy: Orphan) and released its claim", what(obj), cl.Spec.EntryID)
			continue
		}
		ref := dexv1.ObjectRef{Namespace: cl.Spec.Provider.Namespace, Name: cl.Spec.Provider.Name}
		if err := s.Unregister(ctx, ref, cl.Spec.DexAddress, cl.Spec.EntryID); err != nil {
			return err
		}
		if err := DeleteClaim(ctx, l.Client, cl); err != nil {
			return err
		}
	}
	return l.releaseFinalizer(ctx, obj)
}

// Revoke gives back the entry Object holds (Held) but may no longer own (why says why): it
// deletes the entry from the Dex of its claim, then the claim, clears what the status says of it
// and drops the finalizer, with a Warning event. While Dex is unavailable the error is returned
// and nothing else changes.
func (l Ledger) Revoke(ctx context.Context, s *Scope, why string) error {
	obj, held := s.Object, s.Held
	id := held.Spec.EntryID
	if err := s.Unregister(ctx, obj.EntryProviderRef(), held.Spec.DexAddress, id); err != nil {
		return err
	}
	if err := DeleteClaim(ctx, l.Client, held); err != nil {
		return err
	}
	s.Held = nil
	l.Recorder.Eventf(obj, corev1.EventTypeWarning, "Revoked", "Gave %s id %s back (deleted from Dex, claim released): %s", what(obj), id, why)
	obj.ForgetRegistration()
	return l.releaseFinalizer(ctx, obj)
}

// releaseFinalizer drops the finalizer of an object that owns nothing (any more).
func (l Ledger) releaseFinalizer(ctx context.Context, obj dexv1.DexEntry) error {
	if !controllerutil.ContainsFinalizer(obj, obj.EntryFinalizer()) {
		return nil
	}
	orig := obj.DeepCopyObject().(client.Object)
	controllerutil.RemoveFinalizer(obj, obj.EntryFinalizer())
	if err := PatchMetadata(ctx, l.Client, obj, client.MergeFrom(orig)); err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("failed to release the %s finalizer: %w", what(obj), err)
	}
	return nil
}

// fresh reads from the API server where there is one apart from the cache.
func (l Ledger) fresh() client.Reader {
	if l.API != nil {
		return l.API
	}
	return l.Client
}

// newClaim is the claim that makes obj the owner of its id in p's Dex.
func newClaim(obj dexv1.DexEntry, p *dexv1.OIDCProvider) *claimsv1.DexEntryClaim {
	cl := &claimsv1.DexEntryClaim{
		ObjectMeta: metav1.ObjectMeta{
			Name:   claimsv1.EntryClaimName(obj.EntryKind(), tenancy.DexAddress(p), obj.EntryID()),
			Labels: map[string]string{LabelOwnerUID: string(obj.GetUID()), "app.kubernetes.io/managed-by": "dexterity"},
		},
		Spec: claimsv1.DexEntryClaimSpec{
			EntryKind: obj.EntryKind(), EntryID: obj.EntryID(), DexAddress: tenancy.DexAddress(p),
			Owner:    claimsv1.ClaimOwner{Kind: kindOf(obj.EntryKind()).owner, Namespace: obj.GetNamespace(), Name: obj.GetName(), UID: obj.GetUID()},
			Provider: claimsv1.ClaimProvider{Namespace: p.Namespace, Name: p.Name},
		},
	}
	if obj.Orphans() {
		cl.Annotations = map[string]string{AnnotationDeletionPolicy: string(dexv1.DeletionPolicyOrphan)}
	}
	return cl
}

// conflict is the Stalled outcome of obj, which does not own its id in p's Dex because holder
// does: the user renames one of the two.
func conflict(obj dexv1.DexEntry, p *dexv1.OIDCProvider, holder claimsv1.ClaimOwner) error {
	k := kindOf(obj.EntryKind())
	return outcome.Stall(k.conflictReason, fmt.Sprintf("%s id %q in the Dex of OIDCProvider %s is owned by %s %s/%s; choose another %s (this object never writes to Dex while it conflicts)",
		what(obj), obj.EntryID(), tenancy.ProviderKey(p.Namespace, p.Name), k.owner, holder.Namespace, holder.Name, k.idField))
}

// DeleteClaim deletes exactly this claim (by UID), so that a claim made by a new owner since is
// left alone.
func DeleteClaim(ctx context.Context, c client.Client, cl *claimsv1.DexEntryClaim) error {
	err := c.Delete(ctx, cl, client.Preconditions{UID: &cl.UID})
	if err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
		return fmt.Errorf("failed to delete claim %s: %w", cl.Name, err)
	}
	return nil
}

// PatchMetadata patches annotations and finalizers. The patch is sent from a copy so that the
// response does not overwrite the status the reconcile has computed so far; only the new
// resourceVersion is taken over.
func PatchMetadata(ctx context.Context, c client.Client, obj client.Object, patch client.Patch) error {
	cp := obj.DeepCopyObject().(client.Object)
	if err := c.Patch(ctx, cp, patch); err != nil {
		return err
	}
	obj.SetResourceVersion(cp.GetResourceVersion())
	return nil
}
