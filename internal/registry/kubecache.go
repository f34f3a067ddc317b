package registry

import (
	"container/list"
	"context"
	"encoding/binary"
	"hash/maphash"
	"slices"
	"sync"
	"time"

	authnv1 "k8s.io/api/authentication/v1"
)

// Lifetimes and bound of the Kubernetes answers cache, as kube-apiserver caches its own token
// authentications (10s for a success): RBAC and token revocations take effect within seconds,
// and a client repeating one ServiceAccount token costs Kubernetes one TokenReview per 10s
// instead of one per request.
const (
	kubePositiveTTL    = 10 * time.Second
	kubeNegativeTTL    = 2 * time.Second
	defaultKubeEntries = 4096
	// kubeCallTimeout bounds one TokenReview or SubjectAccessReview shared by the requests
	// waiting for it (it is not cancelled with the request that started it).
	kubeCallTimeout = 10 * time.Second
)

// accessAnswer is a SubjectAccessReview's answer.
type accessAnswer struct {
	allowed bool
	reason  string
}

// kubeCache remembers Kubernetes' answers for the ServiceAccount fallback and bearer mode:
// TokenReviews by a keyed hash of the token (never past the token's exp), SubjectAccessReviews
// by a keyed hash of the user (name, uid, groups, extra), namespace, resource and name. Each is
// an LRU of at most size entries; an answer is kept positiveTTL when it allows, negativeTTL when
// it refuses, and failures (Kubernetes unreachable) are not kept. Concurrent requests for one
// key share one call. Nothing about a token but its hash is stored.
type kubeCache struct {
	tokens      *lru[[2]uint64, *principal] // nil principal: not authenticated
	access      *lru[[2]uint64, accessAnswer]
	positiveTTL time.Duration
	negativeTTL time.Duration
	now         func() time.Time
	tokenCalls  flight[*principal]
	accessCalls flight[accessAnswer]
}

func newKubeCache(size int) *kubeCache {
	if size <= 0 {
		size = defaultKubeEntries
	}
	return &kubeCache{
		tokens:      newLRU[[2]uint64, *principal](size),
		access:      newLRU[[2]uint64, accessAnswer](size),
		positiveTTL: kubePositiveTTL,
		negativeTTL: kubeNegativeTTL,
		now:         time.Now,
	}
}

// until is when an answer obtained now stops being used: ttl later, never past exp (the token's
// exp; zero when unknown). ok is false when it must not be kept at all.
func (c *kubeCache) until(ttl time.Duration, exp time.Time) (time.Time, bool) {
	now := c.now()
	u := now.Add(ttl)
	if !exp.IsZero() && exp.Before(u) {
		u = exp
	}
	return u, u.After(now)
}

// tokenReview returns the principal Kubernetes authenticates token as (nil: not authenticated),
// from the cache or from review.
func (c *kubeCache) tokenReview(ctx context.Context, token string, exp time.Time, review func(context.Context) (*principal, error)) (*principal, error) {
	k := tokenHash(token)
	if p, ok := c.tokens.get(k, c.now()); ok {
		kubeTokenHits.Inc()
		return p, nil
	}
	kubeTokenMisses.Inc()
	return c.tokenCalls.do(ctx, k, func(ctx context.Context) (*principal, error) {
		p, err := review(ctx)
		if err != nil {
			return nil, err
		}
		ttl := c.negativeTTL
		if p != nil {
			ttl = c.positiveTTL
		}
		if u, keep := c.until(ttl, exp); keep {
			c.tokens.add(k, p, u)
		}
		return p, nil
	})
}

// cachedToken returns Kubernetes' recent answer about token (nil principal: not authenticated),
// if there is one.
func (c *kubeCache) cachedToken(token string) (*principal, bool) {
	p, ok := c.tokens.get(tokenHash(token), c.now())
	if ok {
		kubeTokenHits.Inc()
	}
	return p, ok
}

// accessReview returns whether user may get resource/name in ns, from the cache or from review.
func (c *kubeCache) accessReview(ctx context.Context, user *authnv1.UserInfo, ns, resource, name string, review func(context.Context) (bool, string, error)) (bool, string, error) {
	k := accessKey(user, ns, resource, name)
	if a, ok := c.access.get(k, c.now()); ok {
		kubeAccessHits.Inc()
		return a.allowed, a.reason, nil
	}
	kubeAccessMisses.Inc()
	a, err := c.accessCalls.do(ctx, k, func(ctx context.Context) (accessAnswer, error) {
		allowed, reason, err := review(ctx)
		if err != nil {
			return accessAnswer{}, err
		}
		a := accessAnswer{allowed: allowed, reason: reason}
		ttl := c.negativeTTL
		if allowed {
			ttl = c.positiveTTL
		}
		if u, keep := c.until(ttl, time.Time{}); keep {
			c.access.add(k, a, u)
		}
		return a, nil
	})
	return a.allowed, a.reason, err
}

// accessKey is a 128-bit keyed hash of everything a SubjectAccessReview is asked about.
func accessKey(u *authnv1.UserInfo, ns, resource, name string) [2]uint64 {
	var out [2]uint64
	for i, seed := range tokenSeeds {
		var h maphash.Hash
		h.SetSeed(seed)
		count := func(n int) {
			var b [binary.MaxVarintLen64]byte
			_, _ = h.Write(b[:binary.PutUvarint(b[:], uint64(n))])
		}
		field := func(s string) { // length-prefixed: no two field lists hash alike by concatenation
			count(len(s))
			_, _ = h.WriteString(s)
		}
		field(u.Username)
		field(u.UID)
		count(len(u.Groups))
		for _, g := range u.Groups {
			field(g)
		}
		keys := make([]string, 0, len(u.Extra))
		for k := range u.Extra {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		count(len(keys))
		for _, k := range keys {
			field(k)
			count(len(u.Extra[k]))
			for _, v := range u.Extra[k] {
				field(v)
			}
		}
		field(ns)
		field(resource)
		field(name)
		out[i] = h.Sum64()
	}
	return out
}

// lru is a size-bounded least-recently-used map whose entries expire.
type lru[K comparable, V any] struct {
	mu   sync.Mutex
	size int
	ll   *list.List // of *lruEntry; front: most recently used
	m    map[K]*list.Element
}

type lruEntry[K comparable, V any] struct {
	key     K
	val     V
	expires time.Time
}

func newLRU[K comparable, V any](size int) *lru[K, V] {
	return &lru[K, V]{size: size, ll: list.New(), m: make(map[K]*list.Element)}
}

func (c *lru[K, V]) get(k K, now time.Time) (V, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	var zero V
	el, ok := c.m[k]
	if !ok {
		return zero, false
	}
	e := el.Value.(*lruEntry[K, V])
	if !now.Before(e.expires) {
		c.ll.Remove(el)
		delete(c.m, k)
		return zero, false
	}
	c.ll.MoveToFront(el)
	return e.val, true
}

func (c *lru[K, V]) add(k K, v V, expires time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if el, ok := c.m[k]; ok {
		e := el.Value.(*lruEntry[K, V])
		e.val, e.expires = v, expires
		c.ll.MoveToFront(el)
		return
	}
	for c.ll.Len() >= c.size {
		oldest := c.ll.Back()
		c.ll.Remove(oldest)
		delete(c.m, oldest.Value.(*lruEntry[K, V]).key)
	}
	c.m[k] = c.ll.PushFront(&lruEntry[K, V]{key: k, val: v, expires: expires})
}

func (c *lru[K, V]) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.ll.Len()
}

// flight makes concurrent calls for one key share one execution.
type flight[V any] struct {
	mu    sync.Mutex
	calls map[[2]uint64]*flightCall[V]
}

type flightCall[V any] struct {
	done chan struct{}
	val  V
	err  error
}

// do runs fn once for concurrent callers of k. fn's context is not cancelled with the caller's
// (other callers may wait for it) but is bounded by kubeCallTimeout; a caller whose own context
// ends stops waiting.
func (f *flight[V]) do(ctx context.Context, k [2]uint64, fn func(context.Context) (V, error)) (V, error) {
	f.mu.Lock()
	if f.calls == nil {
		f.calls = map[[2]uint64]*flightCall[V]{}
	}
	c, running := f.calls[k]
	if !running {
		c = &flightCall[V]{done: make(chan struct{})}
		f.calls[k] = c
	}
	f.mu.Unlock()
	if !running {
		go func() {
			defer close(c.done)
			callCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), kubeCallTimeout)
			defer cancel()
			c.val, c.err = fn(callCtx)
			f.mu.Lock()
			delete(f.calls, k)
			f.mu.Unlock()
		}()
	}
	select {
	case <-c.done:
		return c.val, c.err
	case <-ctx.Done():
		var zero V
		return zero, ctx.Err()
	}
}
