package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"sigs.k8s.io/controller-runtime/pkg/client"

	dexv1 "dexterity.dev/dexterity/api/v1alpha1"
)

// BenchmarkWorstCaseObjectsManagerRSS: the manager binary's resident memory with worst-case
// tenant objects (TestWorstCaseObjects' shapes, cut to what the API server stores: etcd refuses
// a request over 1.5 MiB) next to the same manager idle: 20 DexStaticClients at every bound
// (200 redirect URIs of 2 KiB, 100 loopback ports of a 256-byte path: 430 KiB each), 20
// GroupBindings at every bound (an expression of the most nodes, 200 globs of 256 bytes), 5
// Modules and 5 Providers of about 1 MiB. It reports the RSS growth against the bytes of the
// objects themselves (the informer cache holds each object once, decoded).
//
// go test ./test/bench/ -run '^$' -bench BenchmarkWorstCaseObjectsManagerRSS -benchtime 1x
func BenchmarkWorstCaseObjectsManagerRSS(b *testing.B) {
	ctx := context.Background()
	m := startBenchManager(b, nil)
	defer m.stop()
	c, dx, mgr := m.env.Client, m.dex, m.proc

	for range b.N {
		idleRSS, _ := settledMemory(b, mgr.Pid())
		ns := "worst"
		if err := c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil {
			b.Fatal(err)
		}
		objs := []client.Object{&dexv1.OIDCProvider{
			ObjectMeta: metav1.ObjectMeta{Name: "dex", Namespace: ns},
			Spec: dexv1.OIDCProviderSpec{IssuerURL: dx.IssuerURL(), ClientID: "registry",
				Dex: &dexv1.DexAdminSpec{GRPCAddress: dx.GRPCAddress(), Insecure: true}},
		}}
		for i := range 20 {
			dsc := worstClient()
			dsc.ObjectMeta = metav1.ObjectMeta{Name: fmt.Sprintf("c%02d", i), Namespace: ns}
			dsc.Spec.ProviderRef = dexv1.ObjectRef{Name: "dex"}
			dsc.Spec.ClientID = fmt.Sprintf("%02d", i) + dsc.Spec.ClientID[2:]
			dsc.Spec.Public, dsc.Spec.SecretRef, dsc.Spec.GenerateSecret = true, nil, false
			gb := worstBinding(mostNodes())
			gb.ObjectMeta = metav1.ObjectMeta{Name: fmt.Sprintf("b%02d", i), Namespace: ns}
			objs = append(objs, dsc, gb)
		}
		for i := range 5 {
			m := worstModule()
			m.ObjectMeta = metav1.ObjectMeta{Name: fmt.Sprintf("m%d", i), Namespace: ns}
			m.Spec.Name = fmt.Sprintf("m%d", i) + m.Spec.Name[2:]
			m.Spec.Versions = m.Spec.Versions[:220] // about 1 MiB
			p := worstProvider()
			p.ObjectMeta = metav1.ObjectMeta{Name: fmt.Sprintf("p%d", i), Namespace: ns}
			p.Spec.Type = fmt.Sprintf("p%d", i) + p.Spec.Type[2:]
			p.Spec.SigningKeys.GPGPublicKeys = p.Spec.SigningKeys.GPGPublicKeys[:10]
			p.Spec.Versions = p.Spec.Versions[:1]
			p.Spec.Versions[0].Platforms = p.Spec.Versions[0].Platforms[:20]
			objs = append(objs, m, p)
		}
		var total int
		for _, o := range objs {
			raw, _ := json.Marshal(o)
			total += len(raw)
			if err := c.Create(ctx, o); err != nil {
				b.Fatalf("create %T %s (%d KiB): %v", o, o.GetName(), len(raw)>>10, shortErr(err))
			}
		}
		if err := wait.PollUntilContextTimeout(ctx, 500*time.Millisecond, 5*time.Minute, true, func(ctx context.Context) (bool, error) {
			return allReady(ctx, c, ns) == 1+20+20, nil
		}); err != nil {
			b.Fatalf("not all Ready: %v (%d Ready)", err, allReady(ctx, c, ns))
		}
		rss, peak := settledMemory(b, mgr.Pid())
		growth := rss - idleRSS
		b.ReportMetric(float64(idleRSS)/1024, "idle-MiB")
		b.ReportMetric(float64(rss)/1024, "loaded-MiB")
		b.ReportMetric(float64(peak)/1024, "peak-MiB")
		b.ReportMetric(float64(total)/(1<<20), "objects-MiB")
		b.ReportMetric(float64(growth)*1024/float64(total), "rss-growth/object-bytes")
		b.Logf("manager RSS: idle %.1f MiB; with %d worst-case objects (%.1f MiB of JSON) %.1f MiB, peak %.1f MiB: growth %.2fx the objects' bytes",
			float64(idleRSS)/1024, len(objs), float64(total)/(1<<20), float64(rss)/1024, float64(peak)/1024, float64(growth)*1024/float64(total))
	}
}

func shortErr(err error) string {
	s := err.Error()
	if len(s) > 600 {
		return s[:600] + "..."
	}
	return strings.TrimSpace(s)
}
