package webhooks

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	dexv1 "dexterity.dev/dexterity/api/v1alpha1"
	"dexterity.dev/dexterity/internal/clientspec"
	"dexterity.dev/dexterity/internal/outcome"
	"dexterity.dev/dexterity/internal/ownership"
	"dexterity.dev/dexterity/internal/tenancy"
)

// +kubebuilder:webhook:path=/validate-dexterity-dev-v1alpha1-dexstaticclient,mutating=false,failurePolicy=fail,sideEffects=None,groups=dexterity.dev,resources=dexstaticclients,verbs=create;update,versions=v1alpha1,name=vdexstaticclient.dexterity.dev,admissionReviewVersions=v1

// DexStaticClientValidator validates DexStaticClients, including the rules that need other
// objects: the provider's namespace and prefix policies and client id ownership.
type DexStaticClientValidator struct {
	Client client.Reader
}

var _ admission.CustomValidator = &DexStaticClientValidator{}

// ValidateCreate implements admission.CustomValidator.
func (v *DexStaticClientValidator) ValidateCreate(ctx context.Context, obj runtime.Object) (admission.Warnings, error) {
	c, ok := obj.(*dexv1.DexStaticClient)
	if !ok {
		return nil, fmt.Errorf("expected a DexStaticClient, got %T", obj)
	}
	warns, errs := ValidateDexStaticClient(c)
	more, err := v.crossObject(ctx, c)
	if err != nil {
		return warns, err
	}
	return warns, invalid("DexStaticClient", c.Name, append(errs, more...))
}

// ValidateUpdate implements admission.CustomValidator. A changed spec is checked on its own; the
// cross-object rules are not checked again, because what they depend on in this object (its
// namespace, spec.providerRef and spec.clientId) cannot change, and another object's later state
// must not block this one's updates (such as the release of its finalizer).
func (v *DexStaticClientValidator) ValidateUpdate(_ context.Context, oldObj, obj runtime.Object) (admission.Warnings, error) {
	return checkChanged(oldObj, obj, func(c *dexv1.DexStaticClient) any { return c.Spec },
		func(c *dexv1.DexStaticClient) (admission.Warnings, error) {
			warns, errs := ValidateDexStaticClient(c)
			return warns, invalid("DexStaticClient", c.Name, errs)
		})
}

// ValidateDelete implements admission.CustomValidator.
func (v *DexStaticClientValidator) ValidateDelete(context.Context, runtime.Object) (admission.Warnings, error) {
	return nil, nil
}

// ValidateDexStaticClient checks one DexStaticClient on its own.
func ValidateDexStaticClient(c *dexv1.DexStaticClient) (admission.Warnings, field.ErrorList) {
	var errs field.ErrorList
	var warns admission.Warnings
	spec := field.NewPath("spec")
	var b *outcome.Problem
	if err := tenancy.CheckReservedClientID(c.EffectiveClientID()); errors.As(err, &b) {
		errs = append(errs, field.Invalid(spec.Child("clientId"), c.EffectiveClientID(), strings.TrimPrefix(b.Message, "spec.clientId: ")))
	}
	if !c.Spec.Public && c.Spec.SecretRef == nil {
		errs = append(errs, field.Required(spec.Child("secretRef"),
			"a confidential client (spec.public=false) needs a secret: set spec.secretRef (with spec.generateSecret=true to have the Secret created), or set spec.public=true"))
	}
	// The redirect URI rules (absolute https, http only on loopback hosts) and bounds are the
	// controller's too: one function, so that what admission refuses the controller refuses.
	errs = append(errs, clientspec.Problems(&c.Spec, spec)...)
	if c.Spec.Public && c.Spec.LoopbackRedirect == nil && len(c.Spec.RedirectURIs) == 0 {
		warns = append(warns, "spec: a public client without redirect URIs cannot complete a login; for tofu login add spec.loopbackRedirect: {ports: [10000, 10010], path: /login}")
	}
	return warns, errs
}

// crossObject applies the provider's policies and the one-owner-per-id rule.
func (v *DexStaticClientValidator) crossObject(ctx context.Context, c *dexv1.DexStaticClient) (field.ErrorList, error) {
	spec := field.NewPath("spec")
	p, errs, err := admissionProvider(ctx, v.Client, c.Namespace, c.Spec.ProviderRef, tenancy.Clients)
	if p == nil || err != nil {
		return errs, err
	}
	id := c.EffectiveClientID()
	var b *outcome.Problem
	for _, check := range []func(context.Context, client.Reader, *dexv1.OIDCProvider, string, string) error{tenancy.CheckReservedAudience, tenancy.CheckClientIDPrefix} {
		switch err := check(ctx, v.Client, p, c.Namespace, id); {
		case errors.As(err, &b):
			errs = append(errs, field.Invalid(spec.Child("clientId"), id, strings.TrimPrefix(b.Message, "spec.clientId: ")))
		case err != nil:
			return nil, err
		}
	}
	// The objects with the same id, from the cache's index: read only, not copied (a burst of
	// creates must not copy every client for each of them).
	var all dexv1.DexStaticClientList
	if err := v.Client.List(ctx, &all, client.MatchingFields{tenancy.IndexClientID: ownership.IDBucket(id)}, client.UnsafeDisableDeepCopy); err != nil {
		return nil, fmt.Errorf("failed to list DexStaticClients: %w", err)
	}
	provider := tenancy.ProviderKey(p.Namespace, p.Name)
	sameDex, err := sameDexSet(ctx, v.Client, p)
	if err != nil {
		return nil, err
	}
	for _, o := range all.Items {
		if o.UID == c.UID || (o.Namespace == c.Namespace && o.Name == c.Name) {
			continue
		}
		if o.EffectiveClientID() == id && sameDex[tenancy.RefKey(o.Namespace, o.Spec.ProviderRef).String()] {
			errs = append(errs, field.Duplicate(spec.Child("clientId"),
				fmt.Sprintf("%s: client id already owned by DexStaticClient %s/%s in the Dex of OIDCProvider %s; choose another spec.clientId", id, o.Namespace, o.Name, provider)))
			break
		}
	}
	return errs, nil
}
