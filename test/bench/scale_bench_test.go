package bench

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
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

// BenchmarkScale: a big platform's load on the manager binary as shipped (registry on, no
// webhooks), on an envtest and a Dex (sqlite3) of its own (design.md §7 "Memory grows with
// Dexterity's objects, not with the cluster"):
//
//  1. the manager idle, then one OIDCProvider that admits every namespace;
//  2. unrelated Secrets (Helm-release-like: labels, an annotation, 1 KiB of data) spread over the
//     namespaces: KiB of RSS per unrelated Secret;
//  3. public DexStaticClients (11 loopback redirects each) spread over the namespaces, applied in
//     steps, each step waited until all are Ready: KiB of RSS per client, at each step;
//  4. the steady state: the manager's CPU seconds over one resync period with nothing changed.
//
// Sizes (defaults are the design's: 10,000 clients in 1,000 namespaces with 50,000 Secrets):
//
//	DEXTERITY_BENCH_SCALE_CLIENTS, DEXTERITY_BENCH_SCALE_NAMESPACES, DEXTERITY_BENCH_SCALE_SECRETS
//	DEXTERITY_BENCH_SCALE_STEPS="1000,5000" (client counts to measure on the way)
//
// DEXTERITY_BENCH_HEAP_PROFILE=<dir> saves heap profiles at every step (see BenchmarkManagerMemory);
// DEXTERITY_BENCH_MANAGER_ENV="K=V ..." sets the manager's environment.
//
// go test ./test/bench/ -run '^$' -bench BenchmarkScale -benchtime 1x -timeout 60m
func BenchmarkScale(b *testing.B) {
	ctx := context.Background()
	nClients := envInt(b, "DEXTERITY_BENCH_SCALE_CLIENTS", 10000)
	nNamespaces := envInt(b, "DEXTERITY_BENCH_SCALE_NAMESPACES", 1000)
	nSecrets := envInt(b, "DEXTERITY_BENCH_SCALE_SECRETS", 50000)
	var steps []int
	for _, s := range strings.Split(envString("DEXTERITY_BENCH_SCALE_STEPS", "1000,5000"), ",") {
		if n, err := strconv.Atoi(strings.TrimSpace(s)); err == nil && n > 0 && n < nClients {
			steps = append(steps, n)
		}
	}
	steps = append(steps, nClients)

	resync := 60 * time.Second
	extra := []string{"--dex-resync-period", resync.String()}
	profileDir := os.Getenv("DEXTERITY_BENCH_HEAP_PROFILE")
	pprofAddr := ""
	if profileDir != "" {
		port, _ := harness.FreePort()
		pprofAddr = "127.0.0.1:" + strconv.Itoa(port)
		extra = append(extra, "--pprof-bind-address", pprofAddr)
	}
	m := startBenchManager(b, strings.Fields(os.Getenv("DEXTERITY_BENCH_MANAGER_ENV")), extra...)
	defer m.stop()
	c, dx, mgr := m.env.Client, m.dex, m.proc
	profile := func(phase string) {
		if profileDir != "" {
			saveMemoryProfile(b, profileDir, phase, m.bin, pprofAddr, mgr.Pid())
		}
	}

	for range b.N {
		idle, _ := settledMemory(b, mgr.Pid())
		profile("idle")
		start := time.Now()
		namespaces := make([]string, nNamespaces)
		objs := make([]client.Object, 0, nNamespaces+1)
		objs = append(objs, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "platform"}})
		for i := range namespaces {
			namespaces[i] = fmt.Sprintf("team-%04d", i)
			objs = append(objs, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: namespaces[i]}})
		}
		createAll(ctx, b, c, objs)
		if err := c.Create(ctx, &dexv1.OIDCProvider{
			ObjectMeta: metav1.ObjectMeta{Name: "dex", Namespace: "platform"},
			Spec: dexv1.OIDCProviderSpec{IssuerURL: dx.IssuerURL(), ClientID: "registry",
				Dex: &dexv1.DexAdminSpec{GRPCAddress: dx.GRPCAddress(), Insecure: true,
					AllowedNamespaces: &dexv1.AllowedNamespaces{From: dexv1.NamespacesFromAll}}},
		}); err != nil {
			b.Fatal(err)
		}
		if err := wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
			p := &dexv1.OIDCProvider{}
			err := c.Get(ctx, client.ObjectKey{Namespace: "platform", Name: "dex"}, p)
			return err == nil && meta.IsStatusConditionTrue(p.Status.Conditions, dexv1.ConditionReady), nil
		}); err != nil {
			b.Fatalf("provider not Ready: %v", err)
		}
		base, _ := settledMemory(b, mgr.Pid())
		b.Logf("%d namespaces and the provider in %s; RSS idle %.1f MiB, with namespaces and provider %.1f MiB",
			nNamespaces, time.Since(start).Round(time.Second), mib(idle), mib(base))

		start = time.Now()
		data := map[string][]byte{"release": []byte(strings.Repeat("x", 1024))}
		objs = objs[:0]
		for i := range nSecrets {
			ns := namespaces[i%nNamespaces]
			objs = append(objs, &corev1.Secret{
				ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("sh.helm.release.v1.app-%05d.v1", i), Namespace: ns,
					Labels:      map[string]string{"owner": "helm", "name": fmt.Sprintf("app-%05d", i), "status": "deployed", "version": "1"},
					Annotations: map[string]string{"meta.helm.sh/release-name": fmt.Sprintf("app-%05d", i)}},
				Type: "helm.sh/release.v1",
				Data: data,
			})
		}
		createAll(ctx, b, c, objs)
		withSecrets, _ := settledMemory(b, mgr.Pid())
		profile("secrets")
		perSecret := 0.0
		if nSecrets > 0 {
			perSecret = float64(withSecrets-base) / float64(nSecrets)
		}
		b.Logf("%d unrelated Secrets in %s: RSS %.1f MiB, %+.1f MiB, %.3f KiB per Secret (goal <= 0.1)",
			nSecrets, time.Since(start).Round(time.Second), mib(withSecrets), mib(withSecrets-base), perSecret)
		b.ReportMetric(mib(idle), "idle-MiB")
		b.ReportMetric(perSecret, "KiB/secret")

		made := 0
		var rss int64
		for _, step := range steps {
			start = time.Now()
			objs = objs[:0]
			for i := made; i < step; i++ {
				objs = append(objs, &dexv1.DexStaticClient{
					ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("c%05d", i), Namespace: namespaces[i%nNamespaces]},
					Spec: dexv1.DexStaticClientSpec{ProviderRef: dexv1.ObjectRef{Name: "dex", Namespace: "platform"}, Public: true,
						LoopbackRedirect: &dexv1.LoopbackRedirect{Ports: []int32{10000, 10010}, Path: "/login"}},
				})
			}
			createAll(ctx, b, c, objs)
			created := time.Since(start)
			made = step
			if err := wait.PollUntilContextTimeout(ctx, 2*time.Second, 30*time.Minute, true, func(ctx context.Context) (bool, error) {
				return readyClients(ctx, c) >= made, nil
			}); err != nil {
				b.Fatalf("not all %d clients Ready: %v (%d Ready)", made, err, readyClients(ctx, c))
			}
			rss, _ = settledMemory(b, mgr.Pid())
			profile(fmt.Sprintf("clients-%d", made))
			perClient := float64(rss-withSecrets) / float64(made)
			b.Logf("%d clients: created in %s, all Ready after %s; RSS %.1f MiB (anonymous %.1f, binary %.1f), %.2f KiB per client (goal <= 4)",
				made, created.Round(time.Second), time.Since(start).Round(time.Second), mib(rss), mib(lastAnon), mib(lastFile), perClient)
		}
		perClient := float64(rss-withSecrets) / float64(nClients)
		b.ReportMetric(perClient, "KiB/client")
		b.ReportMetric(mib(rss), "loaded-MiB")

		// Steady state: one resync period with nothing changed.
		before := processSeconds(b, mgr.Pid())
		time.Sleep(resync) // a measurement window, not an assertion
		cpu := processSeconds(b, mgr.Pid()) - before
		b.ReportMetric(cpu, "resync-cpu-s")
		b.Logf("steady state: %.2f CPU seconds of the manager over one resync period (%s) with %d clients; RSS %.1f MiB (goal < 128 MiB)",
			cpu, resync, nClients, mib(rss))
	}
}

// createAll creates objs with 16 writers.
func createAll(ctx context.Context, b *testing.B, c client.Client, objs []client.Object) {
	b.Helper()
	work := make(chan client.Object)
	var wg sync.WaitGroup
	var failed atomic.Int32
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for o := range work {
				if err := c.Create(ctx, o); err != nil && failed.Add(1) < 5 {
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
	if failed.Load() > 0 {
		b.Fatalf("%d creates failed", failed.Load())
	}
}

// readyClients counts the Ready DexStaticClients of all namespaces.
func readyClients(ctx context.Context, c client.Client) int {
	var list dexv1.DexStaticClientList
	if err := c.List(ctx, &list); err != nil {
		return 0
	}
	n := 0
	for _, o := range list.Items {
		if meta.IsStatusConditionTrue(o.Status.Conditions, dexv1.ConditionReady) {
			n++
		}
	}
	return n
}

// processSeconds is the CPU time (user + system) a process used so far.
func processSeconds(b *testing.B, pid int) float64 {
	b.Helper()
	_, _, s, ok := readStat(fmt.Sprintf("/proc/%d/stat", pid))
	if !ok {
		b.Fatalf("cannot read the CPU time of process %d", pid)
	}
	return s
}

func mib(kib int64) float64 { return float64(kib) / 1024 }

func envString(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

func envInt(b *testing.B, name string, def int) int {
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 0 {
		b.Fatalf("%s=%q: want a count", name, v)
	}
	return n
}
