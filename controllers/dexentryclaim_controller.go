package controllers

import (
	"context"
	"fmt"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/record"
	"k8s.io/client-go/util/workqueue"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	claimsv1 "dexterity.dev/dexterity/api/claims/v1alpha1"
	dexv1 "dexterity.dev/dexterity/api/v1alpha1"
	"dexterity.dev/dexterity/internal/dex"
	"dexterity.dev/dexterity/internal/ownership"
)

// DexEntryClaimReconciler collects orphaned claims: a claim whose owner is gone (deleted without
// its finalizer having run, e.g. removed by hand) still names an entry in Dex that nobody owns.
// It deletes that entry from Dex, then the claim. Claims of living owners are left alone.
type DexEntryClaimReconciler struct {
	client.Client
	// APIReader confirms with the API server that an owner is gone before anything is deleted.
	APIReader client.Reader
	Recorder  record.EventRecorder
	Pool      dex.Connections
	// RetryPeriod is how often a claim whose Dex no provider reaches any more is looked at again.
	RetryPeriod time.Duration
}

// +kubebuilder:rbac:groups=claims.dexterity.dev,resources=dexentryclaims,verbs=get;list;watch;create;patch;delete
// The claims CRD's creation time tells objects of older versions (carried over to claims by
// ownership.Migration) from newer ones.
// +kubebuilder:rbac:groups=apiextensions.k8s.io,resources=customresourcedefinitions,verbs=get,resourceNames=dexentryclaims.claims.dexterity.dev

// Reconcile deletes an orphaned claim's entry from Dex, then the claim.
func (r *DexEntryClaimReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	cl := &claimsv1.DexEntryClaim{}
	if err := r.Get(ctx, req.NamespacedName, cl); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if alive, err := ownership.OwnerAlive(ctx, r.Client, cl); err != nil || alive {
		return ctrl.Result{}, err
	}
	// Confirm with the API server: the cache may lag behind a just-created owner.
	fresh := &claimsv1.DexEntryClaim{}
	if err := r.APIReader.Get(ctx, req.NamespacedName, fresh); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if fresh.UID != cl.UID {
		return ctrl.Result{}, nil
	}
	if alive, err := ownership.OwnerAlive(ctx, r.APIReader, fresh); err != nil || alive {
		return ctrl.Result{}, err
	}
	logger := log.FromContext(ctx).WithValues("entryKind", cl.Spec.EntryKind, "entryId", cl.Spec.EntryID,
		"owner", cl.Spec.Owner.Namespace+"/"+cl.Spec.Owner.Name)
	if fresh.Annotations[AnnotationClaimDeletionPolicy] == string(dexv1.DeletionPolicyOrphan) {
		// Its owner asked for the entry to outlive it: release the claim only.
		logger.Info("Released the claim of an orphaned entry; the entry stays in Dex (deletionPolicy Orphan)")
		r.Recorder.Eventf(cl, corev1.EventTypeNormal, "Orphaned", "Left %s %s in Dex: %s %s/%s that owned it is gone and asked for it to stay (deletionPolicy: Orphan)", strings.ToLower(string(cl.Spec.EntryKind)), cl.Spec.EntryID, cl.Spec.Owner.Kind, cl.Spec.Owner.Namespace, cl.Spec.Owner.Name)
		return ctrl.Result{}, ownership.DeleteClaim(ctx, r.Client, fresh)
	}
	p, err := r.providerFor(ctx, cl)
	if err != nil {
		return ctrl.Result{}, err
	}
	if p == nil {
		logger.Info("No OIDCProvider reaches the Dex of an orphaned claim; its entry stays in Dex for now", "dexAddress", cl.Spec.DexAddress)
		r.Recorder.Eventf(cl, corev1.EventTypeWarning, dexv1.ReasonProviderNotFound, "No OIDCProvider administers Dex %s any more; %s %s stays there until one does", cl.Spec.DexAddress, strings.ToLower(string(cl.Spec.EntryKind)), cl.Spec.EntryID)
		return ctrl.Result{RequeueAfter: r.retryPeriod()}, nil
	}
	dc, err := dexClientFor(ctx, r.Client, r.Pool, p)
	if err != nil {
		return ctrl.Result{}, err
	}
	if cl.Spec.EntryKind == claimsv1.EntryConnector {
		err = dc.DeleteConnector(ctx, cl.Spec.EntryID)
	} else {
		err = dc.DeleteClient(ctx, cl.Spec.EntryID)
	}
	if err != nil && !dex.IsNotFound(err) && !dex.IsReadOnly(err) {
		return ctrl.Result{}, fmt.Errorf("failed to delete orphaned %s %s from Dex: %w", strings.ToLower(string(cl.Spec.EntryKind)), cl.Spec.EntryID, err)
	}
	logger.Info("Deleted an orphaned entry from Dex: its owner is gone")
	r.Recorder.Eventf(cl, corev1.EventTypeNormal, "Deleted", "Deleted %s %s from Dex: %s %s/%s that owned it is gone", strings.ToLower(string(cl.Spec.EntryKind)), cl.Spec.EntryID, cl.Spec.Owner.Kind, cl.Spec.Owner.Namespace, cl.Spec.Owner.Name)
	return ctrl.Result{}, ownership.DeleteClaim(ctx, r.Client, fresh)
}

// providerFor returns the provider the claim was made through, or another one administering the
// same Dex; nil when none does.
func (r *DexEntryClaimReconciler) providerFor(ctx context.Context, cl *claimsv1.DexEntryClaim) (*dexv1.OIDCProvider, error) {
	return providerOfDex(ctx, r.Client, types.NamespacedName{Namespace: cl.Spec.Provider.Namespace, Name: cl.Spec.Provider.Name}, cl.Spec.DexAddress)
}

func (r *DexEntryClaimReconciler) retryPeriod() time.Duration {
	if r.RetryPeriod > 0 {
		return r.RetryPeriod
	}
	return 5 * time.Minute
}

// SetupWithManager registers the controller (its indexes: indexes.go).
func (r *DexEntryClaimReconciler) SetupWithManager(mgr ctrl.Manager) error {
	ownerGone := handler.Funcs{DeleteFunc: func(ctx context.Context, e event.TypedDeleteEvent[client.Object], q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
		var list claimsv1.DexEntryClaimList
		if err := r.List(ctx, &list, client.MatchingFields{ownership.IndexOwnerUID: ownership.OwnerBucket(e.Object.GetUID())}, client.UnsafeDisableDeepCopy); err != nil {
			ctrl.LoggerFrom(ctx).Error(err, "Failed to list the claims of a deleted object")
			return
		}
		for _, cl := range list.Items {
			if cl.Spec.Owner.UID == e.Object.GetUID() {
				q.Add(reconcile.Request{NamespacedName: client.ObjectKeyFromObject(&cl)})
			}
		}
	}}
	return ctrl.NewControllerManagedBy(mgr).
		For(&claimsv1.DexEntryClaim{}).
		Watches(&dexv1.DexStaticClient{}, ownerGone).
		Watches(&dexv1.DexConnector{}, ownerGone).
		WithOptions(controller.Options{
			RateLimiter: workqueue.NewTypedItemExponentialFailureRateLimiter[reconcile.Request](100*time.Millisecond, 30*time.Second),
		}).
		Named("dexentryclaim").
		Complete(r)
}
