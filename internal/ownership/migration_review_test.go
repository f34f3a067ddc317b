package ownership_test

import (
	"context"
	"slices"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"

	claimsv1 "dexterity.dev/dexterity/api/claims/v1alpha1"
	dexv1 "dexterity.dev/dexterity/api/v1alpha1"
	"dexterity.dev/dexterity/internal/ownership"
)

// youngestFirst lists DexStaticClients newest first: the order in which a tenant who forged a
// legacy owner would like the migration to meet them (the cache lists in no set order).
func youngestFirst() interceptor.Funcs {
	return interceptor.Funcs{List: func(ctx context.Context, c client.WithWatch, list client.ObjectList, opts ...client.ListOption) error {
		if err := c.List(ctx, list, opts...); err != nil {
			return err
		}
		if l, ok := list.(*dexv1.DexStaticClientList); ok {
			slices.SortFunc(l.Items, func(a, b dexv1.DexStaticClient) int {
				return b.CreationTimestamp.Compare(a.CreationTimestamp.Time)
			})
		}
		return nil
	}}
}

// A tenant allowed to write status forges the legacy record (annotation, finalizer, status) on
// an object of its own, created before the upgrade, that names another tenant's client id in
// the same Dex. The migration must not hand the id to whichever of the two the cache lists
// first: the older object, which had the id first, gets the claim, and the forger holds none.
func TestMigrationGivesADuplicatedLegacyIDToTheOlderObject(t *testing.T) {
	g := NewWithT(t)
	upgrade := time.Date(2025, 1, 1, 12, 0, 0, 0, time.UTC)
	owner := legacyClient("portal", "shared", upgrade.Add(-48*time.Hour))
	forger := legacyClient("portal", "shared", upgrade.Add(-time.Hour))
	forger.Namespace, forger.UID = "team-b", "uid-team-b-portal"
	f := newFixture(t, youngestFirst(), claimsCRD(upgrade), owner, forger)

	g.Expect(ownership.NewMigration(f.ledger, claimsv1.EntryClient).Run(context.Background())).To(Succeed())
	cl, err := f.claim(owner)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(cl.Spec.Owner.UID).To(Equal(owner.UID), "the claim is the older object's, not %s/%s's", cl.Spec.Owner.Namespace, cl.Spec.Owner.Name)
	f.get(t, forger)
	g.Expect(forger.Annotations).To(HaveKey(ownership.LegacyAnnotationClient), "the forger is not carried over")
}

// The migration reads every object of the kind when the manager starts: it reads them in the
// cache (client.UnsafeDisableDeepCopy) and copies only those it carries over, so that a start
// does not briefly hold a second copy of every object a tenant wrote.
func TestMigrationReadsTheKindWithoutCopyingIt(t *testing.T) {
	g := NewWithT(t)
	var copied []bool
	f := newFixture(t, interceptor.Funcs{List: func(ctx context.Context, c client.WithWatch, list client.ObjectList, opts ...client.ListOption) error {
		if _, ok := list.(*dexv1.DexStaticClientList); ok {
			lo := (&client.ListOptions{}).ApplyOptions(opts)
			copied = append(copied, lo.UnsafeDisableDeepCopy == nil || !*lo.UnsafeDisableDeepCopy)
		}
		return c.List(ctx, list, opts...)
	}}, staticClient("team-a", "app", "app", dexv1.ClientFinalizer))
	g.Expect(ownership.NewMigration(f.ledger, claimsv1.EntryClient).Run(context.Background())).To(Succeed())
	g.Expect(copied).To(Equal([]bool{false}), "one list of the kind, read in place")
}
