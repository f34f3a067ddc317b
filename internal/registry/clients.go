package registry

import (
	"context"
	"maps"
	"strings"
	"sync"
	"sync/atomic"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	toolscache "k8s.io/client-go/tools/cache"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	claimsv1 "dexterity.dev/dexterity/api/claims/v1alpha1"
	dexv1 "dexterity.dev/dexterity/api/v1alpha1"
	"dexterity.dev/dexterity/internal/tenancy"
)

// RBAC of the client identities: the ownership claims, the clients they name, and the labels of
// namespaces (spec.dex.clientIdentityNamespaces with a selector).
// +kubebuilder:rbac:groups=claims.dexterity.dev,resources=dexentryclaims,verbs=get;list;watch
// +kubebuilder:rbac:groups=dexterity.dev,resources=dexstaticclients,verbs=get;list;watch
// +kubebuilder:rbac:groups="",resources=namespaces,verbs=get;list;watch

// clientKey is one client id in one Dex (its lower-cased gRPC address), as a DexEntryClaim names
// it.
type clientKey struct{ dexAddress, id string }

// dexID identifies a Dex: its gRPC address (lower-cased) and its issuer URL (normalised).
type dexID struct{ address, issuerURL string }

// clientIdentityOf is what decides whether a DexStaticClient may be a client identity, so that
// its status updates (lastSyncTime, other conditions) do not make cached identities be checked
// again.
type clientIdentityOf struct {
	uid      types.UID
	id       string
	public   bool
	deleting bool
	current  bool // Registered=True for its current generation
}

// grantable reports whether a client with these fields may be an identity at all (clientIdentity
// checks the rest: its claim, its id, its namespace).
func (c clientIdentityOf) grantable() bool { return !c.public && !c.deleting && c.current }

func identityFields(c *dexv1.DexStaticClient) clientIdentityOf {
	cond := meta.FindStatusCondition(c.Status.Conditions, dexv1.ConditionRegistered)
	return clientIdentityOf{
		uid: c.UID, id: c.EffectiveClientID(), public: c.Spec.Public, deleting: !c.DeletionTimestamp.IsZero(),
		current: cond != nil && cond.Status == metav1.ConditionTrue && cond.ObservedGeneration == c.Generation,
	}
}

// clients decides which Dex clients are client identities (client:<id>) of a registry: those
// whose ownership claim (the operator's DexEntryClaim, which tenants cannot write) names an
// existing, confidential DexStaticClient in a namespace the provider's
// spec.dex.clientIdentityNamespaces admits. It is fed by informer handlers on DexEntryClaims,
// DexStaticClients, OIDCProviders and Namespaces, and never reads an object's status to grant
// anything: a status can only narrow (a client whose Registered condition is not current for its
// generation may still be public in Dex).
type clients struct {
	mu         sync.RWMutex
	claims     map[clientKey]*claimsv1.DexEntryClaim     // client claims, by Dex and id
	dexOf      map[string]dexID                          // provider key -> its Dex (providers with spec.dex, being deleted too)
	namespaces map[string]map[string]string              // namespace -> labels (read-only)
	identities map[types.NamespacedName]clientIdentityOf // DexStaticClients that may be identities (grantable)

	// version changes whenever clientIdentity may answer differently: cached client identities
	// are checked again after a change.
	version atomic.Int64
	synced  []toolscache.InformerSynced
}

func newClients() *clients {
	return &clients{
		claims:     map[clientKey]*claimsv1.DexEntryClaim{},
		dexOf:      map[string]dexID{},
		namespaces: map[string]map[string]string{},
		identities: map[types.NamespacedName]clientIdentityOf{},
	}
}

// watch registers the handlers on the informers of c (the manager's cache).
func (x *clients) watch(ctx context.Context, c cache.Informers) error {
	kinds := []client.Object{&claimsv1.DexEntryClaim{}, &dexv1.DexStaticClient{}, &dexv1.OIDCProvider{}, &corev1.Namespace{}}
	synced, err := watchKinds(ctx, c, kinds, x.upsert, x.remove)
	x.synced = append(x.synced, synced...)
	return err
}

// clientClaimName is the name of the operator's DexEntryClaim of client id in the Dex at
// dexAddress: only the claim under that name is the record of the id.
func clientClaimName(dexAddress, id string) string {
	return claimsv1.EntryClaimName(claimsv1.EntryClient, dexAddress, id)
}

func (x *clients) upsert(o any) {
	x.mu.Lock()
	defer x.mu.Unlock()
	switch obj := o.(type) {
	case *claimsv1.DexEntryClaim:
		k := clientKey{dexAddress: strings.ToLower(obj.Spec.DexAddress), id: obj.Spec.EntryID}
		if obj.Spec.EntryKind != claimsv1.EntryClient || obj.Name != clientClaimName(k.dexAddress, k.id) {
			return // a connector's, or not the operator's record of an id
		}
		if cur := x.claims[k]; cur == nil || cur.UID != obj.UID {
			x.version.Add(1)
		}
		x.claims[k] = obj
	case *dexv1.DexStaticClient:
		// Only clients that may be an identity are kept (confidential, not being deleted,
		// Registered for their generation): a missing entry denies, as any of those would, and
		// public clients (a team's `tofu login` client, say) cost the registry nothing.
		nn := types.NamespacedName{Namespace: obj.Namespace, Name: obj.Name}
		cur, had := x.identities[nn]
		id := identityFields(obj)
		switch {
		case !id.grantable():
			if had {
				delete(x.identities, nn)
				x.version.Add(1)
			}
		case !had || cur != id:
			x.identities[nn] = id
			x.version.Add(1)
		}
	case *dexv1.OIDCProvider:
		key := tenancy.ProviderKey(obj.Namespace, obj.Name)
		cur, had := x.dexOf[key]
		if obj.Spec.Dex == nil {
			if had {
				delete(x.dexOf, key)
				x.version.Add(1)
			}
			return
		}
		if id := (dexID{address: tenancy.DexAddress(obj), issuerURL: tenancy.NormalizeIssuer(obj.Spec.IssuerURL)}); !had || cur != id {
			x.dexOf[key] = id
			x.version.Add(1)
		}
	case *corev1.Namespace:
		cur, had := x.namespaces[obj.Name]
		if !had || !maps.Equal(cur, obj.Labels) {
			x.version.Add(1)
		}
		x.namespaces[obj.Name] = obj.Labels
	}
}

func (x *clients) remove(o any) {
	x.mu.Lock()
	defer x.mu.Unlock()
	switch obj := o.(type) {
	case *claimsv1.DexEntryClaim:
		k := clientKey{dexAddress: strings.ToLower(obj.Spec.DexAddress), id: obj.Spec.EntryID}
		if cur := x.claims[k]; cur != nil && cur.UID == obj.UID {
			delete(x.claims, k)
			x.version.Add(1)
		}
	case *dexv1.DexStaticClient:
		nn := types.NamespacedName{Namespace: obj.Namespace, Name: obj.Name}
		delete(x.identities, nn)
		x.version.Add(1)
	case *dexv1.OIDCProvider:
		key := tenancy.ProviderKey(obj.Namespace, obj.Name)
		if _, ok := x.dexOf[key]; ok {
			delete(x.dexOf, key)
			x.version.Add(1)
		}
	case *corev1.Namespace:
		delete(x.namespaces, obj.Name)
		x.version.Add(1)
	}
}

// clientsChanged returns a number that changes whenever clientIdentity may answer differently.
func (x *clients) clientsChanged() int64 { return x.version.Load() }

// clientIdentity reports whether clientID is a client identity of t's registry: a claim on the
// id in t's Dex (spec.dex.grpcAddress; for a provider without spec.dex, the Dex of every provider
// with spec.dex and the same issuer) names, as its owner, a DexStaticClient that
//   - still exists with the claim's owner UID and has the claimed id,
//   - is confidential (spec.public false), not being deleted, and Registered for its current
//     generation (so Dex has it as confidential too),
//   - lives in a namespace t's spec.dex.clientIdentityNamespaces admits (default, and always for
//     a provider without spec.dex: t's own namespace).
//
// Only such a client had to authenticate with its secret to obtain a token, and only its own
// namespace (or one the provider's owner admitted) decides who holds it.
func (x *clients) clientIdentity(t *tenant, clientID string) bool {
	if clientID == "" {
		return false
	}
	x.mu.RLock()
	defer x.mu.RUnlock()
	if t.dexAddress != "" {
		return x.ownedInAdmittedNamespace(t, clientKey{dexAddress: t.dexAddress, id: clientID})
	}
	if t.issuerURL == "" {
		return false
	}
	for _, d := range x.dexOf {
		if d.issuerURL == t.issuerURL && x.ownedInAdmittedNamespace(t, clientKey{dexAddress: d.address, id: clientID}) {
			return true
		}
	}
	return false
}

func (x *clients) ownedInAdmittedNamespace(t *tenant, k clientKey) bool {
	cl := x.claims[k]
	if cl == nil || cl.Spec.Owner.Kind != "DexStaticClient" {
		return false
	}
	owner := types.NamespacedName{Namespace: cl.Spec.Owner.Namespace, Name: cl.Spec.Owner.Name}
	id, ok := x.identities[owner]
	if !ok || id.uid != cl.Spec.Owner.UID || id.id != k.id || !id.grantable() {
		return false
	}
	return x.identityNamespaceAllowed(t.provider, owner.Namespace)
}

// audienceHeldElsewhere returns the first of t's audiences (spec.clientId, spec.audiences) that
// a DexStaticClient of another namespace than t's has claimed in t's Dex (its own spec.dex, and
// the Dex of every provider with spec.dex and the same issuer), or "" when none is. A token issued through such a client is no proof of anything to t's
// registry (the OIDCProvider reports AudienceHeldElsewhere), so t's tokens are refused meanwhile.
func (x *clients) audienceHeldElsewhere(t *tenant) string {
	x.mu.RLock()
	defer x.mu.RUnlock()
	for _, aud := range tenancy.Audiences(t.provider) {
		if t.dexAddress != "" {
			if held := x.heldElsewhere(t, clientKey{dexAddress: t.dexAddress, id: aud}); held != "" {
				return held
			}
		}
		if t.issuerURL == "" {
			continue
		}
		for _, d := range x.dexOf {
			if d.issuerURL != t.issuerURL || d.address == t.dexAddress {
				continue
			}
			if held := x.heldElsewhere(t, clientKey{dexAddress: d.address, id: aud}); held != "" {
				return held
			}
		}
	}
	return ""
}

func (x *clients) heldElsewhere(t *tenant, k clientKey) string {
	cl := x.claims[k]
	if cl == nil || cl.Spec.Owner.Namespace == t.provider.Namespace {
		return ""
	}
	return k.id // the holder is named in the OIDCProvider's status, not to callers on the network
}

// identityNamespaceAllowed applies p's spec.dex.clientIdentityNamespaces to namespace ns: Same
// (the default, and the rule of a provider without spec.dex) admits p's own namespace, All every
// namespace, Selector p's own and those whose labels (from the informer cache) match.
func (x *clients) identityNamespaceAllowed(p *dexv1.OIDCProvider, ns string) bool {
	var policy *dexv1.AllowedNamespaces
	if p.Spec.Dex != nil {
		policy = p.Spec.Dex.ClientIdentityNamespaces
	}
	from := dexv1.NamespacesFromSame
	if policy != nil && policy.From != "" {
		from = policy.From
	}
	switch from {
	case dexv1.NamespacesFromAll:
		return true
	case dexv1.NamespacesFromSelector:
		if ns == p.Namespace {
			return true
		}
		sel, err := metav1.LabelSelectorAsSelector(policy.Selector)
		if err != nil {
			return false
		}
		lbls, ok := x.namespaces[ns]
		return ok && sel.Matches(labels.Set(lbls))
	default:
		return ns == p.Namespace
	}
}

// hasSynced reports whether every handler has seen its informer's initial list.
func (x *clients) hasSynced() bool {
	for _, fn := range x.synced {
		if !fn() {
			return false
		}
	}
	return len(x.synced) > 0
}
