package controllers

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"time"

	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/record"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"

	dexv1 "dexterity.dev/dexterity/api/v1alpha1"
	"dexterity.dev/dexterity/internal/outcome"
)

// statusObject is an API object whose reconciles end in finish: conditions, and the accessors of
// api/v1alpha1/status_accessors.go.
type statusObject interface {
	conditionsObject
	SetObservedGeneration(int64)
	// StatusForCompare returns the status (a pointer), for comparing two versions of the object.
	StatusForCompare() any
}

// lastSynced is a statusObject that records when it last matched Dex (status.lastSyncTime).
type lastSynced interface {
	GetLastSyncTime() *metav1.Time
	SetLastSyncTime(*metav1.Time)
}

var (
	_ statusObject = &dexv1.DexStaticClient{}
	_ statusObject = &dexv1.DexConnector{}
	_ statusObject = &dexv1.OIDCProvider{}
	_ statusObject = &dexv1.Dex{}
	_ statusObject = &dexv1.GroupBinding{}
	_ lastSynced   = &dexv1.DexStaticClient{}
)

// statusKind is how the reconciles of one kind end (finish).
type statusKind[T statusObject] struct {
	client   client.Client
	recorder record.EventRecorder
	// summarize sets the kind's Ready summary from its specific conditions (nil when the
	// reconcile sets Ready itself).
	summarize func(T)
	// resync is when an object that waits (Stalled, or Waiting without After) is looked at
	// again; nil: only when the object or a watched object changes.
	resync func() time.Duration
	// transient is the status a transient failure leaves its condition in (False when unset).
	transient metav1.ConditionStatus
}

// failedOn says which condition a step's failure is reported on: the condition the step makes
// true. nil stays nil.
func failedOn(condType string, err error) error {
	if err == nil {
		return nil
	}
	return &stepFailure{condType: condType, err: err}
}

// stepFailure is a failure of a reconcile step, with the condition it is reported on (failedOn).
type stepFailure struct {
	condType string
	err      error
}

func (f *stepFailure) Error() string { return f.err.Error() }
func (f *stepFailure) Unwrap() error { return f.err }

// finish ends every reconcile the same way, from its outcome (res and err, as the reconcile body
// returned them; see package outcome):
//
//   - a *outcome.Stalled sets its condition False with its reason and message and marks it
//     Stalled (stallOn); the object is looked at again at the resync period, or after
//     outcome.PollAfter of how long it has waited when what it waits for is not watched;
//   - a *outcome.Waiting sets its condition False; looked at again After (or at the resync);
//   - a *outcome.Retry sets its condition False with its reason, and its error is returned;
//   - any other error sets its condition to the kind's transient status with reason Progressing,
//     and is returned (an error without a condition, failedOn, is only returned);
//   - success returns res as the body computed it.
//
// Then the kind's Ready summary, Reconciling and Stalled from Ready (setKstatus),
// status.observedGeneration (conditions always describe the current generation, failures
// included), an event on a Ready transition, and a merge patch of the status subresource from
// before, sent only when the status changed (statusChanged). A NotFound (deleted meanwhile) is
// ignored; any other patch failure is joined into the returned error.
func (k statusKind[T]) finish(ctx context.Context, obj, before T, res ctrl.Result, err error) (ctrl.Result, error) {
	res, err = k.report(obj, before, res, err)
	k.summarizeAndPatch(ctx, obj, before, &err)
	if err != nil {
		return ctrl.Result{}, err // the workqueue's backoff decides when
	}
	return res, nil
}

// report turns the reconcile's outcome into its condition and the workqueue's result (finish).
func (k statusKind[T]) report(obj, before T, res ctrl.Result, err error) (ctrl.Result, error) {
	if err == nil {
		return res, nil
	}
	condType := ""
	var f *stepFailure
	if errors.As(err, &f) {
		condType, err = f.condType, f.err
	}
	set := func(status metav1.ConditionStatus, reason, msg string) {
		if condType != "" {
			setCondition(obj, condType, status, reason, msg)
		}
	}
	var (
		stalled *outcome.Stalled
		waiting *outcome.Waiting
		retry   *outcome.Retry
	)
	switch {
	case errors.As(err, &waiting):
		set(metav1.ConditionFalse, waiting.Reason, waiting.Message)
		after := waiting.After
		if after == 0 {
			after = k.resyncAfter()
		}
		return ctrl.Result{RequeueAfter: after}, nil
	case errors.As(err, &retry):
		set(metav1.ConditionFalse, retry.Reason, retry.Message)
		return ctrl.Result{}, retry.Err
	case asStalled(err, &stalled):
		if condType != "" {
			stallOn(obj, condType, stalled)
		}
		after := k.resyncAfter()
		if stalled.Poll {
			waited := time.Duration(0)
			if was := findCondition(before.GetConditions(), condType); was.Status == metav1.ConditionFalse && was.Reason == stalled.Reason {
				waited = max(0, time.Since(was.LastTransitionTime.Time))
			}
			if poll := outcome.PollAfter(waited); after == 0 || poll < after {
				after = poll
			}
		}
		return ctrl.Result{RequeueAfter: after}, nil
	}
	status := k.transient
	if status == "" {
		status = metav1.ConditionFalse
	}
	set(status, dexv1.ReasonProgressing, err.Error())
	return ctrl.Result{}, err
}

// asStalled finds the *outcome.Stalled in err. A bare *outcome.Problem (one that says neither that
// it waits nor that it retries) waits for the user too: it reads as
// Stalled, so that no problem reads as work in progress unless its type says so.
func asStalled(err error, stalled **outcome.Stalled) bool {
	if errors.As(err, stalled) {
		return true
	}
	var p *outcome.Problem
	if errors.As(err, &p) {
		*stalled = &outcome.Stalled{Problem: *p}
		return true
	}
	return false
}

func (k statusKind[T]) resyncAfter() time.Duration {
	if k.resync == nil {
		return 0
	}
	return k.resync()
}

// stallOn sets condType False with the reason and message of a problem that waits for the user,
// and marks it Stalled: setKstatus keeps the mark when the problem is what Ready says. Steps that
// find such a problem without failing (a connector Dex could not initialise, a missing Gateway
// API) report it through stallOn too, so Stalled is decided by the outcome's type alone.
func stallOn(obj conditionsObject, condType string, s *outcome.Stalled) {
	setCondition(obj, condType, metav1.ConditionFalse, s.Reason, s.Message)
	setCondition(obj, dexv1.ConditionStalled, metav1.ConditionTrue, s.Reason, s.Message)
}

// summarizeAndPatch is the end of finish after the outcome's condition is set.
func (k statusKind[T]) summarizeAndPatch(ctx context.Context, obj, before T, retErr *error) {
	if k.summarize != nil {
		k.summarize(obj)
	}
	setKstatus(obj, before.GetConditions())
	keepTransitionTimes(obj.GetConditions(), before.GetConditions())
	obj.SetObservedGeneration(obj.GetGeneration())
	recordReadyTransition(k.recorder, obj, before.GetConditions())
	if !statusChanged(before, obj) {
		return
	}
	if err := k.client.Status().Patch(ctx, obj, client.MergeFrom(before)); err != nil && !apierrors.IsNotFound(err) {
		*retErr = errors.Join(*retErr, fmt.Errorf("failed to patch %s status: %w", reflect.TypeOf(obj).Elem().Name(), err))
	}
}

// setKstatus sets Reconciling and Stalled from Ready, the way kstatus (Flux's health checks, kapp,
// cli-utils pollers) reads them: Ready → neither (Current); a problem raised as a
// *outcome.Stalled (stallOn marked it, in this reconcile or, still standing, in an earlier one:
// before) → Stalled (Failed); anything else → Reconciling (InProgress).
func setKstatus(obj conditionsObject, before []metav1.Condition) {
	ready := findCondition(obj.GetConditions(), dexv1.ConditionReady)
	if ready.Status == metav1.ConditionTrue {
		removeCondition(obj, dexv1.ConditionReconciling)
		removeCondition(obj, dexv1.ConditionStalled)
		return
	}
	for _, mark := range []*metav1.Condition{meta.FindStatusCondition(obj.GetConditions(), dexv1.ConditionStalled), meta.FindStatusCondition(before, dexv1.ConditionStalled)} {
		if mark != nil && mark.Status == metav1.ConditionTrue && mark.Reason == ready.Reason && mark.Message == ready.Message {
			removeCondition(obj, dexv1.ConditionReconciling)
			setCondition(obj, dexv1.ConditionStalled, metav1.ConditionTrue, ready.Reason, ready.Message)
			return
		}
	}
	reason, msg := ready.Reason, ready.Message
	if reason == "" {
		reason, msg = dexv1.ReasonProgressing, "reconciling"
	}
	removeCondition(obj, dexv1.ConditionStalled)
	setCondition(obj, dexv1.ConditionReconciling, metav1.ConditionTrue, reason, msg)
}

// statusChanged is the one rule for "the status needs a write": the statuses differ semantically,
// except that a moved lastSyncTime alone is no change (it is written along with the next real
// change, so an in-sync resync writes nothing; its first appearance or its removal is a change).
// Conditions' lastTransitionTime moves only with their status, so it needs no exception.
func statusChanged(before, after statusObject) bool {
	if a, ok := after.(lastSynced); ok {
		if at, bt := a.GetLastSyncTime(), before.(lastSynced).GetLastSyncTime(); at != nil && bt != nil {
			a.SetLastSyncTime(bt)
			defer a.SetLastSyncTime(at)
		}
	}
	return !equality.Semantic.DeepEqual(before.StatusForCompare(), after.StatusForCompare())
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
