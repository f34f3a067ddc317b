package registry

import (
	"fmt"
	"runtime"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/gomega"
)

// Attacks on the registry found by its hostile review (tenant isolation, round two), through the
// registry's HTTP handler; each failed before its fix.

// TestOversizedTokenIsRefusedBeforeParsing (found by the hostile review): maxTokenBytes (64 KiB)
// bounded only tokens that went to the ServiceAccount fallback or to bearer mode; a token claiming
// the provider's issuer was parsed and signature-checked whatever its size, and a signed one of
// 200 KiB was accepted. Every token over the bound is refused before any parsing now.
func TestOversizedTokenIsRefusedBeforeParsing(t *testing.T) {
	g := NewWithT(t)
	fx := newHandlerFixture(t, Options{})
	fx.upsert(testBinding("all", `true`, []string{"*"}, nil), testModule("net", "team-a", "network", "aws"))
	const target = "/v1/modules/team-a/network/aws/versions"

	small := fx.token(t, "team-a")
	code, _, _ := fx.get(target, "registry.test", small)
	g.Expect(code).To(Equal(200))

	// The cost of a large token that claims the issuer but does not verify (nothing cached):
	// parsed by go-jose, its claims decoded, its signature hashed, then parsed again by
	// ParseUnverified to route the error.
	for _, size := range []int{4 << 10, 64 << 10, 900 << 10} {
		tok, err := fx.is.Sign(map[string]any{"aud": "registry", "sub": DexSubjectOf("u", "local"), "groups": []string{"x"},
			"exp": fx.exp, "pad": strings.Repeat("a", size)})
		g.Expect(err).NotTo(HaveOccurred())
		forged := tok[:len(tok)-4] + "AAAA" // bad signature: never cached
		const n = 20
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		before := ms.TotalAlloc
		start := time.Now()
		for range n {
			code, _, _ = fx.get(target, "registry.test", forged)
			g.Expect(code).To(Equal(401))
		}
		per := time.Since(start) / n
		runtime.ReadMemStats(&ms)
		t.Logf("forged token of %4d KiB: %v and %d KiB allocated per request", len(forged)>>10, per, (ms.TotalAlloc-before)/n>>10)
	}

	big, err := fx.is.Sign(map[string]any{"aud": "registry", "sub": DexSubjectOf("u", "local"), "groups": []string{"team-a"},
		"exp": fx.exp, "pad": strings.Repeat("a", 200<<10)})
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(len(big)).To(BeNumerically(">", maxTokenBytes))
	code, body, _ := fx.get(target, "registry.test", big)
	g.Expect(code).To(Equal(401), "a %d-byte token (the bound is %d) must be refused before any parsing: %s", len(big), maxTokenBytes, body)
}

// TestDecisionMemoKeepsNoContentSnapshots (found by the hostile review): a cached principal memoises up to 64 GroupBinding
// decisions keyed by the namespace's content snapshot (a *namespaceContent). A tenant that
// changes one of its Modules between requests makes every decision a new snapshot, and each
// principal keeps up to 64 whole snapshots (each with a copy of the namespace's address map)
// alive for as long as its token is cached (5 minutes): memory grows with changes × tokens, not
// with the tenant's objects.
func TestDecisionMemoKeepsNoContentSnapshots(t *testing.T) {
	g := NewWithT(t)
	fx := newHandlerFixture(t, Options{})
	const modules, tokens, changes = 5000, 8, 8 * 64
	fx.upsert(testBinding("all", `true`, []string{"*"}, nil))
	for i := range modules {
		fx.upsert(testModule(fmt.Sprintf("m%d", i), "team-a", fmt.Sprintf("mod%d", i), "aws"))
	}
	toks := make([]string, tokens)
	for i := range toks {
		toks[i] = fx.token(t, "team-a", fmt.Sprintf("t%d", i))
	}
	const target = "/v1/modules/team-a/mod0/aws/versions"
	heap := func() uint64 {
		runtime.GC()
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		return ms.HeapAlloc
	}
	base := heap()
	for i := range changes {
		// The tenant edits one of its Modules (any field: the informer delivers a new object).
		m := testModule("m1", "team-a", "mod1", "aws")
		m.Spec.Versions[0].Version = fmt.Sprintf("1.0.%d", i)
		fx.upsert(m)
		code, _, _ := fx.get(target, "registry.test", toks[i%tokens])
		g.Expect(code).To(Equal(200))
	}
	pinned := heap()
	// Control: forgetting the cached principals frees whatever they pinned.
	fx.auth.tokens.forget("uid-1", 1)
	freed := heap()
	held := int64(pinned) - int64(freed)
	t.Logf("%d modules, %d changes, %d tokens: heap %d MiB above the baseline while cached, %d MiB after the cache is dropped (the principals held %d KiB)",
		modules, changes, tokens, int64(pinned-base)>>20, (int64(freed)-int64(base))>>20, held>>10)
	// Before: 512 snapshots pinned, about 106 MiB. Now each principal holds a version number and
	// at most 64 small decisions.
	g.Expect(int64(pinned)-int64(base)).To(BeNumerically("<", 16<<20), "cached principals must not keep content snapshots alive")
}
