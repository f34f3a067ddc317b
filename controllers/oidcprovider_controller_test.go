package controllers_test

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	dexv1 "dexterity.dev/dexterity/api/v1alpha1"
	"dexterity.dev/dexterity/controllers"
	"dexterity.dev/dexterity/test/harness"
)

const waitTimeout = 30 * time.Second

// providerCondition returns a func for Eventually that yields the provider's condition of a type.
func providerCondition(key client.ObjectKey, condType string) func(g Gomega) metav1.Condition {
	return func(g Gomega) metav1.Condition {
		p := &dexv1.OIDCProvider{}
		g.Expect(k8s.Get(context.Background(), key, p)).To(Succeed())
		c := meta.FindStatusCondition(p.Status.Conditions, condType)
		g.Expect(c).NotTo(BeNil(), "condition %s not set yet", condType)
		return *c
	}
}

func createProvider(t *testing.T, ns, name, issuer string, d *dexv1.DexAdminSpec) client.ObjectKey {
	t.Helper()
	p := &dexv1.OIDCProvider{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec:       dexv1.OIDCProviderSpec{IssuerURL: issuer, ClientID: "registry", Dex: d},
	}
	NewWithT(t).Expect(k8s.Create(context.Background(), p)).To(Succeed())
	return client.ObjectKeyFromObject(p)
}

func TestDexReachablePlaintext(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	key := createProvider(t, ns, "dex", plainDex.IssuerURL(), &dexv1.DexAdminSpec{GRPCAddress: plainDex.GRPCAddress(), Insecure: true})

	g.Eventually(providerCondition(key, dexv1.ConditionDexReachable), waitTimeout).Should(And(
		HaveField("Status", metav1.ConditionTrue),
		HaveField("Reason", dexv1.ReasonDexReachable),
	))
	g.Eventually(providerCondition(key, dexv1.ConditionReady), waitTimeout).Should(HaveField("Status", metav1.ConditionTrue))
	p := &dexv1.OIDCProvider{}
	g.Expect(k8s.Get(context.Background(), key, p)).To(Succeed())
	g.Expect(p.Status.Phase).To(Equal(dexv1.PhaseReady))
	g.Expect(p.Status.Dex).NotTo(BeNil(), "status.dex: the release Dex reports")
	g.Expect(p.Status.Dex.Version).NotTo(BeEmpty())
	g.Expect(p.Status.Dex.API).To(BeNumerically(">=", 2))
	g.Expect(p.Status.ObservedGeneration).To(Equal(p.Generation))
	g.Expect(meta.IsStatusConditionTrue(p.Status.Conditions, dexv1.ConditionReady)).To(BeTrue())
}

func tlsSecret(ns, name string, ca, cert, key []byte) *corev1.Secret {
	return &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Data:       map[string][]byte{"ca.crt": ca, "tls.crt": cert, "tls.key": key},
	}
}

func TestDexReachableMTLS(t *testing.T) {
	ctx := context.Background()
	m := mtlsDex.TLS()

	t.Run("good client certificate", func(t *testing.T) {
		g := NewWithT(t)
		ns := newNamespace(t)
		g.Expect(k8s.Create(ctx, tlsSecret(ns, "dex-grpc", m.CACert, m.ClientCert, m.ClientKey))).To(Succeed())
		key := createProvider(t, ns, "dex", mtlsDex.IssuerURL(), &dexv1.DexAdminSpec{
			GRPCAddress: mtlsDex.GRPCAddress(),
			TLS:         &dexv1.DexTLSSpec{SecretRef: dexv1.LocalObjectReference{Name: "dex-grpc"}},
		})
		g.Eventually(providerCondition(key, dexv1.ConditionDexReachable), waitTimeout).Should(HaveField("Status", metav1.ConditionTrue))
	})

	t.Run("wrong client certificate, then fixed Secret", func(t *testing.T) {
		g := NewWithT(t)
		ns := newNamespace(t)
		secret := tlsSecret(ns, "dex-grpc", m.CACert, m.BadClientCert, m.BadClientKey)
		g.Expect(k8s.Create(ctx, secret)).To(Succeed())
		key := createProvider(t, ns, "dex", mtlsDex.IssuerURL(), &dexv1.DexAdminSpec{
			GRPCAddress: mtlsDex.GRPCAddress(),
			TLS:         &dexv1.DexTLSSpec{SecretRef: dexv1.LocalObjectReference{Name: "dex-grpc"}},
		})
		g.Eventually(providerCondition(key, dexv1.ConditionDexReachable), waitTimeout).Should(And(
			HaveField("Status", metav1.ConditionFalse),
			HaveField("Reason", BeElementOf(dexv1.ReasonDexUnavailable, dexv1.ReasonDexTLSError)),
			HaveField("Message", ContainSubstring("client certificate")),
		))
		g.Eventually(providerCondition(key, dexv1.ConditionReady), waitTimeout).Should(HaveField("Status", metav1.ConditionFalse))

		// Fixing the Secret is picked up through the Secret watch. (A patch: the operator has
		// labelled the Secret meanwhile, so an update from the stale copy would conflict.)
		orig := secret.DeepCopy()
		secret.Data["tls.crt"], secret.Data["tls.key"] = m.ClientCert, m.ClientKey
		g.Expect(k8s.Patch(ctx, secret, client.MergeFrom(orig))).To(Succeed())
		g.Eventually(providerCondition(key, dexv1.ConditionDexReachable), waitTimeout).Should(HaveField("Status", metav1.ConditionTrue))
	})

	t.Run("missing TLS Secret", func(t *testing.T) {
		g := NewWithT(t)
		ns := newNamespace(t)
		key := createProvider(t, ns, "dex", mtlsDex.IssuerURL(), &dexv1.DexAdminSpec{
			GRPCAddress: mtlsDex.GRPCAddress(),
			TLS:         &dexv1.DexTLSSpec{SecretRef: dexv1.LocalObjectReference{Name: "absent"}},
		})
		g.Eventually(providerCondition(key, dexv1.ConditionDexReachable), waitTimeout).Should(And(
			HaveField("Status", metav1.ConditionFalse),
			HaveField("Reason", dexv1.ReasonDexTLSSecretInvalid),
			HaveField("Message", ContainSubstring("spec.dex.tls.secretRef")),
		))
		// Creating the Secret fixes it without touching the provider.
		g.Expect(k8s.Create(ctx, tlsSecret(ns, "absent", m.CACert, m.ClientCert, m.ClientKey))).To(Succeed())
		g.Eventually(providerCondition(key, dexv1.ConditionDexReachable), waitTimeout).Should(HaveField("Status", metav1.ConditionTrue))
	})
}

// A Dex of its own is stopped and restarted: DexReachable follows.
func TestDexReachableOutage(t *testing.T) {
	g := NewWithT(t)
	d, err := harness.StartDex(harness.DexOptions{Dir: filepath.Join(t.TempDir(), "dex")})
	g.Expect(err).NotTo(HaveOccurred())
	t.Cleanup(func() {
		if t.Failed() {
			t.Log(d.Log())
		}
		_ = d.Stop()
	})
	ns := newNamespace(t)
	key := createProvider(t, ns, "dex", d.IssuerURL(), &dexv1.DexAdminSpec{GRPCAddress: d.GRPCAddress(), Insecure: true})
	g.Eventually(providerCondition(key, dexv1.ConditionDexReachable), waitTimeout).Should(HaveField("Status", metav1.ConditionTrue))

	g.Expect(d.Stop()).To(Succeed())
	g.Eventually(providerCondition(key, dexv1.ConditionDexReachable), waitTimeout).Should(And(
		HaveField("Status", metav1.ConditionFalse),
		HaveField("Reason", dexv1.ReasonDexUnavailable),
		HaveField("Message", ContainSubstring(d.GRPCAddress())),
	))
	g.Eventually(providerCondition(key, dexv1.ConditionReady), waitTimeout).Should(HaveField("Reason", dexv1.ReasonDexUnavailable))

	g.Expect(d.Start()).To(Succeed())
	g.Eventually(providerCondition(key, dexv1.ConditionDexReachable), waitTimeout).Should(HaveField("Status", metav1.ConditionTrue))
	g.Eventually(providerCondition(key, dexv1.ConditionReady), waitTimeout).Should(HaveField("Status", metav1.ConditionTrue))
}

// Deleting a provider before its clients must not orphan them in Dex: the provider waits (like
// Kubernetes' PVC protection) until the clients registered through it are deleted, and those
// deletions still reach Dex.
func TestProviderWaitsForItsClients(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	dapi := dexAPI(t, plainDex)
	ns := providerFor(t, plainDex, nil)
	pkey := client.ObjectKey{Namespace: ns, Name: "dex"}
	c := &dexv1.DexStaticClient{
		ObjectMeta: metav1.ObjectMeta{Name: "tofu", Namespace: ns},
		Spec:       dexv1.DexStaticClientSpec{ProviderRef: dexv1.ObjectRef{Name: "dex"}, Public: true, RedirectURIs: []string{"https://app.example.com/cb"}},
	}
	g.Expect(k8s.Create(ctx, c)).To(Succeed())
	id := ns + "-tofu"
	g.Eventually(dexClient(dapi, id), waitTimeout).ShouldNot(BeNil())
	p := &dexv1.OIDCProvider{}
	g.Expect(k8s.Get(ctx, pkey, p)).To(Succeed())
	g.Expect(p.Finalizers).To(ContainElement(controllers.ProviderFinalizer))

	g.Expect(k8s.Delete(ctx, p)).To(Succeed())
	g.Eventually(providerCondition(pkey, dexv1.ConditionReady), waitTimeout).Should(And(
		reason(dexv1.ReasonDeleting),
		HaveField("Message", ContainSubstring("DexStaticClient "+ns+"/tofu"))))
	g.Consistently(func() error { return k8s.Get(ctx, pkey, &dexv1.OIDCProvider{}) }, time.Second, 100*time.Millisecond).Should(Succeed(), "the provider waits for its client")
	g.Expect(dexClient(dapi, id)(g)).NotTo(BeNil())

	// Meanwhile it takes no new client. The late one carries the finalizer from its creation, as
	// the defaulting webhook sets it; never registered, it does not hold the provider back.
	late := &dexv1.DexStaticClient{
		ObjectMeta: metav1.ObjectMeta{Name: "late", Namespace: ns, Finalizers: []string{controllers.ClientFinalizer}},
		Spec:       dexv1.DexStaticClientSpec{ProviderRef: dexv1.ObjectRef{Name: "dex"}, Public: true, RedirectURIs: []string{"https://app.example.com/cb"}},
	}
	g.Expect(k8s.Create(ctx, late)).To(Succeed())
	g.Eventually(clientCondition(client.ObjectKeyFromObject(late), dexv1.ConditionRegistered), waitTimeout).Should(reason(dexv1.ReasonProviderDeleting))
	g.Expect(dexClient(dapi, ns+"-late")(g)).To(BeNil())

	g.Expect(k8s.Delete(ctx, c)).To(Succeed())
	g.Eventually(dexClient(dapi, id), waitTimeout).Should(BeNil(), "the client's finalizer still reaches Dex through the deleting provider")
	g.Eventually(func() bool { return apierrors.IsNotFound(k8s.Get(ctx, pkey, &dexv1.OIDCProvider{})) }, waitTimeout).Should(BeTrue())

	// The late client's finalizer goes at its deletion without a call to Dex.
	g.Expect(k8s.Delete(ctx, late)).To(Succeed())
	g.Eventually(func() bool {
		return apierrors.IsNotFound(k8s.Get(ctx, client.ObjectKeyFromObject(late), &dexv1.DexStaticClient{}))
	}, waitTimeout).Should(BeTrue())
}

// A namespace deleted as a whole takes the provider's TLS Secret with it at once; the clients'
// finalizers still delete them from Dex, with the connection made while the Secret was there, and
// then the provider goes.
func TestDeletionAfterTheTLSSecretIsGone(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	m := mtlsDex.TLS()
	dapi := dexAPI(t, mtlsDex)
	ns := newNamespace(t)
	secret := tlsSecret(ns, "dex-grpc", m.CACert, m.ClientCert, m.ClientKey)
	g.Expect(k8s.Create(ctx, secret)).To(Succeed())
	pkey := createProvider(t, ns, "dex", mtlsDex.IssuerURL(), &dexv1.DexAdminSpec{
		GRPCAddress: mtlsDex.GRPCAddress(),
		TLS:         &dexv1.DexTLSSpec{SecretRef: dexv1.LocalObjectReference{Name: "dex-grpc"}},
	})
	c := &dexv1.DexStaticClient{
		ObjectMeta: metav1.ObjectMeta{Name: "tofu", Namespace: ns},
		Spec:       dexv1.DexStaticClientSpec{ProviderRef: dexv1.ObjectRef{Name: "dex"}, Public: true, RedirectURIs: []string{"https://app.example.com/cb"}},
	}
	g.Expect(k8s.Create(ctx, c)).To(Succeed())
	id := ns + "-tofu"
	g.Eventually(dexClient(dapi, id), waitTimeout).ShouldNot(BeNil())

	g.Expect(k8s.Delete(ctx, secret)).To(Succeed())
	// The manager has seen the Secret go.
	g.Eventually(providerCondition(pkey, dexv1.ConditionDexReachable), waitTimeout).Should(HaveField("Reason", dexv1.ReasonDexTLSSecretInvalid))
	g.Expect(k8s.Delete(ctx, c)).To(Succeed())
	g.Expect(k8s.Delete(ctx, &dexv1.OIDCProvider{ObjectMeta: metav1.ObjectMeta{Namespace: pkey.Namespace, Name: pkey.Name}})).To(Succeed())
	g.Eventually(dexClient(dapi, id), waitTimeout).Should(BeNil())
	g.Eventually(func() bool { return apierrors.IsNotFound(k8s.Get(ctx, client.ObjectKeyFromObject(c), c)) }, waitTimeout).Should(BeTrue())
	g.Eventually(func() bool { return apierrors.IsNotFound(k8s.Get(ctx, pkey, &dexv1.OIDCProvider{})) }, waitTimeout).Should(BeTrue())
}

// When the provider's own namespace is being deleted, the provider waits only for the clients of
// that namespace: the namespace must be able to go.
func TestProviderInTerminatingNamespace(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	dapi := dexAPI(t, plainDex)
	nsP := providerFor(t, plainDex, func(d *dexv1.DexAdminSpec) {
		d.AllowedNamespaces = &dexv1.AllowedNamespaces{From: dexv1.NamespacesFromAll}
	})
	nsQ := newNamespace(t)
	pkey := client.ObjectKey{Namespace: nsP, Name: "dex"}
	mk := func(ns string) *dexv1.DexStaticClient {
		c := &dexv1.DexStaticClient{
			ObjectMeta: metav1.ObjectMeta{Name: "app", Namespace: ns},
			Spec:       dexv1.DexStaticClientSpec{ProviderRef: dexv1.ObjectRef{Name: "dex", Namespace: nsP}, Public: true, RedirectURIs: []string{"https://app.example.com/cb"}},
		}
		g.Expect(k8s.Create(ctx, c)).To(Succeed())
		g.Eventually(dexClient(dapi, ns+"-app"), waitTimeout).ShouldNot(BeNil())
		return c
	}
	cP, _ := mk(nsP), mk(nsQ)

	// envtest runs no namespace controller: the namespace stays Terminating, its objects stay.
	g.Expect(k8s.Delete(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: nsP}})).To(Succeed())
	g.Expect(k8s.Delete(ctx, &dexv1.OIDCProvider{ObjectMeta: metav1.ObjectMeta{Namespace: nsP, Name: "dex"}})).To(Succeed())
	g.Eventually(providerCondition(pkey, dexv1.ConditionReady), waitTimeout).Should(And(
		reason(dexv1.ReasonDeleting),
		HaveField("Message", ContainSubstring("DexStaticClient "+nsP+"/app")),
		HaveField("Message", Not(ContainSubstring(nsQ)))))

	g.Expect(k8s.Delete(ctx, cP)).To(Succeed())
	g.Eventually(dexClient(dapi, nsP+"-app"), waitTimeout).Should(BeNil())
	g.Eventually(func() bool { return apierrors.IsNotFound(k8s.Get(ctx, pkey, &dexv1.OIDCProvider{})) }, waitTimeout).Should(BeTrue(),
		"released although a client in another namespace still refers to it")
	g.Expect(dexClient(dapi, nsQ+"-app")(g)).NotTo(BeNil(), "the other namespace's client is left alone")
}
