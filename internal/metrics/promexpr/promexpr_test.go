package promexpr

import (
	"testing"

	. "github.com/onsi/gomega"
)

func TestMetricNames(t *testing.T) {
	for _, tc := range []struct {
		expr string
		want []string
	}{
		{`up`, []string{"up"}},
		{`absent(up{job="dexterity-metrics"} == 1)`, []string{"up"}},
		{`sum by (kind, state) (dexterity_objects)`, []string{"dexterity_objects"}},
		{`SUM BY (kind) (dexterity_objects{state="stalled"})`, []string{"dexterity_objects"}},
		{`histogram_quantile(0.95, sum by (le, method) (rate(a_bucket[$__rate_interval])))`, []string{"a_bucket"}},
		{`(sum by (p) (increase(a{result=~"x|y"}[10m])) > 0) unless on (p) (sum by (p) (increase(a{result="ok"}[10m])) > 0)`, []string{"a"}},
		{`time() - max by (kind) (b) > 1800`, []string{"b"}},
		{`min by (n) (c) - time() < 14 * 86400`, []string{"c"}},
		{`a / on (x) group_left (y) b`, []string{"a", "b"}},
		{`a * on (x) group_left b`, []string{"a", "b"}},
		{`rate(d{path="by (x)", q='z{'}[5m:1m] offset 1h) and bool e`, []string{"d", "e"}},
		{"f # a comment names g\n+ h", []string{"f", "h"}},
		{`{__name__="i"}`, []string{}},
		{`j:recorded:rate5m @ end()`, []string{"j:recorded:rate5m"}},
		{`1e3 + .5 + 0x1f + inf + NaN`, []string{}},
	} {
		NewWithT(t).Expect(MetricNames(tc.expr)).To(Equal(tc.want), tc.expr)
	}
}

func TestLoadConfigPrometheus(t *testing.T) {
	g := NewWithT(t)
	exprs, err := Load("../../../config/prometheus")
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(exprs).NotTo(BeEmpty())
	for _, e := range exprs {
		g.Expect(MetricNames(e.Expr)).NotTo(BeEmpty(), "%s: %s selects no metric", e.Where, e.Expr)
	}
}
