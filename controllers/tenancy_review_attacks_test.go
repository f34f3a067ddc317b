package controllers_test

import (
	"context"
	"net"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	dexv1 "dexterity.dev/dexterity/api/v1alpha1"
	"dexterity.dev/dexterity/test/harness"
)

// Attacks found by the hostile review of the tenant surface (tenant isolation, round two), each
// through the API server against the real Dex; each failed before its fix.

// Future-namespace squatting under clientIdPrefix "{namespace}-": namespace X registers
// "X-b-portal" while namespace X-b does not exist yet (the longest-namespace rule finds no owner),
// then X-b is created. The id belongs to X-b from then on, but X keeps its claim and its client in
// Dex (its redirect URI, its secret): X-b's own client for its own id is refused as a conflict,
// forever.
func TestFutureNamespaceTakesItsIDBack(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	dapi := dexAPI(t, plainDex)
	provNS := providerFor(t, plainDex, func(d *dexv1.DexAdminSpec) {
		d.AllowedNamespaces = &dexv1.AllowedNamespaces{From: dexv1.NamespacesFromAll}
		d.ClientIDPrefix = "{namespace}-"
	})
	ref := dexv1.ObjectRef{Name: "dex", Namespace: provNS}
	short, mallory := tenant(t)
	long := short + "-b" // does not exist yet
	id := long + "-portal"

	squat := &dexv1.DexStaticClient{
		ObjectMeta: metav1.ObjectMeta{Name: "b-portal", Namespace: short}, // default id: <short>-b-portal
		Spec:       dexv1.DexStaticClientSpec{ProviderRef: ref, Public: true, RedirectURIs: []string{"https://mallory.example.com/cb"}},
	}
	g.Expect(squat.EffectiveClientID()).To(Equal(id))
	g.Expect(mallory.Create(ctx, squat)).To(Succeed())
	g.Eventually(clientCondition(client.ObjectKeyFromObject(squat), dexv1.ConditionReady), waitTimeout).Should(readyTrue())
	g.Eventually(dexClient(dapi, id), waitTimeout).ShouldNot(BeNil())

	// The platform creates team b's namespace; team b registers its own id.
	g.Expect(k8s.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: long}})).To(Succeed())
	own := &dexv1.DexStaticClient{
		ObjectMeta: metav1.ObjectMeta{Name: "portal", Namespace: long},
		Spec:       dexv1.DexStaticClientSpec{ProviderRef: ref, Public: true, RedirectURIs: []string{"https://b.example.com/cb"}},
	}
	g.Expect(k8s.Create(ctx, own)).To(Succeed())
	g.Eventually(clientCondition(client.ObjectKeyFromObject(own), dexv1.ConditionReady), waitTimeout).Should(HaveField("Reason", Not(BeEmpty())))
	t.Logf("team b's client: %+v", clientCondition(client.ObjectKeyFromObject(own), dexv1.ConditionReady)(g))
	g.Eventually(clientCondition(client.ObjectKeyFromObject(own), dexv1.ConditionReady), waitTimeout).Should(readyTrue(),
		"team b registers the id that belongs to its namespace")
	g.Eventually(dexClient(dapi, id), waitTimeout).Should(HaveField("RedirectUris", ConsistOf("https://b.example.com/cb")),
		"mallory's redirect URI is no longer registered under team b's id")
}

// A finalizer deletes through the provider's current Dex, not the Dex its claim was made in:
// mallory's client is registered in Dex C through provider P; her delete is retried while Dex C is
// down; the platform re-points P at Dex B (a migration). The retry deletes the id from Dex B,
// where another tenant's client holds it (its claim names Dex B, not mallory).
func TestFinalizerDeletesOnlyInTheClaimsDex(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	dexC, err := harness.StartDex(harness.DexOptions{Dir: t.TempDir()})
	g.Expect(err).NotTo(HaveOccurred())
	t.Cleanup(func() { _ = dexC.Stop() })
	dapiB := dexAPI(t, plainDex)
	all := func(d *dexv1.DexAdminSpec) {
		d.AllowedNamespaces = &dexv1.AllowedNamespaces{From: dexv1.NamespacesFromAll}
	}
	pNS := providerFor(t, dexC, all)     // P: Dex C
	qNS := providerFor(t, plainDex, all) // Q: Dex B (plainDex)

	victimNS, victim := tenant(t)
	malloryNS, mallory := tenant(t)
	id := "shared-" + victimNS
	v := &dexv1.DexStaticClient{
		ObjectMeta: metav1.ObjectMeta{Name: "app", Namespace: victimNS},
		Spec:       dexv1.DexStaticClientSpec{ProviderRef: dexv1.ObjectRef{Name: "dex", Namespace: qNS}, ClientID: id, Public: true, DisplayName: "victim", RedirectURIs: []string{"https://v.example.com/cb"}},
	}
	g.Expect(victim.Create(ctx, v)).To(Succeed())
	g.Eventually(clientCondition(client.ObjectKeyFromObject(v), dexv1.ConditionReady), waitTimeout).Should(readyTrue())

	m := &dexv1.DexStaticClient{
		ObjectMeta: metav1.ObjectMeta{Name: "app", Namespace: malloryNS},
		Spec:       dexv1.DexStaticClientSpec{ProviderRef: dexv1.ObjectRef{Name: "dex", Namespace: pNS}, ClientID: id, Public: true, RedirectURIs: []string{"https://m.example.com/cb"}},
	}
	g.Expect(mallory.Create(ctx, m)).To(Succeed())
	g.Eventually(clientCondition(client.ObjectKeyFromObject(m), dexv1.ConditionReady), waitTimeout).Should(readyTrue(), "another Dex: no conflict")

	// Dex C goes down; mallory deletes her client: the finalizer retries.
	g.Expect(dexC.Stop()).To(Succeed())
	g.Expect(mallory.Delete(ctx, m)).To(Succeed())
	g.Eventually(clientCondition(client.ObjectKeyFromObject(m), dexv1.ConditionRegistered), waitTimeout).Should(reason(dexv1.ReasonDexUnavailable))

	// The platform moves P to Dex B.
	p := &dexv1.OIDCProvider{}
	g.Expect(k8s.Get(ctx, client.ObjectKey{Namespace: pNS, Name: "dex"}, p)).To(Succeed())
	orig := p.DeepCopy()
	p.Spec.IssuerURL = plainDex.IssuerURL()
	p.Spec.Dex.GRPCAddress = plainDex.GRPCAddress()
	g.Expect(k8s.Patch(ctx, p, client.MergeFrom(orig))).To(Succeed())

	// The victim's client must never leave Dex B (polled fast: its own drift repair puts it back
	// at its next resync, so the gap is short in this suite and up to 10 minutes by default).
	g.Consistently(dexClient(dapiB, id), 2*resyncPeriod, 5*time.Millisecond).ShouldNot(BeNil(),
		"mallory's finalizer deleted the victim's client from Dex B")
}

// Two providers that reach one Dex under two spellings of its address (here 127.0.0.1:port and
// localhost:port; in a cluster, say, dex.dex.svc:5557 and dex.dex.svc.cluster.local:5557, or a
// Dex object's provider next to a hand-written one) are two Dexes to the claims: mallory, with
// adoptExisting, takes over the victim's client through the other spelling and writes her redirect
// URI into it; deleting her object then deletes the victim's client.
func TestAddressAliasCannotAdoptAnotherTenantsClient(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	dapi := dexAPI(t, plainDex)
	all := func(d *dexv1.DexAdminSpec) {
		d.AllowedNamespaces = &dexv1.AllowedNamespaces{From: dexv1.NamespacesFromAll}
	}
	aNS := providerFor(t, plainDex, all)
	_, port, err := net.SplitHostPort(plainDex.GRPCAddress())
	g.Expect(err).NotTo(HaveOccurred())
	bNS := providerFor(t, plainDex, func(d *dexv1.DexAdminSpec) {
		all(d)
		d.GRPCAddress = net.JoinHostPort("localhost", port)
	})
	g.Expect(plainDex.GRPCAddress()).NotTo(HavePrefix("localhost:"))

	victimNS, victim := tenant(t)
	v := &dexv1.DexStaticClient{
		ObjectMeta: metav1.ObjectMeta{Name: "app", Namespace: victimNS},
		Spec:       dexv1.DexStaticClientSpec{ProviderRef: dexv1.ObjectRef{Name: "dex", Namespace: aNS}, Public: true, RedirectURIs: []string{"https://v.example.com/cb"}},
	}
	g.Expect(victim.Create(ctx, v)).To(Succeed())
	g.Eventually(clientCondition(client.ObjectKeyFromObject(v), dexv1.ConditionReady), waitTimeout).Should(readyTrue())
	id := v.EffectiveClientID()

	malloryNS, mallory := tenant(t)
	m := &dexv1.DexStaticClient{
		ObjectMeta: metav1.ObjectMeta{Name: "grab", Namespace: malloryNS},
		Spec: dexv1.DexStaticClientSpec{ProviderRef: dexv1.ObjectRef{Name: "dex", Namespace: bNS}, ClientID: id, AdoptExisting: true,
			Public: true, RedirectURIs: []string{"https://mallory.example.com/cb"}},
	}
	g.Expect(mallory.Create(ctx, m)).To(Succeed())
	g.Consistently(dexClient(dapi, id), 2*resyncPeriod, 5*time.Millisecond).Should(HaveField("RedirectUris", ConsistOf("https://v.example.com/cb")),
		"mallory adopted the victim's client through another spelling of the Dex's address")
}

// generateSecret with a Secret key the API server refuses ("bad key": keys are [-._a-zA-Z0-9]+;
// SecretKeyRef has no pattern) is no blocked problem: the reconcile fails and is retried with
// backoff (at most MaxRetryDelay, 30 s) forever, each time a Secret GET and a refused create, an
// ERROR log line, and the object reports Reconciling rather than Stalled.
func TestGenerateSecretKeyTheAPIServerRefusesIsRefusedAtAdmission(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	provNS := providerFor(t, plainDex, func(d *dexv1.DexAdminSpec) {
		d.AllowedNamespaces = &dexv1.AllowedNamespaces{From: dexv1.NamespacesFromAll}
	})
	ns, tc := tenant(t)
	c := &dexv1.DexStaticClient{
		ObjectMeta: metav1.ObjectMeta{Name: "loop", Namespace: ns},
		Spec: dexv1.DexStaticClientSpec{ProviderRef: dexv1.ObjectRef{Name: "dex", Namespace: provNS}, RedirectURIs: []string{"https://a.example.com/cb"},
			SecretRef: &dexv1.SecretKeyRef{Name: "gen", Key: "bad key"}, GenerateSecret: true},
	}
	err := tc.Create(ctx, c)
	g.Expect(err).To(HaveOccurred(), "a Secret key the API server would refuse never reaches the controller's retry loop")
	g.Expect(err.Error()).To(ContainSubstring("spec.secretRef.key"))
	c.Spec.SecretRef.Name = "Upper.Case"
	c.Spec.SecretRef.Key = "secret"
	err = tc.Create(ctx, c)
	g.Expect(err).To(HaveOccurred())
	g.Expect(err.Error()).To(ContainSubstring("spec.secretRef.name"))
}
