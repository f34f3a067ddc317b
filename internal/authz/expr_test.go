package authz

import (
	"testing"
	"time"

	. "github.com/onsi/gomega"
)

func TestCompileAndEvaluate(t *testing.T) {
	cases := []struct {
		expr    string
		groups  []string
		want    bool
		compile string // substring of the compile error; "" = compiles
	}{
		{`"client:ci-pipeline" in groups`, []string{"client:ci-pipeline"}, true, ""},
		{`"client:ci-pipeline" in groups`, []string{"team-a"}, false, ""},
		{`filter(groups, {# startsWith "team-a:"}) != []`, []string{"team-a:dev"}, true, ""},
		{`filter(groups, {# startsWith "team-a:"}) != []`, []string{"team-b:dev"}, false, ""},
		{`any(groups, # == "platform") && not ("banned" in groups)`, []string{"platform"}, true, ""},
		{`groups contains "x"`, nil, false, "1:8"},
		{`len(groups)`, nil, false, "boolean"},
		{`unknownVar == 1`, nil, false, "unknownVar"},
	}
	for _, tc := range cases {
		t.Run(tc.expr, func(t *testing.T) {
			g := NewWithT(t)
			p, err := Compile(tc.expr)
			if tc.compile != "" {
				g.Expect(err).To(MatchError(ContainSubstring(tc.compile)))
				return
			}
			g.Expect(err).NotTo(HaveOccurred())
			got, err := Evaluate(p, tc.groups)
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(got).To(Equal(tc.want))
		})
	}
}

func FuzzCompile(f *testing.F) {
	for _, s := range []string{`"a" in groups`, `filter(groups, {# startsWith "x"}) != []`, `groups contains`, `len(groups) > 1`, `true`, `(`,
		`all(split(repeat("a,", 100000), ","), {all(split(repeat("a,", 100000), ","), {# != ""})})`,
		`reduce(1..30, #acc + #acc, "a") != ""`, `any(map(groups, split(#, ":")), {"a" in #})`, `let x = 1..3; any(x, # > 2)`,
		`sortBy(groups, {len(#)}, "desc")[0] == "a"`, `groups?.[0] ?? "x" == "a"`, `any(groups, {#index > 1 && # == "a"})`} {
		f.Add(s)
	}
	groupSets := [][]string{nil, {"a", "team-a:dev", "client:ci"}, benchGroups(100)}
	f.Fuzz(func(t *testing.T, s string) {
		p, err := Compile(s)
		if err != nil {
			return
		}
		// Whatever compiles must evaluate to a boolean or fail cleanly, never panic, and the
		// program with checkpoints must decide as the plain one.
		for _, groups := range groupSets {
			want, wantErr := runPlain(metaOf(p), groups)
			m := machines.Get().(*machine)
			m.clock = clock{limit: time.Minute}
			m.env.Groups = groups
			out, err := m.vm.Run(p, &m.env)
			machines.Put(m)
			if (err != nil) != (wantErr != nil) || (err == nil && out != want) {
				t.Fatalf("%q over %d groups: with checkpoints %v, %v; plain %v, %v", s, len(groups), out, err, want, wantErr)
			}
			_, _ = Evaluate(p, groups)
		}
	})
}
