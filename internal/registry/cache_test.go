package registry

import (
	"fmt"
	"testing"
	"time"

	. "github.com/onsi/gomega"
)

func TestTokenCache(t *testing.T) {
	now := time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)
	newCache := func(size int) *tokenCache {
		c := newTokenCache(size, 5*time.Minute)
		c.now = func() time.Time { return now }
		return c
	}
	key := func(tok string) verifiedKey { return verifiedKey{uid: "uid-1", generation: 1, hash: tokenHash(tok)} }

	t.Run("never used past exp", func(t *testing.T) {
		g := NewWithT(t)
		c := newCache(10)
		p := &principal{name: "admin"}
		c.add(key("a"), p, now.Add(30*time.Second))
		got, ok := c.get(key("a"))
		g.Expect(ok).To(BeTrue())
		g.Expect(got).To(BeIdenticalTo(p))
		now = now.Add(30 * time.Second)
		_, ok = c.get(key("a"))
		g.Expect(ok).To(BeFalse(), "the token expired")
		g.Expect(c.len()).To(BeZero(), "the expired entry is dropped")
	})
	t.Run("never used past maxAge", func(t *testing.T) {
		g := NewWithT(t)
		c := newCache(10)
		c.add(key("b"), &principal{}, now.Add(time.Hour))
		now = now.Add(5*time.Minute - time.Nanosecond)
		_, ok := c.get(key("b"))
		g.Expect(ok).To(BeTrue())
		now = now.Add(time.Nanosecond)
		_, ok = c.get(key("b"))
		g.Expect(ok).To(BeFalse())
	})
	t.Run("bounded", func(t *testing.T) {
		g := NewWithT(t)
		c := newCache(100)
		for i := range 1000 {
			c.add(key(fmt.Sprintf("tok-%d", i)), &principal{}, now.Add(time.Hour))
			g.Expect(c.len()).To(BeNumerically("<=", 100))
		}
		_, ok := c.get(key("tok-999"))
		g.Expect(ok).To(BeTrue(), "the newest entry is kept")
	})
	t.Run("keys differ by provider version and token", func(t *testing.T) {
		g := NewWithT(t)
		c := newCache(10)
		c.add(key("c"), &principal{}, now.Add(time.Hour))
		other := key("c")
		other.generation = 2
		_, ok := c.get(other)
		g.Expect(ok).To(BeFalse(), "a changed provider spec verifies again")
		_, ok = c.get(key("c2"))
		g.Expect(ok).To(BeFalse())
		g.Expect(tokenHash("x.y.sig1")).NotTo(Equal(tokenHash("x.y.sig2")))
	})
}
