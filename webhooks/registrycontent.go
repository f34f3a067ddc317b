package webhooks

import (
	"context"
	"fmt"
	"strings"

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
	if err := v.Client.List(ctx, &list, client.InNamespace(m.Namespace), client.UnsafeDisableDeepCopy); err != nil {
		return nil, fmt.Errorf("failed to list Modules: %w", err)
	}
	owner := servedBy(list.Items, m.Name, m.ModuleAddress(), (*dexv1.Module).ModuleAddress)
	return nil, invalid("Module", m.Name, duplicateAddress("Module", owner, field.NewPath("spec", "name"), m.ModuleAddress()))
}

// ValidateUpdate implements admission.CustomValidator: the address is checked again only when it
// changed.
func (v *ModuleValidator) ValidateUpdate(ctx context.Context, oldObj, obj runtime.Object) (admission.Warnings, error) {
	return checkChanged(oldObj, obj, func(m *dexv1.Module) any { return strings.ToLower(m.ModuleAddress()) },
		func(m *dexv1.Module) (admission.Warnings, error) { return v.ValidateCreate(ctx, m) })
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
	if err := v.Client.List(ctx, &list, client.InNamespace(p.Namespace), client.UnsafeDisableDeepCopy); err != nil {
		return nil, fmt.Errorf("failed to list Providers: %w", err)
	}
	owner := servedBy(list.Items, p.Name, p.ProviderAddress(), (*dexv1.Provider).ProviderAddress)
	return nil, invalid("Provider", p.Name, duplicateAddress("Provider", owner, field.NewPath("spec", "type"), p.ProviderAddress()))
}

// ValidateUpdate implements admission.CustomValidator: the address is checked again only when it
// changed.
func (v *ProviderValidator) ValidateUpdate(ctx context.Context, oldObj, obj runtime.Object) (admission.Warnings, error) {
	return checkChanged(oldObj, obj, func(p *dexv1.Provider) any { return strings.ToLower(p.ProviderAddress()) },
		func(p *dexv1.Provider) (admission.Warnings, error) { return v.ValidateCreate(ctx, p) })
}

// ValidateDelete implements admission.CustomValidator.
func (v *ProviderValidator) ValidateDelete(context.Context, runtime.Object) (admission.Warnings, error) {
	return nil, nil
}

// servedBy returns the name of another object of items (not self) at addr, or "".
func servedBy[T any, P interface {
	*T
	GetName() string
}](items []T, self, addr string, addrOf func(P) string) string {
	for i := range items {
		o := P(&items[i])
		if o.GetName() != self && strings.EqualFold(addrOf(o), addr) { // addresses are case-insensitive
			return o.GetName()
		}
	}
	return ""
}

// duplicateAddress is the admission error for an address another object already serves.
func duplicateAddress(kind, owner string, path *field.Path, addr string) field.ErrorList {
	if owner == "" {
		return nil
	}
	return field.ErrorList{field.Invalid(path, addr,
		fmt.Sprintf("%s %s already serves %s in this namespace; add the versions to it, or delete it first", kind, owner, addr))}
}
