package ownership

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	"sigs.k8s.io/controller-runtime/pkg/log"

	claimsv1 "dexterity.dev/dexterity/api/claims/v1alpha1"
	dexv1 "dexterity.dev/dexterity/api/v1alpha1"
	"dexterity.dev/dexterity/internal/outcome"
	"dexterity.dev/dexterity/internal/tenancy"
)

const (
	// LegacyAnnotationClient is where versions before DexEntryClaims recorded the client id a
	// DexStaticClient owned. It is never trusted on its own (a tenant can write it): see
	// Migration.
	LegacyAnnotationClient = "dexterity.dev/registered-client-id"
	// LegacyAnnotationConnector is the same for the connector id of a DexConnector.
	LegacyAnnotationConnector = "dexterity.dev/registered-connector-id"

	// ClaimsCRDName is the name of the DexEntryClaim CRD; its creation time is when claims
	// arrived.
	ClaimsCRDName = "dexentryclaims.claims.dexterity.dev"
)

// LegacyAnnotation is the annotation of kind k's objects in the versions before claims.
func LegacyAnnotation(k claimsv1.EntryKind) string {
	if k == claimsv1.EntryConnector {
		return LegacyAnnotationConnector
	}
	return LegacyAnnotationClient
}

// Migration carries the objects of one kind over from the versions before claims, once, when the
// manager starts (it is a manager Runnable, run by the leader): an object that owns its id under
// the legacy annotation gets its claim, and the annotation is dropped. The controller of the kind
// reconciles nothing before Done is closed, so the steady state never meets an object that owns
// an id without a claim.
//
// An object owns its id under the annotation when the annotation names the object's own
// (immutable) id, it has its finalizer, its status (which only the operator writes) says that
// the operator registered the entry, and it is not younger than the DexEntryClaim CRD: it was
// created before the upgrade installed claims. Objects created since were never owned that way,
// so not even a tenant allowed to write status can forge it; an annotation that fails any of
// these is nobody's claim and is left as it is. An object whose provider is gone or administers
// no Dex cannot be told where its entry is: it keeps its annotation, and the migration looks
// again every recheck period, after Done, until no such object is left (only objects older than
// the claims CRD can be one, so this ends with them).
type Migration struct {
	ledger Ledger
	kind   claimsv1.EntryKind
	done   chan struct{}
	// retry is the first wait after a failed pass (doubled up to maxRetry).
	retry, maxRetry time.Duration
	// recheck is the wait between passes while objects wait for their provider.
	recheck time.Duration
}

// NewMigration returns the Migration of kind k's objects, made through l (l.API reads the CRD).
func NewMigration(l Ledger, k claimsv1.EntryKind) *Migration {
	return &Migration{ledger: l, kind: k, done: make(chan struct{}), retry: time.Second, maxRetry: 30 * time.Second, recheck: time.Minute}
}

// WithRecheck sets the wait between passes while objects wait for their provider (tests).
func (m *Migration) WithRecheck(d time.Duration) *Migration {
	m.recheck = d
	return m
}

// Done is closed once every object of older versions has been carried over (or found not to be
// carried over).
func (m *Migration) Done() <-chan struct{} { return m.done }

// NeedLeaderElection is true: only the leader writes claims.
func (m *Migration) NeedLeaderElection() bool { return true }

// Start runs the migration until it succeeds, with a backoff after each failed pass (an object
// left half-way, its claim made and its annotation not yet dropped, is finished by the next
// pass), then closes Done. While objects wait for their provider, it runs a pass again every
// recheck period (the kind's reconciles go on meanwhile). It returns when ctx ends or nothing is
// left to carry over.
func (m *Migration) Start(ctx context.Context) error {
	logger := log.FromContext(ctx).WithValues("entryKind", m.kind)
	wait := m.retry
	for {
		pending, err := m.run(ctx)
		if err == nil {
			select {
			case <-m.done:
			default:
				close(m.done)
			}
			if pending == 0 {
				return nil
			}
			wait = m.recheck
		} else {
			logger.Error(err, "Failed to carry objects of older versions over to claims; retrying (objects of this kind are reconciled only once a pass has succeeded)", "retryIn", wait)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(wait):
		}
		if err != nil {
			wait = min(2*wait, m.maxRetry)
		}
	}
}

// Run is one pass of the migration: it finds the objects of the kind (from the cache) that own
// their id under the legacy annotation, and carries each over.
func (m *Migration) Run(ctx context.Context) error {
	_, err := m.run(ctx)
	return err
}

// run is Run, also returning how many objects wait for their provider.
func (m *Migration) run(ctx context.Context) (pending int, err error) {
	// Read in place (only the objects carried over are copied, by carry): a copy of every
	// object of the kind at start would double what the cache holds of them.
	list := NewList(m.kind)
	if err := m.ledger.Client.List(ctx, list, client.UnsafeDisableDeepCopy); err != nil {
		return 0, fmt.Errorf("failed to list %ss: %w", kindOf(m.kind).owner, err)
	}
	items, err := apimeta.ExtractList(list)
	if err != nil {
		return 0, err
	}
	ann := LegacyAnnotation(m.kind)
	var legacy []dexv1.DexEntry
	for _, it := range items {
		obj, ok := it.(dexv1.DexEntry)
		if ok && obj.GetAnnotations()[ann] == obj.EntryID() && controllerutil.ContainsFinalizer(obj, obj.EntryFinalizer()) && obj.Registered() {
			legacy = append(legacy, obj)
		}
	}
	if len(legacy) == 0 {
		return 0, nil
	}
	// Two objects may both look like the legacy owner of one id (a duplicate that slipped past
	// admission, or a status forged by a tenant allowed to write it): the claim goes to the older
	// one, whatever order the cache lists them in. Admission refused an id already in use, so
	// the object that had the id first is the one that could register it; the younger one then
	// loses as any other object whose id is claimed.
	slices.SortStableFunc(legacy, func(a, b dexv1.DexEntry) int {
		return a.GetCreationTimestamp().Compare(b.GetCreationTimestamp().Time)
	})
	cutoff, err := m.claimsSince(ctx)
	if err != nil {
		return 0, err
	}
	for _, obj := range legacy {
		created := obj.GetCreationTimestamp()
		if cutoff.Before(&created) { // timestamps have whole seconds: the same second counts
			continue
		}
		waits, err := m.carry(ctx, obj.DeepCopyObject().(dexv1.DexEntry))
		if err != nil {
			return 0, err
		}
		if waits {
			pending++
		}
	}
	return pending, nil
}

// claimsSince returns the creation time of the DexEntryClaim CRD, read from the API server.
func (m *Migration) claimsSince(ctx context.Context) (metav1.Time, error) {
	crd := &apiextensionsv1.CustomResourceDefinition{}
	if err := m.ledger.fresh().Get(ctx, types.NamespacedName{Name: ClaimsCRDName}, crd); err != nil {
		return metav1.Time{}, fmt.Errorf("failed to read the DexEntryClaim CRD (its creation time tells objects of older versions): %w", err)
	}
	return crd.CreationTimestamp, nil
}

// carry makes obj, which owns its id under the legacy annotation, hold its claim in the Dex of
// its provider, then drops the annotation; it reports whether obj waits for its provider. Claim first: a pass that stops in between leaves an
// object that holds its claim and still carries the annotation, and the next pass (this start's
// retry, or the next start's) only drops the annotation.
func (m *Migration) carry(ctx context.Context, obj dexv1.DexEntry) (waitsForProvider bool, err error) {
	logger := log.FromContext(ctx).WithValues("entryKind", m.kind, "entryId", obj.EntryID(), "owner", client.ObjectKeyFromObject(obj))
	p := &dexv1.OIDCProvider{}
	err = m.ledger.Client.Get(ctx, tenancy.RefKey(obj.GetNamespace(), obj.EntryProviderRef()), p)
	if apierrors.IsNotFound(err) || (err == nil && p.Spec.Dex == nil) {
		logger.Info("Not carried over to a claim yet: its OIDCProvider is gone or administers no Dex; looked at again", "in", m.recheck)
		return true, nil
	}
	if err != nil {
		return false, fmt.Errorf("failed to get the OIDCProvider of %s %s/%s: %w", kindOf(m.kind).owner, obj.GetNamespace(), obj.GetName(), err)
	}
	s := &Scope{Object: obj, Provider: p}
	held, err := Holder(ctx, m.ledger.Client, m.kind, p, obj.EntryID())
	if err != nil {
		return false, err
	}
	if held != nil && !ownedBy(held, obj) {
		logger.Info("Not carried over to a claim: another object holds the id", "holder", held.Spec.Owner.Namespace+"/"+held.Spec.Owner.Name)
		return false, nil
	}
	s.Held = held
	var lost *outcome.Problem
	if err := m.ledger.Hold(ctx, s); errors.As(err, &lost) {
		logger.Info("Not carried over to a claim: another object claimed the id first", "reason", lost.Message)
		return false, nil
	} else if err != nil {
		return false, err
	}
	orig := obj.DeepCopyObject().(client.Object)
	ann := obj.GetAnnotations()
	delete(ann, LegacyAnnotation(m.kind))
	obj.SetAnnotations(ann)
	if err := PatchMetadata(ctx, m.ledger.Client, obj, client.MergeFrom(orig)); err != nil && !apierrors.IsNotFound(err) {
		// The claim is what counts; the annotation is read by nothing but this migration.
		logger.Error(err, "Failed to drop the legacy annotation of an object carried over to a claim; dropped at the next start")
		return false, nil
	}
	logger.Info("Carried an object of an older version over to a claim")
	return false, nil
}
