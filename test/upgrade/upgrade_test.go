// Package upgrade proves that an install of a version before DexEntryClaims keeps its clients and
// connectors: objects that own their ids under the old annotation (confirmed by their status) are
// carried over to claims, and nothing else is.
package upgrade

import (
	"context"
	"os"
	"testing"
	"time"

	api "github.com/dexidp/dex/api/v2"
	. "github.com/onsi/gomega"
	"go.uber.org/zap/zapcore"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	claimsv1 "dexterity.dev/dexterity/api/claims/v1alpha1"
	dexv1 "dexterity.dev/dexterity/api/v1alpha1"
	"dexterity.dev/dexterity/controllers"
	"dexterity.dev/dexterity/internal/dex"
	"dexterity.dev/dexterity/internal/oidc"
	"dexterity.dev/dexterity/test/harness"
)

const (
	claimsCRD = "claims.dexterity.dev_dexentryclaims.yaml"
	timeout   = 30 * time.Second
)

func TestUpgradeCarriesLegacyOwnersOver(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	// The install before the upgrade: no claims CRD.
	env, err := harness.StartEnv(harness.EnvOptions{WithoutCRDs: []string{claimsCRD}})
	g.Expect(err).NotTo(HaveOccurred())
	t.Cleanup(func() { _ = env.Stop() })
	k8s := env.Client
	d, err := harness.StartDex(harness.DexOptions{Dir: t.TempDir()})
	g.Expect(err).NotTo(HaveOccurred())
	t.Cleanup(func() { _ = d.Stop() })
	dapi, closer, err := d.Client()
	g.Expect(err).NotTo(HaveOccurred())
	t.Cleanup(func() { _ = closer.Close() })

	ns := "team"
	g.Expect(k8s.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}})).To(Succeed())
	g.Expect(k8s.Create(ctx, &dexv1.OIDCProvider{
		ObjectMeta: metav1.ObjectMeta{Name: "dex", Namespace: ns, Finalizers: []string{controllers.ProviderFinalizer}},
		Spec: dexv1.OIDCProviderSpec{IssuerURL: d.IssuerURL(), ClientID: "registry",
			Dex: &dexv1.DexAdminSpec{GRPCAddress: d.GRPCAddress(), Insecure: true}},
	})).To(Succeed())

	// What the old version left: a client and a connector it registered (annotation, finalizer,
	// status), each in Dex; and an object whose annotation a tenant wrote, for a client created in
	// Dex by hand, which the old version had not acted on yet (no status).
	g.Expect(k8s.Create(ctx, &dexv1.DexStaticClient{
		ObjectMeta: metav1.ObjectMeta{Name: "app", Namespace: ns,
			Annotations: map[string]string{controllers.LegacyAnnotationRegisteredClientID: "team-app"},
			Finalizers:  []string{controllers.ClientFinalizer}},
		Spec: dexv1.DexStaticClientSpec{ProviderRef: dexv1.ObjectRef{Name: "dex"}, DisplayName: "App", RedirectURIs: []string{"https://app.example.com/cb"},
			SecretRef: &dexv1.SecretKeyRef{Name: "app", Key: "secret"}},
	})).To(Succeed())
	g.Expect(k8s.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "app", Namespace: ns}, StringData: map[string]string{"secret": "app-secret"}})).To(Succeed())
	_, err = dapi.CreateClient(ctx, &api.CreateClientReq{Client: &api.Client{Id: "team-app", Name: "App", Secret: "app-secret", RedirectUris: []string{"https://app.example.com/cb"}}})
	g.Expect(err).NotTo(HaveOccurred())
	setStatus(t, k8s, &dexv1.DexStaticClient{}, client.ObjectKey{Namespace: ns, Name: "app"}, func(o client.Object) {
		c := o.(*dexv1.DexStaticClient)
		c.Status.ClientID = "team-app"
		meta.SetStatusCondition(&c.Status.Conditions, metav1.Condition{Type: dexv1.ConditionRegistered, Status: metav1.ConditionTrue, Reason: dexv1.ReasonReconciled, Message: "client registered in Dex"})
	})

	g.Expect(k8s.Create(ctx, &dexv1.DexConnector{
		ObjectMeta: metav1.ObjectMeta{Name: "mock", Namespace: ns,
			Annotations: map[string]string{controllers.LegacyAnnotationRegisteredConnectorID: "mock"},
			Finalizers:  []string{controllers.ConnectorFinalizer}},
		Spec: dexv1.DexConnectorSpec{ProviderRef: dexv1.ObjectRef{Name: "dex"}, ConnectorID: "mock", Type: "mockCallback", DisplayName: "Mock"},
	})).To(Succeed())
	_, err = dapi.CreateConnector(ctx, &api.CreateConnectorReq{Connector: &api.Connector{Id: "mock", Type: "mockCallback", Name: "Mock", Config: []byte("{}")}})
	g.Expect(err).NotTo(HaveOccurred())
	setStatus(t, k8s, &dexv1.DexConnector{}, client.ObjectKey{Namespace: ns, Name: "mock"}, func(o client.Object) {
		c := o.(*dexv1.DexConnector)
		meta.SetStatusCondition(&c.Status.Conditions, metav1.Condition{Type: dexv1.ConditionRegistered, Status: metav1.ConditionTrue, Reason: dexv1.ReasonReconciled, Message: "connector registered in Dex"})
	})

	_, err = dapi.CreateClient(ctx, &api.CreateClientReq{Client: &api.Client{Id: "hand-made", Name: "hand-made", Secret: "hand-secret", RedirectUris: []string{"https://hand.example.com/cb"}}})
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(k8s.Create(ctx, &dexv1.DexStaticClient{
		ObjectMeta: metav1.ObjectMeta{Name: "grab", Namespace: ns,
			Annotations: map[string]string{controllers.LegacyAnnotationRegisteredClientID: "hand-made"},
			Finalizers:  []string{controllers.ClientFinalizer}},
		Spec: dexv1.DexStaticClientSpec{ProviderRef: dexv1.ObjectRef{Name: "dex"}, ClientID: "hand-made", Public: true, DisplayName: "grabbed", RedirectURIs: []string{"https://evil.example.com/cb"}},
	})).To(Succeed())

	// The upgrade: the claims CRD arrives, then the new manager starts.
	g.Expect(env.InstallCRD(claimsCRD)).To(Succeed())
	startManager(t, env)

	appKey := client.ObjectKey{Namespace: ns, Name: "app"}
	g.Eventually(func(g Gomega) {
		c := &dexv1.DexStaticClient{}
		g.Expect(k8s.Get(ctx, appKey, c)).To(Succeed())
		g.Expect(meta.IsStatusConditionTrue(c.Status.Conditions, dexv1.ConditionReady)).To(BeTrue(), "conditions: %v", c.Status.Conditions)
		g.Expect(c.Annotations).NotTo(HaveKey(controllers.LegacyAnnotationRegisteredClientID), "the legacy annotation is dropped")
		g.Expect(c.Finalizers).To(ContainElement(controllers.ClientFinalizer))
		cl := &claimsv1.DexEntryClaim{}
		g.Expect(k8s.Get(ctx, client.ObjectKey{Name: claimsv1.EntryClaimName(claimsv1.EntryClient, d.GRPCAddress(), "team-app")}, cl)).To(Succeed())
		g.Expect(cl.Spec.Owner.UID).To(Equal(c.UID))
	}, timeout).Should(Succeed())
	resp, err := dapi.GetClient(ctx, &api.GetClientReq{Id: "team-app"})
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(resp.GetClient().GetSecret()).To(Equal("app-secret"), "the client was kept, not re-registered")
	g.Expect(eventReasons(t, k8s, ns, "app")).NotTo(ContainElement("Reregistered"))

	g.Eventually(func(g Gomega) {
		c := &dexv1.DexConnector{}
		g.Expect(k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: "mock"}, c)).To(Succeed())
		g.Expect(meta.IsStatusConditionTrue(c.Status.Conditions, dexv1.ConditionRegistered)).To(BeTrue(), "conditions: %v", c.Status.Conditions)
		g.Expect(c.Annotations).NotTo(HaveKey(controllers.LegacyAnnotationRegisteredConnectorID))
		cl := &claimsv1.DexEntryClaim{}
		g.Expect(k8s.Get(ctx, client.ObjectKey{Name: claimsv1.EntryClaimName(claimsv1.EntryConnector, d.GRPCAddress(), "mock")}, cl)).To(Succeed())
		g.Expect(cl.Spec.Owner.UID).To(Equal(c.UID))
	}, timeout).Should(Succeed())

	// The tenant-written annotation without a confirming status is nobody's claim.
	g.Eventually(func(g Gomega) {
		c := &dexv1.DexStaticClient{}
		g.Expect(k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: "grab"}, c)).To(Succeed())
		r := meta.FindStatusCondition(c.Status.Conditions, dexv1.ConditionReady)
		g.Expect(r).NotTo(BeNil())
		g.Expect(r.Reason).To(Equal(dexv1.ReasonClientExistsInDex))
	}, timeout).Should(Succeed())
	hand, err := dapi.GetClient(ctx, &api.GetClientReq{Id: "hand-made"})
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(hand.GetClient().GetName()).To(Equal("hand-made"))

	// Deleting a carried-over client removes it from Dex through its claim.
	g.Expect(k8s.Delete(ctx, &dexv1.DexStaticClient{ObjectMeta: metav1.ObjectMeta{Name: "app", Namespace: ns}})).To(Succeed())
	g.Eventually(func() bool {
		_, err := dapi.GetClient(ctx, &api.GetClientReq{Id: "team-app"})
		return err != nil
	}, timeout).Should(BeTrue())
	g.Eventually(func() bool {
		return apierrors.IsNotFound(k8s.Get(ctx, appKey, &dexv1.DexStaticClient{}))
	}, timeout).Should(BeTrue())
	// And deleting the forged one leaves the hand-made client alone.
	g.Expect(k8s.Delete(ctx, &dexv1.DexStaticClient{ObjectMeta: metav1.ObjectMeta{Name: "grab", Namespace: ns}})).To(Succeed())
	g.Eventually(func() bool {
		return apierrors.IsNotFound(k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: "grab"}, &dexv1.DexStaticClient{}))
	}, timeout).Should(BeTrue())
	hand, err = dapi.GetClient(ctx, &api.GetClientReq{Id: "hand-made"})
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(hand.GetClient().GetSecret()).To(Equal("hand-secret"))
}

func setStatus(t *testing.T, k8s client.Client, obj client.Object, key client.ObjectKey, mut func(client.Object)) {
	t.Helper()
	g := NewWithT(t)
	g.Expect(k8s.Get(context.Background(), key, obj)).To(Succeed())
	orig := obj.DeepCopyObject().(client.Object)
	mut(obj)
	g.Expect(k8s.Status().Patch(context.Background(), obj, client.MergeFrom(orig))).To(Succeed())
}

func eventReasons(t *testing.T, k8s client.Client, ns, name string) []string {
	t.Helper()
	out, err := harness.EventReasons(context.Background(), k8s, ns, name)
	NewWithT(t).Expect(err).NotTo(HaveOccurred())
	return out
}

func startManager(t *testing.T, env *harness.Env) {
	t.Helper()
	g := NewWithT(t)
	mgr, err := ctrl.NewManager(env.Config, ctrl.Options{Scheme: harness.Scheme, Metrics: metricsserver.Options{BindAddress: "0"},
		Cache: controllers.CacheOptions(), Client: controllers.ClientOptions()})
	g.Expect(err).NotTo(HaveOccurred())
	pool := dex.NewPool()
	g.Expect(controllers.SetupWithManager(mgr, pool, oidc.NewCache(), controllers.Options{ResyncPeriod: 3 * time.Second, MaxRetryDelay: 2 * time.Second})).To(Succeed())
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- mgr.Start(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Log("manager:", err)
		}
		pool.Close()
	})
}

func TestMain(m *testing.M) {
	ctrl.SetLogger(zap.New(zap.WriteTo(os.Stderr), zap.Level(zapcore.ErrorLevel)))
	os.Exit(m.Run())
}
