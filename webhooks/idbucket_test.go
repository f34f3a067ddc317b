package webhooks_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	dexv1 "dexterity.dev/dexterity/api/v1alpha1"
	"dexterity.dev/dexterity/internal/ownership"
)

// sameBucket returns an id, made from prefix, that falls in the same id-index bucket as id
// (ownership.IDBucket: 256 buckets keyed by this process's seed, which the webhooks share in
// this test) but is not id.
func sameBucket(t *testing.T, id, prefix string) string {
	t.Helper()
	for i := range 100_000 {
		if other := fmt.Sprintf("%s%d", prefix, i); other != id && ownership.IDBucket(other) == ownership.IDBucket(id) {
			return other
		}
	}
	t.Fatalf("no id in the bucket of %q", id)
	return ""
}

// The id indexes hold one of 256 buckets of the id, not the id: an object whose id merely shares
// the bucket of another's is no duplicate (one id in 256 would otherwise be refused for nothing),
// while the same id still is. The webhooks filter the bucket by the id.
func TestAdmissionTellsIDsOfOneBucketApart(t *testing.T) {
	ctx := context.Background()
	t.Run("DexStaticClient", func(t *testing.T) {
		g := NewWithT(t)
		ns := namespace(t, nil)
		g.Expect(k8s.Create(ctx, provider(ns, "dex", nil))).To(Succeed())
		dsc := func(name, id string) *dexv1.DexStaticClient {
			return &dexv1.DexStaticClient{
				ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
				Spec:       dexv1.DexStaticClientSpec{ProviderRef: dexv1.ObjectRef{Name: "dex"}, ClientID: id, Public: true, LoopbackRedirect: &dexv1.LoopbackRedirect{Ports: []int32{10000, 10010}}},
			}
		}
		owned := ns + "-app"
		g.Expect(k8s.Create(ctx, dsc("app", owned))).To(Succeed())
		// Wait until the webhook's cache has the owner: the same id is refused.
		g.Eventually(func() error { return k8s.Create(ctx, dsc("dup", owned), client.DryRunAll) }, 10*time.Second, 100*time.Millisecond).
			Should(MatchError(ContainSubstring("spec.clientId: Duplicate value")))
		neighbour := sameBucket(t, owned, ns+"-n")
		g.Expect(k8s.Create(ctx, dsc("neighbour", neighbour))).To(Succeed(), "id %s only shares the bucket of %s", neighbour, owned)
	})
	t.Run("DexConnector", func(t *testing.T) {
		g := NewWithT(t)
		ns := namespace(t, nil)
		g.Expect(k8s.Create(ctx, provider(ns, "dex", nil))).To(Succeed())
		conn := func(name, id string) *dexv1.DexConnector {
			return &dexv1.DexConnector{
				ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
				Spec:       dexv1.DexConnectorSpec{ProviderRef: dexv1.ObjectRef{Name: "dex"}, ConnectorID: id, Type: "mockCallback"},
			}
		}
		owned := "mock-" + ns
		g.Expect(k8s.Create(ctx, conn("mock", owned))).To(Succeed())
		g.Eventually(func() error { return k8s.Create(ctx, conn("dup", owned), client.DryRunAll) }, 10*time.Second, 100*time.Millisecond).
			Should(MatchError(ContainSubstring("spec.connectorId: Duplicate value")))
		neighbour := sameBucket(t, owned, "mock-n")
		g.Expect(k8s.Create(ctx, conn("neighbour", neighbour))).To(Succeed(), "id %s only shares the bucket of %s", neighbour, owned)
	})
}
