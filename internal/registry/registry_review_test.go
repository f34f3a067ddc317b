package registry

import (
	"fmt"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/gomega"

	dexv1 "dexterity.dev/dexterity/api/v1alpha1"
)

// Hostile review of the registry (review-registry): each test performs an attack through the
// registry's HTTP handler and asserts what the contract requires, so it FAILS while the hole is
// open. They are skipped unless DEXTERITY_REVIEW is set:
//
//	DEXTERITY_REVIEW=1 KUBEBUILDER_ASSETS=$PWD/bin GOTOOLCHAIN=local go test ./internal/registry -run 'TestReview' -v -count=1

func reviewOnly(t *testing.T) {
	t.Helper()
	if os.Getenv("DEXTERITY_REVIEW") == "" {
		t.Skip("review attack test: set DEXTERITY_REVIEW=1 to run it")
	}
}

// TestReviewOversizedTokenIsVerified: maxTokenBytes (64 KiB) bounds only tokens that go to the
// ServiceAccount fallback or to bearer mode; a token claiming the provider's issuer is parsed,
// decoded and signature-checked whatever its size (up to net/http's 1 MiB header limit), and a
// signed one of 200 KiB is accepted.
func TestReviewOversizedTokenIsVerified(t *testing.T) {
	reviewOnly(t)
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

// TestReviewDecisionMemoPinsContentSnapshots: a cached principal memoises up to 64 GroupBinding
// decisions keyed by the namespace's content snapshot (a *namespaceContent). A tenant that
// changes one of its Modules between requests makes every decision a new snapshot, and each
// principal keeps up to 64 whole snapshots (each with a copy of the namespace's address map)
// alive for as long as its token is cached (5 minutes): memory grows with changes × tokens, not
// with the tenant's objects.
func TestReviewDecisionMemoPinsContentSnapshots(t *testing.T) {
	reviewOnly(t)
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
	snapshots := map[*namespaceContent]bool{}
	fx.auth.tokens.mu.RLock()
	for _, e := range fx.auth.tokens.entries {
		e.p.decisions.Range(func(k, _ any) bool {
			snapshots[k.(decisionKey).content] = true
			return true
		})
	}
	fx.auth.tokens.mu.RUnlock()
	pinnedSnapshots := len(snapshots)
	snapshots = nil
	// Control: forgetting the cached principals frees what they pinned.
	fx.auth.tokens.forget("uid-1", 1)
	freed := heap()
	t.Logf("%d modules, %d changes, %d tokens: %d snapshots pinned by memos; heap %d MiB above the baseline while cached, %d MiB after the cache is dropped",
		modules, changes, tokens, pinnedSnapshots, int64(pinned-base)>>20, (int64(freed)-int64(base))>>20)
	g.Expect(pinnedSnapshots).To(BeNumerically("<=", tokens),
		"each principal should keep at most the current snapshot's decisions, not %d snapshots in all", pinnedSnapshots)
}

// TestReviewBearerModeTokenReviewPerGarbageToken: in bearer mode an unauthenticated caller turns
// every request with a new token68 string (no JWT shape needed) into one TokenReview, with no
// bound but the kubeCache of answers (2 s negative TTL).
func TestReviewBearerModeTokenReviewPerGarbageToken(t *testing.T) {
	reviewOnly(t)
	g := NewWithT(t)
	fx := newHandlerFixture(t, Options{})
	off := false
	fx.upsert(testProvider(fx.is.URL(), func(s *dexv1.OIDCProviderSpec) { s.Enabled = &off; s.UseBearerToken = true }))
	fx.upsert(testBinding("all", `true`, []string{"*"}, nil), testModule("net", "team-a", "network", "aws"))
	const n = 500
	for i := range n {
		code, _, _ := fx.get("/v1/modules/team-a/network/aws/versions", "registry.test", fmt.Sprintf("x%d", i))
		g.Expect(code).To(Equal(401))
	}
	reviews, _ := fx.kube.counts()
	t.Logf("%d unauthenticated requests with distinct garbage tokens: %d TokenReviews", n, reviews)
	g.Expect(reviews).To(BeNumerically("<=", serviceAccountReviewBurst+n/100),
		"garbage from anyone on the network should not reach Kubernetes one TokenReview per request")
}
