package controllers

import (
	"context"
	"fmt"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/record"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/predicate"

	dexv1 "dexterity.dev/dexterity/api/v1alpha1"
	"dexterity.dev/dexterity/internal/authz"
	"dexterity.dev/dexterity/internal/outcome"
)

// GroupBindingReconciler reports whether a GroupBinding's expression compiles within the cost
// bound (a binding that does not, stored while webhooks were off, denies every registry request
// that reaches it in name order).
type GroupBindingReconciler struct {
	client.Client
	Recorder record.EventRecorder
}

// +kubebuilder:rbac:groups=dexterity.dev,resources=groupbindings,verbs=get;list;watch
// +kubebuilder:rbac:groups=dexterity.dev,resources=groupbindings/status,verbs=get;update;patch

// Reconcile compiles the expression and checks the resource patterns, and sets Ready with the
// error as message: reason CompileError, or ExpressionTooCostly for an expression over the cost
// bound, or InvalidResourcePattern for a glob over its bounds. Either waits for the user (Stalled);
// nothing is retried until the binding changes.
func (r *GroupBindingReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	b := &dexv1.GroupBinding{}
	if err := r.Get(ctx, req.NamespacedName, b); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	before := b.DeepCopy()
	err := failedOn(dexv1.ConditionReady, checkBinding(b))
	if err == nil {
		setCondition(b, dexv1.ConditionReady, metav1.ConditionTrue, dexv1.ReasonReconciled, "expression and resource patterns compile")
	}
	return statusKind[*dexv1.GroupBinding]{client: r.Client, recorder: r.Recorder}.finish(ctx, b, before, ctrl.Result{}, err)
}

// checkBinding returns the problem of a binding that denies every registry request reaching it.
func checkBinding(b *dexv1.GroupBinding) error {
	if _, err := authz.Compile(b.Spec.Expression); err != nil {
		reason := dexv1.ReasonCompileError
		if authz.IsTooCostly(err) {
			reason = dexv1.ReasonExpressionTooCostly
		}
		return outcome.Stall(reason, fmt.Sprintf("spec.expression %v; this binding denies every registry request that reaches it (bindings are evaluated by name) until fixed", err))
	}
	if err := authz.CheckResources(b.Spec.ModuleResources, b.Spec.ProviderResources); err != nil {
		return outcome.Stall(dexv1.ReasonInvalidResourcePattern, fmt.Sprintf("%v; this binding denies every registry request that reaches it (bindings are evaluated by name) until fixed", err))
	}
	return nil
}

// SetupWithManager registers the controller.
func (r *GroupBindingReconciler) SetupWithManager(mgr ctrl.Manager) error {
	return ctrl.NewControllerManagedBy(mgr).
		For(&dexv1.GroupBinding{}, builder.WithPredicates(predicate.GenerationChangedPredicate{})).
		Named("groupbinding").
		Complete(r)
}
