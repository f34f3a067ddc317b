package controllers

import (
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/record"
	"sigs.k8s.io/controller-runtime/pkg/client"

	dexv1 "dexterity.dev/dexterity/api/v1alpha1"
)

// conditionsObject is an API object with status conditions.
type conditionsObject interface {
	client.Object
	GetConditions() []metav1.Condition
	SetConditions([]metav1.Condition)
}

// setCondition sets one condition, stamped with the object's generation.
func setCondition(obj conditionsObject, condType string, status metav1.ConditionStatus, reason, message string) {
	conds := obj.GetConditions()
	meta.SetStatusCondition(&conds, metav1.Condition{
		Type:               condType,
		Status:             status,
		Reason:             reason,
		Message:            message,
		ObservedGeneration: obj.GetGeneration(),
	})
	obj.SetConditions(conds)
}

// removeCondition drops a condition type.
func removeCondition(obj conditionsObject, condType string) {
	conds := obj.GetConditions()
	meta.RemoveStatusCondition(&conds, condType)
	obj.SetConditions(conds)
}

// summarizeReady sets Ready from the given specific conditions: False with the reason and message
// of the first False one; Unknown while one is missing or Unknown; True when all are True.
func summarizeReady(obj conditionsObject, types ...string) {
	for _, t := range types {
		if c := meta.FindStatusCondition(obj.GetConditions(), t); c != nil && c.Status == metav1.ConditionFalse {
			setCondition(obj, dexv1.ConditionReady, metav1.ConditionFalse, c.Reason, c.Message)
			return
		}
	}
	for _, t := range types {
		if c := meta.FindStatusCondition(obj.GetConditions(), t); c == nil || c.Status != metav1.ConditionTrue {
			setCondition(obj, dexv1.ConditionReady, metav1.ConditionUnknown, dexv1.ReasonProgressing, "waiting for "+t)
			return
		}
	}
	setCondition(obj, dexv1.ConditionReady, metav1.ConditionTrue, dexv1.ReasonReconciled, "")
}

// recordReadyTransition emits an event when the Ready condition changed between before and
// after: Normal when it became True or is work in progress (Progressing, Deleting), Warning
// otherwise.
func recordReadyTransition(rec record.EventRecorder, obj conditionsObject, before []metav1.Condition) {
	if rec == nil {
		return
	}
	now := meta.FindStatusCondition(obj.GetConditions(), dexv1.ConditionReady)
	if now == nil {
		return
	}
	was := meta.FindStatusCondition(before, dexv1.ConditionReady)
	if was != nil && was.Status == now.Status && was.Reason == now.Reason {
		return
	}
	if was == nil && now.Status == metav1.ConditionTrue {
		return // the first success is reported by the specific event (e.g. Created)
	}
	if now.Status == metav1.ConditionTrue {
		rec.Event(obj, "Normal", now.Reason, "Ready")
		return
	}
	msg := now.Message
	if msg == "" {
		msg = "Not ready"
	}
	if now.Reason == dexv1.ReasonProgressing || now.Reason == dexv1.ReasonDeleting {
		rec.Event(obj, "Normal", now.Reason, msg) // work in progress, not a problem
		return
	}
	rec.Event(obj, "Warning", now.Reason, msg)
}

// findCondition returns the condition of a type, or an Unknown placeholder.
func findCondition(conds []metav1.Condition, t string) metav1.Condition {
	if c := meta.FindStatusCondition(conds, t); c != nil {
		return *c
	}
	return metav1.Condition{Type: t, Status: metav1.ConditionUnknown}
}
