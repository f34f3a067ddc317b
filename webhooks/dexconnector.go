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
	"dexterity.dev/dexterity/internal/connector"
	"dexterity.dev/dexterity/internal/ownership"
	"dexterity.dev/dexterity/internal/tenancy"
)

// +kubebuilder:webhook:path=/validate-dexterity-dev-v1alpha1-dexconnector,mutating=false,failurePolicy=fail,sideEffects=None,groups=dexterity.dev,resources=dexconnectors,verbs=create;update,versions=v1alpha1,name=vdexconnector.dexterity.dev,admissionReviewVersions=v1

// DexConnectorValidator validates DexConnectors: type, config against Dex's own types, literal
// secrets, namespace policy and connector id ownership.
type DexConnectorValidator struct {
	Client client.Reader
}

var _ admission.CustomValidator = &DexConnectorValidator{}

// ValidateCreate implements admission.CustomValidator.
func (v *DexConnectorValidator) ValidateCreate(ctx context.Context, obj runtime.Object) (admission.Warnings, error) {
	c, ok := obj.(*dexv1.DexConnector)
	if !ok {
		return nil, fmt.Errorf("expected a DexConnector, got %T", obj)
	}
	errs := ValidateDexConnector(c)
	more, err := v.crossObject(ctx, c)
	if err != nil {
		return nil, err
	}
	return nil, invalid("DexConnector", c.Name, append(errs, more...))
}

// ValidateUpdate implements admission.CustomValidator. A changed spec is checked on its own; the
// cross-object rules are not checked again, because what they depend on in this object (its
// namespace, spec.providerRef and spec.connectorId) cannot change.
func (v *DexConnectorValidator) ValidateUpdate(_ context.Context, oldObj, obj runtime.Object) (admission.Warnings, error) {
	return checkChanged(oldObj, obj, func(c *dexv1.DexConnector) any { return c.Spec },
		func(c *dexv1.DexConnector) (admission.Warnings, error) {
			return nil, invalid("DexConnector", c.Name, ValidateDexConnector(c))
		})
}

// ValidateDelete implements admission.CustomValidator.
func (v *DexConnectorValidator) ValidateDelete(context.Context, runtime.Object) (admission.Warnings, error) {
	return nil, nil
}

// ValidateDexConnector checks one DexConnector on its own. The config is checked with placeholder
// values at the spec.secrets paths, since Secret values are only read at reconcile time.
func ValidateDexConnector(c *dexv1.DexConnector) field.ErrorList {
	var errs field.ErrorList
	spec := field.NewPath("spec")
	typ := string(c.Spec.Type)
	var raw []byte
	if c.Spec.Config != nil {
		raw = c.Spec.Config.Raw
	}
	placeholders := map[string]string{}
	for _, s := range c.Spec.Secrets {
		placeholders[s.Path] = "placeholder"
	}
	out := connector.Render(typ, raw, placeholders)
	for _, l := range out.LiteralSecrets {
		errs = append(errs, field.Forbidden(spec.Child("config").Child(l),
			fmt.Sprintf("secret values must not be written in spec.config; remove it and add spec.secrets: [{path: %s, secretRef: {name: <secret>, key: <key>}}]", l)))
	}
	if out.InjectErr != nil {
		errs = append(errs, field.Invalid(spec.Child("secrets"), "", out.InjectErr.Error()))
	}
	for _, e := range out.Invalid {
		if e.Path == "" {
			errs = append(errs, field.NotSupported(spec.Child("type"), typ, connector.Types))
			continue
		}
		p := spec.Child("config")
		for _, part := range strings.Split(e.Path, ".") {
			p = p.Child(part)
		}
		errs = append(errs, field.Invalid(p, "", "Dex would not load this "+typ+" connector: "+e.Message))
	}
	return errs
}

func (v *DexConnectorValidator) crossObject(ctx context.Context, c *dexv1.DexConnector) (field.ErrorList, error) {
	spec := field.NewPath("spec")
	p, errs, err := admissionProvider(ctx, v.Client, c.Namespace, c.Spec.ProviderRef, tenancy.Connectors)
	if p == nil || err != nil {
		return errs, err
	}
	// The objects with the same id, from the cache's index: read only, not copied.
	var all dexv1.DexConnectorList
	if err := v.Client.List(ctx, &all, client.MatchingFields{tenancy.IndexConnectorID: ownership.IDBucket(c.Spec.ConnectorID)}, client.UnsafeDisableDeepCopy); err != nil {
		return nil, fmt.Errorf("failed to list DexConnectors: %w", err)
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
		if o.Spec.ConnectorID == c.Spec.ConnectorID && sameDex[tenancy.RefKey(o.Namespace, o.Spec.ProviderRef).String()] {
			return field.ErrorList{field.Duplicate(spec.Child("connectorId"),
				fmt.Sprintf("%s: connector id already owned by DexConnector %s/%s in the Dex of OIDCProvider %s; choose another spec.connectorId", c.Spec.ConnectorID, o.Namespace, o.Name, provider))}, nil
		}
	}
	return nil, nil
}
