package unit_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"

	. "github.com/onsi/gomega"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/tools/record"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"

	claimsv1 "dexterity.dev/dexterity/api/claims/v1alpha1"
	dexv1 "dexterity.dev/dexterity/api/v1alpha1"
	"dexterity.dev/dexterity/controllers"
	"dexterity.dev/dexterity/internal/oidc"
)

// statusPatches counts the status patches that reach the (fake) API server; fail, when set,
// answers them instead.
type statusPatches struct {
	mu   sync.Mutex
	n    int
	fail error
}

func (s *statusPatches) funcs() interceptor.Funcs {
	return interceptor.Funcs{SubResourcePatch: func(ctx context.Context, c client.Client, sub string, obj client.Object, patch client.Patch, opts ...client.SubResourcePatchOption) error {
		if sub == "status" {
			s.mu.Lock()
			s.n++
			fail := s.fail
			s.mu.Unlock()
			if fail != nil {
				return fail
			}
		}
		return c.SubResource(sub).Patch(ctx, obj, patch, opts...)
	}}
}

// comparableClient makes a client comparable with ==.
type comparableClient struct{ client.Client }

// take returns the number of status patches since the last call.
func (s *statusPatches) take() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := s.n
	s.n = 0
	return n
}

// A reconcile writes the status exactly once when it changed and not at all when it did not;
// a lastSyncTime that moved on its own is no change.
func TestStatusWrittenOnlyWhenChanged(t *testing.T) {
	g := NewWithT(t)
	patches := &statusPatches{}
	f := newFixtureWith(t, patches.funcs())
	c := f.client(t, "team-a", "app", "")

	_, err := f.reconcile(t, c)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(patches.take()).To(Equal(1), "first reconcile: registered")
	g.Expect(cond(f.get(t, c), dexv1.ConditionReady).Status).To(Equal(metav1.ConditionTrue))
	_, err = f.reconcile(t, c)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(patches.take()).To(Equal(1), "first resync: Registered now says the client in Dex matches")
	first := f.get(t, c)
	g.Expect(cond(first, dexv1.ConditionRegistered).Message).To(Equal("client in Dex matches the spec"))
	g.Expect(first.Status.LastSyncTime).NotTo(BeNil())

	for range 3 {
		_, err = f.reconcile(t, c)
		g.Expect(err).NotTo(HaveOccurred())
	}
	g.Expect(patches.take()).To(Equal(0), "in-sync resyncs write no status")
	g.Expect(f.get(t, c).Status).To(Equal(first.Status))

	cur := f.get(t, c)
	cur.Spec.RedirectURIs = append(cur.Spec.RedirectURIs, "https://app.example.com/cb2")
	cur.Generation++
	g.Expect(f.k8s.Update(context.Background(), cur)).To(Succeed())
	_, err = f.reconcile(t, c)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(patches.take()).To(Equal(1), "a changed spec: one write")
	now := f.get(t, c)
	g.Expect(now.Status.RedirectURIs).To(HaveLen(2))
	g.Expect(now.Status.ObservedGeneration).To(Equal(cur.Generation))
	g.Expect(now.Status.LastSyncTime).NotTo(BeNil())
}

// GroupBinding used to patch on every reconcile; now only a change is written.
func TestGroupBindingStatusWrittenOnlyWhenChanged(t *testing.T) {
	g := NewWithT(t)
	patches := &statusPatches{}
	f := newFixtureWith(t, patches.funcs())
	rec := record.NewFakeRecorder(10)
	r := &controllers.GroupBindingReconciler{Client: f.k8s, Recorder: rec}
	b := &dexv1.GroupBinding{ObjectMeta: metav1.ObjectMeta{Name: "b", Namespace: "team-a", Generation: 1},
		Spec: dexv1.GroupBindingSpec{Expression: `"x" in groups`}}
	g.Expect(f.k8s.Create(context.Background(), b)).To(Succeed())
	req := ctrl.Request{NamespacedName: client.ObjectKeyFromObject(b)}
	get := func() *dexv1.GroupBinding {
		cur := &dexv1.GroupBinding{}
		g.Expect(f.k8s.Get(context.Background(), req.NamespacedName, cur)).To(Succeed())
		return cur
	}

	_, err := r.Reconcile(context.Background(), req)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(patches.take()).To(Equal(1))
	g.Expect(get().Status.ObservedGeneration).To(Equal(int64(1)))
	_, err = r.Reconcile(context.Background(), req)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(patches.take()).To(Equal(0))

	cur := get()
	cur.Spec.Expression = `groups contains`
	cur.Generation++
	g.Expect(f.k8s.Update(context.Background(), cur)).To(Succeed())
	_, err = r.Reconcile(context.Background(), req)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(patches.take()).To(Equal(1))
	bad := get()
	g.Expect(bad.Status.Conditions).To(ContainElement(And(
		HaveField("Type", dexv1.ConditionStalled), HaveField("Reason", dexv1.ReasonCompileError))))
	g.Expect(rec.Events).To(Receive(ContainSubstring("Warning " + dexv1.ReasonCompileError)))
	_, err = r.Reconcile(context.Background(), req)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(patches.take()).To(Equal(0))
	g.Expect(rec.Events).NotTo(Receive(), "no transition, no event")
}

// A status patch of an object deleted meanwhile is no error; any other failure is returned.
func TestStatusPatchFailures(t *testing.T) {
	g := NewWithT(t)
	patches := &statusPatches{fail: apierrors.NewNotFound(schema.GroupResource{Group: "dexterity.dev", Resource: "dexstaticclients"}, "app")}
	f := newFixtureWith(t, patches.funcs())
	c := f.client(t, "team-a", "app", "")
	_, err := f.reconcile(t, c)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(patches.take()).To(Equal(1))

	boom := errors.New("boom")
	patches.fail = boom
	other := f.client(t, "team-a", "other", "")
	_, err = f.reconcile(t, other)
	g.Expect(err).To(MatchError(boom))
	g.Expect(err).To(MatchError(ContainSubstring("failed to patch DexStaticClient status")))
}

// A deleted provider waiting for its dependents says so once (status and event), then writes
// nothing while the wait goes on.
func TestProviderFinalizeStatusWrittenOnce(t *testing.T) {
	g := NewWithT(t)
	patches := &statusPatches{}
	f := newFixtureWith(t, patches.funcs())
	c := f.client(t, "team-a", "app", "")
	_, err := f.reconcile(t, c)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(f.get(t, c).Finalizers).To(ContainElement(controllers.ClientFinalizer))
	patches.take()

	key := client.ObjectKey{Namespace: "platform", Name: "dex"}
	p := &dexv1.OIDCProvider{}
	g.Expect(f.k8s.Get(context.Background(), key, p)).To(Succeed())
	g.Expect(f.k8s.Delete(context.Background(), p)).To(Succeed())
	rec := record.NewFakeRecorder(10)
	// A pointer: the reconciler compares its reader with its client (an interceptor is a struct).
	r := &controllers.OIDCProviderReconciler{Client: &comparableClient{f.k8s}, Recorder: rec, Pool: f.pool}
	req := ctrl.Request{NamespacedName: key}

	_, err = r.Reconcile(context.Background(), req)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(patches.take()).To(Equal(1))
	g.Expect(f.k8s.Get(context.Background(), key, p)).To(Succeed())
	g.Expect(p.Status.Phase).To(Equal(dexv1.PhasePending))
	g.Expect(p.Status.Conditions).To(ContainElement(And(
		HaveField("Type", dexv1.ConditionReady), HaveField("Reason", dexv1.ReasonDeleting))))
	g.Expect(p.Status.Conditions).To(ContainElement(And(
		HaveField("Type", dexv1.ConditionReconciling), HaveField("Reason", dexv1.ReasonDeleting))))
	g.Expect(rec.Events).To(Receive(ContainSubstring("Normal " + dexv1.ReasonDeleting)))

	_, err = r.Reconcile(context.Background(), req)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(patches.take()).To(Equal(0))
	g.Expect(rec.Events).NotTo(Receive())
}

// An OIDCProvider with allowServiceAccountFallback says how the registry checks ServiceAccount
// tokens: verified against the API server's published keys, or rate-limited where it publishes
// none (design.md §4); a provider without the fallback carries no such condition.
func TestProviderShowsServiceAccountFallback(t *testing.T) {
	g := NewWithT(t)
	f := newFixture(t)
	ctx := context.Background()
	key := client.ObjectKey{Namespace: "platform", Name: "dex"}
	p := &dexv1.OIDCProvider{}
	g.Expect(f.k8s.Get(ctx, key, p)).To(Succeed())
	orig := p.DeepCopy()
	p.Spec.AllowServiceAccountFallback = true
	g.Expect(f.k8s.Patch(ctx, p, client.MergeFrom(orig))).To(Succeed())

	published, msg := false, "the API server publishes no service-account keys; at most 5 TokenReviews per second"
	r := &controllers.OIDCProviderReconciler{Client: &comparableClient{f.k8s}, Recorder: record.NewFakeRecorder(100), Pool: f.pool,
		Keys: oidc.NewCache(), ServiceAccountFallback: func() (bool, string) { return published, msg }}
	cond := func() metav1.Condition {
		_, _ = r.Reconcile(ctx, ctrl.Request{NamespacedName: key})
		g.Expect(f.k8s.Get(ctx, key, p)).To(Succeed())
		c := meta.FindStatusCondition(p.Status.Conditions, dexv1.ConditionServiceAccountFallback)
		if c == nil {
			return metav1.Condition{}
		}
		return *c
	}
	g.Expect(cond()).To(And(HaveField("Status", metav1.ConditionFalse), HaveField("Reason", dexv1.ReasonRateLimited), HaveField("Message", msg)))

	published, msg = true, "ServiceAccount tokens are verified against the 1 keys the API server publishes"
	g.Expect(cond()).To(And(HaveField("Status", metav1.ConditionTrue), HaveField("Reason", dexv1.ReasonKeysPublished)))

	orig = p.DeepCopy()
	p.Spec.AllowServiceAccountFallback = false
	g.Expect(f.k8s.Patch(ctx, p, client.MergeFrom(orig))).To(Succeed())
	g.Expect(cond()).To(Equal(metav1.Condition{}))
}

// What a tenant writes on its own objects beyond what the controllers read never reaches the
// manager's cache: Secrets (watched as metadata) keep no annotations or labels, tenant kinds only
// the legacy ownership annotation (design.md §7: 0.1 KiB per unrelated Secret, 4 KiB per client,
// whatever a tenant writes; the API server allows 256 KiB of annotations per object).
func TestCacheKeepsNoTenantAnnotations(t *testing.T) {
	g := NewWithT(t)
	transform := controllers.CacheOptions().DefaultTransform
	big := map[string]string{"balloon": strings.Repeat("x", 200<<10)}

	// Anyone who may create a Secret may label it to be watched: finalizers and owner references
	// (as many as the API server takes) are not kept either, but for the controlling owner.
	controller := metav1.OwnerReference{APIVersion: "dexterity.dev/v1alpha1", Kind: "Dex", Name: "dex", UID: "u", Controller: ptr.To(true)}
	finalizers := make([]string, 1000)
	owners := []metav1.OwnerReference{controller}
	for i := range finalizers {
		finalizers[i] = fmt.Sprintf("example.com/f-%d-%s", i, strings.Repeat("z", 200))
		owners = append(owners, metav1.OwnerReference{APIVersion: "v1", Kind: "ConfigMap", Name: finalizers[i], UID: "x"})
	}
	secret := &metav1.PartialObjectMetadata{ObjectMeta: metav1.ObjectMeta{Name: "s", Namespace: "team-a",
		Annotations: big, Labels: map[string]string{"l": strings.Repeat("y", 63)}, Finalizers: finalizers, OwnerReferences: owners}}
	out, err := transform(secret)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(out.(*metav1.PartialObjectMetadata).Annotations).To(BeEmpty())
	g.Expect(out.(*metav1.PartialObjectMetadata).Labels).To(BeEmpty())
	g.Expect(out.(*metav1.PartialObjectMetadata).Finalizers).To(BeEmpty())
	g.Expect(out.(*metav1.PartialObjectMetadata).OwnerReferences).To(Equal([]metav1.OwnerReference{controller}))

	ann := map[string]string{controllers.LegacyAnnotationRegisteredClientID: "team-a-app"}
	for k, v := range big {
		ann[k] = v
	}
	c := &dexv1.DexStaticClient{ObjectMeta: metav1.ObjectMeta{Name: "app", Namespace: "team-a", Annotations: ann, Labels: map[string]string{"a": "b"}}}
	out, err = transform(c)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(out.(*dexv1.DexStaticClient).Annotations).To(Equal(map[string]string{controllers.LegacyAnnotationRegisteredClientID: "team-a-app"}))
	g.Expect(out.(*dexv1.DexStaticClient).Labels).To(BeEmpty())

	for _, obj := range []client.Object{&dexv1.GroupBinding{}, &dexv1.Module{}, &dexv1.Provider{}} {
		obj.SetAnnotations(map[string]string{"balloon": big["balloon"]})
		out, err := transform(obj)
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(out.(client.Object).GetAnnotations()).To(BeEmpty(), "%T", obj)
	}
}

// A DexConnector on a Dex release without the connector API (before v2.41) waits for the user
// with a condition naming the release and the minimum: nothing is written to Dex, no claim is
// made, and the object is Stalled rather than retried with backoff.
func TestConnectorOnDexWithoutConnectorAPI(t *testing.T) {
	g := NewWithT(t)
	f := newFixture(t)
	ctx := context.Background()
	f.dex.SetConnectorAPI(false)
	key := client.ObjectKey{Namespace: "platform", Name: "dex"}
	p := &dexv1.OIDCProvider{}
	g.Expect(f.k8s.Get(ctx, key, p)).To(Succeed())
	p.Status.Dex = &dexv1.DexVersionStatus{Version: "v2.39.1", API: 2}
	g.Expect(f.k8s.Status().Update(ctx, p)).To(Succeed())
	conn := &dexv1.DexConnector{
		ObjectMeta: metav1.ObjectMeta{Name: "github", Namespace: "platform", UID: "uid-conn", Generation: 1},
		Spec: dexv1.DexConnectorSpec{ProviderRef: dexv1.ObjectRef{Name: "dex"}, ConnectorID: "github", Type: "mockCallback",
			Config: &apiextensionsv1.JSON{Raw: []byte(`{}`)}},
	}
	g.Expect(f.k8s.Create(ctx, conn)).To(Succeed())
	r := &controllers.DexConnectorReconciler{DexEntryDeps: controllers.DexEntryDeps{Client: f.k8s, APIReader: f.k8s, Recorder: record.NewFakeRecorder(100), Pool: f.pool}}
	res, err := r.Reconcile(ctx, ctrl.Request{NamespacedName: client.ObjectKeyFromObject(conn)})
	g.Expect(err).NotTo(HaveOccurred(), "waits for the user: no error, so no backoff loop")
	// Nor a requeue of its own: the kind's periodic resync looks at it again.
	g.Expect(res).To(Equal(ctrl.Result{}))
	g.Expect(f.k8s.Get(ctx, client.ObjectKeyFromObject(conn), conn)).To(Succeed())
	ready := meta.FindStatusCondition(conn.Status.Conditions, dexv1.ConditionReady)
	g.Expect(ready).NotTo(BeNil())
	g.Expect(ready.Reason).To(Equal(dexv1.ReasonDexVersionUnsupported))
	g.Expect(ready.Message).To(And(ContainSubstring("v2.39.1"), ContainSubstring(controllers.MinDexForConnectors)))
	g.Expect(meta.IsStatusConditionTrue(conn.Status.Conditions, dexv1.ConditionStalled)).To(BeTrue())
	g.Expect(f.dex.WriteCalls()).To(BeZero())
	var claims claimsv1.DexEntryClaimList
	g.Expect(f.k8s.List(ctx, &claims)).To(Succeed())
	g.Expect(claims.Items).To(BeEmpty(), "no claim for a connector that cannot be registered")
}
