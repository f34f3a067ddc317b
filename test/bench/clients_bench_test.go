// Package bench holds the benchmarks of docs/benchmarks.md. They start their own envtest, a real
// Dex on sqlite3 and the controllers, and print figures next to a baseline measured in the same
// run. Run them with `make bench`.
package bench

import (
	"context"
	"flag"
	"fmt"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	api "github.com/dexidp/dex/api/v2"
	"go.uber.org/zap/zapcore"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	dexv1 "dexterity.dev/dexterity/api/v1alpha1"
	"dexterity.dev/dexterity/controllers"
	"dexterity.dev/dexterity/internal/dex"
	"dexterity.dev/dexterity/internal/oidc"
	"dexterity.dev/dexterity/test/harness"
)

var (
	k8s  client.Client
	d    *harness.Dex
	dapi api.DexClient
)

func TestMain(m *testing.M) {
	flag.Parse()
	if f := flag.Lookup("test.bench"); f == nil || f.Value.String() == "" {
		os.Exit(m.Run()) // no benchmark selected (e.g. `make test`): start nothing
	}
	os.Exit(run(m))
}

func run(m *testing.M) int {
	ctrl.SetLogger(zap.New(zap.WriteTo(os.Stderr), zap.Level(zapcore.ErrorLevel)))
	env, err := harness.StartEnv(harness.EnvOptions{})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer func() { _ = env.Stop() }()
	k8s = env.Client
	dir, _ := os.MkdirTemp("", "dexterity-bench-")
	defer func() { _ = os.RemoveAll(dir) }()
	d, err = harness.StartDex(harness.DexOptions{Dir: dir, Storage: harness.StorageSQLite})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer func() { _ = d.Stop() }()
	var closer interface{ Close() error }
	dapi, closer, err = d.Client()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer func() { _ = closer.Close() }()

	restConfig = env.Config
	defer func() { stopManager() }()
	return m.Run()
}

var (
	restConfig  *rest.Config
	managerOnce sync.Once
	stopManager = func() {}
)

// startManager starts the controllers once, on first use: BenchmarkApply1000Clients first
// measures the API server alone, with no controller watching.
func startManager(b *testing.B) {
	managerOnce.Do(func() {
		mgr, err := ctrl.NewManager(restConfig, ctrl.Options{Scheme: harness.Scheme, Metrics: metricsserver.Options{BindAddress: "0"}})
		if err != nil {
			b.Fatal(err)
		}
		pool := dex.NewPool()
		if err := controllers.SetupWithManager(mgr, pool, oidc.NewCache(), controllers.Options{}); err != nil {
			b.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- mgr.Start(ctx) }()
		stopManager = func() { cancel(); <-done; pool.Close() }
	})
}

// createClients creates n DexStaticClients in ns with 8 concurrent writers (like a parallel
// apply) and returns the time it took.
func createClients(b *testing.B, ns string, n int) time.Duration {
	b.Helper()
	ctx := context.Background()
	start := time.Now()
	var wg sync.WaitGroup
	work := make(chan int)
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range work {
				if err := k8s.Create(ctx, newClient(ns, i)); err != nil {
					b.Error(err)
				}
			}
		}()
	}
	for i := range n {
		work <- i
	}
	close(work)
	wg.Wait()
	return time.Since(start)
}

var nsSeq atomic.Int32

func setupProvider(b *testing.B) string {
	b.Helper()
	ctx := context.Background()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("bench-%d-%d", time.Now().Unix(), nsSeq.Add(1))}}
	if err := k8s.Create(ctx, ns); err != nil {
		b.Fatal(err)
	}
	p := &dexv1.OIDCProvider{
		ObjectMeta: metav1.ObjectMeta{Name: "dex", Namespace: ns.Name},
		Spec: dexv1.OIDCProviderSpec{IssuerURL: d.IssuerURL(), ClientID: "registry",
			Dex: &dexv1.DexAdminSpec{GRPCAddress: d.GRPCAddress(), Insecure: true}},
	}
	if err := k8s.Create(ctx, p); err != nil {
		b.Fatal(err)
	}
	return ns.Name
}

func newClient(ns string, i int) *dexv1.DexStaticClient {
	return &dexv1.DexStaticClient{
		ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("c%04d", i), Namespace: ns},
		Spec: dexv1.DexStaticClientSpec{
			ProviderRef:      dexv1.ObjectRef{Name: "dex"},
			Public:           true,
			LoopbackRedirect: &dexv1.LoopbackRedirect{Ports: []int32{10000, 10010}, Path: "/login"},
		},
	}
}

// BenchmarkApply1000Clients: 1,000 DexStaticClients applied at once, time until all are Ready
// (and so in Dex), next to a bare serial gRPC create loop of 1,000 clients against the same Dex
// (sqlite3) in the same run. Reports both and their ratio (target ≤ 1.5).
func BenchmarkApply1000Clients(b *testing.B) {
	const n = 1000
	ctx := context.Background()
	for it := 0; it < b.N; it++ {
		// Baseline: a bare serial create loop.
		base := fmt.Sprintf("baseline-%d-%d", time.Now().UnixNano(), it)
		start := time.Now()
		for i := range n {
			redirects := make([]string, 0, 11)
			for p := 10000; p <= 10010; p++ {
				redirects = append(redirects, fmt.Sprintf("http://localhost:%d/login", p))
			}
			if _, err := dapi.CreateClient(ctx, &api.CreateClientReq{Client: &api.Client{Id: fmt.Sprintf("%s-%04d", base, i), Name: "x", Public: true, RedirectUris: redirects}}); err != nil {
				b.Fatal(err)
			}
		}
		baseline := time.Since(start)

		// The API server's floor: the same 1,000 objects created with no controller running
		// (first iteration only), then removed before the controllers start.
		var floor time.Duration
		if it == 0 {
			floorNS := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("floor-%d", time.Now().UnixNano())}}
			if err := k8s.Create(ctx, floorNS); err != nil {
				b.Fatal(err)
			}
			floor = createClients(b, floorNS.Name, n)
			if err := k8s.DeleteAllOf(ctx, &dexv1.DexStaticClient{}, client.InNamespace(floorNS.Name)); err != nil {
				b.Fatal(err)
			}
			if err := wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
				var l dexv1.DexStaticClientList
				err := k8s.List(ctx, &l, client.InNamespace(floorNS.Name))
				return err == nil && len(l.Items) == 0, nil
			}); err != nil {
				b.Fatal(err)
			}
		}
		startManager(b)

		// Dexterity: apply 1,000 objects (8 concurrent writers) and wait.
		ns := setupProvider(b)
		waitProviderReady(b, ns)
		start = time.Now()
		applied := createClients(b, ns, n)
		waitAllReady(b, ns, n, 5*time.Minute)
		operator := time.Since(start)

		// Every client really is in Dex.
		for i := range n {
			if _, err := dapi.GetClient(ctx, &api.GetClientReq{Id: fmt.Sprintf("%s-c%04d", ns, i)}); err != nil {
				b.Fatalf("client %d missing in Dex: %v", i, err)
			}
		}
		b.ReportMetric(baseline.Seconds(), "baseline-s")
		b.ReportMetric(applied.Seconds(), "apply-s")
		b.ReportMetric(operator.Seconds(), "dexterity-s")
		b.ReportMetric(operator.Seconds()/baseline.Seconds(), "ratio")
		if floor > 0 {
			b.ReportMetric(floor.Seconds(), "apiserver-floor-s")
			b.ReportMetric(floor.Seconds()/baseline.Seconds(), "floor-ratio")
			b.Logf("baseline (serial gRPC) %.2fs; API server alone, no controllers: %.2fs (%.2fx); Dexterity: objects created %.2fs, all Ready and in Dex %.2fs (%.2fx)",
				baseline.Seconds(), floor.Seconds(), floor.Seconds()/baseline.Seconds(), applied.Seconds(), operator.Seconds(), operator.Seconds()/baseline.Seconds())
		}
	}
}

// BenchmarkSingleClientLatency: one DexStaticClient applied, time until Dex holds it (median of
// b.N runs; watch-driven, so no polling interval is involved). Target: median ≤ 50 ms.
func BenchmarkSingleClientLatency(b *testing.B) {
	startManager(b)
	ns := setupProvider(b)
	waitProviderReady(b, ns)
	ctx := context.Background()
	lat := make([]time.Duration, 0, b.N)
	for i := 0; i < b.N; i++ {
		c := newClient(ns, i)
		start := time.Now()
		if err := k8s.Create(ctx, c); err != nil {
			b.Fatal(err)
		}
		id := ns + "-" + c.Name
		// Poll Dex every millisecond: the granularity of the measurement.
		if err := wait.PollUntilContextTimeout(ctx, time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
			_, err := dapi.GetClient(ctx, &api.GetClientReq{Id: id})
			return err == nil, nil
		}); err != nil {
			b.Fatalf("client %s not in Dex after 30s: %v", id, err)
		}
		lat = append(lat, time.Since(start))
	}
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "median-ms")
	b.ReportMetric(float64(lat[len(lat)*9/10].Microseconds())/1000, "p90-ms")
}

func waitProviderReady(b *testing.B, ns string) {
	b.Helper()
	err := wait.PollUntilContextTimeout(context.Background(), 50*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
		p := &dexv1.OIDCProvider{}
		err := k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: "dex"}, p)
		return err == nil && meta.IsStatusConditionTrue(p.Status.Conditions, dexv1.ConditionReady), nil
	})
	if err != nil {
		b.Fatalf("provider not Ready: %v", err)
	}
}

func waitAllReady(b *testing.B, ns string, n int, timeout time.Duration) {
	b.Helper()
	last := ""
	err := wait.PollUntilContextTimeout(context.Background(), 50*time.Millisecond, timeout, true, func(ctx context.Context) (bool, error) {
		var list dexv1.DexStaticClientList
		if err := k8s.List(ctx, &list, client.InNamespace(ns)); err != nil {
			return false, err
		}
		ready := 0
		for _, c := range list.Items {
			if meta.IsStatusConditionTrue(c.Status.Conditions, dexv1.ConditionReady) {
				ready++
			} else if r := meta.FindStatusCondition(c.Status.Conditions, dexv1.ConditionReady); r != nil {
				last = fmt.Sprintf("%d/%d Ready; %s: %s %s", ready, n, c.Name, r.Reason, r.Message)
			} else {
				last = fmt.Sprintf("%d/%d Ready; %s: no Ready condition", ready, n, c.Name)
			}
		}
		return ready == n, nil
	})
	if err != nil {
		b.Fatalf("not all %d clients Ready within %s: %v; %s", n, timeout, err, last)
	}
}
