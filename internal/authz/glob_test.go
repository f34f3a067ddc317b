package authz

import (
	"context"
	"errors"
	"fmt"
	"path"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/gomega"
)

// TestCheckResources: patterns over the bounds, with more segments than an address, or
// malformed are refused, naming the field and index; the documented patterns pass.
func TestCheckResources(t *testing.T) {
	many := make([]string, MaxPatterns+1)
	for i := range many {
		many[i] = fmt.Sprintf("team-a/m%d", i)
	}
	cases := []struct {
		name               string
		modules, providers []string
		want               []string // substrings of the error; none: accepted
	}{
		{"documented", []string{"team-a/*", "team-a/network", "dns", "team-a/network/aws", "team-?/[a-z]*/aws"}, []string{"team-a/*", "random", "team-a/e*"}, nil},
		{"at the bounds", []string{strings.Repeat("*a", MaxPatternStars) + strings.Repeat("b", MaxPatternBytes-2*MaxPatternStars)}, nil, nil},
		{"too long", []string{"team-a/*", "*" + strings.Repeat("a", MaxPatternBytes)}, nil,
			[]string{fmt.Sprintf("spec.moduleResources[1] is %d bytes long, more than the %d allowed", MaxPatternBytes+1, MaxPatternBytes)}},
		{"too many stars", nil, []string{strings.Repeat("a*", MaxPatternStars+1)},
			[]string{`spec.providerResources[0] has 17 "*", more than the 16 allowed`}},
		{"too many module segments", []string{"a/b/c/d"}, nil,
			[]string{"spec.moduleResources[0] has 4 segments; a module address has 3 (<namespace>/<name>/<system>)"}},
		{"too many provider segments", nil, []string{"a/b/c"},
			[]string{"spec.providerResources[0] has 3 segments; a provider address has 2 (<namespace>/<type>)"}},
		{"malformed", []string{"team-a/[a-"}, nil, []string{"spec.moduleResources[0] is not a valid glob (syntax error in pattern)"}},
		{"empty", nil, []string{""}, []string{"spec.providerResources[0] is empty"}},
		{"too many patterns", many, nil, []string{fmt.Sprintf("spec.moduleResources has %d patterns, more than the %d allowed", MaxPatterns+1, MaxPatterns)}},
		{"several", []string{"[", "ok/*", "a/b/c/d"}, []string{"x/y/z"},
			[]string{"spec.moduleResources[0] is not a valid glob", "; spec.moduleResources[2] has 4 segments", "; spec.providerResources[0] has 3 segments"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			err := CheckResources(tc.modules, tc.providers)
			if len(tc.want) == 0 {
				g.Expect(err).NotTo(HaveOccurred())
				return
			}
			g.Expect(IsPatternError(err)).To(BeTrue())
			for _, w := range tc.want {
				g.Expect(err).To(MatchError(ContainSubstring(w)))
			}
			var pe PatternErrors
			g.Expect(errors.As(err, &pe)).To(BeTrue())
			g.Expect(pe[0].Path()).To(HavePrefix("spec."))
		})
	}
}

// TestGlobCostBoundsPathMatch: GlobCost is an upper bound of path.Match at the bounds (the
// costliest input per byte: a "*" followed by character classes, against the longest
// segment), and one such match is far below the evaluation deadline.
func TestGlobCostBoundsPathMatch(t *testing.T) {
	g := NewWithT(t)
	pattern := "*" + strings.Repeat("[a-z]", (MaxPatternBytes-2)/5) + "b"
	name := strings.Repeat("a", MaxSegmentBytes)
	fastest := time.Hour
	for range 20 {
		start := time.Now()
		ok, err := path.Match(pattern, name)
		fastest = min(fastest, time.Since(start))
		g.Expect(ok, err).To(BeFalse())
	}
	est := time.Duration(GlobCost(len(pattern), len(name)))
	t.Logf("path.Match at the bounds: %s, estimated %s", fastest, est)
	// Estimates are for the reference machine (2 cores): twice as much leaves room for a slower
	// one and still catches a model off by an order of magnitude.
	g.Expect(fastest).To(BeNumerically("<", 2*est), "GlobCost underestimates path.Match")
	g.Expect(est).To(BeNumerically("<", DefaultDeadline/4), "one match the deadline cannot interrupt")
}

// TestChargeStopsAtTheDeadline: work charged with Charge counts against the Evaluation's
// deadline like an expression's, and the deadline is shared with Evaluate.
func TestChargeStopsAtTheDeadline(t *testing.T) {
	g := NewWithT(t)
	e := Evaluation{Deadline: 2 * time.Millisecond}
	// The costliest match within the bounds, charged before each run as the registry does.
	pattern := "*" + strings.Repeat("[a-z]", (MaxPatternBytes-2)/5) + "b"
	name := strings.Repeat("a", MaxSegmentBytes)
	cost := GlobCost(len(pattern), len(name))
	start := time.Now()
	var err error
	n := 0
	for ; n < 1e6 && err == nil; n++ {
		if err = e.Charge(cost); err == nil {
			_, _ = path.Match(pattern, name)
		}
	}
	g.Expect(errors.Is(err, ErrEvaluationDeadline)).To(BeTrue(), "got %v", err)
	g.Expect(err).To(MatchError(ContainSubstring("failed to match resource patterns")))
	g.Expect(time.Since(start)).To(BeNumerically("<", time.Second))
	g.Expect(e.Charged()).To(Equal(int64(n) * int64(cost)))
	// The expressions of the same request have no time left.
	p, cerr := Compile(`any(1..10000, {any(1..40, {# == -1})})`)
	g.Expect(cerr).NotTo(HaveOccurred())
	_, err = e.Evaluate(p, nil)
	g.Expect(errors.Is(err, ErrEvaluationDeadline)).To(BeTrue(), "got %v", err)
}

// TestEvaluationStopsWithItsContext: an Evaluation whose Context is done stops expressions and
// charged work alike, with the context's error, not as a deadline.
func TestEvaluationStopsWithItsContext(t *testing.T) {
	g := NewWithT(t)
	p, err := Compile(`any(1..10000, {any(1..40, {# == -1})})`)
	g.Expect(err).NotTo(HaveOccurred())
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	e := Evaluation{Deadline: time.Minute, Context: ctx}
	start := time.Now()
	_, err = e.Evaluate(p, nil)
	g.Expect(time.Since(start)).To(BeNumerically("<", 100*time.Millisecond))
	g.Expect(Stopped(err)).To(BeTrue(), "got %v", err)
	g.Expect(errors.Is(err, context.Canceled)).To(BeTrue())
	g.Expect(errors.Is(err, ErrEvaluationDeadline)).To(BeFalse())

	e = Evaluation{Deadline: time.Minute, Context: ctx}
	err = nil
	for i := 0; i < 1000 && err == nil; i++ {
		err = e.Charge(checkEvery / 10)
	}
	g.Expect(Stopped(err)).To(BeTrue(), "got %v", err)
}
