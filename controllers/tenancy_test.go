package controllers_test

import (
	"context"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	api "github.com/dexidp/dex/api/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	claimsv1 "dexterity.dev/dexterity/api/claims/v1alpha1"
	dexv1 "dexterity.dev/dexterity/api/v1alpha1"
	"dexterity.dev/dexterity/controllers"
	"dexterity.dev/dexterity/test/harness"
)

// Attacks of a tenant that holds the edit role in its own namespace only, through the API
// server, with its own objects. Each one changed another tenant's Dex entries before claims.

var tenantRolesOnce atomic.Bool

var tenants atomic.Int32

// tenant returns a new namespace and a client acting as a user with the edit role there (the
// tenant roles aggregated into edit, as in a cluster).
func tenant(t *testing.T) (string, client.Client) {
	ns, _, c := tenantUser(t)
	return ns, c
}

// tenantUser is tenant, also returning the user name.
func tenantUser(t *testing.T) (string, string, client.Client) {
	t.Helper()
	g := NewWithT(t)
	ctx := context.Background()
	if tenantRolesOnce.CompareAndSwap(false, true) {
		g.Expect(harness.InstallTenantRoles(ctx, k8s)).To(Succeed())
	}
	ns := newNamespace(t)
	user := fmt.Sprintf("tenant-%d", tenants.Add(1))
	tc, err := harness.TenantClient(ctx, k8s, restConfig, ns, user, "edit")
	g.Expect(err).NotTo(HaveOccurred())
	return ns, user, tc
}

func goneEventually(g Gomega, obj client.Object) {
	g.Eventually(func() bool {
		return apierrors.IsNotFound(k8s.Get(context.Background(), client.ObjectKeyFromObject(obj), obj.DeepCopyObject().(client.Object)))
	}, waitTimeout).Should(BeTrue())
}

func TestTenantRolesAllowClientsNotConnectors(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	provNS := providerFor(t, plainDex, nil)
	ns, tc := tenant(t)
	c := &dexv1.DexStaticClient{
		ObjectMeta: metav1.ObjectMeta{Name: "app", Namespace: ns},
		Spec:       dexv1.DexStaticClientSpec{ProviderRef: dexv1.ObjectRef{Name: "dex", Namespace: provNS}, Public: true, RedirectURIs: []string{"https://a.example.com/cb"}},
	}
	g.Expect(tc.Create(ctx, c)).To(Succeed(), "edit may create DexStaticClients")
	gb := &dexv1.GroupBinding{ObjectMeta: metav1.ObjectMeta{Name: "b", Namespace: ns}, Spec: dexv1.GroupBindingSpec{Expression: `"x" in groups`}}
	g.Expect(tc.Create(ctx, gb)).To(Succeed(), "edit may create GroupBindings")
	conn := newConnector(ns, "mock", "mock-"+ns, "mockCallback", "")
	conn.Spec.ProviderRef = dexv1.ObjectRef{Name: "dex", Namespace: provNS}
	g.Expect(apierrors.IsForbidden(tc.Create(ctx, conn))).To(BeTrue(), "edit may not create DexConnectors")
	p := &dexv1.OIDCProvider{ObjectMeta: metav1.ObjectMeta{Name: "mine", Namespace: ns}, Spec: dexv1.OIDCProviderSpec{IssuerURL: plainDex.IssuerURL(), ClientID: "x"}}
	g.Expect(apierrors.IsForbidden(tc.Create(ctx, p))).To(BeTrue(), "edit may not create OIDCProviders")
	cl := claimFor(c, plainDex.GRPCAddress(), "forged")
	g.Expect(apierrors.IsForbidden(tc.Create(ctx, cl))).To(BeTrue(), "edit may not create DexEntryClaims")
	orig := c.DeepCopy()
	c.Status.ClientID = "forged"
	g.Expect(apierrors.IsForbidden(tc.Status().Patch(ctx, c, client.MergeFrom(orig)))).To(BeTrue(), "edit may not write status")
}

// Attack 1: the legacy claim annotation set to another tenant's id on one's own object, at
// creation or later, then the object deleted: the other tenant's client must stay in Dex.
func TestTenantAnnotationCannotDeleteAnotherTenantsClient(t *testing.T) {
	ctx := context.Background()
	dapi := dexAPI(t, plainDex)
	provNS := providerFor(t, plainDex, func(d *dexv1.DexAdminSpec) {
		d.AllowedNamespaces = &dexv1.AllowedNamespaces{From: dexv1.NamespacesFromAll}
	})
	ref := dexv1.ObjectRef{Name: "dex", Namespace: provNS}
	victimNS, victim := tenant(t)
	attackerNS, attacker := tenant(t)

	v := &dexv1.DexStaticClient{
		ObjectMeta: metav1.ObjectMeta{Name: "app", Namespace: victimNS},
		Spec:       dexv1.DexStaticClientSpec{ProviderRef: ref, Public: true, DisplayName: "victim", RedirectURIs: []string{"https://v.example.com/cb"}},
	}
	NewWithT(t).Expect(victim.Create(ctx, v)).To(Succeed())
	victimID := v.EffectiveClientID()
	NewWithT(t).Eventually(clientCondition(client.ObjectKeyFromObject(v), dexv1.ConditionReady), waitTimeout).Should(readyTrue())

	for i, when := range []string{"set later", "set at creation"} {
		t.Run(when, func(t *testing.T) {
			g := NewWithT(t)
			a := &dexv1.DexStaticClient{
				ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("evil%d", i), Namespace: attackerNS},
				Spec:       dexv1.DexStaticClientSpec{ProviderRef: ref, Public: true, RedirectURIs: []string{"https://a.example.com/cb"}},
			}
			forged := map[string]string{controllers.LegacyAnnotationRegisteredClientID: victimID}
			if when == "set at creation" {
				a.Annotations = forged
				a.Finalizers = []string{controllers.ClientFinalizer}
			}
			g.Expect(attacker.Create(ctx, a)).To(Succeed())
			g.Eventually(clientCondition(client.ObjectKeyFromObject(a), dexv1.ConditionReady), waitTimeout).Should(readyTrue())
			if when == "set later" {
				orig := a.DeepCopy()
				a.Annotations = forged
				g.Expect(attacker.Patch(ctx, a, client.MergeFrom(orig))).To(Succeed())
			}
			g.Expect(attacker.Delete(ctx, a)).To(Succeed())
			goneEventually(g, a)
			g.Eventually(dexClient(dapi, a.EffectiveClientID()), waitTimeout).Should(BeNil(), "the attacker's own client is deleted")
			g.Consistently(dexClient(dapi, victimID), 2*resyncPeriod, 250*time.Millisecond).Should(HaveField("Name", "victim"), "the victim's client stays")
		})
	}
}

// Attack 2: an object created with the legacy annotation (and the finalizer) for an id that
// exists in Dex but that no object registered must not overwrite it without adoptExisting.
func TestTenantAnnotationCannotTakeOverUnregisteredClient(t *testing.T) {
	dapi := dexAPI(t, plainDex)
	provNS := providerFor(t, plainDex, func(d *dexv1.DexAdminSpec) {
		d.AllowedNamespaces = &dexv1.AllowedNamespaces{From: dexv1.NamespacesFromAll}
	})
	ns, attacker := tenant(t)
	a, foreignID := grabHandMadeClient(t, dapi, attacker, provNS, ns, "hand-made-"+provNS)
	// Deleting it must not delete the hand-made client either.
	deleteKeepsHandMade(t, dapi, attacker, a, foreignID)
}

// grabHandMadeClient creates a client in Dex by hand, then, as the tenant behind tc, an object
// claiming its id with the legacy annotation and the finalizer preset; the object must wait
// (ClientExistsInDex) and the client stay as it is.
func grabHandMadeClient(t *testing.T, dapi api.DexClient, tc client.Client, provNS, ns, foreignID string) (*dexv1.DexStaticClient, string) {
	t.Helper()
	g := NewWithT(t)
	ctx := context.Background()
	_, err := dapi.CreateClient(ctx, &api.CreateClientReq{Client: &api.Client{Id: foreignID, Name: "hand-made", Secret: "hand-made-secret", RedirectUris: []string{"https://hand.example.com/cb"}}})
	g.Expect(err).NotTo(HaveOccurred())
	a := &dexv1.DexStaticClient{
		ObjectMeta: metav1.ObjectMeta{
			Name: "grab", Namespace: ns,
			Annotations: map[string]string{controllers.LegacyAnnotationRegisteredClientID: foreignID},
			Finalizers:  []string{controllers.ClientFinalizer},
		},
		Spec: dexv1.DexStaticClientSpec{ProviderRef: dexv1.ObjectRef{Name: "dex", Namespace: provNS}, ClientID: foreignID, Public: true, DisplayName: "mine now", RedirectURIs: []string{"https://evil.example.com/cb"}},
	}
	g.Expect(tc.Create(ctx, a)).To(Succeed())
	g.Eventually(clientCondition(client.ObjectKeyFromObject(a), dexv1.ConditionReady), waitTimeout).Should(reason(dexv1.ReasonClientExistsInDex))
	return a, foreignID
}

// deleteKeepsHandMade deletes a as the tenant and checks the hand-made client is still in Dex.
func deleteKeepsHandMade(t *testing.T, dapi api.DexClient, tc client.Client, a *dexv1.DexStaticClient, foreignID string) {
	t.Helper()
	g := NewWithT(t)
	g.Consistently(dexClient(dapi, foreignID), 2*resyncPeriod, 250*time.Millisecond).Should(And(HaveField("Name", "hand-made"), HaveField("Secret", "hand-made-secret")))
	g.Expect(tc.Delete(context.Background(), a)).To(Succeed())
	goneEventually(g, a)
	g.Consistently(dexClient(dapi, foreignID), resyncPeriod, 250*time.Millisecond).Should(And(HaveField("Name", "hand-made"), HaveField("Secret", "hand-made-secret")))
}

// A tenant given more than edit (status writes on its clients) still cannot forge ownership: the
// status says nothing for objects created since claims exist.
func TestTenantWithStatusRightsCannotForgeOwnership(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	dapi := dexAPI(t, plainDex)
	provNS := providerFor(t, plainDex, func(d *dexv1.DexAdminSpec) {
		d.AllowedNamespaces = &dexv1.AllowedNamespaces{From: dexv1.NamespacesFromAll}
	})
	ns, user, attacker := tenantUser(t)
	statusWriter := &rbacv1.Role{
		ObjectMeta: metav1.ObjectMeta{Name: "status-writer", Namespace: ns},
		Rules:      []rbacv1.PolicyRule{{APIGroups: []string{"dexterity.dev"}, Resources: []string{"dexstaticclients/status"}, Verbs: []string{"get", "update", "patch"}}},
	}
	g.Expect(k8s.Create(ctx, statusWriter)).To(Succeed())
	g.Expect(k8s.Create(ctx, &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "status-writer", Namespace: ns},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: "status-writer"},
		Subjects:   []rbacv1.Subject{{APIGroup: rbacv1.GroupName, Kind: rbacv1.UserKind, Name: user}},
	})).To(Succeed())

	a, foreignID := grabHandMadeClient(t, dapi, attacker, provNS, ns, "hand-made-status-"+provNS)
	g.Eventually(func() error {
		cur := &dexv1.DexStaticClient{}
		if err := attacker.Get(ctx, client.ObjectKeyFromObject(a), cur); err != nil {
			return err
		}
		orig := cur.DeepCopy()
		cur.Status.ClientID = foreignID
		return attacker.Status().Patch(ctx, cur, client.MergeFrom(orig))
	}, waitTimeout).Should(Succeed())
	deleteKeepsHandMade(t, dapi, attacker, a, foreignID)
}

// A tenant that removes the operator's finalizer and deletes its object leaves no orphan: the
// claim outlives the object and its entry is deleted from Dex.
func TestFinalizerRemovedByHandLeavesNoOrphan(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	dapi := dexAPI(t, plainDex)
	provNS := providerFor(t, plainDex, func(d *dexv1.DexAdminSpec) {
		d.AllowedNamespaces = &dexv1.AllowedNamespaces{From: dexv1.NamespacesFromAll}
	})
	ns, tc := tenant(t)
	c := &dexv1.DexStaticClient{
		ObjectMeta: metav1.ObjectMeta{Name: "app", Namespace: ns},
		Spec:       dexv1.DexStaticClientSpec{ProviderRef: dexv1.ObjectRef{Name: "dex", Namespace: provNS}, Public: true, RedirectURIs: []string{"https://a.example.com/cb"}},
	}
	g.Expect(tc.Create(ctx, c)).To(Succeed())
	id := c.EffectiveClientID()
	g.Eventually(clientCondition(client.ObjectKeyFromObject(c), dexv1.ConditionReady), waitTimeout).Should(readyTrue())
	g.Expect(dexClient(dapi, id)(g)).NotTo(BeNil())

	// Removing the finalizer alone: the operator puts it back.
	g.Expect(tc.Get(ctx, client.ObjectKeyFromObject(c), c)).To(Succeed())
	orig := c.DeepCopy()
	c.Finalizers = nil
	g.Expect(tc.Patch(ctx, c, client.MergeFrom(orig))).To(Succeed())
	g.Eventually(func() []string { return mustGet(t, client.ObjectKeyFromObject(c)).Finalizers }, waitTimeout).Should(ContainElement(controllers.ClientFinalizer))

	// Removed and deleted at once (a delete racing the finalizer's return): the claim collects it.
	g.Expect(tc.Get(ctx, client.ObjectKeyFromObject(c), c)).To(Succeed())
	orig = c.DeepCopy()
	c.Finalizers = []string{"tenant.example.com/hold"}
	g.Expect(tc.Patch(ctx, c, client.MergeFrom(orig))).To(Succeed())
	g.Expect(tc.Delete(ctx, c)).To(Succeed())
	g.Expect(tc.Get(ctx, client.ObjectKeyFromObject(c), c)).To(Succeed())
	orig = c.DeepCopy()
	c.Finalizers = nil
	g.Expect(tc.Patch(ctx, c, client.MergeFrom(orig))).To(Succeed())
	goneEventually(g, c)
	g.Eventually(dexClient(dapi, id), waitTimeout).Should(BeNil(), "the orphaned entry is deleted from Dex")
	g.Eventually(func() bool {
		return apierrors.IsNotFound(k8s.Get(ctx, client.ObjectKey{Name: claimsv1.EntryClaimName(claimsv1.EntryClient, plainDex.GRPCAddress(), id)}, &claimsv1.DexEntryClaim{}))
	}, waitTimeout).Should(BeTrue(), "and its claim")
}

// Attack 3: a namespace admitted for clients cannot add connectors (connectorNamespaces
// defaults to Same), even for a tenant that was given the right to create DexConnectors.
func TestConnectorNamespacesDefaultSame(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	dapi := dexAPI(t, plainDex)
	provNS := providerFor(t, plainDex, func(d *dexv1.DexAdminSpec) {
		d.AllowedNamespaces = &dexv1.AllowedNamespaces{From: dexv1.NamespacesFromAll}
	})
	ns := newNamespace(t) // a tenant with more than edit: it may create DexConnectors
	id := "mock-" + ns
	conn := newConnector(ns, "mock", id, "mockCallback", "")
	conn.Spec.ProviderRef = dexv1.ObjectRef{Name: "dex", Namespace: provNS}
	g.Expect(k8s.Create(ctx, conn)).To(Succeed())
	g.Eventually(connectorCondition(client.ObjectKeyFromObject(conn), dexv1.ConditionReady), waitTimeout).Should(And(
		reason(dexv1.ReasonNamespaceNotAllowed),
		HaveField("Message", ContainSubstring("spec.dex.connectorNamespaces")),
	))
	g.Consistently(dexConnector(dapi, id), 2*resyncPeriod, 250*time.Millisecond).Should(BeNil())

	// The platform team admits the namespace for connectors: now it converges.
	p := &dexv1.OIDCProvider{}
	g.Expect(k8s.Get(ctx, client.ObjectKey{Namespace: provNS, Name: "dex"}, p)).To(Succeed())
	orig := p.DeepCopy()
	p.Spec.Dex.ConnectorNamespaces = &dexv1.AllowedNamespaces{From: dexv1.NamespacesFromAll}
	g.Expect(k8s.Patch(ctx, p, client.MergeFrom(orig))).To(Succeed())
	g.Eventually(dexConnector(dapi, id), waitTimeout).ShouldNot(BeNil())
}

// Attack 4 (the provider side): a newer provider in a namespace that sorts earlier does not take
// over a registry host another provider serves; it reports HostnameConflict until the holder goes.
func TestHostnamesFirstComeFirstServed(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	host := fmt.Sprintf("registry-%d.example.com", time.Now().UnixNano())
	holderNS := newNamespace(t)
	holder := createOIDCProvider(t, holderNS, dexv1.OIDCProviderSpec{IssuerURL: plainDex.IssuerURL(), ClientID: "registry-hosts", Hostnames: []string{host}})
	g.Eventually(providerCondition(holder, dexv1.ConditionReady), waitTimeout).Should(readyTrue())
	// Creation timestamps have whole seconds, and a tie goes by namespace/name: let the newcomer
	// be created in a later second than the holder.
	held := getProvider(t, holder).CreationTimestamp.Add(time.Second)
	g.Eventually(func() bool { return time.Now().After(held) }, 2*time.Second, 50*time.Millisecond).Should(BeTrue())

	early := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("aaa-%d", time.Now().UnixNano())}}
	g.Expect(k8s.Create(ctx, early)).To(Succeed())
	newcomer := createOIDCProvider(t, early.Name, dexv1.OIDCProviderSpec{IssuerURL: plainDex.IssuerURL(), ClientID: "registry-hosts", Hostnames: []string{strings.ToUpper(host)}})
	g.Eventually(providerCondition(newcomer, dexv1.ConditionReady), waitTimeout).Should(And(
		reason(dexv1.ReasonHostnameConflict),
		HaveField("Message", ContainSubstring(holder.String())),
	))
	g.Consistently(providerCondition(holder, dexv1.ConditionReady), time.Second, 200*time.Millisecond).Should(readyTrue())

	g.Expect(k8s.Delete(ctx, &dexv1.OIDCProvider{ObjectMeta: metav1.ObjectMeta{Namespace: holder.Namespace, Name: holder.Name}})).To(Succeed())
	g.Eventually(providerCondition(newcomer, dexv1.ConditionReady), waitTimeout).Should(readyTrue())
}

// The operator's own probe client cannot be claimed or adopted by a tenant (it would break every
// connector's health probe, and give the tenant a public client under the operator's name).
func TestProbeClientIDIsReserved(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	dapi := dexAPI(t, plainDex)
	provNS := providerFor(t, plainDex, func(d *dexv1.DexAdminSpec) {
		d.AllowedNamespaces = &dexv1.AllowedNamespaces{From: dexv1.NamespacesFromAll}
	})
	// A connector of the platform makes the operator register its probe client.
	conn := newConnector(provNS, "probe-me", "mock-"+provNS, "mockCallback", "")
	g.Expect(k8s.Create(ctx, conn)).To(Succeed())
	g.Eventually(dexClient(dapi, controllers.ProbeClientID), waitTimeout).ShouldNot(BeNil())
	before := dexClient(dapi, controllers.ProbeClientID)(g)

	ns, tc := tenant(t)
	c := &dexv1.DexStaticClient{
		ObjectMeta: metav1.ObjectMeta{Name: "probe", Namespace: ns},
		Spec: dexv1.DexStaticClientSpec{ProviderRef: dexv1.ObjectRef{Name: "dex", Namespace: provNS}, ClientID: controllers.ProbeClientID,
			AdoptExisting: true, Public: true, RedirectURIs: []string{"https://evil.example.com/cb"}},
	}
	g.Expect(tc.Create(ctx, c)).To(Succeed())
	g.Eventually(clientCondition(client.ObjectKeyFromObject(c), dexv1.ConditionReady), waitTimeout).Should(And(
		reason(dexv1.ReasonInvalidSpec), HaveField("Message", ContainSubstring("reserved"))))
	g.Consistently(dexClient(dapi, controllers.ProbeClientID), 2*resyncPeriod, 250*time.Millisecond).Should(HaveField("RedirectUris", Equal(before.RedirectUris)))
}

// A client of Dex's configuration file (staticClients) cannot be changed through Dex's API:
// adoptExisting on its id is reported as waiting for the user, not retried for ever.
func TestStaticClientOfDexConfigIsNotAdopted(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ns := providerFor(t, plainDex, nil)
	c := &dexv1.DexStaticClient{
		ObjectMeta: metav1.ObjectMeta{Name: "static", Namespace: ns},
		Spec: dexv1.DexStaticClientSpec{ProviderRef: dexv1.ObjectRef{Name: "dex"}, ClientID: harness.HarnessClientID,
			AdoptExisting: true, Public: true, RedirectURIs: []string{"https://evil.example.com/cb"}},
	}
	g.Expect(k8s.Create(ctx, c)).To(Succeed())
	g.Eventually(clientCondition(client.ObjectKeyFromObject(c), dexv1.ConditionReady), waitTimeout).Should(And(
		reason(dexv1.ReasonClientExistsInDex), HaveField("Message", ContainSubstring("configuration file"))))
	g.Eventually(clientCondition(client.ObjectKeyFromObject(c), dexv1.ConditionStalled), waitTimeout).Should(HaveField("Status", metav1.ConditionTrue))
	// Deleting it does not wait for ever on a delete Dex refuses, and leaves the static client.
	g.Expect(k8s.Delete(ctx, c)).To(Succeed())
	goneEventually(g, c)
	g.Expect(dexClient(dexAPI(t, plainDex), harness.HarnessClientID)(g)).NotTo(BeNil())
}
