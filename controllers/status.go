package controllers

import (
	"context"
	"errors"
	"fmt"
	"reflect"

	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/record"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
)

// finishStatus ends every reconcile the same way: summarize (the kind's Ready summary; nil when
// the reconcile sets Ready itself), Reconciling and Stalled from Ready, status.observedGeneration
// (conditions always describe the current generation, failures included), an event on a Ready
// transition, and a merge patch of the status subresource from before, sent only when the status
// changed (statusChanged). A NotFound (deleted meanwhile) is ignored; any other patch failure is
// joined into *retErr. Controllers defer it right after taking before.
func finishStatus[T conditionsObject](ctx context.Context, c client.Client, rec record.EventRecorder, obj, before T, summarize func(T), retErr *error) {
	if summarize != nil {
		summarize(obj)
	}
	setKstatus(obj)
	keepTransitionTimes(obj.GetConditions(), before.GetConditions())
	statusOf(obj).FieldByName("ObservedGeneration").SetInt(obj.GetGeneration())
	recordReadyTransition(rec, obj, before.GetConditions())
	if !statusChanged(before, obj) {
		return
	}
	if err := c.Status().Patch(ctx, obj, client.MergeFrom(before)); err != nil && !apierrors.IsNotFound(err) {
		*retErr = errors.Join(*retErr, fmt.Errorf("failed to patch %s status: %w", reflect.TypeOf(obj).Elem().Name(), err))
	}
}

// statusChanged is the one rule for "the status needs a write": the statuses differ semantically,
// except that a moved lastSyncTime alone is no change (it is written along with the next real
// change, so an in-sync resync writes nothing; its first appearance or its removal is a change).
// Conditions' lastTransitionTime moves only with their status, so it needs no exception.
func statusChanged(before, after client.Object) bool {
	b, a := statusOf(before), statusOf(after)
	cmp := reflect.New(a.Type()).Elem()
	cmp.Set(a) // a shallow copy: only its LastSyncTime pointer is replaced
	if t := cmp.FieldByName("LastSyncTime"); t.IsValid() && !t.IsNil() && !b.FieldByName("LastSyncTime").IsNil() {
		t.Set(b.FieldByName("LastSyncTime"))
	}
	return !equality.Semantic.DeepEqual(b.Interface(), cmp.Interface())
}

// statusOf returns the Status struct of an API object (a pointer to a struct with a field Status
// that holds ObservedGeneration). The API types live outside this package and have no accessor
// for it, so reflection stands in for a per-kind interface; a kind without these fields panics at
// its first reconcile, which the tests of every kind would show.
func statusOf(obj client.Object) reflect.Value {
	return reflect.ValueOf(obj).Elem().FieldByName("Status")
}

// released reports whether obj is being deleted and no longer holds finalizer: it is going away,
// and its status is left alone.
func released(obj client.Object, finalizer string) bool {
	return !obj.GetDeletionTimestamp().IsZero() && !controllerutil.ContainsFinalizer(obj, finalizer)
}

// keepTransitionTimes gives every condition that has the status it had before the reconcile its
// earlier lastTransitionTime: a condition set to another status and back within one reconcile (a
// step reporting success on a condition that a later step reports failing on) did not transition,
// and must not make the status look changed on every reconcile.
func keepTransitionTimes(conds, before []metav1.Condition) {
	for i := range conds {
		if was := meta.FindStatusCondition(before, conds[i].Type); was != nil && was.Status == conds[i].Status {
			conds[i].LastTransitionTime = was.LastTransitionTime
		}
	}
}
