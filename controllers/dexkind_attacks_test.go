package controllers_test

import (
	"context"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	dexv1 "dexterity.dev/dexterity/api/v1alpha1"
)

// Attacks on and through the Dex kind found by the hostile review (tenant isolation, round
// two); each failed before its fix.

// grantDexKind lets user create Dex objects in ns (a team that runs its own Dex: the Dex kind is
// meant for platform teams "that do not run Dex yet").
func grantDexKind(t *testing.T, ns, user string) {
	t.Helper()
	g := NewWithT(t)
	ctx := context.Background()
	role := &rbacv1.Role{
		ObjectMeta: metav1.ObjectMeta{Name: "dex-owner", Namespace: ns},
		Rules:      []rbacv1.PolicyRule{{APIGroups: []string{"dexterity.dev"}, Resources: []string{"dexes"}, Verbs: []string{"get", "list", "watch", "create", "update", "patch", "delete"}}},
	}
	g.Expect(k8s.Create(ctx, role)).To(Succeed())
	rb := &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "dex-owner", Namespace: ns},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: role.Name},
		Subjects:   []rbacv1.Subject{{APIGroup: rbacv1.GroupName, Kind: rbacv1.UserKind, Name: user}},
	}
	g.Expect(k8s.Create(ctx, rb)).To(Succeed())
}

// TestDexOfAnotherNamespaceWithTheSameIssuerBypassesNoReservedAudience: whoever may write a Dex in its own
// namespace B creates one whose spec.issuer is the issuer of another namespace's Dex (A) and
// whose registryClientId is A's registry audience. The OIDCProvider the Dex controller creates in
// B then "is the same Dex" as A's provider for tenancy.SameDexAs (same issuer string), so
// tenancy.CheckReservedAudience finds a holder of the audience in B's own namespace and lets B
// register A's registry audience in A's Dex. A's provider then reports AudienceHeldElsewhere and
// its registry refuses every token (401) until the platform team of A finds and deletes it.
// Nothing checks that B's Dex actually serves that issuer; the Dex need not even run (replicas 0).
func TestDexOfAnotherNamespaceWithTheSameIssuerBypassesNoReservedAudience(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	dapi := dexAPI(t, plainDex)

	// A: the production Dex (plainDex), shared with every namespace; its registry audience aud.
	nsA := newNamespace(t)
	aud := "registry-" + nsA
	provA := &dexv1.OIDCProvider{
		ObjectMeta: metav1.ObjectMeta{Name: "dex", Namespace: nsA},
		Spec: dexv1.OIDCProviderSpec{IssuerURL: plainDex.IssuerURL(), ClientID: aud, Dex: &dexv1.DexAdminSpec{
			GRPCAddress: plainDex.GRPCAddress(), Insecure: true,
			AllowedNamespaces: &dexv1.AllowedNamespaces{From: dexv1.NamespacesFromAll},
		}},
	}
	g.Expect(k8s.Create(ctx, provA)).To(Succeed())
	keyA := client.ObjectKeyFromObject(provA)
	g.Eventually(providerCondition(keyA, dexv1.ConditionReady), waitTimeout).Should(readyTrue())

	// B: a team with edit in its namespace, and the right to run its own Dex there.
	nsB, user, mallory := tenantUser(t)
	grantDexKind(t, nsB, user)

	// Control: the reservation works while B has no Dex of that issuer.
	phish := &dexv1.DexStaticClient{
		ObjectMeta: metav1.ObjectMeta{Name: "phish", Namespace: nsB},
		Spec: dexv1.DexStaticClientSpec{ProviderRef: dexv1.ObjectRef{Name: "dex", Namespace: nsA}, ClientID: aud,
			Public: true, RedirectURIs: []string{"https://mallory.example.com/cb"}},
	}
	g.Expect(mallory.Create(ctx, phish)).To(Succeed())
	t.Cleanup(func() { _ = k8s.Delete(context.Background(), phish) })
	g.Eventually(clientCondition(client.ObjectKeyFromObject(phish), dexv1.ConditionReady), waitTimeout).Should(reason(dexv1.ReasonClientIDReserved))

	// The attack: a Dex in B claiming A's issuer and A's audience. It never runs.
	d := &dexv1.Dex{
		ObjectMeta: metav1.ObjectMeta{Name: "dex", Namespace: nsB},
		Spec: dexv1.DexSpec{Issuer: plainDex.IssuerURL(), RegistryClientID: aud, Replicas: ptr.To[int32](0),
			Storage: &dexv1.DexStorage{Type: dexv1.DexStorageMemory}},
	}
	g.Expect(mallory.Create(ctx, d)).To(Succeed(), "B may create a Dex in its own namespace")
	t.Cleanup(func() { _ = k8s.Delete(context.Background(), d) })
	g.Eventually(func() error {
		return k8s.Get(ctx, types.NamespacedName{Namespace: nsB, Name: "dex"}, &dexv1.OIDCProvider{})
	}, waitTimeout).Should(Succeed(), "the Dex controller creates B's OIDCProvider with A's issuer and audience")

	// Secure behaviour: B's client stays refused, A's audience never reaches Dex from B, and A's
	// registry keeps accepting its tokens.
	g.Consistently(clientCondition(client.ObjectKeyFromObject(phish), dexv1.ConditionReady), 3*resyncPeriod, 250*time.Millisecond).
		Should(reason(dexv1.ReasonClientIDReserved), "a Dex in B claiming A's issuer must not make A's registry audience B's")
	g.Expect(dexClient(dapi, aud)(g)).To(BeNil(), "A's registry audience was registered in A's Dex from namespace B")
	g.Consistently(providerCondition(keyA, dexv1.ConditionReady), 2*resyncPeriod, 250*time.Millisecond).
		ShouldNot(reason(dexv1.ReasonAudienceHeldElsewhere), "A's registry refuses all its tokens because of namespace B")
}

// TestDexNameThatCannotNameAServiceIsRefused: a Dex's name becomes a Service name (a DNS-1035
// label: at most 63 characters, no dots) and a label value (at most 63 characters), but the CRD
// admits any DNS subdomain. Such a Dex is admitted, renders half of its objects and then retries
// an API error forever (ConfigValid Unknown, Reconciling), instead of being refused at admission
// or stalled with a reason naming metadata.name.
func TestDexNameThatCannotNameAServiceIsRefused(t *testing.T) {
	ns := newNamespace(t)
	for _, name := range []string{"dex.v2", "d" + strings.Repeat("x", 70)} {
		t.Run(name[:6], func(t *testing.T) {
			g := NewWithT(t)
			d := &dexv1.Dex{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}, Spec: dexv1.DexSpec{
				Issuer: "http://dex." + ns + ".svc:5556/dex", Storage: &dexv1.DexStorage{Type: dexv1.DexStorageMemory},
			}}
			err := k8s.Create(context.Background(), d)
			if apierrors.IsInvalid(err) {
				return // refused at admission: fine
			}
			g.Expect(err).NotTo(HaveOccurred())
			t.Cleanup(func() { _ = k8s.Delete(context.Background(), d) })
			g.Eventually(dexCondition(client.ObjectKeyFromObject(d), dexv1.ConditionStalled), 15*time.Second).
				Should(HaveField("Status", metav1.ConditionTrue), "an unusable name must stall the Dex with a reason, not retry forever")
		})
	}
}

// TestDexClientIDPrefixIsBounded: spec.clientIdPrefix of a Dex has no MaxLength, while the
// OIDCProvider field it is copied to has MaxLength 253. A Dex with a longer prefix is admitted,
// then its OIDCProvider can never be created: the Dex retries an API error forever.
func TestDexClientIDPrefixIsBounded(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	d := &dexv1.Dex{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "dex"}, Spec: dexv1.DexSpec{
		Issuer: "http://dex." + ns + ".svc:5556/dex", Storage: &dexv1.DexStorage{Type: dexv1.DexStorageMemory},
		ClientIDPrefix: "{namespace}-" + strings.Repeat("p", 300),
	}}
	err := k8s.Create(context.Background(), d)
	if apierrors.IsInvalid(err) {
		return
	}
	g.Expect(err).NotTo(HaveOccurred())
	t.Cleanup(func() { _ = k8s.Delete(context.Background(), d) })
	g.Eventually(dexCondition(client.ObjectKeyFromObject(d), dexv1.ConditionStalled), 15*time.Second).
		Should(HaveField("Status", metav1.ConditionTrue), "a prefix the OIDCProvider cannot hold must be refused or stall the Dex")
}

// TestDexKeepsProviderFieldsItDoesNotOwn: docs/dex.md says the Dex controller keeps only
// issuerUrl, discoveryUrl, clientId and spec.dex's address, certificate and tenancy policy of the
// OIDCProvider it creates, and that any other field set on the provider "stays". But it replaces
// spec.dex as a whole, so spec.dex.clientIdentityNamespaces (not a Dex field) set by the platform
// team is reset to the default (Same) by the next change of the Dex.
func TestDexKeepsProviderFieldsItDoesNotOwn(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ns := newNamespace(t)
	d := &dexv1.Dex{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "dex"}, Spec: dexv1.DexSpec{
		Issuer: "http://dex." + ns + ".svc:5556/dex", Storage: &dexv1.DexStorage{Type: dexv1.DexStorageMemory},
	}}
	g.Expect(k8s.Create(ctx, d)).To(Succeed())
	t.Cleanup(func() { _ = k8s.Delete(context.Background(), d) })
	key := types.NamespacedName{Namespace: ns, Name: "dex"}
	p := &dexv1.OIDCProvider{}
	g.Eventually(func() error { return k8s.Get(ctx, key, p) }, waitTimeout).Should(Succeed())

	orig := p.DeepCopy()
	p.Spec.Dex.ClientIdentityNamespaces = &dexv1.AllowedNamespaces{From: dexv1.NamespacesFromAll}
	g.Expect(k8s.Patch(ctx, p, client.MergeFrom(orig))).To(Succeed())
	g.Consistently(func(g Gomega) dexv1.NamespacesFrom {
		got := &dexv1.OIDCProvider{}
		g.Expect(k8s.Get(ctx, key, got)).To(Succeed())
		return got.Spec.Dex.ClientIdentityNamespaces.From
	}, resyncPeriod, 250*time.Millisecond).Should(Equal(dexv1.NamespacesFromAll), "control: the platform team's setting holds while the Dex does not change")

	g.Expect(k8s.Get(ctx, client.ObjectKeyFromObject(d), d)).To(Succeed())
	origDex := d.DeepCopy()
	d.Spec.ClientIDPrefix = "{namespace}-" // a field the Dex does own
	g.Expect(k8s.Patch(ctx, d, client.MergeFrom(origDex))).To(Succeed())
	g.Eventually(dexCondition(client.ObjectKeyFromObject(d), dexv1.ConditionConfigValid), waitTimeout).Should(HaveField("Status", metav1.ConditionTrue))

	g.Consistently(func(g Gomega) dexv1.NamespacesFrom {
		got := &dexv1.OIDCProvider{}
		g.Expect(k8s.Get(ctx, key, got)).To(Succeed())
		g.Expect(got.Spec.Dex.ClientIdentityNamespaces).NotTo(BeNil())
		return got.Spec.Dex.ClientIdentityNamespaces.From
	}, 2*resyncPeriod, 250*time.Millisecond).Should(Equal(dexv1.NamespacesFromAll), "a field the Dex does not own must stay as the platform team set it")
}
