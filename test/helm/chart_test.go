package helm

import (
	"fmt"
	"reflect"
	"sort"
	"testing"

	. "github.com/onsi/gomega"
	"helm.sh/helm/v4/pkg/action"
	"helm.sh/helm/v4/pkg/chart/v2/lint/support"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"
)

// nonDefault are values a platform team sets: every value that changes the manifests.
func nonDefault() map[string]any {
	return map[string]any{
		"image":            map[string]any{"repository": "registry.example.com/dexterity", "tag": "1.2.3", "pullPolicy": "Always"},
		"imagePullSecrets": []any{map[string]any{"name": "pull"}},
		"replicaCount":     1,
		"leaderElection":   map[string]any{"enabled": false},
		"resources":        map[string]any{"requests": map[string]any{"cpu": "100m", "memory": "128Mi"}, "limits": map[string]any{"memory": "512Mi"}},
		"nodeSelector":     map[string]any{"kubernetes.io/os": "linux"},
		"tolerations":      []any{map[string]any{"key": "infra", "operator": "Exists", "effect": "NoSchedule"}},
		"affinity": map[string]any{"podAntiAffinity": map[string]any{"preferredDuringSchedulingIgnoredDuringExecution": []any{map[string]any{
			"weight": 100, "podAffinityTerm": map[string]any{"topologyKey": "kubernetes.io/hostname", "labelSelector": map[string]any{"matchLabels": map[string]any{"control-plane": "controller-manager"}}}}}}},
		"priorityClassName": "system-cluster-critical",
		"podAnnotations":    map[string]any{"example.com/a": "b"},
		"podLabels":         map[string]any{"team": "platform"},
		"commonLabels":      map[string]any{"cost-center": "42"},
		"serviceAccount":    map[string]any{"annotations": map[string]any{"example.com/role": "x"}},
		"extraArgs":         []any{"--dex-resync-period=5m"},
		"extraEnv":          []any{map[string]any{"name": "HTTPS_PROXY", "value": "http://proxy:3128"}},
		"webhook":           map[string]any{"certManager": map[string]any{"enabled": true}},
		"metrics": map[string]any{"port": 9090,
			"serviceMonitor": map[string]any{"enabled": true, "interval": "15s", "labels": map[string]any{"release": "prom"}},
			"prometheusRule": map[string]any{"enabled": true, "labels": map[string]any{"release": "prom"}, "stalledAfterSeconds": 600, "certificateWarningDays": 30, "certificateCriticalDays": 7, "registryErrorRatio": 0.01},
			"dashboard":      map[string]any{"enabled": true, "namespace": "grafana", "annotations": map[string]any{"grafana_folder": "Platform"}}},
		"registry": map[string]any{"port": 9443, "tls": map[string]any{"secretName": "registry-tls"},
			"service": map[string]any{"port": 443, "type": "LoadBalancer", "annotations": map[string]any{"example.com/lb": "internal"}}},
		"rbac": map[string]any{"tenantRoles": map[string]any{"aggregate": false}},
		"crds": map[string]any{"keep": false, "dexStorage": false},
	}
}

func TestLint(t *testing.T) {
	for name, vals := range map[string]map[string]any{"defaults": nil, "non-default values": nonDefault()} {
		t.Run(name, func(t *testing.T) {
			l := action.NewLint()
			l.Strict = true
			l.Namespace = "dexterity-system"
			res := l.Run([]string{chartDir}, vals)
			var msgs []string
			for _, m := range res.Messages {
				if m.Severity > support.InfoSev {
					msgs = append(msgs, m.Error())
				}
			}
			NewWithT(t).Expect(res.Errors).To(BeEmpty())
			NewWithT(t).Expect(msgs).To(BeEmpty())
		})
	}
}

// The schema refuses a misspelt value instead of ignoring it.
func TestSchemaRefusesUnknownValues(t *testing.T) {
	l := action.NewLint()
	res := l.Run([]string{chartDir}, map[string]any{"replicas": 2})
	NewWithT(t).Expect(fmt.Sprint(res.Errors)).To(ContainSubstring("replicas"))
}

// chartLabels are the labels (and annotation) the chart adds to config/default's objects.
var chartLabels = []string{"helm.sh/chart", "app.kubernetes.io/name", "app.kubernetes.io/instance", "app.kubernetes.io/version", "app.kubernetes.io/managed-by"}

func withoutChartLabels(o *unstructured.Unstructured) *unstructured.Unstructured {
	o = o.DeepCopy()
	l := o.GetLabels()
	for _, k := range chartLabels {
		delete(l, k)
	}
	if len(l) == 0 {
		l = nil
	}
	o.SetLabels(l)
	// The CRDs' keep policy (crds.keep) is the chart's.
	if a := o.GetAnnotations(); a != nil {
		delete(a, "helm.sh/resource-policy")
		if len(a) == 0 {
			a = nil
		}
		o.SetAnnotations(a)
	}
	return o
}

// With the defaults (and config/default's image), the chart renders exactly what
// `kustomize build config/default` renders, but the Namespace (the release's), and with the
// monitoring values on, what config/prometheus renders: labels aside, object by object.
func TestRenderEqualsKustomize(t *testing.T) {
	g := NewWithT(t)
	rendered := render(t, "dexterity-system", map[string]any{
		"image":   map[string]any{"repository": "dexterity", "tag": "dev"},
		"metrics": map[string]any{"serviceMonitor": map[string]any{"enabled": true}, "prometheusRule": map[string]any{"enabled": true}, "dashboard": map[string]any{"enabled": true}},
	})
	want := append(kustomize(t, "default"), kustomize(t, "prometheus")...)
	key := func(o *unstructured.Unstructured) string {
		return o.GetKind() + "/" + o.GetNamespace() + "/" + o.GetName()
	}
	got := map[string]*unstructured.Unstructured{}
	for _, o := range rendered {
		g.Expect(got).NotTo(HaveKey(key(o)), "rendered twice")
		got[key(o)] = o
	}
	var wantKeys []string
	for _, w := range want {
		if w.GetKind() == "Namespace" {
			continue
		}
		wantKeys = append(wantKeys, key(w))
		o, ok := got[key(w)]
		if !ok {
			t.Errorf("the chart does not render %s", key(w))
			continue
		}
		for _, k := range chartLabels {
			g.Expect(o.GetLabels()).To(HaveKey(k), "%s has the chart's labels", key(w))
		}
		a, b := withoutChartLabels(o), withoutChartLabels(w)
		if !reflect.DeepEqual(normalise(t, a), normalise(t, b)) {
			ay, _ := yaml.Marshal(a.Object)
			by, _ := yaml.Marshal(b.Object)
			t.Errorf("%s differs from kustomize's:\nchart:\n%s\nkustomize:\n%s", key(w), ay, by)
		}
	}
	var extra []string
	for k := range got {
		if !contains(wantKeys, k) {
			extra = append(extra, k)
		}
	}
	sort.Strings(extra)
	g.Expect(extra).To(BeEmpty(), "the chart renders objects kustomize does not")
}

// normalise round-trips through JSON so that numbers compare alike.
func normalise(t *testing.T, o *unstructured.Unstructured) map[string]any {
	data, err := o.MarshalJSON()
	NewWithT(t).Expect(err).NotTo(HaveOccurred())
	var m map[string]any
	NewWithT(t).Expect(yaml.Unmarshal(data, &m)).To(Succeed())
	return m
}

func contains(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

func TestRenderNonDefaultValues(t *testing.T) {
	g := NewWithT(t)
	objs := render(t, "platform", nonDefault())
	dep := find(objs, "Deployment", "dexterity-controller-manager")
	g.Expect(dep).NotTo(BeNil())
	g.Expect(dep.GetNamespace()).To(Equal("platform"))
	g.Expect(dep.GetLabels()).To(HaveKeyWithValue("cost-center", "42"))
	spec := dep.Object["spec"].(map[string]any)
	g.Expect(spec["replicas"]).To(BeNumerically("==", 1))
	pod := spec["template"].(map[string]any)["spec"].(map[string]any)
	podMeta := spec["template"].(map[string]any)["metadata"].(map[string]any)
	g.Expect(podMeta["annotations"]).To(HaveKeyWithValue("example.com/a", "b"))
	g.Expect(podMeta["labels"]).To(HaveKeyWithValue("team", "platform"))
	g.Expect(podMeta["labels"]).To(HaveKeyWithValue("control-plane", "controller-manager"))
	g.Expect(pod["nodeSelector"]).To(HaveKeyWithValue("kubernetes.io/os", "linux"))
	g.Expect(pod["tolerations"]).To(HaveLen(1))
	g.Expect(pod["affinity"]).To(HaveKey("podAntiAffinity"))
	g.Expect(pod["priorityClassName"]).To(Equal("system-cluster-critical"))
	g.Expect(pod["imagePullSecrets"]).To(ConsistOf(HaveKeyWithValue("name", "pull")))
	c := pod["containers"].([]any)[0].(map[string]any)
	g.Expect(c["image"]).To(Equal("registry.example.com/dexterity:1.2.3"))
	g.Expect(c["imagePullPolicy"]).To(Equal("Always"))
	g.Expect(c["resources"]).To(HaveKeyWithValue("limits", HaveKeyWithValue("memory", "512Mi")))
	args := toStrings(c["args"])
	g.Expect(args).NotTo(ContainElement("--leader-elect"))
	g.Expect(args).To(ContainElements("--metrics-bind-address=:9090", "--registry-bind-address=:9443", "--webhook-cert-secret=",
		"--registry-tls-cert-file=/etc/dexterity/registry-tls/tls.crt", "--registry-tls-key-file=/etc/dexterity/registry-tls/tls.key", "--dex-resync-period=5m"))
	g.Expect(c["env"]).To(ContainElement(HaveKeyWithValue("name", "HTTPS_PROXY")))
	g.Expect(c["ports"]).To(ContainElements(HaveKeyWithValue("containerPort", BeNumerically("==", 9090)), HaveKeyWithValue("containerPort", BeNumerically("==", 9443))))
	g.Expect(c["volumeMounts"]).To(ContainElement(HaveKeyWithValue("name", "registry-tls")))
	g.Expect(pod["volumes"]).To(ContainElements(
		And(HaveKeyWithValue("name", "webhook-certs"), HaveKeyWithValue("secret", HaveKeyWithValue("secretName", "dexterity-webhook-server-tls"))),
		And(HaveKeyWithValue("name", "registry-tls"), HaveKeyWithValue("secret", HaveKeyWithValue("secretName", "registry-tls")))))

	// cert-manager: its Issuer and Certificate, the CA injected into both configurations, and no
	// RBAC for the self-managed certificate.
	cert := find(objs, "Certificate", "dexterity-webhook-server-cert")
	g.Expect(cert).NotTo(BeNil())
	g.Expect(cert.Object["spec"]).To(HaveKeyWithValue("dnsNames", ConsistOf("dexterity-webhook-service.platform.svc", "dexterity-webhook-service.platform.svc.cluster.local")))
	g.Expect(find(objs, "Issuer", "dexterity-selfsigned-issuer")).NotTo(BeNil())
	for _, kind := range []string{"ValidatingWebhookConfiguration", "MutatingWebhookConfiguration"} {
		var wc *unstructured.Unstructured
		for _, o := range objs {
			if o.GetKind() == kind {
				wc = o
			}
		}
		g.Expect(wc).NotTo(BeNil())
		g.Expect(wc.GetAnnotations()).To(HaveKeyWithValue("cert-manager.io/inject-ca-from", "platform/dexterity-webhook-server-cert"))
		for _, w := range wc.Object["webhooks"].([]any) {
			g.Expect(w).To(HaveKeyWithValue("clientConfig", HaveKeyWithValue("service", HaveKeyWithValue("namespace", "platform"))))
		}
	}
	for _, kind := range []string{"Role", "ClusterRole", "RoleBinding", "ClusterRoleBinding"} {
		g.Expect(find(objs, kind, "dexterity-webhook-cert-role")).To(BeNil())
		g.Expect(find(objs, kind, "dexterity-webhook-cert-rolebinding")).To(BeNil())
	}
	for _, o := range objs {
		if o.GetKind() == "RoleBinding" || o.GetKind() == "ClusterRoleBinding" {
			g.Expect(o.Object["subjects"]).To(ConsistOf(HaveKeyWithValue("namespace", "platform")))
		}
	}
	sa := find(objs, "ServiceAccount", "dexterity-controller-manager")
	g.Expect(sa.GetAnnotations()).To(HaveKeyWithValue("example.com/role", "x"))

	// Services.
	metrics := find(objs, "Service", "dexterity-metrics")
	g.Expect(metrics.Object["spec"].(map[string]any)["ports"]).To(ConsistOf(HaveKeyWithValue("port", BeNumerically("==", 9090))))
	reg := find(objs, "Service", "dexterity-registry")
	g.Expect(reg.Object["spec"]).To(HaveKeyWithValue("type", "LoadBalancer"))
	g.Expect(reg.Object["spec"].(map[string]any)["ports"]).To(ConsistOf(HaveKeyWithValue("port", BeNumerically("==", 443))))
	g.Expect(reg.GetAnnotations()).To(HaveKeyWithValue("example.com/lb", "internal"))

	// Tenant roles without aggregation.
	for _, name := range []string{"dexterity-tenant-edit", "dexterity-tenant-view"} {
		r := find(objs, "ClusterRole", name)
		g.Expect(r).NotTo(BeNil())
		for k := range r.GetLabels() {
			g.Expect(k).NotTo(HavePrefix("rbac.authorization.k8s.io/aggregate-to-"))
		}
	}

	// CRDs: Dexterity's without the keep policy, no Dex storage CRDs.
	var crds int
	for _, o := range objs {
		if o.GetKind() != "CustomResourceDefinition" {
			continue
		}
		crds++
		g.Expect(o.GetName()).NotTo(HaveSuffix(".dex.coreos.com"))
		g.Expect(o.GetAnnotations()).NotTo(HaveKey("helm.sh/resource-policy"))
	}
	g.Expect(crds).To(BeNumerically(">", 0))

	// Monitoring.
	sm := find(objs, "ServiceMonitor", "dexterity-metrics")
	g.Expect(sm.GetLabels()).To(HaveKeyWithValue("release", "prom"))
	g.Expect(sm.Object["spec"].(map[string]any)["endpoints"]).To(ConsistOf(HaveKeyWithValue("interval", "15s")))
	rule := find(objs, "PrometheusRule", "dexterity-alerts")
	g.Expect(rule.GetLabels()).To(HaveKeyWithValue("release", "prom"))
	exprs := ruleExprs(rule)
	g.Expect(exprs).To(ContainElements(ContainSubstring("> 600"), ContainSubstring("< 30 * 86400"), ContainSubstring("< 7 * 86400"), ContainSubstring("> 0.01")))
	dash := find(objs, "ConfigMap", "dexterity-dashboard")
	g.Expect(dash.GetNamespace()).To(Equal("grafana"))
	g.Expect(dash.GetLabels()).To(HaveKeyWithValue("grafana_dashboard", "1"))
	g.Expect(dash.GetAnnotations()).To(HaveKeyWithValue("grafana_folder", "Platform"))
	g.Expect(dash.Object["data"]).To(HaveKeyWithValue("dexterity.json", ContainSubstring(`"legendFormat": "{{kind}} {{state}}"`)))

	// The registry off: no Service, no bind address, no TLS mount.
	off := nonDefault()
	off["registry"] = map[string]any{"enabled": false, "tls": map[string]any{"secretName": "registry-tls"}}
	objs = render(t, "platform", off)
	g.Expect(find(objs, "Service", "dexterity-registry")).To(BeNil())
	c = find(objs, "Deployment", "dexterity-controller-manager").Object["spec"].(map[string]any)["template"].(map[string]any)["spec"].(map[string]any)["containers"].([]any)[0].(map[string]any)
	g.Expect(toStrings(c["args"])).To(ContainElement("--registry-bind-address=0"))
	g.Expect(toStrings(c["args"])).NotTo(ContainElement(HavePrefix("--registry-tls")))
}

// The alerts keep Prometheus's own templates ({{ $labels.x }}) through Helm's.
func TestRenderKeepsAlertTemplates(t *testing.T) {
	objs := render(t, "dexterity-system", map[string]any{"metrics": map[string]any{"prometheusRule": map[string]any{"enabled": true}}})
	rule := find(objs, "PrometheusRule", "dexterity-alerts")
	data, err := yaml.Marshal(rule.Object)
	NewWithT(t).Expect(err).NotTo(HaveOccurred())
	NewWithT(t).Expect(string(data)).To(ContainSubstring("{{ $labels.provider }}"))
}

func ruleExprs(rule *unstructured.Unstructured) []string {
	var out []string
	for _, g := range rule.Object["spec"].(map[string]any)["groups"].([]any) {
		for _, r := range g.(map[string]any)["rules"].([]any) {
			out = append(out, fmt.Sprint(r.(map[string]any)["expr"]))
		}
	}
	return out
}

func toStrings(v any) []string {
	var out []string
	for _, x := range v.([]any) {
		out = append(out, fmt.Sprint(x))
	}
	return out
}

// Several replicas without leader election would run the controllers on every replica: the chart
// refuses to render it.
func TestSeveralReplicasNeedLeaderElection(t *testing.T) {
	_, err := renderManifest(t, "platform", map[string]any{"replicaCount": 3, "leaderElection": map[string]any{"enabled": false}})
	NewWithT(t).Expect(err).To(MatchError(ContainSubstring("replicaCount > 1 needs leaderElection.enabled")))
}

// Values that would inject YAML (a newline in a string printed as is) or hand the manager's rights
// to every editor (an aggregation label on its ClusterRole) are refused by the values schema.
func TestValuesSchemaRefusesInjection(t *testing.T) {
	for name, vals := range map[string]map[string]any{
		"priority class with a newline":      {"priorityClassName": "x\n      hostNetwork: true"},
		"registry TLS Secret with a newline": {"registry": map[string]any{"tls": map[string]any{"secretName": "x\n  hostPID: true"}}},
		"aggregation label":                  {"commonLabels": map[string]any{"rbac.authorization.k8s.io/aggregate-to-edit": "true"}},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := renderManifest(t, "platform", vals)
			NewWithT(t).Expect(err).To(HaveOccurred())
		})
	}
}
