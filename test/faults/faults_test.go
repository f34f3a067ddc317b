// Package faults proves design.md §7's fault target against real processes. While a tenant keeps
// creating, changing and deleting DexStaticClients and DexConnectors, the manager binary is
// killed (SIGKILL) at random points and started again, Dex (sqlite3) is stopped and started, and
// the API server is cut off for a while, as during its restart. Afterwards every object must
// converge, and Dex must hold exactly the clients and connectors of the objects that exist:
// nothing orphaned, nothing lost.
package faults

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	api "github.com/dexidp/dex/api/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/client-go/util/retry"
	"sigs.k8s.io/controller-runtime/pkg/client"

	dexv1 "dexterity.dev/dexterity/api/v1alpha1"
	"dexterity.dev/dexterity/test/harness"
)

var (
	k8s   client.Client
	env   *harness.Env
	dex   *harness.Dex
	dapi  api.DexClient
	proxy *harness.TCPProxy
	mgr   *manager
)

func TestMain(m *testing.M) { os.Exit(run(m)) }

func run(m *testing.M) int {
	var cleanups []func()
	defer func() {
		for i := len(cleanups) - 1; i >= 0; i-- {
			cleanups[i]()
		}
	}()
	if err := setup(&cleanups); err != nil {
		fmt.Fprintln(os.Stderr, "fault test setup:", err)
		return 1
	}
	return m.Run()
}

func setup(cleanups *[]func()) error {
	dir, err := os.MkdirTemp("", "dexterity-faults-")
	if err != nil {
		return err
	}
	*cleanups = append(*cleanups, func() { _ = os.RemoveAll(dir) })
	if env, err = harness.StartEnv(harness.EnvOptions{}); err != nil {
		return err
	}
	*cleanups = append(*cleanups, func() { _ = env.Stop() })
	k8s = env.Client

	if dex, err = harness.StartDex(harness.DexOptions{Dir: filepath.Join(dir, "dex"), Storage: harness.StorageSQLite}); err != nil {
		return err
	}
	*cleanups = append(*cleanups, func() { _ = dex.Stop() })
	var closer interface{ Close() error }
	if dapi, closer, err = dex.Client(); err != nil {
		return err
	}
	*cleanups = append(*cleanups, func() { _ = closer.Close() })

	// The manager reaches the API server through a proxy that the test can cut.
	host := strings.TrimPrefix(strings.TrimPrefix(env.Config.Host, "https://"), "http://")
	if proxy, err = harness.StartTCPProxy(strings.TrimSuffix(host, "/")); err != nil {
		return err
	}
	*cleanups = append(*cleanups, func() { _ = proxy.Close() })
	kubeconfig := filepath.Join(dir, "kubeconfig")
	if err := env.WriteAdminKubeconfig(kubeconfig, "faults-admin"); err != nil {
		return err
	}
	kc, err := clientcmd.LoadFromFile(kubeconfig)
	if err != nil {
		return err
	}
	for _, c := range kc.Clusters {
		c.Server = "https://" + proxy.Addr()
	}
	if err := clientcmd.WriteToFile(*kc, kubeconfig); err != nil {
		return err
	}

	bin := filepath.Join(dir, "dexterity")
	if err := harness.BuildManager(bin); err != nil {
		return err
	}
	probePort, err := harness.FreePort()
	if err != nil {
		return err
	}
	mgr = &manager{bin: bin, kubeconfig: kubeconfig, probePort: probePort, log: filepath.Join(dir, "manager.log")}
	*cleanups = append(*cleanups, mgr.stop)
	return mgr.start()
}

// manager runs the manager binary, without leader election (one replica, restarted at once).
type manager struct {
	bin, kubeconfig, log string
	probePort            int

	mu      sync.Mutex // kill may run in a goroutine while a failed test's cleanup stops
	proc    *harness.ManagerProcess
	running bool
}

// waitReady waits until the running manager answers /readyz.
func (m *manager) waitReady() error {
	return harness.WaitHTTPOK(context.Background(), fmt.Sprintf("http://127.0.0.1:%d/readyz", m.probePort), time.Minute)
}

func (m *manager) start() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	proc, err := harness.StartManagerProcess(m.bin, m.log, nil,
		"--kubeconfig", m.kubeconfig,
		"--metrics-bind-address", "0",
		"--health-probe-bind-address", "127.0.0.1:"+strconv.Itoa(m.probePort),
		"--registry-bind-address", "0",
		"--dex-resync-period", "5s",
	)
	if err != nil {
		return err
	}
	m.proc, m.running = proc, true
	return nil
}

// kill ends the manager with SIGKILL: no cleanup, wherever it is.
func (m *manager) kill() {
	m.mu.Lock()
	defer m.mu.Unlock()
	if !m.running {
		return
	}
	m.running = false
	m.proc.Kill()
}

func (m *manager) stop() {
	m.mu.Lock()
	defer m.mu.Unlock()
	if !m.running {
		return
	}
	m.running = false
	m.proc.Stop()
}

func (m *manager) logTail() string {
	b, _ := os.ReadFile(m.log)
	if len(b) > 4000 {
		b = b[len(b)-4000:]
	}
	return string(b)
}

func TestConvergesAfterFaults(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	seed := time.Now().UnixNano()
	t.Logf("seed %d", seed)
	rnd := rand.New(rand.NewPCG(uint64(seed), 0))

	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "faults-"}}
	g.Expect(k8s.Create(ctx, ns)).To(Succeed())
	g.Expect(k8s.Create(ctx, &dexv1.OIDCProvider{
		ObjectMeta: metav1.ObjectMeta{Name: "dex", Namespace: ns.Name},
		Spec: dexv1.OIDCProviderSpec{IssuerURL: dex.IssuerURL(), ClientID: "registry",
			Dex: &dexv1.DexAdminSpec{GRPCAddress: dex.GRPCAddress(), Insecure: true}},
	})).To(Succeed())

	var clients, connectors []string // names created so far (deleted ones stay listed)
	next := 0
	writes := func(round int) {
		for range 10 {
			name := fmt.Sprintf("c%03d", next)
			next++
			g.Expect(k8s.Create(ctx, newClient(ns.Name, name, rnd.IntN(3) == 0))).To(Succeed())
			clients = append(clients, name)
		}
		for range 2 {
			name := fmt.Sprintf("k%03d", next)
			next++
			g.Expect(k8s.Create(ctx, newConnector(ns.Name, name))).To(Succeed())
			connectors = append(connectors, name)
		}
		for range 3 {
			changeClient(t, ns.Name, clients[rnd.IntN(len(clients))], round)
		}
		for range 3 {
			deleteObject(t, &dexv1.DexStaticClient{ObjectMeta: metav1.ObjectMeta{Namespace: ns.Name, Name: clients[rnd.IntN(len(clients))]}})
		}
		deleteObject(t, &dexv1.DexConnector{ObjectMeta: metav1.ObjectMeta{Namespace: ns.Name, Name: connectors[rnd.IntN(len(connectors))]}})
	}
	const rounds = 6
	for round := range rounds {
		// Once the manager serves, it dies at a random point while it works on this round's
		// writes (they take about 100-200 ms to make, and longer to reconcile).
		g.Expect(mgr.waitReady()).To(Succeed())
		killed := after(time.Duration(20+rnd.IntN(400))*time.Millisecond, mgr.kill)
		writes(round)
		killed()
		if round == 2 { // Dex goes away, and the manager starts while it is gone and notices.
			g.Expect(dex.Stop()).To(Succeed())
			g.Expect(mgr.start()).To(Succeed())
			g.Eventually(func(g Gomega) {
				p := &dexv1.OIDCProvider{}
				g.Expect(k8s.Get(ctx, client.ObjectKey{Namespace: ns.Name, Name: "dex"}, p)).To(Succeed())
				g.Expect(meta.IsStatusConditionFalse(p.Status.Conditions, dexv1.ConditionDexReachable)).To(BeTrue())
			}, time.Minute, 100*time.Millisecond).Should(Succeed(), "the restarted manager reports Dex unreachable")
			g.Expect(dex.Start()).To(Succeed())
			continue
		}
		g.Expect(mgr.start()).To(Succeed())
	}
	// The last manager lives on; the API server becomes unreachable under it, as during its
	// restart, while it works on more writes.
	g.Expect(mgr.waitReady()).To(Succeed())
	cut := after(time.Duration(20+rnd.IntN(200))*time.Millisecond, func() { proxy.Cut(3 * time.Second) })
	writes(rounds)
	cut()

	g.Eventually(func(g Gomega) { converged(g, ctx, ns.Name) }, 3*time.Minute, time.Second).Should(Succeed(), func() string { return "manager log:\n" + mgr.logTail() })
	t.Logf("%d clients and %d connectors created, the manager killed %d times, Dex stopped once, the API server cut off once; converged", len(clients), len(connectors), rounds)
}

// after runs fn once d has passed, at whatever point the test is then, and returns a func that
// waits until fn has run.
func after(d time.Duration, fn func()) (wait func()) {
	done := make(chan struct{})
	time.AfterFunc(d, func() { defer close(done); fn() })
	return func() { <-done }
}

// converged checks that every object is Ready for its current generation and that Dex holds
// exactly the clients and connectors of the objects that exist, as they describe them.
func converged(g Gomega, ctx context.Context, ns string) {
	var cl dexv1.DexStaticClientList
	g.Expect(k8s.List(ctx, &cl, client.InNamespace(ns))).To(Succeed())
	want := map[string]*dexv1.DexStaticClient{}
	for i := range cl.Items {
		c := &cl.Items[i]
		g.Expect(c.DeletionTimestamp.IsZero()).To(BeTrue(), "%s is still being deleted", c.Name)
		g.Expect(meta.IsStatusConditionTrue(c.Status.Conditions, dexv1.ConditionReady)).To(BeTrue(), "%s not Ready: %v", c.Name, c.Status.Conditions)
		g.Expect(c.Status.ObservedGeneration).To(Equal(c.Generation), c.Name)
		want[c.EffectiveClientID()] = c
	}
	resp, err := dapi.ListClients(ctx, &api.ListClientReq{})
	g.Expect(err).NotTo(HaveOccurred())
	var got []string
	for _, dc := range resp.GetClients() {
		if !strings.HasPrefix(dc.GetId(), ns+"-") {
			continue
		}
		got = append(got, dc.GetId())
		c, ok := want[dc.GetId()]
		g.Expect(ok).To(BeTrue(), "client %s is in Dex but its DexStaticClient is gone (orphaned)", dc.GetId())
		g.Expect(dc.GetName()).To(Equal(c.Spec.DisplayName), dc.GetId())
		g.Expect(dc.GetRedirectUris()).To(ConsistOf(c.Status.RedirectURIs), dc.GetId())
		g.Expect(dc.GetPublic()).To(Equal(c.Spec.Public), dc.GetId())
		if !c.Spec.Public {
			var s corev1.Secret
			g.Expect(k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: c.Spec.SecretRef.Name}, &s)).To(Succeed())
			full, err := dapi.GetClient(ctx, &api.GetClientReq{Id: dc.GetId()})
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(full.GetClient().GetSecret()).To(Equal(string(s.Data[c.Spec.SecretRef.Key])), "secret of %s", dc.GetId())
		}
	}
	g.Expect(got).To(HaveLen(len(want)), "Dex holds %v, the objects want %v", got, slices.Collect(mapsKeys(want)))

	var kl dexv1.DexConnectorList
	g.Expect(k8s.List(ctx, &kl, client.InNamespace(ns))).To(Succeed())
	wantConn := map[string]bool{}
	for _, k := range kl.Items {
		g.Expect(k.DeletionTimestamp.IsZero()).To(BeTrue(), "%s is still being deleted", k.Name)
		g.Expect(meta.IsStatusConditionTrue(k.Status.Conditions, dexv1.ConditionReady)).To(BeTrue(), "%s not Ready: %v", k.Name, k.Status.Conditions)
		g.Expect(k.Status.ObservedGeneration).To(Equal(k.Generation), k.Name)
		wantConn[k.Spec.ConnectorID] = true
	}
	conns, err := dapi.ListConnectors(ctx, &api.ListConnectorReq{})
	g.Expect(err).NotTo(HaveOccurred())
	gotConn := 0
	for _, k := range conns.GetConnectors() {
		if strings.HasPrefix(k.GetId(), ns+"-") {
			g.Expect(wantConn[k.GetId()]).To(BeTrue(), "connector %s is in Dex but its DexConnector is gone (orphaned)", k.GetId())
			gotConn++
		}
	}
	g.Expect(gotConn).To(Equal(len(wantConn)), "connectors in Dex")
}

func mapsKeys[V any](m map[string]V) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

func newClient(ns, name string, confidential bool) *dexv1.DexStaticClient {
	c := &dexv1.DexStaticClient{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec: dexv1.DexStaticClientSpec{
			ProviderRef:      dexv1.ObjectRef{Name: "dex"},
			DisplayName:      "client " + name,
			Public:           !confidential,
			LoopbackRedirect: &dexv1.LoopbackRedirect{Ports: []int32{10000, 10003}, Path: "/login"},
		},
	}
	if confidential {
		c.Spec.SecretRef = &dexv1.SecretKeyRef{Name: name + "-secret", Key: "client-secret"}
		c.Spec.GenerateSecret = true
	}
	return c
}

func newConnector(ns, name string) *dexv1.DexConnector {
	cfg, _ := json.Marshal(map[string]any{})
	return &dexv1.DexConnector{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec: dexv1.DexConnectorSpec{
			ProviderRef: dexv1.ObjectRef{Name: "dex"},
			ConnectorID: ns + "-" + name,
			Type:        "mockCallback",
			DisplayName: "connector " + name,
			Config:      &apiextensionsv1.JSON{Raw: cfg},
		},
	}
}

// changeClient changes a client's display name and redirect URIs (if it still exists).
func changeClient(t *testing.T, ns, name string, round int) {
	t.Helper()
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		c := &dexv1.DexStaticClient{}
		if err := k8s.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: name}, c); err != nil {
			return err
		}
		if !c.DeletionTimestamp.IsZero() {
			return nil
		}
		c.Spec.DisplayName = fmt.Sprintf("client %s, round %d", name, round)
		c.Spec.RedirectURIs = []string{fmt.Sprintf("https://app.example.com/round-%d", round)}
		return k8s.Update(context.Background(), c)
	})
	if err != nil && !apierrors.IsNotFound(err) {
		t.Fatalf("failed to change %s: %v", name, err)
	}
}

func deleteObject(t *testing.T, obj client.Object) {
	t.Helper()
	if err := k8s.Delete(context.Background(), obj); err != nil && !apierrors.IsNotFound(err) {
		t.Fatalf("failed to delete %s: %v", obj.GetName(), err)
	}
}
