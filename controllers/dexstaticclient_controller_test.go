package controllers_test

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	api "github.com/dexidp/dex/api/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/util/retry"
	"sigs.k8s.io/controller-runtime/pkg/client"

	claimsv1 "dexterity.dev/dexterity/api/claims/v1alpha1"
	dexv1 "dexterity.dev/dexterity/api/v1alpha1"
	"dexterity.dev/dexterity/controllers"
	"dexterity.dev/dexterity/internal/dex/dexfake"
	"dexterity.dev/dexterity/internal/tenancy"
	"dexterity.dev/dexterity/test/harness"
)

// dexAPI returns a raw Dex API client for checking what Dex holds, closed at the end of the test.
func dexAPI(t *testing.T, d *harness.Dex) api.DexClient {
	t.Helper()
	c, closer, err := d.Client()
	NewWithT(t).Expect(err).NotTo(HaveOccurred())
	t.Cleanup(func() { _ = closer.Close() })
	return c
}

// dexClient returns a func for Eventually yielding the client as Dex holds it (nil when missing).
func dexClient(d api.DexClient, id string) func(g Gomega) *api.Client {
	return func(g Gomega) *api.Client {
		resp, err := d.GetClient(context.Background(), &api.GetClientReq{Id: id})
		if err != nil {
			g.Expect(err.Error()).To(ContainSubstring("not found"))
			return nil
		}
		return resp.GetClient()
	}
}

func clientCondition(key client.ObjectKey, condType string) func(g Gomega) metav1.Condition {
	return func(g Gomega) metav1.Condition {
		c := &dexv1.DexStaticClient{}
		g.Expect(k8s.Get(context.Background(), key, c)).To(Succeed())
		cond := meta.FindStatusCondition(c.Status.Conditions, condType)
		g.Expect(cond).NotTo(BeNil(), "condition %s not set yet", condType)
		return *cond
	}
}

func readyTrue() OmegaMatcher { return HaveField("Status", metav1.ConditionTrue) }

func reason(r string) OmegaMatcher {
	return And(HaveField("Status", metav1.ConditionFalse), HaveField("Reason", r))
}

// providerFor creates an OIDCProvider for Dex d in a new namespace and returns that namespace.
func providerFor(t *testing.T, d *harness.Dex, mut func(*dexv1.DexAdminSpec)) string {
	t.Helper()
	ns := newNamespace(t)
	spec := &dexv1.DexAdminSpec{GRPCAddress: d.GRPCAddress(), Insecure: true}
	if mut != nil {
		mut(spec)
	}
	createProvider(t, ns, "dex", d.IssuerURL(), spec)
	return ns
}

func TestClientLifecycle(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	dapi := dexAPI(t, plainDex)
	ns := providerFor(t, plainDex, nil)

	c := &dexv1.DexStaticClient{
		ObjectMeta: metav1.ObjectMeta{Name: "tofu", Namespace: ns},
		Spec: dexv1.DexStaticClientSpec{
			ProviderRef:      dexv1.ObjectRef{Name: "dex"},
			DisplayName:      "Team tofu",
			Public:           true,
			RedirectURIs:     []string{"https://app.example.com/cb"},
			LoopbackRedirect: &dexv1.LoopbackRedirect{Ports: []int32{10000, 10010}, Path: "/login"},
			TrustedPeers:     []string{"peer-b", "peer-a"},
			LogoURL:          "https://app.example.com/logo.png",
		},
	}
	g.Expect(k8s.Create(ctx, c)).To(Succeed())
	key := client.ObjectKeyFromObject(c)
	id := ns + "-tofu"

	wantRedirects := []string{}
	for p := 10000; p <= 10010; p++ {
		wantRedirects = append(wantRedirects, fmt.Sprintf("http://localhost:%d/login", p))
	}
	wantRedirects = append(wantRedirects, "https://app.example.com/cb")
	g.Eventually(dexClient(dapi, id), waitTimeout).Should(And(
		Not(BeNil()),
		HaveField("RedirectUris", Equal(wantRedirects)),
		HaveField("Name", "Team tofu"),
		HaveField("Public", true),
		HaveField("TrustedPeers", ConsistOf("peer-a", "peer-b")),
		HaveField("LogoUrl", "https://app.example.com/logo.png"),
	))
	g.Eventually(clientCondition(key, dexv1.ConditionReady), waitTimeout).Should(readyTrue())
	g.Expect(k8s.Get(ctx, key, c)).To(Succeed())
	g.Expect(c.Status.ClientID).To(Equal(id))
	g.Expect(c.Status.RedirectURIs).To(Equal(wantRedirects))
	g.Expect(c.Status.ObservedGeneration).To(Equal(c.Generation))
	g.Expect(c.Finalizers).To(ContainElement(controllers.ClientFinalizer))

	// Every field change shows up in Dex.
	updateClient(t, key, func(c *dexv1.DexStaticClient) {
		c.Spec.DisplayName = "Team tofu (renamed)"
		c.Spec.RedirectURIs = []string{"https://other.example.com/cb"}
		c.Spec.LoopbackRedirect = &dexv1.LoopbackRedirect{Ports: []int32{20000, 20001}, Path: "/cb"}
		c.Spec.TrustedPeers = []string{"peer-c"}
		c.Spec.LogoURL = "https://other.example.com/logo.png"
	})
	g.Eventually(dexClient(dapi, id), waitTimeout).Should(And(
		HaveField("RedirectUris", Equal([]string{"http://localhost:20000/cb", "http://localhost:20001/cb", "https://other.example.com/cb"})),
		HaveField("Name", "Team tofu (renamed)"),
		HaveField("TrustedPeers", Equal([]string{"peer-c"})),
		HaveField("LogoUrl", "https://other.example.com/logo.png"),
		HaveField("Public", true),
	))

	// Clearing a field Dex cannot clear in place (trusted peers, logo) still reaches Dex.
	updateClient(t, key, func(c *dexv1.DexStaticClient) {
		c.Spec.TrustedPeers = nil
		c.Spec.LogoURL = ""
	})
	g.Eventually(dexClient(dapi, id), waitTimeout).Should(And(HaveField("TrustedPeers", BeEmpty()), HaveField("LogoUrl", "")))

	// public -> confidential with a generated secret: Dex holds the Secret's value.
	updateClient(t, key, func(c *dexv1.DexStaticClient) {
		c.Spec.Public = false
		c.Spec.SecretRef = &dexv1.SecretKeyRef{Name: "tofu-client", Key: "client-secret"}
		c.Spec.GenerateSecret = true
	})
	secret := &corev1.Secret{}
	g.Eventually(func() error { return k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: "tofu-client"}, secret) }, waitTimeout).Should(Succeed())
	g.Expect(secret.Data["client-secret"]).To(HaveLen(43))
	g.Eventually(dexClient(dapi, id), waitTimeout).Should(And(HaveField("Public", false), HaveField("Secret", string(secret.Data["client-secret"]))))

	// Delete: gone from Dex, finalizer released.
	g.Expect(k8s.Delete(ctx, mustGet(t, key))).To(Succeed())
	g.Eventually(dexClient(dapi, id), waitTimeout).Should(BeNil())
	g.Eventually(func() bool { return apierrors.IsNotFound(k8s.Get(ctx, key, &dexv1.DexStaticClient{})) }, waitTimeout).Should(BeTrue())
}

// A client created with its finalizer (as the defaulting webhook creates it) is registered with
// one write of the controller to the object, its status: no finalizer patch. The managed fields
// say who wrote what (the creator here has a field manager of its own).
func TestFinalizerFromAdmissionSavesThePatch(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	dapi := dexAPI(t, plainDex)
	ns := providerFor(t, plainDex, nil)
	for _, tc := range []struct {
		name       string
		finalizers []string
		patched    bool
	}{
		{"admitted", []string{controllers.ClientFinalizer}, false},
		{"without", nil, true},
	} {
		c := &dexv1.DexStaticClient{
			ObjectMeta: metav1.ObjectMeta{Name: tc.name, Namespace: ns, Finalizers: tc.finalizers},
			Spec:       dexv1.DexStaticClientSpec{ProviderRef: dexv1.ObjectRef{Name: "dex"}, Public: true, RedirectURIs: []string{"https://app.example.com/cb"}},
		}
		g.Expect(k8s.Create(ctx, c, client.FieldOwner("tenant"))).To(Succeed())
		key := client.ObjectKeyFromObject(c)
		g.Eventually(clientCondition(key, dexv1.ConditionReady), waitTimeout).Should(readyTrue())
		g.Expect(dexClient(dapi, ns+"-"+tc.name)(g)).NotTo(BeNil())
		got := mustGet(t, key)
		g.Expect(got.Finalizers).To(Equal([]string{controllers.ClientFinalizer}))
		var writers []string
		for _, m := range got.ManagedFields {
			if m.Manager != "tenant" && m.Subresource == "" {
				writers = append(writers, m.Manager)
			}
		}
		if tc.patched {
			g.Expect(writers).NotTo(BeEmpty(), "%s: the controller patched the finalizer in", tc.name)
		} else {
			g.Expect(writers).To(BeEmpty(), "%s: only the status was written by the controller", tc.name)
		}
	}
}

func TestGeneratedSecretWorksAndRotates(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ns := providerFor(t, plainDex, nil)
	c := &dexv1.DexStaticClient{
		ObjectMeta: metav1.ObjectMeta{Name: "ci", Namespace: ns},
		Spec: dexv1.DexStaticClientSpec{
			ProviderRef:    dexv1.ObjectRef{Name: "dex"},
			RedirectURIs:   []string{"https://ci.example.com/cb"},
			SecretRef:      &dexv1.SecretKeyRef{Name: "ci-oidc", Key: "clientSecret"},
			GenerateSecret: true,
		},
	}
	g.Expect(k8s.Create(ctx, c)).To(Succeed())
	key := client.ObjectKeyFromObject(c)
	id := ns + "-ci"
	g.Eventually(clientCondition(key, dexv1.ConditionReady), waitTimeout).Should(readyTrue())
	g.Expect(clientCondition(key, dexv1.ConditionSecretReady)(g)).To(HaveField("Reason", dexv1.ReasonSecretGenerated))

	secret := &corev1.Secret{}
	g.Expect(k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: "ci-oidc"}, secret)).To(Succeed())
	g.Expect(metav1.IsControlledBy(secret, mustGet(t, key))).To(BeTrue(), "generated Secret is owned by the DexStaticClient")
	old := string(secret.Data["clientSecret"])

	u := harness.AdminUser
	tok, err := harness.PasswordGrant(plainDex.IssuerURL(), id, old, u.Email, u.Password)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(tok).To(HaveKey("id_token"))

	// Rotate: the new secret works, the old one stops working.
	secret.Data["clientSecret"] = []byte("a-new-secret-value-of-reasonable-length")
	g.Expect(k8s.Update(ctx, secret)).To(Succeed())
	g.Eventually(func() error {
		_, err := harness.PasswordGrant(plainDex.IssuerURL(), id, "a-new-secret-value-of-reasonable-length", u.Email, u.Password)
		return err
	}, waitTimeout).Should(Succeed())
	_, err = harness.PasswordGrant(plainDex.IssuerURL(), id, old, u.Email, u.Password)
	g.Expect(err).To(HaveOccurred())
	g.Eventually(func() []string { return eventReasons(t, ns, "ci") }, waitTimeout).Should(ContainElement("Reregistered"))

	// The secret value appears nowhere in the object or its status.
	obj := mustGet(t, key)
	g.Expect(fmt.Sprintf("%+v", obj)).NotTo(ContainSubstring("a-new-secret-value"))
	g.Expect(fmt.Sprintf("%+v", obj)).NotTo(ContainSubstring(old))
}

func TestMissingSecretLeavesDexUntouched(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	dapi := dexAPI(t, plainDex)
	ns := providerFor(t, plainDex, nil)
	g.Expect(k8s.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "app", Namespace: ns}, Data: map[string][]byte{"s": []byte("first-secret")}})).To(Succeed())
	c := &dexv1.DexStaticClient{
		ObjectMeta: metav1.ObjectMeta{Name: "app", Namespace: ns},
		Spec: dexv1.DexStaticClientSpec{
			ProviderRef:  dexv1.ObjectRef{Name: "dex"},
			RedirectURIs: []string{"https://app.example.com/cb"},
			SecretRef:    &dexv1.SecretKeyRef{Name: "app", Key: "s"},
		},
	}
	g.Expect(k8s.Create(ctx, c)).To(Succeed())
	key := client.ObjectKeyFromObject(c)
	id := ns + "-app"
	g.Eventually(dexClient(dapi, id), waitTimeout).Should(HaveField("Secret", "first-secret"))

	// The Secret disappears: the client stays in Dex, the condition says why.
	g.Expect(k8s.Delete(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "app", Namespace: ns}})).To(Succeed())
	g.Eventually(clientCondition(key, dexv1.ConditionSecretReady), waitTimeout).Should(reason(dexv1.ReasonSecretNotFound))
	g.Eventually(clientCondition(key, dexv1.ConditionReady), waitTimeout).Should(reason(dexv1.ReasonSecretNotFound))
	g.Consistently(dexClient(dapi, id), 2*resyncPeriod, 500*time.Millisecond).Should(HaveField("Secret", "first-secret"))

	// It comes back: Ready again.
	g.Expect(k8s.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "app", Namespace: ns}, Data: map[string][]byte{"s": []byte("first-secret")}})).To(Succeed())
	g.Eventually(clientCondition(key, dexv1.ConditionReady), waitTimeout).Should(readyTrue())
}

func TestClientIDOwnership(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	dapi := dexAPI(t, plainDex)
	provNS := providerFor(t, plainDex, func(d *dexv1.DexAdminSpec) {
		d.AllowedNamespaces = &dexv1.AllowedNamespaces{From: dexv1.NamespacesFromAll}
	})
	ref := dexv1.ObjectRef{Name: "dex", Namespace: provNS}
	nsA, nsB := newNamespace(t), newNamespace(t)
	sharedID := "shared-" + provNS

	a := &dexv1.DexStaticClient{
		ObjectMeta: metav1.ObjectMeta{Name: "app", Namespace: nsA},
		Spec:       dexv1.DexStaticClientSpec{ProviderRef: ref, ClientID: sharedID, Public: true, DisplayName: "team A", RedirectURIs: []string{"https://a.example.com/cb"}},
	}
	g.Expect(k8s.Create(ctx, a)).To(Succeed())
	g.Eventually(clientCondition(client.ObjectKeyFromObject(a), dexv1.ConditionReady), waitTimeout).Should(readyTrue())

	b := &dexv1.DexStaticClient{
		ObjectMeta: metav1.ObjectMeta{Name: "app", Namespace: nsB},
		Spec:       dexv1.DexStaticClientSpec{ProviderRef: ref, ClientID: sharedID, Public: true, DisplayName: "team B", RedirectURIs: []string{"https://b.example.com/cb"}},
	}
	g.Expect(k8s.Create(ctx, b)).To(Succeed())
	g.Eventually(clientCondition(client.ObjectKeyFromObject(b), dexv1.ConditionReady), waitTimeout).Should(And(
		reason(dexv1.ReasonClientIDConflict),
		HaveField("Message", ContainSubstring(nsA+"/app")),
	))
	g.Consistently(dexClient(dapi, sharedID), 2*resyncPeriod, 500*time.Millisecond).Should(HaveField("Name", "team A"))
	g.Expect(mustGet(t, client.ObjectKeyFromObject(b)).Finalizers).To(BeEmpty(), "the loser holds no finalizer")

	// Deleting the loser leaves the winner's client in Dex.
	g.Expect(k8s.Delete(ctx, b)).To(Succeed())
	g.Eventually(func() bool {
		return apierrors.IsNotFound(k8s.Get(ctx, client.ObjectKeyFromObject(b), &dexv1.DexStaticClient{}))
	}, waitTimeout).Should(BeTrue())
	g.Consistently(dexClient(dapi, sharedID), resyncPeriod, 500*time.Millisecond).Should(HaveField("Name", "team A"))

	t.Run("client created directly in Dex is not taken over without adoptExisting", func(t *testing.T) {
		g := NewWithT(t)
		foreignID := "foreign-" + provNS
		resp, err := dapi.CreateClient(ctx, &api.CreateClientReq{Client: &api.Client{Id: foreignID, Name: "hand-made", Secret: "hand-made-secret", RedirectUris: []string{"https://hand.example.com/cb"}}})
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(resp.GetAlreadyExists()).To(BeFalse())

		c := &dexv1.DexStaticClient{
			ObjectMeta: metav1.ObjectMeta{Name: "foreign", Namespace: nsA},
			Spec:       dexv1.DexStaticClientSpec{ProviderRef: ref, ClientID: foreignID, Public: true, DisplayName: "mine now", RedirectURIs: []string{"https://a.example.com/cb"}},
		}
		g.Expect(k8s.Create(ctx, c)).To(Succeed())
		key := client.ObjectKeyFromObject(c)
		g.Eventually(clientCondition(key, dexv1.ConditionReady), waitTimeout).Should(reason(dexv1.ReasonClientExistsInDex))
		g.Consistently(dexClient(dapi, foreignID), 2*resyncPeriod, 500*time.Millisecond).Should(And(HaveField("Name", "hand-made"), HaveField("Secret", "hand-made-secret")))

		updateClient(t, key, func(c *dexv1.DexStaticClient) { c.Spec.AdoptExisting = true })
		g.Eventually(dexClient(dapi, foreignID), waitTimeout).Should(And(HaveField("Name", "mine now"), HaveField("Public", true)))
		g.Eventually(clientCondition(key, dexv1.ConditionReady), waitTimeout).Should(readyTrue())
	})
}

// The manager may die between its first write to Dex and the status update. The claim it made
// before that write makes the restarted manager treat the client as its own.
func TestClaimSurvivesCrashBeforeStatus(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	dapi := dexAPI(t, plainDex)
	ns := providerFor(t, plainDex, nil)
	id := ns + "-crashed"
	_, err := dapi.CreateClient(ctx, &api.CreateClientReq{Client: &api.Client{Id: id, Name: "half done", Public: true, RedirectUris: []string{"https://x.example.com/cb"}}})
	g.Expect(err).NotTo(HaveOccurred())

	c := &dexv1.DexStaticClient{
		ObjectMeta: metav1.ObjectMeta{Name: "crashed", Namespace: ns, Finalizers: []string{controllers.ClientFinalizer}},
		Spec:       dexv1.DexStaticClientSpec{ProviderRef: dexv1.ObjectRef{Name: "dex"}, Public: true, DisplayName: "finished", RedirectURIs: []string{"https://x.example.com/cb"}},
	}
	g.Expect(k8s.Create(ctx, c)).To(Succeed())
	// What the operator wrote before it died: the claim, naming this object's UID.
	g.Expect(k8s.Create(ctx, claimFor(c, plainDex.GRPCAddress(), id))).To(Succeed())
	g.Eventually(clientCondition(client.ObjectKeyFromObject(c), dexv1.ConditionReady), waitTimeout).Should(readyTrue())
	g.Eventually(dexClient(dapi, id), waitTimeout).Should(HaveField("Name", "finished"))
}

// claimFor is the DexEntryClaim the operator makes for c's client id in the Dex at addr.
func claimFor(c *dexv1.DexStaticClient, addr, id string) *claimsv1.DexEntryClaim {
	return &claimsv1.DexEntryClaim{
		ObjectMeta: metav1.ObjectMeta{Name: claimsv1.EntryClaimName(claimsv1.EntryClient, addr, id), Labels: map[string]string{controllers.LabelClaimOwnerUID: string(c.UID)}},
		Spec: claimsv1.DexEntryClaimSpec{
			EntryKind: claimsv1.EntryClient, EntryID: id, DexAddress: strings.ToLower(addr),
			Owner:    claimsv1.ClaimOwner{Kind: "DexStaticClient", Namespace: c.Namespace, Name: c.Name, UID: c.UID},
			Provider: claimsv1.ClaimProvider{Namespace: tenancy.RefKey(c.Namespace, c.Spec.ProviderRef).Namespace, Name: c.Spec.ProviderRef.Name},
		},
	}
}

func TestProviderPolicies(t *testing.T) {
	ctx := context.Background()
	provNS := providerFor(t, plainDex, func(d *dexv1.DexAdminSpec) { d.ClientIDPrefix = "{namespace}-" })
	other := newNamespace(t)
	cases := []struct {
		name, ns, id, wantReason string
	}{
		{"namespace not allowed (Same)", other, "", dexv1.ReasonNamespaceNotAllowed},
		{"client id outside prefix", provNS, "no-prefix", dexv1.ReasonClientIDPrefixMismatch},
		{"default id fits the prefix", provNS, "", ""},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			c := &dexv1.DexStaticClient{
				ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("c%d", i), Namespace: tc.ns},
				Spec:       dexv1.DexStaticClientSpec{ProviderRef: dexv1.ObjectRef{Name: "dex", Namespace: provNS}, ClientID: tc.id, Public: true, RedirectURIs: []string{"https://x.example.com/cb"}},
			}
			g.Expect(k8s.Create(ctx, c)).To(Succeed())
			if tc.wantReason == "" {
				g.Eventually(clientCondition(client.ObjectKeyFromObject(c), dexv1.ConditionReady), waitTimeout).Should(readyTrue())
				return
			}
			g.Eventually(clientCondition(client.ObjectKeyFromObject(c), dexv1.ConditionReady), waitTimeout).Should(reason(tc.wantReason))
		})
	}
}

// Dex on memory storage restarts (losing every client) and later stops for a while: clients come
// back within a resync period, report DexUnavailable meanwhile, and nothing is lost.
func TestDexRestartAndOutage(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	d, err := harness.StartDex(harness.DexOptions{Dir: filepath.Join(t.TempDir(), "dex")})
	g.Expect(err).NotTo(HaveOccurred())
	t.Cleanup(func() {
		if t.Failed() {
			t.Log(tail(d.Log()))
		}
		_ = d.Stop()
	})
	ns := providerFor(t, d, nil)
	var keys []client.ObjectKey
	for i := range 3 {
		c := &dexv1.DexStaticClient{
			ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("c%d", i), Namespace: ns},
			Spec:       dexv1.DexStaticClientSpec{ProviderRef: dexv1.ObjectRef{Name: "dex"}, Public: true, RedirectURIs: []string{"https://x.example.com/cb"}},
		}
		g.Expect(k8s.Create(ctx, c)).To(Succeed())
		keys = append(keys, client.ObjectKeyFromObject(c))
	}
	for _, k := range keys {
		g.Eventually(clientCondition(k, dexv1.ConditionReady), waitTimeout).Should(readyTrue())
	}

	g.Expect(d.Restart()).To(Succeed())
	dapi := dexAPI(t, d)
	for _, k := range keys {
		g.Eventually(dexClient(dapi, k.Namespace+"-"+k.Name), 2*resyncPeriod+5*time.Second).ShouldNot(BeNil(), "re-created by drift repair")
	}

	g.Expect(d.Stop()).To(Succeed())
	for _, k := range keys {
		g.Eventually(clientCondition(k, dexv1.ConditionReady), waitTimeout).Should(reason(dexv1.ReasonDexUnavailable))
	}
	// A change made during the outage is applied once Dex is back. Meanwhile the status describes
	// the new generation (observedGeneration follows it even though the reconcile fails).
	updateClient(t, keys[0], func(c *dexv1.DexStaticClient) { c.Spec.DisplayName = "changed during outage" })
	g.Eventually(func(g Gomega) {
		c := mustGet(t, keys[0])
		g.Expect(c.Status.ObservedGeneration).To(Equal(c.Generation))
		g.Expect(meta.FindStatusCondition(c.Status.Conditions, dexv1.ConditionReady)).To(HaveValue(reason(dexv1.ReasonDexUnavailable)))
	}, waitTimeout).Should(Succeed())

	g.Expect(d.Start()).To(Succeed())
	for _, k := range keys {
		g.Eventually(clientCondition(k, dexv1.ConditionReady), waitTimeout).Should(readyTrue())
		g.Eventually(dexClient(dapi, k.Namespace+"-"+k.Name), waitTimeout).ShouldNot(BeNil())
	}
	g.Eventually(dexClient(dapi, keys[0].Namespace+"-"+keys[0].Name), waitTimeout).Should(HaveField("Name", "changed during outage"))
}

// A steady-state resync of 100 in-sync clients makes no write call and at most one read per object.
func TestSteadyStateResyncMakesNoWrites(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ns := providerFor(t, plainDex, nil)
	provider := ns + "/dex"
	const n = 100
	for i := range n {
		c := &dexv1.DexStaticClient{
			ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("c%03d", i), Namespace: ns},
			Spec:       dexv1.DexStaticClientSpec{ProviderRef: dexv1.ObjectRef{Name: "dex"}, Public: true, LoopbackRedirect: &dexv1.LoopbackRedirect{Ports: []int32{10000, 10010}}},
		}
		g.Expect(k8s.Create(ctx, c)).To(Succeed())
	}
	// Connectors too: their health probe must not write to Dex on every resync.
	const nConn = 5
	for i := range nConn {
		g.Expect(k8s.Create(ctx, newConnector(ns, fmt.Sprintf("m%d", i), fmt.Sprintf("mock-%s-%d", ns, i), "mockCallback", ""))).To(Succeed())
	}
	g.Eventually(func(g Gomega) {
		var list dexv1.DexStaticClientList
		g.Expect(k8s.List(ctx, &list, client.InNamespace(ns))).To(Succeed())
		for _, c := range list.Items {
			g.Expect(meta.IsStatusConditionTrue(c.Status.Conditions, dexv1.ConditionReady)).To(BeTrue(), c.Name)
		}
		var conns dexv1.DexConnectorList
		g.Expect(k8s.List(ctx, &conns, client.InNamespace(ns))).To(Succeed())
		g.Expect(conns.Items).To(HaveLen(nConn))
		for _, c := range conns.Items {
			g.Expect(meta.IsStatusConditionTrue(c.Status.Conditions, dexv1.ConditionReady)).To(BeTrue(), c.Name)
		}
	}, 2*time.Minute).Should(Succeed())

	writes := func() float64 {
		var sum float64
		for _, m := range dexfake.WriteMethods {
			sum += harness.DexCalls(provider, m)
		}
		return sum
	}
	w0, r0, l0 := writes(), harness.DexCalls(provider, "GetClient"), harness.DexCalls(provider, "ListConnectors")
	start := time.Now()
	// Wait until every object has been resynced at least twice.
	g.Eventually(func() float64 { return harness.DexCalls(provider, "GetClient") - r0 }, 4*resyncPeriod+30*time.Second, 200*time.Millisecond).Should(BeNumerically(">=", 2*n))
	elapsed := time.Since(start)
	g.Expect(writes()-w0).To(BeZero(), "no Dex write while nothing changed (clients and connectors)")
	g.Expect(harness.DexCalls(provider, "ListConnectors")-l0).To(BeNumerically(">=", nConn), "the connectors were resynced too")
	reads := harness.DexCalls(provider, "GetClient") - r0
	maxResyncs := float64(elapsed)/float64(resyncPeriod*9/10) + 1
	g.Expect(reads).To(BeNumerically("<=", n*maxResyncs), "at most one read per object per resync")
}

// updateClient changes a DexStaticClient, retrying on conflicts with the controller's writes.
func updateClient(t *testing.T, key client.ObjectKey, mut func(*dexv1.DexStaticClient)) {
	t.Helper()
	NewWithT(t).Expect(retry.RetryOnConflict(retry.DefaultRetry, func() error {
		c := &dexv1.DexStaticClient{}
		if err := k8s.Get(context.Background(), key, c); err != nil {
			return err
		}
		mut(c)
		return k8s.Update(context.Background(), c)
	})).To(Succeed())
}

func mustGet(t *testing.T, key client.ObjectKey) *dexv1.DexStaticClient {
	t.Helper()
	c := &dexv1.DexStaticClient{}
	NewWithT(t).Expect(k8s.Get(context.Background(), key, c)).To(Succeed())
	return c
}

func eventReasons(t *testing.T, ns, name string) []string {
	t.Helper()
	out, err := harness.EventReasons(context.Background(), k8s, ns, name)
	NewWithT(t).Expect(err).NotTo(HaveOccurred())
	return out
}

// Ownership is per Dex, not per OIDCProvider: an object reaching the same Dex through another
// provider cannot take the id over, not even with adoptExisting, until the owner is gone.
func TestOwnershipAcrossProvidersOfOneDex(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	dapi := dexAPI(t, plainDex)
	ns1, ns2 := providerFor(t, plainDex, nil), providerFor(t, plainDex, nil)
	id := "one-dex-" + ns1
	a := &dexv1.DexStaticClient{
		ObjectMeta: metav1.ObjectMeta{Name: "a", Namespace: ns1},
		Spec:       dexv1.DexStaticClientSpec{ProviderRef: dexv1.ObjectRef{Name: "dex"}, ClientID: id, Public: true, DisplayName: "first", RedirectURIs: []string{"https://a.example.com/cb"}},
	}
	g.Expect(k8s.Create(ctx, a)).To(Succeed())
	g.Eventually(clientCondition(client.ObjectKeyFromObject(a), dexv1.ConditionReady), waitTimeout).Should(readyTrue())

	b := &dexv1.DexStaticClient{
		ObjectMeta: metav1.ObjectMeta{Name: "b", Namespace: ns2},
		Spec:       dexv1.DexStaticClientSpec{ProviderRef: dexv1.ObjectRef{Name: "dex"}, ClientID: id, Public: true, DisplayName: "second", RedirectURIs: []string{"https://b.example.com/cb"}, AdoptExisting: true},
	}
	g.Expect(k8s.Create(ctx, b)).To(Succeed())
	g.Eventually(clientCondition(client.ObjectKeyFromObject(b), dexv1.ConditionReady), waitTimeout).Should(And(
		reason(dexv1.ReasonClientIDConflict), HaveField("Message", ContainSubstring(ns1+"/a"))))
	g.Consistently(dexClient(dapi, id), 2*resyncPeriod, 500*time.Millisecond).Should(HaveField("Name", "first"))

	// Once the owner is gone, the other takes the id over.
	g.Expect(k8s.Delete(ctx, a)).To(Succeed())
	g.Eventually(clientCondition(client.ObjectKeyFromObject(b), dexv1.ConditionReady), waitTimeout).Should(readyTrue())
	g.Eventually(dexClient(dapi, id), waitTimeout).Should(HaveField("Name", "second"))
}
