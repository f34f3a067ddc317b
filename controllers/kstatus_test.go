package controllers_test

import (
	"context"
	"testing"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/cli-utils/pkg/kstatus/status"
	"sigs.k8s.io/controller-runtime/pkg/client"

	dexv1 "dexterity.dev/dexterity/api/v1alpha1"
)

// kstatusOf reads an object the way Flux's health checks, kapp and cli-utils pollers do.
func kstatusOf(obj client.Object) func(g Gomega) status.Status {
	return func(g Gomega) status.Status {
		cur := obj.DeepCopyObject().(client.Object)
		g.Expect(k8s.Get(context.Background(), client.ObjectKeyFromObject(obj), cur)).To(Succeed())
		m, err := runtime.DefaultUnstructuredConverter.ToUnstructured(cur)
		g.Expect(err).NotTo(HaveOccurred())
		res, err := status.Compute(&unstructured.Unstructured{Object: m})
		g.Expect(err).NotTo(HaveOccurred())
		return res.Status
	}
}

// Ready objects are Current; conflicts, missing Secrets and invalid specs are Failed; work in
// progress and Dex outages are InProgress.
func TestKstatusReadsEveryKind(t *testing.T) {
	ctx := context.Background()
	provNS := providerFor(t, plainDex, func(d *dexv1.DexAdminSpec) {
		d.AllowedNamespaces = &dexv1.AllowedNamespaces{From: dexv1.NamespacesFromAll}
	})
	ref := dexv1.ObjectRef{Name: "dex", Namespace: provNS}
	ns := newNamespace(t)
	deadNS := providerFor(t, plainDex, func(d *dexv1.DexAdminSpec) { d.GRPCAddress = "127.0.0.1:1" })

	dsc := func(name, id string, mut func(*dexv1.DexStaticClientSpec)) *dexv1.DexStaticClient {
		c := &dexv1.DexStaticClient{
			ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
			Spec:       dexv1.DexStaticClientSpec{ProviderRef: ref, ClientID: id, Public: true, RedirectURIs: []string{"https://k.example.com/cb"}},
		}
		if mut != nil {
			mut(&c.Spec)
		}
		return c
	}
	ready := dsc("ready", "", nil)
	conflict := dsc("conflict", ready.EffectiveClientID(), nil)
	noSecret := dsc("nosecret", "", func(s *dexv1.DexStaticClientSpec) {
		s.Public, s.SecretRef = false, &dexv1.SecretKeyRef{Name: "absent", Key: "secret"}
	})
	noProvider := dsc("noprovider", "", func(s *dexv1.DexStaticClientSpec) { s.ProviderRef = dexv1.ObjectRef{Name: "later", Namespace: provNS} })
	outage := &dexv1.DexStaticClient{
		ObjectMeta: metav1.ObjectMeta{Name: "outage", Namespace: deadNS},
		Spec:       dexv1.DexStaticClientSpec{ProviderRef: dexv1.ObjectRef{Name: "dex"}, Public: true, RedirectURIs: []string{"https://k.example.com/cb"}},
	}
	badConn := newConnector(provNS, "bad", "bad-"+provNS, "github", `{"clientID":"a","orgz":[]}`)
	unreachable := &dexv1.OIDCProvider{
		ObjectMeta: metav1.ObjectMeta{Name: "unreachable", Namespace: ns},
		Spec:       dexv1.OIDCProviderSpec{IssuerURL: "http://127.0.0.1:1/dex", ClientID: "registry"},
	}
	badBinding := &dexv1.GroupBinding{ObjectMeta: metav1.ObjectMeta{Name: "bad", Namespace: ns}, Spec: dexv1.GroupBindingSpec{Expression: `groups contains`}}
	goodBinding := &dexv1.GroupBinding{ObjectMeta: metav1.ObjectMeta{Name: "good", Namespace: ns}, Spec: dexv1.GroupBindingSpec{Expression: `"x" in groups`}}
	g := NewWithT(t)
	g.Expect(k8s.Create(ctx, ready)).To(Succeed())
	// Registered first (kstatus reads an object without any status as Current, so wait for Ready):
	// the conflicting object below must come second.
	g.Eventually(clientCondition(client.ObjectKeyFromObject(ready), dexv1.ConditionReady), waitTimeout).Should(readyTrue())
	for _, o := range []client.Object{conflict, noSecret, noProvider, outage, badConn, unreachable, badBinding, goodBinding} {
		g.Expect(k8s.Create(ctx, o)).To(Succeed())
	}
	for _, tc := range []struct {
		name string
		obj  client.Object
		want status.Status
	}{
		{"ready client", ready, status.CurrentStatus},
		{"ready provider", &dexv1.OIDCProvider{ObjectMeta: metav1.ObjectMeta{Name: "dex", Namespace: provNS}}, status.CurrentStatus},
		{"client id conflict", conflict, status.FailedStatus},
		{"missing Secret", noSecret, status.FailedStatus},
		{"invalid connector config", badConn, status.FailedStatus},
		{"provider not there yet", noProvider, status.InProgressStatus},
		{"Dex outage", outage, status.InProgressStatus},
		{"issuer unreachable", unreachable, status.InProgressStatus},
		{"binding that does not compile", badBinding, status.FailedStatus},
		{"binding that compiles", goodBinding, status.CurrentStatus},
	} {
		t.Run(tc.name, func(t *testing.T) {
			NewWithT(t).Eventually(kstatusOf(tc.obj), waitTimeout).Should(Equal(tc.want))
		})
	}
	// A fixed object turns Current: the Secret arrives.
	g.Expect(k8s.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "absent", Namespace: ns}, StringData: map[string]string{"secret": "s3cret-value"}})).To(Succeed())
	g.Eventually(kstatusOf(noSecret), waitTimeout).Should(Equal(status.CurrentStatus))
}

// Applying a provider and its clients together is an ordinary start-up order: the clients wait
// for the provider to be set up without a Warning event.
func TestNoWarningWhileTheProviderIsSetUp(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ns := newNamespace(t)
	var keys []client.ObjectKey
	createProvider(t, ns, "dex", plainDex.IssuerURL(), &dexv1.DexAdminSpec{GRPCAddress: plainDex.GRPCAddress(), Insecure: true})
	for _, name := range []string{"a", "b", "c"} {
		c := &dexv1.DexStaticClient{
			ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
			Spec:       dexv1.DexStaticClientSpec{ProviderRef: dexv1.ObjectRef{Name: "dex"}, Public: true, RedirectURIs: []string{"https://k.example.com/cb"}},
		}
		g.Expect(k8s.Create(ctx, c)).To(Succeed())
		keys = append(keys, client.ObjectKeyFromObject(c))
	}
	for _, k := range keys {
		g.Eventually(clientCondition(k, dexv1.ConditionReady), waitTimeout).Should(readyTrue())
	}
	var events corev1.EventList
	g.Expect(k8s.List(ctx, &events, client.InNamespace(ns))).To(Succeed())
	for _, e := range events.Items {
		g.Expect(e.Type).NotTo(Equal(corev1.EventTypeWarning), "%s %s: %s", e.InvolvedObject.Name, e.Reason, e.Message)
	}
}

// The Dex kind read by kstatus: a Dex whose pods are not up yet is InProgress, one that waits for
// a Secret is Failed, one whose Deployment is available is Current.
func TestKstatusReadsDex(t *testing.T) {
	ctx := context.Background()
	g := NewWithT(t)
	ns := newNamespace(t)
	rolling := newDex(ns, "rolling")
	rolling.Spec.StaticPasswords, rolling.Spec.EnablePasswordDB = nil, false
	waiting := newDex(ns, "waiting") // its users Secret never comes
	g.Expect(k8s.Create(ctx, rolling)).To(Succeed())
	g.Expect(k8s.Create(ctx, waiting)).To(Succeed())
	g.Eventually(kstatusOf(waiting), waitTimeout).Should(Equal(status.FailedStatus))
	g.Eventually(kstatusOf(rolling), waitTimeout).Should(Equal(status.InProgressStatus))
	g.Eventually(func(g Gomega) { markAvailable(g, ns, "rolling") }, waitTimeout).Should(Succeed())
	g.Eventually(kstatusOf(rolling), waitTimeout).Should(Equal(status.CurrentStatus))
}
