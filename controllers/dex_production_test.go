package controllers_test

import (
	"context"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	dexv1 "dexterity.dev/dexterity/api/v1alpha1"
	"dexterity.dev/dexterity/internal/dexdeploy"
)

// memoryDex is a Dex that needs no Secret.
func memoryDex(ns, issuer string) *dexv1.Dex {
	return &dexv1.Dex{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "dex"}, Spec: dexv1.DexSpec{
		Issuer: issuer, Storage: &dexv1.DexStorage{Type: dexv1.DexStorageMemory},
	}}
}

func getObject(g Gomega, ns, name string, obj client.Object) {
	g.Expect(k8s.Get(context.Background(), types.NamespacedName{Namespace: ns, Name: name}, obj)).To(Succeed())
}

// TestDexIngressAndNetworkPolicy: the Ingress routes the issuer's host and path to the Service's
// http port, and the NetworkPolicy selects exactly the Dex's pods (the Deployment's template) and
// admits the gRPC port only from the operator's pods; both are owned, labelled for the manager's
// cache, and go when the spec no longer asks for them.
func TestDexIngressAndNetworkPolicy(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ns := newNamespace(t)
	d := memoryDex(ns, "https://login.example.com/dex")
	d.Spec.Ingress = &dexv1.DexIngress{ClassName: "nginx", TLSSecretName: "login-tls", Annotations: map[string]string{"cert-manager.io/cluster-issuer": "public"}}
	g.Expect(k8s.Create(ctx, d)).To(Succeed())
	key := client.ObjectKeyFromObject(d)

	ing := &networkingv1.Ingress{}
	g.Eventually(func() error { return k8s.Get(ctx, types.NamespacedName{Namespace: ns, Name: "dex"}, ing) }, waitTimeout).Should(Succeed())
	g.Expect(metav1.IsControlledBy(ing, d)).To(BeTrue())
	g.Expect(ing.Labels).To(HaveKeyWithValue(dexdeploy.LabelDex, "dex"))
	g.Expect(ing.Annotations).To(HaveKeyWithValue("cert-manager.io/cluster-issuer", "public"))
	g.Expect(*ing.Spec.IngressClassName).To(Equal("nginx"))
	g.Expect(ing.Spec.TLS).To(Equal([]networkingv1.IngressTLS{{Hosts: []string{"login.example.com"}, SecretName: "login-tls"}}))
	path := ing.Spec.Rules[0].HTTP.Paths[0]
	g.Expect(ing.Spec.Rules[0].Host).To(Equal("login.example.com"))
	g.Expect(path.Path).To(Equal("/dex"))
	svc := &corev1.Service{}
	getObject(g, ns, path.Backend.Service.Name, svc)
	g.Expect(svc.Spec.Ports).To(ContainElement(HaveField("Name", path.Backend.Service.Port.Name)), "the Ingress reaches a port of the Dex's Service")

	np := &networkingv1.NetworkPolicy{}
	g.Eventually(func() error { return k8s.Get(ctx, types.NamespacedName{Namespace: ns, Name: "dex"}, np) }, waitTimeout).Should(Succeed())
	g.Expect(metav1.IsControlledBy(np, d)).To(BeTrue())
	dep := &appsv1.Deployment{}
	getObject(g, ns, "dex", dep)
	sel, err := metav1.LabelSelectorAsSelector(&np.Spec.PodSelector)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(sel.Matches(labels.Set(dep.Spec.Template.Labels))).To(BeTrue(), "the policy selects the Dex's pods")
	other := labels.Set{"app.kubernetes.io/name": "dex", "app.kubernetes.io/instance": "other"}
	g.Expect(sel.Matches(other)).To(BeFalse(), "and no other Dex's")
	// Every rule that admits the gRPC port admits only the operator's pods.
	grpcRules := 0
	for _, rule := range np.Spec.Ingress {
		for _, p := range rule.Ports {
			if p.Port.StrVal != "grpc" && p.Port.IntValue() != dexdeploy.PortGRPC {
				continue
			}
			grpcRules++
			g.Expect(rule.From).To(HaveLen(1))
			g.Expect(rule.From[0].PodSelector).NotTo(BeNil())
			g.Expect(rule.From[0].PodSelector.MatchLabels).To(Equal(map[string]string{"control-plane": "controller-manager"}), "the operator's pods, as the install labels them")
		}
		g.Expect(rule.Ports).NotTo(BeEmpty(), "no rule admits every port")
	}
	g.Expect(grpcRules).To(Equal(1))
	// The Dex's own condition says its routes are applied; envtest runs no pod, so not Ready.
	g.Eventually(dexCondition(key, dexv1.ConditionExposed), waitTimeout).Should(HaveField("Reason", dexv1.ReasonRoutesApplied))

	// Neither is wanted any more: both go, and Exposed with them.
	updateDex(g, key, func(d *dexv1.Dex) {
		d.Spec.Ingress = nil
		d.Spec.NetworkPolicy = &dexv1.DexNetworkPolicy{Enabled: ptr.To(false)}
	})
	g.Eventually(func() bool {
		return apierrors.IsNotFound(k8s.Get(ctx, types.NamespacedName{Namespace: ns, Name: "dex"}, &networkingv1.Ingress{})) &&
			apierrors.IsNotFound(k8s.Get(ctx, types.NamespacedName{Namespace: ns, Name: "dex"}, &networkingv1.NetworkPolicy{}))
	}, waitTimeout).Should(BeTrue())
	g.Eventually(func(g Gomega) bool {
		got := &dexv1.Dex{}
		g.Expect(k8s.Get(ctx, key, got)).To(Succeed())
		for _, c := range got.Status.Conditions {
			if c.Type == dexv1.ConditionExposed {
				return true
			}
		}
		return false
	}, waitTimeout).Should(BeFalse())
}

// minimalHTTPRouteCRD is enough of the Gateway API's HTTPRoute CRD for the API server to serve it.
func minimalHTTPRouteCRD() *apiextensionsv1.CustomResourceDefinition {
	return &apiextensionsv1.CustomResourceDefinition{
		ObjectMeta: metav1.ObjectMeta{Name: "httproutes.gateway.networking.k8s.io",
			// As upstream's: *.k8s.io groups need the approval annotation.
			Annotations: map[string]string{"api-approved.kubernetes.io": "https://github.com/kubernetes-sigs/gateway-api/pull/2466"}},
		Spec: apiextensionsv1.CustomResourceDefinitionSpec{
			Group: "gateway.networking.k8s.io",
			Names: apiextensionsv1.CustomResourceDefinitionNames{Plural: "httproutes", Singular: "httproute", Kind: "HTTPRoute", ListKind: "HTTPRouteList"},
			Scope: apiextensionsv1.NamespaceScoped,
			Versions: []apiextensionsv1.CustomResourceDefinitionVersion{{
				Name: "v1", Served: true, Storage: true,
				Schema: &apiextensionsv1.CustomResourceValidation{OpenAPIV3Schema: &apiextensionsv1.JSONSchemaProps{
					Type: "object", XPreserveUnknownFields: ptr.To(true),
				}},
			}},
		},
	}
}

// TestDexHTTPRoute: without the Gateway API the Dex says so (Exposed=False, GatewayAPIMissing,
// Stalled) and renders no route; once the CRD is installed the HTTPRoute appears, attached to the
// given Gateway and routing the issuer's host and path to the Service's http port.
func TestDexHTTPRoute(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ns := newNamespace(t)
	d := memoryDex(ns, "https://login.example.com/dex")
	d.Spec.HTTPRoute = &dexv1.DexHTTPRoute{ParentRefs: []dexv1.DexGatewayParentRef{{Name: "public", Namespace: "gateways", SectionName: "https"}}}
	g.Expect(k8s.Create(ctx, d)).To(Succeed())
	key := client.ObjectKeyFromObject(d)
	g.Eventually(dexCondition(key, dexv1.ConditionExposed), waitTimeout).Should(And(
		HaveField("Status", metav1.ConditionFalse), HaveField("Reason", dexv1.ReasonGatewayAPIMissing),
		HaveField("Message", ContainSubstring("spec.httpRoute"))))
	g.Eventually(dexCondition(key, dexv1.ConditionStalled), waitTimeout).Should(HaveField("Reason", dexv1.ReasonGatewayAPIMissing))
	g.Expect(dexCondition(key, dexv1.ConditionConfigValid)(g)).To(HaveField("Status", metav1.ConditionTrue), "the rest of the Dex is rendered")

	crd := minimalHTTPRouteCRD()
	g.Expect(k8s.Create(ctx, crd)).To(Succeed())
	t.Cleanup(func() { _ = k8s.Delete(context.Background(), crd) })
	// A change of the Dex (or the resync) looks again.
	updateDex(g, key, func(d *dexv1.Dex) { d.Spec.LogLevel = "debug" })
	route := &unstructured.Unstructured{}
	route.SetGroupVersionKind(dexdeploy.HTTPRouteGVK)
	g.Eventually(func() error { return k8s.Get(ctx, types.NamespacedName{Namespace: ns, Name: "dex"}, route) }, waitTimeout).Should(Succeed())
	g.Expect(route.GetOwnerReferences()).To(ContainElement(HaveField("Kind", "Dex")))
	g.Expect(route.GetLabels()).To(HaveKeyWithValue(dexdeploy.LabelDex, "dex"))
	spec := route.Object["spec"].(map[string]any)
	g.Expect(spec["hostnames"]).To(Equal([]any{"login.example.com"}))
	g.Expect(spec["parentRefs"]).To(Equal([]any{map[string]any{"name": "public", "namespace": "gateways", "sectionName": "https"}}))
	rule := spec["rules"].([]any)[0].(map[string]any)
	g.Expect(rule["matches"]).To(Equal([]any{map[string]any{"path": map[string]any{"type": "PathPrefix", "value": "/dex"}}}))
	backend := rule["backendRefs"].([]any)[0].(map[string]any)
	svc := &corev1.Service{}
	getObject(g, ns, backend["name"].(string), svc)
	g.Expect(svc.Spec.Ports).To(ContainElement(HaveField("Port", int32(backend["port"].(int64)))))
	g.Eventually(dexCondition(key, dexv1.ConditionExposed), waitTimeout).Should(HaveField("Reason", dexv1.ReasonRoutesApplied))

	// The Dex goes: its route goes with it (no garbage collector in envtest).
	g.Expect(k8s.Delete(ctx, d)).To(Succeed())
	g.Eventually(func() bool {
		return apierrors.IsNotFound(k8s.Get(ctx, types.NamespacedName{Namespace: ns, Name: "dex"}, route))
	}, waitTimeout).Should(BeTrue())
}

// TestDexConfigOverridesRefused: an override of a key the operator owns stalls the Dex with
// ConfigValid=False naming the key, and nothing rolls: the config Secret and the Deployment stay
// as they were. A valid override rolls the pods.
func TestDexConfigOverridesRefused(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ns := newNamespace(t)
	d := memoryDex(ns, "http://dex."+ns+".svc:5556/dex")
	g.Expect(k8s.Create(ctx, d)).To(Succeed())
	key := client.ObjectKeyFromObject(d)
	g.Eventually(dexCondition(key, dexv1.ConditionConfigValid), waitTimeout).Should(HaveField("Status", metav1.ConditionTrue))
	config, dep := &corev1.Secret{}, &appsv1.Deployment{}
	getObject(g, ns, "dex-config", config)
	getObject(g, ns, "dex", dep)

	for _, c := range []struct {
		raw, reason, field string
	}{
		{`{"issuer": "https://evil.example.com/dex"}`, dexv1.ReasonInvalidSpec, "spec.configOverrides.issuer"},
		{`{"storage": {"type": "sqlite3", "config": {"file": "/tmp/x"}}}`, dexv1.ReasonInvalidSpec, "spec.configOverrides.storage"},
		{`{"web": {"http": "0.0.0.0:80"}}`, dexv1.ReasonInvalidSpec, "spec.configOverrides.web.http"},
		{`{"grpc": {"tlsClientCA": ""}}`, dexv1.ReasonInvalidSpec, "spec.configOverrides.grpc"},
		{`{"telemetry": {"http": "0.0.0.0:1"}}`, dexv1.ReasonInvalidSpec, "spec.configOverrides.telemetry.http"},
		{`{"staticClients": [{"id": "dexterity-registry", "secret": "s", "redirectURIs": ["https://evil.example.com"]}]}`, dexv1.ReasonInvalidSpec, "spec.configOverrides.staticClients"},
		{`{"expiry": {"idTokens": "forever"}}`, dexv1.ReasonInvalidConfig, "spec.configOverrides.expiry.idTokens"},
	} {
		updateDex(g, key, func(d *dexv1.Dex) { d.Spec.ConfigOverrides = &apiextensionsv1.JSON{Raw: []byte(c.raw)} })
		g.Eventually(dexCondition(key, dexv1.ConditionConfigValid), waitTimeout).Should(And(
			HaveField("Status", metav1.ConditionFalse), HaveField("Reason", c.reason), HaveField("Message", ContainSubstring(c.field))), c.raw)
		g.Expect(dexCondition(key, dexv1.ConditionStalled)(g)).To(HaveField("Status", metav1.ConditionTrue))
		cur := &corev1.Secret{}
		getObject(g, ns, "dex-config", cur)
		g.Expect(cur.ResourceVersion).To(Equal(config.ResourceVersion), "the config was not rewritten")
		curDep := &appsv1.Deployment{}
		getObject(g, ns, "dex", curDep)
		g.Expect(curDep.Generation).To(Equal(dep.Generation), "nothing rolled")
	}

	updateDex(g, key, func(d *dexv1.Dex) {
		d.Spec.ConfigOverrides = &apiextensionsv1.JSON{Raw: []byte(`{"oauth2": {"alwaysShowLoginScreen": true}}`)}
	})
	g.Eventually(dexCondition(key, dexv1.ConditionConfigValid), waitTimeout).Should(HaveField("Status", metav1.ConditionTrue))
	g.Eventually(func(g Gomega) string {
		getObject(g, ns, "dex-config", config)
		return string(config.Data["config.yaml"])
	}, waitTimeout).Should(ContainSubstring(`"alwaysShowLoginScreen": true`))
	g.Eventually(func(g Gomega) string {
		cur := &appsv1.Deployment{}
		getObject(g, ns, "dex", cur)
		return cur.Spec.Template.Annotations[dexdeploy.AnnotationConfigHash]
	}, waitTimeout).ShouldNot(Equal(dep.Spec.Template.Annotations[dexdeploy.AnnotationConfigHash]), "a valid override rolls the pods")
}

// TestDexProductionAdmission: what one object can get wrong is refused by the API server, naming
// the field.
func TestDexProductionAdmission(t *testing.T) {
	ns := newNamespace(t)
	for _, c := range []struct {
		name  string
		edit  func(*dexv1.Dex)
		field string
	}{
		{"selector label in podLabels", func(d *dexv1.Dex) { d.Spec.PodLabels = map[string]string{"app.kubernetes.io/instance": "other"} }, "spec.podLabels"},
		{"operator's volume name", func(d *dexv1.Dex) {
			d.Spec.Volumes = []corev1.Volume{{Name: "config", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}}}
		}, "spec.volumes"},
		{"mount over the operator's config", func(d *dexv1.Dex) {
			d.Spec.VolumeMounts = []corev1.VolumeMount{{Name: "x", MountPath: "/etc/dex/config"}}
		}, "spec.volumeMounts"},
		{"trusted proxy not a CIDR", func(d *dexv1.Dex) {
			d.Spec.Web = &dexv1.DexWeb{ClientRemoteIP: &dexv1.DexClientRemoteIP{TrustedProxies: []string{"10.0.0.1"}}}
		}, "spec.web.clientRemoteIP.trustedProxies"},
		{"bad log format", func(d *dexv1.Dex) { d.Spec.LogFormat = "xml" }, "spec.logFormat"},
		// Hostile review: the operator's pods' label would make its Services and every Dex's
		// gRPC NetworkPolicy select the Dex; a header without trusted proxies is believed from
		// anyone. (The controller refuses both too, for objects stored before these rules.)
		{"the operator's pod label", func(d *dexv1.Dex) {
			d.Spec.PodLabels = map[string]string{"control-plane": "controller-manager"}
		}, "spec.podLabels"},
		{"client address header without trusted proxies", func(d *dexv1.Dex) {
			d.Spec.Web = &dexv1.DexWeb{ClientRemoteIP: &dexv1.DexClientRemoteIP{Header: "X-Forwarded-For"}}
		}, "spec.web.clientRemoteIP.trustedProxies"},
		{"route without a parent", func(d *dexv1.Dex) { d.Spec.HTTPRoute = &dexv1.DexHTTPRoute{} }, "spec.httpRoute.parentRefs"},
		{"web TLS with an http issuer", func(d *dexv1.Dex) {
			d.Spec.Issuer = "http://dex." + ns + ".svc:5556/dex"
			d.Spec.Web = &dexv1.DexWeb{TLS: &dexv1.DexWebTLS{SecretRef: dexv1.LocalObjectReference{Name: "tls"}}}
		}, "spec.issuer"},
		{"postgres TLS disabled with certificates", func(d *dexv1.Dex) {
			d.Spec.Storage = &dexv1.DexStorage{Type: dexv1.DexStoragePostgres, Postgres: &dexv1.DexPostgresStorage{
				Host: "db", Database: "dex", User: "dex", PasswordSecretRef: dexv1.SecretKeyRef{Name: "pg", Key: "password"},
				SSL: &dexv1.DexPostgresSSL{Mode: "disable", CASecretRef: &dexv1.SecretKeyRef{Name: "ca", Key: "ca.crt"}},
			}}
		}, "spec.storage.postgres.ssl"},
	} {
		t.Run(c.name, func(t *testing.T) {
			g := NewWithT(t)
			d := memoryDex(ns, "https://login.example.com/dex")
			d.Name = "bad"
			c.edit(d)
			err := k8s.Create(context.Background(), d)
			g.Expect(apierrors.IsInvalid(err)).To(BeTrue(), "got %v", err)
			g.Expect(err.Error()).To(ContainSubstring(c.field))
		})
	}
}

// TestDexProductionSpecRefusedByController: what admission cannot check alone stalls the Dex with
// InvalidSpec naming the field, instead of an API error retried forever.
func TestDexProductionSpecRefusedByController(t *testing.T) {
	for _, c := range []struct {
		name  string
		edit  func(*dexv1.Dex)
		field string
	}{
		{"env the operator sets", func(d *dexv1.Dex) {
			d.Spec.Env = []corev1.EnvVar{{Name: "DEX_API_CONNECTORS_CRUD", Value: "false"}}
		}, "spec.env[0].name"},
		{"mount of a volume that is not there", func(d *dexv1.Dex) {
			d.Spec.VolumeMounts = []corev1.VolumeMount{{Name: "missing", MountPath: "/srv"}}
		}, "spec.volumeMounts[0].name"},
		{"invalid pod label", func(d *dexv1.Dex) { d.Spec.PodLabels = map[string]string{"team": "a b"} }, "spec.podLabels"},
		{"ingress for an IP issuer", func(d *dexv1.Dex) {
			d.Spec.Issuer = "http://127.0.0.1:5556/dex"
			d.Spec.Ingress = &dexv1.DexIngress{}
		}, "spec.issuer"},
		// Hostile review: what the operator would create with its own rights.
		{"ingress for a wildcard issuer host", func(d *dexv1.Dex) {
			d.Spec.Issuer = "https://*.example.com/dex"
			d.Spec.Ingress = &dexv1.DexIngress{}
		}, "spec.issuer"},
		{"ingress configuration snippet", func(d *dexv1.Dex) {
			d.Spec.Ingress = &dexv1.DexIngress{Annotations: map[string]string{"nginx.ingress.kubernetes.io/server-snippet": "location / { }"}}
		}, "spec.ingress.annotations[nginx.ingress.kubernetes.io/server-snippet]"},
		{"hostPath volume", func(d *dexv1.Dex) {
			d.Spec.Volumes = []corev1.Volume{{Name: "root", VolumeSource: corev1.VolumeSource{HostPath: &corev1.HostPathVolumeSource{Path: "/"}}}}
		}, "spec.volumes[0]"},
		{"mount over Dex's config through an unclean path", func(d *dexv1.Dex) {
			d.Spec.Volumes = []corev1.Volume{{Name: "x", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}}}
			d.Spec.VolumeMounts = []corev1.VolumeMount{{Name: "x", MountPath: "/etc//dex/config"}}
		}, "spec.volumeMounts[0].mountPath"},
		{"mount over the image's programs", func(d *dexv1.Dex) {
			d.Spec.Volumes = []corev1.Volume{{Name: "x", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}}}
			d.Spec.VolumeMounts = []corev1.VolumeMount{{Name: "x", MountPath: "/usr/local/bin"}}
		}, "spec.volumeMounts[0].mountPath"},
	} {
		t.Run(c.name, func(t *testing.T) {
			g := NewWithT(t)
			ns := newNamespace(t)
			d := memoryDex(ns, "https://login.example.com/dex")
			c.edit(d)
			g.Expect(k8s.Create(context.Background(), d)).To(Succeed())
			g.Eventually(dexCondition(client.ObjectKeyFromObject(d), dexv1.ConditionStalled), waitTimeout).Should(And(
				HaveField("Reason", dexv1.ReasonInvalidSpec), HaveField("Message", ContainSubstring(c.field))))
			g.Consistently(func() bool {
				return apierrors.IsNotFound(k8s.Get(context.Background(), types.NamespacedName{Namespace: ns, Name: "dex"}, &appsv1.Deployment{}))
			}, time.Second).Should(BeTrue(), "nothing rolled out")
		})
	}
}

// TestDexServiceMonitor: spec.serviceMonitor without the Prometheus Operator says so
// (Monitored=False, PrometheusOperatorMissing) and renders nothing; with its CRD the ServiceMonitor
// selects the Dex's Service and scrapes its telemetry port at the interval, with the labels asked
// for; disabled again, it goes.
func TestDexServiceMonitor(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ns := newNamespace(t)
	d := memoryDex(ns, "https://login.example.com/dex")
	d.Spec.ServiceMonitor = &dexv1.DexServiceMonitor{Enabled: true, Interval: "15s", Labels: map[string]string{"release": "prometheus"}}
	g.Expect(k8s.Create(ctx, d)).To(Succeed())
	key := client.ObjectKeyFromObject(d)
	g.Eventually(dexCondition(key, dexv1.ConditionMonitored), waitTimeout).Should(And(
		HaveField("Status", metav1.ConditionFalse), HaveField("Reason", dexv1.ReasonPrometheusOperatorMissing),
		HaveField("Message", ContainSubstring("spec.serviceMonitor"))))
	g.Expect(dexCondition(key, dexv1.ConditionConfigValid)(g)).To(HaveField("Status", metav1.ConditionTrue), "the rest of the Dex is rendered")

	crd := minimalHTTPRouteCRD()
	crd.Name = "servicemonitors.monitoring.coreos.com"
	crd.Annotations = nil
	crd.Spec.Group = "monitoring.coreos.com"
	crd.Spec.Names = apiextensionsv1.CustomResourceDefinitionNames{Plural: "servicemonitors", Singular: "servicemonitor", Kind: "ServiceMonitor", ListKind: "ServiceMonitorList"}
	g.Expect(k8s.Create(ctx, crd)).To(Succeed())
	t.Cleanup(func() { _ = k8s.Delete(context.Background(), crd) })
	updateDex(g, key, func(d *dexv1.Dex) { d.Spec.LogLevel = "debug" })
	sm := &unstructured.Unstructured{}
	sm.SetGroupVersionKind(dexdeploy.ServiceMonitorGVK)
	g.Eventually(func() error { return k8s.Get(ctx, types.NamespacedName{Namespace: ns, Name: "dex"}, sm) }, waitTimeout).Should(Succeed())
	g.Expect(sm.GetOwnerReferences()).To(ContainElement(HaveField("Kind", "Dex")))
	g.Expect(sm.GetLabels()).To(HaveKeyWithValue("release", "prometheus"))
	spec := sm.Object["spec"].(map[string]any)
	g.Expect(spec["endpoints"]).To(Equal([]any{map[string]any{"port": "telemetry", "path": "/metrics", "interval": "15s"}}))
	svc := &corev1.Service{}
	getObject(g, ns, "dex", svc)
	for k, v := range spec["selector"].(map[string]any)["matchLabels"].(map[string]any) {
		g.Expect(svc.Labels).To(HaveKeyWithValue(k, v), "the ServiceMonitor selects the Dex's Service")
	}
	g.Expect(svc.Spec.Ports).To(ContainElement(HaveField("Name", "telemetry")))
	g.Eventually(dexCondition(key, dexv1.ConditionMonitored), waitTimeout).Should(HaveField("Reason", dexv1.ReasonServiceMonitorApplied))

	updateDex(g, key, func(d *dexv1.Dex) { d.Spec.ServiceMonitor.Enabled = false })
	g.Eventually(func() bool {
		return apierrors.IsNotFound(k8s.Get(ctx, types.NamespacedName{Namespace: ns, Name: "dex"}, sm))
	}, waitTimeout).Should(BeTrue())
}
