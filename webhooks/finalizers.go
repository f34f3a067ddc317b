package webhooks

import (
	"context"
	"fmt"

	admissionv1 "k8s.io/api/admission/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	dexv1 "dexterity.dev/dexterity/api/v1alpha1"
)

// The defaulting webhooks set the finalizer of DexStaticClients and DexConnectors at creation.
// The controller would otherwise patch every new object before its first write to Dex: one more
// write per object, and the most expensive one the API server sees in a burst of new objects
// (docs/benchmarks.md). They are an optimisation, not a guarantee: their failure policy is
// Ignore, and the controller still adds a missing finalizer (webhooks off, failing, or the
// finalizer removed by hand) and drops it from an object that lost the race for its id. A
// finalizer proves nothing (a tenant may write one): ownership is a DexEntryClaim.

// +kubebuilder:webhook:path=/mutate-dexterity-dev-v1alpha1-dexstaticclient,mutating=true,failurePolicy=ignore,timeoutSeconds=5,sideEffects=None,groups=dexterity.dev,resources=dexstaticclients,verbs=create,versions=v1alpha1,name=mdexstaticclient.dexterity.dev,admissionReviewVersions=v1
// +kubebuilder:webhook:path=/mutate-dexterity-dev-v1alpha1-dexconnector,mutating=true,failurePolicy=ignore,timeoutSeconds=5,sideEffects=None,groups=dexterity.dev,resources=dexconnectors,verbs=create,versions=v1alpha1,name=mdexconnector.dexterity.dev,admissionReviewVersions=v1

// FinalizerDefaulter adds Finalizer to new objects of its kind.
type FinalizerDefaulter[T client.Object] struct {
	Finalizer string
}

var (
	_ admission.CustomDefaulter = &FinalizerDefaulter[*dexv1.DexStaticClient]{}
	_ admission.CustomDefaulter = &FinalizerDefaulter[*dexv1.DexConnector]{}
)

// Default implements admission.CustomDefaulter: on creation, the object gets the finalizer.
func (d *FinalizerDefaulter[T]) Default(ctx context.Context, obj runtime.Object) error {
	o, ok := obj.(T)
	if !ok {
		var want T
		return fmt.Errorf("expected a %T, got %T", want, obj)
	}
	if req, err := admission.RequestFromContext(ctx); err == nil && req.Operation != admissionv1.Create {
		return nil
	}
	controllerutil.AddFinalizer(o, d.Finalizer)
	return nil
}
