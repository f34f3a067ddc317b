package main

import (
	"fmt"
	"strings"
)

// thresholds are the literals of config/prometheus/rules.yaml that the chart makes values:
// alert (and severity) → literal of the expression → value. The generation fails when a literal
// is no longer there, so that editing the rules cannot silently drop a value.
var thresholds = []struct {
	alert, severity, literal, value string
}{
	{"DexterityObjectsStalled", "", "> 1800", "> {{ .Values.metrics.prometheusRule.stalledAfterSeconds }}"},
	{"DexterityDexCertificateExpiring", "warning", "< 14 * 86400", "< {{ .Values.metrics.prometheusRule.certificateWarningDays }} * 86400"},
	{"DexterityDexCertificateExpiring", "critical", "< 2 * 86400", "< {{ .Values.metrics.prometheusRule.certificateCriticalDays }} * 86400"},
	{"DexterityRegistryErrors", "", "> 0.05", "> {{ .Values.metrics.prometheusRule.registryErrorRatio }}"},
}

// dashboardLabel is the label config/prometheus gives the dashboard ConfigMap for Grafana's
// sidecar; the chart makes its key and value values.
const dashboardLabel = "grafana_dashboard"

func (g *generator) monitoring(objs []object) error {
	kinds := map[string]bool{}
	for _, o := range objs {
		t := &templ{}
		m := o.Map
		kinds[o.Kind] = true
		var conds []string
		var file string
		switch o.Kind {
		case "ServiceMonitor":
			conds = []string{".Values.metrics.enabled", ".Values.metrics.serviceMonitor.enabled"}
			file = "templates/servicemonitor.yaml"
			labels(t, m, ".Values.commonLabels", ".Values.metrics.serviceMonitor.labels")
			endpoints, _ := get(m, "spec", "endpoints").([]any)
			if len(endpoints) != 1 {
				return fmt.Errorf("%s: want one endpoint", o)
			}
			endpoints[0].(map[string]any)["interval"] = t.scalar("{{ .Values.metrics.serviceMonitor.interval }}")
		case "PrometheusRule":
			conds = []string{".Values.metrics.prometheusRule.enabled"}
			file = "templates/prometheusrule.yaml"
			labels(t, m, ".Values.commonLabels", ".Values.metrics.prometheusRule.labels")
			if err := ruleThresholds(t, m); err != nil {
				return fmt.Errorf("%s: %w", o, err)
			}
		case "ConfigMap":
			conds = []string{".Values.metrics.dashboard.enabled"}
			file = "templates/dashboard.yaml"
			l := child(child(m, "metadata"), "labels")
			if _, ok := l[dashboardLabel]; !ok {
				return fmt.Errorf("%s: no %s label", o, dashboardLabel)
			}
			delete(l, dashboardLabel)
			labels(t, m, ".Values.commonLabels")
			l[t.lines(func(n int) string {
				return ind(n) + "{{ .Values.metrics.dashboard.label }}: {{ .Values.metrics.dashboard.labelValue | quote }}"
			})] = ""
			child(m, "metadata")["annotations"] = t.lines(withBlock("annotations", ".Values.metrics.dashboard.annotations"))
			child(m, "metadata")["namespace"] = t.scalar("{{ .Values.metrics.dashboard.namespace | default .Release.Namespace }}")
		default:
			return fmt.Errorf("config/prometheus renders %s, which chartgen does not know", o)
		}
		g.releaseNamespace(t, m)
		if err := g.add(file, conds, t, m); err != nil {
			return fmt.Errorf("%s: %w", o, err)
		}
	}
	for _, k := range []string{"ServiceMonitor", "PrometheusRule", "ConfigMap"} {
		if !kinds[k] {
			return fmt.Errorf("config/prometheus renders no %s", k)
		}
	}
	return nil
}

// ruleThresholds puts the values of thresholds into the rules' expressions.
func ruleThresholds(t *templ, m map[string]any) error {
	groups, _ := get(m, "spec", "groups").([]any)
	for _, th := range thresholds {
		done := false
		for _, gr := range groups {
			rules, _ := gr.(map[string]any)["rules"].([]any)
			for _, r := range rules {
				rule := r.(map[string]any)
				sev, _ := get(rule, "labels", "severity").(string)
				if rule["alert"] != th.alert || (th.severity != "" && sev != th.severity) {
					continue
				}
				expr, _ := rule["expr"].(string)
				if strings.Count(expr, th.literal) != 1 {
					return fmt.Errorf("alert %s (%s): the expression no longer holds %q once; update hack/chartgen's thresholds", th.alert, th.severity, th.literal)
				}
				rule["expr"] = strings.Replace(expr, th.literal, t.scalar(th.value), 1)
				done = true
			}
		}
		if !done {
			return fmt.Errorf("no alert %s (%s); update hack/chartgen's thresholds", th.alert, th.severity)
		}
	}
	return nil
}
