package controllers

import (
	"context"
	"errors"
	"fmt"
	"net"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	dexv1 "dexterity.dev/dexterity/api/v1alpha1"
	"dexterity.dev/dexterity/internal/dex"
	"dexterity.dev/dexterity/internal/outcome"
	"dexterity.dev/dexterity/internal/tenancy"
)

// Keys of the Secret named by spec.dex.tls.secretRef.
const (
	tlsSecretCAKey   = "ca.crt"
	tlsSecretCertKey = "tls.crt"
	tlsSecretKeyKey  = "tls.key"
)

// errTLSSecret marks a problem with the provider's Dex TLS Secret (its owner must fix it): the
// provider stalls on it (DexTLSSecretInvalid), its clients and connectors wait for the provider,
// and their deletion falls back to the pooled connection.
var errTLSSecret = errors.New("invalid Dex TLS Secret")

// providerKey is the pool key of a provider.
func providerKey(p *dexv1.OIDCProvider) string { return tenancy.ProviderKey(p.Namespace, p.Name) }

// dexClientFor returns the pooled Dex client of a provider with spec.dex, reading its TLS Secret.
func dexClientFor(ctx context.Context, c client.Client, pool dex.Connections, p *dexv1.OIDCProvider) (dex.Client, error) {
	cfg, err := dexConfigFor(ctx, c, p)
	if err != nil {
		return nil, err
	}
	dc, err := pool.Get(providerKey(p), cfg)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", errTLSSecret, err)
	}
	return dc, nil
}

// dexClientForReconcile is dexClientFor for the client and connector reconcilers: a problem with
// the provider's TLS Secret waits for the provider's owner (the provider stalls on it), so the
// object is Waiting with DexUnavailable until the resync or a change of the provider; an invalid
// spec.dex stalls the object too; any other error is returned, so the workqueue backs off.
func dexClientForReconcile(ctx context.Context, c client.Client, pool dex.Connections, p *dexv1.OIDCProvider) (dex.Client, error) {
	dc, err := dexClientFor(ctx, c, pool, p)
	if err == nil {
		return dc, nil
	}
	if outcome.IsStalled(err) || !errors.Is(err, errTLSSecret) {
		return nil, err
	}
	return nil, outcome.Wait(dexv1.ReasonDexUnavailable, fmt.Sprintf("OIDCProvider %s cannot connect to Dex: %v", providerKey(p), err), 0)
}

func dexConfigFor(ctx context.Context, c client.Client, p *dexv1.OIDCProvider) (dex.Config, error) {
	d := p.Spec.Dex
	cfg := dex.Config{Address: d.GRPCAddress, Insecure: d.Insecure}
	if d.Insecure && !loopbackAddress(d.GRPCAddress) {
		return cfg, outcome.Stall(dexv1.ReasonInvalidSpec, fmt.Sprintf("spec.dex.insecure: OIDCProvider %s uses plaintext gRPC to %s, which is not a loopback address; plaintext is allowed only with localhost, 127.0.0.0/8 or ::1: set spec.dex.tls.secretRef instead", providerKey(p), d.GRPCAddress))
	}
	if d.Insecure || d.TLS == nil {
		return cfg, nil
	}
	var s corev1.Secret
	name := d.TLS.SecretRef.Name
	if err := tlsSecrets.get(ctx, c, types.NamespacedName{Namespace: p.Namespace, Name: name}, &s); err != nil {
		if apierrors.IsNotFound(err) {
			return cfg, fmt.Errorf("%w: spec.dex.tls.secretRef: Secret %s/%s not found; create it with ca.crt (and tls.crt/tls.key for mutual TLS)", errTLSSecret, p.Namespace, name)
		}
		return cfg, fmt.Errorf("failed to get Secret %s/%s: %w", p.Namespace, name, err)
	}
	cfg.CACert = s.Data[tlsSecretCAKey]
	cfg.ClientCert = s.Data[tlsSecretCertKey]
	cfg.ClientKey = s.Data[tlsSecretKeyKey]
	if (len(cfg.ClientCert) == 0) != (len(cfg.ClientKey) == 0) {
		return cfg, fmt.Errorf("%w: spec.dex.tls.secretRef: Secret %s/%s has only one of tls.crt and tls.key; set both for mutual TLS, or neither", errTLSSecret, p.Namespace, name)
	}
	return cfg, nil
}

// loopbackAddress reports whether host:port addr names a loopback host.
func loopbackAddress(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	return err == nil && tenancy.LoopbackHost(host)
}

// deleteFromDex removes an object's entry (a client or connector with id) from the Dex of
// the provider it refers to, through del. A provider that is gone or no longer administers Dex
// cannot be asked: that is reported as a Warning event and not retried. A Dex error is set on the
// Registered condition and returned, so the finalizer stays and the delete is retried.
//
// addr, when set, is the Dex the entry was registered in (its claim's dexAddress): the entry is
// deleted there and nowhere else. A provider re-pointed at another Dex since (a migration while
// the old Dex was down) must not delete the same id from the new Dex, where someone else may own
// it: another provider still reaching addr is used instead, and with none the entry is left.
func (d *DexEntryDeps) deleteFromDex(ctx context.Context, obj entryObject, ref dexv1.ObjectRef, addr, id string, del func(dex.Client) error) error {
	c, pool, rec, what := d.Client, d.Pool, d.Recorder, entryWhat(obj)
	key := tenancy.RefKey(obj.GetNamespace(), ref)
	p, err := providerOfDex(ctx, c, key, addr)
	switch {
	case err != nil:
		return err
	case p == nil && addr != "":
		rec.Eventf(obj, corev1.EventTypeWarning, dexv1.ReasonProviderNotFound, "No OIDCProvider administers the Dex at %s any more (OIDCProvider %s is gone or points elsewhere); %s %s was left there", addr, key, what, id)
		return nil
	case p == nil:
		rec.Eventf(obj, corev1.EventTypeWarning, dexv1.ReasonProviderNotFound, "OIDCProvider %s is gone or no longer administers Dex; %s %s could not be deleted from Dex", key, what, id)
		return nil
	}
	key = client.ObjectKeyFromObject(p)
	dc, err := dexClientFor(ctx, c, pool, p)
	if errors.Is(err, errTLSSecret) {
		// The Secret is gone or broken (deleted together with the namespace, say): delete with
		// the connection made from it while it was good, if there is one.
		if pooled, ok := pool.Existing(providerKey(p)); ok {
			dc, err = pooled, nil
		} else if going, nsErr := namespaceTerminating(ctx, c, p.Namespace); nsErr == nil && going {
			// Nobody can put the Secret back into a namespace being deleted: waiting would keep
			// this object, the provider and the namespace forever.
			rec.Eventf(obj, corev1.EventTypeWarning, dexv1.ReasonDexUnavailable, "the Dex TLS Secret of OIDCProvider %s went with its namespace, which is being deleted; %s %s could not be deleted from Dex", key, what, id)
			return nil
		}
	}
	if err != nil {
		setCondition(obj, dexv1.ConditionRegistered, metav1.ConditionFalse, dexv1.ReasonDexUnavailable, fmt.Sprintf("cannot delete %s %s from Dex yet: %v; retrying", what, id, err))
		return err
	}
	err = del(dc)
	if dex.IsReadOnly(err) {
		// From Dex's configuration file: never ours to delete (adoptExisting could claim it).
		rec.Eventf(obj, corev1.EventTypeNormal, "Released", "Left %s %s in Dex: it is defined in Dex's configuration file", what, id)
		return nil
	}
	if err != nil && !dex.IsNotFound(err) {
		setCondition(obj, dexv1.ConditionRegistered, metav1.ConditionFalse, dexv1.ReasonDexUnavailable, fmt.Sprintf("cannot delete %s %s from Dex yet: %v; retrying", what, id, err))
		return err
	}
	rec.Eventf(obj, corev1.EventTypeNormal, "Deleted", "Deleted %s %s from Dex", what, id)
	return nil
}

// namespaceTerminating reports whether namespace ns is being deleted (false when it is gone).
func namespaceTerminating(ctx context.Context, c client.Reader, ns string) (bool, error) {
	var n corev1.Namespace
	if err := c.Get(ctx, types.NamespacedName{Name: ns}, &n); err != nil {
		if apierrors.IsNotFound(err) {
			return false, nil
		}
		return false, fmt.Errorf("failed to get namespace %s: %w", ns, err)
	}
	return !n.DeletionTimestamp.IsZero(), nil
}

// sameDexKeys returns the keys of the providers sharing the Dex of the provider at ref (just ref's
// own key when it cannot be read), for waking the peers of a deleted object.
func sameDexKeys(ctx context.Context, c client.Reader, ref types.NamespacedName) []string {
	p := &dexv1.OIDCProvider{}
	if err := c.Get(ctx, ref, p); err != nil {
		return []string{ref.String()}
	}
	keys, err := tenancy.SameDex(ctx, c, p)
	if err != nil {
		return []string{ref.String()}
	}
	return keys
}

// requestsFromList lists objects with opts and returns one reconcile request per item, for watch
// mappings. A failed list maps to nothing (the periodic resync catches up).
func requestsFromList(ctx context.Context, c client.Reader, list client.ObjectList, opts ...client.ListOption) []reconcile.Request {
	if err := c.List(ctx, list, opts...); err != nil {
		log.FromContext(ctx).Error(err, "Failed to list objects for a watch mapping")
		return nil
	}
	items, err := apimeta.ExtractList(list)
	if err != nil {
		return nil
	}
	out := make([]reconcile.Request, 0, len(items))
	for _, it := range items {
		if o, ok := it.(client.Object); ok {
			out = append(out, reconcile.Request{NamespacedName: client.ObjectKeyFromObject(o)})
		}
	}
	return out
}

// providerOfDex returns the provider key names when it administers a Dex (at addr, when addr is
// set), else another provider administering the Dex at addr, else nil.
func providerOfDex(ctx context.Context, c client.Reader, key types.NamespacedName, addr string) (*dexv1.OIDCProvider, error) {
	p := &dexv1.OIDCProvider{}
	err := c.Get(ctx, key, p)
	if err != nil && !apierrors.IsNotFound(err) {
		return nil, fmt.Errorf("failed to get OIDCProvider %s: %w", key, err)
	}
	if err == nil && p.Spec.Dex != nil && (addr == "" || tenancy.DexAddress(p) == addr) {
		return p, nil
	}
	if addr == "" {
		return nil, nil
	}
	var all dexv1.OIDCProviderList
	if err := c.List(ctx, &all); err != nil {
		return nil, fmt.Errorf("failed to list OIDCProviders: %w", err)
	}
	for i := range all.Items {
		if o := &all.Items[i]; o.Spec.Dex != nil && tenancy.DexAddress(o) == addr {
			return o, nil
		}
	}
	return nil, nil
}
