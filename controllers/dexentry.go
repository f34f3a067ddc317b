package controllers

import (
	"context"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/record"
	"k8s.io/client-go/util/workqueue"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	claimsv1 "dexterity.dev/dexterity/api/claims/v1alpha1"
	dexv1 "dexterity.dev/dexterity/api/v1alpha1"
	"dexterity.dev/dexterity/internal/dex"
	"dexterity.dev/dexterity/internal/tenancy"
)

// The DexStaticClient and DexConnector controllers keep one entry each in a provider's Dex (a
// client, a connector). They differ in what the entry is and how it is written; the flow around
// that (reading the object, its status, deletion, the provider and the claim, mapping errors to
// conditions, the watches and the workqueue) is one, here. Each kind describes itself in a
// dexEntryKind and supplies only the step that writes its entry (a syncEntry).

// dexEntryKind is one kind of object that owns an entry in Dex: its type T, its ownership
// (finalizer, claim kind, owner-key index, peer list), its indexes and its Dex calls.
type dexEntryKind[T conditionsObject] struct {
	// controllerName names the controller (its logs and metrics).
	controllerName string
	ownership      *entryOwnership
	// use is what the object attaches to its provider's Dex (the provider's namespace policy).
	use tenancy.Use
	// idIndex, secretIndex and providerIndex are the field indexes (indexes.go) of the objects by
	// entry id, by the Secrets they read, and by the key of their provider.
	idIndex, secretIndex, providerIndex string
	// defaultWorkers is the number of concurrent reconciles when none is set (0: controller-runtime's).
	defaultWorkers int

	newObject   func() T
	entryID     func(T) string
	providerRef func(T) dexv1.ObjectRef
	// checkID, when set, vets the entry id against the provider before it is written to Dex (c
	// reads the cache; holds says whether the object already holds its claim on the id).
	checkID func(ctx context.Context, c client.Reader, p *dexv1.OIDCProvider, namespace, id string, holds bool) error
	// summarize sets the kind's Ready summary (see finishStatus).
	summarize func(T)
	// deleteEntry deletes the entry with id from Dex.
	deleteEntry func(ctx context.Context, dc dex.Client, id string) error
	// dexRefusal, when set, returns the blocked problem of a Dex error that waits for the user (a
	// setting of Dex) rather than for Dex; nil for any other error.
	dexRefusal func(err error) *blocked
}

// DexEntryDeps are the clients and settings of the reconcilers of Dex entries (DexStaticClients,
// DexConnectors), which embed it.
type DexEntryDeps struct {
	client.Client
	Recorder record.EventRecorder
	Pool     dex.Connections
	// APIReader reads from the API server, bypassing the cache (claims made just now).
	APIReader client.Reader

	// ResyncPeriod is the (jittered) period of drift repair (default 10m).
	ResyncPeriod time.Duration
	// MaxRetryDelay caps the backoff of failed reconciles (default 30s).
	MaxRetryDelay time.Duration
}

// syncEntry makes Dex hold the entry obj describes, once its provider p is resolved and its claim
// on the id is reconciled (held: nil while it holds none yet). A failure is reported on the
// condition type it returns along with the error.
type syncEntry[T conditionsObject] func(ctx context.Context, obj T, p *dexv1.OIDCProvider, held *claimsv1.DexEntryClaim) (failedCondition string, err error)

// reconcile is the Reconcile of a dexEntryKind: it reads the object, finishes its status when done
// (unless it is going away), deletes its entry when the object is being deleted, and otherwise
// resolves its provider and claim and runs sync. An in-sync object comes back at the resync period.
func (k *dexEntryKind[T]) reconcile(ctx context.Context, d *DexEntryDeps, req ctrl.Request, sync syncEntry[T]) (res ctrl.Result, retErr error) {
	obj := k.newObject()
	if err := d.Get(ctx, req.NamespacedName, obj); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	before := obj.DeepCopyObject().(T)
	defer func() {
		if !released(obj, k.ownership.finalizer) {
			finishStatus(ctx, d.Client, d.Recorder, obj, before, k.summarize, &retErr)
		}
	}()

	id := k.entryID(obj)
	if !obj.GetDeletionTimestamp().IsZero() {
		return k.ownership.finalize(ctx, d.Client, d.APIReader, d.Pool, d.Recorder, obj, k.providerRef(obj), id,
			func(dc dex.Client, id string) error { return k.deleteEntry(ctx, dc, id) })
	}
	p, err := tenancy.ResolveProvider(ctx, d.Client, obj.GetNamespace(), k.providerRef(obj), k.use)
	var held *claimsv1.DexEntryClaim
	if err == nil {
		held, err = k.ownership.reconcile(ctx, d.Client, obj, p, id)
	}
	if err == nil && k.checkID != nil {
		err = k.checkID(ctx, d.Client, p, obj.GetNamespace(), id, ownedBy(held, obj))
		var revoked *tenancy.Revoked
		if errors.As(err, &revoked) && ownedBy(held, obj) {
			// The id is someone else's now: give back the entry and the claim, so its owner
			// can register it.
			if rerr := k.ownership.revoke(ctx, d, obj, k.providerRef(obj), held, revoked.Message,
				func(dc dex.Client, id string) error { return k.deleteEntry(ctx, dc, id) }); rerr != nil {
				err = rerr
			}
		}
	}
	if err == nil {
		err = k.ownership.syncPolicy(ctx, d.Client, obj, held)
	}
	if err != nil {
		return k.blockedOrError(d, obj, before.GetConditions(), dexv1.ConditionRegistered, err)
	}
	if condType, err := sync(ctx, obj, p, held); err != nil {
		return k.blockedOrError(d, obj, before.GetConditions(), condType, err)
	}
	return ctrl.Result{RequeueAfter: jitter(d.resyncPeriod())}, nil
}

// blockedOrError turns a step's error into a condition: a *blocked problem (or a Dex refusal of
// the kind) waits for the user (or a watched object) and is retried at the resync period; a Dex
// outage is returned so the workqueue backs off; anything else is returned as is.
//
// A problem about something the manager does not watch (Poll) is looked at again after pollAfter
// of the time the condition has been False with this reason, as the object read at the start of
// the reconcile (prev) says: a condition set True and back to False within one reconcile does not
// restart the backoff.
func (k *dexEntryKind[T]) blockedOrError(d *DexEntryDeps, obj T, prev []metav1.Condition, condType string, err error) (ctrl.Result, error) {
	if res, ok := waitForProvider(obj, condType, err); ok {
		return res, nil
	}
	var b *blocked
	if !errors.As(err, &b) && k.dexRefusal != nil {
		b = k.dexRefusal(err)
	}
	switch {
	case b != nil:
		setCondition(obj, condType, metav1.ConditionFalse, b.Reason, b.Message)
		after := d.resyncPeriod()
		if b.Poll {
			waited := time.Duration(0)
			if was := findCondition(prev, condType); was.Status == metav1.ConditionFalse && was.Reason == b.Reason {
				waited = max(0, time.Since(was.LastTransitionTime.Time))
			}
			after = min(after, pollAfter(waited))
		}
		return ctrl.Result{RequeueAfter: jitter(after)}, nil
	case dex.IsUnavailable(err):
		setCondition(obj, dexv1.ConditionRegistered, metav1.ConditionFalse, dexv1.ReasonDexUnavailable,
			fmt.Sprintf("Dex's gRPC API is unavailable (%v); retrying with backoff, nothing in Dex was changed", err))
		return ctrl.Result{}, err
	}
	setCondition(obj, condType, metav1.ConditionFalse, dexv1.ReasonProgressing, err.Error())
	return ctrl.Result{}, err
}

func (d *DexEntryDeps) resyncPeriod() time.Duration {
	if d.ResyncPeriod > 0 {
		return d.ResyncPeriod
	}
	return 10 * time.Minute
}

// jitter spreads periodic work: d ± 10%.
func jitter(d time.Duration) time.Duration {
	return time.Duration(float64(d) * (0.9 + 0.2*mrand.Float64()))
}

// setupWithManager registers the controller of the kind, reconciled by r with workers concurrent
// reconciles (0: the kind's defaultWorkers), and its watches (its indexes: indexes.go): the objects themselves (spec changes, deletion, a dropped finalizer), a
// deleted peer or claim (a waiting loser may take the id over), the Secrets they read and their
// providers.
func (k *dexEntryKind[T]) setupWithManager(mgr ctrl.Manager, r reconcile.Reconciler, d *DexEntryDeps, workers int) error {
	maxDelay := d.MaxRetryDelay
	if maxDelay <= 0 {
		maxDelay = 30 * time.Second
	}
	if workers <= 0 {
		workers = k.defaultWorkers
	}
	return ctrl.NewControllerManagedBy(mgr).
		For(k.newObject(), builder.WithPredicates(predicate.Or(predicate.GenerationChangedPredicate{}, deletionStarted{}, finalizerDropped{k.ownership.finalizer}))).
		Watches(k.newObject(), handler.Funcs{DeleteFunc: k.enqueuePeersOnDelete(d.Client)}).
		Watches(&claimsv1.DexEntryClaim{}, handler.Funcs{DeleteFunc: waitersOnClaimDelete(d.Client, k.ownership.kind, k.ownership.peers(), k.idIndex)}).
		Watches(&corev1.Secret{}, handler.EnqueueRequestsFromMapFunc(func(ctx context.Context, o client.Object) []reconcile.Request {
			return requestsFromList(ctx, d.Client, k.ownership.peers(), client.InNamespace(o.GetNamespace()), client.MatchingFields{k.secretIndex: o.GetName()})
		}), builder.OnlyMetadata).
		Watches(&dexv1.OIDCProvider{}, handler.EnqueueRequestsFromMapFunc(func(ctx context.Context, o client.Object) []reconcile.Request {
			return requestsFromList(ctx, d.Client, k.ownership.peers(), client.MatchingFields{k.providerIndex: client.ObjectKeyFromObject(o).String()})
		}), builder.WithPredicates(providerChanged{})).
		WithOptions(controller.Options{
			MaxConcurrentReconciles: workers,
			RateLimiter:             workqueue.NewTypedItemExponentialFailureRateLimiter[reconcile.Request](100*time.Millisecond, maxDelay),
		}).
		Named(k.controllerName).
		Complete(r)
}

// enqueuePeersOnDelete wakes the objects that claim the same id as a deleted one (through any
// provider of the same Dex), so a waiting loser takes the id over.
func (k *dexEntryKind[T]) enqueuePeersOnDelete(c client.Reader) func(context.Context, event.TypedDeleteEvent[client.Object], workqueue.TypedRateLimitingInterface[reconcile.Request]) {
	return func(ctx context.Context, e event.TypedDeleteEvent[client.Object], q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
		obj, ok := e.Object.(T)
		if !ok {
			return
		}
		peers, err := k.ownership.peersOf(ctx, c, sameDexKeys(ctx, c, tenancy.RefKey(obj.GetNamespace(), k.providerRef(obj))), k.entryID(obj))
		if err != nil {
			ctrl.LoggerFrom(ctx).Error(err, "Failed to find the objects waiting for a deleted object's id")
			return
		}
		for _, peer := range peers {
			q.Add(reconcile.Request{NamespacedName: client.ObjectKeyFromObject(peer)})
		}
	}
}

// waitersOnClaimDelete wakes the objects of a kind that wait for the id of a deleted claim (they
// lost the race for it and may now claim it).
func waitersOnClaimDelete(c client.Reader, kind claimsv1.EntryKind, list client.ObjectList, idIndex string) func(context.Context, event.TypedDeleteEvent[client.Object], workqueue.TypedRateLimitingInterface[reconcile.Request]) {
	return func(ctx context.Context, e event.TypedDeleteEvent[client.Object], q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
		cl, ok := e.Object.(*claimsv1.DexEntryClaim)
		if !ok || cl.Spec.EntryKind != kind {
			return
		}
		for _, req := range requestsFromList(ctx, c, list.DeepCopyObject().(client.ObjectList), client.MatchingFields{idIndex: cl.Spec.EntryID}) {
			q.Add(req)
		}
	}
}
