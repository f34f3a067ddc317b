package controllers

import (
	"k8s.io/apimachinery/pkg/api/meta"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/predicate"

	dexv1 "dexterity.dev/dexterity/api/v1alpha1"
)

// finalizerDropped passes updates that remove the operator's finalizer from an object that is not
// being deleted, so that it is put back.
type finalizerDropped struct{ finalizer string }

func (f finalizerDropped) Create(event.CreateEvent) bool   { return false }
func (f finalizerDropped) Delete(event.DeleteEvent) bool   { return false }
func (f finalizerDropped) Generic(event.GenericEvent) bool { return false }
func (f finalizerDropped) Update(e event.UpdateEvent) bool {
	return e.ObjectNew.GetDeletionTimestamp().IsZero() &&
		controllerutil.ContainsFinalizer(e.ObjectOld, f.finalizer) && !controllerutil.ContainsFinalizer(e.ObjectNew, f.finalizer)
}

// deletionStarted passes updates that set the deletion timestamp.
type deletionStarted struct{ predicate.Funcs }

func (deletionStarted) Update(e event.UpdateEvent) bool {
	return e.ObjectOld.GetDeletionTimestamp().IsZero() && !e.ObjectNew.GetDeletionTimestamp().IsZero()
}

// providerChanged passes provider creations, deletions, spec changes, and DexReachable turning
// True (so that objects waiting for Dex converge as soon as it is back). Routine status updates
// do not wake every tenant object.
type providerChanged struct{ predicate.Funcs }

func (providerChanged) Create(event.CreateEvent) bool { return true }
func (providerChanged) Delete(event.DeleteEvent) bool { return true }
func (providerChanged) Update(e event.UpdateEvent) bool {
	if e.ObjectOld.GetGeneration() != e.ObjectNew.GetGeneration() {
		return true
	}
	o, ok1 := e.ObjectOld.(*dexv1.OIDCProvider)
	n, ok2 := e.ObjectNew.(*dexv1.OIDCProvider)
	if !ok1 || !ok2 {
		return false
	}
	return !meta.IsStatusConditionTrue(o.Status.Conditions, dexv1.ConditionDexReachable) &&
		meta.IsStatusConditionTrue(n.Status.Conditions, dexv1.ConditionDexReachable)
}
