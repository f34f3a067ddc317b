package controllers

import (
	"context"
	"fmt"

	"sigs.k8s.io/controller-runtime/pkg/client"

	claimsv1 "dexterity.dev/dexterity/api/claims/v1alpha1"
	dexv1 "dexterity.dev/dexterity/api/v1alpha1"
	"dexterity.dev/dexterity/internal/tenancy"
)

// Index is a field index of the manager's cache that the controllers list by.
type Index struct {
	Object  client.Object
	Field   string
	Extract client.IndexerFunc
}

// RegisterIndexes registers Indexes with a manager's field indexer (SetupWithManager does; so do
// tests that run the webhooks, which list by the id indexes, without the controllers).
func RegisterIndexes(ctx context.Context, fi client.FieldIndexer) error {
	for _, ix := range Indexes() {
		if err := fi.IndexField(ctx, ix.Object, ix.Field, ix.Extract); err != nil {
			return fmt.Errorf("failed to index %T by %s: %w", ix.Object, ix.Field, err)
		}
	}
	return nil
}

// Indexes are every field index the controllers use, registered once by SetupWithManager (and by
// unit tests on controller-runtime's fake client).
func Indexes() []Index {
	return []Index{
		// Clients: by client id, Secret and provider.
		{&dexv1.DexStaticClient{}, indexClientID, func(o client.Object) []string {
			return []string{o.(*dexv1.DexStaticClient).EffectiveClientID()}
		}},
		{&dexv1.DexStaticClient{}, indexClientSecret, func(o client.Object) []string {
			// The Secret the client reads, and the credentials Secret it writes (repaired when
			// changed or deleted).
			c := o.(*dexv1.DexStaticClient)
			var out []string
			if c.Spec.SecretRef != nil {
				out = append(out, c.Spec.SecretRef.Name)
			}
			if c.Spec.Credentials != nil && (c.Spec.SecretRef == nil || c.Spec.Credentials.SecretName != c.Spec.SecretRef.Name) {
				out = append(out, c.Spec.Credentials.SecretName)
			}
			return out
		}},
		{&dexv1.DexStaticClient{}, indexClientProvider, func(o client.Object) []string {
			c := o.(*dexv1.DexStaticClient)
			return []string{tenancy.RefKey(c.Namespace, c.Spec.ProviderRef).String()}
		}},
		// Connectors: the same.
		{&dexv1.DexConnector{}, indexConnectorID, func(o client.Object) []string {
			return []string{o.(*dexv1.DexConnector).Spec.ConnectorID}
		}},
		{&dexv1.DexConnector{}, indexConnectorSecret, func(o client.Object) []string {
			secrets := o.(*dexv1.DexConnector).Spec.Secrets
			out := make([]string, 0, len(secrets))
			for _, s := range secrets {
				out = append(out, s.SecretRef.Name)
			}
			return out
		}},
		{&dexv1.DexConnector{}, indexConnectorProvider, func(o client.Object) []string {
			c := o.(*dexv1.DexConnector)
			return []string{tenancy.RefKey(c.Namespace, c.Spec.ProviderRef).String()}
		}},
		// Providers by their Dex TLS Secret.
		{&dexv1.OIDCProvider{}, indexProviderTLSSecret, func(o client.Object) []string {
			if n := tlsSecretName(o.(*dexv1.OIDCProvider)); n != "" {
				return []string{n}
			}
			return nil
		}},
		// Dex objects by the Secrets their spec takes values from.
		{&dexv1.Dex{}, indexDexSecret, func(o client.Object) []string { return dexSecretNames(o.(*dexv1.Dex)) }},
		// Claims by owner UID and by provider.
		{&claimsv1.DexEntryClaim{}, indexClaimOwnerUID, func(o client.Object) []string {
			return []string{string(o.(*claimsv1.DexEntryClaim).Spec.Owner.UID)}
		}},
		{&claimsv1.DexEntryClaim{}, indexClaimProvider, func(o client.Object) []string {
			cl := o.(*claimsv1.DexEntryClaim)
			return []string{tenancy.ProviderKey(cl.Spec.Provider.Namespace, cl.Spec.Provider.Name)}
		}},
	}
}
