package unit_test

import (
	"context"
	"testing"

	. "github.com/onsi/gomega"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/record"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"

	claimsv1 "dexterity.dev/dexterity/api/claims/v1alpha1"
	dexv1 "dexterity.dev/dexterity/api/v1alpha1"
	"dexterity.dev/dexterity/controllers"
	"dexterity.dev/dexterity/internal/dex/dexfake"
	"dexterity.dev/dexterity/internal/scheme"
)

const dexAddr = "127.0.0.1:5557"

type fixture struct {
	k8s  client.Client
	pool *dexfake.Pool
	dex  *dexfake.Dex
	r    *controllers.DexStaticClientReconciler
}

// newFixture is a fake API server holding a provider (platform/dex, set up, clients from every
// namespace) and an in-memory Dex behind it.
func newFixture(t *testing.T) *fixture {
	t.Helper()
	return newFixtureWith(t, interceptor.Funcs{})
}

// newFixtureWith is newFixture with the API server's calls passed through funcs.
func newFixtureWith(t *testing.T, funcs interceptor.Funcs) *fixture {
	t.Helper()
	b := fake.NewClientBuilder().WithScheme(scheme.Scheme).WithInterceptorFuncs(funcs).
		WithStatusSubresource(&dexv1.DexStaticClient{}, &dexv1.DexConnector{}, &dexv1.OIDCProvider{}, &dexv1.GroupBinding{})
	for _, ix := range controllers.Indexes() {
		b = b.WithIndex(ix.Object, ix.Field, ix.Extract)
	}
	k8s := b.Build()
	pool := dexfake.NewPool()
	f := &fixture{k8s: k8s, pool: pool, dex: pool.Dex(dexAddr),
		r: &controllers.DexStaticClientReconciler{DexEntryDeps: controllers.DexEntryDeps{Client: k8s, APIReader: k8s, Recorder: record.NewFakeRecorder(100), Pool: pool}}}
	NewWithT(t).Expect(k8s.Create(context.Background(), &dexv1.OIDCProvider{
		ObjectMeta: metav1.ObjectMeta{Name: "dex", Namespace: "platform", UID: "uid-provider", Finalizers: []string{controllers.ProviderFinalizer}},
		Spec: dexv1.OIDCProviderSpec{IssuerURL: "http://127.0.0.1:5556/dex", ClientID: "registry", Dex: &dexv1.DexAdminSpec{
			GRPCAddress: dexAddr, Insecure: true, AllowedNamespaces: &dexv1.AllowedNamespaces{From: dexv1.NamespacesFromAll}}},
	})).To(Succeed())
	return f
}

func (f *fixture) client(t *testing.T, ns, name, id string) *dexv1.DexStaticClient {
	t.Helper()
	c := &dexv1.DexStaticClient{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, UID: types.UID("uid-" + ns + "-" + name), Generation: 1},
		Spec: dexv1.DexStaticClientSpec{ProviderRef: dexv1.ObjectRef{Name: "dex", Namespace: "platform"}, ClientID: id,
			Public: true, DisplayName: name, RedirectURIs: []string{"https://" + name + ".example.com/cb"}},
	}
	NewWithT(t).Expect(f.k8s.Create(context.Background(), c)).To(Succeed())
	return c
}

func (f *fixture) reconcile(t *testing.T, c *dexv1.DexStaticClient) (ctrl.Result, error) {
	t.Helper()
	return f.r.Reconcile(context.Background(), ctrl.Request{NamespacedName: client.ObjectKeyFromObject(c)})
}

func (f *fixture) get(t *testing.T, c *dexv1.DexStaticClient) *dexv1.DexStaticClient {
	t.Helper()
	cur := &dexv1.DexStaticClient{}
	NewWithT(t).Expect(f.k8s.Get(context.Background(), client.ObjectKeyFromObject(c), cur)).To(Succeed())
	return cur
}

func cond(c *dexv1.DexStaticClient, t string) metav1.Condition {
	if x := meta.FindStatusCondition(c.Status.Conditions, t); x != nil {
		return *x
	}
	return metav1.Condition{Type: t, Status: metav1.ConditionUnknown}
}

func TestRegisterResyncDelete(t *testing.T) {
	g := NewWithT(t)
	f := newFixture(t)
	c := f.client(t, "team-a", "app", "")

	_, err := f.reconcile(t, c)
	g.Expect(err).NotTo(HaveOccurred())
	in, ok := f.dex.Client("team-a-app")
	g.Expect(ok).To(BeTrue())
	g.Expect(in.GetRedirectUris()).To(Equal([]string{"https://app.example.com/cb"}))
	cur := f.get(t, c)
	g.Expect(cond(cur, dexv1.ConditionReady).Status).To(Equal(metav1.ConditionTrue))
	g.Expect(meta.FindStatusCondition(cur.Status.Conditions, dexv1.ConditionReconciling)).To(BeNil())
	g.Expect(cur.Finalizers).To(ContainElement(controllers.ClientFinalizer))
	cl := &claimsv1.DexEntryClaim{}
	g.Expect(f.k8s.Get(context.Background(), client.ObjectKey{Name: claimsv1.EntryClaimName(claimsv1.EntryClient, dexAddr, "team-a-app")}, cl)).To(Succeed())
	g.Expect(cl.Spec.Owner.UID).To(Equal(c.UID))

	// A resync with nothing changed: no Dex write.
	writes := f.dex.WriteCalls()
	_, err = f.reconcile(t, c)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(f.dex.WriteCalls()).To(Equal(writes))

	// Drift: the client vanished from Dex (a restart on memory storage): re-created.
	f.dex.Reset()
	_, err = f.reconcile(t, c)
	g.Expect(err).NotTo(HaveOccurred())
	_, ok = f.dex.Client("team-a-app")
	g.Expect(ok).To(BeTrue())

	// Deletion: Dex, then the claim, then the finalizer.
	g.Expect(f.k8s.Delete(context.Background(), f.get(t, c))).To(Succeed())
	_, err = f.reconcile(t, c)
	g.Expect(err).NotTo(HaveOccurred())
	_, ok = f.dex.Client("team-a-app")
	g.Expect(ok).To(BeFalse())
	g.Expect(apierrors.IsNotFound(f.k8s.Get(context.Background(), client.ObjectKeyFromObject(cl), cl))).To(BeTrue())
	g.Expect(apierrors.IsNotFound(f.k8s.Get(context.Background(), client.ObjectKeyFromObject(c), &dexv1.DexStaticClient{}))).To(BeTrue())
}

func TestConflictNeverWritesToDex(t *testing.T) {
	g := NewWithT(t)
	f := newFixture(t)
	owner := f.client(t, "team-a", "app", "shared")
	_, err := f.reconcile(t, owner)
	g.Expect(err).NotTo(HaveOccurred())
	writes := f.dex.WriteCalls()

	other := f.client(t, "team-b", "app", "shared")
	_, err = f.reconcile(t, other)
	g.Expect(err).NotTo(HaveOccurred(), "a conflict waits for the user, it is not retried")
	cur := f.get(t, other)
	g.Expect(cond(cur, dexv1.ConditionReady).Reason).To(Equal(dexv1.ReasonClientIDConflict))
	g.Expect(cond(cur, dexv1.ConditionStalled).Status).To(Equal(metav1.ConditionTrue))
	g.Expect(cur.Finalizers).To(BeEmpty())
	g.Expect(f.dex.WriteCalls()).To(Equal(writes))

	// A forged legacy annotation on the loser changes nothing, and deleting it deletes nothing.
	cur.Annotations = map[string]string{controllers.LegacyAnnotationRegisteredClientID: "shared"}
	cur.Finalizers = []string{controllers.ClientFinalizer}
	g.Expect(f.k8s.Update(context.Background(), cur)).To(Succeed())
	_, err = f.reconcile(t, other)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(f.k8s.Delete(context.Background(), f.get(t, other))).To(Succeed())
	_, err = f.reconcile(t, other)
	g.Expect(err).NotTo(HaveOccurred())
	in, ok := f.dex.Client("shared")
	g.Expect(ok).To(BeTrue())
	g.Expect(in.GetName()).To(Equal("app"))
	g.Expect(in.GetRedirectUris()).To(Equal([]string{"https://app.example.com/cb"}))
	g.Expect(f.dex.WriteCalls()).To(Equal(writes))
}

func TestDexOutageIsRetriedAndChangesNothing(t *testing.T) {
	g := NewWithT(t)
	f := newFixture(t)
	c := f.client(t, "team-a", "app", "")
	f.dex.SetUnavailable(true)
	_, err := f.reconcile(t, c)
	g.Expect(err).To(HaveOccurred(), "returned, so the workqueue backs off")
	cur := f.get(t, c)
	g.Expect(cond(cur, dexv1.ConditionRegistered).Reason).To(Equal(dexv1.ReasonDexUnavailable))
	g.Expect(cond(cur, dexv1.ConditionReconciling).Status).To(Equal(metav1.ConditionTrue))
	g.Expect(cur.Status.ObservedGeneration).To(Equal(cur.Generation))

	f.dex.SetUnavailable(false)
	_, err = f.reconcile(t, c)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(cond(f.get(t, c), dexv1.ConditionReady).Status).To(Equal(metav1.ConditionTrue))
}

func TestExistingClientNotTakenOverWithoutAdoptExisting(t *testing.T) {
	g := NewWithT(t)
	f := newFixture(t)
	g.Expect(f.dex.CreateClient(context.Background(), dexClient("hand-made"))).To(Succeed())
	c := f.client(t, "team-a", "grab", "hand-made")
	_, err := f.reconcile(t, c)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(cond(f.get(t, c), dexv1.ConditionReady).Reason).To(Equal(dexv1.ReasonClientExistsInDex))
	in, _ := f.dex.Client("hand-made")
	g.Expect(in.GetName()).To(Equal("hand-made"))

	cur := f.get(t, c)
	cur.Spec.AdoptExisting = true
	cur.Generation++
	g.Expect(f.k8s.Update(context.Background(), cur)).To(Succeed())
	_, err = f.reconcile(t, c)
	g.Expect(err).NotTo(HaveOccurred())
	in, _ = f.dex.Client("hand-made")
	g.Expect(in.GetName()).To(Equal("grab"))
}

// The cache may not have seen a claim this manager made a moment ago (a reconcile retried right
// after its first write to Dex): the client in Dex is still recognised as this object's.
func TestClaimNotYetInTheCache(t *testing.T) {
	g := NewWithT(t)
	f := newFixture(t)
	c := f.client(t, "team-a", "app", "")
	g.Expect(f.dex.CreateClient(context.Background(), dexClient("team-a-app"))).To(Succeed())
	// The API server has the claim; the reconciler's cached client does not.
	api := fake.NewClientBuilder().WithScheme(scheme.Scheme).WithObjects(&claimsv1.DexEntryClaim{
		ObjectMeta: metav1.ObjectMeta{Name: claimsv1.EntryClaimName(claimsv1.EntryClient, dexAddr, "team-a-app")},
		Spec: claimsv1.DexEntryClaimSpec{EntryKind: claimsv1.EntryClient, EntryID: "team-a-app", DexAddress: dexAddr,
			Owner:    claimsv1.ClaimOwner{Kind: "DexStaticClient", Namespace: c.Namespace, Name: c.Name, UID: c.UID},
			Provider: claimsv1.ClaimProvider{Namespace: "platform", Name: "dex"}},
	}).Build()
	f.r.APIReader = api
	cur := f.get(t, c)
	cur.Finalizers = []string{controllers.ClientFinalizer}
	g.Expect(f.k8s.Update(context.Background(), cur)).To(Succeed())

	_, err := f.reconcile(t, c)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(cond(f.get(t, c), dexv1.ConditionReady).Status).To(Equal(metav1.ConditionTrue), "%v", f.get(t, c).Status.Conditions)
	in, _ := f.dex.Client("team-a-app")
	g.Expect(in.GetName()).To(Equal("app"))
}
