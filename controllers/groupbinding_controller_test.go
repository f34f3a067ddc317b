package controllers_test

import (
	"context"
	"testing"

	. "github.com/onsi/gomega"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	dexv1 "dexterity.dev/dexterity/api/v1alpha1"
)

func TestGroupBindingStatus(t *testing.T) {
	ctx := context.Background()
	ns := newNamespace(t)
	ready := func(key client.ObjectKey) func(g Gomega) metav1.Condition {
		return func(g Gomega) metav1.Condition {
			b := &dexv1.GroupBinding{}
			g.Expect(k8s.Get(ctx, key, b)).To(Succeed())
			g.Expect(b.Status.ObservedGeneration).To(Equal(b.Generation))
			c := meta.FindStatusCondition(b.Status.Conditions, dexv1.ConditionReady)
			g.Expect(c).NotTo(BeNil())
			return *c
		}
	}
	g := NewWithT(t)
	good := &dexv1.GroupBinding{ObjectMeta: metav1.ObjectMeta{Name: "good", Namespace: ns}, Spec: dexv1.GroupBindingSpec{Expression: `"client:ci" in groups`}}
	bad := &dexv1.GroupBinding{ObjectMeta: metav1.ObjectMeta{Name: "bad", Namespace: ns}, Spec: dexv1.GroupBindingSpec{Expression: `groups contains`}}
	g.Expect(k8s.Create(ctx, good)).To(Succeed())
	g.Expect(k8s.Create(ctx, bad)).To(Succeed()) // no webhook in this suite: the controller reports it
	g.Eventually(ready(client.ObjectKeyFromObject(good)), waitTimeout).Should(HaveField("Status", metav1.ConditionTrue))
	g.Eventually(ready(client.ObjectKeyFromObject(bad)), waitTimeout).Should(And(
		reason(dexv1.ReasonCompileError), HaveField("Message", ContainSubstring("(1:"))))
}
