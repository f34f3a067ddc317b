package controllers

import (
	"context"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	claimsv1 "dexterity.dev/dexterity/api/claims/v1alpha1"
	dexv1 "dexterity.dev/dexterity/api/v1alpha1"
	"dexterity.dev/dexterity/internal/dex"
	"dexterity.dev/dexterity/internal/dexdeploy"
	"dexterity.dev/dexterity/internal/oidc"
)

// Options tune the controllers; zero values take each controller's default.
type Options struct {
	// ResyncPeriod of drift repair against Dex (clients and connectors).
	ResyncPeriod time.Duration
	// ProviderHealthInterval between Dex reachability checks.
	ProviderHealthInterval time.Duration
	// MaxRetryDelay caps the backoff of failed reconciles.
	MaxRetryDelay time.Duration
	// DexCerts is the lifetime policy of the gRPC certificates of Dex objects (tests shorten it).
	DexCerts dexdeploy.CertPolicy
	// ServiceAccountFallback, when set, says how the registry checks ServiceAccount tokens
	// (published: verified against the API server's keys first; else rate-limited, message says
	// why); OIDCProviders with allowServiceAccountFallback show it as a condition.
	ServiceAccountFallback func() (published bool, message string)
}

// CacheOptions are the options of the manager's cache: objects are kept without what nothing
// reads (stripUnread), the kinds only Dex objects render only when labelled (DexCacheOptions),
// and Secrets (metadata only) only when labelled dexv1.LabelWatchedSecret (secrets.go): the
// operator never holds every Secret of the cluster, not even its metadata.
func CacheOptions() cache.Options {
	byObject := DexCacheOptions()
	byObject[&corev1.Secret{}] = cache.ByObject{Label: labels.SelectorFromSet(labels.Set{dexv1.LabelWatchedSecret: "true"})}
	return cache.Options{DefaultTransform: stripUnread, ByObject: byObject}
}

// ClientOptions are the options of the manager's client: Secrets are read from the API server.
// The controllers watch Secrets metadata only (builder.OnlyMetadata), so the operator never holds
// the data of every Secret of the cluster in memory.
func ClientOptions() client.Options {
	return client.Options{Cache: &client.CacheOptions{DisableFor: []client.Object{&corev1.Secret{}}}}
}

// lastApplied is kubectl's copy of the applied object (a Secret's data included).
const lastApplied = corev1.LastAppliedConfigAnnotation

// stripUnread drops managed fields and kubectl's last-applied configuration from an object
// before the cache stores it. Cached objects are written back by patch only (an update would
// remove the annotation from the stored object), except the objects Dex renders, which kubectl
// does not apply.
//
// What tenants write on their own objects is bounded by the API server only (256 KiB of
// annotations, labels without a count), so the cache keeps none of it where nothing reads it:
// Secrets (watched as metadata: names, owners and versions are what is read) keep no labels or
// annotations, and the tenant kinds keep only the legacy ownership annotations the claims
// carry-over reads. Otherwise a tenant's annotations would grow the shared manager by up to
// 256 KiB per object (design.md §7: 0.1 KiB per unrelated Secret, 4 KiB per client).
func stripUnread(in any) (any, error) {
	switch o := in.(type) {
	case *metav1.PartialObjectMetadata:
		// Secrets, watched metadata only: what the watches read is the name, the version and
		// the controlling owner (the Dex kind owns its Secrets). Anyone who may create a Secret
		// may label it to be watched, so nothing of unbounded size is kept (finalizers, other
		// owner references).
		o.ManagedFields, o.Annotations, o.Labels, o.Finalizers, o.GenerateName = nil, nil, nil, nil, ""
		if ref := metav1.GetControllerOfNoCopy(o); ref != nil {
			o.OwnerReferences = []metav1.OwnerReference{*ref}
		} else {
			o.OwnerReferences = nil
		}
		return o, nil
	case *dexv1.DexStaticClient, *dexv1.DexConnector, *dexv1.GroupBinding, *dexv1.Module, *dexv1.Provider:
		obj := o.(metav1.Object)
		obj.SetManagedFields(nil)
		obj.SetLabels(nil)
		obj.SetAnnotations(keptAnnotations(o))
		internObject(o)
		return o, nil
	case *claimsv1.DexEntryClaim:
		// Claims are listed by index and never by label from the cache.
		o.SetManagedFields(nil)
		o.SetLabels(nil)
		internObject(o)
		return o, nil
	}
	if o, err := meta.Accessor(in); err == nil {
		o.SetManagedFields(nil)
		if a := o.GetAnnotations(); a[lastApplied] != "" {
			delete(a, lastApplied)
			o.SetAnnotations(a) // an unstructured object's annotations are a copy
		}
	}
	return in, nil
}

// keptAnnotations returns the annotations of a tenant object that the controllers read, or nil:
// the legacy ownership annotation of a DexStaticClient or DexConnector, and only when it names the
// object's own id, the one value the claims carry-over (ownership.Migration) accepts. Any other
// value, of up to 256 KiB, would cost the manager its size per object for nothing.
func keptAnnotations(obj any) map[string]string {
	var key, id string
	switch o := obj.(type) {
	case *dexv1.DexStaticClient:
		key, id = LegacyAnnotationRegisteredClientID, o.EffectiveClientID()
	case *dexv1.DexConnector:
		key, id = LegacyAnnotationRegisteredConnectorID, o.Spec.ConnectorID
	default:
		return nil
	}
	if v := obj.(metav1.Object).GetAnnotations()[key]; v != "" && v == id {
		return map[string]string{key: v}
	}
	return nil
}

// SetupWithManager registers the key-cache sync (every replica) and the five controllers
// (leader only) on mgr, sharing one Dex connection pool and one key cache. The manager binary,
// the tests and the benchmarks all wire the operator through here.
func SetupWithManager(mgr ctrl.Manager, pool dex.Connections, keys *oidc.Cache, o Options) error {
	if err := (&KeyCacheSync{Keys: keys}).SetupWithManager(mgr); err != nil {
		return fmt.Errorf("failed to set up key cache: %w", err)
	}
	if err := (&OIDCProviderReconciler{
		Client: mgr.GetClient(), Recorder: mgr.GetEventRecorderFor("dexterity-oidcprovider"),
		Pool: pool, Keys: keys, HealthInterval: o.ProviderHealthInterval, MaxRetryDelay: o.MaxRetryDelay,
		APIReader: mgr.GetAPIReader(), ServiceAccountFallback: o.ServiceAccountFallback,
	}).SetupWithManager(mgr); err != nil {
		return fmt.Errorf("failed to set up OIDCProvider controller: %w", err)
	}
	if err := RegisterIndexes(context.Background(), mgr.GetFieldIndexer()); err != nil {
		return err
	}
	if err := (&DexEntryClaimReconciler{
		Client: mgr.GetClient(), APIReader: mgr.GetAPIReader(), Recorder: mgr.GetEventRecorderFor("dexterity-dexentryclaim"),
		Pool: pool,
	}).SetupWithManager(mgr); err != nil {
		return fmt.Errorf("failed to set up DexEntryClaim controller: %w", err)
	}
	if err := (&DexStaticClientReconciler{DexEntryDeps: DexEntryDeps{
		Client: mgr.GetClient(), Recorder: mgr.GetEventRecorderFor("dexterity-dexstaticclient"),
		Pool: pool, APIReader: mgr.GetAPIReader(), ResyncPeriod: o.ResyncPeriod, MaxRetryDelay: o.MaxRetryDelay,
	}}).SetupWithManager(mgr); err != nil {
		return fmt.Errorf("failed to set up DexStaticClient controller: %w", err)
	}
	if err := (&DexConnectorReconciler{DexEntryDeps: DexEntryDeps{
		Client: mgr.GetClient(), Recorder: mgr.GetEventRecorderFor("dexterity-dexconnector"),
		Pool: pool, APIReader: mgr.GetAPIReader(), ResyncPeriod: o.ResyncPeriod, MaxRetryDelay: o.MaxRetryDelay,
	}}).SetupWithManager(mgr); err != nil {
		return fmt.Errorf("failed to set up DexConnector controller: %w", err)
	}
	if err := (&DexReconciler{
		Client: mgr.GetClient(), Recorder: mgr.GetEventRecorderFor("dexterity-dex"),
		Certs: o.DexCerts, MaxRetryDelay: o.MaxRetryDelay,
	}).SetupWithManager(mgr); err != nil {
		return fmt.Errorf("failed to set up Dex controller: %w", err)
	}
	if err := (&GroupBindingReconciler{
		Client: mgr.GetClient(), Recorder: mgr.GetEventRecorderFor("dexterity-groupbinding"),
	}).SetupWithManager(mgr); err != nil {
		return fmt.Errorf("failed to set up GroupBinding controller: %w", err)
	}
	return nil
}
