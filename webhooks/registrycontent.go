package webhooks

import (
	"context"
	"fmt"

	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	dexv1 "dexterity.dev/dexterity/api/v1alpha1"
)

// +kubebuilder:webhook:path=/validate-dexterity-dev-v1alpha1-module,mutating=false,failurePolicy=fail,sideEffects=None,groups=dexterity.dev,resources=modules,verbs=create;update,versions=v1alpha1,name=vmodule.dexterity.dev,admissionReviewVersions=v1
// +kubebuilder:webhook:path=/validate-dexterity-dev-v1alpha1-provider,mutating=false,failurePolicy=fail,sideEffects=None,groups=dexterity.dev,resources=providers,verbs=create;update,versions=v1alpha1,name=vprovider.dexterity.dev,admissionReviewVersions=v1

// ModuleValidator rejects a Module whose address (<namespace>/<name>/<system>) another Module of
// the same Kubernetes namespace already serves: the registry would serve only the older one.
type ModuleValidator struct {
	Client client.Reader
}

var _ admission.CustomValidator = &ModuleValidator{}

// ValidateCreate implements admission.CustomValidator.
func (v *ModuleValidator) ValidateCreate(ctx context.Context, obj runtime.Object) (admission.Warnings, error) {
	m, ok := obj.(*dexv1.Module)
	if !ok {
		return nil, fmt.Errorf("expected a Module, got %T", obj)
	}
	var list dexv1.ModuleList
	if err := v.Client.List(ctx, &list, client.InNamespace(m.Namespace)); err != nil {
		return nil, fmt.Errorf("failed to list Modules: %w", err)
	}
	for i := range list.Items {
		other := &list.Items[i]
		if other.Name != m.Name && other.ModuleAddress() == m.ModuleAddress() {
			return nil, invalid("Module", m.Name, field.ErrorList{field.Invalid(field.NewPath("spec", "name"), m.ModuleAddress(),
				fmt.Sprintf("Module %s already serves %s in this namespace; add the versions to it, or delete it first", other.Name, m.ModuleAddress()))})
		}
	}
	return nil, nil
}

// ValidateUpdate implements admission.CustomValidator.
func (v *ModuleValidator) ValidateUpdate(ctx context.Context, _, obj runtime.Object) (admission.Warnings, error) {
	return v.ValidateCreate(ctx, obj)
}

// ValidateDelete implements admission.CustomValidator.
func (v *ModuleValidator) ValidateDelete(context.Context, runtime.Object) (admission.Warnings, error) {
	return nil, nil
}

// ProviderValidator rejects a Provider whose address (<namespace>/<type>) another Provider of the
// same Kubernetes namespace already serves.
type ProviderValidator struct {
	Client client.Reader
}

var _ admission.CustomValidator = &ProviderValidator{}

// ValidateCreate implements admission.CustomValidator.
func (v *ProviderValidator) ValidateCreate(ctx context.Context, obj runtime.Object) (admission.Warnings, error) {
	p, ok := obj.(*dexv1.Provider)
	if !ok {
		return nil, fmt.Errorf("expected a Provider, got %T", obj)
	}
	var list dexv1.ProviderList
	if err := v.Client.List(ctx, &list, client.InNamespace(p.Namespace)); err != nil {
		return nil, fmt.Errorf("failed to list Providers: %w", err)
	}
	for i := range list.Items {
		other := &list.Items[i]
		if other.Name != p.Name && other.ProviderAddress() == p.ProviderAddress() {
			return nil, invalid("Provider", p.Name, field.ErrorList{field.Invalid(field.NewPath("spec", "type"), p.ProviderAddress(),
				fmt.Sprintf("Provider %s already serves %s in this namespace; add the versions to it, or delete it first", other.Name, p.ProviderAddress()))})
		}
	}
	return nil, nil
}

// ValidateUpdate implements admission.CustomValidator.
func (v *ProviderValidator) ValidateUpdate(ctx context.Context, _, obj runtime.Object) (admission.Warnings, error) {
	return v.ValidateCreate(ctx, obj)
}

// ValidateDelete implements admission.CustomValidator.
func (v *ProviderValidator) ValidateDelete(context.Context, runtime.Object) (admission.Warnings, error) {
	return nil, nil
}
