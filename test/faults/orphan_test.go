package faults

import (
	"context"
	"testing"
	"time"

	api "github.com/dexidp/dex/api/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	claimsv1 "dexterity.dev/dexterity/api/claims/v1alpha1"
	dexv1 "dexterity.dev/dexterity/api/v1alpha1"
	"dexterity.dev/dexterity/controllers"
)

// deletionPolicy through a manager crash: objects deleted while the manager is down, one with
// Orphan and one with Delete, and an Orphan object whose finalizer is removed by hand meanwhile
// (it vanishes; only its claim is left). Once the manager is back, the Orphan entries are in Dex
// with their claims released, and the Delete entry is gone.
func TestDeletionPolicyThroughACrash(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "orphan-"}}
	g.Expect(k8s.Create(ctx, ns)).To(Succeed())
	g.Expect(k8s.Create(ctx, &dexv1.OIDCProvider{
		ObjectMeta: metav1.ObjectMeta{Name: "dex", Namespace: ns.Name},
		Spec: dexv1.OIDCProviderSpec{IssuerURL: dex.IssuerURL(), ClientID: "registry",
			Dex: &dexv1.DexAdminSpec{GRPCAddress: dex.GRPCAddress(), Insecure: true}},
	})).To(Succeed())
	g.Expect(mgr.waitReady()).To(Succeed())

	keep, drop, vanish := newClient(ns.Name, "keep", true), newClient(ns.Name, "drop", false), newClient(ns.Name, "vanish", false)
	keep.Spec.DeletionPolicy, vanish.Spec.DeletionPolicy = dexv1.DeletionPolicyOrphan, dexv1.DeletionPolicyOrphan
	conn := newConnector(ns.Name, "kconn")
	conn.Spec.DeletionPolicy = dexv1.DeletionPolicyOrphan
	objs := []client.Object{keep, drop, vanish, conn}
	for _, o := range objs {
		g.Expect(k8s.Create(ctx, o)).To(Succeed())
	}
	ready := func(o client.Object) func(Gomega) {
		return func(g Gomega) {
			g.Expect(k8s.Get(ctx, client.ObjectKeyFromObject(o), o)).To(Succeed())
			var conds []metav1.Condition
			switch x := o.(type) {
			case *dexv1.DexStaticClient:
				conds = x.Status.Conditions
			case *dexv1.DexConnector:
				conds = x.Status.Conditions
			}
			g.Expect(meta.IsStatusConditionTrue(conds, dexv1.ConditionReady)).To(BeTrue())
		}
	}
	for _, o := range objs {
		g.Eventually(ready(o), time.Minute, 100*time.Millisecond).Should(Succeed())
	}
	// The Orphan policy is on the claims (what is left when an owner vanishes).
	g.Eventually(func(g Gomega) string {
		cl := &claimsv1.DexEntryClaim{}
		g.Expect(k8s.Get(ctx, client.ObjectKey{Name: claimsv1.EntryClaimName(claimsv1.EntryClient, dex.GRPCAddress(), vanish.EffectiveClientID())}, cl)).To(Succeed())
		return cl.Annotations[controllers.AnnotationClaimDeletionPolicy]
	}, time.Minute, 100*time.Millisecond).Should(Equal("Orphan"))

	mgr.kill()
	for _, o := range objs {
		g.Expect(k8s.Delete(ctx, o)).To(Succeed())
	}
	// vanish loses its finalizer by hand: gone without the operator seeing its deletion.
	g.Expect(k8s.Get(ctx, client.ObjectKeyFromObject(vanish), vanish)).To(Succeed())
	orig := vanish.DeepCopy()
	vanish.Finalizers = nil
	g.Expect(k8s.Patch(ctx, vanish, client.MergeFrom(orig))).To(Succeed())
	g.Expect(mgr.start()).To(Succeed())

	gone := func(o client.Object) func() bool {
		return func() bool { return apierrors.IsNotFound(k8s.Get(ctx, client.ObjectKeyFromObject(o), o)) }
	}
	for _, o := range objs {
		g.Eventually(gone(o), time.Minute, 100*time.Millisecond).Should(BeTrue(), "%s deleted", o.GetName())
	}
	claimGone := func(kind claimsv1.EntryKind, id string) func() bool {
		return func() bool {
			return apierrors.IsNotFound(k8s.Get(ctx, client.ObjectKey{Name: claimsv1.EntryClaimName(kind, dex.GRPCAddress(), id)}, &claimsv1.DexEntryClaim{}))
		}
	}
	for _, c := range []*dexv1.DexStaticClient{keep, drop, vanish} {
		g.Eventually(claimGone(claimsv1.EntryClient, c.EffectiveClientID()), time.Minute, 100*time.Millisecond).Should(BeTrue(), "claim of %s released", c.Name)
	}
	g.Eventually(claimGone(claimsv1.EntryConnector, conn.Spec.ConnectorID), time.Minute, 100*time.Millisecond).Should(BeTrue())

	inDex := func(id string) bool {
		_, err := dapi.GetClient(ctx, &api.GetClientReq{Id: id})
		return err == nil
	}
	g.Expect(inDex(keep.EffectiveClientID())).To(BeTrue(), "Orphan: the client stays in Dex")
	g.Expect(inDex(vanish.EffectiveClientID())).To(BeTrue(), "Orphan, owner vanished: the client stays in Dex")
	g.Eventually(func() bool { return inDex(drop.EffectiveClientID()) }, time.Minute, 100*time.Millisecond).Should(BeFalse(), "Delete: the client goes")
	conns, err := dapi.ListConnectors(ctx, &api.ListConnectorReq{})
	g.Expect(err).NotTo(HaveOccurred())
	var ids []string
	for _, k := range conns.GetConnectors() {
		ids = append(ids, k.GetId())
	}
	g.Expect(ids).To(ContainElement(conn.Spec.ConnectorID), "Orphan: the connector stays in Dex")
	// Clean up what this test left in the shared Dex.
	for _, id := range []string{keep.EffectiveClientID(), vanish.EffectiveClientID()} {
		_, _ = dapi.DeleteClient(ctx, &api.DeleteClientReq{Id: id})
	}
	_, _ = dapi.DeleteConnector(ctx, &api.DeleteConnectorReq{Id: conn.Spec.ConnectorID})
}
