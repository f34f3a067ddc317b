// Package webhooks holds the typed validating webhooks of the four kinds. Single-object rules are
// also enforced by CEL on the CRDs (the API server applies those first); the webhooks add the
// cross-object and Dex-aware rules and friendly warnings. The controllers enforce the
// cross-object rules again, because a webhook can be bypassed or down.
package webhooks

import (
	"fmt"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/util/validation/field"
	ctrl "sigs.k8s.io/controller-runtime"

	dexv1 "dexterity.dev/dexterity/api/v1alpha1"
)

// SetupWithManager registers the validating webhooks of all four kinds.
func SetupWithManager(mgr ctrl.Manager) error {
	c := mgr.GetClient()
	if err := ctrl.NewWebhookManagedBy(mgr).For(&dexv1.OIDCProvider{}).WithValidator(&OIDCProviderValidator{}).Complete(); err != nil {
		return fmt.Errorf("failed to register OIDCProvider webhook: %w", err)
	}
	if err := ctrl.NewWebhookManagedBy(mgr).For(&dexv1.DexStaticClient{}).WithValidator(&DexStaticClientValidator{Client: c}).Complete(); err != nil {
		return fmt.Errorf("failed to register DexStaticClient webhook: %w", err)
	}
	if err := ctrl.NewWebhookManagedBy(mgr).For(&dexv1.DexConnector{}).WithValidator(&DexConnectorValidator{Client: c}).Complete(); err != nil {
		return fmt.Errorf("failed to register DexConnector webhook: %w", err)
	}
	if err := ctrl.NewWebhookManagedBy(mgr).For(&dexv1.GroupBinding{}).WithValidator(&GroupBindingValidator{}).Complete(); err != nil {
		return fmt.Errorf("failed to register GroupBinding webhook: %w", err)
	}
	return nil
}

// invalid wraps a field.ErrorList so that users see "spec.x: Invalid value: ...: how to fix".
func invalid(kind, name string, errs field.ErrorList) error {
	if len(errs) == 0 {
		return nil
	}
	return apierrors.NewInvalid(dexv1.GroupVersion.WithKind(kind).GroupKind(), name, errs)
}
