package registry

import (
	"context"
	"fmt"
	"net"
	"sort"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/expr-lang/expr/vm"
	"k8s.io/apimachinery/pkg/types"
	toolscache "k8s.io/client-go/tools/cache"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	dexv1 "dexterity.dev/dexterity/api/v1alpha1"
	"dexterity.dev/dexterity/internal/authz"
	"dexterity.dev/dexterity/internal/tenancy"
)

// tenant is one OIDCProvider as the registry serves it: the provider object (read-only, shared
// with the informer cache) and its key in the oidc.Cache.
type tenant struct {
	key      string // <namespace>/<name>, the oidc.Cache key
	provider *dexv1.OIDCProvider
	// version changes whenever the provider's spec changes; cached verifications made under
	// another version are not used.
	version int64
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

// Store is the registry's read model: OIDCProviders by host, and per namespace the compiled
// GroupBindings and the Modules and Providers by address. It is fed by the manager's informers
// (event handlers), so a request never lists anything: it reads maps under a read lock.
type Store struct {
	defaultProvider string // <namespace>/<name>, may be empty

	mu        sync.RWMutex
	providers map[string]*tenant // by key
	hosts     map[string]string  // lower-cased host (with or without port) -> key
	bindings  map[string]map[string]*dexv1.GroupBinding
	modules   map[string]map[string]*dexv1.Module
	provs     map[string]map[string]*dexv1.Provider
	content   map[string]*namespaceContent // derived, rebuilt per namespace on change
	compiled  map[types.UID]*binding

	synced    []toolscache.InformerSynced
	hasSynced atomic.Bool
}

// NewStore returns an empty Store. defaultProvider ("<namespace>/<name>" or "") serves the
// hosts no OIDCProvider lists in spec.hostnames.
func NewStore(defaultProvider string) *Store {
	return &Store{
		defaultProvider: defaultProvider,
		providers:       map[string]*tenant{},
		hosts:           map[string]string{},
		bindings:        map[string]map[string]*dexv1.GroupBinding{},
		modules:         map[string]map[string]*dexv1.Module{},
		provs:           map[string]map[string]*dexv1.Provider{},
		content:         map[string]*namespaceContent{},
		compiled:        map[types.UID]*binding{},
	}
}

// Watch registers the Store's event handlers on the informers of c (the manager's cache).
func (s *Store) Watch(ctx context.Context, c cache.Informers) error {
	kinds := []client.Object{&dexv1.OIDCProvider{}, &dexv1.GroupBinding{}, &dexv1.Module{}, &dexv1.Provider{}}
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
	case *dexv1.GroupBinding:
		put(s.bindings, obj.Namespace, obj.Name, obj)
		s.rebuild(obj.Namespace)
	case *dexv1.Module:
		put(s.modules, obj.Namespace, obj.Name, obj)
		s.rebuild(obj.Namespace)
	case *dexv1.Provider:
		put(s.provs, obj.Namespace, obj.Name, obj)
		s.rebuild(obj.Namespace)
	}
}

func (s *Store) remove(o any) {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch obj := o.(type) {
	case *dexv1.OIDCProvider:
		s.dropProvider(obj.Namespace + "/" + obj.Name)
	case *dexv1.GroupBinding:
		delete(s.bindings[obj.Namespace], obj.Name)
		delete(s.compiled, obj.UID)
		s.rebuild(obj.Namespace)
	case *dexv1.Module:
		delete(s.modules[obj.Namespace], obj.Name)
		s.rebuild(obj.Namespace)
	case *dexv1.Provider:
		delete(s.provs[obj.Namespace], obj.Name)
		s.rebuild(obj.Namespace)
	}
}

func put[T any](m map[string]map[string]T, ns, name string, v T) {
	if m[ns] == nil {
		m[ns] = map[string]T{}
	}
	m[ns][name] = v
}

func (s *Store) putProvider(p *dexv1.OIDCProvider) {
	key := p.Namespace + "/" + p.Name
	s.dropProvider(key)
	if !p.DeletionTimestamp.IsZero() {
		// Being deleted (it may wait for its clients): it serves no host any more, and its keys
		// are dropped, so another provider may take its host names over.
		return
	}
	s.providers[key] = &tenant{key: key, provider: p, version: p.Generation}
	for _, h := range p.Spec.Hostnames {
		h = strings.ToLower(h)
		// Two providers naming one host: the first by key wins, deterministically.
		if other, ok := s.hosts[h]; !ok || key < other {
			s.hosts[h] = key
		}
	}
}

func (s *Store) dropProvider(key string) {
	old, ok := s.providers[key]
	if !ok {
		return
	}
	delete(s.providers, key)
	for _, h := range old.provider.Spec.Hostnames {
		h = strings.ToLower(h)
		if s.hosts[h] != key {
			continue
		}
		delete(s.hosts, h)
		// Hand the host to another provider naming it, if any.
		for k, t := range s.providers {
			for _, h2 := range t.provider.Spec.Hostnames {
				if strings.ToLower(h2) == h {
					if cur, ok := s.hosts[h]; !ok || k < cur {
						s.hosts[h] = k
					}
				}
			}
		}
	}
}

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
	for _, p := range s.provs[ns] {
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

// tenantFor returns the provider serving host: the one listing it in spec.hostnames (exact,
// then without the port), else the default provider.
func (s *Store) tenantFor(host string) *tenant {
	host = strings.ToLower(host)
	s.mu.RLock()
	defer s.mu.RUnlock()
	if key, ok := s.hosts[host]; ok {
		return s.providers[key]
	}
	if h, _, err := net.SplitHostPort(host); err == nil {
		if key, ok := s.hosts[h]; ok {
			return s.providers[key]
		}
	}
	if s.defaultProvider != "" {
		return s.providers[s.defaultProvider]
	}
	return nil
}

// oidcTenants returns the keys of the providers with OIDC enabled.
func (s *Store) oidcTenants() []string {
	s.mu.RLock()
	defer s.mu.RUnlock()
	var out []string
	for key, t := range s.providers {
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
