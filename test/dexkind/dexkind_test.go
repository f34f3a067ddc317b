// Package dexkind proves the Dex kind end to end: the dexterity binary renders a Dex, the kubelet
// emulator (test/kubelet) runs the rendered Deployment as a kubelet would (the real Dex binary with
// the container's command, env and mounted Secrets, in a private mount namespace, its kubernetes
// storage against the envtest API server under the rendered RBAC), and then tenants' clients and
// connectors register through the generated mutual TLS, Dex issues a token for such a client, and
// the registry accepts it. Certificates rotate during the test (a two-minute leaf lifetime).
package dexkind

import (
	"context"
	"crypto/tls"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/dexidp/dex/api/v2"
	. "github.com/onsi/gomega"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	dexv1 "dexterity.dev/dexterity/api/v1alpha1"
	"dexterity.dev/dexterity/internal/dexdeploy"
	"dexterity.dev/dexterity/test/harness"
	"dexterity.dev/dexterity/test/kubelet"
)

const (
	timeout    = 90 * time.Second
	platformNS = "platform"
	tenantNS   = "team-a"
	demoHash   = "$2a$10$vrAFyljbDVbAqNauKPMj7eWGAPsTdbUTgJ8HsJ/OdG0pjjrL0X1F." // "password"
	// leafValidity of the gRPC certificates: renewed every 80 s, during the test.
	leafValidity = 2 * time.Minute
)

var (
	k8s          client.Client
	node         *kubelet.Kubelet // the kubelet emulator: runs the rendered Dex pods
	registryHost string
	managerLog   string
)

func TestMain(m *testing.M) {
	if code, exited := kubelet.EnterMountNamespace(); exited {
		os.Exit(code)
	}
	os.Exit(run(m))
}

var cleanups []func()

func run(m *testing.M) int {
	defer func() {
		for i := len(cleanups) - 1; i >= 0; i-- {
			cleanups[i]()
		}
	}()
	if err := setup(); err != nil {
		fmt.Fprintln(os.Stderr, "dexkind setup:", err)
		return 1
	}
	code := m.Run()
	if code != 0 {
		if b, err := os.ReadFile(managerLog); err == nil {
			fmt.Fprintf(os.Stderr, "--- manager log ---\n%s\n", tail(string(b)))
		}
		fmt.Fprintf(os.Stderr, "--- Dex pod log ---\n%s\n", tail(node.Logs(platformNS, "dex")))
	}
	return code
}

func setup() error {
	dir, err := os.MkdirTemp("", "dexterity-dexkind-")
	if err != nil {
		return err
	}
	cleanups = append(cleanups, func() { _ = os.RemoveAll(dir) })
	env, err := harness.StartEnv(harness.EnvOptions{})
	if err != nil {
		return err
	}
	cleanups = append(cleanups, func() { _ = env.Stop() })
	k8s = env.Client
	root, err := filepath.Abs("../..")
	if err != nil {
		return err
	}
	node, err = kubelet.Start(context.Background(), kubelet.Options{
		Config: env.Config,
		Files:  map[string]string{dexdeploy.BinaryPath: filepath.Join(root, "bin", "dex")},
		LogDir: filepath.Join(dir, "pods"),
	})
	if err != nil {
		return err
	}
	cleanups = append(cleanups, node.Stop)

	bin := filepath.Join(dir, "dexterity")
	if err := harness.BuildManager(bin); err != nil {
		return err
	}
	kubeconfig := filepath.Join(dir, "kubeconfig")
	if err := env.WriteAdminKubeconfig(kubeconfig, "dexkind-admin"); err != nil {
		return err
	}
	registryPort, err := harness.FreePort()
	if err != nil {
		return err
	}
	probePort, err := harness.FreePort()
	if err != nil {
		return err
	}
	registryHost = "127.0.0.1:" + strconv.Itoa(registryPort)
	for _, ns := range []string{platformNS, tenantNS} {
		if err := k8s.Create(context.Background(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil {
			return err
		}
	}
	managerLog = filepath.Join(dir, "manager.log")
	mgr, err := harness.StartManagerProcess(bin, managerLog, nil,
		"--kubeconfig", kubeconfig,
		"--metrics-bind-address", "0",
		"--health-probe-bind-address", "127.0.0.1:"+strconv.Itoa(probePort),
		"--registry-bind-address", registryHost,
		"--dex-resync-period", "1m",
		"--dex-grpc-cert-validity", leafValidity.String(),
		"--leader-elect", "--leader-election-namespace", platformNS,
	)
	if err != nil {
		return err
	}
	cleanups = append(cleanups, mgr.Stop)
	return harness.WaitHTTPOK(context.Background(), fmt.Sprintf("http://127.0.0.1:%d/readyz", probePort), time.Minute)
}

// dexNamespaces are the namespaces of the tests' Dex objects: their pods all bind Dex's ports.
var dexNamespaces = []string{platformNS, "platform-sqlite", "platform-tls", "platform-pg"}

// waitNoDexPod waits until no test's Dex pod runs (a test's Dex is deleted by its cleanup).
func waitNoDexPod(g Gomega) {
	for _, ns := range dexNamespaces {
		g.Eventually(func() int { return node.PodPID(ns, "dex") }, timeout).Should(BeZero(), "the Dex pod of %s is gone", ns)
	}
}

func tail(s string) string {
	const n = 12000
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

func condition(obj interface {
	client.Object
	GetConditions() []metav1.Condition
}, t string) func(g Gomega) metav1.Condition {
	return func(g Gomega) metav1.Condition {
		g.Expect(k8s.Get(context.Background(), client.ObjectKeyFromObject(obj), obj)).To(Succeed())
		c := meta.FindStatusCondition(obj.GetConditions(), t)
		g.Expect(c).NotTo(BeNil(), "%T %s: condition %s not set yet", obj, obj.GetName(), t)
		return *c
	}
}

// dexAPI dials the Dex's gRPC API as the operator does: through the Service name, with the
// client certificate the operator rendered (read fresh, so it follows rotation).
func dexAPI(g Gomega) (api.DexClient, func()) {
	s := &corev1.Secret{}
	g.Expect(k8s.Get(context.Background(), types.NamespacedName{Namespace: platformNS, Name: "dex-grpc-client"}, s)).To(Succeed())
	cfg, err := harness.ClientTLSConfig(s.Data["ca.crt"], s.Data["tls.crt"], s.Data["tls.key"])
	g.Expect(err).NotTo(HaveOccurred())
	cfg.ServerName = "dex." + platformNS + ".svc"
	conn, err := grpc.NewClient("dex."+platformNS+".svc:5557", grpc.WithTransportCredentials(credentials.NewTLS(cfg)))
	g.Expect(err).NotTo(HaveOccurred())
	return api.NewDexClient(conn), func() { _ = conn.Close() }
}

func clientInDex(g Gomega, id string) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	dexClient, closeConn := dexAPI(g)
	defer closeConn()
	resp, err := dexClient.GetClient(ctx, &api.GetClientReq{Id: id})
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(resp.GetClient().GetId()).To(Equal(id))
}

func serverCertSerial(g Gomega) string {
	s := &corev1.Secret{}
	g.Expect(k8s.Get(context.Background(), types.NamespacedName{Namespace: platformNS, Name: "dex-grpc-server"}, s)).To(Succeed())
	return dexdeploy.Hash(s.Data["tls.crt"])
}

func registryStatus(g Gomega, token string) int {
	req, err := http.NewRequest(http.MethodGet, "http://"+registryHost+"/v1/modules/team-a/network/local/versions", nil)
	g.Expect(err).NotTo(HaveOccurred())
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := (&http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{MinVersion: tls.VersionTLS12}}}).Do(req)
	g.Expect(err).NotTo(HaveOccurred())
	_ = resp.Body.Close()
	return resp.StatusCode
}

func TestDexKindEndToEnd(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	issuer := "http://dex." + platformNS + ".svc:5556/dex"

	// The platform team: one Dex object.
	g.Expect(k8s.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: platformNS, Name: "users"}, StringData: map[string]string{"admin": demoHash}})).To(Succeed())
	d := &dexv1.Dex{
		ObjectMeta: metav1.ObjectMeta{Namespace: platformNS, Name: "dex"},
		Spec: dexv1.DexSpec{
			Issuer:           issuer,
			OAuth2:           &dexv1.DexOAuth2{SkipApprovalScreen: true, PasswordConnector: "local"},
			EnablePasswordDB: true,
			StaticPasswords: []dexv1.DexStaticPassword{{
				Email: "admin@example.com", Username: "admin", UserID: "08a8684b", Groups: []string{"platform", "team-a"},
				HashSecretRef: dexv1.SecretKeyRef{Name: "users", Key: "admin"},
			}},
			AllowedNamespaces:   &dexv1.AllowedNamespaces{From: dexv1.NamespacesFromAll},
			ConnectorNamespaces: &dexv1.AllowedNamespaces{From: dexv1.NamespacesFromSame},
		},
	}
	g.Expect(k8s.Create(ctx, d)).To(Succeed())
	g.Eventually(func() error { return node.Run(platformNS, "dex") }, timeout).Should(Succeed())
	g.Eventually(condition(d, dexv1.ConditionReady), timeout).Should(HaveField("Status", metav1.ConditionTrue))
	provider := &dexv1.OIDCProvider{ObjectMeta: metav1.ObjectMeta{Namespace: platformNS, Name: "dex"}}
	g.Eventually(condition(provider, dexv1.ConditionReady), timeout).Should(HaveField("Status", metav1.ConditionTrue), "the operator reaches Dex through the generated mTLS and loads its keys")

	// A tenant: a confidential client; the platform team: a connector.
	ci := &dexv1.DexStaticClient{
		ObjectMeta: metav1.ObjectMeta{Namespace: tenantNS, Name: "ci"},
		Spec: dexv1.DexStaticClientSpec{
			ProviderRef: dexv1.ObjectRef{Name: "dex", Namespace: platformNS}, RedirectURIs: []string{"https://ci.example.org/callback"},
			SecretRef: &dexv1.SecretKeyRef{Name: "ci-oidc", Key: "client-secret"}, GenerateSecret: true,
		},
	}
	conn := &dexv1.DexConnector{
		ObjectMeta: metav1.ObjectMeta{Namespace: platformNS, Name: "mock"},
		Spec:       dexv1.DexConnectorSpec{ProviderRef: dexv1.ObjectRef{Name: "dex"}, ConnectorID: "mock", Type: "mockCallback", DisplayName: "Mock"},
	}
	g.Expect(k8s.Create(ctx, ci)).To(Succeed())
	g.Expect(k8s.Create(ctx, conn)).To(Succeed())
	g.Eventually(condition(ci, dexv1.ConditionReady), timeout).Should(HaveField("Status", metav1.ConditionTrue))
	g.Eventually(condition(conn, dexv1.ConditionReady), timeout).Should(HaveField("Status", metav1.ConditionTrue))
	g.Eventually(func(g Gomega) { clientInDex(g, ci.EffectiveClientID()) }, timeout).Should(Succeed())

	// The tenant's registry trusts this Dex for its client; a binding lets the platform group in.
	secret := &corev1.Secret{}
	g.Expect(k8s.Get(ctx, types.NamespacedName{Namespace: tenantNS, Name: "ci-oidc"}, secret)).To(Succeed())
	clientSecret := string(secret.Data["client-secret"])
	for _, obj := range []client.Object{
		&dexv1.OIDCProvider{ObjectMeta: metav1.ObjectMeta{Namespace: tenantNS, Name: "registry"}, Spec: dexv1.OIDCProviderSpec{
			IssuerURL: issuer, ClientID: ci.EffectiveClientID(), Hostnames: []string{registryHost},
		}},
		&dexv1.GroupBinding{ObjectMeta: metav1.ObjectMeta{Namespace: tenantNS, Name: "platform"}, Spec: dexv1.GroupBindingSpec{
			Expression: `"platform" in groups`, ModuleResources: []string{"team-a/*"},
		}},
		&dexv1.Module{ObjectMeta: metav1.ObjectMeta{Namespace: tenantNS, Name: "network"}, Spec: dexv1.ModuleSpec{
			Namespace: "team-a", Name: "network", System: "local",
			Versions: []dexv1.ModuleVersion{{Version: "1.0.0", Source: "https://files.example.org/network.tgz"}},
		}},
	} {
		g.Expect(k8s.Create(ctx, obj)).To(Succeed())
	}
	token := func(g Gomega) string {
		tok, err := harness.PasswordGrant(issuer, ci.EffectiveClientID(), clientSecret, "admin@example.com", "password")
		g.Expect(err).NotTo(HaveOccurred())
		return tok["id_token"].(string)
	}
	g.Eventually(func(g Gomega) int { return registryStatus(g, token(g)) }, timeout).Should(Equal(http.StatusOK),
		"Dex issues a token for the tenant's client and the registry accepts it")
	g.Expect(registryStatus(g, "")).To(Equal(http.StatusUnauthorized))

	t.Run("certificates rotate without losing the connection", func(t *testing.T) {
		g := NewWithT(t)
		first := serverCertSerial(g)
		starts := node.PodStarts(platformNS, "dex")
		// The leaves are renewed two thirds into their lifetime; the renewed server certificate rolls
		// the pod (Dex does not reload a certificate the kubelet updates), the operator reconnects
		// with its renewed client certificate.
		g.Eventually(serverCertSerial, leafValidity+timeout).ShouldNot(Equal(first), "the server certificate is renewed")
		g.Eventually(func() int { return node.PodStarts(platformNS, "dex") }, timeout).Should(BeNumerically(">", starts), "the renewed certificate rolls the pod")
		g.Eventually(condition(d, dexv1.ConditionReady), timeout).Should(HaveField("Status", metav1.ConditionTrue))
		g.Eventually(condition(provider, dexv1.ConditionDexReachable), timeout).Should(HaveField("Status", metav1.ConditionTrue))
		// New work after the rotation goes through, and nothing was lost.
		web := &dexv1.DexStaticClient{
			ObjectMeta: metav1.ObjectMeta{Namespace: tenantNS, Name: "web"},
			Spec: dexv1.DexStaticClientSpec{ProviderRef: dexv1.ObjectRef{Name: "dex", Namespace: platformNS}, Public: true,
				RedirectURIs: []string{"https://web.example.org/callback"}},
		}
		g.Expect(k8s.Create(ctx, web)).To(Succeed())
		g.Eventually(condition(web, dexv1.ConditionReady), timeout).Should(HaveField("Status", metav1.ConditionTrue))
		g.Eventually(func(g Gomega) { clientInDex(g, web.EffectiveClientID()); clientInDex(g, ci.EffectiveClientID()) }, timeout).Should(Succeed())
		g.Eventually(func(g Gomega) int { return registryStatus(g, token(g)) }, timeout).Should(Equal(http.StatusOK))
	})

	t.Run("a spec change rolls the pod and Dex's state survives in the kubernetes storage", func(t *testing.T) {
		g := NewWithT(t)
		starts := node.PodStarts(platformNS, "dex")
		g.Eventually(func() error {
			cur := &dexv1.Dex{}
			if err := k8s.Get(ctx, client.ObjectKeyFromObject(d), cur); err != nil {
				return err
			}
			cur.Spec.Expiry = &dexv1.DexExpiry{IDTokens: "2h"}
			return k8s.Update(ctx, cur)
		}, timeout).Should(Succeed())
		g.Eventually(func() int { return node.PodStarts(platformNS, "dex") }, timeout).Should(BeNumerically(">", starts))
		g.Eventually(condition(d, dexv1.ConditionReady), timeout).Should(HaveField("Status", metav1.ConditionTrue))
		g.Eventually(func(g Gomega) { clientInDex(g, ci.EffectiveClientID()) }, timeout).Should(Succeed(), "the client outlived the pod")
		// The new pod's tokens carry the new lifetime.
		g.Eventually(func(g Gomega) float64 {
			tok, err := harness.PasswordGrant(issuer, ci.EffectiveClientID(), clientSecret, "admin@example.com", "password")
			g.Expect(err).NotTo(HaveOccurred())
			return tok["expires_in"].(float64)
		}, timeout).Should(BeNumerically("~", 7200, 60))

		// The state is in Dex's kubernetes storage: its objects, in the Dex's namespace.
		stored := &unstructured.UnstructuredList{}
		stored.SetGroupVersionKind(schema.GroupVersionKind{Group: "dex.coreos.com", Version: "v1", Kind: "OAuth2ClientList"})
		g.Expect(k8s.List(ctx, stored, client.InNamespace(platformNS))).To(Succeed())
		g.Expect(len(stored.Items)).To(BeNumerically(">=", 2), "the clients are stored as oauth2clients.dex.coreos.com")

		// An emulated pod restart (same template) keeps the state too: the client is there at once,
		// well before a resync (1m) could have re-created it.
		g.Expect(node.RestartPod(platformNS, "dex")).To(Succeed())
		g.Eventually(func(g Gomega) { clientInDex(g, ci.EffectiveClientID()) }, 15*time.Second).Should(Succeed())
		g.Eventually(func(g Gomega) int { return registryStatus(g, token(g)) }, timeout).Should(Equal(http.StatusOK))
	})

	t.Run("deleting the Dex waits for its clients, then removes everything", func(t *testing.T) {
		g := NewWithT(t)
		g.Expect(k8s.Delete(ctx, d)).To(Succeed())
		g.Eventually(condition(d, dexv1.ConditionReady), timeout).Should(HaveField("Reason", dexv1.ReasonDeleting))
		g.Consistently(func() error { return k8s.Get(ctx, client.ObjectKeyFromObject(d), &dexv1.Dex{}) }, 3*time.Second).Should(Succeed(),
			"the Dex stays while clients and connectors are registered through its provider")
		for _, obj := range []client.Object{ci, conn, &dexv1.DexStaticClient{ObjectMeta: metav1.ObjectMeta{Namespace: tenantNS, Name: "web"}}} {
			g.Expect(k8s.Delete(ctx, obj)).To(Succeed())
		}
		g.Eventually(func() bool { return apierrors.IsNotFound(k8s.Get(ctx, client.ObjectKeyFromObject(d), &dexv1.Dex{})) }, timeout).Should(BeTrue())
		for _, obj := range []client.Object{
			&dexv1.OIDCProvider{ObjectMeta: metav1.ObjectMeta{Namespace: platformNS, Name: "dex"}},
			&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: platformNS, Name: "dex-grpc-ca"}},
			&corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: platformNS, Name: "dex"}},
		} {
			g.Expect(apierrors.IsNotFound(k8s.Get(ctx, client.ObjectKeyFromObject(obj), obj))).To(BeTrue(), "%T %s is gone", obj, obj.GetName())
		}
	})
}

// TestDexSQLite3: a Dex without the password database starts (the operator gives it Dex's local
// connector until a DexConnector is registered: Dex refuses to start without any connector), keeps
// its database on the PersistentVolumeClaim the operator renders, and once a DexConnector is in
// its storage restarts without the local connector; a restarted pod finds the clients there.
func TestDexSQLite3(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	const ns = "platform-sqlite"
	g.Expect(k8s.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}})).To(Succeed())
	// The pod of TestDexKindEndToEnd binds the same ports: wait until its Deployment is gone.
	waitNoDexPod(g)
	d := &dexv1.Dex{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "dex"},
		Spec: dexv1.DexSpec{
			Issuer:  "http://dex." + ns + ".svc:5556/dex",
			Storage: &dexv1.DexStorage{Type: dexv1.DexStorageSQLite3},
		},
	}
	g.Expect(k8s.Create(ctx, d)).To(Succeed())
	g.Eventually(func() error { return node.Run(ns, "dex") }, timeout).Should(Succeed())
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("--- Dex pod log ---\n%s", tail(node.Logs(ns, "dex")))
		}
		_ = k8s.Delete(context.Background(), d)
	})
	g.Eventually(condition(d, dexv1.ConditionReady), timeout).Should(HaveField("Status", metav1.ConditionTrue))
	pvc := &corev1.PersistentVolumeClaim{}
	g.Expect(k8s.Get(ctx, types.NamespacedName{Namespace: ns, Name: "dex-data"}, pvc)).To(Succeed())

	web := &dexv1.DexStaticClient{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "web"},
		Spec: dexv1.DexStaticClientSpec{ProviderRef: dexv1.ObjectRef{Name: "dex"}, Public: true,
			RedirectURIs: []string{"https://web.example.org/callback"}},
	}
	g.Expect(k8s.Create(ctx, web)).To(Succeed())
	// Before the Dex's own cleanup (cleanups run last first): the Dex goes only after its clients.
	t.Cleanup(func() { _ = k8s.Delete(context.Background(), web) })
	g.Eventually(condition(web, dexv1.ConditionReady), timeout).Should(HaveField("Status", metav1.ConditionTrue))
	inDex := func(g Gomega) {
		s := &corev1.Secret{}
		g.Expect(k8s.Get(ctx, types.NamespacedName{Namespace: ns, Name: "dex-grpc-client"}, s)).To(Succeed())
		cfg, err := harness.ClientTLSConfig(s.Data["ca.crt"], s.Data["tls.crt"], s.Data["tls.key"])
		g.Expect(err).NotTo(HaveOccurred())
		conn, err := grpc.NewClient("dex."+ns+".svc:5557", grpc.WithTransportCredentials(credentials.NewTLS(cfg)))
		g.Expect(err).NotTo(HaveOccurred())
		defer func() { _ = conn.Close() }()
		rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		_, err = api.NewDexClient(conn).GetClient(rctx, &api.GetClientReq{Id: web.EffectiveClientID()})
		g.Expect(err).NotTo(HaveOccurred())
	}
	g.Eventually(inDex, timeout).Should(Succeed())

	// A connector arrives through the API: the bootstrap connector goes, the pod rolls and starts
	// on the connector in its storage.
	starts := node.PodStarts(ns, "dex")
	conn := &dexv1.DexConnector{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "mock"},
		Spec:       dexv1.DexConnectorSpec{ProviderRef: dexv1.ObjectRef{Name: "dex"}, ConnectorID: "mock", Type: "mockCallback", DisplayName: "Mock"},
	}
	g.Expect(k8s.Create(ctx, conn)).To(Succeed())
	t.Cleanup(func() { _ = k8s.Delete(context.Background(), conn) })
	g.Eventually(condition(conn, dexv1.ConditionRegistered), timeout).Should(HaveField("Status", metav1.ConditionTrue))
	g.Eventually(func(g Gomega) string {
		s := &corev1.Secret{}
		g.Expect(k8s.Get(ctx, types.NamespacedName{Namespace: ns, Name: "dex-config"}, s)).To(Succeed())
		return string(s.Data["config.yaml"])
	}, timeout).ShouldNot(ContainSubstring("enablePasswordDB"))
	g.Eventually(func() int { return node.PodStarts(ns, "dex") }, timeout).Should(BeNumerically(">", starts))
	g.Eventually(condition(d, dexv1.ConditionReady), timeout).Should(HaveField("Status", metav1.ConditionTrue))
	g.Eventually(condition(conn, dexv1.ConditionReady), timeout).Should(HaveField("Status", metav1.ConditionTrue))

	// A restarted pod opens the same database: the client is there at once, before any resync.
	g.Expect(node.RestartPod(ns, "dex")).To(Succeed())
	g.Eventually(inDex, 15*time.Second).Should(Succeed())
}
