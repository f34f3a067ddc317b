// Package promexpr reads the PromQL expressions of config/prometheus (the alerts of rules.yaml,
// the panels of dashboard.json) and names the metrics they select. The monitoring test of the
// operator's module checks those names against a running manager; test/helm, which can use
// Prometheus's own parser (its module cannot be a dependency of the operator's), parses every
// expression and checks that MetricNames finds exactly the parser's selectors. It depends on
// nothing but the standard library and sigs.k8s.io/yaml, so both modules import it.
package promexpr

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"sigs.k8s.io/yaml"
)

// Expression is one PromQL expression and where it is.
type Expression struct {
	Where string // "rules.yaml: alert DexterityManagerDown", "dashboard.json: panel Memory (B)"
	Expr  string
}

// Files of config/prometheus that hold expressions.
const (
	RulesFile     = "rules.yaml"
	DashboardFile = "dashboard.json"
)

// Synthetic are the series Prometheus writes itself for every target, which no exporter exports.
var Synthetic = map[string]bool{"up": true, "scrape_duration_seconds": true, "scrape_samples_scraped": true}

// GrafanaVariables are the Grafana variables the dashboard uses in expressions, with what they
// stand for when the expression is checked as PromQL.
var GrafanaVariables = map[string]string{"$__rate_interval": "5m", "$__interval": "1m", "$__range": "1h"}

// Load returns every expression of the rules and the dashboard in dir (config/prometheus).
func Load(dir string) ([]Expression, error) {
	rules, err := os.ReadFile(filepath.Join(dir, RulesFile))
	if err != nil {
		return nil, err
	}
	out, err := Rules(rules)
	if err != nil {
		return nil, fmt.Errorf("failed to read %s: %w", RulesFile, err)
	}
	dashboard, err := os.ReadFile(filepath.Join(dir, DashboardFile))
	if err != nil {
		return nil, err
	}
	panels, err := Dashboard(dashboard)
	if err != nil {
		return nil, fmt.Errorf("failed to read %s: %w", DashboardFile, err)
	}
	return append(out, panels...), nil
}

// Rules returns the expressions of a PrometheusRule (alerts and recording rules).
func Rules(data []byte) ([]Expression, error) {
	var rule struct {
		Spec struct {
			Groups []struct {
				Name  string `json:"name"`
				Rules []struct {
					Alert  string `json:"alert"`
					Record string `json:"record"`
					Expr   string `json:"expr"`
				} `json:"rules"`
			} `json:"groups"`
		} `json:"spec"`
	}
	if err := yaml.Unmarshal(data, &rule); err != nil {
		return nil, err
	}
	var out []Expression
	for _, g := range rule.Spec.Groups {
		for i, r := range g.Rules {
			name := r.Alert
			if name == "" {
				name = r.Record
			}
			if strings.TrimSpace(r.Expr) == "" {
				return nil, fmt.Errorf("group %s, rule %d (%s): no expr", g.Name, i, name)
			}
			out = append(out, Expression{Where: fmt.Sprintf("%s: group %s, rule %d (%s)", RulesFile, g.Name, i, name), Expr: r.Expr})
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no rules")
	}
	return out, nil
}

type grafanaPanel struct {
	Title   string `json:"title"`
	Targets []struct {
		RefID string `json:"refId"`
		Expr  string `json:"expr"`
	} `json:"targets"`
	Panels []grafanaPanel `json:"panels"` // a collapsed row's panels
}

// Dashboard returns the expressions of a Grafana dashboard's panels (those of rows included).
func Dashboard(data []byte) ([]Expression, error) {
	var d struct {
		Panels []grafanaPanel `json:"panels"`
	}
	if err := json.Unmarshal(data, &d); err != nil {
		return nil, err
	}
	var out []Expression
	var walk func([]grafanaPanel)
	walk = func(ps []grafanaPanel) {
		for _, p := range ps {
			for _, t := range p.Targets {
				if strings.TrimSpace(t.Expr) != "" {
					out = append(out, Expression{Where: fmt.Sprintf("%s: panel %q (%s)", DashboardFile, p.Title, t.RefID), Expr: t.Expr})
				}
			}
			walk(p.Panels)
		}
	}
	walk(d.Panels)
	if len(out) == 0 {
		return nil, fmt.Errorf("no panel expressions")
	}
	return out, nil
}

// WithoutGrafanaVariables replaces the Grafana variables of GrafanaVariables in expr.
func WithoutGrafanaVariables(expr string) string {
	for k, v := range GrafanaVariables {
		expr = strings.ReplaceAll(expr, k, v)
	}
	return expr
}

// keywords are PromQL's words that are not metric names where an identifier can stand:
// aggregation operators, binary set operators, modifiers and literals.
var keywords = map[string]bool{
	"sum": true, "min": true, "max": true, "avg": true, "group": true, "stddev": true, "stdvar": true,
	"count": true, "count_values": true, "bottomk": true, "topk": true, "quantile": true, "limitk": true,
	"limit_ratio": true, "and": true, "or": true, "unless": true, "atan2": true, "bool": true,
	"offset": true, "inf": true, "nan": true, "start": true, "end": true,
}

// groupingKeywords are followed by a parenthesised list of label names.
var groupingKeywords = map[string]bool{"by": true, "without": true, "on": true, "ignoring": true, "group_left": true, "group_right": true}

// MetricNames returns the sorted metric names an expression selects: the identifiers that are
// not functions (followed by "("), keywords, label names (in braces or grouping lists), strings,
// numbers, durations or Grafana variables.
func MetricNames(expr string) []string {
	names := map[string]bool{}
	s := WithoutGrafanaVariables(expr)
	inBraces, skipList := false, false
	for i := 0; i < len(s); {
		c := s[i]
		if skipList && c != '(' && c != ' ' && c != '\t' && c != '\n' && c != '\r' {
			skipList = false // group_left or group_right without a label list
		}
		switch {
		case c == '"' || c == '\'' || c == '`':
			i = skipString(s, i)
		case c == '#': // a comment runs to the end of the line
			for i < len(s) && s[i] != '\n' {
				i++
			}
		case c == '{':
			inBraces = true
			i++
		case c == '}':
			inBraces = false
			i++
		case c == '[': // a range or subquery: durations only
			for i < len(s) && s[i] != ']' {
				i++
			}
		case c == '(' && skipList:
			for i < len(s) && s[i] != ')' {
				i++
			}
			skipList = false
		case isDigit(c) || c == '.':
			for i < len(s) && (isIdent(s[i]) || s[i] == '.') {
				i++
			}
		case isIdentStart(c):
			var name string
			var grouping bool
			i, name, grouping = identifier(s, i)
			switch {
			case inBraces: // a label name
			case grouping:
				skipList = true
			case name != "":
				names[name] = true
			}
		default:
			i++
		}
	}
	out := make([]string, 0, len(names))
	for n := range names {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// identifier reads the identifier at s[i]: the index after it, the metric name it is (empty for
// a keyword or a function), and whether it is a grouping keyword (a label list follows).
func identifier(s string, i int) (next int, name string, grouping bool) {
	j := i
	for j < len(s) && isIdent(s[j]) {
		j++
	}
	word := s[i:j]
	k := j
	for k < len(s) && (s[k] == ' ' || s[k] == '\t' || s[k] == '\n' || s[k] == '\r') {
		k++
	}
	switch {
	case groupingKeywords[strings.ToLower(word)]:
		return j, "", true
	case keywords[strings.ToLower(word)], k < len(s) && s[k] == '(':
		return j, "", false
	}
	return j, word, false
}

func skipString(s string, i int) int {
	q := s[i]
	for i++; i < len(s); i++ {
		switch {
		case s[i] == '\\' && q != '`':
			i++
		case s[i] == q:
			return i + 1
		}
	}
	return i
}

func isDigit(c byte) bool      { return c >= '0' && c <= '9' }
func isIdentStart(c byte) bool { return c == '_' || c == ':' || (c|0x20 >= 'a' && c|0x20 <= 'z') }
func isIdent(c byte) bool      { return isIdentStart(c) || isDigit(c) }
