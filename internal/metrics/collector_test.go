package metrics

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"

	dexv1 "dexterity.dev/dexterity/api/v1alpha1"
)

func cond(t, status, reason string, at time.Time) metav1.Condition {
	return metav1.Condition{Type: t, Status: metav1.ConditionStatus(status), Reason: reason, LastTransitionTime: metav1.NewTime(at)}
}

func certPEM(t *testing.T, notAfter time.Time) []byte {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	NewWithT(t).Expect(err).NotTo(HaveOccurred())
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test"}, NotBefore: notAfter.Add(-time.Hour), NotAfter: notAfter}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	NewWithT(t).Expect(err).NotTo(HaveOccurred())
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

func newScheme(t *testing.T) *runtime.Scheme {
	s := runtime.NewScheme()
	NewWithT(t).Expect(clientgoscheme.AddToScheme(s)).To(Succeed())
	NewWithT(t).Expect(dexv1.AddToScheme(s)).To(Succeed())
	return s
}

// The collector counts states and conditions per kind (zeros included), names the oldest
// Stalled transition, and reads certificate expiry from the providers' TLS Secrets.
func TestCollector(t *testing.T) {
	g := NewWithT(t)
	now := time.Now().Truncate(time.Second)
	clientExpiry, oldCA, newCA := now.Add(30*24*time.Hour), now.Add(24*time.Hour), now.Add(365*24*time.Hour)
	objs := []client.Object{
		&dexv1.OIDCProvider{ObjectMeta: metav1.ObjectMeta{Name: "dex", Namespace: "platform"},
			Spec: dexv1.OIDCProviderSpec{Dex: &dexv1.DexAdminSpec{GRPCAddress: "dex:5557", TLS: &dexv1.DexTLSSpec{SecretRef: dexv1.LocalObjectReference{Name: "dex-tls"}}}},
			Status: dexv1.OIDCProviderStatus{Conditions: []metav1.Condition{
				cond(dexv1.ConditionReady, "False", dexv1.ReasonDexUnavailable, now),
				cond(dexv1.ConditionReconciling, "True", dexv1.ReasonDexUnavailable, now),
				cond(dexv1.ConditionDexReachable, "False", dexv1.ReasonDexUnavailable, now)}}},
		&dexv1.OIDCProvider{ObjectMeta: metav1.ObjectMeta{Name: "plain", Namespace: "platform"},
			Spec: dexv1.OIDCProviderSpec{Dex: &dexv1.DexAdminSpec{GRPCAddress: "127.0.0.1:5557", Insecure: true}}},
		&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "dex-tls", Namespace: "platform"}, Data: map[string][]byte{
			"tls.crt": certPEM(t, clientExpiry), "ca.crt": append(certPEM(t, oldCA), certPEM(t, newCA)...)}},
		&dexv1.DexStaticClient{ObjectMeta: metav1.ObjectMeta{Name: "a", Namespace: "team-a"}, Status: dexv1.DexStaticClientStatus{Conditions: []metav1.Condition{
			cond(dexv1.ConditionReady, "True", dexv1.ReasonReconciled, now), cond(dexv1.ConditionRegistered, "True", dexv1.ReasonReconciled, now)}}},
		&dexv1.DexStaticClient{ObjectMeta: metav1.ObjectMeta{Name: "b", Namespace: "team-b"}, Status: dexv1.DexStaticClientStatus{Conditions: []metav1.Condition{
			cond(dexv1.ConditionReady, "False", dexv1.ReasonSecretNotFound, now), cond(dexv1.ConditionStalled, "True", dexv1.ReasonSecretNotFound, now.Add(-time.Hour)),
			cond(dexv1.ConditionSecretReady, "False", dexv1.ReasonSecretNotFound, now)}}},
		&dexv1.DexStaticClient{ObjectMeta: metav1.ObjectMeta{Name: "c", Namespace: "team-c"}, Status: dexv1.DexStaticClientStatus{Conditions: []metav1.Condition{
			cond(dexv1.ConditionStalled, "True", dexv1.ReasonClientIDConflict, now.Add(-2*time.Hour)),
			// A condition type the kind does not break down is not exported.
			cond("Unlisted", "True", "Whatever", now)}}},
		&dexv1.DexConnector{ObjectMeta: metav1.ObjectMeta{Name: "ldap", Namespace: "platform"}, Status: dexv1.DexConnectorStatus{Conditions: []metav1.Condition{
			cond(dexv1.ConditionConnectorHealthy, "False", dexv1.ReasonConnectorFailed, now)}}},
	}
	c := fake.NewClientBuilder().WithScheme(newScheme(t)).WithObjects(objs...).
		WithStatusSubresource(&dexv1.OIDCProvider{}, &dexv1.DexStaticClient{}, &dexv1.DexConnector{}).Build()
	elected := make(chan struct{})
	col := NewCollector(c, elected)
	col.MinInterval = 0 // every scrape reads (TestScrapesReadTheObjectsOncePerInterval: the default)

	g.Expect(testutil.CollectAndCount(col)).To(BeZero(), "nothing before the replica is elected")
	close(elected)

	want := `
# HELP dexterity_objects Objects by kind and state (ready, reconciling, stalled), from the manager's cache; exported by the leader.
# TYPE dexterity_objects gauge
dexterity_objects{kind="Dex",state="ready"} 0
dexterity_objects{kind="Dex",state="reconciling"} 0
dexterity_objects{kind="Dex",state="stalled"} 0
dexterity_objects{kind="DexConnector",state="ready"} 0
dexterity_objects{kind="DexConnector",state="reconciling"} 1
dexterity_objects{kind="DexConnector",state="stalled"} 0
dexterity_objects{kind="DexStaticClient",state="ready"} 1
dexterity_objects{kind="DexStaticClient",state="reconciling"} 0
dexterity_objects{kind="DexStaticClient",state="stalled"} 2
dexterity_objects{kind="GroupBinding",state="ready"} 0
dexterity_objects{kind="GroupBinding",state="reconciling"} 0
dexterity_objects{kind="GroupBinding",state="stalled"} 0
dexterity_objects{kind="OIDCProvider",state="ready"} 0
dexterity_objects{kind="OIDCProvider",state="reconciling"} 2
dexterity_objects{kind="OIDCProvider",state="stalled"} 0
`
	g.Expect(testutil.CollectAndCompare(col, strings.NewReader(want), ObjectsName)).To(Succeed())

	stalled := `
# HELP dexterity_objects_stalled_since_timestamp_seconds Since when (the Stalled condition's lastTransitionTime, Unix seconds) the longest-stalled object of a kind waits for its user; absent while none of the kind is Stalled.
# TYPE dexterity_objects_stalled_since_timestamp_seconds gauge
dexterity_objects_stalled_since_timestamp_seconds{kind="DexStaticClient"} ` + itoa(now.Add(-2*time.Hour).Unix()) + "\n"
	g.Expect(testutil.CollectAndCompare(col, strings.NewReader(stalled), StalledSinceName)).To(Succeed())

	certs := `
# HELP dexterity_dex_certificate_expiry_timestamp_seconds Expiry (notAfter, Unix seconds) of the Dex gRPC certificates of an OIDCProvider's spec.dex.tls Secret: certificate=client is tls.crt, certificate=ca the latest-expiring CA of ca.crt.
# TYPE dexterity_dex_certificate_expiry_timestamp_seconds gauge
dexterity_dex_certificate_expiry_timestamp_seconds{certificate="ca",name="dex",namespace="platform"} ` + itoa(newCA.Unix()) + `
dexterity_dex_certificate_expiry_timestamp_seconds{certificate="client",name="dex",namespace="platform"} ` + itoa(clientExpiry.Unix()) + "\n"
	g.Expect(testutil.CollectAndCompare(col, strings.NewReader(certs), CertificateExpiryName)).To(Succeed())

	// Conditions: every listed type × status exists; the counts are right.
	reg := prometheus.NewPedanticRegistry()
	g.Expect(reg.Register(col)).To(Succeed())
	families, err := reg.Gather()
	g.Expect(err).NotTo(HaveOccurred())
	counts := map[string]float64{}
	for _, f := range families {
		if f.GetName() != ConditionsName {
			continue
		}
		for _, m := range f.GetMetric() {
			l := map[string]string{}
			for _, p := range m.GetLabel() {
				l[p.GetName()] = p.GetValue()
			}
			counts[l["kind"]+"/"+l["condition"]+"="+l["status"]] = m.GetGauge().GetValue()
		}
	}
	g.Expect(counts).To(HaveLen(3 * (3 + 2 + 2 + 2)))
	g.Expect(counts).To(HaveKeyWithValue("OIDCProvider/DexReachable=False", 1.0))
	g.Expect(counts).To(HaveKeyWithValue("DexStaticClient/SecretReady=False", 1.0))
	g.Expect(counts).To(HaveKeyWithValue("DexStaticClient/Registered=True", 1.0))
	g.Expect(counts).To(HaveKeyWithValue("DexConnector/ConnectorHealthy=False", 1.0))
	g.Expect(counts).To(HaveKeyWithValue("Dex/Available=Unknown", 0.0))

	// A renewed certificate is read again (the Secret's resourceVersion changed).
	renewed := now.Add(90 * 24 * time.Hour)
	s := &corev1.Secret{}
	g.Expect(c.Get(t.Context(), client.ObjectKey{Namespace: "platform", Name: "dex-tls"}, s)).To(Succeed())
	s.Data["tls.crt"] = certPEM(t, renewed)
	g.Expect(c.Update(t.Context(), s)).To(Succeed())
	g.Expect(testutil.CollectAndCompare(col, strings.NewReader(strings.Replace(certs, itoa(clientExpiry.Unix()), itoa(renewed.Unix()), 1)), CertificateExpiryName)).To(Succeed())
}

func itoa(i int64) string { return big.NewInt(i).String() }

// However many scrapes arrive at once, and however often, the objects are read once per
// MinInterval: a flood of requests to the metrics port cannot make the leader list every object
// once per request.
func TestScrapesReadTheObjectsOncePerInterval(t *testing.T) {
	g := NewWithT(t)
	var lists atomic.Int32
	c := fake.NewClientBuilder().WithScheme(newScheme(t)).WithInterceptorFuncs(interceptor.Funcs{
		List: func(ctx context.Context, c client.WithWatch, list client.ObjectList, opts ...client.ListOption) error {
			lists.Add(1)
			return c.List(ctx, list, opts...)
		}}).Build()
	elected := make(chan struct{})
	close(elected)
	col := NewCollector(c, elected)
	col.MinInterval = time.Hour
	var wg sync.WaitGroup
	for range 50 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			testutil.CollectAndCount(col)
		}()
	}
	wg.Wait()
	g.Expect(lists.Load()).To(BeEquivalentTo(len(kinds)), "50 concurrent scrapes listed the objects more than once")
	g.Expect(testutil.CollectAndCount(col, ObjectsName)).To(Equal(3*len(kinds)), "the series of the one reading are served to every scrape")
}
