package tenancy

import (
	"context"
	"fmt"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/validation"
	"sigs.k8s.io/controller-runtime/pkg/client"

	dexv1 "dexterity.dev/dexterity/api/v1alpha1"
	"dexterity.dev/dexterity/internal/outcome"
)

// namespacePlaceholder is replaced by a namespace name in spec.dex.clientIdPrefix.
const namespacePlaceholder = "{namespace}"

// CheckClientIDPrefix enforces the provider's spec.dex.clientIdPrefix policy ("{namespace}" is
// replaced by the object's namespace). Namespace names may contain "-", so with a prefix that
// names the namespace an id belongs to the existing namespace with the longest name whose
// rendered prefix it starts with ("team-b-portal" belongs to team-b, not to team), and only that
// namespace may register it. c reads Namespaces (the manager's cache); it may be nil for a
// policy without "{namespace}".
func CheckClientIDPrefix(ctx context.Context, c client.Reader, p *dexv1.OIDCProvider, ns, id string) error {
	if p.Spec.Dex == nil || p.Spec.Dex.ClientIDPrefix == "" {
		return nil
	}
	tmpl := p.Spec.Dex.ClientIDPrefix
	prefix := strings.ReplaceAll(tmpl, namespacePlaceholder, ns)
	if !strings.HasPrefix(id, prefix) {
		fix := fmt.Sprintf("set spec.clientId to %s<something>", prefix)
		if strings.HasPrefix(ns+"-", prefix) {
			fix += fmt.Sprintf(", or leave it empty for %s-<name>", ns)
		}
		return outcome.Stall(dexv1.ReasonClientIDPrefixMismatch, fmt.Sprintf("spec.clientId: %q must start with %q (spec.dex.clientIdPrefix of OIDCProvider %s/%s); %s", id, prefix, p.Namespace, p.Name, fix))
	}
	owner, err := longerNamespaceOwning(ctx, c, tmpl, ns, id)
	if err != nil {
		return err
	}
	if owner != "" {
		theirs := strings.ReplaceAll(tmpl, namespacePlaceholder, owner)
		return &Revoked{*outcome.Stall(dexv1.ReasonClientIDPrefixMismatch, fmt.Sprintf("spec.clientId: %q belongs to namespace %s "+
			"(it starts with %q, the spec.dex.clientIdPrefix of OIDCProvider %s/%s for that namespace, and the longest namespace name decides); "+
			"choose an id that does not start with %q", id, owner, theirs, p.Namespace, p.Name, theirs))}
	}
	return nil
}

// longerNamespaceOwning returns the longest existing namespace, longer than ns, whose rendered
// prefix id starts with ("" when none). The candidates are read off the id itself: where the
// template puts the namespace, a longer namespace's name must extend ns (both are read from the
// same position of the id), so only the prefixes of the rest of the id longer than ns are looked
// up, at most 63 (a namespace name's maximum length) Gets from the cache, whatever the cluster.
func longerNamespaceOwning(ctx context.Context, c client.Reader, tmpl, ns, id string) (string, error) {
	at := strings.Index(tmpl, namespacePlaceholder)
	if at < 0 || c == nil {
		return "", nil
	}
	lead := tmpl[:at]
	if !strings.HasPrefix(id, lead) {
		return "", nil
	}
	rest := id[len(lead):]
	for n := min(len(rest), validation.DNS1123LabelMaxLength); n > len(ns); n-- {
		cand := rest[:n]
		if !strings.HasPrefix(cand, ns) || len(validation.IsDNS1123Label(cand)) > 0 {
			continue
		}
		if !strings.HasPrefix(id, strings.ReplaceAll(tmpl, namespacePlaceholder, cand)) {
			continue
		}
		var owner corev1.Namespace
		err := c.Get(ctx, types.NamespacedName{Name: cand}, &owner)
		switch {
		case apierrors.IsNotFound(err):
			continue
		case err != nil:
			return "", fmt.Errorf("failed to get Namespace %s: %w", cand, err)
		}
		return cand, nil
	}
	return "", nil
}

// SameDexAs reports whether provider q stands for the Dex of provider p: it administers the same
// Dex (spec.dex.grpcAddress, without case), or it trusts the same issuer (spec.issuerUrl, without
// a trailing slash), as a registry provider without spec.dex does for the Dex that issues its
// tokens.
func SameDexAs(p, q *dexv1.OIDCProvider) bool {
	if p.Spec.Dex != nil && q.Spec.Dex != nil && DexAddress(p) == DexAddress(q) {
		return true
	}
	return NormalizeIssuer(p.Spec.IssuerURL) == NormalizeIssuer(q.Spec.IssuerURL)
}

// NormalizeIssuer compares issuers without a trailing slash.
func NormalizeIssuer(u string) string { return strings.TrimSuffix(u, "/") }

// Audiences returns the audiences a provider's registry accepts: spec.audiences, or
// [spec.clientId] when empty.
func Audiences(p *dexv1.OIDCProvider) []string {
	if len(p.Spec.Audiences) > 0 {
		return p.Spec.Audiences
	}
	return []string{p.Spec.ClientID}
}

// HasAudience reports whether id is an audience of p: its spec.clientId or one of spec.audiences.
func HasAudience(p *dexv1.OIDCProvider, id string) bool {
	return p.Spec.ClientID == id || slices.Contains(p.Spec.Audiences, id)
}

// CheckReservedAudience refuses a client id that is the audience (spec.clientId or one of
// spec.audiences) of an OIDCProvider of another namespace than ns whose tokens p's Dex may issue:
// a token issued through that client would be accepted by that provider's registry, so only the
// provider's own namespace, which the platform team chose, may register or adopt it. Holders
// are the providers administering the Dex at p's address, and the registry providers (without
// spec.dex) trusting p's issuer. Another provider with spec.dex that merely names the same issuer
// (a Dex of someone else's, or a copy) is no holder and exempts nobody: holders only ever add
// restrictions, so no provider one may create in one's own namespace lets one through.
func CheckReservedAudience(ctx context.Context, c client.Reader, p *dexv1.OIDCProvider, ns, id string) error {
	var all dexv1.OIDCProviderList
	if err := c.List(ctx, &all, client.UnsafeDisableDeepCopy); err != nil {
		return fmt.Errorf("failed to list OIDCProviders: %w", err)
	}
	var holders []string
	for i := range all.Items {
		q := &all.Items[i]
		if !HasAudience(q, id) || q.Namespace == ns {
			continue
		}
		sameDex := q.Spec.Dex != nil && p.Spec.Dex != nil && DexAddress(q) == DexAddress(p)
		trusts := q.Spec.Dex == nil && NormalizeIssuer(q.Spec.IssuerURL) == NormalizeIssuer(p.Spec.IssuerURL)
		if sameDex || trusts {
			holders = append(holders, ProviderKey(q.Namespace, q.Name))
		}
	}
	if len(holders) == 0 {
		return nil
	}
	slices.Sort(holders)
	return outcome.Stall(dexv1.ReasonClientIDReserved, fmt.Sprintf("spec.clientId: %q is the registry audience of OIDCProvider %s "+
		"(its spec.clientId or spec.audiences): only a DexStaticClient in that provider's namespace may register it; choose another spec.clientId", id, strings.Join(holders, ", ")))
}
