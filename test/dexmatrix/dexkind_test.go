package dexmatrix_test

import (
	"context"
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	dexv1 "dexterity.dev/dexterity/api/v1alpha1"
	"dexterity.dev/dexterity/internal/dex"
	"dexterity.dev/dexterity/internal/dexdeploy"
	"dexterity.dev/dexterity/test/harness"
	"dexterity.dev/dexterity/test/kubelet"
)

// demoHash is the bcrypt hash of "password".
const demoHash = "$2a$10$vrAFyljbDVbAqNauKPMj7eWGAPsTdbUTgJ8HsJ/OdG0pjjrL0X1F."

// dexKindReleases are the releases the Dex kind runs with: every supported one (with the
// connector API, and reached over mutual TLS, which the Dex kind always renders); test/dexkind
// covers the latest in more depth.
func dexKindReleases() []harness.DexRelease {
	var out []harness.DexRelease
	for _, r := range harness.DexReleases {
		if r.ConnectorAPI && r.MTLS {
			out = append(out, r)
		}
	}
	return out
}

// TestDexKind: a Dex object with spec.image naming a release renders a Deployment whose config
// loads in that release (the kubelet emulator runs it with the release's binary and its
// kubernetes storage against the API server), the operator reaches it through the generated mTLS
// and sees the release, and a tenant's client and a connector register and issue a token the
// registry accepts.
func TestDexKind(t *testing.T) {
	for _, rel := range dexKindReleases() {
		t.Run(rel.Version, func(t *testing.T) { testDexKind(t, rel) })
	}
}

func testDexKind(t *testing.T, rel harness.DexRelease) {
	g := NewWithT(t)
	ctx := context.Background()
	binary, err := harness.DexBinary(rel.Version)
	g.Expect(err).NotTo(HaveOccurred())
	node, err := kubelet.Start(ctx, kubelet.Options{
		Config: restConfig,
		Files:  map[string]string{dexdeploy.BinaryPath: binary},
		LogDir: filepath.Join(t.TempDir(), "pods"),
	})
	g.Expect(err).NotTo(HaveOccurred())
	defer node.Stop()

	ns := "kind-" + strings.ReplaceAll(rel.Version, ".", "-")
	g.Expect(k8s.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}})).To(Succeed())
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("--- Dex pod log ---\n%s", node.Logs(ns, "dex"))
		}
	})
	issuer := "http://dex." + ns + ".svc:5556/dex"
	g.Expect(k8s.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "users"}, StringData: map[string]string{"admin": demoHash}})).To(Succeed())
	d := &dexv1.Dex{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "dex"},
		Spec: dexv1.DexSpec{
			Issuer:           issuer,
			Image:            "ghcr.io/dexidp/dex:" + rel.Version,
			OAuth2:           &dexv1.DexOAuth2{SkipApprovalScreen: true, PasswordConnector: "local"},
			EnablePasswordDB: true,
			StaticPasswords: []dexv1.DexStaticPassword{{
				Email: "admin@example.com", Username: "admin", UserID: "08a8684b",
				HashSecretRef: dexv1.SecretKeyRef{Name: "users", Key: "admin"},
			}},
			// Production settings every supported release must load (HTTPS has its own test,
			// on the latest release: test/dexkind).
			LogFormat: "text",
			Web: &dexv1.DexWeb{
				ClientRemoteIP: &dexv1.DexClientRemoteIP{Header: "X-Forwarded-For", TrustedProxies: []string{"10.0.0.0/8"}},
				Headers:        &dexv1.DexWebHeaders{XFrameOptions: "DENY", XContentTypeOptions: "nosniff"},
			},
		},
	}
	if rel.Version != harness.LatestDexRelease {
		// Dex before v2.45 reaches the API server in a pod at "https://[$KUBERNETES_SERVICE_HOST]:port",
		// which Go 1.26's net/url refuses for an IPv4 address ("invalid IP-literal"): the releases
		// built here (with the local Go) cannot use the kubernetes storage. Upstream's images are
		// built with an older Go and can.
		d.Spec.Storage = &dexv1.DexStorage{Type: "sqlite3"}
	}
	g.Expect(k8s.Create(ctx, d)).To(Succeed())
	g.Eventually(func() error { return node.Run(ns, "dex") }, waitTimeout, poll).Should(Succeed())
	const podTimeout = 90 * time.Second
	g.Eventually(condition(d, dexv1.ConditionReady), podTimeout, poll).Should(HaveField("Status", metav1.ConditionTrue),
		"the rendered config loads in Dex %s", rel.Version)
	provider := &dexv1.OIDCProvider{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "dex"}}
	waitReady(t, provider)
	// The headers of spec.web.headers are served by this release.
	disco, err := http.Get(issuer + "/.well-known/openid-configuration")
	g.Expect(err).NotTo(HaveOccurred())
	_ = disco.Body.Close()
	g.Expect(disco.Header.Get("X-Frame-Options")).To(Equal("DENY"), "Dex %s serves spec.web.headers", rel.Version)
	g.Eventually(dexStatus(provider), waitTimeout, poll).Should(Equal(dexv1.DexVersionStatus{Version: rel.Version, API: rel.API}))

	ci := &dexv1.DexStaticClient{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "ci"},
		Spec: dexv1.DexStaticClientSpec{
			ProviderRef: dexv1.ObjectRef{Name: "dex"}, RedirectURIs: []string{"https://ci.example.org/callback"},
			SecretRef: &dexv1.SecretKeyRef{Name: "ci-oidc", Key: "client-secret"}, GenerateSecret: true,
		},
	}
	conn := &dexv1.DexConnector{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "mock"},
		Spec:       dexv1.DexConnectorSpec{ProviderRef: dexv1.ObjectRef{Name: "dex"}, ConnectorID: "mock", Type: "mockCallback", DisplayName: "Mock"},
	}
	g.Expect(k8s.Create(ctx, ci)).To(Succeed())
	g.Expect(k8s.Create(ctx, conn)).To(Succeed())
	waitReady(t, ci, conn)

	// In Dex, through the Service name, the operator's client certificate and its gRPC client
	// (which accepts a Dex that selects no ALPN protocol, see harness.DexRelease.MTLS).
	s := &corev1.Secret{}
	g.Expect(k8s.Get(ctx, types.NamespacedName{Namespace: ns, Name: "dex-grpc-client"}, s)).To(Succeed())
	pool := dex.NewPool()
	defer pool.Close()
	dc, err := pool.Get("dexkind-test", dex.Config{
		Address: "dex." + ns + ".svc:5557", CACert: s.Data["ca.crt"], ClientCert: s.Data["tls.crt"], ClientKey: s.Data["tls.key"],
	})
	g.Expect(err).NotTo(HaveOccurred())
	got, err := dc.GetClient(ctx, ci.EffectiveClientID())
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(got.GetRedirectUris()).To(Equal([]string{"https://ci.example.org/callback"}))
	list, err := dc.ListConnectors(ctx)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(list).To(ContainElement(HaveField("Id", "mock")))

	// A token through the tenant's client, accepted by the registry (a client binding: static
	// users' groups need v2.45).
	g.Expect(k8s.Get(ctx, types.NamespacedName{Namespace: ns, Name: "ci-oidc"}, s)).To(Succeed())
	tn := &tenant{ns: ns, host: ns + ".test"}
	id := ci.EffectiveClientID()
	for _, o := range []client.Object{
		&dexv1.OIDCProvider{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "registry"}, Spec: dexv1.OIDCProviderSpec{
			IssuerURL: issuer, ClientID: "registry", AllowClientCredentials: true, Hostnames: []string{tn.host},
		}},
		&dexv1.GroupBinding{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "ci"}, Spec: dexv1.GroupBindingSpec{
			Expression: fmt.Sprintf("%q in groups", "client:"+id), ModuleResources: []string{"team-a/*"},
		}},
		&dexv1.Module{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "network"}, Spec: dexv1.ModuleSpec{
			Namespace: "team-a", Name: "network", System: "local",
			Versions: []dexv1.ModuleVersion{{Version: "1.0.0", Source: "https://files.example.org/network.tgz"}},
		}},
	} {
		g.Expect(k8s.Create(ctx, o)).To(Succeed())
	}
	resp, err := harness.PasswordGrant(issuer, id, string(s.Data["client-secret"]), "admin@example.com", "password")
	g.Expect(err).NotTo(HaveOccurred())
	token, _ := resp["access_token"].(string)
	g.Expect(token).NotTo(BeEmpty())
	g.Eventually(func() int {
		code, _ := tn.get("/v1/modules/team-a/network/local/versions", token)
		return code
	}, waitTimeout, poll).Should(Equal(http.StatusOK))
}
