package authz

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/expr-lang/expr"
	"github.com/expr-lang/expr/vm"
)

// benchGroups are n groups like a token's ("team-<i>:dev").
func benchGroups(n int) []string {
	g := make([]string, n)
	for i := range g {
		g[i] = fmt.Sprintf("team-%d:dev", i)
	}
	return g
}

// benchEvaluate is Evaluate with a deadline a loaded machine does not reach: the benchmark
// measures the cost of evaluation, not the deadline.
func benchEvaluate(p *vm.Program, groups []string) (bool, error) {
	e := Evaluation{Deadline: time.Minute}
	return e.Evaluate(p, groups)
}

// BenchmarkEvaluate measures the documented expressions for a typical token (3 groups), a large
// one (64) and the largest (10,000): "bound" is Evaluate, "before" the evaluation before the cost
// bound (expr's program run on a pooled VM, no deadline), for comparison in the same process.
func BenchmarkEvaluate(b *testing.B) {
	exprs := map[string]string{
		"in":     `"client:ci-pipeline" in groups`,
		"or":     `"team-a" in groups || "client:team-a-ci-pipeline" in groups`,
		"filter": `filter(groups, {# startsWith "team-a:"}) != []`,
		"any":    `any(groups, # == "platform") && not ("banned" in groups)`,
	}
	before := sync.Pool{New: func() any { return &vm.VM{} }}
	for _, name := range []string{"in", "or", "filter", "any"} {
		p, err := Compile(exprs[name])
		if err != nil {
			b.Fatal(err)
		}
		old, err := expr.Compile(exprs[name], expr.Env(Env{}), expr.AsBool())
		if err != nil {
			b.Fatal(err)
		}
		for _, n := range []int{3, 64, 10000} {
			groups := benchGroups(n)
			b.Run(fmt.Sprintf("%s/groups=%d/before", name, n), func(b *testing.B) {
				b.ReportAllocs()
				for i := 0; i < b.N; i++ {
					m := before.Get().(*vm.VM)
					if _, err := m.Run(old, Env{Groups: groups}); err != nil {
						b.Fatal(err)
					}
					before.Put(m)
				}
			})
			b.Run(fmt.Sprintf("%s/groups=%d/bound", name, n), func(b *testing.B) {
				b.ReportAllocs()
				for i := 0; i < b.N; i++ {
					if _, err := benchEvaluate(p, groups); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

// BenchmarkCompile measures compiling (per generation, never per request) a documented
// expression and a refused one.
func BenchmarkCompile(b *testing.B) {
	for name, s := range map[string]string{
		"filter":  `filter(groups, {# startsWith "team-a:"}) != []`,
		"refused": `all(split(repeat("a,", 100000), ","), {all(split(repeat("a,", 100000), ","), {# != ""})})`,
	} {
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			for i := 0; i < b.N; i++ {
				_, _ = Compile(s)
			}
		})
	}
}
