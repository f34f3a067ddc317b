package controllers

import (
	"context"
	"fmt"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/cache"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/log"

	dexv1 "dexterity.dev/dexterity/api/v1alpha1"
	"dexterity.dev/dexterity/internal/oidc"
	"dexterity.dev/dexterity/internal/outcome"
)

// reportKeys reports DiscoveryReady and KeysReady, and the key fields of the status, from the
// shared key cache. It only reads the cache: KeyCacheSync writes it on every replica, and its
// changes (and every refresh) wake this reconciler. Until the cache holds what it made of this
// spec (ProviderConfig), the keys are reported as being fetched, as for a new issuer.
func (r *OIDCProviderReconciler) reportKeys(p *dexv1.OIDCProvider) {
	if !p.OIDCEnabled() {
		removeCondition(p, dexv1.ConditionDiscoveryReady)
		removeCondition(p, dexv1.ConditionKeysReady)
		p.Status.JWKSURI, p.Status.Keys, p.Status.LastJWKSFetch = "", 0, nil
		return
	}
	issuer, found, err := r.Keys.Lookup(providerKey(p), oidc.ProviderConfig(p))
	if err != nil {
		msg := fmt.Sprintf("invalid issuer settings: %v", err)
		stallOn(p, dexv1.ConditionDiscoveryReady, outcome.Stall(dexv1.ReasonInvalidSpec, msg))
		stallOn(p, dexv1.ConditionKeysReady, outcome.Stall(dexv1.ReasonInvalidSpec, msg))
		return
	}
	var st oidc.Status
	if found {
		st = issuer.Status()
	}
	switch {
	case st.DiscoveryReady:
		setCondition(p, dexv1.ConditionDiscoveryReady, metav1.ConditionTrue, dexv1.ReasonReconciled, "discovery document fetched from "+discoverySource(p))
	case st.DiscoveryError != "":
		setCondition(p, dexv1.ConditionDiscoveryReady, metav1.ConditionFalse, dexv1.ReasonDiscoveryFailed, st.DiscoveryError)
	default:
		setCondition(p, dexv1.ConditionDiscoveryReady, metav1.ConditionUnknown, dexv1.ReasonProgressing, "fetching the discovery document")
	}
	switch {
	case st.KeysReady && st.LastError == "":
		setCondition(p, dexv1.ConditionKeysReady, metav1.ConditionTrue, dexv1.ReasonReconciled, fmt.Sprintf("%d signing key(s) loaded from %s", st.Keys, st.JWKSURI))
	case st.KeysReady:
		// Still usable: the last good keys are kept. Say so.
		setCondition(p, dexv1.ConditionKeysReady, metav1.ConditionTrue, dexv1.ReasonKeysRefreshFailed,
			fmt.Sprintf("the last refresh failed (%s); tokens are verified with the %d key(s) fetched at %s", st.LastError, st.Keys, st.LastFetch.UTC().Format(time.RFC3339)))
	case st.LastError != "":
		setCondition(p, dexv1.ConditionKeysReady, metav1.ConditionFalse, dexv1.ReasonKeysFetchFailed, st.LastError)
	default:
		setCondition(p, dexv1.ConditionKeysReady, metav1.ConditionUnknown, dexv1.ReasonProgressing, "fetching the signing keys")
	}
	p.Status.JWKSURI = st.JWKSURI
	p.Status.Keys = int32(st.Keys)
	if !st.LastFetch.IsZero() {
		// At the second, as stored: an unchanged fetch time is then no status change.
		t := metav1.NewTime(st.LastFetch.Truncate(time.Second))
		p.Status.LastJWKSFetch = &t
	}
}

func discoverySource(p *dexv1.OIDCProvider) string {
	if p.Spec.DiscoveryURL != "" {
		return p.Spec.DiscoveryURL
	}
	return p.Spec.IssuerURL
}

// KeyCacheSync keeps the key cache in step with OIDCProviders on every replica, leader or not:
// the registry server verifies tokens on every replica, so each one loads and refreshes keys. It
// is the cache's only writer (Sync, Remove), with oidc.ProviderConfig; the OIDCProvider
// controller and the registry only read.
type KeyCacheSync struct {
	Keys *oidc.Cache
}

// SetupWithManager registers the event handler on the manager's OIDCProvider informer.
func (s *KeyCacheSync) SetupWithManager(mgr ctrl.Manager) error {
	inf, err := mgr.GetCache().GetInformer(context.Background(), &dexv1.OIDCProvider{})
	if err != nil {
		return fmt.Errorf("failed to get OIDCProvider informer: %w", err)
	}
	sync := func(obj any) {
		p, ok := obj.(*dexv1.OIDCProvider)
		if !ok {
			return
		}
		key := providerKey(p)
		if !p.DeletionTimestamp.IsZero() || !p.OIDCEnabled() {
			s.Keys.Remove(key)
			return
		}
		if _, err := s.Keys.Sync(key, oidc.ProviderConfig(p)); err != nil {
			log.Log.V(1).Info("Not caching keys of OIDCProvider with invalid issuer settings", "provider", key, "error", err.Error())
		}
	}
	reg, err := inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    sync,
		UpdateFunc: func(_, n any) { sync(n) },
		DeleteFunc: func(obj any) {
			if d, ok := obj.(cache.DeletedFinalStateUnknown); ok {
				obj = d.Obj
			}
			if p, ok := obj.(*dexv1.OIDCProvider); ok {
				s.Keys.Remove(providerKey(p))
			}
		},
	})
	if err != nil {
		return fmt.Errorf("failed to watch OIDCProviders for the key cache: %w", err)
	}
	s.Keys.SetSynced(reg.HasSynced)
	return mgr.Add(s.Keys)
}
