package controllers_test

import (
	"context"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	dexv1 "dexterity.dev/dexterity/api/v1alpha1"
	"dexterity.dev/dexterity/controllers"
	"dexterity.dev/dexterity/internal/dexdeploy"
)

const demoHash = "$2a$10$vrAFyljbDVbAqNauKPMj7eWGAPsTdbUTgJ8HsJ/OdG0pjjrL0X1F."

func newDex(ns, name string) *dexv1.Dex {
	return &dexv1.Dex{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: dexv1.DexSpec{
			Issuer:           "http://" + name + "." + ns + ".svc:5556/dex",
			EnablePasswordDB: true,
			StaticPasswords: []dexv1.DexStaticPassword{{
				Email: "admin@example.com", Username: "admin", UserID: "1", Groups: []string{"platform"},
				HashSecretRef: dexv1.SecretKeyRef{Name: "users", Key: "admin"},
			}},
		},
	}
}

func dexCondition(key client.ObjectKey, condType string) func(g Gomega) metav1.Condition {
	return func(g Gomega) metav1.Condition {
		d := &dexv1.Dex{}
		g.Expect(k8s.Get(context.Background(), key, d)).To(Succeed())
		g.Expect(d.Status.ObservedGeneration).To(Equal(d.Generation))
		c := meta.FindStatusCondition(d.Status.Conditions, condType)
		g.Expect(c).NotTo(BeNil(), "condition %s not set yet", condType)
		return *c
	}
}

// markAvailable writes the Deployment's status as the deployment controller would once its pods
// are ready (envtest has no controller-manager).
func markAvailable(g Gomega, ns, name string) {
	dep := &appsv1.Deployment{}
	g.Expect(k8s.Get(context.Background(), types.NamespacedName{Namespace: ns, Name: name}, dep)).To(Succeed())
	dep.Status = appsv1.DeploymentStatus{
		ObservedGeneration: dep.Generation, Replicas: *dep.Spec.Replicas, UpdatedReplicas: *dep.Spec.Replicas,
		ReadyReplicas: *dep.Spec.Replicas, AvailableReplicas: *dep.Spec.Replicas,
		Conditions: []appsv1.DeploymentCondition{{Type: appsv1.DeploymentAvailable, Status: corev1.ConditionTrue, Reason: "MinimumReplicasAvailable", LastUpdateTime: metav1.Now(), LastTransitionTime: metav1.Now()}},
	}
	g.Expect(k8s.Status().Update(context.Background(), dep)).To(Succeed())
}

func TestDexRendersEverything(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ns := newNamespace(t)
	g.Expect(k8s.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "users"}, StringData: map[string]string{"admin": demoHash}})).To(Succeed())
	d := newDex(ns, "dex")
	d.Spec.ConnectorNamespaces = &dexv1.AllowedNamespaces{From: dexv1.NamespacesFromSame}
	d.Spec.ClientIDPrefix = "{namespace}-"
	g.Expect(k8s.Create(ctx, d)).To(Succeed())
	key := client.ObjectKeyFromObject(d)

	// Config valid, but no pod runs in envtest: work in progress, not a failure.
	g.Eventually(dexCondition(key, dexv1.ConditionConfigValid), waitTimeout).Should(HaveField("Status", metav1.ConditionTrue))
	g.Eventually(dexCondition(key, dexv1.ConditionReconciling), waitTimeout).Should(HaveField("Reason", dexv1.ReasonDeploymentUnavailable))

	get := func(obj client.Object, name string) {
		t.Helper()
		g.Expect(k8s.Get(ctx, types.NamespacedName{Namespace: ns, Name: name}, obj)).To(Succeed())
		g.Expect(metav1.IsControlledBy(obj, d)).To(BeTrue(), "%T %s is controlled by the Dex", obj, name)
	}
	dep := &appsv1.Deployment{}
	get(dep, "dex")
	c := dep.Spec.Template.Spec.Containers[0]
	g.Expect(c.Command).To(Equal([]string{dexdeploy.BinaryPath, "serve", dexdeploy.ConfigFile}))
	g.Expect(c.Env).To(ContainElement(corev1.EnvVar{Name: "DEX_API_CONNECTORS_CRUD", Value: "true"}))
	g.Expect(c.Env).To(ContainElement(HaveField("ValueFrom.SecretKeyRef.Name", "users")))
	g.Expect(dep.Spec.Template.Annotations).To(HaveKey(dexdeploy.AnnotationConfigHash))
	g.Expect(c.ReadinessProbe.HTTPGet.Path).To(Equal("/healthz/ready"))
	g.Expect(*dep.Spec.Template.Spec.AutomountServiceAccountToken).To(BeTrue(), "the kubernetes storage needs the token")

	config := &corev1.Secret{}
	get(config, "dex-config")
	g.Expect(string(config.Data["config.yaml"])).To(ContainSubstring(`"hashFromEnv"`))
	g.Expect(string(config.Data["config.yaml"])).To(ContainSubstring(`"crdHandling": "check"`))
	g.Expect(string(config.Data["config.yaml"])).NotTo(ContainSubstring(demoHash), "no secret value in the config Secret")

	svc := &corev1.Service{}
	get(svc, "dex")
	var ports []string
	for _, p := range svc.Spec.Ports {
		ports = append(ports, p.Name)
	}
	g.Expect(ports).To(ConsistOf("http", "grpc", "telemetry"))
	get(&corev1.ServiceAccount{}, "dex")
	role := &rbacv1.Role{}
	get(role, "dex-storage")
	g.Expect(role.Rules[0].APIGroups).To(Equal([]string{"dex.coreos.com"}))
	get(&rbacv1.RoleBinding{}, "dex-storage")
	for _, name := range []string{"dex-grpc-ca", "dex-grpc-server", "dex-grpc-client"} {
		s := &corev1.Secret{}
		get(s, name)
		g.Expect(s.Data).To(HaveKey("ca.crt"))
	}

	p := &dexv1.OIDCProvider{}
	get(p, "dex")
	g.Expect(p.Spec.IssuerURL).To(Equal(d.Spec.Issuer))
	g.Expect(p.Spec.DiscoveryURL).To(BeEmpty(), "the issuer is the Service itself")
	g.Expect(p.Spec.Dex.GRPCAddress).To(Equal("dex." + ns + ".svc:5557"))
	g.Expect(p.Spec.Dex.TLS.SecretRef.Name).To(Equal("dex-grpc-client"))
	g.Expect(p.Spec.Dex.ClientIDPrefix).To(Equal("{namespace}-"))

	got := &dexv1.Dex{}
	g.Expect(k8s.Get(ctx, key, got)).To(Succeed())
	g.Expect(got.Status.GRPCAddress).To(Equal("dex." + ns + ".svc:5557"))
	g.Expect(got.Status.OIDCProviderRef).To(Equal(&dexv1.ObjectRef{Name: "dex", Namespace: ns}))

	// The pods come up: Available, Ready, neither Reconciling nor Stalled (kstatus: Current).
	g.Eventually(func(g Gomega) { markAvailable(g, ns, "dex") }, waitTimeout).Should(Succeed())
	g.Eventually(dexCondition(key, dexv1.ConditionReady), waitTimeout).Should(HaveField("Status", metav1.ConditionTrue))
	g.Expect(k8s.Get(ctx, key, got)).To(Succeed())
	g.Expect(meta.FindStatusCondition(got.Status.Conditions, dexv1.ConditionReconciling)).To(BeNil())
	g.Expect(got.Status.Replicas).To(Equal(int32(1)))

	// A reconcile that changes nothing (the Deployment's status moved) writes nothing.
	versions := func() map[string]string {
		out := map[string]string{}
		for name, obj := range map[string]client.Object{
			"secret/dex-config": &corev1.Secret{}, "secret/dex-grpc-ca": &corev1.Secret{}, "secret/dex-grpc-server": &corev1.Secret{},
			"secret/dex-grpc-client": &corev1.Secret{}, "service/dex": &corev1.Service{}, "oidcprovider/dex": &dexv1.OIDCProvider{},
			"role/dex-storage": &rbacv1.Role{}, "serviceaccount/dex": &corev1.ServiceAccount{},
		} {
			g.Expect(k8s.Get(ctx, types.NamespacedName{Namespace: ns, Name: strings.SplitN(name, "/", 2)[1]}, obj)).To(Succeed())
			out[name] = obj.GetResourceVersion()
		}
		return out
	}
	before := versions()
	g.Expect(k8s.Get(ctx, types.NamespacedName{Namespace: ns, Name: "dex"}, dep)).To(Succeed())
	dep.Status.ReadyReplicas = 1
	dep.Status.Conditions[0].Message = "touched"
	g.Expect(k8s.Status().Update(ctx, dep)).To(Succeed())
	g.Consistently(func(g Gomega) {
		g.Expect(versions()).To(Equal(before))
		cur := &appsv1.Deployment{}
		g.Expect(k8s.Get(ctx, types.NamespacedName{Namespace: ns, Name: "dex"}, cur)).To(Succeed())
		g.Expect(cur.Generation).To(Equal(dep.Generation), "the Deployment's spec was not rewritten")
	}, 2*time.Second, 200*time.Millisecond).Should(Succeed())

	// A spec change rolls the pods (a new config hash in the template).
	oldHash := dep.Spec.Template.Annotations[dexdeploy.AnnotationConfigHash]
	updateDex(g, key, func(d *dexv1.Dex) { d.Spec.Expiry = &dexv1.DexExpiry{IDTokens: "1h"} })
	g.Eventually(func(g Gomega) string {
		cur := &appsv1.Deployment{}
		g.Expect(k8s.Get(ctx, types.NamespacedName{Namespace: ns, Name: "dex"}, cur)).To(Succeed())
		return cur.Spec.Template.Annotations[dexdeploy.AnnotationConfigHash]
	}, waitTimeout).ShouldNot(Equal(oldHash))
	g.Eventually(dexCondition(key, dexv1.ConditionReady), waitTimeout).Should(HaveField("Status", metav1.ConditionFalse), "rolling out")
}

// updateDex changes a Dex, retrying on conflicts with the controller's own writes.
func updateDex(g Gomega, key client.ObjectKey, edit func(*dexv1.Dex)) {
	g.Eventually(func() error {
		d := &dexv1.Dex{}
		if err := k8s.Get(context.Background(), key, d); err != nil {
			return err
		}
		edit(d)
		return k8s.Update(context.Background(), d)
	}, waitTimeout).Should(Succeed())
}

func TestDexDisruptionBudgetFollowsReplicas(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ns := newNamespace(t)
	d := newDex(ns, "dex")
	d.Spec.StaticPasswords, d.Spec.EnablePasswordDB = nil, false
	d.Spec.Replicas = ptr.To[int32](3)
	g.Expect(k8s.Create(ctx, d)).To(Succeed())
	pdb := &policyv1.PodDisruptionBudget{}
	g.Eventually(func() error { return k8s.Get(ctx, types.NamespacedName{Namespace: ns, Name: "dex"}, pdb) }, waitTimeout).Should(Succeed())
	g.Expect(pdb.Spec.MaxUnavailable.IntValue()).To(Equal(1))
	updateDex(g, client.ObjectKeyFromObject(d), func(d *dexv1.Dex) { d.Spec.Replicas = ptr.To[int32](1) })
	g.Eventually(func() bool {
		return apierrors.IsNotFound(k8s.Get(ctx, types.NamespacedName{Namespace: ns, Name: "dex"}, &policyv1.PodDisruptionBudget{}))
	}, waitTimeout).Should(BeTrue())
}

// TestDexWaitsForItsSecret: a missing Secret stalls the Dex (kstatus Failed) with the field and
// the fix, and nothing is rolled out half: no Deployment until the Secret is there.
func TestDexWaitsForItsSecret(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ns := newNamespace(t)
	d := newDex(ns, "dex")
	g.Expect(k8s.Create(ctx, d)).To(Succeed())
	key := client.ObjectKeyFromObject(d)
	g.Eventually(dexCondition(key, dexv1.ConditionStalled), waitTimeout).Should(And(
		HaveField("Reason", dexv1.ReasonSecretNotFound),
		HaveField("Message", ContainSubstring("spec.staticPasswords[0].hashSecretRef")),
	))
	g.Expect(apierrors.IsNotFound(k8s.Get(ctx, types.NamespacedName{Namespace: ns, Name: "dex"}, &appsv1.Deployment{}))).To(BeTrue())
	g.Expect(k8s.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "users"}, StringData: map[string]string{"admin": demoHash}})).To(Succeed())
	g.Eventually(dexCondition(key, dexv1.ConditionConfigValid), waitTimeout).Should(HaveField("Status", metav1.ConditionTrue))
}

// TestDexNeverTakesOverForeignObjects: a Service of the same name that is not the Dex's is left
// alone and reported.
func TestDexNeverTakesOverForeignObjects(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ns := newNamespace(t)
	foreign := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "dex"}, Spec: corev1.ServiceSpec{Ports: []corev1.ServicePort{{Name: "web", Port: 80}}}}
	g.Expect(k8s.Create(ctx, foreign)).To(Succeed())
	d := newDex(ns, "dex")
	d.Spec.StaticPasswords, d.Spec.EnablePasswordDB = nil, false
	g.Expect(k8s.Create(ctx, d)).To(Succeed())
	g.Eventually(dexCondition(client.ObjectKeyFromObject(d), dexv1.ConditionStalled), waitTimeout).Should(And(
		HaveField("Reason", dexv1.ReasonOwnedByOther),
		HaveField("Message", ContainSubstring("Service "+ns+"/dex")),
	))
	got := &corev1.Service{}
	g.Expect(k8s.Get(ctx, client.ObjectKeyFromObject(foreign), got)).To(Succeed())
	g.Expect(got.Spec.Ports).To(HaveLen(1))
	g.Expect(got.OwnerReferences).To(BeEmpty())
}

func TestDexAdmission(t *testing.T) {
	ns := newNamespace(t)
	for _, c := range []struct {
		name  string
		edit  func(*dexv1.Dex)
		field string
	}{
		{"replicas on sqlite3", func(d *dexv1.Dex) {
			d.Spec.Replicas = ptr.To[int32](2)
			d.Spec.Storage = &dexv1.DexStorage{Type: dexv1.DexStorageSQLite3}
		}, "spec.replicas"},
		{"replicas on memory", func(d *dexv1.Dex) {
			d.Spec.Replicas = ptr.To[int32](2)
			d.Spec.Storage = &dexv1.DexStorage{Type: dexv1.DexStorageMemory}
		}, "spec.replicas"},
		{"plain http public issuer", func(d *dexv1.Dex) { d.Spec.Issuer = "http://dex.example.com/dex" }, "spec.issuer"},
		{"static passwords without the password DB", func(d *dexv1.Dex) { d.Spec.EnablePasswordDB = false }, "spec.staticPasswords"},
		{"postgres without its settings", func(d *dexv1.Dex) { d.Spec.Storage = &dexv1.DexStorage{Type: dexv1.DexStoragePostgres} }, "spec.storage.postgres"},
	} {
		t.Run(c.name, func(t *testing.T) {
			g := NewWithT(t)
			d := newDex(ns, "bad")
			c.edit(d)
			err := k8s.Create(context.Background(), d)
			g.Expect(apierrors.IsInvalid(err)).To(BeTrue(), "got %v", err)
			g.Expect(err.Error()).To(ContainSubstring(c.field))
		})
	}
	g := NewWithT(t)
	d := newDex(ns, "good")
	d.Spec.Replicas = ptr.To[int32](2) // kubernetes storage: several replicas are fine
	g.Expect(k8s.Create(context.Background(), d)).To(Succeed())
}

// TestDexDeletionRemovesEverything: the OIDCProvider goes first, then everything else; envtest
// has no garbage collector, so this is the controller's own cleanup.
func TestDexDeletionRemovesEverything(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ns := newNamespace(t)
	d := newDex(ns, "dex")
	d.Spec.StaticPasswords, d.Spec.EnablePasswordDB = nil, false
	// Applied with kubectl: the cache drops the last-applied annotation, and the operator's
	// finalizer writes (patches, not updates of the cached copy) must keep it in the object.
	d.Annotations = map[string]string{corev1.LastAppliedConfigAnnotation: `{"kind":"Dex"}`}
	g.Expect(k8s.Create(ctx, d)).To(Succeed())
	g.Eventually(func() error {
		return k8s.Get(ctx, types.NamespacedName{Namespace: ns, Name: "dex"}, &dexv1.OIDCProvider{})
	}, waitTimeout).Should(Succeed())
	got := &dexv1.Dex{}
	g.Expect(k8s.Get(ctx, client.ObjectKeyFromObject(d), got)).To(Succeed())
	g.Expect(got.Finalizers).To(ContainElement(controllers.DexFinalizer))
	g.Expect(got.Annotations).To(HaveKeyWithValue(corev1.LastAppliedConfigAnnotation, `{"kind":"Dex"}`))
	g.Eventually(func() error {
		return k8s.Get(ctx, types.NamespacedName{Namespace: ns, Name: "dex"}, &appsv1.Deployment{})
	}, waitTimeout).Should(Succeed())
	g.Expect(k8s.Delete(ctx, d)).To(Succeed())
	g.Eventually(func() bool { return apierrors.IsNotFound(k8s.Get(ctx, client.ObjectKeyFromObject(d), &dexv1.Dex{})) }, waitTimeout).Should(BeTrue())
	for name, obj := range map[string]client.Object{
		"dex": &appsv1.Deployment{}, "dex-config": &corev1.Secret{}, "dex-grpc-ca": &corev1.Secret{},
		"dex-grpc-client": &corev1.Secret{}, "dex-storage": &rbacv1.Role{},
	} {
		g.Expect(apierrors.IsNotFound(k8s.Get(ctx, types.NamespacedName{Namespace: ns, Name: name}, obj))).To(BeTrue(), "%T %s is gone", obj, name)
	}
	g.Expect(apierrors.IsNotFound(k8s.Get(ctx, types.NamespacedName{Namespace: ns, Name: "dex"}, &dexv1.OIDCProvider{}))).To(BeTrue())
	g.Expect(apierrors.IsNotFound(k8s.Get(ctx, types.NamespacedName{Namespace: ns, Name: "dex"}, &corev1.Service{}))).To(BeTrue())
}
