package controllers

import (
	"context"
	"fmt"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	claimsv1 "dexterity.dev/dexterity/api/claims/v1alpha1"
	dexv1 "dexterity.dev/dexterity/api/v1alpha1"
	"dexterity.dev/dexterity/internal/tenancy"
)

// Registry host names are first come, first served across all OIDCProviders, and "first" is
// exact: a HostnameClaim (cluster-scoped, written only by the operator) named after the host
// records the provider (by UID) that serves it. Creating it is atomic, so of two providers
// listing one host the first whose claim the API server stores serves it, whatever their
// creation timestamps (whole seconds) and names say. The registry serves a host only for the
// provider its claim names; admission refuses a host another provider lists or holds, but the
// claim decides.

// +kubebuilder:rbac:groups=claims.dexterity.dev,resources=hostnameclaims,verbs=get;list;watch;create;delete

// reconcileHostnames claims the host names p lists and releases the claims p holds on host names
// it no longer lists. It returns the conflict message of the hosts another provider holds ("" when
// p serves all it lists).
func (r *OIDCProviderReconciler) reconcileHostnames(ctx context.Context, p *dexv1.OIDCProvider) (string, error) {
	want := map[string]bool{}
	var conflicts []string
	for _, raw := range p.Spec.Hostnames {
		h := tenancy.NormalizeHostname(raw)
		if h == "" || want[h] {
			continue
		}
		want[h] = true
		holder, err := r.claimHostname(ctx, p, h)
		if err != nil {
			return "", err
		}
		if holder != nil {
			conflicts = append(conflicts, fmt.Sprintf("%q is served by OIDCProvider %s/%s", h, holder.Namespace, holder.Name))
		}
	}
	if err := r.releaseHostnames(ctx, p.Namespace, p.Name, func(cl *claimsv1.HostnameClaim) bool {
		return cl.Spec.Provider.UID == p.UID && !want[cl.Spec.Hostname]
	}); err != nil {
		return "", err
	}
	if len(conflicts) == 0 {
		return "", nil
	}
	return fmt.Sprintf("spec.hostnames: registry host %s (first come, first served); this provider does not serve it: remove it from spec.hostnames, or have that provider give it up", strings.Join(conflicts, ", ")), nil
}

// claimHostname makes p the holder of host h unless another provider holds it; it returns that
// holder, or nil when p holds h. A claim left by an earlier provider object of the same name (deleted and
// recreated) is replaced.
func (r *OIDCProviderReconciler) claimHostname(ctx context.Context, p *dexv1.OIDCProvider, h string) (*claimsv1.HostnameClaimProvider, error) {
	name := tenancy.HostnameClaimName(h)
	for attempt := 0; attempt < 2; attempt++ {
		cl := &claimsv1.HostnameClaim{}
		err := r.Get(ctx, types.NamespacedName{Name: name}, cl)
		if apierrors.IsNotFound(err) {
			cl = &claimsv1.HostnameClaim{
				ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{LabelClaimOwnerUID: string(p.UID), "app.kubernetes.io/managed-by": "dexterity"}},
				Spec: claimsv1.HostnameClaimSpec{Hostname: h, Provider: claimsv1.HostnameClaimProvider{
					Namespace: p.Namespace, Name: p.Name, UID: p.UID}},
			}
			err = r.Create(ctx, cl)
			if err == nil {
				r.Recorder.Eventf(p, corev1.EventTypeNormal, "HostnameClaimed", "Serving registry host %s", h)
				return nil, nil
			}
			if !apierrors.IsAlreadyExists(err) {
				return nil, fmt.Errorf("failed to claim registry host %s: %w", h, err)
			}
			// Claimed meanwhile (the cache had not seen it): read the holder from the API server.
			err = r.apiReader().Get(ctx, types.NamespacedName{Name: name}, cl)
		}
		if err != nil {
			return nil, fmt.Errorf("failed to get the claim on registry host %s: %w", h, err)
		}
		holder := cl.Spec.Provider
		switch {
		case holder.UID == p.UID:
			return nil, nil
		case holder.Namespace == p.Namespace && holder.Name == p.Name:
			// An earlier object of this name, which is gone since this one has its name.
			if err := r.deleteHostnameClaim(ctx, cl); err != nil {
				return nil, err
			}
			continue
		}
		return &holder, nil
	}
	return nil, fmt.Errorf("failed to claim registry host %s: the claim of an earlier provider named %s/%s is still being deleted", h, p.Namespace, p.Name)
}

// releaseHostnames deletes the host claims of the provider named namespace/name that match.
func (r *OIDCProviderReconciler) releaseHostnames(ctx context.Context, namespace, name string, match func(*claimsv1.HostnameClaim) bool) error {
	var list claimsv1.HostnameClaimList
	if err := r.List(ctx, &list); err != nil {
		return fmt.Errorf("failed to list HostnameClaims: %w", err)
	}
	for i := range list.Items {
		cl := &list.Items[i]
		if cl.Spec.Provider.Namespace != namespace || cl.Spec.Provider.Name != name || !match(cl) {
			continue
		}
		if err := r.deleteHostnameClaim(ctx, cl); err != nil {
			return err
		}
	}
	return nil
}

// releaseHostnamesOfGone deletes the host claims of providers named namespace/name that no longer
// exist (the API server says so: the cache may lag behind a provider just created).
func (r *OIDCProviderReconciler) releaseHostnamesOfGone(ctx context.Context, key types.NamespacedName) error {
	cur := &dexv1.OIDCProvider{}
	err := r.apiReader().Get(ctx, key, cur)
	if err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("failed to get OIDCProvider %s: %w", key, err)
	}
	alive := types.UID("")
	if err == nil && cur.DeletionTimestamp.IsZero() {
		alive = cur.UID
	}
	return r.releaseHostnames(ctx, key.Namespace, key.Name, func(cl *claimsv1.HostnameClaim) bool {
		return cl.Spec.Provider.UID != alive
	})
}

// apiReader reads from the API server (the cached client when none is set, in tests).
func (r *OIDCProviderReconciler) apiReader() client.Reader {
	if r.APIReader != nil {
		return r.APIReader
	}
	return r.Client
}

// deleteHostnameClaim deletes exactly this claim (by UID).
func (r *OIDCProviderReconciler) deleteHostnameClaim(ctx context.Context, cl *claimsv1.HostnameClaim) error {
	err := r.Delete(ctx, cl, client.Preconditions{UID: &cl.UID})
	if err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
		return fmt.Errorf("failed to release registry host %s: %w", cl.Spec.Hostname, err)
	}
	return nil
}

// providersOfHostClaim maps a host claim to its provider (a claim whose provider is gone is
// collected there) and, when the claim is deleted, to the providers listing its host (one of
// them may take it now).
func (r *OIDCProviderReconciler) providersOfHostClaim(ctx context.Context, o client.Object) []reconcile.Request {
	cl, ok := o.(*claimsv1.HostnameClaim)
	if !ok {
		return nil
	}
	out := []reconcile.Request{{NamespacedName: types.NamespacedName{Namespace: cl.Spec.Provider.Namespace, Name: cl.Spec.Provider.Name}}}
	var all dexv1.OIDCProviderList
	if err := r.List(ctx, &all, client.UnsafeDisableDeepCopy); err != nil {
		return out
	}
	for i := range all.Items {
		q := &all.Items[i]
		if slices.ContainsFunc(q.Spec.Hostnames, func(h string) bool { return tenancy.NormalizeHostname(h) == cl.Spec.Hostname }) {
			out = append(out, reconcile.Request{NamespacedName: client.ObjectKeyFromObject(q)})
		}
	}
	return out
}
