package controllers

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/record"
	"k8s.io/client-go/util/workqueue"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	claimsv1 "dexterity.dev/dexterity/api/claims/v1alpha1"
	dexv1 "dexterity.dev/dexterity/api/v1alpha1"
	"dexterity.dev/dexterity/internal/dex"
	"dexterity.dev/dexterity/internal/outcome"
	"dexterity.dev/dexterity/internal/ownership"
	"dexterity.dev/dexterity/internal/tenancy"
)

// The DexStaticClient and DexConnector controllers keep one entry each in a provider's Dex (a
// client, a connector). They differ in what the entry is and how it is written; the flow around
// that (reading the object, its status, deletion, the provider and the claim, mapping errors to
// conditions, the watches and the workqueue) is one, here. The API types describe each kind
// (dexv1.DexEntry), ownership of the ids is internal/ownership's, and each kind supplies in a
// dexEntryKind only its checks and the step that writes its entry (a syncEntry).

// entryObject is the object of a kind of entry: its status, and what ownership reads of it.
type entryObject interface {
	statusObject
	dexv1.DexEntry
}

// dexEntryKind is one kind of object that owns an entry in Dex: its type T, its indexes, its
// checks and its Dex calls.
type dexEntryKind[T entryObject] struct {
	// controllerName names the controller (its logs and metrics).
	controllerName string
	// use is what the object attaches to its provider's Dex (the provider's namespace policy).
	use tenancy.Use
	// secretIndex and providerIndex are the field indexes (indexes.go) of the objects by the
	// Secrets they read and by the key of their provider (by entry id: ownership.IDIndex).
	secretIndex, providerIndex string
	// defaultWorkers is the number of concurrent reconciles when none is set (0: controller-runtime's).
	defaultWorkers int

	newObject func() T
	// checkID, when set, vets the entry id against the provider before it is written to Dex (c
	// reads the cache; holds says whether the object already holds its claim on the id).
	checkID func(ctx context.Context, c client.Reader, p *dexv1.OIDCProvider, namespace, id string, holds bool) error
	// summarize sets the kind's Ready summary (see finish).
	summarize func(T)
	// deleteEntry deletes the entry with id from Dex.
	deleteEntry func(ctx context.Context, dc dex.Client, id string) error
}

// DexEntryDeps are the clients and settings of the reconcilers of Dex entries (DexStaticClients,
// DexConnectors), which embed it.
type DexEntryDeps struct {
	client.Client
	Recorder record.EventRecorder
	Pool     dex.Connections
	// APIReader reads from the API server, bypassing the cache (claims made just now).
	APIReader client.Reader

	// ResyncPeriod is the period of drift repair (default 10m): every object is compared with Dex
	// once per period, at a phase of its own (resyncSource).
	ResyncPeriod time.Duration
	// MaxRetryDelay caps the backoff of failed reconciles (default 30s).
	MaxRetryDelay time.Duration
}

// ledger is the ownership ledger the reconciles keep claims through.
func (d *DexEntryDeps) ledger() ownership.Ledger {
	return ownership.Ledger{Client: d.Client, API: d.APIReader, Recorder: d.Recorder}
}

// syncEntry makes Dex hold the entry obj describes, once its provider (own.Provider) is resolved
// and its claim on the id is checked (own.Held: nil while it holds none yet). Before it writes
// to Dex it confirms and holds the claim (ownership.Ledger.ConfirmForWrite, Hold). A failure is
// reported on the condition type it returns along with the error.
type syncEntry[T entryObject] func(ctx context.Context, obj T, own *ownership.Scope) (failedCondition string, err error)

// reconcile is the Reconcile of a dexEntryKind: it reads the object, runs the flow (run) and
// finishes its status, unless the object is going away.
func (k *dexEntryKind[T]) reconcile(ctx context.Context, d *DexEntryDeps, req ctrl.Request, sync syncEntry[T]) (ctrl.Result, error) {
	obj := k.newObject()
	if err := d.Get(ctx, req.NamespacedName, obj); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	before := obj.DeepCopyObject().(T)
	res, err := k.run(ctx, d, obj, sync)
	if released(obj, obj.EntryFinalizer()) {
		return res, err
	}
	return k.statusKind(d).finish(ctx, obj, before, res, err)
}

// statusKind is how the reconciles of the kind end. An object that waits is looked at again by
// the kind's periodic resync (resyncSource, like every object of the kind), so no outcome needs
// a delayed requeue of its own: only a Waiting with After and a polling Stalled set one.
func (k *dexEntryKind[T]) statusKind(d *DexEntryDeps) statusKind[T] {
	return statusKind[T]{client: d.Client, recorder: d.Recorder, summarize: k.summarize}
}

// run releases obj's entry when the object is being deleted, and otherwise resolves its provider,
// checks its claim and runs sync, reporting a failure on the condition of its step (entryFailure).
// An in-sync object comes back with the kind's periodic resync (resyncSource).
func (k *dexEntryKind[T]) run(ctx context.Context, d *DexEntryDeps, obj T, sync syncEntry[T]) (ctrl.Result, error) {
	ledger := d.ledger()
	own := &ownership.Scope{Object: obj, Unregister: k.unregister(d, obj)}
	if !obj.GetDeletionTimestamp().IsZero() {
		if controllerutil.ContainsFinalizer(obj, obj.EntryFinalizer()) {
			setCondition(obj, dexv1.ConditionReady, metav1.ConditionFalse, dexv1.ReasonDeleting, "deleting the "+entryWhat(obj)+" from Dex")
		}
		return ctrl.Result{}, ledger.Release(ctx, own)
	}
	p, err := tenancy.ResolveProvider(ctx, d.Client, obj.GetNamespace(), obj.EntryProviderRef(), k.use)
	own.Provider = p
	if err == nil {
		err = ledger.Check(ctx, own)
	}
	if err == nil && !own.Holds() {
		err = providerTakesNewEntries(p)
	}
	if err == nil && k.checkID != nil {
		err = k.checkID(ctx, d.Client, p, obj.GetNamespace(), obj.EntryID(), own.Holds())
		var revoked *tenancy.Revoked
		if errors.As(err, &revoked) && own.Holds() {
			// The id is someone else's now: give back the entry and the claim, so its owner
			// can register it.
			if rerr := ledger.Revoke(ctx, own, revoked.Message); rerr != nil {
				err = rerr
			}
		}
	}
	if err == nil {
		err = ledger.SyncPolicy(ctx, own)
	}
	if err != nil {
		return ctrl.Result{}, entryFailure(dexv1.ConditionRegistered, err)
	}
	if condType, err := sync(ctx, obj, own); err != nil {
		return ctrl.Result{}, entryFailure(condType, err)
	}
	return ctrl.Result{}, nil
}

// entryFailure reports a step's failure on condType (failedOn); a Dex outage that no step turned
// into an outcome is a Retry on Registered: returned, so the workqueue backs off.
func entryFailure(condType string, err error) error {
	var p *outcome.Problem
	if !errors.As(err, &p) && dex.IsUnavailable(err) {
		return failedOn(dexv1.ConditionRegistered, outcome.RetryAs(dexv1.ReasonDexUnavailable,
			fmt.Sprintf("Dex's gRPC API is unavailable (%v); retrying with backoff, nothing in Dex was changed", err), err))
	}
	return failedOn(condType, err)
}

// unregister is how ownership deletes obj's entries from Dex (ownership.Scope.Unregister).
func (k *dexEntryKind[T]) unregister(d *DexEntryDeps, obj T) func(ctx context.Context, ref dexv1.ObjectRef, addr, id string) error {
	return func(ctx context.Context, ref dexv1.ObjectRef, addr, id string) error {
		return d.deleteFromDex(ctx, obj, ref, addr, id, func(dc dex.Client) error { return k.deleteEntry(ctx, dc, id) })
	}
}

// holdForWrite makes obj (own.Object) the owner of its id right before its entry is written to
// Dex: an entry already there (inDex) is confirmed to be obj's, or one it may adopt, else the
// kind's foreign error is returned and Dex is left untouched; then the claim is held.
func (d *DexEntryDeps) holdForWrite(ctx context.Context, own *ownership.Scope, inDex bool, foreign error) error {
	ledger := d.ledger()
	if inDex {
		err := ledger.ConfirmForWrite(ctx, own)
		if errors.Is(err, ownership.ErrForeign) {
			return foreign
		}
		if err != nil {
			return err
		}
	}
	return ledger.Hold(ctx, own)
}

// entryWhat names obj's kind of entry in messages: "client" or "connector".
func entryWhat(obj dexv1.DexEntry) string { return strings.ToLower(string(obj.EntryKind())) }

func (d *DexEntryDeps) resyncPeriod() time.Duration {
	if d.ResyncPeriod > 0 {
		return d.ResyncPeriod
	}
	return 10 * time.Minute
}

// setupWithManager registers the controller of the kind, reconciled by r with workers concurrent
// reconciles (0: the kind's defaultWorkers), and its watches (its indexes: indexes.go): the
// objects themselves (spec changes, deletion, a dropped finalizer), a deleted peer or claim (a
// waiting loser may take the id over), the Secrets they read and their providers. The kind's
// carry-over of objects of older versions (ownership.Migration) runs first: r reconciles nothing
// before it is done.
func (k *dexEntryKind[T]) setupWithManager(mgr ctrl.Manager, r reconcile.Reconciler, d *DexEntryDeps, workers int) error {
	maxDelay := d.MaxRetryDelay
	if maxDelay <= 0 {
		maxDelay = 30 * time.Second
	}
	if workers <= 0 {
		workers = k.defaultWorkers
	}
	kind, finalizer := k.newObject().EntryKind(), k.newObject().EntryFinalizer()
	migration := ownership.NewMigration(d.ledger(), kind)
	if err := mgr.Add(migration); err != nil {
		return fmt.Errorf("failed to add the carry-over of %ss to claims: %w", entryWhat(k.newObject()), err)
	}
	return ctrl.NewControllerManagedBy(mgr).
		For(k.newObject(), builder.WithPredicates(predicate.Or(predicate.GenerationChangedPredicate{}, deletionStarted{}, finalizerDropped{finalizer}))).
		Watches(k.newObject(), handler.Funcs{DeleteFunc: enqueuePeersOnDelete(d)}).
		Watches(&claimsv1.DexEntryClaim{}, handler.Funcs{DeleteFunc: waitersOnClaimDelete(d.Client, kind)}).
		Watches(&corev1.Secret{}, handler.EnqueueRequestsFromMapFunc(func(ctx context.Context, o client.Object) []reconcile.Request {
			return requestsFromList(ctx, d.Client, ownership.NewList(kind), client.InNamespace(o.GetNamespace()), client.MatchingFields{k.secretIndex: o.GetName()})
		}), builder.OnlyMetadata).
		Watches(&dexv1.OIDCProvider{}, handler.EnqueueRequestsFromMapFunc(func(ctx context.Context, o client.Object) []reconcile.Request {
			return requestsFromList(ctx, d.Client, ownership.NewList(kind), client.MatchingFields{k.providerIndex: client.ObjectKeyFromObject(o).String()})
		}), builder.WithPredicates(providerChanged{})).
		WatchesRawSource(resyncSource(mgr.GetCache(), k.newObject(), d.resyncPeriod())).
		WithOptions(controller.Options{
			MaxConcurrentReconciles: workers,
			RateLimiter:             workqueue.NewTypedItemExponentialFailureRateLimiter[reconcile.Request](100*time.Millisecond, maxDelay),
		}).
		Named(k.controllerName).
		Complete(afterMigration{Reconciler: r, done: migration.Done()})
}

// afterMigration holds a kind's reconciles back until its ownership.Migration is done, so that
// the steady-state flow never meets an object of an older version that owns its id without a
// claim.
type afterMigration struct {
	reconcile.Reconciler
	done <-chan struct{}
}

// Reconcile waits for the migration, then reconciles.
func (a afterMigration) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	select {
	case <-a.done:
	case <-ctx.Done():
		return ctrl.Result{}, ctx.Err()
	}
	return a.Reconciler.Reconcile(ctx, req)
}

// enqueuePeersOnDelete wakes the objects that claim the same id as a deleted one (through any
// provider of the same Dex), so a waiting loser takes the id over.
func enqueuePeersOnDelete(d *DexEntryDeps) func(context.Context, event.TypedDeleteEvent[client.Object], workqueue.TypedRateLimitingInterface[reconcile.Request]) {
	return func(ctx context.Context, e event.TypedDeleteEvent[client.Object], q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
		obj, ok := e.Object.(dexv1.DexEntry)
		if !ok {
			return
		}
		providers := sameDexKeys(ctx, d.Client, tenancy.RefKey(obj.GetNamespace(), obj.EntryProviderRef()))
		peers, err := d.ledger().Peers(ctx, obj.EntryKind(), providers, obj.EntryID())
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
func waitersOnClaimDelete(c client.Reader, kind claimsv1.EntryKind) func(context.Context, event.TypedDeleteEvent[client.Object], workqueue.TypedRateLimitingInterface[reconcile.Request]) {
	return func(ctx context.Context, e event.TypedDeleteEvent[client.Object], q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
		cl, ok := e.Object.(*claimsv1.DexEntryClaim)
		if !ok || cl.Spec.EntryKind != kind {
			return
		}
		waiting, err := ownership.ListByID(ctx, c, kind, cl.Spec.EntryID)
		if err != nil {
			ctrl.LoggerFrom(ctx).Error(err, "Failed to find the objects waiting for a released id")
			return
		}
		for _, obj := range waiting {
			q.Add(reconcile.Request{NamespacedName: client.ObjectKeyFromObject(obj)})
		}
	}
}
