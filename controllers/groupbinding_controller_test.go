package controllers_test

import (
	"context"
	"strings"
	"testing"

	. "github.com/onsi/gomega"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	dexv1 "dexterity.dev/dexterity/api/v1alpha1"
)

// groupBindingReady returns a func for Eventually that yields a GroupBinding's Ready condition
// for its current generation.
func groupBindingReady(key client.ObjectKey) func(g Gomega) metav1.Condition {
	return func(g Gomega) metav1.Condition {
		b := &dexv1.GroupBinding{}
		g.Expect(k8s.Get(context.Background(), key, b)).To(Succeed())
		g.Expect(b.Status.ObservedGeneration).To(Equal(b.Generation))
		c := meta.FindStatusCondition(b.Status.Conditions, dexv1.ConditionReady)
		g.Expect(c).NotTo(BeNil())
		return *c
	}
}

func TestGroupBindingStatus(t *testing.T) {
	ctx := context.Background()
	ns := newNamespace(t)
	g := NewWithT(t)
	good := &dexv1.GroupBinding{ObjectMeta: metav1.ObjectMeta{Name: "good", Namespace: ns}, Spec: dexv1.GroupBindingSpec{Expression: `"client:ci" in groups`}}
	bad := &dexv1.GroupBinding{ObjectMeta: metav1.ObjectMeta{Name: "bad", Namespace: ns}, Spec: dexv1.GroupBindingSpec{Expression: `groups contains`}}
	g.Expect(k8s.Create(ctx, good)).To(Succeed())
	g.Expect(k8s.Create(ctx, bad)).To(Succeed()) // no webhook in this suite: the controller reports it
	g.Eventually(groupBindingReady(client.ObjectKeyFromObject(good)), waitTimeout).Should(HaveField("Status", metav1.ConditionTrue))
	g.Eventually(groupBindingReady(client.ObjectKeyFromObject(bad)), waitTimeout).Should(And(
		reason(dexv1.ReasonCompileError), HaveField("Message", ContainSubstring("(1:"))))
}

// TestGroupBindingTooCostly: expressions over the cost bound, stored while webhooks are off (this
// suite has none), are reported Ready=False with reason ExpressionTooCostly and a message naming
// the part, its position and why; fixing the expression makes the binding Ready.
func TestGroupBindingTooCostly(t *testing.T) {
	ctx := context.Background()
	ns := newNamespace(t)
	cases := []struct {
		name, expr string
		want       []string
	}{
		{"nested-all-repeat", `all(split(repeat("a,", 100000), ","), {all(split(repeat("a,", 100000), ","), {# != ""})})`,
			[]string{"repeat() at 1:11", "any length"}},
		{"nested-groups", `all(groups, {all(groups, {# != ""})})`, []string{"all() at 1:1", "loop inside a loop"}},
		{"reduce-doubling", `reduce(1..30, #acc + #acc, "a") != ""`, []string{"reduce() at 1:1", "#acc"}},
		{"huge-range", `5 in 1..100000000`, []string{"range 1..100000000 at 1:7", "more than the 10000 allowed"}},
		{"huge-node-count", `len([` + strings.Repeat(`0,`, 1500) + `0]) > 0`, []string{"more than 1024 nodes"}},
	}
	g := NewWithT(t)
	for _, tc := range cases {
		b := &dexv1.GroupBinding{ObjectMeta: metav1.ObjectMeta{Name: tc.name, Namespace: ns}, Spec: dexv1.GroupBindingSpec{Expression: tc.expr}}
		g.Expect(k8s.Create(ctx, b)).To(Succeed(), tc.name)
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			key := client.ObjectKey{Namespace: ns, Name: tc.name}
			matchers := []OmegaMatcher{reason(dexv1.ReasonExpressionTooCostly),
				HaveField("Message", ContainSubstring("spec.expression is over the cost bound: "))}
			for _, w := range tc.want {
				matchers = append(matchers, HaveField("Message", ContainSubstring(w)))
			}
			g.Eventually(groupBindingReady(key), waitTimeout).Should(And(matchers...))
		})
	}
	// Fixed: Ready for the new generation.
	b := &dexv1.GroupBinding{}
	key := client.ObjectKey{Namespace: ns, Name: "nested-groups"}
	g.Expect(k8s.Get(ctx, key, b)).To(Succeed())
	b.Spec.Expression = `any(groups, # startsWith "team-a:")`
	g.Expect(k8s.Update(ctx, b)).To(Succeed())
	g.Eventually(groupBindingReady(key), waitTimeout).Should(And(
		HaveField("Status", metav1.ConditionTrue), HaveField("Reason", dexv1.ReasonReconciled)))
}
