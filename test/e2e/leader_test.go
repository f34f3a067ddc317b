package e2e

import (
	"context"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	coordinationv1 "k8s.io/api/coordination/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// Out of a cluster, --leader-election-namespace names where the manager's Lease lives; the
// manager holds it (and runs its controllers, which the other tests of this package rely on).
func TestLeaderElectionNamespace(t *testing.T) {
	g := NewWithT(t)
	g.Eventually(func(g Gomega) {
		lease := &coordinationv1.Lease{}
		g.Expect(k8s.Get(context.Background(), client.ObjectKey{Namespace: "dexterity-system", Name: "dexterity.dev"}, lease)).To(Succeed())
		g.Expect(lease.Spec.HolderIdentity).NotTo(BeNil())
		g.Expect(*lease.Spec.HolderIdentity).NotTo(BeEmpty())
	}, 30*time.Second).Should(Succeed())
}
