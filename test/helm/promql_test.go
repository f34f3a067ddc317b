package helm

import (
	"sort"
	"testing"

	. "github.com/onsi/gomega"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql/parser"

	"dexterity.dev/dexterity/internal/metrics/promexpr"
)

// Every expression of config/prometheus (and of the chart's PrometheusRule, thresholds
// substituted) parses with Prometheus's own parser, and promexpr.MetricNames (what the operator
// module's monitoring test checks against a running manager) finds exactly the parser's metrics.
func TestPromQLExpressions(t *testing.T) {
	g := NewWithT(t)
	exprs, err := promexpr.Load(root + "/config/prometheus")
	g.Expect(err).NotTo(HaveOccurred())
	rule := find(render(t, "dexterity-system", map[string]any{"metrics": map[string]any{"prometheusRule": map[string]any{"enabled": true,
		"stalledAfterSeconds": 600, "certificateWarningDays": 30, "certificateCriticalDays": 7, "registryErrorRatio": 0.01}}}), "PrometheusRule", "dexterity-alerts")
	for _, e := range ruleExprs(rule) {
		exprs = append(exprs, promexpr.Expression{Where: "chart PrometheusRule", Expr: e})
	}
	p := parser.NewParser(parser.Options{})
	for _, e := range exprs {
		expr, err := p.ParseExpr(promexpr.WithoutGrafanaVariables(e.Expr))
		if err != nil {
			t.Errorf("%s: %v\n%s", e.Where, err, e.Expr)
			continue
		}
		names := map[string]bool{}
		parser.Inspect(expr, func(n parser.Node, _ []parser.Node) error {
			if vs, ok := n.(*parser.VectorSelector); ok {
				name := vs.Name
				for _, m := range vs.LabelMatchers {
					if m.Name == labels.MetricName && m.Type == labels.MatchEqual {
						name = m.Value
					}
				}
				names[name] = true
			}
			return nil
		})
		var want []string
		for n := range names {
			want = append(want, n)
		}
		sort.Strings(want)
		g.Expect(promexpr.MetricNames(e.Expr)).To(Equal(want), "%s: %s", e.Where, e.Expr)
	}
}
