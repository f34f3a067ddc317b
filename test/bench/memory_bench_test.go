package bench

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"fmt"
	"io"
	"maps"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"sigs.k8s.io/controller-runtime/pkg/client"

	dexv1 "dexterity.dev/dexterity/api/v1alpha1"
	"dexterity.dev/dexterity/test/harness"
)

// BenchmarkManagerMemory: the manager binary's resident memory (design.md §7: ≤ 64 MiB) with
// 1,000 DexStaticClients, 100 DexConnectors and 100 GroupBindings, all Ready, next to the same
// manager idle. It runs on an envtest and a Dex (sqlite3) of its own, so that no other
// controller shares the cluster.
//
// DEXTERITY_BENCH_HEAP_PROFILE=<dir> saves into dir, idle and loaded, the manager's heap profile
// (also as pprof -top), its runtime.MemStats and where its resident memory lies (smaps).
// DEXTERITY_BENCH_MANAGER_ENV="K=V ..." sets environment variables of the manager only (e.g.
// GOMEMLIMIT, GOGC).
func BenchmarkManagerMemory(b *testing.B) {
	ctx := context.Background()
	var extra []string
	profileDir := os.Getenv("DEXTERITY_BENCH_HEAP_PROFILE")
	pprofAddr := ""
	if profileDir != "" {
		port, _ := harness.FreePort()
		pprofAddr = "127.0.0.1:" + strconv.Itoa(port)
		extra = append(extra, "--pprof-bind-address", pprofAddr)
	}
	m := startBenchManager(b, strings.Fields(os.Getenv("DEXTERITY_BENCH_MANAGER_ENV")), extra...)
	defer m.stop()
	c, dx, mgr, bin := m.env.Client, m.dex, m.proc, m.bin

	for range b.N {
		idleRSS, _ := settledMemory(b, mgr.Pid())
		if profileDir != "" {
			saveMemoryProfile(b, profileDir, "idle", bin, pprofAddr, mgr.Pid())
		}

		ns := "memory"
		if err := c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil {
			b.Fatal(err)
		}
		provider := &dexv1.OIDCProvider{
			ObjectMeta: metav1.ObjectMeta{Name: "dex", Namespace: ns},
			Spec: dexv1.OIDCProviderSpec{IssuerURL: dx.IssuerURL(), ClientID: "registry",
				Dex: &dexv1.DexAdminSpec{GRPCAddress: dx.GRPCAddress(), Insecure: true}},
		}
		objs := []client.Object{provider}
		for i := range 1000 {
			objs = append(objs, &dexv1.DexStaticClient{
				ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("c%04d", i), Namespace: ns},
				Spec: dexv1.DexStaticClientSpec{ProviderRef: dexv1.ObjectRef{Name: "dex"}, Public: true,
					LoopbackRedirect: &dexv1.LoopbackRedirect{Ports: []int32{10000, 10010}, Path: "/login"}},
			})
		}
		for i := range 100 {
			objs = append(objs,
				&dexv1.DexConnector{
					ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("k%03d", i), Namespace: ns},
					Spec: dexv1.DexConnectorSpec{ProviderRef: dexv1.ObjectRef{Name: "dex"}, ConnectorID: fmt.Sprintf("mock-%03d", i),
						Type: "mockCallback", DisplayName: "Mock"},
				},
				&dexv1.GroupBinding{
					ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("b%03d", i), Namespace: ns},
					Spec:       dexv1.GroupBindingSpec{Expression: fmt.Sprintf(`"team-%d" in groups`, i), ModuleResources: []string{"team/*"}},
				})
		}
		work := make(chan client.Object)
		var wg sync.WaitGroup
		for range 8 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for o := range work {
					if err := c.Create(ctx, o); err != nil {
						b.Error(err)
					}
				}
			}()
		}
		for _, o := range objs {
			work <- o
		}
		close(work)
		wg.Wait()
		if err := wait.PollUntilContextTimeout(ctx, 500*time.Millisecond, 10*time.Minute, true, func(ctx context.Context) (bool, error) {
			return allReady(ctx, c, ns) == 1+1000+100+100, nil
		}); err != nil {
			b.Fatalf("not all Ready: %v (%d Ready)", err, allReady(ctx, c, ns))
		}
		rss, peak := settledMemory(b, mgr.Pid())
		anon, file := lastAnon, lastFile
		if profileDir != "" {
			saveMemoryProfile(b, profileDir, "loaded", bin, pprofAddr, mgr.Pid())
		}
		b.ReportMetric(float64(idleRSS)/1024, "idle-MiB")
		b.ReportMetric(float64(rss)/1024, "loaded-MiB")
		b.ReportMetric(float64(peak)/1024, "peak-MiB")
		b.ReportMetric(float64(anon)/1024, "loaded-anon-MiB")
		b.ReportMetric(float64(file)/1024, "loaded-file-MiB")
		b.Logf("manager RSS: idle %.1f MiB; with 1,000 clients, 100 connectors, 100 bindings Ready %.1f MiB (peak %.1f MiB; goal <= 64 MiB), of which anonymous (heap, stacks) %.1f MiB and mapped from the binary %.1f MiB",
			float64(idleRSS)/1024, float64(rss)/1024, float64(peak)/1024, float64(anon)/1024, float64(file)/1024)
	}
}

// allReady counts the Ready objects of ns.
func allReady(ctx context.Context, c client.Client, ns string) int {
	n := 0
	count := func(conds []metav1.Condition) {
		if meta.IsStatusConditionTrue(conds, dexv1.ConditionReady) {
			n++
		}
	}
	var ps dexv1.OIDCProviderList
	var cs dexv1.DexStaticClientList
	var ks dexv1.DexConnectorList
	var bs dexv1.GroupBindingList
	if c.List(ctx, &ps, client.InNamespace(ns)) != nil || c.List(ctx, &cs, client.InNamespace(ns)) != nil ||
		c.List(ctx, &ks, client.InNamespace(ns)) != nil || c.List(ctx, &bs, client.InNamespace(ns)) != nil {
		return 0
	}
	for _, p := range ps.Items {
		count(p.Status.Conditions)
	}
	for _, o := range cs.Items {
		count(o.Status.Conditions)
	}
	for _, o := range ks.Items {
		count(o.Status.Conditions)
	}
	for _, o := range bs.Items {
		count(o.Status.Conditions)
	}
	return n
}

// settledMemory reads VmRSS every 500ms until two readings differ by less than 1 MiB (at most
// 15s), and returns the last reading and the peak.
func settledMemory(b *testing.B, pid int) (rss, peak int64) {
	b.Helper()
	prev := int64(-1 << 40)
	_ = wait.PollUntilContextTimeout(context.Background(), 500*time.Millisecond, 15*time.Second, false, func(context.Context) (bool, error) {
		rss, peak = memoryOf(b, pid)
		settled := rss-prev < 1024 && prev-rss < 1024
		prev = rss
		return settled, nil
	})
	return rss, peak
}

// lastAnon and lastFile are the anonymous (heap, stacks) and file-backed (the binary's own code
// and data) parts of the RSS memoryOf read last, in KiB.
var lastAnon, lastFile int64

// memoryOf returns VmRSS and VmHWM (peak) of a process, in KiB.
func memoryOf(b *testing.B, pid int) (rss, peak int64) {
	b.Helper()
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		b.Fatal(err)
	}
	defer func() { _ = f.Close() }()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 2 {
			continue
		}
		v, _ := strconv.ParseInt(fields[1], 10, 64)
		switch fields[0] {
		case "VmRSS:":
			rss = v
		case "VmHWM:":
			peak = v
		case "RssAnon:":
			lastAnon = v
		case "RssFile:":
			lastFile = v
		}
	}
	return rss, peak
}

// saveMemoryProfile writes <phase>-heap.pb.gz (after a GC), <phase>-heap.txt (pprof -top
// -inuse_space), <phase>-memstats.txt and <phase>-smaps.txt (resident KiB by mapping, and
// smaps_rollup) of the manager into dir.
func saveMemoryProfile(b *testing.B, dir, phase, bin, pprofAddr string, pid int) {
	b.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		b.Fatal(err)
	}
	get := func(query string) []byte {
		resp, err := http.Get("http://" + pprofAddr + "/debug/pprof/heap?" + query)
		if err != nil {
			b.Fatal(err)
		}
		defer func() { _ = resp.Body.Close() }()
		body, err := io.ReadAll(resp.Body)
		if err != nil {
			b.Fatal(err)
		}
		return body
	}
	write := func(name string, data []byte) {
		if err := os.WriteFile(filepath.Join(dir, phase+"-"+name), data, 0o644); err != nil {
			b.Fatal(err)
		}
	}
	// smaps first: the profile requests themselves allocate.
	smaps, err := os.ReadFile(fmt.Sprintf("/proc/%d/smaps", pid))
	if err != nil {
		b.Fatal(err)
	}
	rollup, _ := os.ReadFile(fmt.Sprintf("/proc/%d/smaps_rollup", pid))
	write("smaps.txt", append([]byte(residentByMapping(string(smaps))+"\n"), rollup...))
	heap := filepath.Join(dir, phase+"-heap.pb.gz")
	write("heap.pb.gz", get("gc=1"))
	text := get("debug=1")
	if i := bytes.Index(text, []byte("# runtime.MemStats")); i >= 0 {
		text = text[i:]
	}
	write("memstats.txt", text)
	top, err := exec.Command("go", "tool", "pprof", "-top", "-inuse_space", bin, heap).CombinedOutput()
	if err != nil {
		b.Fatalf("go tool pprof: %v\n%s", err, top)
	}
	write("heap.txt", top)
}

// residentByMapping sums the Rss of /proc/<pid>/smaps by what is mapped (a file, [heap], [stack]
// or anonymous memory), largest first.
func residentByMapping(smaps string) string {
	kib := map[string]int64{}
	name := ""
	for line := range strings.Lines(smaps) {
		f := strings.Fields(line)
		switch {
		case len(f) >= 5 && strings.Contains(f[0], "-") && !strings.HasSuffix(f[0], ":"):
			name = "[anonymous]"
			if len(f) >= 6 {
				name = f[5]
			}
			if len(f) >= 2 && strings.Contains(f[1], "x") && len(f) >= 6 {
				name += " (text)"
			}
		case len(f) >= 2 && f[0] == "Rss:":
			v, _ := strconv.ParseInt(f[1], 10, 64)
			kib[name] += v
		}
	}
	names := slices.SortedFunc(maps.Keys(kib), func(x, y string) int { return cmp.Compare(kib[y], kib[x]) })
	var sb strings.Builder
	for _, n := range names {
		fmt.Fprintf(&sb, "%8d KiB  %s\n", kib[n], n)
	}
	return sb.String()
}

// benchManager is the manager binary running against an envtest and a Dex (sqlite3) of its own,
// so that no other controller shares the cluster, ready (its /readyz answers).
type benchManager struct {
	env  *harness.Env
	dex  *harness.Dex
	proc *harness.ManagerProcess
	bin  string
	stop func()
}

// startBenchManager builds and starts the manager (registry on, no webhooks) with the shipped
// Deployment's GOGC and GOMEMLIMIT (shippedEnv), environ added to its environment and extra flags.
func startBenchManager(b *testing.B, environ []string, extra ...string) *benchManager {
	b.Helper()
	var stops []func()
	m := &benchManager{stop: func() {
		for i := len(stops) - 1; i >= 0; i-- {
			stops[i]()
		}
	}}
	fail := func(err error) {
		m.stop()
		b.Fatal(err)
	}
	env, err := harness.StartEnv(harness.EnvOptions{})
	if err != nil {
		b.Fatal(err)
	}
	stops = append(stops, func() { _ = env.Stop() })
	dir := b.TempDir()
	dx, err := harness.StartDex(harness.DexOptions{Dir: filepath.Join(dir, "dex"), Storage: harness.StorageSQLite})
	if err != nil {
		fail(err)
	}
	stops = append(stops, func() { _ = dx.Stop() })
	m.env, m.dex, m.bin = env, dx, filepath.Join(dir, "dexterity")
	if err := harness.BuildManager(m.bin); err != nil {
		fail(err)
	}
	kubeconfig := filepath.Join(dir, "kubeconfig")
	if err := env.WriteAdminKubeconfig(kubeconfig, "bench"); err != nil {
		fail(err)
	}
	probe, _ := harness.FreePort()
	registry, _ := harness.FreePort()
	args := append([]string{"--kubeconfig", kubeconfig, "--metrics-bind-address", "0",
		"--health-probe-bind-address", "127.0.0.1:" + strconv.Itoa(probe),
		"--registry-bind-address", "127.0.0.1:" + strconv.Itoa(registry)}, extra...)
	shipped, err := shippedEnv()
	if err != nil {
		fail(err)
	}
	// The shipped Deployment's runtime settings first: environ (DEXTERITY_BENCH_MANAGER_ENV)
	// overrides them.
	m.proc, err = harness.StartManagerProcess(m.bin, filepath.Join(dir, "manager.log"), append(shipped, environ...), args...)
	if err != nil {
		fail(err)
	}
	stops = append(stops, m.proc.Kill)
	if err := harness.WaitHTTPOK(context.Background(), fmt.Sprintf("http://127.0.0.1:%d/readyz", probe), time.Minute); err != nil {
		fail(err)
	}
	return m
}
