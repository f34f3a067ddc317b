// Package monitoring checks the alerts and the dashboard of config/prometheus against a running
// manager: after a short scenario (a provider reaching a real Dex over mTLS, a Ready and a
// Stalled client, a connector, a binding, registry requests), every metric that a rule or a
// panel names is exported. test/helm parses the same expressions with Prometheus's own parser
// and checks that promexpr.MetricNames finds exactly the metrics the parser finds.
package monitoring

import (
	"context"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"fmt"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	dto "github.com/prometheus/client_model/go"
	"go.uber.org/zap/zapcore"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"

	dexv1 "dexterity.dev/dexterity/api/v1alpha1"
	"dexterity.dev/dexterity/internal/metrics"
	"dexterity.dev/dexterity/internal/metrics/promexpr"
	"dexterity.dev/dexterity/internal/oidc"
	"dexterity.dev/dexterity/internal/registry"
	"dexterity.dev/dexterity/test/harness"
	"dexterity.dev/dexterity/test/operatortest"
)

const waitTimeout = 60 * time.Second

// The repository root, seen from this package's directory.
const root = "../.."

func TestMain(m *testing.M) {
	ctrl.SetLogger(zap.New(zap.UseDevMode(true), zap.Level(zapcore.ErrorLevel)))
	os.Exit(m.Run())
}

func TestAlertsAndDashboardNameExportedMetrics(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	env, err := harness.StartEnv(harness.EnvOptions{})
	g.Expect(err).NotTo(HaveOccurred())
	t.Cleanup(func() { _ = env.Stop() })
	k8s := env.Client

	d, err := harness.StartDex(harness.DexOptions{Dir: t.TempDir(), MTLS: true})
	g.Expect(err).NotTo(HaveOccurred())
	t.Cleanup(func() { _ = d.Stop() })

	port, err := harness.FreePort()
	g.Expect(err).NotTo(HaveOccurred())
	op, err := operatortest.Start(env.Config, operatortest.Options{
		Setup: func(mgr ctrl.Manager, keys *oidc.Cache) error {
			srv, err := registry.New(ctx, mgr.GetCache(), registry.Options{Addr: fmt.Sprintf("127.0.0.1:%d", port), Keys: keys, Kube: mgr.GetClient()})
			if err != nil {
				return err
			}
			if err := mgr.Add(srv); err != nil {
				return err
			}
			// What cmd/dexterity does (docs: /tmp/notes/s8/helm.md).
			return metrics.Register(ctrlmetrics.Registry, mgr.GetClient(), mgr.Elected())
		}})
	g.Expect(err).NotTo(HaveOccurred())
	t.Cleanup(func() { NewWithT(t).Expect(op.Stop()).To(Succeed()) })

	// The scenario.
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "monitoring-"}}
	g.Expect(k8s.Create(ctx, ns)).To(Succeed())
	tls := d.TLS()
	provider := &dexv1.OIDCProvider{
		ObjectMeta: metav1.ObjectMeta{Name: "dex", Namespace: ns.Name},
		Spec: dexv1.OIDCProviderSpec{IssuerURL: d.IssuerURL(), ClientID: "registry", Hostnames: []string{ns.Name + ".test"},
			Dex: &dexv1.DexAdminSpec{GRPCAddress: d.GRPCAddress(), TLS: &dexv1.DexTLSSpec{SecretRef: dexv1.LocalObjectReference{Name: "dex-grpc"}}}},
	}
	ready := &dexv1.DexStaticClient{
		ObjectMeta: metav1.ObjectMeta{Name: "app", Namespace: ns.Name},
		Spec: dexv1.DexStaticClientSpec{ProviderRef: dexv1.ObjectRef{Name: "dex"}, RedirectURIs: []string{"https://app.example.com/callback"},
			SecretRef: &dexv1.SecretKeyRef{Name: "app-client", Key: "clientSecret"}, GenerateSecret: true},
	}
	stalled := &dexv1.DexStaticClient{
		ObjectMeta: metav1.ObjectMeta{Name: "no-secret", Namespace: ns.Name},
		Spec: dexv1.DexStaticClientSpec{ProviderRef: dexv1.ObjectRef{Name: "dex"}, RedirectURIs: []string{"https://other.example.com/callback"},
			SecretRef: &dexv1.SecretKeyRef{Name: "missing", Key: "clientSecret"}},
	}
	connector := &dexv1.DexConnector{
		ObjectMeta: metav1.ObjectMeta{Name: "mock", Namespace: ns.Name},
		Spec:       dexv1.DexConnectorSpec{ProviderRef: dexv1.ObjectRef{Name: "dex"}, ConnectorID: ns.Name + "-mock", Type: "mockCallback", DisplayName: "Mock"},
	}
	binding := &dexv1.GroupBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "team-a", Namespace: ns.Name},
		Spec:       dexv1.GroupBindingSpec{Expression: `"team-a" in groups`},
	}
	g.Expect(k8s.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "dex-grpc", Namespace: ns.Name},
		Data: map[string][]byte{"ca.crt": tls.CACert, "tls.crt": tls.ClientCert, "tls.key": tls.ClientKey}})).To(Succeed())
	for _, o := range []client.Object{provider, ready, stalled, connector, binding} {
		g.Expect(k8s.Create(ctx, o)).To(Succeed(), "%T %s", o, o.GetName())
	}
	for _, tc := range []struct {
		obj  client.Object
		cond string
	}{{provider, dexv1.ConditionReady}, {ready, dexv1.ConditionReady}, {stalled, dexv1.ConditionStalled}, {connector, dexv1.ConditionReady}, {binding, dexv1.ConditionReady}} {
		g.Eventually(func(g Gomega) {
			g.Expect(k8s.Get(ctx, client.ObjectKeyFromObject(tc.obj), tc.obj)).To(Succeed())
			conds := tc.obj.(interface{ GetConditions() []metav1.Condition }).GetConditions()
			g.Expect(meta.IsStatusConditionTrue(conds, tc.cond)).To(BeTrue(), "%T %s: %+v", tc.obj, tc.obj.GetName(), conds)
		}, waitTimeout, 200*time.Millisecond).Should(Succeed())
	}
	// Registry requests: discovery, a module without a token (an auth decision), and one with a
	// token of the provider's issuer that no key of it signed (a verification).
	forged := strings.Join([]string{b64(`{"alg":"RS256","kid":"forged"}`),
		b64(fmt.Sprintf(`{"iss":%q,"aud":"registry","sub":"x","exp":%d}`, d.IssuerURL(), time.Now().Add(time.Hour).Unix())), b64("signature")}, ".")
	for _, r := range []struct{ path, token string }{
		{"/.well-known/terraform.json", ""}, {"/v1/modules/team-a/network/aws/versions", ""}, {"/v1/modules/team-a/network/aws/versions", forged},
	} {
		g.Eventually(func() error {
			req, err := http.NewRequest(http.MethodGet, fmt.Sprintf("http://127.0.0.1:%d%s", port, r.path), nil)
			if err != nil {
				return err
			}
			req.Host = ns.Name + ".test"
			if r.token != "" {
				req.Header.Set("Authorization", "Bearer "+r.token)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				return err
			}
			return resp.Body.Close()
		}, waitTimeout, 200*time.Millisecond).Should(Succeed())
	}

	// Every metric an alert or a panel names is exported.
	exprs, err := promexpr.Load(root + "/config/prometheus")
	g.Expect(err).NotTo(HaveOccurred())
	g.Eventually(func(g Gomega) {
		exported := exportedNames(g)
		var missing []string
		for _, e := range exprs {
			for _, name := range promexpr.MetricNames(e.Expr) {
				if !exported[name] && !promexpr.Synthetic[name] {
					missing = append(missing, fmt.Sprintf("%s: %s", e.Where, name))
				}
			}
		}
		g.Expect(missing).To(BeEmpty(), "metrics named by config/prometheus that the manager does not export")
	}, waitTimeout, 500*time.Millisecond).Should(Succeed())

	// And they say what happened.
	families := gather(g)
	g.Expect(value(families, metrics.ObjectsName, map[string]string{"kind": "DexStaticClient", "state": "stalled"})).To(Equal(1.0))
	g.Expect(value(families, metrics.ObjectsName, map[string]string{"kind": "DexStaticClient", "state": "ready"})).To(Equal(1.0))
	g.Expect(value(families, metrics.ConditionsName, map[string]string{"kind": "OIDCProvider", "condition": "DexReachable", "status": "True"})).To(Equal(1.0))
	g.Expect(value(families, metrics.ConditionsName, map[string]string{"kind": "DexConnector", "condition": "ConnectorHealthy", "status": "True"})).To(Equal(1.0))
	stalledSince := meta.FindStatusCondition(stalled.Status.Conditions, dexv1.ConditionStalled).LastTransitionTime.Unix()
	g.Expect(value(families, metrics.StalledSinceName, map[string]string{"kind": "DexStaticClient"})).To(Equal(float64(stalledSince)))
	for cert, data := range map[string][]byte{metrics.CertificateClient: tls.ClientCert, metrics.CertificateCA: tls.CACert} {
		block, _ := pem.Decode(data)
		parsed, err := x509.ParseCertificate(block.Bytes)
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(value(families, metrics.CertificateExpiryName, map[string]string{"namespace": ns.Name, "name": "dex", "certificate": cert})).
			To(Equal(float64(parsed.NotAfter.Unix())), cert)
	}
}

func b64(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }

func gather(g Gomega) []*dto.MetricFamily {
	families, err := ctrlmetrics.Registry.Gather()
	g.Expect(err).NotTo(HaveOccurred())
	return families
}

// exportedNames are the series names the registry exports (a histogram's _bucket, _sum and
// _count, a summary's _sum and _count).
func exportedNames(g Gomega) map[string]bool {
	out := map[string]bool{}
	for _, f := range gather(g) {
		n := f.GetName()
		out[n] = true
		switch f.GetType() {
		case dto.MetricType_HISTOGRAM, dto.MetricType_GAUGE_HISTOGRAM:
			out[n+"_bucket"], out[n+"_sum"], out[n+"_count"] = true, true, true
		case dto.MetricType_SUMMARY:
			out[n+"_sum"], out[n+"_count"] = true, true
		}
	}
	return out
}

// value is the value of the series of name with labels, or -1.
func value(families []*dto.MetricFamily, name string, labels map[string]string) float64 {
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
	series:
		for _, m := range f.GetMetric() {
			got := map[string]string{}
			for _, l := range m.GetLabel() {
				got[l.GetName()] = l.GetValue()
			}
			for k, v := range labels {
				if got[k] != v {
					continue series
				}
			}
			return m.GetGauge().GetValue()
		}
	}
	return -1
}
