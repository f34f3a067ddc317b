package oidc

import (
	"context"
	"sync"
	"testing"
	"time"

	. "github.com/onsi/gomega"
)

// changeCounter records OnChange calls per key.
type changeCounter struct {
	mu     sync.Mutex
	counts map[string]int
}

func (c *changeCounter) record(key string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.counts == nil {
		c.counts = map[string]int{}
	}
	c.counts[key]++
}

func (c *changeCounter) get(key string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.counts[key]
}

// startCache runs c.Start until the test ends and returns a channel closed when Start returns.
func startCache(t *testing.T, c *Cache) (context.CancelFunc, <-chan struct{}) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := c.Start(ctx); err != nil {
			t.Errorf("Start: %v", err)
		}
	}()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	return cancel, done
}

func TestCacheBackgroundRefresh(t *testing.T) {
	g := NewWithT(t)
	key := newRSAKey(t, "k1", 0)
	iss := newTestIssuer(t, key)
	cfg := iss.config()
	cfg.RefreshInterval = 200 * time.Millisecond

	c := NewCache()
	g.Expect(c.NeedLeaderElection()).To(BeFalse())
	// Synced before Start: nothing is fetched until Start runs.
	p, err := c.Sync("ns/dex", cfg)
	g.Expect(err).NotTo(HaveOccurred())
	changes := &changeCounter{} // the refresh attempts, from here on
	c.OnChange(changes.record)
	g.Expect(p.name).To(Equal("ns/dex"))
	got, ok := c.Get("ns/dex")
	g.Expect(ok).To(BeTrue())
	g.Expect(got).To(BeIdenticalTo(p))
	g.Consistently(iss.jwksHits.Load, 100*time.Millisecond, 10*time.Millisecond).Should(BeZero())

	cancel, done := startCache(t, c)

	g.Eventually(func() bool { return p.Status().KeysReady }, 5*time.Second, 10*time.Millisecond).Should(BeTrue())
	_, err = p.Verify(context.Background(), signToken(t, key, iss.claims(nil)))
	g.Expect(err).NotTo(HaveOccurred())
	// Refreshes repeat every ~200ms and each one is reported.
	g.Eventually(func() int64 { return p.Status().Fetches }, 5*time.Second, 10*time.Millisecond).Should(BeNumerically(">=", 3))
	g.Eventually(func() int { return changes.get("ns/dex") }, 5*time.Second, 10*time.Millisecond).Should(BeNumerically(">=", 3))

	// An unchanged config keeps the provider.
	same, err := c.Sync("ns/dex", cfg.clone()) // equal by value, distinct slices
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(same).To(BeIdenticalTo(p))

	// A changed config replaces it; the new one is refreshed right away and the old loop stops.
	cfg2 := cfg
	cfg2.UsernameClaim = "email"
	p2, err := c.Sync("ns/dex", cfg2)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(p2).NotTo(BeIdenticalTo(p))
	g.Expect(p2.Config().UsernameClaim).To(Equal("email"))
	g.Eventually(func() bool { return p2.Status().KeysReady }, 5*time.Second, 10*time.Millisecond).Should(BeTrue())
	oldFetches := p.Status().Fetches
	g.Consistently(func() int64 { return p.Status().Fetches }, 500*time.Millisecond, 50*time.Millisecond).Should(BeNumerically("<=", oldFetches+1))

	// Failures are reported too, and keys are kept.
	iss.stop()
	g.Eventually(func() string { return p2.Status().LastError }, 5*time.Second, 10*time.Millisecond).ShouldNot(BeEmpty())
	before := changes.get("ns/dex")
	g.Eventually(func() int { return changes.get("ns/dex") }, 5*time.Second, 10*time.Millisecond).Should(BeNumerically(">", before))
	g.Expect(p2.Status().KeysReady).To(BeTrue())

	// An invalid config removes the provider.
	bad := cfg2
	bad.Audiences = nil
	_, err = c.Sync("ns/dex", bad)
	g.Expect(err).To(HaveOccurred())
	_, ok = c.Get("ns/dex")
	g.Expect(ok).To(BeFalse())

	cancel()
	g.Eventually(done, 5*time.Second).Should(BeClosed())
}

func TestCacheSyncAfterStartAndRemove(t *testing.T) {
	g := NewWithT(t)
	iss := newTestIssuer(t, newECKey(t, "k1"))
	cfg := iss.config()
	cfg.RefreshInterval = 200 * time.Millisecond

	c := NewCache()
	cancel, done := startCache(t, c)

	p, err := c.Sync("ns/a", cfg)
	g.Expect(err).NotTo(HaveOccurred())
	changes := &changeCounter{} // the refresh attempts, from here on
	c.OnChange(changes.record)
	g.Eventually(func() bool { return p.Status().KeysReady }, 5*time.Second, 10*time.Millisecond).Should(BeTrue())
	g.Eventually(func() int { return changes.get("ns/a") }, 5*time.Second, 10*time.Millisecond).Should(BeNumerically(">=", 1))

	c.Remove("ns/a")
	_, ok := c.Get("ns/a")
	g.Expect(ok).To(BeFalse())
	// The loop stops: at most one refresh already under way may still complete.
	fetches := p.Status().Fetches
	g.Consistently(func() int64 { return p.Status().Fetches }, 500*time.Millisecond, 50*time.Millisecond).Should(BeNumerically("<=", fetches+1))

	cancel()
	g.Eventually(done, 5*time.Second).Should(BeClosed())
	g.Expect(c.Start(context.Background())).To(HaveOccurred(), "Start runs once")
}

func TestCacheRetryBackoffCappedAtInterval(t *testing.T) {
	g := NewWithT(t)
	iss := newTestIssuer(t, newECKey(t, "k1"))
	iss.setRawJWKS([]byte(`{"keys":[]}`)) // every refresh fails
	cfg := iss.config()
	cfg.RefreshInterval = 100 * time.Millisecond

	c := NewCache()
	p, err := c.Sync("ns/failing", cfg)
	g.Expect(err).NotTo(HaveOccurred())
	changes := &changeCounter{} // the refresh attempts, from here on
	c.OnChange(changes.record)
	startCache(t, c)

	// With the 1s initial backoff capped at 100ms, failures are retried quickly.
	g.Eventually(func() int { return changes.get("ns/failing") }, 5*time.Second, 10*time.Millisecond).Should(BeNumerically(">=", 4))
	st := p.Status()
	g.Expect(st.KeysReady).To(BeFalse())
	g.Expect(st.LastError).To(ContainSubstring("no usable signing keys"))
}

// Lookup answers for exactly the config the writer synced last: the issuer built from it, the
// error that refused it, or nothing (not seen yet, or replaced); every change the writer makes
// (built, replaced, refused, removed) is announced, and a Sync or Remove that changes nothing is
// not.
func TestCacheLookupAndWriterChanges(t *testing.T) {
	g := NewWithT(t)
	iss := newTestIssuer(t, newECKey(t, "k1"))
	cfg := iss.config()
	c := NewCache()
	changes := &changeCounter{}
	c.OnChange(changes.record)

	_, found, err := c.Lookup("ns/dex", cfg)
	g.Expect(found).To(BeFalse(), "nothing synced yet")
	g.Expect(err).NotTo(HaveOccurred())

	p, err := c.Sync("ns/dex", cfg)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(changes.get("ns/dex")).To(Equal(1), "built")
	got, found, err := c.Lookup("ns/dex", cfg.clone())
	g.Expect(found).To(BeTrue())
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(got).To(BeIdenticalTo(p))
	_, err = c.Sync("ns/dex", cfg.clone())
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(changes.get("ns/dex")).To(Equal(1), "an unchanged config changes nothing")

	// Another config: the issuer of the older one does not answer for it, and the other way round.
	cfg2 := cfg.clone()
	cfg2.GroupsPrefix = "oidc:"
	_, found, _ = c.Lookup("ns/dex", cfg2)
	g.Expect(found).To(BeFalse(), "built from another config")
	p2, err := c.Sync("ns/dex", cfg2)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(changes.get("ns/dex")).To(Equal(2), "replaced")
	_, found, _ = c.Lookup("ns/dex", cfg)
	g.Expect(found).To(BeFalse(), "replaced by another config")
	got, found, _ = c.Lookup("ns/dex", cfg2)
	g.Expect(found).To(BeTrue())
	g.Expect(got).To(BeIdenticalTo(p2))

	// A refused config: no issuer for Get, the refusal for Lookup.
	bad := cfg2.clone()
	bad.Audiences = nil
	_, syncErr := c.Sync("ns/dex", bad)
	g.Expect(syncErr).To(MatchError(ContainSubstring("at least one audience is required")))
	g.Expect(changes.get("ns/dex")).To(Equal(3), "refused")
	_, ok := c.Get("ns/dex")
	g.Expect(ok).To(BeFalse())
	got, found, err = c.Lookup("ns/dex", bad)
	g.Expect(found).To(BeTrue())
	g.Expect(got).To(BeNil())
	g.Expect(err).To(Equal(syncErr))
	_, err = c.Sync("ns/dex", bad)
	g.Expect(err).To(Equal(syncErr))
	g.Expect(changes.get("ns/dex")).To(Equal(3), "refused again: no change")

	c.Remove("ns/dex")
	g.Expect(changes.get("ns/dex")).To(Equal(4), "removed")
	_, found, _ = c.Lookup("ns/dex", bad)
	g.Expect(found).To(BeFalse())
	c.Remove("ns/dex")
	g.Expect(changes.get("ns/dex")).To(Equal(4), "nothing to remove")
}
