// Package webhooks holds the typed validating webhooks of the kinds, and two defaulting webhooks
// that only set finalizers (finalizers.go). Single-object rules are
// also enforced by CEL on the CRDs (the API server applies those first); the webhooks add the
// cross-object and Dex-aware rules and friendly warnings. The controllers enforce the
// cross-object rules again, because a webhook can be bypassed or down.
package webhooks

import (
	"context"
	"errors"
	"fmt"

	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/validation/field"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	dexv1 "dexterity.dev/dexterity/api/v1alpha1"
	"dexterity.dev/dexterity/internal/outcome"
	"dexterity.dev/dexterity/internal/tenancy"
)

// SetupWithManager registers the validating webhooks of all kinds, and the defaulting webhooks that
// set the finalizers of DexStaticClients and DexConnectors (finalizers.go). They read mgr's cache
// by the id indexes tenancy.IndexClientID and tenancy.IndexConnectorID (by ownership.IDBucket: lists
// keep only the objects with the id), which
// controllers.SetupWithManager registers (on every replica).
func SetupWithManager(mgr ctrl.Manager) error {
	c := mgr.GetClient()
	if err := ctrl.NewWebhookManagedBy(mgr).For(&dexv1.OIDCProvider{}).WithValidator(&OIDCProviderValidator{Client: c}).Complete(); err != nil {
		return fmt.Errorf("failed to register OIDCProvider webhook: %w", err)
	}
	if err := ctrl.NewWebhookManagedBy(mgr).For(&dexv1.DexStaticClient{}).WithValidator(&DexStaticClientValidator{Client: c}).
		WithDefaulter(&FinalizerDefaulter[*dexv1.DexStaticClient]{Finalizer: dexv1.ClientFinalizer}).Complete(); err != nil {
		return fmt.Errorf("failed to register DexStaticClient webhook: %w", err)
	}
	if err := ctrl.NewWebhookManagedBy(mgr).For(&dexv1.DexConnector{}).WithValidator(&DexConnectorValidator{Client: c}).
		WithDefaulter(&FinalizerDefaulter[*dexv1.DexConnector]{Finalizer: dexv1.ConnectorFinalizer}).Complete(); err != nil {
		return fmt.Errorf("failed to register DexConnector webhook: %w", err)
	}
	if err := ctrl.NewWebhookManagedBy(mgr).For(&dexv1.GroupBinding{}).WithValidator(&GroupBindingValidator{}).Complete(); err != nil {
		return fmt.Errorf("failed to register GroupBinding webhook: %w", err)
	}
	if err := ctrl.NewWebhookManagedBy(mgr).For(&dexv1.Module{}).WithValidator(&ModuleValidator{Client: c}).Complete(); err != nil {
		return fmt.Errorf("failed to register Module webhook: %w", err)
	}
	if err := ctrl.NewWebhookManagedBy(mgr).For(&dexv1.Provider{}).WithValidator(&ProviderValidator{Client: c}).Complete(); err != nil {
		return fmt.Errorf("failed to register Provider webhook: %w", err)
	}
	return nil
}

// checkChanged validates an update with check only when what check validates (of: the spec, or a
// registry address) changed. Metadata and status changes, such as the operator's own finalizer
// and ownership patches or a user's labels, are never refused: a rule added since the object was
// stored, or another object's later state, must not block its finalizers and leave it Terminating.
func checkChanged[T runtime.Object](oldObj, obj runtime.Object, of func(T) any, check func(T) (admission.Warnings, error)) (admission.Warnings, error) {
	o, ok1 := oldObj.(T)
	n, ok2 := obj.(T)
	if !ok1 || !ok2 {
		var want T
		return nil, fmt.Errorf("expected two %T, got %T and %T", want, oldObj, obj)
	}
	if equality.Semantic.DeepEqual(of(o), of(n)) {
		return nil, nil
	}
	return check(n)
}

// sameDexSet is the set of providers sharing p's Dex (p included): ids are unique per Dex.
func sameDexSet(ctx context.Context, c client.Reader, p *dexv1.OIDCProvider) (map[string]bool, error) {
	keys, err := tenancy.SameDex(ctx, c, p)
	if err != nil {
		return nil, err
	}
	set := make(map[string]bool, len(keys))
	for _, k := range keys {
		set[k] = true
	}
	return set, nil
}

// invalid wraps a field.ErrorList so that users see "spec.x: Invalid value: ...: how to fix".
func invalid(kind, name string, errs field.ErrorList) error {
	if len(errs) == 0 {
		return nil
	}
	return apierrors.NewInvalid(dexv1.GroupVersion.WithKind(kind).GroupKind(), name, errs)
}

// admissionProvider resolves the OIDCProvider a tenant object refers to. A namespace the provider
// does not allow is a Forbidden error on spec.providerRef; a provider that does not exist (yet) or
// does not administer Dex is no admission error (the controller reports it and waits), and then
// the returned provider is nil.
func admissionProvider(ctx context.Context, c client.Reader, ns string, ref dexv1.ObjectRef, use tenancy.Use) (*dexv1.OIDCProvider, field.ErrorList, error) {
	p, err := tenancy.ResolveProvider(ctx, c, ns, ref, use)
	var b *outcome.Problem
	switch {
	case errors.As(err, &b) && b.Reason == dexv1.ReasonNamespaceNotAllowed:
		return nil, field.ErrorList{field.Forbidden(field.NewPath("spec", "providerRef"), b.Message)}, nil
	case errors.As(err, &b):
		return nil, nil, nil
	case err != nil:
		return nil, nil, err
	case !p.DeletionTimestamp.IsZero():
		return nil, field.ErrorList{field.Forbidden(field.NewPath("spec", "providerRef"),
			fmt.Sprintf("OIDCProvider %s/%s is being deleted and takes no new clients or connectors; refer to another provider", p.Namespace, p.Name))}, nil
	}
	return p, nil, nil
}
