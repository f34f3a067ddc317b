// Package tenancy holds the multi-tenant rules shared by the controllers and the webhooks: which
// provider an object refers to, which namespaces may use it, client id prefixes, and who owns an
// id in a Dex.
package tenancy

import (
	"context"
	"fmt"
	"net"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	dexv1 "dexterity.dev/dexterity/api/v1alpha1"
	"dexterity.dev/dexterity/internal/outcome"
)

// Revoked is a Stalled problem that also takes back what the object holds: the entry id it
// registered belongs to someone else now (a longer namespace under a "{namespace}" prefix
// policy). errors.As finds the Stalled (and its Problem) inside.
type Revoked struct{ outcome.Stalled }

// Unwrap returns the Stalled problem.
func (r *Revoked) Unwrap() error { return &r.Stalled }

// ProviderKey is the one spelling of an OIDCProvider's key, "<namespace>/<name>": the Dex
// connection pool, the key cache, claims, indexes, the webhooks and the registry's store all key
// providers by it (RefKey(...).String() spells the same for a reference).
func ProviderKey(namespace, name string) string {
	return types.NamespacedName{Namespace: namespace, Name: name}.String()
}

// RefKey is the namespace/name a Ref points to from an object in namespace ns.
func RefKey(ns string, ref dexv1.ObjectRef) types.NamespacedName {
	if ref.Namespace != "" {
		ns = ref.Namespace
	}
	return types.NamespacedName{Namespace: ns, Name: ref.Name}
}

// Use is what a tenant object attaches to a provider's Dex: a client or a connector. Each has its
// own namespace policy.
type Use int

const (
	// Clients are DexStaticClients (spec.dex.allowedNamespaces).
	Clients Use = iota
	// Connectors are DexConnectors (spec.dex.connectorNamespaces).
	Connectors
)

func (u Use) policy(d *dexv1.DexAdminSpec) (*dexv1.AllowedNamespaces, string, string) {
	if u == Connectors {
		return d.ConnectorNamespaces, "spec.dex.connectorNamespaces", "DexConnectors"
	}
	return d.AllowedNamespaces, "spec.dex.allowedNamespaces", "DexStaticClients"
}

// ResolveProvider returns the OIDCProvider that a tenant object in namespace ns refers to, after
// checking that it administers a Dex and that ns may attach objects of this use to it.
func ResolveProvider(ctx context.Context, c client.Reader, ns string, ref dexv1.ObjectRef, use Use) (*dexv1.OIDCProvider, error) {
	key := RefKey(ns, ref)
	p := &dexv1.OIDCProvider{}
	if err := c.Get(ctx, key, p); err != nil {
		if apierrors.IsNotFound(err) {
			// Applying a provider and its users together is an ordinary order: the provider's
			// watch brings the object back when it is created.
			return nil, outcome.Wait(dexv1.ReasonProviderNotFound, fmt.Sprintf("spec.providerRef: OIDCProvider %s not found; create it or fix spec.providerRef", key), 0)
		}
		return nil, fmt.Errorf("failed to get OIDCProvider %s: %w", key, err)
	}
	if p.Spec.Dex == nil {
		return nil, outcome.Stall(dexv1.ReasonProviderNotManaged, fmt.Sprintf("spec.providerRef: OIDCProvider %s has no spec.dex, so Dexterity does not administer its Dex; add spec.dex to it or refer to another provider", key))
	}
	allowed, err := NamespaceAllowed(ctx, c, p, ns, use)
	if err != nil {
		return nil, err
	}
	if !allowed {
		_, field, what := use.policy(p.Spec.Dex)
		return nil, outcome.Stall(dexv1.ReasonNamespaceNotAllowed, fmt.Sprintf("namespace %s may not use OIDCProvider %s for %s (%s of the provider); ask its owner to allow this namespace", ns, key, what, field))
	}
	return p, nil
}

// NamespaceAllowed applies the provider's namespace policy for use (spec.dex.allowedNamespaces
// or spec.dex.connectorNamespaces; both default to Same) to namespace ns.
func NamespaceAllowed(ctx context.Context, c client.Reader, p *dexv1.OIDCProvider, ns string, use Use) (bool, error) {
	an, field, _ := use.policy(p.Spec.Dex)
	from := dexv1.NamespacesFromSame
	if an != nil && an.From != "" {
		from = an.From
	}
	switch from {
	case dexv1.NamespacesFromAll:
		return true, nil
	case dexv1.NamespacesFromSelector:
		if ns == p.Namespace {
			return true, nil
		}
		sel, err := metav1.LabelSelectorAsSelector(an.Selector)
		if err != nil {
			return false, outcome.Stall(dexv1.ReasonNamespaceNotAllowed, fmt.Sprintf("OIDCProvider %s/%s has an invalid %s.selector: %v", p.Namespace, p.Name, field, err))
		}
		var n corev1.Namespace
		if err := c.Get(ctx, types.NamespacedName{Name: ns}, &n); err != nil {
			return false, fmt.Errorf("failed to get Namespace %s: %w", ns, err)
		}
		return sel.Matches(labels.Set(n.Labels)), nil
	default:
		return ns == p.Namespace, nil
	}
}

// ProbeClientID is the public client the operator registers in each Dex it administers to probe
// connectors. No DexStaticClient may use it (not even with adoptExisting).
const ProbeClientID = "dexterity-connector-probe"

// CheckReservedClientID refuses client ids the operator uses itself.
func CheckReservedClientID(id string) error {
	if id == ProbeClientID {
		return outcome.Stall(dexv1.ReasonInvalidSpec, fmt.Sprintf("spec.clientId: %q is reserved for Dexterity's connector health probe; choose another spec.clientId", id))
	}
	return nil
}

// Older orders objects competing for one thing by age: the oldest first, then by namespace/name.
func Older(a, b metav1.Object) bool {
	ta, tb := a.GetCreationTimestamp(), b.GetCreationTimestamp()
	if !ta.Equal(&tb) {
		return ta.Before(&tb)
	}
	return a.GetNamespace()+"/"+a.GetName() < b.GetNamespace()+"/"+b.GetName()
}

// SameDex returns the keys ("namespace/name") of the OIDCProviders that administer the same Dex
// as p (the same spec.dex.grpcAddress, compared without case), p's own first. Ownership of client
// and connector ids is decided across all of them: "one owner per Dex", even when two providers
// describe one Dex. Another spelling of the address (a provider with the same issuer) counts
// where claims are looked up (DexAddresses).
func SameDex(ctx context.Context, c client.Reader, p *dexv1.OIDCProvider) ([]string, error) {
	own := ProviderKey(p.Namespace, p.Name)
	keys := []string{own}
	if p.Spec.Dex == nil {
		return keys, nil
	}
	var all dexv1.OIDCProviderList
	if err := c.List(ctx, &all, client.UnsafeDisableDeepCopy); err != nil {
		return nil, fmt.Errorf("failed to list OIDCProviders: %w", err)
	}
	addr := DexAddress(p)
	for i := range all.Items {
		o := &all.Items[i]
		if k := ProviderKey(o.Namespace, o.Name); k != own && o.Spec.Dex != nil && DexAddress(o) == addr {
			keys = append(keys, k)
		}
	}
	return keys, nil
}

// DexAddresses returns the lower-cased gRPC addresses under which p's Dex is administered: p's
// own first (when it has spec.dex), then those of the other providers with spec.dex of the same
// Dex (SameDexAs). Claims on an entry of that Dex may stand under any of them.
func DexAddresses(ctx context.Context, c client.Reader, p *dexv1.OIDCProvider) ([]string, error) {
	var out []string
	if p.Spec.Dex != nil {
		out = append(out, DexAddress(p))
	}
	var all dexv1.OIDCProviderList
	if err := c.List(ctx, &all, client.UnsafeDisableDeepCopy); err != nil {
		return nil, fmt.Errorf("failed to list OIDCProviders: %w", err)
	}
	for i := range all.Items {
		if o := &all.Items[i]; o.Spec.Dex != nil && SameDexAs(p, o) && !slices.Contains(out, DexAddress(o)) {
			out = append(out, DexAddress(o))
		}
	}
	return out, nil
}

// DexAddress is the Dex a provider administers, as ownership compares it: its gRPC address
// without case ("" without spec.dex).
func DexAddress(p *dexv1.OIDCProvider) string {
	if p.Spec.Dex == nil {
		return ""
	}
	return strings.ToLower(p.Spec.Dex.GRPCAddress)
}

// LoopbackHost reports whether host is localhost or a loopback IP address.
func LoopbackHost(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// Field indexes of the manager's cache that the webhooks list by too (the controllers register
// them, on every replica): DexStaticClients by effective client id, DexConnectors by connector id.
const (
	IndexClientID    = "dexterity.dev/client-id"
	IndexConnectorID = "dexterity.dev/connector-id"
)
