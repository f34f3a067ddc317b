package controllers_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	claimsv1 "dexterity.dev/dexterity/api/claims/v1alpha1"
	dexv1 "dexterity.dev/dexterity/api/v1alpha1"
	"dexterity.dev/dexterity/internal/tenancy"
)

// Tenant isolation, round two: attacks of a tenant with edit in its own namespace that worked
// before, each through the API server against the real Dex.

// Audience squatting: mallory registers a public client whose id is another team's registry
// audience (its OIDCProvider's clientId), with her own redirect URI. A token obtained through it
// would be accepted by that team's registry. It must never reach Dex, and the team's own client
// for that id must register.
func TestTenantCannotSquatAnotherTeamsAudience(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	dapi := dexAPI(t, plainDex)
	// The shared Dex, open to every namespace.
	sharedNS := providerFor(t, plainDex, func(d *dexv1.DexAdminSpec) {
		d.AllowedNamespaces = &dexv1.AllowedNamespaces{From: dexv1.NamespacesFromAll}
	})
	shared := dexv1.ObjectRef{Name: "dex", Namespace: sharedNS}
	// Team A's registry provider: its audience is the id aud.
	teamNS := newNamespace(t)
	aud := "registry-" + teamNS
	registry := &dexv1.OIDCProvider{
		ObjectMeta: metav1.ObjectMeta{Name: "registry", Namespace: teamNS},
		Spec:       dexv1.OIDCProviderSpec{IssuerURL: plainDex.IssuerURL(), ClientID: aud},
	}
	g.Expect(k8s.Create(ctx, registry)).To(Succeed())

	malloryNS, mallory := tenant(t)
	squat := &dexv1.DexStaticClient{
		ObjectMeta: metav1.ObjectMeta{Name: "phish", Namespace: malloryNS},
		Spec:       dexv1.DexStaticClientSpec{ProviderRef: shared, ClientID: aud, Public: true, RedirectURIs: []string{"https://mallory.example.com/cb"}},
	}
	g.Expect(mallory.Create(ctx, squat)).To(Succeed())
	g.Eventually(clientCondition(client.ObjectKeyFromObject(squat), dexv1.ConditionReady), waitTimeout).Should(And(
		reason(dexv1.ReasonClientIDReserved),
		HaveField("Message", ContainSubstring(teamNS+"/registry")),
	))
	g.Consistently(dexClient(dapi, aud), 2*resyncPeriod, 250*time.Millisecond).Should(BeNil(), "the squatter's client never reaches Dex")

	// The team's own client for its audience registers (it is not refused as a duplicate).
	own := &dexv1.DexStaticClient{
		ObjectMeta: metav1.ObjectMeta{Name: "registry", Namespace: teamNS},
		Spec:       dexv1.DexStaticClientSpec{ProviderRef: shared, ClientID: aud, Public: true, RedirectURIs: []string{"https://registry.example.com/cb"}},
	}
	// The shared provider admits every namespace, team A's included.
	g.Expect(k8s.Create(ctx, own)).To(Succeed())
	g.Eventually(clientCondition(client.ObjectKeyFromObject(own), dexv1.ConditionReady), waitTimeout).Should(readyTrue())
	g.Eventually(dexClient(dapi, aud), waitTimeout).Should(HaveField("RedirectUris", ConsistOf("https://registry.example.com/cb")))
	g.Expect(k8s.Delete(ctx, own)).To(Succeed())
	goneEventually(g, own)
}

// A client registered before a provider named its id as audience keeps its registration (nothing
// a tenant registered is taken away), and the provider says its audience is held elsewhere.
func TestProviderReportsAudienceHeldElsewhere(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	sharedNS := providerFor(t, plainDex, func(d *dexv1.DexAdminSpec) {
		d.AllowedNamespaces = &dexv1.AllowedNamespaces{From: dexv1.NamespacesFromAll}
	})
	malloryNS, mallory := tenant(t)
	aud := "early-" + malloryNS
	first := &dexv1.DexStaticClient{
		ObjectMeta: metav1.ObjectMeta{Name: "first", Namespace: malloryNS},
		Spec:       dexv1.DexStaticClientSpec{ProviderRef: dexv1.ObjectRef{Name: "dex", Namespace: sharedNS}, ClientID: aud, Public: true, RedirectURIs: []string{"https://m.example.com/cb"}},
	}
	g.Expect(mallory.Create(ctx, first)).To(Succeed())
	g.Eventually(clientCondition(client.ObjectKeyFromObject(first), dexv1.ConditionReady), waitTimeout).Should(readyTrue())

	teamNS := newNamespace(t)
	registry := &dexv1.OIDCProvider{
		ObjectMeta: metav1.ObjectMeta{Name: "registry", Namespace: teamNS},
		Spec:       dexv1.OIDCProviderSpec{IssuerURL: plainDex.IssuerURL(), ClientID: aud},
	}
	g.Expect(k8s.Create(ctx, registry)).To(Succeed())
	key := client.ObjectKeyFromObject(registry)
	g.Eventually(providerCondition(key, dexv1.ConditionReady), waitTimeout).Should(And(
		reason(dexv1.ReasonAudienceHeldElsewhere),
		HaveField("Message", ContainSubstring(malloryNS+"/first")),
	))
	g.Consistently(clientCondition(client.ObjectKeyFromObject(first), dexv1.ConditionReady), resyncPeriod+time.Second, 250*time.Millisecond).Should(readyTrue(), "the earlier registration is kept")

	// Once the squatter is gone, the provider recovers.
	g.Expect(mallory.Delete(ctx, first)).To(Succeed())
	goneEventually(g, first)
	g.Eventually(providerCondition(key, dexv1.ConditionReady), waitTimeout).ShouldNot(reason(dexv1.ReasonAudienceHeldElsewhere))
}

// Prefix bypass: with clientIdPrefix "{namespace}-", namespace X may not register X-b-... ids
// when namespace X-b exists: the longest namespace name decides whom an id belongs to.
func TestPrefixPolicyLongestNamespaceOwnsTheID(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	dapi := dexAPI(t, plainDex)
	provNS := providerFor(t, plainDex, func(d *dexv1.DexAdminSpec) {
		d.AllowedNamespaces = &dexv1.AllowedNamespaces{From: dexv1.NamespacesFromAll}
		d.ClientIDPrefix = "{namespace}-"
	})
	ref := dexv1.ObjectRef{Name: "dex", Namespace: provNS}
	short, attacker := tenant(t) // e.g. t-abcde
	long := short + "-b"         // t-abcde-b: another team
	g.Expect(k8s.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: long}})).To(Succeed())
	id := long + "-portal"

	a := &dexv1.DexStaticClient{
		ObjectMeta: metav1.ObjectMeta{Name: "portal", Namespace: short},
		Spec:       dexv1.DexStaticClientSpec{ProviderRef: ref, ClientID: id, Public: true, RedirectURIs: []string{"https://evil.example.com/cb"}},
	}
	g.Expect(attacker.Create(ctx, a)).To(Succeed())
	g.Eventually(clientCondition(client.ObjectKeyFromObject(a), dexv1.ConditionReady), waitTimeout).Should(And(
		reason(dexv1.ReasonClientIDPrefixMismatch),
		HaveField("Message", ContainSubstring("belongs to namespace "+long)),
	))
	g.Consistently(dexClient(dapi, id), 2*resyncPeriod, 250*time.Millisecond).Should(BeNil())

	// The namespace the id belongs to registers it.
	b := &dexv1.DexStaticClient{
		ObjectMeta: metav1.ObjectMeta{Name: "portal", Namespace: long},
		Spec:       dexv1.DexStaticClientSpec{ProviderRef: ref, ClientID: id, Public: true, RedirectURIs: []string{"https://b.example.com/cb"}},
	}
	g.Expect(k8s.Create(ctx, b)).To(Succeed())
	g.Eventually(clientCondition(client.ObjectKeyFromObject(b), dexv1.ConditionReady), waitTimeout).Should(readyTrue())
	g.Eventually(dexClient(dapi, id), waitTimeout).Should(HaveField("RedirectUris", ConsistOf("https://b.example.com/cb")))

	// Its own ids still work for the shorter namespace.
	ok := &dexv1.DexStaticClient{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: short},
		Spec:       dexv1.DexStaticClientSpec{ProviderRef: ref, Public: true, RedirectURIs: []string{"https://a.example.com/cb"}},
	}
	g.Expect(attacker.Create(ctx, ok)).To(Succeed())
	g.Eventually(clientCondition(client.ObjectKeyFromObject(ok), dexv1.ConditionReady), waitTimeout).Should(readyTrue())
}

// Registry hosts, first come, first served, exactly: a provider created in the same second as the
// holder, in a namespace and under a name that sort first, does not take the host (creation
// timestamps have whole seconds; the claim, created once, decides).
func TestHostnameClaimDecidesWithinOneSecond(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	suffix := fmt.Sprintf("%d", time.Now().UnixNano()%1000000)
	mkNS := func(name string) string {
		g.Expect(k8s.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}})).To(Succeed())
		return name
	}
	teamNS, malloryNS := mkNS("zz-team-b-"+suffix), mkNS("aa-mallory-"+suffix)

	// The race needs both providers created in one second: start at the beginning of a second,
	// and try again (another host, new providers) if the API server crossed a second meanwhile.
	var host string
	var holder client.ObjectKey
	var claimKey client.ObjectKey
	var squatter *dexv1.OIDCProvider
	var h, s *dexv1.OIDCProvider
	var spec dexv1.OIDCProviderSpec
	for attempt := range 5 {
		host = fmt.Sprintf("registry-%d-%d.example.com", time.Now().UnixNano(), attempt)
		spec = dexv1.OIDCProviderSpec{IssuerURL: plainDex.IssuerURL(), ClientID: "registry-hosts", Hostnames: []string{host}}
		next := time.Now().Truncate(time.Second).Add(time.Second)
		g.Eventually(func() bool { return time.Now().After(next) }, 2*time.Second, 5*time.Millisecond).Should(BeTrue())
		hp := &dexv1.OIDCProvider{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("issuer-%d", attempt), Namespace: teamNS}, Spec: spec}
		g.Expect(k8s.Create(ctx, hp)).To(Succeed())
		holder = client.ObjectKeyFromObject(hp)
		claimKey = client.ObjectKey{Name: tenancy.HostnameClaimName(host)}
		g.Eventually(func(g Gomega) string {
			cl := &claimsv1.HostnameClaim{}
			g.Expect(k8s.Get(ctx, claimKey, cl)).To(Succeed())
			return cl.Spec.Provider.Namespace
		}, waitTimeout, 5*time.Millisecond).Should(Equal(teamNS))
		squatter = &dexv1.OIDCProvider{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("aaa-registry-%d", attempt), Namespace: malloryNS}, Spec: spec}
		g.Expect(k8s.Create(ctx, squatter)).To(Succeed())
		h, s = getProvider(t, holder), getProvider(t, client.ObjectKeyFromObject(squatter))
		if h.CreationTimestamp.Equal(&s.CreationTimestamp) {
			break
		}
		g.Expect(k8s.Delete(ctx, squatter)).To(Succeed())
		g.Expect(k8s.Delete(ctx, hp)).To(Succeed())
	}
	g.Expect(h.CreationTimestamp.Equal(&s.CreationTimestamp)).To(BeTrue(), "the providers were never created in one second in 5 attempts")

	g.Eventually(providerCondition(client.ObjectKeyFromObject(squatter), dexv1.ConditionReady), waitTimeout).Should(And(
		reason(dexv1.ReasonHostnameConflict),
		HaveField("Message", ContainSubstring(holder.String())),
	))
	g.Consistently(providerCondition(holder, dexv1.ConditionReady), 2*time.Second, 200*time.Millisecond).ShouldNot(reason(dexv1.ReasonHostnameConflict))
	cl := &claimsv1.HostnameClaim{}
	g.Expect(k8s.Get(ctx, claimKey, cl)).To(Succeed())
	g.Expect(cl.Spec.Provider.UID).To(Equal(h.UID))

	// The holder lets go (drops the host): the squatter's turn comes, through the claim.
	orig := h.DeepCopy()
	h.Spec.Hostnames = nil
	g.Expect(k8s.Patch(ctx, h, client.MergeFrom(orig))).To(Succeed())
	g.Eventually(func(g Gomega) types.UID {
		cl := &claimsv1.HostnameClaim{}
		g.Expect(k8s.Get(ctx, claimKey, cl)).To(Succeed())
		return cl.Spec.Provider.UID
	}, waitTimeout).Should(Equal(s.UID))
	g.Eventually(providerCondition(client.ObjectKeyFromObject(squatter), dexv1.ConditionReady), waitTimeout).ShouldNot(reason(dexv1.ReasonHostnameConflict))

	// Deleting the provider releases its host claim.
	g.Expect(k8s.Delete(ctx, squatter)).To(Succeed())
	g.Eventually(func() bool {
		return apierrors.IsNotFound(k8s.Get(ctx, claimKey, &claimsv1.HostnameClaim{}))
	}, waitTimeout).Should(BeTrue())
}
