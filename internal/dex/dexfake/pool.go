package dexfake

import (
	"strings"
	"sync"

	"dexterity.dev/dexterity/internal/dex"
)

// Pool implements dex.Connections with fake Dexes, one per gRPC address (as providers of one Dex
// share it): controllers under unit test get a Dex without a process.
type Pool struct {
	mu     sync.Mutex
	dexes  map[string]*Dex // by lower-cased address
	byProv map[string]*Dex // by provider key, for Existing
}

var _ dex.Connections = (*Pool)(nil)

// NewPool returns a pool without Dexes; Dex(address) makes them.
func NewPool() *Pool { return &Pool{dexes: map[string]*Dex{}, byProv: map[string]*Dex{}} }

// Dex returns the fake Dex at address, making it on first use.
func (p *Pool) Dex(address string) *Dex {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.dexLocked(address)
}

func (p *Pool) dexLocked(address string) *Dex {
	k := strings.ToLower(address)
	d, ok := p.dexes[k]
	if !ok {
		d = New(Options{Provider: k})
		p.dexes[k] = d
	}
	return d
}

// Get implements dex.Connections: the Dex at cfg.Address.
func (p *Pool) Get(provider string, cfg dex.Config) (dex.Client, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	d := p.dexLocked(cfg.Address)
	p.byProv[provider] = d
	return d, nil
}

// Existing implements dex.Connections.
func (p *Pool) Existing(provider string) (dex.Client, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	d, ok := p.byProv[provider]
	return d, ok
}

// Forget implements dex.Connections.
func (p *Pool) Forget(provider string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	delete(p.byProv, provider)
}
