package controllers

import (
	"context"
	"fmt"

	toolscache "k8s.io/client-go/tools/cache"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	claimsv1 "dexterity.dev/dexterity/api/claims/v1alpha1"
	dexv1 "dexterity.dev/dexterity/api/v1alpha1"
	"dexterity.dev/dexterity/internal/ownership"
	"dexterity.dev/dexterity/internal/tenancy"
)

// indexClaimProvider is the field index of DexEntryClaims by the key of the provider they were
// made through.
const indexClaimProvider = "spec.provider"

// Index is a field index of the manager's cache that the controllers list by.
type Index struct {
	Object  client.Object
	Field   string
	Extract client.IndexerFunc
	// AllNamespaces: the index is only ever listed across all namespaces (never with
	// client.InNamespace), so RegisterIndexes leaves out the per-namespace keys.
	AllNamespaces bool
}

// RegisterIndexes registers Indexes with a manager's field indexer (SetupWithManager does; so do
// tests that run the webhooks, which list by the id indexes, without the controllers).
func RegisterIndexes(ctx context.Context, fi client.FieldIndexer) error {
	for _, ix := range Indexes() {
		var err error
		if inf, ok := fi.(cache.Informers); ok && ix.AllNamespaces {
			err = indexAllNamespaces(ctx, inf, ix)
		} else {
			err = fi.IndexField(ctx, ix.Object, ix.Field, ix.Extract)
		}
		if err != nil {
			return fmt.Errorf("failed to index %T by %s: %w", ix.Object, ix.Field, err)
		}
	}
	return nil
}

// indexAllNamespaces registers ix on the informer of its kind under the names the cache's List
// looks up for client.MatchingFields without client.InNamespace: the index "field:<field>" and
// the key "__all_namespaces/<value>". IndexField also adds "<namespace>/<value>" for every value,
// which for an index whose values each name one object (an entry id) costs a set per object and
// doubles the index's memory (design.md §7: 4 KiB per client). TestIDIndexesListAcrossNamespaces
// checks these names against the controller-runtime the module builds with: a List that finds
// nothing would read as "no other object has this id".
func indexAllNamespaces(ctx context.Context, inf cache.Informers, ix Index) error {
	informer, err := inf.GetInformer(ctx, ix.Object)
	if err != nil {
		return err
	}
	return informer.AddIndexers(toolscache.Indexers{"field:" + ix.Field: func(o any) ([]string, error) {
		obj, ok := o.(client.Object)
		if !ok {
			return nil, fmt.Errorf("object of type %T is not an Object", o)
		}
		vals := ix.Extract(obj)
		out := make([]string, len(vals))
		for i, v := range vals {
			out[i] = "__all_namespaces/" + v
		}
		return out, nil
	}})
}

// Indexes are every field index the controllers use, registered once by SetupWithManager (and by
// unit tests on controller-runtime's fake client).
func Indexes() []Index {
	return []Index{
		// Clients: by client id, Secret and provider.
		{Object: &dexv1.DexStaticClient{}, Field: indexClientID, AllNamespaces: true, Extract: func(o client.Object) []string {
			return []string{ownership.IDBucket(o.(*dexv1.DexStaticClient).EffectiveClientID())}
		}},
		{Object: &dexv1.DexStaticClient{}, Field: indexClientSecret, Extract: func(o client.Object) []string {
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
		{Object: &dexv1.DexStaticClient{}, Field: indexClientProvider, Extract: func(o client.Object) []string {
			c := o.(*dexv1.DexStaticClient)
			return []string{tenancy.RefKey(c.Namespace, c.Spec.ProviderRef).String()}
		}},
		// Connectors: the same.
		{Object: &dexv1.DexConnector{}, Field: indexConnectorID, AllNamespaces: true, Extract: func(o client.Object) []string {
			return []string{ownership.IDBucket(o.(*dexv1.DexConnector).Spec.ConnectorID)}
		}},
		{Object: &dexv1.DexConnector{}, Field: indexConnectorSecret, Extract: func(o client.Object) []string {
			secrets := o.(*dexv1.DexConnector).Spec.Secrets
			out := make([]string, 0, len(secrets))
			for _, s := range secrets {
				out = append(out, s.SecretRef.Name)
			}
			return out
		}},
		{Object: &dexv1.DexConnector{}, Field: indexConnectorProvider, Extract: func(o client.Object) []string {
			c := o.(*dexv1.DexConnector)
			return []string{tenancy.RefKey(c.Namespace, c.Spec.ProviderRef).String()}
		}},
		// Providers by their Dex TLS Secret.
		{Object: &dexv1.OIDCProvider{}, Field: indexProviderTLSSecret, Extract: func(o client.Object) []string {
			if n := tlsSecretName(o.(*dexv1.OIDCProvider)); n != "" {
				return []string{n}
			}
			return nil
		}},
		// Dex objects by the Secrets their spec takes values from.
		{Object: &dexv1.Dex{}, Field: indexDexSecret, Extract: func(o client.Object) []string { return dexSecretNames(o.(*dexv1.Dex)) }},
		// Claims by a bucket of their owner's UID (ownership.OwnerBucket: lists filter by the UID itself)
		// and by provider.
		{Object: &claimsv1.DexEntryClaim{}, Field: ownership.IndexOwnerUID, Extract: func(o client.Object) []string {
			return []string{ownership.OwnerBucket(o.(*claimsv1.DexEntryClaim).Spec.Owner.UID)}
		}},
		{Object: &claimsv1.DexEntryClaim{}, Field: indexClaimProvider, Extract: func(o client.Object) []string {
			cl := o.(*claimsv1.DexEntryClaim)
			return []string{tenancy.ProviderKey(cl.Spec.Provider.Namespace, cl.Spec.Provider.Name)}
		}},
	}
}
