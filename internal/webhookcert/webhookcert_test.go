package webhookcert_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
	"sigs.k8s.io/controller-runtime/pkg/webhook"

	dexv1 "dexterity.dev/dexterity/api/v1alpha1"
	"dexterity.dev/dexterity/controllers"
	"dexterity.dev/dexterity/internal/webhookcert"
	"dexterity.dev/dexterity/test/harness"
	"dexterity.dev/dexterity/webhooks"
)

var (
	env *harness.Env
	k8s client.Client
)

const waitTimeout = 60 * time.Second

func TestMain(m *testing.M) { os.Exit(run(m)) }

func run(m *testing.M) int {
	var logTo io.Writer
	logTo = io.Discard
	if os.Getenv("TEST_VERBOSE_LOG") != "" {
		logTo = os.Stderr
	}
	ctrl.SetLogger(zap.New(zap.UseDevMode(true), zap.WriteTo(logTo)))
	var err error
	env, err = harness.StartEnv(harness.EnvOptions{})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer func() { _ = env.Stop() }()
	k8s = env.Client
	return m.Run()
}

var managers atomic.Int32

// newManager returns a manager (not started) whose webhook server is a webhookcert.Server on a
// free loopback port, serving from a new temporary cert dir, and the readiness endpoint's URL.
func newManager(t *testing.T) (ctrl.Manager, *webhookcert.Server, int, string) {
	t.Helper()
	g := NewWithT(t)
	port, err := harness.FreePort()
	g.Expect(err).NotTo(HaveOccurred())
	probe, err := harness.FreePort()
	g.Expect(err).NotTo(HaveOccurred())
	srv := webhookcert.NewServer(webhook.Options{Host: "127.0.0.1", Port: port, CertDir: t.TempDir()})
	mgr, err := ctrl.NewManager(env.Config, ctrl.Options{
		Scheme:                 harness.Scheme,
		Metrics:                metricsserver.Options{BindAddress: "0"},
		HealthProbeBindAddress: net.JoinHostPort("127.0.0.1", strconv.Itoa(probe)),
		WebhookServer:          srv,
	})
	g.Expect(err).NotTo(HaveOccurred())
	return mgr, srv, port, fmt.Sprintf("http://127.0.0.1:%d/readyz", probe)
}

func options(ns, config string) webhookcert.Options {
	return webhookcert.Options{
		SecretName:        "webhook-server-cert",
		ServiceName:       "webhook-service",
		WebhookConfigName: config,
		Namespace:         ns,
		ExtraDNSNames:     []string{"localhost"},
		Name:              fmt.Sprintf("webhook-cert-%d", managers.Add(1)), // controller names are unique per process
	}
}

func namespace(t *testing.T) string {
	t.Helper()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "wc-"}}
	NewWithT(t).Expect(k8s.Create(context.Background(), ns)).To(Succeed())
	return ns.Name
}

func writeCert(t *testing.T, dir string, c *harness.ServingCert) {
	t.Helper()
	NewWithT(t).Expect(os.WriteFile(filepath.Join(dir, "tls.crt"), c.Cert, 0o600)).To(Succeed())
	NewWithT(t).Expect(os.WriteFile(filepath.Join(dir, "tls.key"), c.Key, 0o600)).To(Succeed())
}

// Setup chooses the mode from what is in the cert dir; only self-management creates the Secret.
func TestSetupMode(t *testing.T) {
	own, err := harness.NewServingCert(pkix.Name{CommonName: webhookcert.CAName, Organization: []string{webhookcert.CAOrganization}})
	NewWithT(t).Expect(err).NotTo(HaveOccurred())
	olm, err := harness.NewServingCert(pkix.Name{CommonName: "olm-selfsigned", Organization: []string{"Red Hat, Inc."}})
	NewWithT(t).Expect(err).NotTo(HaveOccurred())
	for _, tc := range []struct {
		name       string
		certs      *harness.ServingCert
		noSecret   bool // --webhook-cert-secret=""
		want       webhookcert.Mode
		wantSecret bool
	}{
		{name: "empty cert dir", want: webhookcert.ModeSelfManaged, wantSecret: true},
		{name: "certificate mounted by OLM", certs: olm, want: webhookcert.ModeProvided},
		{name: "own certificate left by a restarted container", certs: own, want: webhookcert.ModeSelfManaged, wantSecret: true},
		{name: "self-management off", noSecret: true, want: webhookcert.ModeProvided},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			ns := namespace(t)
			mgr, srv, _, _ := newManager(t)
			if tc.certs != nil {
				writeCert(t, srv.CertDir(), tc.certs)
			}
			o := options(ns, "unused")
			if tc.noSecret {
				o.SecretName = ""
			}
			mode, err := webhookcert.Setup(context.Background(), mgr, srv, o)
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(mode).To(Equal(tc.want))

			err = k8s.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: "webhook-server-cert"}, &corev1.Secret{})
			if tc.wantSecret {
				g.Expect(err).NotTo(HaveOccurred(), "the Secret exists before the rotator starts")
				_, err := os.Stat(filepath.Join(srv.CertDir(), "tls.crt"))
				g.Expect(os.IsNotExist(err)).To(BeTrue(), "an earlier run's certificate is removed; the server waits for the current one")
			} else {
				g.Expect(apierrors.IsNotFound(err)).To(BeTrue(), "no Secret when the certificate is provided: %v", err)
			}
			if tc.certs == olm {
				data, err := os.ReadFile(filepath.Join(srv.CertDir(), "tls.crt"))
				g.Expect(err).NotTo(HaveOccurred())
				g.Expect(data).To(Equal(olm.Cert), "a provided certificate is left alone")
			}
		})
	}
}

// The full self-managed cycle against a real API server: the Secret is created and filled, the
// certificate is written to the cert dir and served, the CA is injected into the
// ValidatingWebhookConfiguration, the API server calls the webhook over TLS with that caBundle,
// and a rotated certificate or CA is picked up by all three.
func TestSelfManagedCertificate(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ns := namespace(t)
	mgr, srv, port, readyz := newManager(t)

	vwc, err := harness.WebhookConfiguration()
	g.Expect(err).NotTo(HaveOccurred())
	vwc.Name = "dexterity-test-" + ns
	// The API server calls https://localhost:<port>; the caBundle is left for the rotator.
	harness.PointWebhooksAt(vwc, "localhost", port, nil)
	g.Expect(k8s.Create(ctx, vwc)).To(Succeed())
	t.Cleanup(func() { _ = k8s.Delete(context.Background(), vwc) })

	mwc, err := harness.MutatingWebhookConfiguration()
	g.Expect(err).NotTo(HaveOccurred())
	mwc.Name = "dexterity-test-mutating-" + ns
	harness.PointMutatingWebhooksAt(mwc, "localhost", port, nil)
	g.Expect(k8s.Create(ctx, mwc)).To(Succeed())
	t.Cleanup(func() { _ = k8s.Delete(context.Background(), mwc) })

	o := options(ns, vwc.Name)
	o.MutatingWebhookConfigName = mwc.Name
	mode, err := webhookcert.Setup(ctx, mgr, srv, o)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(mode).To(Equal(webhookcert.ModeSelfManaged))
	g.Expect(controllers.RegisterIndexes(ctx, mgr.GetFieldIndexer())).To(Succeed())
	g.Expect(webhooks.SetupWithManager(mgr)).To(Succeed())
	g.Expect(mgr.AddReadyzCheck("webhooks", srv.StartedChecker())).To(Succeed())

	mctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- mgr.Start(mctx) }()
	t.Cleanup(func() { cancel(); g.Expect(<-done).To(Succeed()) })

	g.Eventually(func() (int, error) {
		resp, err := http.Get(readyz) //nolint:noctx // test
		if err != nil {
			return 0, err
		}
		_ = resp.Body.Close()
		return resp.StatusCode, nil
	}, waitTimeout, 100*time.Millisecond).Should(Equal(http.StatusOK), "/readyz passes once the webhook server serves")

	secretKey := client.ObjectKey{Namespace: ns, Name: o.SecretName}
	secret := func(g Gomega) *corev1.Secret {
		s := &corev1.Secret{}
		g.Expect(k8s.Get(ctx, secretKey, s)).To(Succeed())
		return s
	}
	// converged: the Secret's certificate is in the cert dir and served, its CA in every webhook's
	// caBundle; returns the Secret.
	converged := func(g Gomega) *corev1.Secret {
		s := secret(g)
		g.Expect(s.Data).To(HaveKey("tls.crt"))
		for _, name := range []string{"tls.crt", "tls.key", "ca.crt"} {
			data, err := os.ReadFile(filepath.Join(srv.CertDir(), name))
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(data).To(Equal(s.Data[name]), "cert dir %s", name)
		}
		cur := &admissionregistrationv1.ValidatingWebhookConfiguration{}
		g.Expect(k8s.Get(ctx, client.ObjectKeyFromObject(vwc), cur)).To(Succeed())
		for _, w := range cur.Webhooks {
			g.Expect(w.ClientConfig.CABundle).To(Equal(s.Data["ca.crt"]), "caBundle of %s", w.Name)
		}
		curM := &admissionregistrationv1.MutatingWebhookConfiguration{}
		g.Expect(k8s.Get(ctx, client.ObjectKeyFromObject(mwc), curM)).To(Succeed())
		for _, w := range curM.Webhooks {
			g.Expect(w.ClientConfig.CABundle).To(Equal(s.Data["ca.crt"]), "caBundle of %s", w.Name)
		}
		g.Expect(served(g, port, s.Data["ca.crt"], o.ServiceName+"."+ns+".svc")).To(Equal(s.Data["tls.crt"]))
		return s
	}
	first := converged(g)
	g.Expect(first.Data).To(HaveKey("ca.key"))
	admissionWorks(t, ns, "first")

	t.Run("server certificate rotated, same CA", func(t *testing.T) {
		g := NewWithT(t)
		s := first.DeepCopy()
		delete(s.Data, "tls.crt")
		delete(s.Data, "tls.key")
		g.Expect(k8s.Update(ctx, s)).To(Succeed())
		var next *corev1.Secret
		g.Eventually(func(g Gomega) {
			next = converged(g)
			g.Expect(next.Data["tls.crt"]).NotTo(Equal(first.Data["tls.crt"]))
		}, waitTimeout, 200*time.Millisecond).Should(Succeed())
		g.Expect(next.Data["ca.crt"]).To(Equal(first.Data["ca.crt"]))
		admissionWorks(t, ns, "servercert")
	})
	t.Run("CA rotated", func(t *testing.T) {
		g := NewWithT(t)
		s := secret(g)
		old := s.DeepCopy()
		delete(s.Data, "ca.crt")
		delete(s.Data, "ca.key")
		g.Expect(k8s.Update(ctx, s)).To(Succeed())
		g.Eventually(func(g Gomega) {
			next := converged(g)
			g.Expect(next.Data["ca.crt"]).NotTo(Equal(old.Data["ca.crt"]))
		}, waitTimeout, 200*time.Millisecond).Should(Succeed())
		admissionWorks(t, ns, "ca")
	})
}

// served returns the certificate the webhook server presents, verified against caPEM for
// serverName.
func served(g Gomega, port int, caPEM []byte, serverName string) []byte {
	pool := x509.NewCertPool()
	g.Expect(pool.AppendCertsFromPEM(caPEM)).To(BeTrue())
	conn, err := tls.Dial("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), &tls.Config{RootCAs: pool, ServerName: serverName, MinVersion: tls.VersionTLS12})
	g.Expect(err).NotTo(HaveOccurred())
	defer func() { _ = conn.Close() }()
	der := conn.ConnectionState().PeerCertificates[0].Raw
	return pemCert(der)
}

// admissionWorks proves that the API server reaches the webhook: a GroupBinding whose expression
// is not a boolean passes the CRD's schema but not the webhook.
func admissionWorks(t *testing.T, ns, name string) {
	t.Helper()
	g := NewWithT(t)
	gb := &dexv1.GroupBinding{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns}, Spec: dexv1.GroupBindingSpec{Expression: "len(groups)"}}
	g.Eventually(func() error { return k8s.Create(context.Background(), gb.DeepCopy()) }, waitTimeout, 200*time.Millisecond).
		Should(MatchError(And(ContainSubstring("spec.expression"), ContainSubstring("expected bool"))))
	gb.Spec.Expression = `"team-a" in groups`
	g.Expect(k8s.Create(context.Background(), gb)).To(Succeed())
	// The defaulting webhook (failure policy Ignore: only a call that worked sets the finalizer).
	c := &dexv1.DexStaticClient{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec: dexv1.DexStaticClientSpec{ProviderRef: dexv1.ObjectRef{Name: "absent"}, Public: true, RedirectURIs: []string{"https://app.example.com/cb"}}}
	g.Expect(k8s.Create(context.Background(), c)).To(Succeed())
	g.Expect(c.Finalizers).To(ContainElement(dexv1.ClientFinalizer), "the API server called the defaulting webhook over TLS")
	c.Finalizers = nil
	g.Expect(k8s.Update(context.Background(), c)).To(Succeed())
}

func pemCert(der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}
