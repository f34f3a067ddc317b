package authz

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	dto "github.com/prometheus/client_model/go"
)

// TestAttacksAreRefusedAtCompile: expressions that could hold a request or grow memory without
// limit are refused, naming the part, its position and why, without being run.
func TestAttacksAreRefusedAtCompile(t *testing.T) {
	cases := []struct {
		name, expr string
		want       []string // substrings of the error
	}{
		{"nested all over split(repeat)", `all(split(repeat("a,", 100000), ","), {all(split(repeat("a,", 100000), ","), {# != ""})})`,
			[]string{"repeat() at 1:11", "any length"}},
		{"nested loops over a split of all groups", `all(split(join(groups), ","), {all(split(join(groups), ","), {# != ""})})`,
			[]string{"split() at 1:5", "list of up to 1048577 elements, more than the 100000 allowed"}},
		{"nested loops over groups", `all(groups, {all(groups, {# != ""})})`,
			[]string{"all() at 1:1", "10000 times", "loop inside a loop"}},
		{"nested any with a membership test", `any(groups, # in groups)`,
			[]string{"any() at 1:1", "more than the 50 ms allowed"}},
		{"reduce doubling a string", `reduce(1..30, #acc + #acc, "a") != ""`,
			[]string{"reduce() at 1:1", "#acc", "double"}},
		{"reduce doubling a list", `len(reduce(1..30, concat(#acc, #acc), [1])) > 0`,
			[]string{"reduce() at 1:5", "#acc"}},
		{"reduce concatenating groups", `reduce(groups, #acc + #, "") contains "x"`,
			[]string{"reduce() at 1:1", "#acc"}},
		{"huge range", `len(1..100000000) > 0`,
			[]string{"range 1..100000000 at 1:6", "100000000 elements", "more than the 10000"}},
		{"huge range in a membership test", `5 in 1..100000000`,
			[]string{"range 1..100000000 at 1:7"}},
		{"range with a bound from the input", `any(1..len(groups), # > 3)`,
			[]string{"range 1..len(groups) at 1:6", "not constant"}},
		{"closures nested too deep", `any([1], any([1], any([1], any([1], # == 1))))`,
			[]string{"any() at 1:28", "nested 4 deep"}},
		{"huge node count", `len([` + strings.Repeat(`0,`, 1500) + `0]) > 0`,
			[]string{"the expression at 1:", "more than 1024 nodes"}},
		{"many membership tests", strings.Repeat(`"a" in groups || `, 240) + `true`,
			[]string{`operator "||" at 1:`, "more than the 50 ms allowed", "split it into several GroupBindings"}},
		{"string concatenation in a loop", `map(groups, # + # + # + # + # + # + # + #) != []`,
			[]string{"map() at 1:1", "bytes, more than the 33554432 allowed"}},
		{"string growth by replace", `replace(replace(replace(join(groups), "", "xx"), "", "xx"), "", "xx") == ""`,
			[]string{"replace() at 1:17", "builds a string of up to 3145730 bytes"}},
		{"quadratic builtin", `uniq(groups) != []`,
			[]string{"uniq() at 1:1", "in one step"}},
		{"regular expression compiled per evaluation", `any(groups, # matches groups[0])`,
			[]string{`operator "matches" at 1:15`, "not a constant string"}},
		{"time zone data per evaluation", `date("2030-01-01", "2006-01-02", "Europe/Berlin") > now()`,
			[]string{"date() at 1:1", "time zone"}},
		{"JSON", `fromJSON(groups[0]) != nil`, []string{"fromJSON() at 1:1", "not supported"}},
		{"$env", `$env.groups != nil`, []string{"$env at 1:", "write groups"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			start := time.Now()
			_, err := Compile(tc.expr)
			g.Expect(time.Since(start)).To(BeNumerically("<", time.Second), "refusing must not run the expression")
			g.Expect(err).To(HaveOccurred())
			g.Expect(IsTooCostly(err)).To(BeTrue(), "want a *CostError, got %v", err)
			g.Expect(err.Error()).To(HavePrefix("is over the cost bound: "))
			for _, w := range tc.want {
				g.Expect(err.Error()).To(ContainSubstring(w))
			}
			var ce *CostError
			g.Expect(errors.As(err, &ce)).To(BeTrue())
			g.Expect(ce.Part).NotTo(BeEmpty())
			g.Expect(ce.Reason).NotTo(BeEmpty())
			g.Expect(ce.Line).To(Equal(1))
		})
	}
}

// documented are the expressions the docs, samples and tests show, with groups that make them
// true and false.
var documented = []struct {
	expr        string
	yes, no     []string
	compileOnly bool
}{
	{expr: `"client:ci-pipeline" in groups`, yes: []string{"client:ci-pipeline"}, no: []string{"team-a"}},
	{expr: `"team-a" in groups || "client:team-a-ci-pipeline" in groups`, yes: []string{"x", "client:team-a-ci-pipeline"}, no: []string{"team-b"}},
	{expr: `"a" in groups || "b" in groups`, yes: []string{"b"}, no: []string{"c"}},
	{expr: `filter(groups, {# startsWith "team-a:"}) != []`, yes: []string{"team-b:x", "team-a:dev"}, no: []string{"team-b:dev"}},
	{expr: `filter(groups, {# startsWith("team-a:")}) != []`, yes: []string{"team-a:dev"}, no: []string{"team-a"}},
	{expr: `any(groups, # == "x")`, yes: []string{"x"}, no: []string{"y"}},
	{expr: `any(groups, # == "platform") && not ("banned" in groups)`, yes: []string{"platform"}, no: []string{"platform", "banned"}},
	{expr: `"oidc:team-a" in groups`, yes: []string{"oidc:team-a"}, no: []string{"team-a"}},
	{expr: `len(groups) > 0`, yes: []string{"a"}, no: nil},
	{expr: `"nobody-1" in groups || filter(groups, {# startsWith "other-1:"}) != []`, yes: []string{"other-1:x"}, no: []string{"other-2:x"}},
	{expr: `count(groups, # startsWith "team-") >= 2`, yes: []string{"team-a", "team-b"}, no: []string{"team-a"}},
	{expr: `all(groups, not (# startsWith "banned:"))`, yes: []string{"a"}, no: []string{"a", "banned:x"}},
	{expr: `any(groups, lower(#) == "team-a")`, yes: []string{"Team-A"}, no: []string{"team-b"}},
	{expr: `any(groups, # in ["a", "b", "c"])`, yes: []string{"z", "c"}, no: []string{"d"}},
	{expr: `"team-a" in map(groups, split(#, ":")[0])`, yes: []string{"team-a:dev"}, no: []string{"team-b:dev"}},
	{expr: `reduce(groups, #acc || # == "x", false)`, yes: []string{"a", "x"}, no: []string{"a"}},
	{expr: `let g = map(groups, lower(#)); "x" in g || "y" in g`, yes: []string{"Y"}, no: []string{"z"}},
	{expr: `join(groups, ",") contains "team-a"`, yes: []string{"team-a"}, no: []string{"team-b"}},
	{expr: `now() < date("2999-01-01")`, yes: []string{}, no: nil, compileOnly: true},
}

func TestDocumentedExpressionsCompileAndEvaluate(t *testing.T) {
	// Padding makes the same decision over a large token (instrumented program).
	pad := benchGroups(5000)
	for _, tc := range documented {
		t.Run(tc.expr, func(t *testing.T) {
			g := NewWithT(t)
			p, err := Compile(tc.expr)
			g.Expect(err).NotTo(HaveOccurred())
			if tc.compileOnly {
				return
			}
			for _, c := range []struct {
				groups []string
				want   bool
			}{{tc.yes, true}, {tc.no, false}} {
				if c.groups == nil && c.want {
					continue
				}
				got, err := Evaluate(p, c.groups)
				g.Expect(err).NotTo(HaveOccurred())
				g.Expect(got).To(Equal(c.want), "groups %v", c.groups)
				// The same over a large token, through the program with checkpoints (a token's
				// padding groups never match the expressions above, except len and all).
				if strings.Contains(tc.expr, "len(") || strings.Contains(tc.expr, "all(") || strings.Contains(tc.expr, "count(") {
					continue
				}
				e := Evaluation{Deadline: time.Minute}
				got, err = e.Evaluate(p, append(append([]string{}, pad...), c.groups...))
				g.Expect(err).NotTo(HaveOccurred())
				g.Expect(got).To(Equal(c.want), "groups %v after 5000 others", c.groups)
			}
		})
	}
}

func deadlineCount(t *testing.T) float64 {
	t.Helper()
	var m dto.Metric
	if err := evaluationDeadlineTotal.Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetCounter().GetValue()
}

// slack is what a loaded test machine may add to a deadline before the VM notices it.
const slack = 100 * time.Millisecond

// TestEvaluationStopsAtTheDeadline: an expression within the bound but slower than the deadline
// is stopped by the VM itself, denied and counted.
func TestEvaluationStopsAtTheDeadline(t *testing.T) {
	g := NewWithT(t)
	// Within the bound (about 40 ms estimated), 10+ ms on any machine: 400,000 iterations.
	p, err := Compile(`any(1..10000, {any(1..40, {# == -1})})`)
	g.Expect(err).NotTo(HaveOccurred())
	before := deadlineCount(t)
	e := Evaluation{Deadline: time.Millisecond}
	start := time.Now()
	ok, err := e.Evaluate(p, []string{"a"})
	elapsed := time.Since(start)
	g.Expect(ok).To(BeFalse())
	g.Expect(errors.Is(err, ErrEvaluationDeadline)).To(BeTrue(), "got %v", err)
	g.Expect(err.Error()).To(ContainSubstring("1ms"))
	g.Expect(elapsed).To(BeNumerically("<", time.Millisecond+slack))
	g.Expect(deadlineCount(t)).To(Equal(before + 1))

	// Without a deadline in reach it completes (false: no element is -1).
	e = Evaluation{Deadline: time.Minute}
	ok, err = e.Evaluate(p, []string{"a"})
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(ok).To(BeFalse())
}

// TestEvaluationDeadlineIsShared: many bindings evaluated for one request share one deadline, so
// together they cannot hold the request longer than one could.
func TestEvaluationDeadlineIsShared(t *testing.T) {
	g := NewWithT(t)
	p, err := Compile(`any(1..10000, {# == -1})`) // about 0.3 ms each
	g.Expect(err).NotTo(HaveOccurred())
	e := Evaluation{Deadline: 2 * time.Millisecond}
	start := time.Now()
	var evaluated int
	for evaluated = 0; evaluated < 10000; evaluated++ {
		if _, err = e.Evaluate(p, []string{"a"}); err != nil {
			break
		}
	}
	g.Expect(errors.Is(err, ErrEvaluationDeadline)).To(BeTrue(), "got %v after %d evaluations", err, evaluated)
	g.Expect(time.Since(start)).To(BeNumerically("<", 2*time.Millisecond+slack))
}

// TestLargestTokenStaysWithinTheDeadline: the documented expressions over 10,000 groups either
// decide or are cut off at the deadline; none holds the caller longer.
func TestLargestTokenStaysWithinTheDeadline(t *testing.T) {
	groups := benchGroups(MaxGroups)
	groups[MaxGroups-1] = "team-a:dev"
	for _, tc := range documented {
		if tc.compileOnly {
			continue
		}
		t.Run(tc.expr, func(t *testing.T) {
			g := NewWithT(t)
			p, err := Compile(tc.expr)
			g.Expect(err).NotTo(HaveOccurred())
			start := time.Now()
			_, err = Evaluate(p, groups)
			g.Expect(time.Since(start)).To(BeNumerically("<", DefaultDeadline+slack))
			if err != nil {
				g.Expect(errors.Is(err, ErrEvaluationDeadline)).To(BeTrue(), "got %v", err)
			}
		})
	}
}

// TestSetDeadline: the default deadline of Evaluations can be changed and restored.
func TestSetDeadline(t *testing.T) {
	g := NewWithT(t)
	prev := SetDeadline(time.Millisecond)
	g.Expect(prev).To(Equal(DefaultDeadline))
	p, err := Compile(`any(1..10000, {any(1..40, {# == -1})})`)
	g.Expect(err).NotTo(HaveOccurred())
	_, err = Evaluate(p, nil)
	g.Expect(errors.Is(err, ErrEvaluationDeadline)).To(BeTrue(), "got %v", err)
	g.Expect(SetDeadline(0)).To(Equal(time.Millisecond))
	g.Expect(SetDeadline(DefaultDeadline)).To(Equal(DefaultDeadline))
}

// TestProgramsWithAndWithoutCheckpointsAgree: the program with checkpoints decides as the plain
// one, for small tokens (plain program) and large ones (checkpoints).
func TestProgramsWithAndWithoutCheckpointsAgree(t *testing.T) {
	exprs := []string{
		`filter(groups, {# startsWith "team-7"}) != []`,
		`count(groups, {# endsWith "dev"}) > 3`,
		`map(groups, {upper(#)})[0] == "TEAM-0:DEV"`,
		`sortBy(groups, {len(#)})[0] == "team-0:dev"`,
		`findIndex(groups, {# == "team-9:dev"}) == 9`,
		`len(groupBy(groups, {len(#)})) > 1`,
		`sum(groups, {len(#)}) > 100`,
		`one(groups, {# == "team-3:dev"}) && none(groups, {# == "x"})`,
		`reduce(groups, #acc + len(#), 0) > 10`,
		`any(1..3, {any(groups, {# == "team-" + string(#) + ":dev"})})`,
	}
	for _, s := range exprs {
		t.Run(s, func(t *testing.T) {
			g := NewWithT(t)
			p, err := Compile(s)
			g.Expect(err).NotTo(HaveOccurred())
			md := metaOf(p)
			g.Expect(md).NotTo(BeNil())
			for _, n := range []int{3, 10, 100, 2000} {
				groups := benchGroups(n)
				want, wantErr := runPlain(md, groups)
				e := Evaluation{Deadline: time.Minute}
				got, err := e.Evaluate(p, groups)
				g.Expect(err != nil).To(Equal(wantErr != nil), "%d groups: %v, plain: %v", n, err, wantErr)
				g.Expect(got).To(Equal(want), "%d groups", n)
				m := machines.Get().(*machine)
				m.clock = clock{limit: time.Minute}
				m.env.Groups = groups
				out, err := m.vm.Run(p, &m.env) // always the instrumented program
				machines.Put(m)
				g.Expect(err != nil).To(Equal(wantErr != nil), "%d groups, instrumented: %v, plain: %v", n, err, wantErr)
				if err == nil {
					g.Expect(out).To(Equal(want), "%d groups, instrumented", n)
				}
			}
		})
	}
}

func runPlain(md *meta, groups []string) (bool, error) {
	m := machines.Get().(*machine)
	defer machines.Put(m)
	m.env.Groups = groups
	out, err := m.vm.Run(md.plain, &m.env)
	if err != nil {
		return false, err
	}
	return out.(bool), nil
}

// TestCheckpointsOnlyWhereTheyMatter: a program runs without checkpoints when its estimate for
// the caller's groups is a fraction of the deadline, with them otherwise.
func TestCheckpointsOnlyWhereTheyMatter(t *testing.T) {
	cases := []struct {
		expr   string
		groups int
		fast   bool
	}{
		{`"team-a" in groups`, 3, true},
		{`"team-a" in groups`, MaxGroups, true},
		{`filter(groups, {# startsWith "team-a:"}) != []`, MaxGroups, true},
		{`"team-a" in groups`, MaxGroups + 1, false}, // larger than the bound assumes
		{`any(groups, lower(#) == "team-a")`, 3, true},
		{`any(groups, lower(#) == "team-a")`, MaxGroups, false},
		{`any(1..10000, {any(1..40, {# == -1})})`, 0, false},
	}
	for _, tc := range cases {
		t.Run(fmt.Sprintf("%s/%d", tc.expr, tc.groups), func(t *testing.T) {
			g := NewWithT(t)
			p, err := Compile(tc.expr)
			g.Expect(err).NotTo(HaveOccurred())
			_, fast := metaOf(p).fast(benchGroups(tc.groups))
			g.Expect(fast).To(Equal(tc.fast))
		})
	}
}
