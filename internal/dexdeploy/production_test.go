package dexdeploy

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/yaml"

	dexv1 "dexterity.dev/dexterity/api/v1alpha1"
)

// productionDex is a Dex with every production setting of the kind set.
func productionDex() *dexv1.Dex {
	d := dexObject(&dexv1.DexStorage{Type: dexv1.DexStoragePostgres, Postgres: &dexv1.DexPostgresStorage{
		Host: "db.example.com", Database: "dex", User: "dex", PasswordSecretRef: dexv1.SecretKeyRef{Name: "pg", Key: "password"},
		SSLMode: "verify-full",
		SSL: &dexv1.DexPostgresSSL{Mode: "verify-ca", CASecretRef: &dexv1.SecretKeyRef{Name: "pg-ca", Key: "ca.pem"},
			CertSecretRef: &dexv1.LocalObjectReference{Name: "pg-client"}},
		MaxOpenConns: 20, MaxIdleConns: 10, ConnMaxLifetime: 300, ConnectionTimeout: 5,
	}})
	d.Spec.Replicas = ptr.To[int32](2)
	d.Spec.LogFormat = "text"
	d.Spec.Web = &dexv1.DexWeb{
		TLS:            &dexv1.DexWebTLS{SecretRef: dexv1.LocalObjectReference{Name: "dex-web-tls"}},
		ClientRemoteIP: &dexv1.DexClientRemoteIP{Header: "X-Forwarded-For", TrustedProxies: []string{"10.0.0.0/8"}},
		Headers:        &dexv1.DexWebHeaders{StrictTransportSecurity: "max-age=31536000", XFrameOptions: "DENY", ContentSecurityPolicy: "default-src 'self'"},
	}
	d.Spec.Ingress = &dexv1.DexIngress{ClassName: "nginx", TLSSecretName: "dex-public-tls", Annotations: map[string]string{"cert-manager.io/cluster-issuer": "letsencrypt"}}
	d.Spec.HTTPRoute = &dexv1.DexHTTPRoute{ParentRefs: []dexv1.DexGatewayParentRef{{Name: "public", Namespace: "gateways", SectionName: "https"}}}
	d.Spec.Volumes = []corev1.Volume{{Name: "ldap-ca", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{LocalObjectReference: corev1.LocalObjectReference{Name: "ldap-ca"}}}}}
	d.Spec.VolumeMounts = []corev1.VolumeMount{{Name: "ldap-ca", MountPath: "/etc/ssl/ldap"}}
	d.Spec.ImagePullSecrets = []corev1.LocalObjectReference{{Name: "registry"}}
	d.Spec.TopologySpreadConstraints = []corev1.TopologySpreadConstraint{{MaxSkew: 1, TopologyKey: "topology.kubernetes.io/zone", WhenUnsatisfiable: corev1.ScheduleAnyway}}
	d.Spec.PriorityClassName = "system-cluster-critical"
	d.Spec.PodLabels = map[string]string{"team": "platform"}
	d.Spec.ServiceAccountAnnotations = map[string]string{"eks.amazonaws.com/role-arn": "arn:aws:iam::1:role/dex"}
	return d
}

// TestProductionConfig: each production setting lands where Dex's configuration has it.
func TestProductionConfig(t *testing.T) {
	g := NewWithT(t)
	m, env := renderedConfig(t, productionDex())
	web := m["web"].(map[string]any)
	g.Expect(web).NotTo(HaveKey("http"), "one port, one scheme: HTTPS only")
	g.Expect(web).To(HaveKeyWithValue("https", "0.0.0.0:5556"))
	g.Expect(web).To(HaveKeyWithValue("tlsCert", WebTLSDir+"/tls.crt"))
	g.Expect(web).To(HaveKeyWithValue("tlsKey", WebTLSDir+"/tls.key"))
	g.Expect(web["clientRemoteIP"]).To(Equal(map[string]any{"header": "X-Forwarded-For", "trustedProxies": []any{"10.0.0.0/8"}}))
	g.Expect(web["headers"]).To(Equal(map[string]any{
		"Strict-Transport-Security": "max-age=31536000", "X-Frame-Options": "DENY", "Content-Security-Policy": "default-src 'self'",
	}))
	g.Expect(m["logger"]).To(HaveKeyWithValue("format", "text"))
	st := m["storage"].(map[string]any)["config"].(map[string]any)
	g.Expect(st["ssl"]).To(Equal(map[string]any{
		"mode": "verify-ca", "caFile": PostgresCADir + "/ca.crt", "certFile": PostgresTLS + "/tls.crt", "keyFile": PostgresTLS + "/tls.key",
	}), "ssl.mode wins over sslMode; the files are where the Deployment mounts them")
	g.Expect(st).To(And(HaveKeyWithValue("maxOpenConns", 20.0), HaveKeyWithValue("maxIdleConns", 10.0),
		HaveKeyWithValue("connMaxLifetime", 300.0), HaveKeyWithValue("connectionTimeout", 5.0)))
	g.Expect(env).To(HaveLen(1), "certificates are files, not environment")

	// Defaults: JSON logs, plain HTTP.
	m, _ = renderedConfig(t, dexObject(nil))
	g.Expect(m["logger"]).To(HaveKeyWithValue("format", "json"))
	g.Expect(m["web"]).To(Equal(map[string]any{"http": "0.0.0.0:5556"}))
}

// TestProductionDeployment: the pod settings, the mounted certificates, the pod labels (never the
// selector's), and the Secret keys the controller checks and hashes.
func TestProductionDeployment(t *testing.T) {
	g := NewWithT(t)
	d := productionDex()
	d.Spec.PodLabels["app.kubernetes.io/instance"] = "hijack" // admission refuses it; rendering ignores it anyway
	_, env, err := Config(d, false)
	g.Expect(err).NotTo(HaveOccurred())
	dep := Deployment(d, env, "h")
	pod := dep.Spec.Template.Spec
	g.Expect(pod.ImagePullSecrets).To(Equal(d.Spec.ImagePullSecrets))
	g.Expect(pod.TopologySpreadConstraints).To(Equal(d.Spec.TopologySpreadConstraints))
	g.Expect(pod.PriorityClassName).To(Equal("system-cluster-critical"))
	g.Expect(dep.Spec.Template.Labels).To(HaveKeyWithValue("team", "platform"))
	g.Expect(dep.Spec.Template.Labels).To(HaveKeyWithValue("app.kubernetes.io/instance", "dex"), "the selector's labels win")
	for k, v := range dep.Spec.Selector.MatchLabels {
		g.Expect(dep.Spec.Template.Labels).To(HaveKeyWithValue(k, v))
	}
	mounts := map[string]string{}
	for _, m := range pod.Containers[0].VolumeMounts {
		mounts[m.Name] = m.MountPath
	}
	g.Expect(mounts).To(And(HaveKeyWithValue("web-tls", WebTLSDir), HaveKeyWithValue("postgres-ca", PostgresCADir),
		HaveKeyWithValue("postgres-tls", PostgresTLS), HaveKeyWithValue("ldap-ca", "/etc/ssl/ldap")))
	vols := map[string]corev1.Volume{}
	for _, v := range pod.Volumes {
		vols[v.Name] = v
	}
	g.Expect(vols["web-tls"].Secret.SecretName).To(Equal("dex-web-tls"))
	g.Expect(vols["postgres-ca"].Secret.Items).To(Equal([]corev1.KeyToPath{{Key: "ca.pem", Path: "ca.crt"}}))
	g.Expect(*vols["postgres-tls"].Secret.DefaultMode).To(Equal(int32(0o640)), "Postgres clients refuse a key others can read")
	g.Expect(vols).To(HaveKey("ldap-ca"))
	// The probes stay on the telemetry port, which Dex always serves over HTTP.
	g.Expect(pod.Containers[0].ReadinessProbe.HTTPGet.Port).To(Equal(intstr.FromString("telemetry")))

	var refs []string
	for _, r := range SecretRefs(d) {
		refs = append(refs, r.Field+" "+r.Ref.Name+"/"+r.Ref.Key)
	}
	g.Expect(refs).To(ContainElements(
		"spec.web.tls.secretRef dex-web-tls/tls.crt", "spec.web.tls.secretRef dex-web-tls/tls.key",
		"spec.storage.postgres.ssl.caSecretRef pg-ca/ca.pem",
		"spec.storage.postgres.ssl.certSecretRef pg-client/tls.crt", "spec.storage.postgres.ssl.certSecretRef pg-client/tls.key",
	))

	sa := ServiceAccount(d)
	g.Expect(sa.Annotations).To(HaveKeyWithValue("eks.amazonaws.com/role-arn", "arn:aws:iam::1:role/dex"))
	svc := Service(d)
	g.Expect(*svc.Spec.Ports[0].AppProtocol).To(Equal("https"))
	g.Expect(DiscoveryURL(d)).To(Equal("https://dex.platform.svc:5556/dex"), "the Service serves HTTPS too")
	g.Expect(OIDCProviderSpec(d, []byte("PEM")).CABundle).To(Equal("PEM"))
}

func TestIngressAndHTTPRoute(t *testing.T) {
	g := NewWithT(t)
	d := productionDex()
	ing := Ingress(d)
	g.Expect(*ing.Spec.IngressClassName).To(Equal("nginx"))
	g.Expect(ing.Annotations).To(HaveKeyWithValue("cert-manager.io/cluster-issuer", "letsencrypt"))
	g.Expect(ing.Spec.TLS).To(Equal([]networkingv1.IngressTLS{{Hosts: []string{"dex.example.com"}, SecretName: "dex-public-tls"}}))
	rule := ing.Spec.Rules[0]
	g.Expect(rule.Host).To(Equal("dex.example.com"))
	g.Expect(rule.HTTP.Paths[0].Path).To(Equal("/dex"))
	g.Expect(*rule.HTTP.Paths[0].PathType).To(Equal(networkingv1.PathTypePrefix))
	g.Expect(rule.HTTP.Paths[0].Backend.Service.Name).To(Equal("dex"))
	g.Expect(rule.HTTP.Paths[0].Backend.Service.Port.Name).To(Equal("http"))

	d.Spec.Issuer = "https://login.example.com"
	_, path := IssuerHostPath(d)
	g.Expect(path).To(Equal("/"), "an issuer without a path routes everything")

	d = productionDex()
	r := HTTPRoute(d)
	g.Expect(r.GroupVersionKind()).To(Equal(HTTPRouteGVK))
	b, err := json.Marshal(r.Object["spec"])
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(string(b)).To(MatchJSON(`{
		"parentRefs": [{"name": "public", "namespace": "gateways", "sectionName": "https"}],
		"hostnames": ["dex.example.com"],
		"rules": [{"matches": [{"path": {"type": "PathPrefix", "value": "/dex"}}], "backendRefs": [{"name": "dex", "port": 5556}]}]
	}`))
	g.Expect(r.GetLabels()).To(HaveKeyWithValue(LabelDex, "dex"))
}

func TestNetworkPolicy(t *testing.T) {
	g := NewWithT(t)
	d := dexObject(nil)
	g.Expect(NetworkPolicyEnabled(d)).To(BeTrue(), "on by default")
	np := NetworkPolicy(d, OperatorPeer{Namespace: "dexterity-system", Labels: map[string]string{"control-plane": "controller-manager"}})
	g.Expect(np.Spec.PodSelector.MatchLabels).To(Equal(SelectorLabels(d)))
	g.Expect(np.Spec.PolicyTypes).To(Equal([]networkingv1.PolicyType{networkingv1.PolicyTypeIngress}), "egress is not restricted")
	g.Expect(np.Spec.Ingress).To(HaveLen(2))
	open, grpc := np.Spec.Ingress[0], np.Spec.Ingress[1]
	g.Expect(open.From).To(BeEmpty(), "http and telemetry admit everyone")
	g.Expect(open.Ports).To(HaveLen(2))
	g.Expect(grpc.Ports).To(HaveLen(1))
	g.Expect(grpc.Ports[0].Port.StrVal).To(Equal("grpc"))
	g.Expect(grpc.From).To(HaveLen(1))
	g.Expect(grpc.From[0].NamespaceSelector.MatchLabels).To(Equal(map[string]string{"kubernetes.io/metadata.name": "dexterity-system"}))
	g.Expect(grpc.From[0].PodSelector.MatchLabels).To(Equal(map[string]string{"control-plane": "controller-manager"}))

	d.Spec.NetworkPolicy = &dexv1.DexNetworkPolicy{Enabled: ptr.To(false)}
	g.Expect(NetworkPolicyEnabled(d)).To(BeFalse())
}

// TestConfigOverrides: overrides merge into the rendered config; a key the operator owns, a key
// Dex does not have (or spells otherwise), a value Dex would not load, or a key the image's
// release does not know is refused naming it, and nothing is rendered.
func TestConfigOverrides(t *testing.T) {
	withOverrides := func(raw string) *dexv1.Dex {
		d := dexObject(nil)
		d.Spec.OAuth2 = &dexv1.DexOAuth2{SkipApprovalScreen: true}
		d.Spec.ConfigOverrides = &apiextensionsv1.JSON{Raw: []byte(raw)}
		return d
	}
	t.Run("merged", func(t *testing.T) {
		g := NewWithT(t)
		m, _ := renderedConfig(t, withOverrides(`{
			"oauth2": {"alwaysShowLoginScreen": true, "responseTypes": ["code"]},
			"web": {"tlsMinVersion": "1.3", "allowedHeaders": ["X-Custom"]},
			"frontend": {"dir": "/srv/dex/web", "extra": {"tos": "https://example.com/tos"}},
			"expiry": {"idTokens": "1h", "refreshTokens": {"absoluteLifetime": "720h"}},
			"signer": {"type": "local", "config": {"keysRotationPeriod": "6h"}}
		}`))
		g.Expect(m["oauth2"]).To(Equal(map[string]any{"skipApprovalScreen": true, "alwaysShowLoginScreen": true, "responseTypes": []any{"code"}}), "objects merge key by key")
		g.Expect(m["web"]).To(Equal(map[string]any{"http": "0.0.0.0:5556", "tlsMinVersion": "1.3", "allowedHeaders": []any{"X-Custom"}}))
		g.Expect(m["telemetry"]).To(Equal(map[string]any{"http": "0.0.0.0:5558"}))
		g.Expect(m).To(HaveKey("signer"))
		g.Expect(m["issuer"]).To(Equal("https://dex.example.com/dex"))
	})
	for _, c := range []struct{ name, raw, path string }{
		{"issuer", `{"issuer": "https://evil.example.com"}`, "spec.configOverrides.issuer"},
		{"issuer in another case", `{"Issuer": "https://evil.example.com"}`, "spec.configOverrides.Issuer"},
		{"storage", `{"storage": {"type": "memory"}}`, "spec.configOverrides.storage"},
		{"profiling", `{"telemetry": {"enableProfiling": true}}`, "spec.configOverrides.telemetry.enableProfiling"},
		{"web address", `{"web": {"http": "0.0.0.0:80"}}`, "spec.configOverrides.web.http"},
		{"web https", `{"web": {"https": "0.0.0.0:443"}}`, "spec.configOverrides.web.https"},
		{"web certificate", `{"web": {"tlsCert": "/tmp/cert"}}`, "spec.configOverrides.web.tlsCert"},
		{"web certificate in another case", `{"web": {"TLSKey": "/tmp/key"}}`, "spec.configOverrides.web.TLSKey"},
		{"web replaced", `{"web": null}`, "spec.configOverrides.web"},
		{"web not an object", `{"web": "x"}`, "spec.configOverrides.web"},
		{"grpc", `{"grpc": {"reflection": true}}`, "spec.configOverrides.grpc"},
		{"telemetry address", `{"telemetry": {"http": "0.0.0.0:9000"}}`, "spec.configOverrides.telemetry.http"},
		{"password db", `{"enablePasswordDB": true}`, "spec.configOverrides.enablePasswordDB"},
		{"static clients", `{"staticClients": [{"id": "dexterity-registry", "secret": "x"}]}`, "spec.configOverrides.staticClients"},
		{"connectors", `{"connectors": []}`, "spec.configOverrides.connectors"},
		{"unknown key", `{"oauth3": {}}`, "spec.configOverrides.oauth3"},
		{"unknown nested key", `{"oauth2": {"skipApproval": true}}`, "spec.configOverrides.oauth2.skipApproval"},
		{"misspelt key", `{"oauth2": {"SkipApprovalScreen": true}}`, "spec.configOverrides.oauth2.SkipApprovalScreen"},
		{"wrong type", `{"oauth2": {"skipApprovalScreen": "yes"}}`, "spec.configOverrides"},
		{"bad duration", `{"expiry": {"idTokens": "1 day"}}`, "spec.configOverrides.expiry.idTokens"},
		{"bad log level", `{"logger": {"level": "loud"}}`, "spec.configOverrides.logger.level"},
		{"bad TLS version", `{"web": {"tlsMinVersion": "1.1"}}`, "spec.configOverrides.web.tlsMinVersion"},
		{"bad proxy", `{"web": {"clientRemoteIP": {"trustedProxies": ["10.0.0.1"]}}}`, "spec.configOverrides.web.clientRemoteIP.trustedProxies[0]"},
		{"bad signer", `{"signer": {"type": "hsm"}}`, "spec.configOverrides.signer.type"},
		{"not an object", `["x"]`, "spec.configOverrides"},
		{"too large", `{"frontend": {"extra": {"x": "` + strings.Repeat("x", MaxConfigOverridesSize) + `"}}}`, "spec.configOverrides"},
	} {
		t.Run(c.name, func(t *testing.T) {
			g := NewWithT(t)
			b, _, err := Config(withOverrides(c.raw), false)
			g.Expect(b).To(BeNil())
			var ce *ConfigError
			g.Expect(err).To(BeAssignableToTypeOf(ce))
			g.Expect(err.(*ConfigError).Path).To(Equal(c.path), "%v", err)
		})
	}
	t.Run("owned keys are marked", func(t *testing.T) {
		g := NewWithT(t)
		_, _, err := Config(withOverrides(`{"grpc": {}}`), false)
		g.Expect(err.(*ConfigError).Owned).To(BeTrue())
		_, _, err = Config(withOverrides(`{"oauth3": {}}`), false)
		g.Expect(err.(*ConfigError).Owned).To(BeFalse())
	})
	t.Run("a key the image's release does not know", func(t *testing.T) {
		g := NewWithT(t)
		d := withOverrides(`{"signer": {"type": "local"}}`)
		d.Spec.Image = "ghcr.io/dexidp/dex:v2.44.0"
		_, _, err := Config(d, false)
		g.Expect(err).To(MatchError(And(ContainSubstring("spec.configOverrides.signer"), ContainSubstring("v2.44.0"), ContainSubstring("v2.45.0"))))
		d.Spec.Image = "ghcr.io/dexidp/dex:v2.45.1"
		_, _, err = Config(d, false)
		g.Expect(err).NotTo(HaveOccurred())
		d.Spec.Image = "registry.example.com/dex@sha256:0123"
		_, _, err = Config(d, false)
		g.Expect(err).NotTo(HaveOccurred(), "a digest says no release: Dex decides")
	})
	t.Run("reserved environment", func(t *testing.T) {
		g := NewWithT(t)
		for _, name := range []string{"DEX_API_CONNECTORS_CRUD", "DEX_EXPAND_ENV", "DEX_POSTGRES_PASSWORD", "DEX_STATIC_PASSWORD_HASH_0"} {
			g.Expect(ReservedEnvName(name)).To(BeTrue(), name)
		}
		g.Expect(ReservedEnvName("DEX_GITHUB_CLIENT_SECRET")).To(BeFalse())
	})
}

// TestProductionFieldsBounded: every string, list and map the production settings added to the
// Dex kind has a bound in the generated CRD (design.md §7), and a description (kubectl explain).
func TestProductionFieldsBounded(t *testing.T) {
	g := NewWithT(t)
	raw, err := os.ReadFile(filepath.Join("..", "..", "config", "crd", "bases", "dexterity.dev_dexes.yaml"))
	g.Expect(err).NotTo(HaveOccurred())
	var crd apiextensionsv1.CustomResourceDefinition
	g.Expect(yaml.Unmarshal(raw, &crd)).To(Succeed())
	spec := crd.Spec.Versions[0].Schema.OpenAPIV3Schema.Properties["spec"]
	web := spec.Properties["web"]
	pg := spec.Properties["storage"].Properties["postgres"]
	fields := map[string]apiextensionsv1.JSONSchemaProps{
		"web.tls": web.Properties["tls"], "web.clientRemoteIP": web.Properties["clientRemoteIP"], "web.headers": web.Properties["headers"],
		"storage.postgres.ssl": pg.Properties["ssl"],
	}
	for _, name := range []string{"ingress", "httpRoute", "logFormat", "volumes", "volumeMounts", "imagePullSecrets",
		"topologySpreadConstraints", "priorityClassName", "podLabels", "serviceAccountAnnotations", "networkPolicy", "configOverrides"} {
		fields[name] = spec.Properties[name]
	}
	for _, name := range []string{"maxOpenConns", "maxIdleConns", "connMaxLifetime", "connectionTimeout"} {
		p := pg.Properties[name]
		g.Expect(p.Maximum).NotTo(BeNil(), "storage.postgres.%s", name)
		g.Expect(p.Description).NotTo(BeEmpty(), "storage.postgres.%s", name)
	}
	for name, p := range fields {
		g.Expect(p.Description).NotTo(BeEmpty(), "spec.%s has a description for kubectl explain", name)
		g.Expect(unbounded("spec."+name, p)).To(BeEmpty(), "spec.%s", name)
	}
}

// unbounded lists the paths under s without a bound, except inside Kubernetes' own types (Volume,
// VolumeMount, TopologySpreadConstraint: bounded by their list's maxItems and by the API server's
// validation of the Deployment).
func unbounded(path string, s apiextensionsv1.JSONSchemaProps) []string {
	var out []string
	switch s.Type {
	case "string":
		if s.MaxLength == nil && len(s.Enum) == 0 {
			out = append(out, path)
		}
	case "array":
		if s.MaxItems == nil {
			out = append(out, path)
		}
		kubeType := strings.HasSuffix(path, "volumes") || strings.HasSuffix(path, "volumeMounts") ||
			strings.HasSuffix(path, "topologySpreadConstraints") || strings.HasSuffix(path, "imagePullSecrets")
		if s.Items != nil && s.Items.Schema != nil && !kubeType {
			out = append(out, unbounded(path+"[*]", *s.Items.Schema)...)
		}
	case "object", "":
		free := s.AdditionalProperties != nil || (s.XPreserveUnknownFields != nil && *s.XPreserveUnknownFields)
		if free && s.MaxProperties == nil {
			out = append(out, path)
		}
		for n, p := range s.Properties {
			out = append(out, unbounded(path+"."+n, p)...)
		}
	}
	return out
}
