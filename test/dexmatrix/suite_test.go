// Package dexmatrix runs the operator against every Dex release of harness.DexReleases (built by
// hack/tools.sh into bin/): the client and connector contract, drift repair, a token through a
// tenant's client accepted by the registry, a DexConnector (refused with DexVersionUnsupported
// before v2.41), and an upgrade from an older release to the latest on the same sqlite3 database;
// the Dex kind's rendered Deployment runs, through the kubelet emulator, with the oldest supported
// release and the latest.
// docs/compatibility.md is checked against what this package runs.
package dexmatrix_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	dexv1 "dexterity.dev/dexterity/api/v1alpha1"
	"dexterity.dev/dexterity/internal/dex/dexfake"
	"dexterity.dev/dexterity/internal/oidc"
	"dexterity.dev/dexterity/internal/registry"
	"dexterity.dev/dexterity/test/harness"
	"dexterity.dev/dexterity/test/kubelet"
	"dexterity.dev/dexterity/test/operatortest"
)

// Shared by the tests of this package: one envtest, the operator's manager (controllers and the
// registry server, in this process so harness.DexCalls counts its Dex calls).
var (
	k8s         client.Client
	restConfig  *rest.Config
	registryURL string // http://127.0.0.1:<port>
)

const (
	// resyncPeriod of drift repair in these tests.
	resyncPeriod = 2 * time.Second
	// waitTimeout bounds every wait for the operator.
	waitTimeout = 30 * time.Second
	poll        = 100 * time.Millisecond
)

func TestMain(m *testing.M) {
	// The Dex kind's pods (TestDexKind) run in mount namespaces of the kubelet emulator.
	if code, exited := kubelet.EnterMountNamespace(); exited {
		os.Exit(code)
	}
	os.Exit(runSuite(m))
}

func runSuite(m *testing.M) int {
	ctrl.SetLogger(zap.New(zap.WriteTo(io.Discard)))
	env, err := harness.StartEnv(harness.EnvOptions{})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer func() { _ = env.Stop() }()
	k8s, restConfig = env.Client, env.Config

	port, err := harness.FreePort()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	op, err := operatortest.Start(env.Config, operatortest.Options{ResyncPeriod: resyncPeriod,
		Setup: func(mgr ctrl.Manager, keys *oidc.Cache) error {
			server, err := registry.New(ctx, mgr.GetCache(), registry.Options{
				Addr: fmt.Sprintf("127.0.0.1:%d", port), Keys: keys, Kube: mgr.GetClient(),
			})
			if err != nil {
				return err
			}
			return mgr.Add(server)
		}})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	registryURL = fmt.Sprintf("http://127.0.0.1:%d", port)
	defer func() {
		if err := op.Stop(); err != nil {
			fmt.Fprintln(os.Stderr, "manager:", err)
		}
	}()
	return m.Run()
}

// dexLogOnFailure prints the tail of d's log when t fails.
func dexLogOnFailure(t *testing.T, d *harness.Dex) {
	t.Cleanup(func() {
		if t.Failed() {
			log := d.Log()
			if len(log) > 8192 {
				log = "..." + log[len(log)-8192:]
			}
			t.Logf("--- Dex log (%s) ---\n%s", d.LogPath(), log)
		}
	})
}

// tenant is a namespace with an OIDCProvider administering one Dex; the registry serves it on
// host <ns>.test and accepts the tokens of its clients (allowClientCredentials).
type tenant struct {
	ns, host string
	provider *dexv1.OIDCProvider
}

// newTenant creates the namespace and the OIDCProvider for d and waits until it is Ready.
func newTenant(t *testing.T, d *harness.Dex) *tenant {
	t.Helper()
	g := NewWithT(t)
	ctx := context.Background()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "matrix-"}}
	g.Expect(k8s.Create(ctx, ns)).To(Succeed())
	tn := &tenant{ns: ns.Name, host: ns.Name + ".test"}
	tn.provider = &dexv1.OIDCProvider{
		ObjectMeta: metav1.ObjectMeta{Name: "dex", Namespace: ns.Name},
		Spec: dexv1.OIDCProviderSpec{
			IssuerURL: d.IssuerURL(), ClientID: "registry", Hostnames: []string{tn.host},
			AllowClientCredentials: true,
			Dex:                    &dexv1.DexAdminSpec{GRPCAddress: d.GRPCAddress(), Insecure: true},
		},
	}
	g.Expect(k8s.Create(ctx, tn.provider)).To(Succeed())
	waitReady(t, tn.provider)
	return tn
}

// providerKey is the provider label of the operator's Dex call metrics (harness.DexCalls).
func (tn *tenant) providerKey() string { return tn.ns + "/dex" }

// get sends GET path to the registry with Host: tn.host and the bearer token.
func (tn *tenant) get(path, token string) (int, string) {
	req, err := http.NewRequest(http.MethodGet, registryURL+path, nil)
	if err != nil {
		return 0, err.Error()
	}
	req.Host = tn.host
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err.Error()
	}
	defer func() { _ = resp.Body.Close() }()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

type conditioned interface {
	client.Object
	GetConditions() []metav1.Condition
}

// waitReady waits until every object's Ready condition is True.
func waitReady(t *testing.T, objs ...conditioned) {
	t.Helper()
	for _, o := range objs {
		NewWithT(t).Eventually(func(g Gomega) {
			g.Expect(k8s.Get(context.Background(), client.ObjectKeyFromObject(o), o)).To(Succeed())
			g.Expect(meta.IsStatusConditionTrue(o.GetConditions(), dexv1.ConditionReady)).To(BeTrue(), "%T %s: %+v", o, o.GetName(), o.GetConditions())
		}, waitTimeout, poll).Should(Succeed())
	}
}

// condition returns o's condition of type typ once it is set.
func condition(o conditioned, typ string) func(g Gomega) metav1.Condition {
	return func(g Gomega) metav1.Condition {
		g.Expect(k8s.Get(context.Background(), client.ObjectKeyFromObject(o), o)).To(Succeed())
		c := meta.FindStatusCondition(o.GetConditions(), typ)
		g.Expect(c).NotTo(BeNil(), "%T %s has no %s condition yet", o, o.GetName(), typ)
		return *c
	}
}

// dexStatus returns the OIDCProvider's status.dex.
func dexStatus(p *dexv1.OIDCProvider) func(g Gomega) dexv1.DexVersionStatus {
	return func(g Gomega) dexv1.DexVersionStatus {
		g.Expect(k8s.Get(context.Background(), client.ObjectKeyFromObject(p), p)).To(Succeed())
		g.Expect(p.Status.Dex).NotTo(BeNil(), "status.dex not set yet")
		return *p.Status.Dex
	}
}

// writes is the number of the operator's Dex write calls to provider.
func writes(provider string) float64 {
	var sum float64
	for _, m := range dexfake.WriteMethods {
		sum += harness.DexCalls(provider, m)
	}
	return sum
}

// writesByMethod shows the operator's Dex write calls to provider by method (for messages).
func writesByMethod(provider string) map[string]float64 {
	out := map[string]float64{}
	for _, m := range dexfake.WriteMethods {
		if n := harness.DexCalls(provider, m); n > 0 {
			out[m] = n
		}
	}
	return out
}

// noWritesInSteadyState waits out two resyncs of the provider's clients (nClients of them: at
// least two reads of each, and two resync periods) and expects no Dex write meanwhile. It returns
// how long it watched.
func noWritesInSteadyState(t *testing.T, provider string, nClients int) time.Duration {
	t.Helper()
	g := NewWithT(t)
	w0, r0, start := writesByMethod(provider), harness.DexCalls(provider, "GetClient"), time.Now()
	g.Eventually(func() bool {
		return harness.DexCalls(provider, "GetClient")-r0 >= float64(2*nClients) && time.Since(start) >= 2*resyncPeriod
	}, 3*resyncPeriod+waitTimeout, poll).Should(BeTrue(), "the clients are resynced")
	g.Expect(writesByMethod(provider)).To(Equal(w0), "no Dex write while nothing changed")
	return time.Since(start)
}
