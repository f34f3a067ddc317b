package webhooks

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	dexv1 "dexterity.dev/dexterity/api/v1alpha1"
	"dexterity.dev/dexterity/internal/authz"
)

// +kubebuilder:webhook:path=/validate-dexterity-dev-v1alpha1-groupbinding,mutating=false,failurePolicy=fail,sideEffects=None,groups=dexterity.dev,resources=groupbindings,verbs=create;update,versions=v1alpha1,name=vgroupbinding.dexterity.dev,admissionReviewVersions=v1

// GroupBindingValidator checks that a GroupBinding's expression compiles to a boolean over
// `groups []string`, with the environment the registry uses, within the cost bound.
type GroupBindingValidator struct{}

var _ admission.CustomValidator = &GroupBindingValidator{}

// ValidateCreate implements admission.CustomValidator.
func (v *GroupBindingValidator) ValidateCreate(_ context.Context, obj runtime.Object) (admission.Warnings, error) {
	b, ok := obj.(*dexv1.GroupBinding)
	if !ok {
		return nil, fmt.Errorf("expected a GroupBinding, got %T", obj)
	}
	return nil, invalid("GroupBinding", b.Name, ValidateGroupBinding(b))
}

// ValidateUpdate implements admission.CustomValidator: a changed spec is checked.
func (v *GroupBindingValidator) ValidateUpdate(ctx context.Context, oldObj, obj runtime.Object) (admission.Warnings, error) {
	return checkChanged(oldObj, obj, func(b *dexv1.GroupBinding) any { return b.Spec },
		func(b *dexv1.GroupBinding) (admission.Warnings, error) { return v.ValidateCreate(ctx, b) })
}

// ValidateDelete implements admission.CustomValidator.
func (v *GroupBindingValidator) ValidateDelete(context.Context, runtime.Object) (admission.Warnings, error) {
	return nil, nil
}

// ValidateGroupBinding checks one GroupBinding: the expression must compile to a boolean and be
// within the cost bound (the error names the part, its position and why).
func ValidateGroupBinding(b *dexv1.GroupBinding) field.ErrorList {
	var errs field.ErrorList
	if _, err := authz.Compile(b.Spec.Expression); err != nil {
		hint := `; write a boolean over groups, e.g. "team-a" in groups`
		if authz.IsTooCostly(err) {
			hint = fmt.Sprintf(`; GroupBinding expressions must stay cheap for any token (up to %d groups): loop over groups once, e.g. any(groups, # startsWith "team-a:") (docs/groupbinding.md, "Cost bound")`, authz.MaxGroups)
		}
		errs = append(errs, field.Invalid(field.NewPath("spec", "expression"), b.Spec.Expression, err.Error()+hint))
	}
	// The resource globs are matched within the same evaluation budget; patterns that could
	// cost more than it allows, or that can never match, are refused here, naming each one.
	var pes authz.PatternErrors
	if err := authz.CheckResources(b.Spec.ModuleResources, b.Spec.ProviderResources); errors.As(err, &pes) {
		for _, pe := range pes {
			p := field.NewPath("spec", strings.TrimPrefix(pe.Field, "spec."))
			if pe.Index < 0 {
				n := len(b.Spec.ModuleResources)
				if pe.Field == "spec.providerResources" {
					n = len(b.Spec.ProviderResources)
				}
				errs = append(errs, field.Invalid(p, fmt.Sprintf("%d patterns", n), pe.Reason))
			} else {
				errs = append(errs, field.Invalid(p.Index(pe.Index), pe.Pattern, pe.Reason))
			}
		}
	}
	return errs
}
