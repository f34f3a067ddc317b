package dexkind

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"math/big"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	dexv1 "dexterity.dev/dexterity/api/v1alpha1"
)

// testCA is a private CA, as a platform team's cert-manager ClusterIssuer would use.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pem  []byte
}

func newTestCA(g Gomega) *testCA {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	g.Expect(err).NotTo(HaveOccurred())
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "platform CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	g.Expect(err).NotTo(HaveOccurred())
	cert, err := x509.ParseCertificate(der)
	g.Expect(err).NotTo(HaveOccurred())
	return &testCA{cert: cert, key: key, pem: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}
}

// serving issues a serving certificate for hosts with a fresh serial, as a renewal does; it
// returns the kubernetes.io/tls Secret data (with ca.crt, as cert-manager writes it) and the serial.
func (ca *testCA) serving(g Gomega, hosts ...string) (map[string][]byte, *big.Int) {
	data, serial := ca.leaf(g, hosts[0], hosts, x509.ExtKeyUsageServerAuth)
	data["ca.crt"] = ca.pem
	return data, serial
}

// leaf issues a certificate for cn (and dnsNames) with usage, as the tls.crt and tls.key of a
// Secret, and returns its serial number.
func (ca *testCA) leaf(g Gomega, cn string, dnsNames []string, usage x509.ExtKeyUsage) (map[string][]byte, *big.Int) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	g.Expect(err).NotTo(HaveOccurred())
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 64))
	g.Expect(err).NotTo(HaveOccurred())
	tmpl := &x509.Certificate{
		SerialNumber: serial, Subject: pkix.Name{CommonName: cn}, DNSNames: dnsNames,
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{usage},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	g.Expect(err).NotTo(HaveOccurred())
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	g.Expect(err).NotTo(HaveOccurred())
	return map[string][]byte{
		corev1.TLSCertKey:       pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		corev1.TLSPrivateKeyKey: pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}),
	}, serial
}

// httpsClient trusts only ca and records the serial of the certificate each server presented.
func httpsClient(ca *testCA, served *big.Int) *http.Client {
	pool := x509.NewCertPool()
	pool.AddCert(ca.cert)
	return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		DisableKeepAlives: true,
		TLSClientConfig: &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: pool, VerifyConnection: func(cs tls.ConnectionState) error {
			served.Set(cs.PeerCertificates[0].SerialNumber)
			return nil
		}},
	}}
}

// TestDexKindHTTPS: a Dex with spec.web.tls (a kubernetes.io/tls Secret signed by a private CA, as
// cert-manager writes it) and an Ingress serves its issuer over HTTPS on the Service's http port:
// discovery and a token (password grant) over HTTPS, accepted by the registry through a tenant's
// provider that trusts the CA; the operator's own provider for the Dex reads discovery and keys
// with the Secret's ca.crt. Renewing the certificate (new Secret data, same CA) rolls the pod,
// which then serves the new certificate.
func TestDexKindHTTPS(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	const ns = "platform-tls"
	host := "dex." + ns + ".svc"
	issuer := "https://" + host + ":5556/dex"
	g.Expect(k8s.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}})).To(Succeed())
	waitNoDexPod(g) // another test's Dex would hold the ports
	ca := newTestCA(g)
	tlsData, firstSerial := ca.serving(g, host)
	tlsSecret := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "dex-web-tls"}, Type: corev1.SecretTypeTLS, Data: tlsData}
	g.Expect(k8s.Create(ctx, tlsSecret)).To(Succeed())
	g.Expect(k8s.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "users"}, StringData: map[string]string{"admin": demoHash}})).To(Succeed())
	d := &dexv1.Dex{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "dex"},
		Spec: dexv1.DexSpec{
			Issuer: issuer, // the kubernetes storage (default): clients outlive the pods
			Web: &dexv1.DexWeb{
				TLS:     &dexv1.DexWebTLS{SecretRef: dexv1.LocalObjectReference{Name: tlsSecret.Name}},
				Headers: &dexv1.DexWebHeaders{StrictTransportSecurity: "max-age=31536000", XFrameOptions: "DENY"},
			},
			Ingress:          &dexv1.DexIngress{ClassName: "nginx", TLSSecretName: tlsSecret.Name},
			LogFormat:        "text",
			OAuth2:           &dexv1.DexOAuth2{SkipApprovalScreen: true, PasswordConnector: "local"},
			EnablePasswordDB: true,
			StaticPasswords: []dexv1.DexStaticPassword{{
				Email: "admin@example.com", Username: "admin", UserID: "08a8684b", Groups: []string{"platform"},
				HashSecretRef: dexv1.SecretKeyRef{Name: "users", Key: "admin"},
			}},
			AllowedNamespaces: &dexv1.AllowedNamespaces{From: dexv1.NamespacesFromSame},
		},
	}
	g.Expect(k8s.Create(ctx, d)).To(Succeed())
	g.Eventually(func() error { return node.Run(ns, "dex") }, timeout).Should(Succeed())
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("--- Dex pod log ---\n%s", tail(node.Logs(ns, "dex")))
		}
		// The other tests' pods bind the same ports: the Dex goes, with its pod, before they run.
		_ = k8s.Delete(context.Background(), d)
		NewWithT(t).Eventually(func() int { return node.PodPID(ns, "dex") }, timeout).Should(BeZero())
	})
	g.Eventually(condition(d, dexv1.ConditionReady), timeout).Should(HaveField("Status", metav1.ConditionTrue))

	// The Ingress routes the issuer's host and path, with the TLS Secret.
	ing := &networkingv1.Ingress{}
	g.Expect(k8s.Get(ctx, types.NamespacedName{Namespace: ns, Name: "dex"}, ing)).To(Succeed())
	g.Expect(ing.Spec.Rules[0].Host).To(Equal(host))
	g.Expect(ing.Spec.Rules[0].HTTP.Paths[0].Path).To(Equal("/dex"))
	g.Expect(ing.Spec.TLS[0].SecretName).To(Equal(tlsSecret.Name))

	// Discovery over HTTPS with the certificate of the Secret, and Dex's security headers.
	served := new(big.Int)
	hc := httpsClient(ca, served)
	discovery := func(g Gomega) map[string]any {
		resp, err := hc.Get(issuer + "/.well-known/openid-configuration")
		g.Expect(err).NotTo(HaveOccurred())
		defer resp.Body.Close()
		g.Expect(resp.StatusCode).To(Equal(http.StatusOK))
		g.Expect(resp.Header.Get("Strict-Transport-Security")).To(Equal("max-age=31536000"))
		g.Expect(resp.Header.Get("X-Frame-Options")).To(Equal("DENY"))
		var doc map[string]any
		g.Expect(json.NewDecoder(resp.Body).Decode(&doc)).To(Succeed())
		return doc
	}
	g.Eventually(discovery, timeout).Should(HaveKeyWithValue("issuer", issuer))
	g.Expect(served.Cmp(firstSerial)).To(BeZero(), "Dex serves the Secret's certificate")
	_, err := http.Get(issuer + "/.well-known/openid-configuration") //nolint:noctx // a plain-HTTP client must fail
	g.Expect(err).To(HaveOccurred(), "the http port speaks HTTPS only")

	// The operator's provider for this Dex trusts the Secret's ca.crt and is Ready.
	provider := &dexv1.OIDCProvider{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "dex"}}
	g.Eventually(condition(provider, dexv1.ConditionReady), timeout).Should(HaveField("Status", metav1.ConditionTrue))
	g.Expect(provider.Spec.CABundle).To(Equal(string(ca.pem)))

	// A confidential client, a token over HTTPS, and the registry accepting it through a
	// provider that trusts the CA.
	ci := &dexv1.DexStaticClient{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "ci"},
		Spec: dexv1.DexStaticClientSpec{
			ProviderRef: dexv1.ObjectRef{Name: "dex"}, RedirectURIs: []string{"https://ci.example.org/callback"},
			SecretRef: &dexv1.SecretKeyRef{Name: "ci-oidc", Key: "client-secret"}, GenerateSecret: true,
		},
	}
	g.Expect(k8s.Create(ctx, ci)).To(Succeed())
	g.Eventually(condition(ci, dexv1.ConditionReady), timeout).Should(HaveField("Status", metav1.ConditionTrue))
	s := &corev1.Secret{}
	g.Expect(k8s.Get(ctx, types.NamespacedName{Namespace: ns, Name: "ci-oidc"}, s)).To(Succeed())
	const registryName = "registry-tls.test"
	for _, obj := range []client.Object{
		&dexv1.OIDCProvider{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "registry"}, Spec: dexv1.OIDCProviderSpec{
			IssuerURL: issuer, ClientID: ci.EffectiveClientID(), Hostnames: []string{registryName}, CABundle: string(ca.pem),
		}},
		&dexv1.GroupBinding{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "platform"}, Spec: dexv1.GroupBindingSpec{
			Expression: `"platform" in groups`, ModuleResources: []string{"team-tls/*"},
		}},
		&dexv1.Module{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "network"}, Spec: dexv1.ModuleSpec{
			Namespace: "team-tls", Name: "network", System: "local",
			Versions: []dexv1.ModuleVersion{{Version: "1.0.0", Source: "https://files.example.org/network.tgz"}},
		}},
	} {
		g.Expect(k8s.Create(ctx, obj)).To(Succeed())
	}
	t.Cleanup(func() {
		for _, o := range []client.Object{ci, &dexv1.OIDCProvider{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "registry"}}} {
			_ = k8s.Delete(context.Background(), o)
		}
	})
	token := func(g Gomega) string {
		form := url.Values{"grant_type": {"password"}, "username": {"admin@example.com"}, "password": {"password"}, "scope": {"openid groups"}}
		req, err := http.NewRequest(http.MethodPost, issuer+"/token", strings.NewReader(form.Encode()))
		g.Expect(err).NotTo(HaveOccurred())
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.SetBasicAuth(url.QueryEscape(ci.EffectiveClientID()), url.QueryEscape(string(s.Data["client-secret"])))
		resp, err := hc.Do(req)
		g.Expect(err).NotTo(HaveOccurred())
		defer resp.Body.Close()
		g.Expect(resp.StatusCode).To(Equal(http.StatusOK))
		var tok map[string]any
		g.Expect(json.NewDecoder(resp.Body).Decode(&tok)).To(Succeed())
		return tok["id_token"].(string)
	}
	registry := func(g Gomega, tok string) int {
		req, err := http.NewRequest(http.MethodGet, "http://"+registryHost+"/v1/modules/team-tls/network/local/versions", nil)
		g.Expect(err).NotTo(HaveOccurred())
		req.Host = registryName
		req.Header.Set("Authorization", "Bearer "+tok)
		resp, err := (&http.Client{Timeout: 10 * time.Second}).Do(req)
		g.Expect(err).NotTo(HaveOccurred())
		_ = resp.Body.Close()
		return resp.StatusCode
	}
	g.Eventually(func(g Gomega) int { return registry(g, token(g)) }, timeout).Should(Equal(http.StatusOK),
		"a token obtained over HTTPS is accepted by the registry")

	t.Run("a renewed certificate rolls the pod, which serves it", func(t *testing.T) {
		g := NewWithT(t)
		starts := node.PodStarts(ns, "dex")
		renewed, newSerial := ca.serving(g, host)
		cur := &corev1.Secret{}
		g.Expect(k8s.Get(ctx, client.ObjectKeyFromObject(tlsSecret), cur)).To(Succeed())
		cur.Data = renewed // as cert-manager renews: same Secret, new data
		g.Expect(k8s.Update(ctx, cur)).To(Succeed())
		renewedAt := time.Now()
		g.Eventually(func() int { return node.PodStarts(ns, "dex") }, timeout).Should(BeNumerically(">", starts), "the renewed certificate rolls the pod")
		t.Logf("the pod rolled %v after the renewal", time.Since(renewedAt).Round(100*time.Millisecond))
		g.Eventually(func(g Gomega) *big.Int {
			discovery(g)
			return new(big.Int).Set(served)
		}, timeout).Should(Equal(newSerial), "the new pod serves the renewed certificate")
		t.Logf("the renewed certificate was served %v after the renewal", time.Since(renewedAt).Round(100*time.Millisecond))
		g.Eventually(condition(d, dexv1.ConditionReady), timeout).Should(HaveField("Status", metav1.ConditionTrue))
		g.Eventually(func(g Gomega) int { return registry(g, token(g)) }, timeout).Should(Equal(http.StatusOK))

		// A change of the Secret's metadata alone (cert-manager rewrites its annotations) rolls nothing.
		starts = node.PodStarts(ns, "dex")
		g.Expect(k8s.Get(ctx, client.ObjectKeyFromObject(tlsSecret), cur)).To(Succeed())
		metav1.SetMetaDataAnnotation(&cur.ObjectMeta, "cert-manager.io/certificate-name", "dex")
		g.Expect(k8s.Update(ctx, cur)).To(Succeed())
		g.Consistently(func() int { return node.PodStarts(ns, "dex") }, 3*time.Second).Should(Equal(starts))
	})

	t.Run("a missing TLS Secret stalls the Dex naming the field", func(t *testing.T) {
		g := NewWithT(t)
		g.Eventually(func() error {
			cur := &dexv1.Dex{}
			if err := k8s.Get(ctx, client.ObjectKeyFromObject(d), cur); err != nil {
				return err
			}
			cur.Spec.Web.TLS.SecretRef.Name = "missing-tls"
			return k8s.Update(ctx, cur)
		}, timeout).Should(Succeed())
		g.Eventually(condition(d, dexv1.ConditionStalled), timeout).Should(And(
			HaveField("Reason", dexv1.ReasonSecretNotFound), HaveField("Message", ContainSubstring("spec.web.tls.secretRef"))))
		g.Expect(apierrors.IsNotFound(k8s.Get(ctx, types.NamespacedName{Namespace: ns, Name: "missing-tls"}, &corev1.Secret{}))).To(BeTrue())
	})
}
