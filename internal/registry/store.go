package registry

import (
	"context"
	"fmt"
	"net"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/expr-lang/expr/vm"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	toolscache "k8s.io/client-go/tools/cache"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	dexv1 "dexterity.dev/dexterity/api/v1alpha1"
	"dexterity.dev/dexterity/internal/authz"
	"dexterity.dev/dexterity/internal/oidc"
	"dexterity.dev/dexterity/internal/tenancy"
)

// tenant is one OIDCProvider as the registry serves it: the provider object (read-only, shared
// with the informer cache) and its key in the oidc.Cache.
type tenant struct {
	key      string // <namespace>/<name>, the oidc.Cache key
	provider *dexv1.OIDCProvider
	// uid and generation identify the provider object and its spec: cached verifications made
	// for another object of the same name (deleted and recreated) or another spec are not used.
	uid        types.UID
	generation int64
	// dexAddress is the lower-cased spec.dex.grpcAddress ("" without spec.dex) and issuer the
	// normalised spec.issuerUrl: the Dex whose confidential clients count as authenticated
	// clients is the one at that address, or the one with that issuer.
	dexAddress string
	issuer     string
	// current caches the key-cache provider found to match this spec (keyCacheCurrent).
	current atomic.Pointer[oidc.Issuer]
}

// binding is a GroupBinding compiled once per generation.
type binding struct {
	name       string
	uid        types.UID
	generation int64
	program    *vm.Program
	compileErr error
	modules    []string
	providers  []string
}

// namespaceContent is what the registry serves from one Kubernetes namespace.
type namespaceContent struct {
	bindings  []*binding // sorted by name
	modules   map[string]*dexv1.Module
	providers map[string]*dexv1.Provider
}

// Store is the registry's read model: OIDCProviders by host, the DexStaticClients (which clients
// are confidential), and per namespace the compiled GroupBindings and the Modules and Providers
// by address. It is fed by the manager's informers (event handlers), so a request never lists
// anything: it reads maps under a read lock.
type Store struct {
	defaultProvider string // <namespace>/<name>, may be empty

	mu                sync.RWMutex
	issuers           map[string]*tenant         // serving OIDCProviders (not being deleted), by key
	listing           map[string]map[string]bool // normalized host -> keys of the serving providers listing it
	hosts             map[string]string          // normalized host -> key of its holder (first come, first served)
	dexOf             map[string]dexID           // key -> the Dex of every provider with spec.dex (being deleted too)
	clients           map[types.NamespacedName]*dexv1.DexStaticClient
	clientIDs         map[string]map[types.NamespacedName]*dexv1.DexStaticClient // status.clientId -> objects
	bindings          map[string]map[string]*dexv1.GroupBinding
	modules           map[string]map[string]*dexv1.Module
	registryProviders map[string]map[string]*dexv1.Provider
	content           map[string]*namespaceContent // derived, rebuilt per namespace on change
	compiled          map[types.UID]*binding

	// clientsVersion changes with every DexStaticClient or spec.dex change: cached client
	// identities are checked again against the clients after a change.
	clientsVersion atomic.Int64
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
		issuers:           map[string]*tenant{},
		listing:           map[string]map[string]bool{},
		hosts:             map[string]string{},
		dexOf:             map[string]dexID{},
		clients:           map[types.NamespacedName]*dexv1.DexStaticClient{},
		clientIDs:         map[string]map[types.NamespacedName]*dexv1.DexStaticClient{},
		bindings:          map[string]map[string]*dexv1.GroupBinding{},
		modules:           map[string]map[string]*dexv1.Module{},
		registryProviders: map[string]map[string]*dexv1.Provider{},
		content:           map[string]*namespaceContent{},
		compiled:          map[types.UID]*binding{},
		forget:            func(types.UID, int64) {},
	}
}

// Watch registers the Store's event handlers on the informers of c (the manager's cache).
func (s *Store) Watch(ctx context.Context, c cache.Informers) error {
	kinds := []client.Object{&dexv1.OIDCProvider{}, &dexv1.DexStaticClient{}, &dexv1.GroupBinding{}, &dexv1.Module{}, &dexv1.Provider{}}
	for _, obj := range kinds {
		inf, err := c.GetInformer(ctx, obj)
		if err != nil {
			return fmt.Errorf("failed to get informer for %T: %w", obj, err)
		}
		reg, err := inf.AddEventHandler(toolscache.ResourceEventHandlerFuncs{
			AddFunc:    func(o any) { s.upsert(o) },
			UpdateFunc: func(_, o any) { s.upsert(o) },
			DeleteFunc: func(o any) {
				if d, ok := o.(toolscache.DeletedFinalStateUnknown); ok {
					o = d.Obj
				}
				s.remove(o)
			},
		})
		if err != nil {
			return fmt.Errorf("failed to watch %T: %w", obj, err)
		}
		s.synced = append(s.synced, reg.HasSynced)
	}
	return nil
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
	s.mu.Lock()
	defer s.mu.Unlock()
	switch obj := o.(type) {
	case *dexv1.OIDCProvider:
		s.putProvider(obj)
	case *dexv1.DexStaticClient:
		s.putClient(obj)
	case *dexv1.GroupBinding:
		put(s.bindings, obj.Namespace, obj.Name, obj)
		s.rebuild(obj.Namespace)
	case *dexv1.Module:
		put(s.modules, obj.Namespace, obj.Name, obj)
		s.rebuild(obj.Namespace)
	case *dexv1.Provider:
		put(s.registryProviders, obj.Namespace, obj.Name, obj)
		s.rebuild(obj.Namespace)
	}
}

func (s *Store) remove(o any) {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch obj := o.(type) {
	case *dexv1.OIDCProvider:
		key := tenancy.ProviderKey(obj.Namespace, obj.Name)
		if _, ok := s.dexOf[key]; ok {
			delete(s.dexOf, key)
			s.clientsVersion.Add(1)
		}
		s.dropProvider(key)
	case *dexv1.DexStaticClient:
		s.dropClient(types.NamespacedName{Namespace: obj.Namespace, Name: obj.Name})
		s.clientsVersion.Add(1)
	case *dexv1.GroupBinding:
		delete(s.bindings[obj.Namespace], obj.Name)
		delete(s.compiled, obj.UID)
		s.rebuild(obj.Namespace)
	case *dexv1.Module:
		delete(s.modules[obj.Namespace], obj.Name)
		s.rebuild(obj.Namespace)
	case *dexv1.Provider:
		delete(s.registryProviders[obj.Namespace], obj.Name)
		s.rebuild(obj.Namespace)
	}
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
	addr := tenancy.DexAddress(p)
	id := dexID{address: addr, issuer: normalizeIssuer(p.Spec.IssuerURL)}
	if cur, ok := s.dexOf[key]; ok != (p.Spec.Dex != nil) || cur != id {
		if p.Spec.Dex != nil {
			s.dexOf[key] = id
		} else {
			delete(s.dexOf, key)
		}
		s.clientsVersion.Add(1)
	}
	if !p.DeletionTimestamp.IsZero() {
		s.dropProvider(key)
		return
	}
	t := &tenant{key: key, provider: p, uid: p.UID, generation: p.Generation, dexAddress: addr, issuer: id.issuer}
	old := s.issuers[key]
	if old != nil {
		if old.uid == t.uid && old.generation == t.generation {
			t.current.Store(old.current.Load()) // a status update: the spec is the same
		} else {
			s.forget(old.uid, old.generation)
		}
		s.unlist(old)
	}
	s.issuers[key] = t
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
	old, ok := s.issuers[key]
	if !ok {
		return
	}
	delete(s.issuers, key)
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

// reassign gives each of hosts to its holder among the serving providers listing it: first come,
// first served (tenancy.HostnameHolder: the oldest, then by namespace/name).
func (s *Store) reassign(hosts []string) {
	for _, h := range hosts {
		keys := s.listing[h]
		if len(keys) == 0 {
			delete(s.hosts, h)
			continue
		}
		candidates := make([]dexv1.OIDCProvider, 0, len(keys))
		for k := range keys {
			candidates = append(candidates, *s.issuers[k].provider)
		}
		holder, ok := tenancy.HostnameHolder(candidates, h)
		if !ok {
			delete(s.hosts, h)
			continue
		}
		s.hosts[h] = tenancy.ProviderKey(holder.Namespace, holder.Name)
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

func (s *Store) putClient(c *dexv1.DexStaticClient) {
	nn := types.NamespacedName{Namespace: c.Namespace, Name: c.Name}
	s.dropClient(nn)
	s.clients[nn] = c
	if id := c.Status.ClientID; id != "" {
		if s.clientIDs[id] == nil {
			s.clientIDs[id] = map[types.NamespacedName]*dexv1.DexStaticClient{}
		}
		s.clientIDs[id][nn] = c
	}
	s.clientsVersion.Add(1)
}

func (s *Store) dropClient(nn types.NamespacedName) {
	old, ok := s.clients[nn]
	if !ok {
		return
	}
	delete(s.clients, nn)
	if id := old.Status.ClientID; id != "" {
		delete(s.clientIDs[id], nn)
		if len(s.clientIDs[id]) == 0 {
			delete(s.clientIDs, id)
		}
	}
}

// dexID identifies a Dex: its gRPC address (lower-cased) and its issuer (normalised).
type dexID struct{ address, issuer string }

// normalizeIssuer compares issuers without a trailing slash.
func normalizeIssuer(u string) string { return strings.TrimSuffix(u, "/") }

// confidentialClient reports whether clientID is a confidential client of the Dex at dexAddress
// (lower-cased spec.dex.grpcAddress) or with issuer: a DexStaticClient with spec.public false,
// not being deleted, registered (status.clientId set, Registered=True for its current
// generation) through an OIDCProvider whose spec.dex.grpcAddress is dexAddress or whose
// spec.issuerUrl is issuer (a registry provider without spec.dex trusts the clients registered
// in the Dex that issues its tokens). Only such a client had to authenticate with its secret to
// obtain a token; anyone can obtain one through a public client.
func (s *Store) confidentialClient(clientID, dexAddress, issuer string) bool {
	if clientID == "" || (dexAddress == "" && issuer == "") {
		return false
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	for _, c := range s.clientIDs[clientID] {
		if c.Spec.Public || !c.DeletionTimestamp.IsZero() {
			continue
		}
		cond := meta.FindStatusCondition(c.Status.Conditions, dexv1.ConditionRegistered)
		if cond == nil || cond.Status != metav1.ConditionTrue || cond.ObservedGeneration != c.Generation {
			continue
		}
		d, ok := s.dexOf[tenancy.RefKey(c.Namespace, c.Spec.ProviderRef).String()]
		if ok && ((dexAddress != "" && d.address == dexAddress) || (issuer != "" && d.issuer == issuer)) {
			return true
		}
	}
	return false
}

// clientsChanged returns a number that changes whenever confidentialClient may answer differently.
func (s *Store) clientsChanged() int64 { return s.clientsVersion.Load() }

// rebuild recomputes the served content of one namespace: bindings sorted by name (compiled
// once per generation), and Modules and Providers by address (on duplicates the oldest object,
// then the first by name, serves the address).
func (s *Store) rebuild(ns string) {
	c := &namespaceContent{modules: map[string]*dexv1.Module{}, providers: map[string]*dexv1.Provider{}}
	for _, gb := range s.bindings[ns] {
		b := s.compiled[gb.UID]
		if b == nil || b.generation != gb.Generation {
			b = &binding{name: gb.Name, uid: gb.UID, generation: gb.Generation,
				modules: lowerAll(gb.Spec.ModuleResources), providers: lowerAll(gb.Spec.ProviderResources)}
			b.program, b.compileErr = authz.Compile(gb.Spec.Expression)
			s.compiled[gb.UID] = b
		}
		c.bindings = append(c.bindings, b)
	}
	sort.Slice(c.bindings, func(i, j int) bool { return c.bindings[i].name < c.bindings[j].name })
	for _, m := range s.modules[ns] {
		addr := strings.ToLower(m.ModuleAddress())
		if cur, ok := c.modules[addr]; !ok || tenancy.Older(m, cur) {
			c.modules[addr] = m
		}
	}
	for _, p := range s.registryProviders[ns] {
		addr := strings.ToLower(p.ProviderAddress())
		if cur, ok := c.providers[addr]; !ok || tenancy.Older(p, cur) {
			c.providers[addr] = p
		}
	}
	if len(c.bindings) == 0 && len(c.modules) == 0 && len(c.providers) == 0 {
		delete(s.content, ns)
		return
	}
	s.content[ns] = c
}

// tenantFor returns the provider serving host: the holder of the host (the oldest provider
// listing it in spec.hostnames; exact, then without the port), else the default provider.
func (s *Store) tenantFor(host string) *tenant {
	host = tenancy.NormalizeHostname(host)
	s.mu.RLock()
	defer s.mu.RUnlock()
	if key, ok := s.hosts[host]; ok {
		return s.issuers[key]
	}
	if h, _, err := net.SplitHostPort(host); err == nil {
		if key, ok := s.hosts[h]; ok {
			return s.issuers[key]
		}
	}
	if s.defaultProvider != "" {
		return s.issuers[s.defaultProvider]
	}
	return nil
}

// oidcTenants returns the keys of the providers with OIDC enabled.
func (s *Store) oidcTenants() []string {
	s.mu.RLock()
	defer s.mu.RUnlock()
	var out []string
	for key, t := range s.issuers {
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

// lowerAll returns the patterns in lower case (registry addresses are case-insensitive).
func lowerAll(patterns []string) []string {
	out := make([]string, len(patterns))
	for i, p := range patterns {
		out[i] = strings.ToLower(p)
	}
	return out
}
