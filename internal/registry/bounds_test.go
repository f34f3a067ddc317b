package registry

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	"github.com/prometheus/client_golang/prometheus/testutil"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	dexv1 "dexterity.dev/dexterity/api/v1alpha1"
	"dexterity.dev/dexterity/internal/authz"
)

// Bounded work per request (DESIGN.md §4): attacks through the registry's HTTP handler, served
// from a Store fed directly (no informers), with tokens signed by a ClaimsIssuer and a fake
// Kubernetes that counts its reviews.

// bounded is how long a request reaching the worst content a tenant can write may take on a
// loaded test machine (the evaluation deadline is a few milliseconds; without the bounds such
// requests take seconds to hours).
const bounded = time.Second

// handlerFixture is a registry Server for provider ns/dex (host registry.test, issuer is, the
// ServiceAccount fallback on) whose content the test puts into the Store.
type handlerFixture struct {
	*authFixture
	is     *ClaimsIssuer
	server *Server
	exp    int64
}

func newHandlerFixture(t testing.TB, o Options) *handlerFixture {
	t.Helper()
	is, err := StartClaimsIssuer()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(is.Close)
	fx := &handlerFixture{authFixture: newAuthFixture(t), is: is, exp: time.Now().Add(24 * time.Hour).Unix()}
	fx.tenant(t, testProvider(is.URL(), func(s *dexv1.OIDCProviderSpec) { s.AllowServiceAccountFallback = true }))
	fx.loadKeys(t, is)
	o.Keys = fx.keys
	fx.server = &Server{opts: o, store: fx.store, auth: fx.auth}
	fx.server.routes()
	fx.store.hasSynced.Store(true)
	return fx
}

// token signs a token of the provider for groups.
func (fx *handlerFixture) token(t testing.TB, groups ...string) string {
	t.Helper()
	tok, err := fx.is.Sign(map[string]any{"aud": "registry", "sub": DexSubjectOf("user", "local"), "groups": groups, "exp": fx.exp})
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// saToken is a ServiceAccount token of the fake API server that the fake Kubernetes accepts:
// with the fallback on, it reaches a TokenReview.
func (fx *handlerFixture) saToken(t testing.TB) string {
	sa := fx.api.token(t, map[string]any{"sub": "system:serviceaccount:team-a:ci", "exp": fx.exp})
	fx.kube.mu.Lock()
	fx.kube.accept[sa] = true
	fx.kube.mu.Unlock()
	return sa
}

// get serves GET target (an escaped request target) on host with the token ("" for none).
func (fx *handlerFixture) get(target, host, token string) (int, string, time.Duration) {
	req := httptest.NewRequest(http.MethodGet, target, nil)
	req.Host = host
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	rec := httptest.NewRecorder()
	start := time.Now()
	fx.server.Handler().ServeHTTP(rec, req)
	return rec.Code, rec.Body.String(), time.Since(start)
}

func testBinding(name, expr string, modules, providers []string) *dexv1.GroupBinding {
	return &dexv1.GroupBinding{
		ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: name, UID: types.UID("uid-" + name), Generation: 1},
		Spec:       dexv1.GroupBindingSpec{Expression: expr, ModuleResources: modules, ProviderResources: providers},
	}
}

func testModule(name, regNS, modName, system string) *dexv1.Module {
	return &dexv1.Module{
		ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: name, UID: types.UID("uid-" + name),
			CreationTimestamp: metav1.NewTime(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))},
		Spec: dexv1.ModuleSpec{Namespace: regNS, Name: modName, System: system,
			Versions: []dexv1.ModuleVersion{{Version: "1.0.0", Source: "https://downloads.example.org/" + modName + ".tar.gz"}}},
	}
}

func TestSegmentsBounded(t *testing.T) {
	long, max := strings.Repeat("a", authz.MaxSegmentBytes+1), strings.Repeat("a", authz.MaxSegmentBytes)
	cases := []struct {
		escaped string
		want    bool
	}{
		{"/", true},
		{"/v1/modules/team-a/network/aws/versions", true},
		{"/v1/modules/" + max + "/network/aws/versions", true},
		{"/v1/modules/" + long + "/network/aws/versions", false},
		{"/v1/modules/team-a/network/aws/" + long, false},
		{"/" + long, false},
		{long, false},
		// Unescaped, as path values see them: 256 escaped bytes are 256 bytes.
		{"/v1/modules/" + strings.Repeat("%41", authz.MaxSegmentBytes) + "/x/y/versions", true},
		{"/v1/modules/" + strings.Repeat("%41", authz.MaxSegmentBytes+1) + "/x/y/versions", false},
		// "%2F" does not end a segment: the route's path value holds the "/".
		{"/v1/modules/" + strings.Repeat("a", 200) + "%2F" + strings.Repeat("a", 56) + "/x/y/versions", false},
		{"/v1/modules/" + strings.Repeat("a", 200) + "%2F" + strings.Repeat("a", 55) + "/x/y/versions", true},
		{"//" + max + "//" + max, true},
	}
	for _, tc := range cases {
		NewWithT(t).Expect(segmentsBounded(tc.escaped)).To(Equal(tc.want), "%.60s... (%d bytes)", tc.escaped, len(tc.escaped))
	}
}

// TestLongSegmentIsNotFoundFirst: a request with a path segment over 256 bytes gets 404 before
// anything else happens: a garbage token (401 otherwise), a ServiceAccount token (a TokenReview
// otherwise) and a token of the provider (a signature verification otherwise) all get 404, on
// every route, and neither Kubernetes nor the verification sees them. The same requests with
// 256-byte segments are answered by authentication, which proves the order.
func TestLongSegmentIsNotFoundFirst(t *testing.T) {
	fx := newHandlerFixture(t, Options{})
	fx.store.upsert(testModule("network", "team-a", "network", "aws"))
	fx.store.upsert(testBinding("members", `"team-a" in groups`, []string{"team-a/*"}, []string{"team-a/*"}))
	long, max := strings.Repeat("x", authz.MaxSegmentBytes+1), strings.Repeat("x", authz.MaxSegmentBytes)
	targets := func(seg string) []string {
		return []string{
			"/v1/modules/" + seg + "/network/aws/versions",
			"/v1/modules/team-a/" + seg + "/aws/versions",
			"/v1/modules/team-a/network/" + seg + "/versions",
			"/v1/modules/team-a/network/aws/" + seg + "/download",
			"/v1/providers/" + seg + "/echo/versions",
			"/v1/providers/team-a/" + seg + "/versions",
			"/v1/providers/team-a/echo/1.0.0/download/" + seg + "/amd64",
			"/v1/modules/" + strings.Repeat("%78", authz.MaxSegmentBytes+1) + "/network/aws/versions",
			"/.well-known/" + seg,
		}
	}
	tokens := map[string]string{"garbage": "garbage", "ServiceAccount": fx.saToken(t), "provider": fx.token(t, "team-a")}

	t.Run("over 256 bytes: 404, nothing else happens", func(t *testing.T) {
		g := NewWithT(t)
		reviewsBefore, sarsBefore := fx.kube.counts()
		missesBefore, hitsBefore := testutil.ToFloat64(tokenCacheMisses), testutil.ToFloat64(tokenCacheHits)
		for name, tok := range tokens {
			for _, target := range targets(long) {
				code, body, took := fx.get(target, "registry.test", tok)
				g.Expect(code).To(Equal(http.StatusNotFound), "%s token, %.80s: %s", name, target, body)
				g.Expect(body).To(ContainSubstring("a path segment is longer than 256 bytes"))
				g.Expect(took).To(BeNumerically("<", bounded))
			}
		}
		reviews, sars := fx.kube.counts()
		g.Expect(reviews).To(Equal(reviewsBefore), "TokenReviews")
		g.Expect(sars).To(Equal(sarsBefore), "SubjectAccessReviews")
		g.Expect(testutil.ToFloat64(tokenCacheMisses)).To(Equal(missesBefore), "verifications")
		g.Expect(testutil.ToFloat64(tokenCacheHits)).To(Equal(hitsBefore), "token cache lookups")
	})

	t.Run("a Host longer than a DNS name: 404 before authentication", func(t *testing.T) {
		g := NewWithT(t)
		reviewsBefore, _ := fx.kube.counts()
		code, body, _ := fx.get("/v1/modules/team-a/network/aws/versions", strings.Repeat("h", 300)+".test", tokens["ServiceAccount"])
		g.Expect(code).To(Equal(http.StatusNotFound), body)
		g.Expect(body).To(ContainSubstring("no registry is served for this host"))
		g.Expect(body).NotTo(ContainSubstring("hhhh"), "the host is not echoed")
		reviews, _ := fx.kube.counts()
		g.Expect(reviews).To(Equal(reviewsBefore))
	})

	t.Run("at 256 bytes: authentication answers", func(t *testing.T) {
		g := NewWithT(t)
		for _, target := range targets(max)[:7] {
			code, body, _ := fx.get(target, "registry.test", "garbage")
			g.Expect(code).To(Equal(http.StatusUnauthorized), "%.80s: %s", target, body)
		}
		reviewsBefore, _ := fx.kube.counts()
		code, body, _ := fx.get(targets(max)[0], "registry.test", tokens["ServiceAccount"])
		g.Expect(code).To(Equal(http.StatusNotFound), body) // allowed by the fake RBAC; no such module
		reviews, _ := fx.kube.counts()
		g.Expect(reviews).To(Equal(reviewsBefore+1), "the ServiceAccount token reached a TokenReview")
	})
}

// worstPatterns are n module patterns at the bounds of authz.CheckResources (MaxPatternBytes,
// character classes after a "*": the costliest path.Match input per byte) that never match the
// names of worstName.
func worstPatterns(n int) []string {
	seg := "*" + strings.Repeat("[a-z]", (authz.MaxPatternBytes-2)/5) + "b"
	out := make([]string, n)
	for i := range out {
		out[i] = seg[:len(seg)-1] + string(rune('c'+i%20))
	}
	return out
}

// worstName is a module name (and namespace, and system) of 256 bytes.
var worstName = strings.Repeat("a", authz.MaxSegmentBytes)

// TestLongNamesAndHugeGlobsAnswerQuickly (issue: "Registry CPU burn. Team A's user sends long
// module names while a GroupBinding carries huge globs: each request runs for 20 s or more"):
//   - the requests (64 KiB names against a true binding with 100 KB globs) are 404
//     at once, as is every name over 256 bytes (TestLongSegmentIsNotFoundFirst);
//   - globs over the bounds, stored without admission, make the binding deny at once (403);
//   - the costliest globs within the bounds against the longest names stop at the evaluation
//     deadline: the request is denied (403) in milliseconds, after a fraction of the matches.
func TestLongNamesAndHugeGlobsAnswerQuickly(t *testing.T) {
	fx := newHandlerFixture(t, Options{})
	tok := fx.token(t, "team-a")
	huge := make([]string, 12)
	for i := range huge {
		huge[i] = "*" + strings.Repeat("a", 100000) + "b"
	}

	t.Run("the issue's requests", func(t *testing.T) {
		g := NewWithT(t)
		gb := testBinding("a-huge", `true`, huge, huge)
		fx.store.upsert(gb)
		t.Cleanup(func() { fx.store.remove(gb) })
		name := strings.Repeat("a", 64<<10)
		for _, target := range []string{
			"/v1/modules/team-a/" + name + "/aws/versions",
			"/v1/providers/team-a/" + name + "/versions",
		} {
			code, body, took := fx.getWithin(t, target, tok)
			g.Expect(code).To(Equal(http.StatusNotFound), body)
			g.Expect(took).To(BeNumerically("<", bounded))
		}
	})

	target := "/v1/modules/" + worstName + "/" + worstName + "/" + worstName + "/versions"
	t.Run("globs over the bounds stored without admission", func(t *testing.T) {
		g := NewWithT(t)
		gb := testBinding("a-huge", `true`, huge, nil)
		fx.store.upsert(gb)
		t.Cleanup(func() { fx.store.remove(gb) })
		code, body, took := fx.getWithin(t, target, tok)
		g.Expect(code).To(Equal(http.StatusForbidden), body)
		g.Expect(body).To(ContainSubstring("GroupBinding a-huge has a refused resource pattern (spec.moduleResources[0])"))
		g.Expect(took).To(BeNumerically("<", bounded))
	})

	t.Run("the costliest globs within the bounds", func(t *testing.T) {
		g := NewWithT(t)
		// A deadline far below what matching all the patterns takes on any machine (about
		// 100 x 130µs here), so that the test does not depend on the machine's speed.
		prev := authz.SetDeadline(time.Millisecond)
		t.Cleanup(func() { authz.SetDeadline(prev) })
		gb := testBinding("b-worst", `"team-a" in groups`, worstPatterns(authz.MaxPatterns), nil)
		g.Expect(authz.CheckResources(gb.Spec.ModuleResources, nil)).To(Succeed(), "within the bounds")
		fx.store.upsert(gb)
		t.Cleanup(func() { fx.store.remove(gb) })
		for range 3 {
			code, body, took := fx.getWithin(t, target, tok)
			g.Expect(took).To(BeNumerically("<", bounded), "%s", body)
			g.Expect(code).To(Equal(http.StatusForbidden), body)
			g.Expect(body).To(ContainSubstring("ran past the " + authz.Deadline().String() + " deadline"))
		}

		// The same decision in an Evaluation of its own: the matching stopped at the deadline,
		// after a fraction of the work all the patterns take.
		ev := &authz.Evaluation{}
		res := resource{kind: kindModule, address: worstName + "/" + worstName + "/" + worstName, name: worstName,
			segments: []string{worstName, worstName, worstName}}
		start := time.Now()
		d := authorizeWithin(ev, fx.store.contentOf("ns").bindings, []string{"team-a"}, res)
		took := time.Since(start)
		g.Expect(d.reason).To(Equal(reasonEvaluationDeadline), d.message)
		all := int64(authz.MaxPatterns * authz.GlobCost(len(gb.Spec.ModuleResources[0]), len(worstName)))
		g.Expect(ev.Charged()).To(And(BeNumerically(">", 0), BeNumerically("<", all/4)), "glob work charged (estimated ns) of %d", all)
		g.Expect(took).To(BeNumerically("<", bounded))
		t.Logf("denied after %s, %d of %d estimated ns of glob work charged", took, ev.Charged(), all)
	})
}

// getWithin is get, giving up (and failing the test) after 10 s, so that a request the registry
// holds does not hang the test.
func (fx *handlerFixture) getWithin(t *testing.T, target, token string) (int, string, time.Duration) {
	t.Helper()
	type answer struct {
		code int
		body string
		took time.Duration
	}
	done := make(chan answer, 1)
	go func() {
		code, body, took := fx.get(target, "registry.test", token)
		done <- answer{code, body, took}
	}()
	select {
	case a := <-done:
		return a.code, a.body, a.took
	case <-time.After(10 * time.Second):
		t.Fatalf("GET %.80s... took more than 10s", target)
		return 0, "", 0
	}
}

// blockingKube answers no review until released.
type blockingKube struct{ release chan struct{} }

func (k *blockingKube) Create(ctx context.Context, _ client.Object, _ ...client.CreateOption) error {
	select {
	case <-k.release:
		return errors.New("released")
	case <-ctx.Done():
		return ctx.Err()
	}
}

// TestRequestDeadline: a request that would wait longer than Options.RequestTimeout (here for a
// TokenReview that does not answer) gets 503 with the registry's JSON error at the deadline: its
// context is done then, so the handler stops waiting and returns.
func TestRequestDeadline(t *testing.T) {
	g := NewWithT(t)
	fx := newHandlerFixture(t, Options{RequestTimeout: 200 * time.Millisecond})
	kube := &blockingKube{release: make(chan struct{})}
	t.Cleanup(func() { close(kube.release) })
	fx.auth.kube = kube
	req := httptest.NewRequest(http.MethodGet, "/v1/modules/team-a/network/aws/versions", nil)
	req.Host = "registry.test"
	req.Header.Set("Authorization", "Bearer "+fx.saToken(t))
	rec := httptest.NewRecorder()
	start := time.Now()
	fx.server.Handler().ServeHTTP(rec, req)
	took := time.Since(start)
	g.Expect(rec.Code).To(Equal(http.StatusServiceUnavailable), rec.Body.String())
	g.Expect(rec.Header().Get("Content-Type")).To(Equal("application/json"))
	g.Expect(rec.Header().Get("Retry-After")).To(Equal("5"))
	g.Expect(rec.Body.String()).To(MatchJSON(`{"errors":["the request ran past the registry's 200ms deadline; retry shortly"]}`))
	g.Expect(took).To(And(BeNumerically(">=", 200*time.Millisecond), BeNumerically("<", bounded)), "the handler returned at the deadline")

	// Answers within the deadline keep their own headers.
	code, body, _ := fx.get("/.well-known/terraform.json", "registry.test", "")
	g.Expect(code).To(Equal(http.StatusOK), body)
	rec = httptest.NewRecorder()
	req = httptest.NewRequest(http.MethodGet, "/v1/modules/team-a/network/aws/versions", nil)
	req.Host = "registry.test"
	fx.server.Handler().ServeHTTP(rec, req)
	g.Expect(rec.Code).To(Equal(http.StatusUnauthorized))
	g.Expect(rec.Header().Get("Retry-After")).To(BeEmpty())
	g.Expect(rec.Header().Get("WWW-Authenticate")).NotTo(BeEmpty())
}

// TestEvaluationStopsWithTheRequest: a binding evaluated for a request whose context is done
// stops (the decision is not memoised, and no deadline event is due).
func TestEvaluationStopsWithTheRequest(t *testing.T) {
	g := NewWithT(t)
	fx := newHandlerFixture(t, Options{})
	gb := testBinding("slow", `any(1..10000, {any(1..40, {# == -1})})`, []string{"*"}, nil)
	fx.store.upsert(gb)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	ev := &authz.Evaluation{Deadline: time.Minute, Context: ctx}
	start := time.Now()
	d := authorizeWithin(ev, fx.store.contentOf("ns").bindings, []string{"team-a"}, resource{kind: kindModule, address: "a/b/c", name: "b", segments: []string{"a", "b", "c"}})
	g.Expect(time.Since(start)).To(BeNumerically("<", bounded))
	g.Expect(d.allowed).To(BeFalse())
	g.Expect(d.reason).To(Equal(reasonEvaluationDeadline))
	g.Expect(d.message).To(Equal("the request ran past its deadline"))
}

// TestBindingCompileDoesNotBlockRequests: while a GroupBinding update compiles (held here by a
// hook), requests of the same and of other namespaces are answered, and Module changes are
// served; the new binding takes effect once its compile finishes.
func TestBindingCompileDoesNotBlockRequests(t *testing.T) {
	g := NewWithT(t)
	fx := newHandlerFixture(t, Options{})
	tok := fx.token(t, "team-a")
	fx.store.upsert(testModule("network", "team-a", "network", "aws"))
	members := testBinding("members", `"team-a" in groups`, []string{"team-a/*"}, nil)
	fx.store.upsert(members)
	versions := "/v1/modules/team-a/network/aws/versions"
	code, body, _ := fx.get(versions, "registry.test", tok)
	g.Expect(code).To(Equal(http.StatusOK), body)

	started, release := make(chan struct{}), make(chan struct{})
	fx.store.compileBinding = func(gb *dexv1.GroupBinding) *binding {
		close(started)
		<-release
		return compileBinding(gb)
	}
	var releaseOnce sync.Once
	t.Cleanup(func() { releaseOnce.Do(func() { close(release) }) })
	updated := members.DeepCopy()
	updated.Generation = 2
	updated.Spec.Expression = `"team-b" in groups`
	putDone := make(chan struct{})
	go func() {
		defer close(putDone)
		fx.store.upsert(updated)
	}()
	g.Eventually(started, 5*time.Second).Should(BeClosed())

	// The compile is held: requests are answered from the current content meanwhile, and a
	// Module added meanwhile is served.
	answered := make(chan int, 1)
	go func() {
		code, _, _ := fx.get(versions, "registry.test", tok)
		answered <- code
	}()
	g.Eventually(answered, 2*time.Second).Should(Receive(Equal(http.StatusOK)), "a request completes while a binding compiles")
	moduleDone := make(chan struct{})
	go func() {
		defer close(moduleDone)
		fx.store.upsert(testModule("dns", "team-a", "dns", "aws"))
	}()
	g.Eventually(moduleDone, 2*time.Second).Should(BeClosed(), "a Module change completes while a binding compiles")
	code, body, _ = fx.get("/v1/modules/team-a/dns/aws/versions", "registry.test", tok)
	g.Expect(code).To(Equal(http.StatusOK), body)
	g.Expect(putDone).NotTo(BeClosed())

	releaseOnce.Do(func() { close(release) })
	g.Eventually(putDone, 5*time.Second).Should(BeClosed())
	code, body, _ = fx.get(versions, "registry.test", tok)
	g.Expect(code).To(Equal(http.StatusForbidden), "the updated binding decides: %s", body)
}

// TestContentCopyOnWrite: changes publish new snapshots and never modify a served one; duplicate
// addresses are served by the oldest object, then the first by name, also after changes.
func TestContentCopyOnWrite(t *testing.T) {
	g := NewWithT(t)
	s := NewStore("")
	old, young := testModule("old", "team-a", "network", "aws"), testModule("young", "Team-A", "Network", "aws")
	young.CreationTimestamp = metav1.NewTime(old.CreationTimestamp.Add(time.Hour))
	s.upsert(young)
	first := s.contentOf("ns")
	g.Expect(first.modules["team-a/network/aws"]).To(BeIdenticalTo(young))
	s.upsert(old)
	second := s.contentOf("ns")
	g.Expect(second.modules["team-a/network/aws"]).To(BeIdenticalTo(old))
	g.Expect(first.modules["team-a/network/aws"]).To(BeIdenticalTo(young), "the earlier snapshot is unchanged")

	// The oldest moves to another address: the younger serves the old one again.
	moved := old.DeepCopy()
	moved.Spec.Name = "dns"
	s.upsert(moved)
	c := s.contentOf("ns")
	g.Expect(c.modules).To(HaveLen(2))
	g.Expect(c.modules["team-a/network/aws"]).To(BeIdenticalTo(young))
	g.Expect(c.modules["team-a/dns/aws"]).To(BeIdenticalTo(moved))
	g.Expect(second.modules).To(HaveLen(1))

	// Bindings stay sorted by name through adds, updates and removals.
	for _, name := range []string{"m", "c", "x", "a"} {
		s.upsert(testBinding(name, `true`, []string{"*"}, nil))
	}
	names := func() []string {
		var out []string
		for _, b := range s.contentOf("ns").bindings {
			out = append(out, b.name)
		}
		return out
	}
	g.Expect(names()).To(Equal([]string{"a", "c", "m", "x"}))
	before := s.contentOf("ns").bindings
	s.remove(testBinding("c", "", nil, nil))
	g.Expect(names()).To(Equal([]string{"a", "m", "x"}))
	g.Expect(before).To(HaveLen(4), "the earlier snapshot is unchanged")
	// A status update (same generation) reuses the compiled binding.
	b := s.contentOf("ns").bindings[1]
	s.upsert(testBinding("m", `true`, []string{"*"}, nil))
	g.Expect(s.contentOf("ns").bindings[1]).To(BeIdenticalTo(b))

	// Everything gone: no content.
	for _, name := range []string{"a", "m", "x"} {
		s.remove(testBinding(name, "", nil, nil))
	}
	s.remove(young)
	s.remove(moved)
	g.Expect(s.contentOf("ns")).To(BeNil())
}

// TestRequestDeadlineContext: the request's context is done at the deadline or with the
// request's own context, whether or not anything waited on Done.
func TestRequestDeadlineContext(t *testing.T) {
	g := NewWithT(t)
	past := &requestDeadline{Context: context.Background(), deadline: time.Now().Add(-time.Millisecond)}
	g.Expect(past.Err()).To(MatchError(context.DeadlineExceeded), "without a timer")
	g.Expect(past.Done()).To(BeClosed())
	g.Expect(past.Err()).To(MatchError(context.DeadlineExceeded), "with the timer")
	past.stop()

	parent, cancel := context.WithTimeout(context.Background(), time.Minute)
	future := &requestDeadline{Context: parent, deadline: time.Now().Add(time.Hour)}
	d, ok := future.Deadline()
	g.Expect(ok).To(BeTrue())
	g.Expect(d).To(BeTemporally("~", time.Now().Add(time.Minute), time.Second), "the earlier deadline")
	g.Expect(future.Err()).NotTo(HaveOccurred())
	cancel()
	g.Expect(future.Err()).To(MatchError(context.Canceled))
	g.Expect(future.Done()).To(BeClosed())
	future.stop()

	soon := &requestDeadline{Context: context.Background(), deadline: time.Now().Add(50 * time.Millisecond)}
	defer soon.stop()
	g.Expect(soon.Done()).NotTo(BeClosed())
	g.Eventually(soon.Done(), time.Second).Should(BeClosed())
	g.Expect(soon.Err()).To(MatchError(context.DeadlineExceeded))
}

// BenchmarkAuthorisedRequest: one authorised request with a cached token through the whole
// handler (the bounds of this file are on its path):
//
//	go test ./internal/registry/ -run '^$' -bench BenchmarkAuthorisedRequest
func BenchmarkAuthorisedRequest(b *testing.B) {
	fx := newHandlerFixture(b, Options{})
	fx.store.upsert(testModule("network", "team-a", "network", "aws"))
	fx.store.upsert(testBinding("members", `"team-a" in groups`, []string{"team-a/*"}, nil))
	req := httptest.NewRequest(http.MethodGet, "/v1/modules/team-a/network/aws/versions", nil)
	req.Host = "registry.test"
	req.Header.Set("Authorization", "Bearer "+fx.token(b, "team-a"))
	h := fx.server.Handler()
	b.ReportAllocs()
	for b.Loop() {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != http.StatusOK {
			b.Fatalf("%d %s", rec.Code, rec.Body.String())
		}
	}
}
