package registry

import (
	"context"
	"fmt"
	"maps"
	"net"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/expr-lang/expr/vm"
	"k8s.io/apimachinery/pkg/types"
	toolscache "k8s.io/client-go/tools/cache"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	claimsv1 "dexterity.dev/dexterity/api/claims/v1alpha1"
	dexv1 "dexterity.dev/dexterity/api/v1alpha1"
	"dexterity.dev/dexterity/internal/authz"
	"dexterity.dev/dexterity/internal/oidc"
	"dexterity.dev/dexterity/internal/tenancy"
)

// tenant is one OIDCProvider as the registry serves it: the provider object (read-only, shared
// with the informer cache), its key in the oidc.Cache and the config its issuer there must have
// been built from.
type tenant struct {
	key      string // <namespace>/<name>, the oidc.Cache key
	provider *dexv1.OIDCProvider
	// keyConfig is oidc.ProviderConfig of provider: the key cache's issuer for key verifies this
	// tenant's tokens only when it was built from exactly this config (tenant.issuer).
	keyConfig oidc.Config
	// uid and generation identify the provider object and its spec: cached verifications made
	// for another object of the same name (deleted and recreated) or another spec are not used.
	uid        types.UID
	generation int64
	// dexAddress is the lower-cased spec.dex.grpcAddress ("" without spec.dex) and issuerURL the
	// normalised spec.issuerUrl: the Dex whose confidential clients count as authenticated
	// clients is the one at that address, or the one with that issuer.
	dexAddress string
	issuerURL  string
	// current remembers the key cache's issuer found to be built from keyConfig (tenant.issuer).
	current atomic.Pointer[oidc.Issuer]
}

// binding is a GroupBinding compiled once per generation.
type binding struct {
	name       string
	uid        types.UID
	generation int64
	program    *vm.Program
	compileErr error
	// patternErr refuses the resource patterns (authz.CheckResources); modules and providers
	// are then empty.
	patternErr error
	modules    []pattern
	providers  []pattern
}

// namespaceContent is what the registry serves from one Kubernetes namespace.
type namespaceContent struct {
	// version is the Store's change counter when this snapshot was published: it identifies
	// the snapshot (decisions are memoised by it) without keeping it alive.
	version   uint64
	bindings  []*binding // sorted by name
	modules   map[string]*dexv1.Module
	providers map[string]*dexv1.Provider
}

// Store is the registry's read model: OIDCProviders by host, and per namespace the compiled
// GroupBindings and the Modules and Providers by address (client identities: clients.go). It is fed by the manager's informers (event handlers), so a request never lists
// anything: it reads maps under a read lock. A GroupBinding, Module or Provider change never
// holds that lock for long: the binding compiles before any lock is taken, the namespace's new
// content is built beside the served one (copy-on-write, under contentMu, which requests never
// take), and only the swap happens under mu.
type Store struct {
	defaultProvider string // <namespace>/<name>, may be empty

	mu      sync.RWMutex
	tenants map[string]*tenant                        // serving OIDCProviders (not being deleted), by key
	listing map[string]map[string]bool                // normalized host -> keys of the serving providers listing it
	claims  map[string]claimsv1.HostnameClaimProvider // normalized host -> its holder, as its HostnameClaim says
	hosts   map[string]string                         // normalized host -> key of its holder (first come, first served)
	content map[string]*namespaceContent              // immutable snapshots, replaced on change

	// contentMu serialises changes of the content; it guards the indexes below, from which
	// the snapshots in content are built.
	contentMu         sync.Mutex
	bindings          map[string]map[string]*binding // namespace -> name -> compiled binding
	modules           *addressIndex[*dexv1.Module]
	registryProviders *addressIndex[*dexv1.Provider]
	// contentVersion numbers the published content snapshots (namespaceContent.version).
	contentVersion atomic.Uint64
	// compileBinding compiles a GroupBinding; tests replace it to hold a compile.
	compileBinding func(*dexv1.GroupBinding) *binding

	// forget is called, under mu, for a provider object whose cached verifications must go
	// (deleted, recreated under its name, or its spec changed).
	forget func(uid types.UID, generation int64)

	synced    []toolscache.InformerSynced
	hasSynced atomic.Bool
}

// NewStore returns an empty Store. defaultProvider ("<namespace>/<name>" or "") serves the
// hosts no OIDCProvider lists in spec.hostnames.
func NewStore(defaultProvider string) *Store {
	return &Store{
		defaultProvider:   defaultProvider,
		tenants:           map[string]*tenant{},
		listing:           map[string]map[string]bool{},
		claims:            map[string]claimsv1.HostnameClaimProvider{},
		hosts:             map[string]string{},
		content:           map[string]*namespaceContent{},
		bindings:          map[string]map[string]*binding{},
		modules:           newAddressIndex(func(m *dexv1.Module) string { return m.ModuleAddress() }),
		registryProviders: newAddressIndex(func(p *dexv1.Provider) string { return p.ProviderAddress() }),
		compileBinding:    compileBinding,
		forget:            func(types.UID, int64) {},
	}
}

// Watch registers the Store's event handlers on the informers of c (the manager's cache).
func (s *Store) Watch(ctx context.Context, c cache.Informers) error {
	kinds := []client.Object{&dexv1.OIDCProvider{}, &claimsv1.HostnameClaim{}, &dexv1.GroupBinding{}, &dexv1.Module{}, &dexv1.Provider{}}
	synced, err := watchKinds(ctx, c, kinds, s.upsert, s.remove)
	s.synced = append(s.synced, synced...)
	return err
}

// watchKinds registers upsert (added, updated) and remove (deleted) on the informers of kinds,
// and returns whether each handler has seen its informer's initial list.
func watchKinds(ctx context.Context, c cache.Informers, kinds []client.Object, upsert, remove func(any)) ([]toolscache.InformerSynced, error) {
	var synced []toolscache.InformerSynced
	for _, obj := range kinds {
		inf, err := c.GetInformer(ctx, obj)
		if err != nil {
			return synced, fmt.Errorf("failed to get informer for %T: %w", obj, err)
		}
		reg, err := inf.AddEventHandler(toolscache.ResourceEventHandlerFuncs{
			AddFunc:    upsert,
			UpdateFunc: func(_, o any) { upsert(o) },
			DeleteFunc: func(o any) {
				if d, ok := o.(toolscache.DeletedFinalStateUnknown); ok {
					o = d.Obj
				}
				remove(o)
			},
		})
		if err != nil {
			return synced, fmt.Errorf("failed to watch %T: %w", obj, err)
		}
		synced = append(synced, reg.HasSynced)
	}
	return synced, nil
}

// Synced reports whether every handler has seen its informer's initial list. Once true it stays
// true, so requests after start-up only read an atomic flag.
func (s *Store) Synced() bool {
	if s.hasSynced.Load() {
		return true
	}
	for _, fn := range s.synced {
		if !fn() {
			return false
		}
	}
	if len(s.synced) == 0 {
		return false
	}
	s.hasSynced.Store(true)
	return true
}

func (s *Store) upsert(o any) {
	if s.putContent(o) {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	switch obj := o.(type) {
	case *dexv1.OIDCProvider:
		s.putProvider(obj)
	case *claimsv1.HostnameClaim:
		if h, ok := hostOfClaim(obj); ok {
			s.claims[h] = obj.Spec.Provider
			s.reassign([]string{h})
		}
	}
}

func (s *Store) remove(o any) {
	if s.removeContent(o) {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	switch obj := o.(type) {
	case *dexv1.OIDCProvider:
		s.dropProvider(tenancy.ProviderKey(obj.Namespace, obj.Name))
	case *claimsv1.HostnameClaim:
		if h, ok := hostOfClaim(obj); ok && s.claims[h].UID == obj.Spec.Provider.UID {
			delete(s.claims, h)
			s.reassign([]string{h})
		}
	}
}

// hostOfClaim returns the host a HostnameClaim is the operator's record of: only the claim under
// the name derived from its host (tenancy.HostnameClaimName) counts.
func hostOfClaim(cl *claimsv1.HostnameClaim) (string, bool) {
	h := tenancy.NormalizeHostname(cl.Spec.Hostname)
	return h, h != "" && cl.Name == tenancy.HostnameClaimName(h)
}

func put[T any](m map[string]map[string]T, ns, name string, v T) {
	if m[ns] == nil {
		m[ns] = map[string]T{}
	}
	m[ns][name] = v
}

// putProvider records a provider and re-evaluates the holders of the hosts it lists (and
// listed). A provider being deleted (it may wait for its clients) serves nothing, so another
// provider listing its hosts takes them over.
func (s *Store) putProvider(p *dexv1.OIDCProvider) {
	key := tenancy.ProviderKey(p.Namespace, p.Name)
	if !p.DeletionTimestamp.IsZero() {
		s.dropProvider(key)
		return
	}
	t := &tenant{key: key, provider: p, keyConfig: oidc.ProviderConfig(p), uid: p.UID, generation: p.Generation,
		dexAddress: tenancy.DexAddress(p), issuerURL: tenancy.NormalizeIssuer(p.Spec.IssuerURL)}
	old := s.tenants[key]
	if old != nil {
		if old.uid == t.uid && old.generation == t.generation {
			t.current.Store(old.current.Load()) // a status update: the spec is the same
		} else {
			s.forget(old.uid, old.generation)
		}
		s.unlist(old)
	}
	s.tenants[key] = t
	affected := hostnamesOf(p)
	for _, h := range affected {
		if s.listing[h] == nil {
			s.listing[h] = map[string]bool{}
		}
		s.listing[h][key] = true
	}
	if old != nil {
		affected = append(affected, hostnamesOf(old.provider)...)
	}
	s.reassign(affected)
}

func (s *Store) dropProvider(key string) {
	old, ok := s.tenants[key]
	if !ok {
		return
	}
	delete(s.tenants, key)
	s.forget(old.uid, old.generation)
	s.unlist(old)
	s.reassign(hostnamesOf(old.provider))
}

// unlist removes t from the listing index (not from hosts: reassign does that).
func (s *Store) unlist(t *tenant) {
	for _, h := range hostnamesOf(t.provider) {
		delete(s.listing[h], t.key)
		if len(s.listing[h]) == 0 {
			delete(s.listing, h)
		}
	}
}

// reassign gives each of hosts to its holder: first come, first served, exactly: the provider
// its HostnameClaim names (the operator creates the claim once, atomically), as long as that
// provider object (same UID) serves and lists the host. A host without such a claim is served
// as one nobody lists (the default provider), never by creation time or name.
func (s *Store) reassign(hosts []string) {
	for _, h := range hosts {
		holder, claimed := s.claims[h]
		key := tenancy.ProviderKey(holder.Namespace, holder.Name)
		if t := s.tenants[key]; claimed && t != nil && t.uid == holder.UID && s.listing[h][key] {
			s.hosts[h] = key
			continue
		}
		delete(s.hosts, h)
	}
}

// hostnamesOf returns p's spec.hostnames, normalized, without duplicates.
func hostnamesOf(p *dexv1.OIDCProvider) []string {
	out := make([]string, 0, len(p.Spec.Hostnames))
	for _, raw := range p.Spec.Hostnames {
		h := tenancy.NormalizeHostname(raw)
		if h != "" && !slices.Contains(out, h) {
			out = append(out, h)
		}
	}
	return out
}

// putContent records a GroupBinding, Module or Provider and serves its namespace's new content;
// it returns false for other objects. A binding compiles before any lock is taken.
func (s *Store) putContent(o any) bool {
	switch obj := o.(type) {
	case *dexv1.GroupBinding:
		s.putBinding(obj)
	case *dexv1.Module:
		s.contentMu.Lock()
		defer s.contentMu.Unlock()
		addrs := s.modules.put(obj)
		s.publish(obj.Namespace, func(c *namespaceContent) { c.modules = s.modules.served(obj.Namespace, c.modules, addrs) })
	case *dexv1.Provider:
		s.contentMu.Lock()
		defer s.contentMu.Unlock()
		addrs := s.registryProviders.put(obj)
		s.publish(obj.Namespace, func(c *namespaceContent) {
			c.providers = s.registryProviders.served(obj.Namespace, c.providers, addrs)
		})
	default:
		return false
	}
	return true
}

// removeContent is putContent for a deleted object.
func (s *Store) removeContent(o any) bool {
	switch obj := o.(type) {
	case *dexv1.GroupBinding:
		s.contentMu.Lock()
		defer s.contentMu.Unlock()
		if _, ok := s.bindings[obj.Namespace][obj.Name]; !ok {
			return true
		}
		delete(s.bindings[obj.Namespace], obj.Name)
		if len(s.bindings[obj.Namespace]) == 0 {
			delete(s.bindings, obj.Namespace)
		}
		s.publish(obj.Namespace, func(c *namespaceContent) { c.bindings = withBinding(c.bindings, obj.Name, nil) })
	case *dexv1.Module:
		s.contentMu.Lock()
		defer s.contentMu.Unlock()
		addrs := s.modules.remove(obj.Namespace, obj.Name)
		s.publish(obj.Namespace, func(c *namespaceContent) { c.modules = s.modules.served(obj.Namespace, c.modules, addrs) })
	case *dexv1.Provider:
		s.contentMu.Lock()
		defer s.contentMu.Unlock()
		addrs := s.registryProviders.remove(obj.Namespace, obj.Name)
		s.publish(obj.Namespace, func(c *namespaceContent) {
			c.providers = s.registryProviders.served(obj.Namespace, c.providers, addrs)
		})
	default:
		return false
	}
	return true
}

// putBinding compiles gb (once per generation: a status change reuses the compiled binding)
// without holding a lock, then serves it. Informers call their handlers one event at a time, so
// a compile never overtakes a later one of the same binding; a compile of an older generation
// finishing last is dropped all the same.
func (s *Store) putBinding(gb *dexv1.GroupBinding) {
	s.contentMu.Lock()
	cur := s.bindings[gb.Namespace][gb.Name]
	s.contentMu.Unlock()
	b := cur
	if b == nil || b.uid != gb.UID || b.generation != gb.Generation {
		b = s.compileBinding(gb)
	}
	s.contentMu.Lock()
	defer s.contentMu.Unlock()
	cur = s.bindings[gb.Namespace][gb.Name]
	if cur == b || (cur != nil && cur.uid == b.uid && cur.generation > b.generation) {
		return
	}
	if s.bindings[gb.Namespace] == nil {
		s.bindings[gb.Namespace] = map[string]*binding{}
	}
	s.bindings[gb.Namespace][gb.Name] = b
	s.publish(gb.Namespace, func(c *namespaceContent) { c.bindings = withBinding(c.bindings, gb.Name, b) })
}

// compileBinding compiles a GroupBinding's expression (authz.Compile) and resource patterns
// (checked by authz.CheckResources).
func compileBinding(gb *dexv1.GroupBinding) *binding {
	b := &binding{name: gb.Name, uid: gb.UID, generation: gb.Generation}
	b.program, b.compileErr = authz.Compile(gb.Spec.Expression)
	if err := authz.CheckResources(gb.Spec.ModuleResources, gb.Spec.ProviderResources); err != nil {
		b.patternErr = err
		return b
	}
	b.modules, b.providers = compilePatterns(gb.Spec.ModuleResources), compilePatterns(gb.Spec.ProviderResources)
	return b
}

// withBinding returns a copy of bindings (sorted by name) with the binding named name replaced
// by b, added, or removed (b nil).
func withBinding(bindings []*binding, name string, b *binding) []*binding {
	i, found := sort.Find(len(bindings), func(i int) int { return strings.Compare(name, bindings[i].name) })
	out := make([]*binding, 0, len(bindings)+1)
	out = append(out, bindings[:i]...)
	if b != nil {
		out = append(out, b)
	}
	if found {
		i++
	}
	return append(out, bindings[i:]...)
}

// publish serves a new content snapshot of ns: a copy of the served one changed by change (which
// replaces what it changes, never modifies it). Callers hold contentMu, so that no other change
// is published meanwhile; mu is held for the swap only.
func (s *Store) publish(ns string, change func(*namespaceContent)) {
	next := &namespaceContent{}
	if cur := s.content[ns]; cur != nil { // only writers, all under contentMu, modify s.content
		*next = *cur
	}
	change(next)
	next.version = s.contentVersion.Add(1)
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(next.bindings) == 0 && len(next.modules) == 0 && len(next.providers) == 0 {
		delete(s.content, ns)
		return
	}
	s.content[ns] = next
}

// addressIndex indexes the Modules (or Providers) by namespace and name, and by namespace and
// lower-cased address (registry addresses are case-insensitive), so that a change re-decides
// only the addresses it touches.
type addressIndex[T client.Object] struct {
	address func(T) string
	byName  map[string]map[string]T            // namespace -> name -> object
	byAddr  map[string]map[string]map[string]T // namespace -> lower-cased address -> name -> object
}

func newAddressIndex[T client.Object](address func(T) string) *addressIndex[T] {
	return &addressIndex[T]{address: address, byName: map[string]map[string]T{}, byAddr: map[string]map[string]map[string]T{}}
}

// put records obj and returns the addresses whose holder may have changed (its old and new).
func (x *addressIndex[T]) put(obj T) []string {
	ns, name := obj.GetNamespace(), obj.GetName()
	addrs := x.remove(ns, name)
	addr := strings.ToLower(x.address(obj))
	put(x.byName, ns, name, obj)
	if x.byAddr[ns] == nil {
		x.byAddr[ns] = map[string]map[string]T{}
	}
	put(x.byAddr[ns], addr, name, obj)
	return append(addrs, addr)
}

// remove forgets the object ns/name and returns its address (none when it was not recorded).
func (x *addressIndex[T]) remove(ns, name string) []string {
	old, ok := x.byName[ns][name]
	if !ok {
		return nil
	}
	addr := strings.ToLower(x.address(old))
	delete(x.byName[ns], name)
	if len(x.byName[ns]) == 0 {
		delete(x.byName, ns)
	}
	delete(x.byAddr[ns][addr], name)
	if len(x.byAddr[ns][addr]) == 0 {
		delete(x.byAddr[ns], addr)
	}
	if len(x.byAddr[ns]) == 0 {
		delete(x.byAddr, ns)
	}
	return []string{addr}
}

// served returns a copy of the served map of ns with the holders of addrs decided again: on
// duplicates the oldest object, then the first by name, serves the address.
func (x *addressIndex[T]) served(ns string, cur map[string]T, addrs []string) map[string]T {
	out := make(map[string]T, len(cur)+1)
	maps.Copy(out, cur)
	for _, addr := range addrs {
		delete(out, addr)
		for _, obj := range x.byAddr[ns][addr] {
			if held, ok := out[addr]; !ok || tenancy.Older(obj, held) {
				out[addr] = obj
			}
		}
	}
	return out
}

// tenantFor returns the provider serving host: the holder of the host (the provider its
// HostnameClaim names, still listing it; exact, then without the port), else the default provider.
func (s *Store) tenantFor(host string) *tenant {
	host = tenancy.NormalizeHostname(host)
	s.mu.RLock()
	defer s.mu.RUnlock()
	if key, ok := s.hosts[host]; ok {
		return s.tenants[key]
	}
	if h, _, err := net.SplitHostPort(host); err == nil {
		if key, ok := s.hosts[h]; ok {
			return s.tenants[key]
		}
	}
	if s.defaultProvider != "" {
		return s.tenants[s.defaultProvider]
	}
	return nil
}

// oidcTenants returns the keys of the providers with OIDC enabled.
func (s *Store) oidcTenants() []string {
	s.mu.RLock()
	defer s.mu.RUnlock()
	var out []string
	for key, t := range s.tenants {
		if t.provider.OIDCEnabled() {
			out = append(out, key)
		}
	}
	sort.Strings(out)
	return out
}

// contentOf returns the served content of a namespace (nil when it has none). The result is
// immutable: rebuild replaces it.
func (s *Store) contentOf(ns string) *namespaceContent {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.content[ns]
}
