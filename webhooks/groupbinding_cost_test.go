package webhooks_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	. "github.com/onsi/gomega"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	dexv1 "dexterity.dev/dexterity/api/v1alpha1"
)

// TestGroupBindingCostBound: through the API server, the webhook refuses expressions over the
// cost bound with a field.Invalid on spec.expression that names the part, its position and why,
// on create and on update, and admits the documented expressions.
func TestGroupBindingCostBound(t *testing.T) {
	ctx := context.Background()
	ns := namespace(t, nil)
	gb := func(name, expr string) *dexv1.GroupBinding {
		return &dexv1.GroupBinding{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns}, Spec: dexv1.GroupBindingSpec{Expression: expr}}
	}
	attacks := []struct {
		name, expr string
		want       []string
	}{
		{"nested-all-repeat", `all(split(repeat("a,", 100000), ","), {all(split(repeat("a,", 100000), ","), {# != ""})})`,
			[]string{"repeat() at 1:11", "builds a string of any length"}},
		{"nested-groups", `all(groups, {all(groups, {# != ""})})`, []string{"all() at 1:1", "loop inside a loop"}},
		{"reduce-doubling", `reduce(1..30, #acc + #acc, "a") != ""`, []string{"reduce() at 1:1", "#acc", "double"}},
		{"huge-range", `len(1..100000000) > 0`, []string{"range 1..100000000 at 1:6", "more than the 10000 allowed"}},
		{"deep-nesting", `any([1], any([1], any([1], any([1], # == 1))))`, []string{"any() at 1:28", "nested 4 deep"}},
		{"huge-node-count", `len([` + strings.Repeat(`0,`, 1500) + `0]) > 0`, []string{"the expression at 1:", "more than 1024 nodes"}},
		{"many-membership-tests", strings.Repeat(`"a" in groups || `, 240) + `true`,
			[]string{`operator "||" at 1:`, "more than the 50 ms allowed", "split it into several GroupBindings"}},
	}
	for _, tc := range attacks {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			err := k8s.Create(ctx, gb(tc.name, tc.expr))
			g.Expect(apierrors.IsForbidden(err) || apierrors.IsInvalid(err)).To(BeTrue(), "got %v", err)
			g.Expect(err.Error()).To(ContainSubstring(`spec.expression: Invalid value: `))
			g.Expect(err.Error()).To(ContainSubstring("is over the cost bound: "))
			for _, w := range tc.want {
				g.Expect(err.Error()).To(ContainSubstring(w))
			}
			g.Expect(err.Error()).To(ContainSubstring("loop over groups once"))
			var status apierrors.APIStatus
			g.Expect(errors.As(err, &status)).To(BeTrue())
			// The refusal is the webhook's, not the CRD's (it validates length only).
			g.Expect(status.Status().Message).To(ContainSubstring("vgroupbinding.dexterity.dev"))
		})
	}

	g := NewWithT(t)
	documented := []string{
		`"client:ci-pipeline" in groups`,
		`"team-a" in groups || "client:team-a-ci-pipeline" in groups`,
		`filter(groups, {# startsWith "team-a:"}) != []`,
		`filter(groups, {# startsWith("team-a:")}) != []`,
		`any(groups, # == "x")`,
		`"a" in groups || "b" in groups`,
	}
	for i, expr := range documented {
		g.Expect(k8s.Create(ctx, gb("doc-"+string(rune('a'+i)), expr))).To(Succeed(), expr)
	}
	// An update to an expression over the bound is refused the same way.
	b := &dexv1.GroupBinding{}
	g.Expect(k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: "doc-a"}, b)).To(Succeed())
	b.Spec.Expression = `any(groups, # in groups)`
	err := k8s.Update(ctx, b)
	g.Expect(err).To(HaveOccurred())
	g.Expect(err.Error()).To(And(ContainSubstring("spec.expression: Invalid value: "), ContainSubstring("any() at 1:1"), ContainSubstring("more than the 50 ms allowed")))
}
