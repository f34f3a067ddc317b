package ownership_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/record"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"

	claimsv1 "dexterity.dev/dexterity/api/claims/v1alpha1"
	dexv1 "dexterity.dev/dexterity/api/v1alpha1"
	"dexterity.dev/dexterity/internal/outcome"
	"dexterity.dev/dexterity/internal/ownership"
	"dexterity.dev/dexterity/internal/scheme"
	"dexterity.dev/dexterity/internal/tenancy"
)

const dexAddr = "dex.platform:5557"

// fixture is a fake API server holding a provider (platform/dex) with a ledger over it.
type fixture struct {
	k8s      client.Client
	ledger   ownership.Ledger
	provider *dexv1.OIDCProvider
	events   *record.FakeRecorder
}

func newFixture(t *testing.T, funcs interceptor.Funcs, objs ...client.Object) *fixture {
	t.Helper()
	p := &dexv1.OIDCProvider{
		ObjectMeta: metav1.ObjectMeta{Name: "dex", Namespace: "platform", UID: "uid-provider"},
		Spec:       dexv1.OIDCProviderSpec{IssuerURL: "https://dex.example.com", Dex: &dexv1.DexAdminSpec{GRPCAddress: dexAddr}},
	}
	k8s := fake.NewClientBuilder().WithScheme(scheme.Scheme).WithInterceptorFuncs(funcs).
		WithStatusSubresource(&dexv1.DexStaticClient{}, &dexv1.DexConnector{}).
		WithIndex(&claimsv1.DexEntryClaim{}, ownership.IndexOwnerUID, func(o client.Object) []string {
			return []string{ownership.OwnerBucket(o.(*claimsv1.DexEntryClaim).Spec.Owner.UID)}
		}).
		WithIndex(&dexv1.DexStaticClient{}, tenancy.IndexClientID, func(o client.Object) []string {
			return []string{ownership.IDBucket(o.(*dexv1.DexStaticClient).EffectiveClientID())}
		}).
		WithObjects(append([]client.Object{p}, objs...)...).Build()
	events := record.NewFakeRecorder(10)
	return &fixture{k8s: k8s, provider: p, events: events, ledger: ownership.Ledger{Client: k8s, API: k8s, Recorder: events}}
}

func staticClient(ns, name, id string, finalizers ...string) *dexv1.DexStaticClient {
	return &dexv1.DexStaticClient{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, UID: types.UID("uid-" + ns + "-" + name), Finalizers: finalizers},
		Spec:       dexv1.DexStaticClientSpec{ProviderRef: dexv1.ObjectRef{Name: "dex", Namespace: "platform"}, ClientID: id, Public: true},
	}
}

func claimOf(obj dexv1.DexEntry) *claimsv1.DexEntryClaim {
	return &claimsv1.DexEntryClaim{
		ObjectMeta: metav1.ObjectMeta{Name: claimsv1.EntryClaimName(obj.EntryKind(), dexAddr, obj.EntryID()), UID: types.UID("claim-" + string(obj.GetUID())),
			Labels: map[string]string{ownership.LabelOwnerUID: string(obj.GetUID())}},
		Spec: claimsv1.DexEntryClaimSpec{EntryKind: obj.EntryKind(), EntryID: obj.EntryID(), DexAddress: dexAddr,
			Owner:    claimsv1.ClaimOwner{Kind: "DexStaticClient", Namespace: obj.GetNamespace(), Name: obj.GetName(), UID: obj.GetUID()},
			Provider: claimsv1.ClaimProvider{Namespace: "platform", Name: "dex"}},
	}
}

func (f *fixture) get(t *testing.T, obj client.Object) {
	t.Helper()
	NewWithT(t).Expect(f.k8s.Get(context.Background(), client.ObjectKeyFromObject(obj), obj)).To(Succeed())
}

func (f *fixture) claim(obj dexv1.DexEntry) (*claimsv1.DexEntryClaim, error) {
	cl := &claimsv1.DexEntryClaim{}
	err := f.k8s.Get(context.Background(), types.NamespacedName{Name: claimsv1.EntryClaimName(obj.EntryKind(), dexAddr, obj.EntryID())}, cl)
	return cl, err
}

// countCreates counts the claims created through the API.
func countCreates(n *int) interceptor.Funcs {
	return interceptor.Funcs{Create: func(ctx context.Context, c client.WithWatch, obj client.Object, opts ...client.CreateOption) error {
		if _, ok := obj.(*claimsv1.DexEntryClaim); ok {
			*n++
		}
		return c.Create(ctx, obj, opts...)
	}}
}

func TestHoldClaimsOnceThenAddsTheFinalizer(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	creates := 0
	obj := staticClient("team-a", "app", "shared")
	f := newFixture(t, countCreates(&creates), obj)
	f.get(t, obj)

	s := &ownership.Scope{Object: obj, Provider: f.provider}
	g.Expect(f.ledger.Check(ctx, s)).To(Succeed())
	g.Expect(s.Held).To(BeNil(), "nobody holds the id yet")
	g.Expect(f.ledger.Hold(ctx, s)).To(Succeed())
	cl, err := f.claim(obj)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(cl.Spec.Owner).To(Equal(claimsv1.ClaimOwner{Kind: "DexStaticClient", Namespace: "team-a", Name: "app", UID: obj.UID}))
	g.Expect(cl.Spec.Provider).To(Equal(claimsv1.ClaimProvider{Namespace: "platform", Name: "dex"}))
	g.Expect(cl.Labels).To(HaveKeyWithValue(ownership.LabelOwnerUID, string(obj.UID)))
	g.Expect(s.Holds()).To(BeTrue())
	cur := &dexv1.DexStaticClient{ObjectMeta: obj.ObjectMeta}
	f.get(t, cur)
	g.Expect(cur.Finalizers).To(ConsistOf(dexv1.ClientFinalizer))

	// The next reconcile finds its claim and creates none.
	s = &ownership.Scope{Object: cur, Provider: f.provider}
	g.Expect(f.ledger.Check(ctx, s)).To(Succeed())
	g.Expect(s.Holds()).To(BeTrue())
	g.Expect(f.ledger.Hold(ctx, s)).To(Succeed())
	g.Expect(creates).To(Equal(1))
}

func TestCheckLosesToTheHolder(t *testing.T) {
	g := NewWithT(t)
	owner := staticClient("team-a", "app", "shared")
	loser := staticClient("team-b", "app", "shared", dexv1.ClientFinalizer)
	f := newFixture(t, interceptor.Funcs{}, owner, loser, claimOf(owner))
	f.get(t, loser)
	loser.Status.ClientID = "shared"

	s := &ownership.Scope{Object: loser, Provider: f.provider}
	err := f.ledger.Check(context.Background(), s)
	var b *outcome.Problem
	g.Expect(errors.As(err, &b)).To(BeTrue(), "a conflict waits for the user: %v", err)
	g.Expect(b.Reason).To(Equal(dexv1.ReasonClientIDConflict))
	g.Expect(b.Message).To(ContainSubstring("owned by DexStaticClient team-a/app"))
	g.Expect(s.Held).To(BeNil())
	g.Expect(loser.Status.ClientID).To(BeEmpty(), "the status forgets the id it lost")
	cur := staticClient("team-b", "app", "")
	f.get(t, cur)
	g.Expect(cur.Finalizers).To(BeEmpty(), "a loser owns nothing to finalize")
}

func TestHoldLosesToAClaimTheCacheHadNotSeen(t *testing.T) {
	g := NewWithT(t)
	owner := staticClient("team-a", "app", "shared")
	late := staticClient("team-b", "app", "shared")
	f := newFixture(t, interceptor.Funcs{}, owner, late, claimOf(owner))
	f.get(t, late)

	// Check saw no claim (held nil), as a cache that lags behind would.
	err := f.ledger.Hold(context.Background(), &ownership.Scope{Object: late, Provider: f.provider})
	var b *outcome.Problem
	g.Expect(errors.As(err, &b)).To(BeTrue(), "%v", err)
	g.Expect(b.Reason).To(Equal(dexv1.ReasonClientIDConflict))
	f.get(t, late)
	g.Expect(late.Finalizers).To(BeEmpty(), "nothing is written for a loser")
}

func TestConfirmForWrite(t *testing.T) {
	for _, tc := range []struct {
		name    string
		claimed bool // the object's claim exists on the API server (the cache did not show it)
		adopt   bool
		want    error
	}{
		{name: "its claim, read from the API server", claimed: true},
		{name: "nobody's entry", want: ownership.ErrForeign},
		{name: "nobody's entry, adopted", adopt: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			obj := staticClient("team-a", "app", "hand-made")
			obj.Spec.AdoptExisting = tc.adopt
			objs := []client.Object{obj}
			if tc.claimed {
				objs = append(objs, claimOf(obj))
			}
			f := newFixture(t, interceptor.Funcs{}, objs...)
			f.get(t, obj)
			s := &ownership.Scope{Object: obj, Provider: f.provider}
			err := f.ledger.ConfirmForWrite(context.Background(), s)
			if tc.want != nil {
				g.Expect(err).To(MatchError(tc.want))
				return
			}
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(s.Holds()).To(Equal(tc.claimed))
		})
	}
}

func TestReleaseDeletesFromDexThenTheClaimThenTheFinalizer(t *testing.T) {
	for _, policy := range []dexv1.DeletionPolicy{dexv1.DeletionPolicyDelete, dexv1.DeletionPolicyOrphan} {
		t.Run(string(policy), func(t *testing.T) {
			g := NewWithT(t)
			ctx := context.Background()
			obj := staticClient("team-a", "app", "app", dexv1.ClientFinalizer)
			obj.Spec.DeletionPolicy = policy
			f := newFixture(t, interceptor.Funcs{}, obj, claimOf(obj))
			f.get(t, obj)

			var steps []string
			unregister := func(_ context.Context, ref dexv1.ObjectRef, addr, id string) error {
				_, err := f.claim(obj)
				g.Expect(err).NotTo(HaveOccurred(), "the claim outlives the entry in Dex")
				steps = append(steps, ref.Namespace+"/"+ref.Name+" "+addr+" "+id)
				return nil
			}
			g.Expect(f.ledger.Release(ctx, &ownership.Scope{Object: obj, Unregister: unregister})).To(Succeed())
			if policy == dexv1.DeletionPolicyOrphan {
				g.Expect(steps).To(BeEmpty(), "the entry stays in Dex")
				g.Expect(f.events.Events).To(Receive(ContainSubstring("Orphaned")))
			} else {
				g.Expect(steps).To(Equal([]string{"platform/dex " + dexAddr + " app"}))
			}
			_, err := f.claim(obj)
			g.Expect(apierrors.IsNotFound(err)).To(BeTrue(), "the claim is released")
			f.get(t, obj)
			g.Expect(obj.Finalizers).To(BeEmpty())
		})
	}
}

func TestReleaseKeepsClaimAndFinalizerWhileDexFails(t *testing.T) {
	g := NewWithT(t)
	obj := staticClient("team-a", "app", "app", dexv1.ClientFinalizer)
	f := newFixture(t, interceptor.Funcs{}, obj, claimOf(obj))
	f.get(t, obj)
	down := errors.New("dex unavailable")
	err := f.ledger.Release(context.Background(), &ownership.Scope{Object: obj, Unregister: func(context.Context, dexv1.ObjectRef, string, string) error { return down }})
	g.Expect(err).To(MatchError(down))
	_, err = f.claim(obj)
	g.Expect(err).NotTo(HaveOccurred())
	f.get(t, obj)
	g.Expect(obj.Finalizers).To(ConsistOf(dexv1.ClientFinalizer))
}

func TestReleaseLeavesAnIDClaimedByAnotherOwnerSince(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	obj := staticClient("team-a", "app", "app", dexv1.ClientFinalizer)
	other := staticClient("team-b", "app", "app")
	stale := claimOf(obj) // what the cache still shows
	f := newFixture(t, interceptor.Funcs{}, obj, other, claimOf(other))
	f.get(t, obj)
	cached := ownership.Ledger{Client: cachedClaims{Client: f.k8s, claims: []claimsv1.DexEntryClaim{*stale}}, API: f.k8s, Recorder: f.events}
	called := false
	err := cached.Release(ctx, &ownership.Scope{Object: obj, Unregister: func(context.Context, dexv1.ObjectRef, string, string) error { called = true; return nil }})
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(called).To(BeFalse(), "the entry is another owner's now")
	_, err = f.claim(other)
	g.Expect(err).NotTo(HaveOccurred())
}

// cachedClaims is a client whose claim lists return claims (a cache lagging behind).
type cachedClaims struct {
	client.Client
	claims []claimsv1.DexEntryClaim
}

func (c cachedClaims) List(ctx context.Context, list client.ObjectList, opts ...client.ListOption) error {
	if l, ok := list.(*claimsv1.DexEntryClaimList); ok {
		l.Items = append([]claimsv1.DexEntryClaim(nil), c.claims...)
		return nil
	}
	return c.Client.List(ctx, list, opts...)
}

func TestSyncPolicyMirrorsTheDeletionPolicy(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	obj := staticClient("team-a", "app", "app", dexv1.ClientFinalizer)
	f := newFixture(t, interceptor.Funcs{}, obj, claimOf(obj))
	f.get(t, obj)
	for _, policy := range []dexv1.DeletionPolicy{dexv1.DeletionPolicyOrphan, dexv1.DeletionPolicyDelete} {
		obj.Spec.DeletionPolicy = policy
		s := &ownership.Scope{Object: obj, Provider: f.provider}
		g.Expect(f.ledger.Check(ctx, s)).To(Succeed())
		g.Expect(f.ledger.SyncPolicy(ctx, s)).To(Succeed())
		cl, err := f.claim(obj)
		g.Expect(err).NotTo(HaveOccurred())
		if policy == dexv1.DeletionPolicyOrphan {
			g.Expect(cl.Annotations).To(HaveKeyWithValue(ownership.AnnotationDeletionPolicy, "Orphan"))
		} else {
			g.Expect(cl.Annotations).NotTo(HaveKey(ownership.AnnotationDeletionPolicy))
		}
	}
}

func TestRevokeGivesTheIDBack(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	obj := staticClient("team-a", "app", "team-ab-app", dexv1.ClientFinalizer)
	f := newFixture(t, interceptor.Funcs{}, obj, claimOf(obj))
	f.get(t, obj)
	obj.Status.ClientID = "team-ab-app"
	var deleted []string
	s := &ownership.Scope{Object: obj, Provider: f.provider, Unregister: func(_ context.Context, _ dexv1.ObjectRef, addr, id string) error {
		deleted = append(deleted, addr+" "+id)
		return nil
	}}
	g.Expect(f.ledger.Check(ctx, s)).To(Succeed())
	g.Expect(f.ledger.Revoke(ctx, s, "namespace team-ab owns it")).To(Succeed())
	g.Expect(deleted).To(Equal([]string{dexAddr + " team-ab-app"}))
	_, err := f.claim(obj)
	g.Expect(apierrors.IsNotFound(err)).To(BeTrue())
	g.Expect(obj.Status.ClientID).To(BeEmpty())
	g.Expect(f.events.Events).To(Receive(And(ContainSubstring("Revoked"), ContainSubstring("namespace team-ab owns it"))))
	f.get(t, obj)
	g.Expect(obj.Finalizers).To(BeEmpty())
}

func TestOwnerAlive(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	alive := staticClient("team-a", "app", "app")
	f := newFixture(t, interceptor.Funcs{}, alive)
	f.get(t, alive)
	ok, err := ownership.OwnerAlive(ctx, f.k8s, claimOf(alive))
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(ok).To(BeTrue())

	recreated := claimOf(alive)
	recreated.Spec.Owner.UID = "uid-of-an-earlier-object"
	ok, err = ownership.OwnerAlive(ctx, f.k8s, recreated)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(ok).To(BeFalse(), "a recreated object is another owner")

	gone := claimOf(staticClient("team-a", "gone", "gone"))
	ok, err = ownership.OwnerAlive(ctx, f.k8s, gone)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(ok).To(BeFalse())
}

// legacyClient is a DexStaticClient of an older version: it registered id, and said so in the
// legacy annotation and its status.
func legacyClient(name, id string, created time.Time) *dexv1.DexStaticClient {
	c := staticClient("team-a", name, id, dexv1.ClientFinalizer)
	c.Annotations = map[string]string{ownership.LegacyAnnotationClient: id}
	c.CreationTimestamp = metav1.NewTime(created)
	c.Status.ClientID = id
	return c
}

func claimsCRD(created time.Time) *apiextensionsv1.CustomResourceDefinition {
	return &apiextensionsv1.CustomResourceDefinition{ObjectMeta: metav1.ObjectMeta{Name: ownership.ClaimsCRDName, CreationTimestamp: metav1.NewTime(created)}}
}

func TestMigrationCarriesLegacyOwnersOverOnly(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	upgrade := time.Date(2025, 1, 1, 12, 0, 0, 0, time.UTC)
	old := legacyClient("old", "old", upgrade.Add(-time.Hour))
	sameSecond := legacyClient("same-second", "same-second", upgrade)
	forged := legacyClient("forged", "forged", upgrade.Add(time.Second)) // created since claims: a forgery
	unconfirmed := legacyClient("unconfirmed", "unconfirmed", upgrade.Add(-time.Hour))
	unconfirmed.Status.ClientID = ""
	otherID := legacyClient("other-id", "mine", upgrade.Add(-time.Hour))
	otherID.Annotations[ownership.LegacyAnnotationClient] = "someone-elses"
	orphanProvider := legacyClient("no-provider", "no-provider", upgrade.Add(-time.Hour))
	orphanProvider.Spec.ProviderRef = dexv1.ObjectRef{Name: "gone", Namespace: "platform"}
	f := newFixture(t, interceptor.Funcs{}, claimsCRD(upgrade), old, sameSecond, forged, unconfirmed, otherID, orphanProvider)

	m := ownership.NewMigration(f.ledger, claimsv1.EntryClient)
	g.Expect(m.Run(ctx)).To(Succeed())
	for _, c := range []*dexv1.DexStaticClient{old, sameSecond} {
		cl, err := f.claim(c)
		g.Expect(err).NotTo(HaveOccurred(), c.Name)
		g.Expect(cl.Spec.Owner.UID).To(Equal(c.UID))
		f.get(t, c)
		g.Expect(c.Annotations).NotTo(HaveKey(ownership.LegacyAnnotationClient), "the annotation is dropped")
		g.Expect(c.Finalizers).To(ConsistOf(dexv1.ClientFinalizer))
	}
	for _, c := range []*dexv1.DexStaticClient{forged, unconfirmed, otherID, orphanProvider} {
		_, err := f.claim(c)
		g.Expect(apierrors.IsNotFound(err)).To(BeTrue(), "%s is nobody's claim", c.Name)
		f.get(t, c)
		g.Expect(c.Annotations).To(HaveKey(ownership.LegacyAnnotationClient), "%s is left as it is", c.Name)
	}

	// A second pass (the next start) changes nothing.
	g.Expect(m.Run(ctx)).To(Succeed())
}

func TestMigrationFinishesAnObjectLeftHalfWay(t *testing.T) {
	g := NewWithT(t)
	upgrade := time.Date(2025, 1, 1, 12, 0, 0, 0, time.UTC)
	c := legacyClient("app", "app", upgrade.Add(-time.Hour))
	f := newFixture(t, interceptor.Funcs{}, claimsCRD(upgrade), c, claimOf(c))
	g.Expect(ownership.NewMigration(f.ledger, claimsv1.EntryClient).Run(context.Background())).To(Succeed())
	f.get(t, c)
	g.Expect(c.Annotations).NotTo(HaveKey(ownership.LegacyAnnotationClient))
}

func TestMigrationLosesToAnEarlierClaim(t *testing.T) {
	g := NewWithT(t)
	upgrade := time.Date(2025, 1, 1, 12, 0, 0, 0, time.UTC)
	c := legacyClient("app", "shared", upgrade.Add(-time.Hour))
	holder := staticClient("team-b", "app", "shared")
	f := newFixture(t, interceptor.Funcs{}, claimsCRD(upgrade), c, holder, claimOf(holder))
	g.Expect(ownership.NewMigration(f.ledger, claimsv1.EntryClient).Run(context.Background())).To(Succeed())
	cl, err := f.claim(c)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(cl.Spec.Owner.UID).To(Equal(holder.UID), "the holder keeps its claim")
	f.get(t, c)
	g.Expect(c.Annotations).To(HaveKey(ownership.LegacyAnnotationClient))
}

func TestMigrationWaitsForTheCRDAndHoldsReconcilesBack(t *testing.T) {
	g := NewWithT(t)
	upgrade := time.Date(2025, 1, 1, 12, 0, 0, 0, time.UTC)
	c := legacyClient("app", "app", upgrade.Add(-time.Hour))
	crdReads := 0
	f := newFixture(t, interceptor.Funcs{Get: func(ctx context.Context, cl client.WithWatch, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
		if _, ok := obj.(*apiextensionsv1.CustomResourceDefinition); ok {
			if crdReads++; crdReads < 2 {
				return apierrors.NewServiceUnavailable("not now")
			}
		}
		return cl.Get(ctx, key, obj, opts...)
	}}, claimsCRD(upgrade), c)
	m := ownership.NewMigration(f.ledger, claimsv1.EntryClient)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- m.Start(ctx) }()
	g.Consistently(m.Done(), 500*time.Millisecond, 50*time.Millisecond).ShouldNot(BeClosed(), "nothing is reconciled while the CRD cannot be read")
	g.Eventually(m.Done(), 10*time.Second, 50*time.Millisecond).Should(BeClosed())
	g.Expect(<-done).To(Succeed())
	_, err := f.claim(c)
	g.Expect(err).NotTo(HaveOccurred())
}

func TestMigrationWithoutLegacyObjectsReadsNoCRD(t *testing.T) {
	g := NewWithT(t)
	f := newFixture(t, interceptor.Funcs{}, staticClient("team-a", "app", "app", dexv1.ClientFinalizer)) // no CRD object at all
	g.Expect(ownership.NewMigration(f.ledger, claimsv1.EntryClient).Run(context.Background())).To(Succeed())
	g.Expect(ownership.NewMigration(f.ledger, claimsv1.EntryConnector).Run(context.Background())).To(Succeed())
}

func TestEntryKindsDescribeThemselves(t *testing.T) {
	g := NewWithT(t)
	c := staticClient("team-a", "app", "")
	c.Spec.AdoptExisting = true
	g.Expect(c.EntryID()).To(Equal("team-a-app"))
	g.Expect(c.EntryKind()).To(Equal(claimsv1.EntryClient))
	g.Expect(c.AdoptsExisting()).To(BeTrue())
	g.Expect(c.Registered()).To(BeFalse())
	c.Status.ClientID = "team-a-app"
	g.Expect(c.Registered()).To(BeTrue())

	conn := &dexv1.DexConnector{Spec: dexv1.DexConnectorSpec{ConnectorID: "github", DeletionPolicy: dexv1.DeletionPolicyOrphan}}
	g.Expect(conn.EntryKind()).To(Equal(claimsv1.EntryConnector))
	g.Expect(conn.EntryFinalizer()).To(Equal(dexv1.ConnectorFinalizer))
	g.Expect(conn.Orphans()).To(BeTrue())
	g.Expect(conn.AdoptsExisting()).To(BeFalse())
	g.Expect(conn.Registered()).To(BeFalse())
	meta.SetStatusCondition(&conn.Status.Conditions, metav1.Condition{Type: dexv1.ConditionRegistered, Status: metav1.ConditionTrue, Reason: dexv1.ReasonReconciled})
	g.Expect(conn.Registered()).To(BeTrue())
}

// The id indexes hold a bucket of the id, not the id: ListByID (and so Peers) returns only the
// objects with the id, whatever else shares its bucket.
func TestListByIDKeepsOnlyTheID(t *testing.T) {
	g := NewWithT(t)
	id := "team-a-portal"
	other := ""
	for i := 0; other == ""; i++ {
		if cand := fmt.Sprintf("team-b-app-%d", i); ownership.IDBucket(cand) == ownership.IDBucket(id) {
			other = cand
		}
	}
	mine, theirs := staticClient("team-a", "portal", id), staticClient("team-b", "app", other)
	f := newFixture(t, interceptor.Funcs{}, mine, theirs)
	withID, err := ownership.ListByID(context.Background(), f.k8s, claimsv1.EntryClient, id)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(withID).To(HaveLen(1))
	g.Expect(withID[0].GetName()).To(Equal("portal"))
	peers, err := f.ledger.Peers(context.Background(), claimsv1.EntryClient, []string{"platform/dex"}, other)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(peers).To(HaveLen(1))
	g.Expect(peers[0].GetName()).To(Equal("app"))
}

// A provider whose spec.dex.grpcAddress is changed to another spelling of the same Dex leaves the
// claims made through it under the old address. An entry claimed there is still its owner's:
// another tenant's object that asks to adopt the id gets a conflict naming the owner, not the
// entry. The owner itself may adopt its own.
func TestAdoptionRespectsAClaimUnderAnotherAddress(t *testing.T) {
	for _, tc := range []struct {
		name      string
		ownClaim  bool
		wantAdopt bool
	}{
		{name: "another tenant's claim under the old address"},
		{name: "its own claim under the old address", ownClaim: true, wantAdopt: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			owner := staticClient("team-a", "app", "portal")
			adopter := staticClient("mallory", "grab", "portal")
			adopter.Spec.AdoptExisting = true
			holder := owner
			if tc.ownClaim {
				holder = adopter
			}
			old := claimOf(holder)
			old.Name = claimsv1.EntryClaimName(claimsv1.EntryClient, "dex-old-spelling.platform:5557", "portal")
			old.Spec.DexAddress = "dex-old-spelling.platform:5557"
			f := newFixture(t, interceptor.Funcs{}, owner, adopter, old)
			f.get(t, adopter)
			s := &ownership.Scope{Object: adopter, Provider: f.provider}
			err := f.ledger.ConfirmForWrite(context.Background(), s)
			if tc.wantAdopt {
				g.Expect(err).NotTo(HaveOccurred())
				return
			}
			var stalled *outcome.Stalled
			g.Expect(errors.As(err, &stalled)).To(BeTrue(), "%v", err)
			g.Expect(stalled.Reason).To(Equal(dexv1.ReasonClientIDConflict))
			g.Expect(stalled.Message).To(ContainSubstring("team-a/app"))
		})
	}
}

// A legacy owner whose provider is missing when the manager starts is carried over once the
// provider is back, without a restart; the kind's reconciles do not wait for it meanwhile.
func TestMigrationCarriesAnObjectOverWhenItsProviderComesBack(t *testing.T) {
	g := NewWithT(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	upgrade := time.Date(2025, 1, 1, 12, 0, 0, 0, time.UTC)
	c := legacyClient("app", "app", upgrade.Add(-time.Hour))
	c.Spec.ProviderRef = dexv1.ObjectRef{Name: "later", Namespace: "platform"}
	f := newFixture(t, interceptor.Funcs{}, claimsCRD(upgrade), c)
	m := ownership.NewMigration(f.ledger, claimsv1.EntryClient).WithRecheck(20 * time.Millisecond)
	stopped := make(chan error, 1)
	go func() { stopped <- m.Start(ctx) }()
	g.Eventually(m.Done(), time.Second).Should(BeClosed(), "reconciles do not wait for the missing provider")
	g.Consistently(func() bool { _, err := f.claim(c); return apierrors.IsNotFound(err) }, 100*time.Millisecond, 10*time.Millisecond).Should(BeTrue())

	later := f.provider.DeepCopy()
	later.Name, later.UID, later.ResourceVersion = "later", "uid-later", ""
	g.Expect(f.k8s.Create(ctx, later)).To(Succeed())
	g.Eventually(func() error { _, err := f.claim(c); return err }, 5*time.Second, 10*time.Millisecond).Should(Succeed())
	g.Eventually(stopped, 5*time.Second).Should(Receive(BeNil()), "nothing left to carry over: the migration ends")
	f.get(t, c)
	g.Expect(c.Annotations).NotTo(HaveKey(ownership.LegacyAnnotationClient))
}
