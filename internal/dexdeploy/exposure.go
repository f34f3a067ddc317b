package dexdeploy

import (
	"maps"
	"net/url"
	"strings"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"

	dexv1 "dexterity.dev/dexterity/api/v1alpha1"
)

// HTTPRouteGVK is the Gateway API's HTTPRoute. It is rendered as unstructured: the operator does
// not depend on the Gateway API's Go module, and renders routes only where the CRD exists.
var HTTPRouteGVK = schema.GroupVersionKind{Group: "gateway.networking.k8s.io", Version: "v1", Kind: "HTTPRoute"}

// ServiceMonitorGVK is the Prometheus Operator's ServiceMonitor (written as unstructured: no Go
// dependency on the Prometheus Operator).
var ServiceMonitorGVK = schema.GroupVersionKind{Group: "monitoring.coreos.com", Version: "v1", Kind: "ServiceMonitor"}

// ServiceMonitor is the ServiceMonitor of spec.serviceMonitor: the Dex Service's telemetry port,
// /metrics, at spec.serviceMonitor.interval, with its labels and the Dex's.
func ServiceMonitor(d *dexv1.Dex) *unstructured.Unstructured {
	endpoint := map[string]any{"port": "telemetry", "path": "/metrics"}
	labels := Labels(d)
	if m := d.Spec.ServiceMonitor; m != nil {
		if m.Interval != "" {
			endpoint["interval"] = m.Interval
		}
		labels = maps.Clone(m.Labels)
		if labels == nil {
			labels = map[string]string{}
		}
		maps.Copy(labels, Labels(d))
	}
	selector := map[string]any{}
	for k, v := range Labels(d) {
		selector[k] = v
	}
	u := &unstructured.Unstructured{Object: map[string]any{
		"spec": map[string]any{
			"selector":  map[string]any{"matchLabels": selector},
			"endpoints": []any{endpoint},
		},
	}}
	u.SetGroupVersionKind(ServiceMonitorGVK)
	u.SetNamespace(d.Namespace)
	u.SetName(NamesFor(d).Service)
	u.SetLabels(labels)
	return u
}

// IssuerHostPath is the host and path of the issuer, as an Ingress or an HTTPRoute routes them
// ("/" for an issuer without a path).
func IssuerHostPath(d *dexv1.Dex) (host, path string) {
	u, err := url.Parse(d.Spec.Issuer)
	if err != nil {
		return "", "/"
	}
	path = strings.TrimSuffix(u.EscapedPath(), "/")
	if path == "" {
		path = "/"
	}
	return u.Hostname(), path
}

// Ingress routes the issuer's host and path to the Service's http port.
func Ingress(d *dexv1.Dex) *networkingv1.Ingress {
	spec := d.Spec.Ingress
	host, path := IssuerHostPath(d)
	ing := &networkingv1.Ingress{ObjectMeta: objectMeta(d, NamesFor(d).Ingress), Spec: networkingv1.IngressSpec{
		Rules: []networkingv1.IngressRule{{Host: host, IngressRuleValue: networkingv1.IngressRuleValue{HTTP: &networkingv1.HTTPIngressRuleValue{
			Paths: []networkingv1.HTTPIngressPath{{
				Path: path, PathType: ptr.To(networkingv1.PathTypePrefix),
				Backend: networkingv1.IngressBackend{Service: &networkingv1.IngressServiceBackend{
					Name: NamesFor(d).Service, Port: networkingv1.ServiceBackendPort{Name: "http"},
				}},
			}},
		}}}},
	}}
	if spec == nil {
		return ing
	}
	if spec.ClassName != "" {
		ing.Spec.IngressClassName = ptr.To(spec.ClassName)
	}
	if spec.TLSSecretName != "" {
		ing.Spec.TLS = []networkingv1.IngressTLS{{Hosts: []string{host}, SecretName: spec.TLSSecretName}}
	}
	if len(spec.Annotations) > 0 {
		ing.Annotations = maps.Clone(spec.Annotations)
	}
	return ing
}

// HTTPRoute routes the issuer's host and path from the Gateways of spec.httpRoute.parentRefs to the
// Service's http port.
func HTTPRoute(d *dexv1.Dex) *unstructured.Unstructured {
	host, path := IssuerHostPath(d)
	var parents []any
	var annotations map[string]string
	if r := d.Spec.HTTPRoute; r != nil {
		for _, p := range r.ParentRefs {
			ref := map[string]any{"name": p.Name}
			for k, v := range map[string]string{"group": p.Group, "kind": p.Kind, "namespace": p.Namespace, "sectionName": p.SectionName} {
				if v != "" {
					ref[k] = v
				}
			}
			if p.Port != nil {
				ref["port"] = int64(*p.Port)
			}
			parents = append(parents, ref)
		}
		annotations = maps.Clone(r.Annotations)
	}
	u := &unstructured.Unstructured{Object: map[string]any{
		"spec": map[string]any{
			"parentRefs": parents,
			"hostnames":  []any{host},
			"rules": []any{map[string]any{
				"matches":     []any{map[string]any{"path": map[string]any{"type": "PathPrefix", "value": path}}},
				"backendRefs": []any{map[string]any{"name": NamesFor(d).Service, "port": int64(PortHTTP)}},
			}},
		},
	}}
	u.SetGroupVersionKind(HTTPRouteGVK)
	u.SetNamespace(d.Namespace)
	u.SetName(NamesFor(d).HTTPRoute)
	u.SetLabels(Labels(d))
	if len(annotations) > 0 {
		u.SetAnnotations(annotations)
	}
	return u
}

// OperatorPeer is how the NetworkPolicy of a Dex recognises the operator's pods: their namespace
// (empty: any namespace) and labels.
type OperatorPeer struct {
	Namespace string
	Labels    map[string]string
}

// NetworkPolicyEnabled is spec.networkPolicy.enabled with its default (true) applied.
func NetworkPolicyEnabled(d *dexv1.Dex) bool {
	return d.Spec.NetworkPolicy == nil || d.Spec.NetworkPolicy.Enabled == nil || *d.Spec.NetworkPolicy.Enabled
}

// NetworkPolicy admits the gRPC port of the Dex pods only from the operator's pods; the http and
// telemetry ports stay open (users, ingress controllers, the kubelet's probes and Prometheus reach
// them). Egress is not restricted (connectors, the database and the API server are anywhere).
func NetworkPolicy(d *dexv1.Dex, op OperatorPeer) *networkingv1.NetworkPolicy {
	port := func(name string) networkingv1.NetworkPolicyPort {
		return networkingv1.NetworkPolicyPort{Protocol: ptr.To(corev1.ProtocolTCP), Port: ptr.To(intstr.FromString(name))}
	}
	ns := &metav1.LabelSelector{} // any namespace
	if op.Namespace != "" {
		ns = &metav1.LabelSelector{MatchLabels: map[string]string{corev1.LabelMetadataName: op.Namespace}}
	}
	return &networkingv1.NetworkPolicy{ObjectMeta: objectMeta(d, NamesFor(d).NetworkPolicy), Spec: networkingv1.NetworkPolicySpec{
		PodSelector: metav1.LabelSelector{MatchLabels: SelectorLabels(d)},
		PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeIngress},
		Ingress: []networkingv1.NetworkPolicyIngressRule{
			{Ports: []networkingv1.NetworkPolicyPort{port("http"), port("telemetry")}},
			{
				Ports: []networkingv1.NetworkPolicyPort{port("grpc")},
				From:  []networkingv1.NetworkPolicyPeer{{NamespaceSelector: ns, PodSelector: &metav1.LabelSelector{MatchLabels: maps.Clone(op.Labels)}}},
			},
		},
	}}
}
