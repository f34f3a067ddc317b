package install

import (
	"context"
	"crypto/x509/pkix"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	api "github.com/dexidp/dex/api/v2"
	. "github.com/onsi/gomega"
	operatorsv1alpha1 "github.com/operator-framework/api/pkg/operators/v1alpha1"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	authnv1 "k8s.io/api/authentication/v1"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/config"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
	"sigs.k8s.io/controller-runtime/pkg/webhook"

	dexv1 "dexterity.dev/dexterity/api/v1alpha1"
	"dexterity.dev/dexterity/controllers"
	"dexterity.dev/dexterity/internal/dex"
	"dexterity.dev/dexterity/internal/oidc"
	"dexterity.dev/dexterity/internal/registry"
	"dexterity.dev/dexterity/internal/webhookcert"
	"dexterity.dev/dexterity/test/harness"
	"dexterity.dev/dexterity/webhooks"
)

// installation is what an install left in the cluster for the manager, and how it runs it.
type installation struct {
	namespace, serviceAccount string
	certDir                   string              // the webhook cert dir, as the pod would see it
	certs                     webhookcert.Options // as the flags and POD_NAMESPACE set them
	wantMode                  webhookcert.Mode
}

// The permissions an install grants are enough: the manager, wired as cmd/dexterity wires it
// (controllers, webhooks, certificates, leader election), runs as the install's ServiceAccount
// with exactly those permissions, and the smoke scenario passes against the real Dex.
func TestLeastPrivilegeIsSufficient(t *testing.T) {
	for _, tc := range []struct {
		name    string
		install func(t *testing.T, webhookPort int) installation
	}{
		{"OLM bundle", installBundle},
		{"kustomize config/default", installDefault},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, logStart := managerLog.Since(0)
			port, err := harness.FreePort()
			NewWithT(t).Expect(err).NotTo(HaveOccurred())
			in := tc.install(t, port)
			registryURL := startManager(t, in, port)
			smoke(t, in, registryURL)
			log, _ := managerLog.Since(logStart)
			NewWithT(t).Expect(strings.ToLower(log)).NotTo(ContainSubstring("forbidden"), "the manager was denied something")
		})
	}
}

// impersonating returns a rest config that acts as the ServiceAccount.
func impersonating(ns, sa string) *rest.Config {
	cfg := rest.CopyConfig(env.Config)
	cfg.Impersonate = rest.ImpersonationConfig{
		UserName: "system:serviceaccount:" + ns + ":" + sa,
		Groups:   []string{"system:serviceaccounts", "system:serviceaccounts:" + ns, "system:authenticated"},
	}
	return cfg
}

// expectNoAccessYet shows that the API server enforces RBAC on the impersonated ServiceAccount,
// so that what the install grants is what the manager gets.
func expectNoAccessYet(t *testing.T, ns, sa string) {
	t.Helper()
	c, err := client.New(impersonating(ns, sa), client.Options{Scheme: harness.Scheme})
	NewWithT(t).Expect(err).NotTo(HaveOccurred())
	err = c.List(context.Background(), &dexv1.OIDCProviderList{})
	NewWithT(t).Expect(apierrors.IsForbidden(err)).To(BeTrue(), "before the install, the ServiceAccount may not list OIDCProviders: %v", err)
}

func create(t *testing.T, objs ...client.Object) {
	t.Helper()
	for _, o := range objs {
		NewWithT(t).Expect(k8s.Create(context.Background(), o)).To(Succeed(), "%T %s", o, o.GetName())
	}
}

// installBundle does what OLM does with bundle/ in AllNamespaces mode: the ServiceAccount, the
// CSV's clusterPermissions as ClusterRoles and permissions as Roles in the operator namespace,
// bound to it, webhook configurations from the webhook definitions with OLM's CA, and the
// serving certificate mounted into the cert dir.
func installBundle(t *testing.T, port int) installation {
	g := NewWithT(t)
	csv := readCSV(t)
	ns := newNamespace(t, "olm-")
	deployments := csv.Spec.InstallStrategy.StrategySpec.DeploymentSpecs
	g.Expect(deployments).To(HaveLen(1))
	sa := deployments[0].Spec.Template.Spec.ServiceAccountName
	expectNoAccessYet(t, ns, sa)
	create(t, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: sa, Namespace: ns}})

	subject := []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Name: sa, Namespace: ns}}
	strategy := csv.Spec.InstallStrategy.StrategySpec
	g.Expect(strategy.ClusterPermissions).NotTo(BeEmpty())
	for i, p := range strategy.ClusterPermissions {
		g.Expect(p.ServiceAccountName).To(Equal(sa))
		name := fmt.Sprintf("%s-%d", ns, i)
		role := &rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: name}, Rules: p.Rules}
		binding := &rbacv1.ClusterRoleBinding{ObjectMeta: metav1.ObjectMeta{Name: name}, Subjects: subject,
			RoleRef: rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: name}}
		create(t, role, binding)
		t.Cleanup(func() { _ = k8s.Delete(context.Background(), binding); _ = k8s.Delete(context.Background(), role) })
	}
	for i, p := range strategy.Permissions {
		g.Expect(p.ServiceAccountName).To(Equal(sa))
		name := fmt.Sprintf("%s-%d", sa, i)
		create(t,
			&rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns}, Rules: p.Rules},
			&rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns}, Subjects: subject,
				RoleRef: rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: name}})
	}

	// OLM's serving certificate and webhook configuration.
	certs, err := harness.NewServingCert(pkix.Name{CommonName: "olm-selfsigned-test", Organization: []string{"OLM"}}, deployments[0].Name+"-service."+ns+".svc")
	g.Expect(err).NotTo(HaveOccurred())
	dir := t.TempDir()
	writeCerts(t, dir, certs)
	vwc := &admissionregistrationv1.ValidatingWebhookConfiguration{ObjectMeta: metav1.ObjectMeta{Name: "olm-" + ns}}
	mwc := &admissionregistrationv1.MutatingWebhookConfiguration{ObjectMeta: metav1.ObjectMeta{Name: "olm-" + ns}}
	for _, d := range csv.Spec.WebhookDefinitions {
		switch d.Type {
		case operatorsv1alpha1.ValidatingAdmissionWebhook:
			vwc.Webhooks = append(vwc.Webhooks, d.GetValidatingWebhook(ns, nil, certs.CACert))
		case operatorsv1alpha1.MutatingAdmissionWebhook:
			mwc.Webhooks = append(mwc.Webhooks, d.GetMutatingWebhook(ns, nil, certs.CACert))
		default:
			t.Fatalf("webhookdefinition %s: unexpected type %s", d.GenerateName, d.Type)
		}
	}
	g.Expect(vwc.Webhooks).NotTo(BeEmpty())
	g.Expect(mwc.Webhooks).NotTo(BeEmpty())
	harness.PointWebhooksAt(vwc, "localhost", port, certs.CACert)
	harness.PointMutatingWebhooksAt(mwc, "localhost", port, certs.CACert)
	create(t, vwc, mwc)
	t.Cleanup(func() { _ = k8s.Delete(context.Background(), vwc); _ = k8s.Delete(context.Background(), mwc) })

	o := webhookcert.DefaultOptions()
	o.Namespace, o.Name = ns, uniqueName()
	return installation{namespace: ns, serviceAccount: sa, certDir: dir, certs: o, wantMode: webhookcert.ModeProvided}
}

// installDefault applies what `kustomize build config/default` renders (the CRDs are already
// installed), with one change: the webhooks call the local webhook server instead of the Service,
// which envtest's API server cannot reach. The cert dir starts empty, like the emptyDir.
func installDefault(t *testing.T, port int) installation {
	g := NewWithT(t)
	in := renderDefault(t)
	expectNoAccessYet(t, in.namespace, in.sa.Name)
	for _, o := range render(t, "default") {
		switch o.GetKind() {
		case "CustomResourceDefinition":
			continue
		case "ValidatingWebhookConfiguration":
			vwc := in.vwc.DeepCopy()
			harness.PointWebhooksAt(vwc, "localhost", port, nil)
			create(t, vwc)
			t.Cleanup(func() { _ = k8s.Delete(context.Background(), vwc) })
		case "MutatingWebhookConfiguration":
			mwc := in.mwc.DeepCopy()
			harness.PointMutatingWebhooksAt(mwc, "localhost", port, nil)
			create(t, mwc)
			t.Cleanup(func() { _ = k8s.Delete(context.Background(), mwc) })
		default:
			create(t, o)
		}
	}
	// What the Deployment's flags and POD_NAMESPACE say; localhost is how the API server calls.
	o := webhookcert.DefaultOptions()
	o.Namespace, o.Name, o.ExtraDNSNames = in.namespace, uniqueName(), []string{"localhost"}
	c := in.deployment.Spec.Template.Spec.Containers[0]
	for flag, field := range map[string]*string{"webhook-cert-secret": &o.SecretName, "webhook-service-name": &o.ServiceName, "webhook-config-name": &o.WebhookConfigName,
		"mutating-webhook-config-name": &o.MutatingWebhookConfigName} {
		if v, ok := arg(c.Args, flag); ok {
			*field = v
		}
	}
	g.Expect(o.SecretName).NotTo(BeEmpty())
	return installation{namespace: in.namespace, serviceAccount: in.sa.Name, certDir: t.TempDir(), certs: o, wantMode: webhookcert.ModeSelfManaged}
}

var managers atomic.Int32

// uniqueName names the certificate controllers of one manager (controller names are unique per
// process).
func uniqueName() string { return fmt.Sprintf("webhook-cert-%d", managers.Add(1)) }

func writeCerts(t *testing.T, dir string, c *harness.ServingCert) {
	t.Helper()
	for name, data := range map[string][]byte{"tls.crt": c.Cert, "tls.key": c.Key} {
		NewWithT(t).Expect(os.WriteFile(filepath.Join(dir, name), data, 0o600)).To(Succeed())
	}
}

// startManager runs the manager as cmd/dexterity wires it, as the installation's ServiceAccount,
// and waits until it is ready and the leader.
// startManager runs the manager as the install's ServiceAccount and returns the URL of its
// registry server (plain HTTP).
func startManager(t *testing.T, in installation, webhookPort int) string {
	t.Helper()
	g := NewWithT(t)
	probe, err := harness.FreePort()
	g.Expect(err).NotTo(HaveOccurred())
	registryPort, err := harness.FreePort()
	g.Expect(err).NotTo(HaveOccurred())
	srv := webhookcert.NewServer(webhook.Options{Host: "127.0.0.1", Port: webhookPort, CertDir: in.certDir})
	mgr, err := ctrl.NewManager(impersonating(in.namespace, in.serviceAccount), ctrl.Options{
		Scheme:                  harness.Scheme,
		Metrics:                 metricsserver.Options{BindAddress: "0"},
		HealthProbeBindAddress:  net.JoinHostPort("127.0.0.1", strconv.Itoa(probe)),
		LeaderElection:          true,
		LeaderElectionID:        "dexterity.dev",
		LeaderElectionNamespace: in.namespace,
		WebhookServer:           srv,
		// Both installs run the same controllers in this process.
		Controller: config.Controller{SkipNameValidation: ptr.To(true)},
		// As cmd/dexterity: what the cache holds (and so what the install must allow) is part of
		// what is tested.
		Cache:  controllers.CacheOptions(),
		Client: controllers.ClientOptions(),
	})
	g.Expect(err).NotTo(HaveOccurred())
	pool, keys := dex.NewPool(), oidc.NewCache()
	g.Expect(controllers.SetupWithManager(mgr, pool, keys, controllers.Options{MaxRetryDelay: 2 * time.Second})).To(Succeed())
	registryAddr := net.JoinHostPort("127.0.0.1", strconv.Itoa(registryPort))
	reg, err := registry.New(context.Background(), mgr.GetCache(), registry.Options{Addr: registryAddr, Keys: keys, Kube: mgr.GetClient()})
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(mgr.Add(reg)).To(Succeed())
	g.Expect(mgr.AddHealthzCheck("healthz", healthz.Ping)).To(Succeed())
	g.Expect(mgr.AddReadyzCheck("readyz", healthz.Ping)).To(Succeed())
	mode, err := webhookcert.Setup(context.Background(), mgr, srv, in.certs)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(mode).To(Equal(in.wantMode))
	g.Expect(webhooks.SetupWithManager(mgr)).To(Succeed())
	g.Expect(mgr.AddReadyzCheck("webhooks", srv.StartedChecker())).To(Succeed())

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- mgr.Start(ctx) }()
	t.Cleanup(func() {
		cancel()
		NewWithT(t).Expect(<-done).To(Succeed())
		pool.Close()
	})

	readyz := fmt.Sprintf("http://127.0.0.1:%d/readyz", probe)
	g.Eventually(func() (int, error) {
		resp, err := http.Get(readyz) //nolint:noctx // test
		if err != nil {
			return 0, err
		}
		_ = resp.Body.Close()
		return resp.StatusCode, nil
	}, waitTimeout, 100*time.Millisecond).Should(Equal(http.StatusOK))
	g.Eventually(mgr.Elected(), waitTimeout).Should(BeClosed(), "leader election in %s", in.namespace)
	return "http://" + registryAddr
}

// smoke is the scenario every install must pass: a provider, a client, a connector and a
// binding become Ready, the client and connector are in Dex, the webhooks answer, events and the
// leader Lease are written, and deletion cleans Dex up.
func smoke(t *testing.T, in installation, registryURL string) {
	g := NewWithT(t)
	ctx := context.Background()
	ns := newNamespace(t, "smoke-")
	dapi, closer, err := plainDex.Client()
	g.Expect(err).NotTo(HaveOccurred())
	t.Cleanup(func() { _ = closer.Close() })

	provider := &dexv1.OIDCProvider{
		ObjectMeta: metav1.ObjectMeta{Name: "dex", Namespace: ns},
		Spec: dexv1.OIDCProviderSpec{IssuerURL: plainDex.IssuerURL(), ClientID: "registry",
			Hostnames: []string{ns + ".test"}, AllowServiceAccountFallback: true,
			Dex: &dexv1.DexAdminSpec{GRPCAddress: plainDex.GRPCAddress(), Insecure: true}},
	}
	dsc := &dexv1.DexStaticClient{
		ObjectMeta: metav1.ObjectMeta{Name: "app", Namespace: ns},
		Spec: dexv1.DexStaticClientSpec{ProviderRef: dexv1.ObjectRef{Name: "dex"}, RedirectURIs: []string{"https://app.example.com/callback"},
			SecretRef: &dexv1.SecretKeyRef{Name: "app-client", Key: "clientSecret"}, GenerateSecret: true},
	}
	connector := &dexv1.DexConnector{
		ObjectMeta: metav1.ObjectMeta{Name: "mock", Namespace: ns},
		Spec:       dexv1.DexConnectorSpec{ProviderRef: dexv1.ObjectRef{Name: "dex"}, ConnectorID: ns + "-mock", Type: "mockCallback", DisplayName: "Mock"},
	}
	binding := &dexv1.GroupBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "team-a", Namespace: ns},
		Spec:       dexv1.GroupBindingSpec{Expression: `"team-a" in groups`},
	}
	for _, o := range []client.Object{provider, dsc, connector, binding} {
		g.Expect(k8s.Create(ctx, o)).To(Succeed(), "%T", o)
		obj := o
		g.Eventually(func(g Gomega) {
			g.Expect(k8s.Get(ctx, client.ObjectKeyFromObject(obj), obj)).To(Succeed())
			g.Expect(meta.IsStatusConditionTrue(conditions(obj), dexv1.ConditionReady)).To(BeTrue(), "%T %s Ready: %+v", obj, obj.GetName(), conditions(obj))
		}, waitTimeout, 200*time.Millisecond).Should(Succeed())
	}

	clientID := ns + "-app"
	g.Expect(dsc.Status.ClientID).To(Equal(clientID))
	got, err := dapi.GetClient(ctx, &api.GetClientReq{Id: clientID})
	g.Expect(err).NotTo(HaveOccurred(), "the client is registered in Dex")
	g.Expect(got.GetClient().GetRedirectUris()).To(ContainElement("https://app.example.com/callback"))
	secret := &corev1.Secret{}
	g.Expect(k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: "app-client"}, secret)).To(Succeed(), "the client secret was generated")
	g.Expect(got.GetClient().GetSecret()).To(Equal(string(secret.Data["clientSecret"])))
	g.Expect(connectorIDs(g, dapi)).To(ContainElement(connector.Spec.ConnectorID), "the connector is registered in Dex")

	// The webhooks answer (a non-boolean expression passes the schema, not the webhook).
	err = k8s.Create(ctx, &dexv1.GroupBinding{ObjectMeta: metav1.ObjectMeta{Name: "broken", Namespace: ns}, Spec: dexv1.GroupBindingSpec{Expression: "len(groups)"}})
	g.Expect(err).To(MatchError(ContainSubstring("expected bool")))

	// The registry reads Modules through the cache and asks Kubernetes about a ServiceAccount
	// token (TokenReview, SubjectAccessReview) with the install's permissions.
	registryAccess(t, ns, registryURL)

	events := &corev1.EventList{}
	g.Expect(k8s.List(ctx, events, client.InNamespace(ns))).To(Succeed())
	var sources []string
	for _, e := range events.Items {
		sources = append(sources, e.Source.Component)
	}
	g.Expect(sources).To(ContainElement(HavePrefix("dexterity-")), "the manager records events")
	lease := &coordinationv1.Lease{}
	g.Expect(k8s.Get(ctx, client.ObjectKey{Namespace: in.namespace, Name: "dexterity.dev"}, lease)).To(Succeed())
	g.Expect(lease.Spec.HolderIdentity).To(HaveValue(Not(BeEmpty())))

	// A Dex object renders everything under the install's permissions, the Role of Dex's
	// kubernetes storage included (Kubernetes lets the manager grant only what it holds).
	deployed := &dexv1.Dex{
		ObjectMeta: metav1.ObjectMeta{Name: "dex2", Namespace: ns},
		Spec:       dexv1.DexSpec{Issuer: "http://dex2." + ns + ".svc:5556/dex", Replicas: ptr.To[int32](2)},
	}
	g.Expect(k8s.Create(ctx, deployed)).To(Succeed())
	g.Eventually(func(g Gomega) {
		g.Expect(k8s.Get(ctx, client.ObjectKeyFromObject(deployed), deployed)).To(Succeed())
		g.Expect(meta.IsStatusConditionTrue(deployed.Status.Conditions, dexv1.ConditionConfigValid)).To(BeTrue(), "Dex ConfigValid: %+v", deployed.Status.Conditions)
	}, waitTimeout, 200*time.Millisecond).Should(Succeed())
	for _, name := range []string{"dex2-storage"} {
		g.Expect(k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, &rbacv1.Role{})).To(Succeed())
	}
	g.Expect(k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: "dex2"}, &dexv1.OIDCProvider{})).To(Succeed())
	g.Expect(k8s.Delete(ctx, deployed)).To(Succeed())
	g.Eventually(func() bool {
		return apierrors.IsNotFound(k8s.Get(ctx, client.ObjectKeyFromObject(deployed), deployed))
	}, waitTimeout, 200*time.Millisecond).Should(BeTrue(), "the Dex and what it rendered are deleted")

	// Deleting runs the finalizers: Dex forgets the client and the connector.
	for _, o := range []client.Object{dsc, connector, binding, provider} {
		g.Expect(k8s.Delete(ctx, o)).To(Succeed())
	}
	for _, o := range []client.Object{dsc, connector, binding, provider} {
		obj := o
		g.Eventually(func() bool {
			return apierrors.IsNotFound(k8s.Get(ctx, client.ObjectKeyFromObject(obj), obj))
		}, waitTimeout, 200*time.Millisecond).Should(BeTrue(), "%T %s is deleted", obj, obj.GetName())
	}
	_, err = dapi.GetClient(ctx, &api.GetClientReq{Id: clientID})
	g.Expect(err).To(MatchError(ContainSubstring("not found")), "the client is deleted from Dex")
	g.Expect(connectorIDs(g, dapi)).NotTo(ContainElement(connector.Spec.ConnectorID), "the connector is deleted from Dex")
}

func conditions(o client.Object) []metav1.Condition {
	switch v := o.(type) {
	case *dexv1.OIDCProvider:
		return v.Status.Conditions
	case *dexv1.DexStaticClient:
		return v.Status.Conditions
	case *dexv1.DexConnector:
		return v.Status.Conditions
	case *dexv1.GroupBinding:
		return v.Status.Conditions
	}
	return nil
}

func connectorIDs(g Gomega, d api.DexClient) []string {
	resp, err := d.ListConnectors(context.Background(), &api.ListConnectorReq{})
	g.Expect(err).NotTo(HaveOccurred())
	var ids []string
	for _, c := range resp.GetConnectors() {
		ids = append(ids, c.GetId())
	}
	return ids
}

// registryAccess publishes a module in ns and fetches its versions from the registry with the
// token of a ServiceAccount allowed to get modules in ns.
func registryAccess(t *testing.T, ns, registryURL string) {
	t.Helper()
	g := NewWithT(t)
	ctx := context.Background()
	create(t,
		&dexv1.Module{ObjectMeta: metav1.ObjectMeta{Name: "network", Namespace: ns}, Spec: dexv1.ModuleSpec{
			Namespace: "team-a", Name: "network", System: "aws",
			Versions: []dexv1.ModuleVersion{{Version: "1.0.0", Source: "https://downloads.example.org/network.tar.gz"}}}},
		&corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "ci", Namespace: ns}},
		&rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Name: "module-reader", Namespace: ns},
			Rules: []rbacv1.PolicyRule{{APIGroups: []string{dexv1.GroupVersion.Group}, Resources: []string{"modules"}, Verbs: []string{"get"}}}},
		&rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Name: "ci-module-reader", Namespace: ns},
			RoleRef:  rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: "module-reader"},
			Subjects: []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Name: "ci", Namespace: ns}}},
	)
	tr := &authnv1.TokenRequest{Spec: authnv1.TokenRequestSpec{ExpirationSeconds: ptr.To(int64(600))}}
	g.Expect(k8s.SubResource("token").Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "ci", Namespace: ns}}, tr)).To(Succeed())
	g.Eventually(func() (int, error) {
		req, err := http.NewRequest(http.MethodGet, registryURL+"/v1/modules/team-a/network/aws/versions", nil)
		if err != nil {
			return 0, err
		}
		req.Host = ns + ".test"
		req.Header.Set("Authorization", "Bearer "+tr.Status.Token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return 0, err
		}
		_ = resp.Body.Close()
		return resp.StatusCode, nil
	}, waitTimeout, 200*time.Millisecond).Should(Equal(http.StatusOK))
}
