package controllers

import (
	"context"
	"fmt"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/record"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"

	dexv1 "dexterity.dev/dexterity/api/v1alpha1"
	"dexterity.dev/dexterity/internal/dex"
)

// dexOwnership is how an object owns one entry (a client or a connector) in a Dex: an
// annotation with the id, written together with a finalizer before the first write to Dex, so a
// manager that dies at any point still knows which entries are its own.
type dexOwnership struct {
	what       string // "client" or "connector", for messages
	annotation string
	finalizer  string
}

var (
	clientOwnership    = dexOwnership{what: "client", annotation: AnnotationRegisteredClientID, finalizer: ClientFinalizer}
	connectorOwnership = dexOwnership{what: "connector", annotation: AnnotationRegisteredConnectorID, finalizer: ConnectorFinalizer}
)

// claimed reports whether obj holds the claim on id.
func (o dexOwnership) claimed(obj metav1.Object, id string) bool {
	return obj.GetAnnotations()[o.annotation] == id
}

// claim records the claim on id and the finalizer in one optimistic-locked patch.
func (o dexOwnership) claim(ctx context.Context, c client.Client, obj client.Object, id string) error {
	if o.claimed(obj, id) && controllerutil.ContainsFinalizer(obj, o.finalizer) {
		return nil
	}
	orig := obj.DeepCopyObject().(client.Object)
	ann := obj.GetAnnotations()
	if ann == nil {
		ann = map[string]string{}
	}
	ann[o.annotation] = id
	obj.SetAnnotations(ann)
	controllerutil.AddFinalizer(obj, o.finalizer)
	if err := patchMetadata(ctx, c, obj, client.MergeFromWithOptions(orig, client.MergeFromWithOptimisticLock{})); err != nil {
		return fmt.Errorf("failed to record ownership of %s id %s: %w", o.what, id, err)
	}
	return nil
}

// release drops the claim and the finalizer without touching Dex (a lost race for an id, or
// after the entry was deleted from Dex).
func (o dexOwnership) release(ctx context.Context, c client.Client, obj client.Object) error {
	orig := obj.DeepCopyObject().(client.Object)
	ann := obj.GetAnnotations()
	delete(ann, o.annotation)
	obj.SetAnnotations(ann)
	controllerutil.RemoveFinalizer(obj, o.finalizer)
	if err := patchMetadata(ctx, c, obj, client.MergeFrom(orig)); err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("failed to release the %s claim and finalizer: %w", o.what, err)
	}
	return nil
}

// finalize deletes the owned entry from Dex through del, then releases the finalizer. While Dex
// is unavailable the finalizer stays and the delete is retried.
func (o dexOwnership) finalize(ctx context.Context, c client.Client, pool *dex.Pool, rec record.EventRecorder, obj conditionsObject, ref dexv1.ObjectRef, del func(dc dex.Client, id string) error) (ctrl.Result, error) {
	if !controllerutil.ContainsFinalizer(obj, o.finalizer) {
		return ctrl.Result{}, nil
	}
	setCondition(obj, dexv1.ConditionReady, metav1.ConditionFalse, dexv1.ReasonDeleting, "deleting the "+o.what+" from Dex")
	if id := obj.GetAnnotations()[o.annotation]; id != "" {
		if err := deleteFromDex(ctx, c, pool, rec, obj, ref, o.what, id, func(dc dex.Client) error { return del(dc, id) }); err != nil {
			return ctrl.Result{}, err
		}
	}
	return ctrl.Result{}, o.release(ctx, c, obj)
}

// patchMetadata patches annotations and finalizers. The patch is sent from a copy so that the
// response does not overwrite the status this reconcile has computed so far; only the new
// resourceVersion is taken over.
func patchMetadata(ctx context.Context, c client.Client, obj client.Object, patch client.Patch) error {
	cp := obj.DeepCopyObject().(client.Object)
	if err := c.Patch(ctx, cp, patch); err != nil {
		return err
	}
	obj.SetResourceVersion(cp.GetResourceVersion())
	return nil
}
