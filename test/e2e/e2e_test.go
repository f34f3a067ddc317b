// Package e2e runs the whole chain with the real clients: the dexterity binary (controllers,
// webhooks and the registry on HTTPS) against envtest and the real Dex, objects applied through
// the API server as a user would, and OpenTofu itself doing `tofu login` through Dex and
// `tofu init` against the embedded registry.
package e2e

import (
	"bytes"
	"context"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	dexv1 "dexterity.dev/dexterity/api/v1alpha1"
	"dexterity.dev/dexterity/test/harness"
)

var (
	k8s          client.Client
	dex          *harness.Dex
	registryHost string // 127.0.0.1:<port>
	registryCA   []byte
	managerLog   string
)

func TestMain(m *testing.M) { os.Exit(run(m)) }

func run(m *testing.M) int {
	if err := setup(); err != nil {
		fmt.Fprintln(os.Stderr, "e2e setup:", err)
		if managerLog != "" {
			if b, rerr := os.ReadFile(managerLog); rerr == nil {
				fmt.Fprintf(os.Stderr, "--- manager log ---\n%s\n", tail(string(b)))
			}
		}
		teardown()
		return 1
	}
	code := m.Run()
	if code != 0 {
		if b, err := os.ReadFile(managerLog); err == nil {
			fmt.Fprintf(os.Stderr, "--- manager log (%s) ---\n%s\n", managerLog, tail(string(b)))
		}
	}
	teardown()
	return code
}

var cleanups []func()

func teardown() {
	for i := len(cleanups) - 1; i >= 0; i-- {
		cleanups[i]()
	}
}

// setup starts envtest, Dex and the dexterity binary with webhooks and the registry on HTTPS.
func setup() error {
	dir, err := os.MkdirTemp("", "dexterity-e2e-")
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

	if dex, err = harness.StartDex(harness.DexOptions{Dir: filepath.Join(dir, "dex")}); err != nil {
		return err
	}
	cleanups = append(cleanups, func() { _ = dex.Stop() })

	// The manager binary, built exactly as `make build` does.
	bin := filepath.Join(dir, "dexterity")
	if err := harness.BuildManager(bin); err != nil {
		return err
	}

	kubeconfig := filepath.Join(dir, "kubeconfig")
	if err := env.WriteAdminKubeconfig(kubeconfig, "e2e-admin"); err != nil {
		return err
	}
	// Webhook certificates provided in the cert dir (as OLM does), and the registry's own.
	webhookCert, err := harness.NewServingCert(pkix.Name{CommonName: "e2e webhook CA"})
	if err != nil {
		return err
	}
	certDir := filepath.Join(dir, "webhook-certs")
	if err := writeFiles(certDir, map[string][]byte{"tls.crt": webhookCert.Cert, "tls.key": webhookCert.Key}); err != nil {
		return err
	}
	regCert, err := harness.NewServingCert(pkix.Name{CommonName: "e2e registry CA"})
	if err != nil {
		return err
	}
	regDir := filepath.Join(dir, "registry-certs")
	if err := writeFiles(regDir, map[string][]byte{"tls.crt": regCert.Cert, "tls.key": regCert.Key}); err != nil {
		return err
	}
	registryCA = regCert.CACert

	ports := make([]int, 3)
	for i := range ports {
		if ports[i], err = harness.FreePort(); err != nil {
			return err
		}
	}
	webhookPort, registryPort, probePort := ports[0], ports[1], ports[2]
	registryHost = "127.0.0.1:" + strconv.Itoa(registryPort)

	if err := k8s.Create(context.Background(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "dexterity-system"}}); err != nil {
		return err
	}
	managerLog = filepath.Join(dir, "manager.log")
	mgr, err := harness.StartManagerProcess(bin, managerLog, []string{"POD_NAMESPACE=dexterity-system"},
		"--kubeconfig", kubeconfig,
		"--metrics-bind-address", "0",
		"--health-probe-bind-address", "127.0.0.1:"+strconv.Itoa(probePort),
		"--enable-webhooks", "--webhook-port", strconv.Itoa(webhookPort), "--webhook-cert-dir", certDir,
		"--registry-bind-address", registryHost,
		"--registry-tls-cert-file", filepath.Join(regDir, "tls.crt"),
		"--registry-tls-key-file", filepath.Join(regDir, "tls.key"),
		"--dex-resync-period", "1m",
		// Out of a cluster there is no pod namespace file: leader election needs its namespace.
		"--leader-elect", "--leader-election-namespace", "dexterity-system",
	)
	if err != nil {
		return err
	}
	cleanups = append(cleanups, mgr.Stop)

	// The validating and defaulting webhooks, pointing at the manager with the CA of its certificate.
	vwc, err := harness.WebhookConfiguration()
	if err != nil {
		return err
	}
	harness.PointWebhooksAt(vwc, "127.0.0.1", webhookPort, webhookCert.CACert)
	if err := k8s.Create(context.Background(), vwc); err != nil {
		return fmt.Errorf("failed to register the webhooks: %w", err)
	}
	mwc, err := harness.MutatingWebhookConfiguration()
	if err != nil {
		return err
	}
	harness.PointMutatingWebhooksAt(mwc, "127.0.0.1", webhookPort, webhookCert.CACert)
	if err := k8s.Create(context.Background(), mwc); err != nil {
		return fmt.Errorf("failed to register the defaulting webhooks: %w", err)
	}

	// Ready (webhooks serving included) within a minute.
	return harness.WaitHTTPOK(context.Background(), fmt.Sprintf("http://127.0.0.1:%d/readyz", probePort), time.Minute)
}

func writeFiles(dir string, files map[string][]byte) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o600); err != nil {
			return err
		}
	}
	return nil
}

func tail(s string) string {
	const n = 12000
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

// content is what the registry serves: a module tarball and a signed provider, on a file
// server with its own CA.
type content struct {
	files    *harness.TLSServer
	tarball  string
	provider *harness.SignedProvider
}

func serveContent(t *testing.T) *content {
	t.Helper()
	g := NewWithT(t)
	dir := t.TempDir()
	tarball, err := harness.BuildModuleTarball(dir, map[string]string{
		"main.tf": "variable \"name\" {\n  default = \"network\"\n}\n\noutput \"name\" {\n  value = var.name\n}\n",
	})
	g.Expect(err).NotTo(HaveOccurred())
	sp, err := harness.BuildSignedProvider(t, dir, "team-a", "echo", "0.1.0", [][2]string{{runtime.GOOS, runtime.GOARCH}})
	g.Expect(err).NotTo(HaveOccurred())
	files, err := harness.StartTLSServer(http.FileServer(http.Dir(dir)))
	g.Expect(err).NotTo(HaveOccurred())
	t.Cleanup(files.Close)
	return &content{files: files, tarball: filepath.Base(tarball), provider: sp}
}

func (c *content) objects(ns string) []client.Object {
	base := c.files.URL + "/"
	mod := &dexv1.Module{
		ObjectMeta: metav1.ObjectMeta{Name: "network", Namespace: ns},
		Spec: dexv1.ModuleSpec{Namespace: "team-a", Name: "network", System: "local",
			Versions: []dexv1.ModuleVersion{{Version: "1.0.0", Source: base + c.tarball}}},
	}
	prov := &dexv1.Provider{ObjectMeta: metav1.ObjectMeta{Name: "echo", Namespace: ns}, Spec: c.provider.ProviderSpec(base)}
	return []client.Object{mod, prov}
}

// configuration is a root module that uses the registry's module and provider.
func configuration(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	main := fmt.Sprintf(`terraform {
  required_providers {
    echo = {
      source  = "%[1]s/team-a/echo"
      version = "0.1.0"
    }
  }
}

module "network" {
  source  = "%[1]s/team-a/network/local"
  version = "1.0.0"
}
`, registryHost)
	NewWithT(t).Expect(os.WriteFile(filepath.Join(dir, "main.tf"), []byte(main), 0o600)).To(Succeed())
	return dir
}

// newTofu is a tofu trusting the registry's and the file server's CAs.
func newTofu(t *testing.T, c *content) *harness.Tofu {
	t.Helper()
	tf := harness.NewTofu(t, t.TempDir())
	NewWithT(t).Expect(tf.SetCACert(bytes.Join([][]byte{registryCA, c.files.CACert}, nil))).To(Succeed())
	return tf
}

func login(t *testing.T, tf *harness.Tofu, user harness.StaticUser) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	err := tf.Login(ctx, registryHost, func(authURL string) error {
		if !strings.HasPrefix(authURL, dex.IssuerURL()+"/auth?") {
			return fmt.Errorf("tofu opened %s, not Dex's authorization endpoint", authURL)
		}
		return harness.DexPasswordLogin(ctx, nil, authURL, user.Email, user.Password)
	})
	NewWithT(t).Expect(err).NotTo(HaveOccurred())
}

func tofuInit(t *testing.T, tf *harness.Tofu, dir string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	stdout, stderr, err := tf.Run(ctx, dir, "init", "-input=false", "-no-color")
	return harness.UnwrapOutput(stdout + "\n" + stderr), err
}

func apply(t *testing.T, objs ...client.Object) {
	t.Helper()
	for _, o := range objs {
		NewWithT(t).Expect(k8s.Create(context.Background(), o)).To(Succeed(), "%T %s", o, o.GetName())
	}
}

func waitReady(t *testing.T, objs ...client.Object) {
	t.Helper()
	for _, o := range objs {
		NewWithT(t).Eventually(func() error {
			if err := k8s.Get(context.Background(), client.ObjectKeyFromObject(o), o); err != nil {
				return err
			}
			getter, ok := o.(interface{ GetConditions() []metav1.Condition })
			if !ok {
				return nil
			}
			if !meta.IsStatusConditionTrue(getter.GetConditions(), dexv1.ConditionReady) {
				return fmt.Errorf("%T %s not Ready: %+v", o, o.GetName(), getter.GetConditions())
			}
			return nil
		}, time.Minute, 200*time.Millisecond).Should(Succeed())
	}
}

// TestTofuLoginAndInit is the user's whole story: the platform team applies the provider, the
// registry's client, bindings and content; a team member runs `tofu login` and `tofu init`;
// someone outside the team is refused; a CI pipeline with its own Dex client gets in only once a
// client binding exists.
func TestTofuLoginAndInit(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	c := serveContent(t)
	ns := "platform"
	g.Expect(k8s.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}})).To(Succeed())

	provider := &dexv1.OIDCProvider{
		ObjectMeta: metav1.ObjectMeta{Name: "dex", Namespace: ns},
		Spec: dexv1.OIDCProviderSpec{
			IssuerURL: dex.IssuerURL(), ClientID: "registry", Hostnames: []string{registryHost},
			AllowClientCredentials: true,
			Dex:                    &dexv1.DexAdminSpec{GRPCAddress: dex.GRPCAddress(), Insecure: true},
		},
	}
	registryClient := &dexv1.DexStaticClient{
		ObjectMeta: metav1.ObjectMeta{Name: "registry", Namespace: ns},
		Spec: dexv1.DexStaticClientSpec{
			ProviderRef: dexv1.ObjectRef{Name: "dex"}, ClientID: "registry", DisplayName: "Registry", Public: true,
			LoopbackRedirect: &dexv1.LoopbackRedirect{Ports: []int32{10000, 10010}, Path: "/login"},
		},
	}
	ciClient := &dexv1.DexStaticClient{
		ObjectMeta: metav1.ObjectMeta{Name: "ci", Namespace: ns},
		Spec: dexv1.DexStaticClientSpec{
			ProviderRef: dexv1.ObjectRef{Name: "dex"}, DisplayName: "CI pipeline",
			RedirectURIs:   []string{"https://ci.example.org/callback"},
			SecretRef:      &dexv1.SecretKeyRef{Name: "ci-oidc", Key: "client-secret"},
			GenerateSecret: true,
		},
	}
	members := &dexv1.GroupBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "team-a-members", Namespace: ns},
		Spec: dexv1.GroupBindingSpec{Expression: `"team-a" in groups`,
			ModuleResources: []string{"team-a/*"}, ProviderResources: []string{"team-a/*"}},
	}
	apply(t, provider, registryClient, ciClient, members)
	apply(t, c.objects(ns)...)
	waitReady(t, provider, registryClient, ciClient, members)

	// The webhooks are live: a binding that does not compile is refused at admission.
	bad := &dexv1.GroupBinding{ObjectMeta: metav1.ObjectMeta{Name: "bad", Namespace: ns}, Spec: dexv1.GroupBindingSpec{Expression: `len(groups)`}}
	g.Expect(k8s.Create(ctx, bad)).To(MatchError(ContainSubstring("spec.expression")))

	t.Run("a team member logs in through Dex and initialises", func(t *testing.T) {
		g := NewWithT(t)
		tf := newTofu(t, c)
		login(t, tf, harness.AdminUser)
		tok, err := tf.StoredToken(registryHost)
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(tok).NotTo(BeEmpty())
		// Module and Provider have no status to wait for: retry until the registry's cache has
		// seen them (they were created a moment ago).
		work := configuration(t)
		var out string
		g.Eventually(func() error {
			var err error
			if out, err = tofuInit(t, tf, work); err != nil {
				return errors.New(out)
			}
			return nil
		}, time.Minute, time.Second).Should(Succeed())
		g.Expect(out).To(ContainSubstring("Installed " + registryHost + "/team-a/echo v0.1.0 (signed, key ID " + c.provider.Key.KeyID))
		g.Expect(out).To(ContainSubstring("OpenTofu has been successfully initialized"))
	})

	t.Run("a user whose groups match no binding is refused", func(t *testing.T) {
		g := NewWithT(t)
		tf := newTofu(t, c)
		login(t, tf, harness.OtherUser)
		out, err := tofuInit(t, tf, configuration(t))
		g.Expect(err).To(HaveOccurred())
		g.Expect(out).To(ContainSubstring("403 Forbidden"))
	})

	t.Run("CI with its own Dex client needs a client binding", func(t *testing.T) {
		g := NewWithT(t)
		secret := &corev1.Secret{}
		g.Expect(k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: "ci-oidc"}, secret)).To(Succeed())
		// Dex has no client_credentials grant: the pipeline's token comes from the password
		// grant of its own client, for a user outside team-a, so only the client binding counts.
		resp, err := harness.PasswordGrant(dex.IssuerURL(), ciClient.EffectiveClientID(), string(secret.Data["client-secret"]),
			harness.OtherUser.Email, harness.OtherUser.Password)
		g.Expect(err).NotTo(HaveOccurred())
		token, _ := resp["access_token"].(string)
		g.Expect(token).NotTo(BeEmpty())

		tf := newTofu(t, c)
		g.Expect(tf.SetCredentials(registryHost, token)).To(Succeed())
		work := configuration(t)
		out, err := tofuInit(t, tf, work)
		g.Expect(err).To(HaveOccurred(), "no binding names client:%s yet", ciClient.EffectiveClientID())
		g.Expect(out).To(ContainSubstring("403 Forbidden"))

		apply(t, &dexv1.GroupBinding{
			ObjectMeta: metav1.ObjectMeta{Name: "ci", Namespace: ns},
			Spec: dexv1.GroupBindingSpec{Expression: fmt.Sprintf("%q in groups", "client:"+ciClient.EffectiveClientID()),
				ModuleResources: []string{"team-a/*"}, ProviderResources: []string{"team-a/*"}},
		})
		g.Eventually(func() error {
			out, err := tofuInit(t, tf, work)
			if err != nil {
				return errors.New(out)
			}
			return nil
		}, time.Minute, time.Second).Should(Succeed())
	})
}
