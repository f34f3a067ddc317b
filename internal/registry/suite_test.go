package registry_test

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	"sigs.k8s.io/controller-runtime/pkg/metrics"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	dexv1 "dexterity.dev/dexterity/api/v1alpha1"
	"dexterity.dev/dexterity/controllers"
	"dexterity.dev/dexterity/internal/dex"
	"dexterity.dev/dexterity/internal/oidc"
	"dexterity.dev/dexterity/internal/registry"
	"dexterity.dev/dexterity/test/harness"
)

// Shared by the tests of this package: one envtest, the operator's manager with the registry
// server, a Dex with long-lived tokens and a Dex whose tokens expire after two seconds.
var (
	k8s         client.Client
	env         *harness.Env
	dexMain     *harness.Dex
	dexShort    *harness.Dex
	keys        *oidc.Cache
	server      *registry.Server
	registryURL string // http://127.0.0.1:<port>
)

func TestMain(m *testing.M) {
	flag.Parse()
	if onlyFuzzing() {
		// go test -run '^$' -fuzz FuzzAuthenticate: the fuzz target needs no envtest or Dex (and
		// every fuzz worker process would start its own).
		os.Exit(m.Run())
	}
	os.Exit(runSuite(m))
}

// onlyFuzzing reports whether this run only fuzzes (-fuzz given, -run matching no test).
func onlyFuzzing() bool {
	fuzz, run := flag.Lookup("test.fuzz"), flag.Lookup("test.run")
	return fuzz != nil && fuzz.Value.String() != "" && run != nil && run.Value.String() == "^$"
}

func runSuite(m *testing.M) int {
	ctrl.SetLogger(zap.New(zap.WriteTo(io.Discard)))
	var err error
	env, err = harness.StartEnv(harness.EnvOptions{})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer func() { _ = env.Stop() }()
	k8s = env.Client

	dir, err := os.MkdirTemp("", "dexterity-registry-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer func() { _ = os.RemoveAll(dir) }()
	if dexMain, err = harness.StartDex(harness.DexOptions{Dir: dir + "/main"}); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer func() { _ = dexMain.Stop() }()
	if dexShort, err = harness.StartDex(harness.DexOptions{Dir: dir + "/short", IDTokenTTL: "2s"}); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer func() { _ = dexShort.Stop() }()

	mgr, err := ctrl.NewManager(env.Config, ctrl.Options{
		Scheme:  harness.Scheme,
		Metrics: metricsserver.Options{BindAddress: "0"},
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	keys = oidc.NewCache()
	pool := dex.NewPool()
	defer pool.Close()
	if err := controllers.SetupWithManager(mgr, pool, keys, controllers.Options{ResyncPeriod: time.Minute}); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	port, err := harness.FreePort()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	ctx, cancel := context.WithCancel(context.Background())
	server, err = registry.New(ctx, mgr.GetCache(), registry.Options{
		Addr: fmt.Sprintf("127.0.0.1:%d", port), Keys: keys, Kube: mgr.GetClient(),
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		cancel()
		return 1
	}
	if err := mgr.Add(server); err != nil {
		fmt.Fprintln(os.Stderr, err)
		cancel()
		return 1
	}
	registryURL = fmt.Sprintf("http://127.0.0.1:%d", port)
	done := make(chan error, 1)
	go func() { done <- mgr.Start(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			fmt.Fprintln(os.Stderr, "manager:", err)
		}
	}()
	return m.Run()
}

// tenantOptions shape the OIDCProvider of a test tenant.
type tenantOptions struct {
	dex            *harness.Dex // default dexMain
	disabled       bool         // enabled=false, useBearerToken=true
	fallback       bool
	clientCreds    bool
	authzURL       string
	tokenURL       string
	discoveryURL   string
	skipKeysReady  bool
	providerConfig func(*dexv1.OIDCProvider)
}

// testTenant is a namespace with an OIDCProvider for harness-client, served on host <ns>.test.
type testTenant struct {
	ns, host string
	provider *dexv1.OIDCProvider
	base     string // registry URL; default registryURL
}

func newTenant(t *testing.T, o tenantOptions) *testTenant {
	t.Helper()
	g := NewWithT(t)
	ctx := context.Background()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "reg-"}}
	g.Expect(k8s.Create(ctx, ns)).To(Succeed())
	d := o.dex
	if d == nil {
		d = dexMain
	}
	host := ns.Name + ".test"
	p := &dexv1.OIDCProvider{
		ObjectMeta: metav1.ObjectMeta{Name: "dex", Namespace: ns.Name},
		Spec: dexv1.OIDCProviderSpec{
			IssuerURL:                   d.IssuerURL(),
			DiscoveryURL:                o.discoveryURL,
			ClientID:                    harness.HarnessClientID,
			AllowServiceAccountFallback: o.fallback,
			AllowClientCredentials:      o.clientCreds,
			AuthzURL:                    o.authzURL,
			TokenURL:                    o.tokenURL,
			Hostnames:                   []string{host},
		},
	}
	if o.disabled {
		f := false
		p.Spec.Enabled = &f
		p.Spec.UseBearerToken = true
	}
	if o.providerConfig != nil {
		o.providerConfig(p)
	}
	g.Expect(k8s.Create(ctx, p)).To(Succeed())
	if !o.disabled && !o.skipKeysReady {
		g.Eventually(func() bool {
			issuer, ok := keys.Get(ns.Name + "/dex")
			return ok && issuer.Status().KeysReady
		}, 20*time.Second, 50*time.Millisecond).Should(BeTrue(), "keys of %s never loaded", d.IssuerURL())
	}
	tt := &testTenant{ns: ns.Name, host: host, provider: p}
	// The registry serves the host once its informer has seen the provider.
	g.Eventually(func() int {
		code, _, _ := tt.get("/v1/modules/x/y/z/versions", "")
		return code
	}, 10*time.Second, 20*time.Millisecond).ShouldNot(Equal(http.StatusNotFound))
	return tt
}

// get sends GET path with Host: tt.host and the bearer token (none when empty).
func (tt *testTenant) get(path, token string) (int, string, http.Header) {
	base := tt.base
	if base == "" {
		base = registryURL
	}
	req, err := http.NewRequest(http.MethodGet, base+path, nil)
	if err != nil {
		panic(err)
	}
	req.Host = tt.host
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err.Error(), nil
	}
	defer func() { _ = resp.Body.Close() }()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body), resp.Header
}

func (tt *testTenant) create(t *testing.T, objs ...client.Object) {
	t.Helper()
	for _, o := range objs {
		o.SetNamespace(tt.ns)
		NewWithT(t).Expect(k8s.Create(context.Background(), o)).To(Succeed())
	}
}

// eventuallyCode polls GET path until it answers code.
func (tt *testTenant) eventuallyCode(t *testing.T, path, token string, code int) string {
	t.Helper()
	var body string
	NewWithT(t).Eventually(func() int {
		var got int
		got, body, _ = tt.get(path, token)
		return got
	}, 10*time.Second, 20*time.Millisecond).Should(Equal(code), "GET %s: last body %s", path, func() string { return body })
	return body
}

func binding(name, expr string, modules, providers []string) *dexv1.GroupBinding {
	return &dexv1.GroupBinding{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec:       dexv1.GroupBindingSpec{Expression: expr, ModuleResources: modules, ProviderResources: providers},
	}
}

func module(name, regNS, modName, system string, versions ...string) *dexv1.Module {
	m := &dexv1.Module{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec:       dexv1.ModuleSpec{Namespace: regNS, Name: modName, System: system},
	}
	for _, v := range versions {
		m.Spec.Versions = append(m.Spec.Versions, dexv1.ModuleVersion{Version: v, Source: "https://downloads.example.org/" + modName + "-" + v + ".tar.gz"})
	}
	return m
}

// token returns a Dex token (the access token, as tofu login stores it) of user for clientID.
func token(t *testing.T, d *harness.Dex, clientID, secret string, user harness.StaticUser, scopes ...string) string {
	t.Helper()
	resp, err := harness.PasswordGrant(d.IssuerURL(), clientID, secret, user.Email, user.Password, scopes...)
	NewWithT(t).Expect(err).NotTo(HaveOccurred())
	tok, _ := resp["access_token"].(string)
	NewWithT(t).Expect(tok).NotTo(BeEmpty(), "token response: %v", resp)
	return tok
}

// counter sums the values of a registry metric whose labels include want.
func counter(t *testing.T, name string, want map[string]string) float64 {
	t.Helper()
	families, err := metrics.Registry.Gather()
	NewWithT(t).Expect(err).NotTo(HaveOccurred())
	var sum float64
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
	metric:
		for _, m := range f.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			for k, v := range want {
				if labels[k] != v {
					continue metric
				}
			}
			sum += m.GetCounter().GetValue()
		}
	}
	return sum
}

func decodeJSON(t *testing.T, body string) map[string]any {
	t.Helper()
	var out map[string]any
	NewWithT(t).Expect(json.NewDecoder(strings.NewReader(body)).Decode(&out)).To(Succeed(), body)
	return out
}

func ptr[T any](v T) *T { return &v }

func itoa(i int) string { return strconv.Itoa(i) }

func clientKey(ns, name string) client.ObjectKey { return client.ObjectKey{Namespace: ns, Name: name} }
