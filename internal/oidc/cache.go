package oidc

import (
	"context"
	"errors"
	"math/rand/v2"
	"reflect"
	"sync"
	"time"

	logf "sigs.k8s.io/controller-runtime/pkg/log"
)

// initialRetryBackoff is the first retry delay after a failed background refresh; it
// doubles on each further failure, capped at the provider's RefreshInterval.
const initialRetryBackoff = time.Second

// Cache holds one Issuer per key (an OIDCProvider's "namespace/name") and refreshes each
// in the background. It implements controller-runtime's manager.Runnable and
// LeaderElectionRunnable; every replica runs it, so every replica has the keys.
//
// It has one writer, the OIDCProvider informer's handler on every replica
// (controllers.KeyCacheSync), which calls Sync and Remove with ProviderConfig of each provider.
// Everybody else reads: Get for the issuer of a key, Lookup for the issuer built from a given
// config (the OIDCProvider controller's status, the registry's verification), and OnChange to
// hear about every change.
type Cache struct {
	// MaxRefreshInterval, when set, caps every provider's refresh interval (tests and local
	// development; users cannot set an interval below 60s).
	MaxRefreshInterval time.Duration

	mu        sync.Mutex
	entries   map[string]*cacheEntry
	listeners []func(key string)
	synced    func() bool     // whether whatever fills the cache has seen every provider
	runCtx    context.Context // set by Start; nil before Start
	stopped   bool
	wg        sync.WaitGroup
}

// cacheEntry is what the cache made of the config last synced for a key: an issuer, or the
// error that refused the config (provider nil).
type cacheEntry struct {
	provider *Issuer
	cfg      Config
	refused  error
	cancel   context.CancelFunc // stops the refresh loop; nil while not running
}

// NewCache returns an empty Cache.
func NewCache() *Cache {
	return &Cache{entries: make(map[string]*cacheEntry)}
}

// Sync creates the provider for key, or replaces it if cfg differs (reflect.DeepEqual)
// from the config it was created with, and (re)starts its background refresh loop: the
// first refresh runs immediately, then every RefreshInterval ±10%, with retries after
// failures backing off from 1s up to RefreshInterval. Before Start the loop begins when
// Start runs. An unchanged cfg returns the existing provider untouched. An invalid cfg
// removes any existing provider for key (tokens must not keep verifying under a config
// that was replaced), is remembered as refused (Lookup) and returns the validation error.
// A new, replaced or refused entry is announced to the OnChange listeners.
func (c *Cache) Sync(key string, cfg Config) (*Issuer, error) {
	e, changed := c.sync(key, cfg)
	if changed {
		c.notify(key)
	}
	return e.provider, e.refused
}

func (c *Cache) sync(key string, cfg Config) (*cacheEntry, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	old, had := c.entries[key]
	if had && reflect.DeepEqual(old.cfg, cfg) {
		return old, false
	}
	if had && old.cancel != nil {
		old.cancel()
	}
	e := &cacheEntry{cfg: cfg.clone()}
	e.provider, e.refused = newIssuer(key, cfg)
	c.entries[key] = e
	if e.refused != nil {
		forgetMetrics(key)
		return e, true
	}
	c.startLocked(key, e)
	return e, true
}

// Get returns the provider for key, whatever config it was built from.
func (c *Cache) Get(key string) (*Issuer, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.entries[key]
	if !ok || e.provider == nil {
		return nil, false
	}
	return e.provider, true
}

// Lookup returns what the cache made of cfg for key: the issuer built from it, or the error that
// refused it (invalid issuer settings). found is false while the cache holds nothing made from
// exactly cfg (reflect.DeepEqual): its writer has not seen this config yet, or has already seen
// another one, and an issuer built from another config must not decide for cfg.
func (c *Cache) Lookup(key string, cfg Config) (issuer *Issuer, found bool, refused error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.entries[key]
	if !ok || !reflect.DeepEqual(e.cfg, cfg) {
		return nil, false, nil
	}
	return e.provider, true, e.refused
}

// Remove stops the refresh loop of key's provider and forgets it, announcing the change to the
// OnChange listeners when there was something to forget.
func (c *Cache) Remove(key string) {
	if c.remove(key) {
		c.notify(key)
	}
}

func (c *Cache) remove(key string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.entries[key]
	if !ok {
		return false
	}
	if e.cancel != nil {
		e.cancel()
	}
	delete(c.entries, key)
	forgetMetrics(key)
	return true
}

// SetSynced records how to tell whether whatever fills the cache (the OIDCProvider informer's
// handler) has seen every provider.
func (c *Cache) SetSynced(fn func() bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.synced = fn
}

// Synced reports whether the cache holds every provider it was told about; true when nobody
// said how to tell.
func (c *Cache) Synced() bool {
	c.mu.Lock()
	fn := c.synced
	c.mu.Unlock()
	return fn == nil || fn()
}

// OnChange registers fn to be called after every change of a key's entry: from the refresh
// goroutine after every background refresh attempt, successful or not, and from the writer's
// goroutine after Sync built, replaced or refused the entry and after Remove forgot it. fn must
// not block.
func (c *Cache) OnChange(fn func(key string)) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.listeners = append(c.listeners, fn)
}

// Start starts the refresh loops of all providers, and of those synced later, then blocks
// until ctx is done and stops them all. It may be called once.
func (c *Cache) Start(ctx context.Context) error {
	c.mu.Lock()
	if c.runCtx != nil || c.stopped {
		c.mu.Unlock()
		return errors.New("failed to start OIDC key cache: already started")
	}
	c.runCtx = ctx
	for key, e := range c.entries {
		c.startLocked(key, e)
	}
	c.mu.Unlock()

	<-ctx.Done()

	c.mu.Lock()
	c.stopped = true
	for _, e := range c.entries {
		if e.cancel != nil {
			e.cancel()
			e.cancel = nil
		}
	}
	c.mu.Unlock()
	c.wg.Wait()
	return nil
}

// NeedLeaderElection returns false: every replica keeps and refreshes the keys.
func (c *Cache) NeedLeaderElection() bool {
	return false
}

// startLocked starts e's refresh loop if the cache is running and e holds an issuer.
func (c *Cache) startLocked(key string, e *cacheEntry) {
	if c.runCtx == nil || c.stopped || e.cancel != nil || e.provider == nil {
		return
	}
	ctx, cancel := context.WithCancel(c.runCtx)
	e.cancel = cancel
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		c.refreshLoop(ctx, key, e.provider)
	}()
}

func (c *Cache) refreshLoop(ctx context.Context, key string, p *Issuer) {
	log := logf.FromContext(ctx).WithName("oidc").WithValues("provider", key)
	interval := p.cfg.RefreshInterval
	if c.MaxRefreshInterval > 0 {
		interval = min(interval, c.MaxRefreshInterval)
	}
	backoff := initialRetryBackoff
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
		}
		err := p.Refresh(ctx)
		if ctx.Err() != nil {
			return // stopped or replaced: this attempt's result is of no interest
		}
		c.notify(key)
		var wait time.Duration
		if err != nil {
			wait = min(backoff, interval)
			backoff = min(backoff*2, interval)
			log.Info("OIDC key refresh failed", "error", err.Error(), "retryIn", wait.String())
		} else {
			backoff = initialRetryBackoff
			wait = jitter(interval)
		}
		timer.Reset(wait)
	}
}

func (c *Cache) notify(key string) {
	c.mu.Lock()
	listeners := append([]func(string){}, c.listeners...)
	c.mu.Unlock()
	for _, fn := range listeners {
		fn(key)
	}
}

// jitter returns d scaled by a random factor in [0.9, 1.1).
func jitter(d time.Duration) time.Duration {
	return time.Duration(float64(d) * (0.9 + 0.2*rand.Float64()))
}
