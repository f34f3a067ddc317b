package unit_test

import (
	"context"
	"runtime"
	"strings"
	"testing"

	. "github.com/onsi/gomega"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	dexv1 "dexterity.dev/dexterity/api/v1alpha1"
)

// A DexStaticClient that bypassed admission (stored before the schema's bounds, or written with
// the webhooks off: the fake API server checks no schema) is refused by the controller before it
// builds anything from the redirect URIs: Ready=False with reason InvalidSpec naming the field,
// no Dex write, the client in Dex and status.redirectURIs as they were, and the reconcile
// allocates a small fraction of what the expansion would take.
func TestSpecThatBypassedAdmissionIsRefused(t *testing.T) {
	longPath := "/" + strings.Repeat("a", 64<<10)
	for _, tc := range []struct {
		name      string
		mutate    func(*dexv1.DexStaticClientSpec)
		expansion int // bytes the effective redirect list would take
		want      []string
	}{
		{"1,000 ports of a 64 KiB path (the memory balloon)", func(s *dexv1.DexStaticClientSpec) {
			s.LoopbackRedirect = &dexv1.LoopbackRedirect{Ports: []int32{10000, 10999}, Path: longPath}
		}, 1000 * (len("http://localhost:10000") + len(longPath)), []string{"spec.loopbackRedirect.ports", "at most 100"}},
		{"plain http on a host named like a loopback address", func(s *dexv1.DexStaticClientSpec) {
			s.RedirectURIs = append(s.RedirectURIs, "http://127.evil.example/cb")
		}, 0, []string{"spec.redirectURIs[1]", "loopback", "use https"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			f := newFixture(t)
			c := f.client(t, "team-a", "app", "")
			_, err := f.reconcile(t, c)
			g.Expect(err).NotTo(HaveOccurred())
			before, _ := f.dex.Client("team-a-app")
			writes := f.dex.WriteCalls()

			cur := f.get(t, c)
			tc.mutate(&cur.Spec)
			cur.Generation++
			g.Expect(f.k8s.Update(context.Background(), cur)).To(Succeed())

			var m0, m1 runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&m0)
			_, err = f.reconcile(t, c)
			runtime.ReadMemStats(&m1)
			g.Expect(err).NotTo(HaveOccurred(), "an invalid spec waits for the user, it is not retried")

			cur = f.get(t, c)
			registered := cond(cur, dexv1.ConditionRegistered)
			g.Expect(registered.Status).To(Equal(metav1.ConditionFalse))
			g.Expect(registered.Reason).To(Equal(dexv1.ReasonInvalidSpec))
			for _, w := range tc.want {
				g.Expect(registered.Message).To(ContainSubstring(w))
			}
			g.Expect(len(registered.Message)).To(BeNumerically("<", 1024), "the message quotes no large value")
			g.Expect(cond(cur, dexv1.ConditionReady).Status).To(Equal(metav1.ConditionFalse))
			g.Expect(cond(cur, dexv1.ConditionStalled).Status).To(Equal(metav1.ConditionTrue))
			g.Expect(cur.Status.RedirectURIs).To(Equal([]string{"https://app.example.com/cb"}))
			g.Expect(f.dex.WriteCalls()).To(Equal(writes), "nothing is written to Dex")
			after, _ := f.dex.Client("team-a-app")
			g.Expect(after.GetRedirectUris()).To(Equal(before.GetRedirectUris()))

			if tc.expansion > 0 {
				allocated := m1.TotalAlloc - m0.TotalAlloc
				t.Logf("reconcile allocated %d KiB; the expansion would be %d KiB", allocated>>10, tc.expansion>>10)
				g.Expect(allocated).To(BeNumerically("<", tc.expansion/8),
					"the reconcile (the fake API server's copies of the 64 KiB object included) allocates a fraction of the expansion")
			}
		})
	}
}
