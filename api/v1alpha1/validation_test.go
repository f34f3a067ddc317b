package v1alpha1_test

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	dexv1 "dexterity.dev/dexterity/api/v1alpha1"
	"dexterity.dev/dexterity/test/harness"
)

var k8s client.Client

func TestMain(m *testing.M) {
	env, err := harness.StartEnv(harness.EnvOptions{})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	k8s = env.Client
	code := m.Run()
	_ = env.Stop()
	os.Exit(code)
}

func newNamespace(t *testing.T) string {
	t.Helper()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "api-"}}
	NewWithT(t).Expect(k8s.Create(context.Background(), ns)).To(Succeed())
	return ns.Name
}

// Each kind, applied with only its required fields, reads back with the documented defaults.
func TestDefaults(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ns := newNamespace(t)

	p := &dexv1.OIDCProvider{
		ObjectMeta: metav1.ObjectMeta{Name: "dex", Namespace: ns},
		Spec: dexv1.OIDCProviderSpec{
			IssuerURL: "https://dex.example.com/dex",
			ClientID:  "registry",
			Dex:       &dexv1.DexAdminSpec{GRPCAddress: "dex.dex.svc:5557", Insecure: true},
		},
	}
	g.Expect(k8s.Create(ctx, p)).To(Succeed())
	got := &dexv1.OIDCProvider{}
	g.Expect(k8s.Get(ctx, client.ObjectKeyFromObject(p), got)).To(Succeed())
	g.Expect(got.Spec.Enabled).To(Equal(ptr.To(true)))
	g.Expect(got.Spec.UseBearerToken).To(BeFalse())
	g.Expect(got.Spec.UsernameClaim).To(Equal("sub"))
	g.Expect(got.Spec.GroupsClaim).To(Equal("groups"))
	g.Expect(got.Spec.JWKSRefreshIntervalSeconds).To(Equal(int32(3600)))
	g.Expect(got.Spec.Scopes).To(Equal([]string{"openid", "profile", "email", "groups"}))
	g.Expect(got.Spec.LoginPorts).To(Equal([]int32{10000, 10010}))
	g.Expect(got.Spec.Dex.AllowedNamespaces).NotTo(BeNil())
	g.Expect(got.Spec.Dex.AllowedNamespaces.From).To(Equal(dexv1.NamespacesFromSame))

	c := &dexv1.DexStaticClient{
		ObjectMeta: metav1.ObjectMeta{Name: "cli", Namespace: ns},
		Spec: dexv1.DexStaticClientSpec{
			ProviderRef:      dexv1.ObjectRef{Name: "dex"},
			Public:           true,
			LoopbackRedirect: &dexv1.LoopbackRedirect{Ports: []int32{10000, 10010}},
		},
	}
	g.Expect(k8s.Create(ctx, c)).To(Succeed())
	gotC := &dexv1.DexStaticClient{}
	g.Expect(k8s.Get(ctx, client.ObjectKeyFromObject(c), gotC)).To(Succeed())
	g.Expect(gotC.Spec.LoopbackRedirect.Path).To(Equal("/login"))
	g.Expect(gotC.EffectiveClientID()).To(Equal(ns + "-cli"))

	conn := &dexv1.DexConnector{
		ObjectMeta: metav1.ObjectMeta{Name: "mock", Namespace: ns},
		Spec: dexv1.DexConnectorSpec{
			ProviderRef: dexv1.ObjectRef{Name: "dex"},
			ConnectorID: "mock",
			Type:        "mockCallback",
			Config:      &apiextensionsv1.JSON{Raw: []byte(`{"nested":{"a":1}}`)},
		},
	}
	g.Expect(k8s.Create(ctx, conn)).To(Succeed())
	gotConn := &dexv1.DexConnector{}
	g.Expect(k8s.Get(ctx, client.ObjectKeyFromObject(conn), gotConn)).To(Succeed())
	g.Expect(string(gotConn.Spec.Config.Raw)).To(MatchJSON(`{"nested":{"a":1}}`), "config must be preserved, not pruned")

	gb := &dexv1.GroupBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "ci", Namespace: ns},
		Spec:       dexv1.GroupBindingSpec{Expression: `"client:ci" in groups`, ModuleResources: []string{"*"}},
	}
	g.Expect(k8s.Create(ctx, gb)).To(Succeed())
	gotGB := &dexv1.GroupBinding{}
	g.Expect(k8s.Get(ctx, client.ObjectKeyFromObject(gb), gotGB)).To(Succeed())
	g.Expect(gotGB.Spec.ModuleResources).To(Equal([]string{"*"}))
}

// Invalid single-object specs are rejected by the API server with the field named.
func TestSingleObjectValidation(t *testing.T) {
	ctx := context.Background()
	ns := newNamespace(t)
	provider := func(mut func(*dexv1.OIDCProviderSpec)) client.Object {
		p := &dexv1.OIDCProvider{
			ObjectMeta: metav1.ObjectMeta{GenerateName: "p-", Namespace: ns},
			Spec:       dexv1.OIDCProviderSpec{IssuerURL: "https://dex.example.com", ClientID: "registry"},
		}
		mut(&p.Spec)
		return p
	}
	dsc := func(mut func(*dexv1.DexStaticClientSpec)) client.Object {
		c := &dexv1.DexStaticClient{
			ObjectMeta: metav1.ObjectMeta{GenerateName: "c-", Namespace: ns},
			Spec:       dexv1.DexStaticClientSpec{ProviderRef: dexv1.ObjectRef{Name: "dex"}, Public: true},
		}
		mut(&c.Spec)
		return c
	}
	cases := []struct {
		name    string
		obj     client.Object
		wantMsg []string // all must appear in the error
	}{
		{"bearer and OIDC both on", provider(func(s *dexv1.OIDCProviderSpec) { s.UseBearerToken = true }),
			[]string{"spec.useBearerToken", "mutually exclusive", "spec.enabled=false"}},
		{"fallback without OIDC", provider(func(s *dexv1.OIDCProviderSpec) {
			s.Enabled = ptr.To(false)
			s.AllowServiceAccountFallback = true
		}), []string{"spec.allowServiceAccountFallback"}},
		{"client credentials without OIDC", provider(func(s *dexv1.OIDCProviderSpec) {
			s.Enabled = ptr.To(false)
			s.AllowClientCredentials = true
		}), []string{"spec.allowClientCredentials"}},
		{"http issuer outside loopback", provider(func(s *dexv1.OIDCProviderSpec) { s.IssuerURL = "http://dex.example.com" }),
			[]string{"spec.issuerUrl", "https"}},
		{"malformed authzUrl", provider(func(s *dexv1.OIDCProviderSpec) { s.AuthzURL = "not a url" }),
			[]string{"spec.authzUrl", "http(s) URL"}},
		{"malformed tokenUrl", provider(func(s *dexv1.OIDCProviderSpec) { s.TokenURL = "ftp://x/token" }),
			[]string{"spec.tokenUrl"}},
		{"caBundle not PEM", provider(func(s *dexv1.OIDCProviderSpec) { s.CABundle = "hello" }),
			[]string{"spec.caBundle", "PEM"}},
		{"refresh interval too short", provider(func(s *dexv1.OIDCProviderSpec) { s.JWKSRefreshIntervalSeconds = 5 }),
			[]string{"spec.jwksRefreshIntervalSeconds"}},
		{"dex without tls or insecure", provider(func(s *dexv1.OIDCProviderSpec) { s.Dex = &dexv1.DexAdminSpec{GRPCAddress: "dex:5557"} }),
			[]string{"spec.dex.tls", "spec.dex.insecure=true"}},
		{"selector missing", provider(func(s *dexv1.OIDCProviderSpec) {
			s.Dex = &dexv1.DexAdminSpec{GRPCAddress: "dex:5557", Insecure: true, AllowedNamespaces: &dexv1.AllowedNamespaces{From: dexv1.NamespacesFromSelector}}
		}), []string{"spec.dex.allowedNamespaces.selector"}},
		{"confidential client without secretRef", dsc(func(s *dexv1.DexStaticClientSpec) { s.Public = false }),
			[]string{"spec.secretRef", "spec.public=true"}},
		{"plain http redirect off loopback", dsc(func(s *dexv1.DexStaticClientSpec) { s.RedirectURIs = []string{"http://app.example.com/cb"} }),
			[]string{"spec.redirectURIs[0]", "loopback"}},
		{"relative redirect", dsc(func(s *dexv1.DexStaticClientSpec) { s.RedirectURIs = []string{"/callback"} }),
			[]string{"spec.redirectURIs[0]"}},
		{"loopback range reversed", dsc(func(s *dexv1.DexStaticClientSpec) {
			s.LoopbackRedirect = &dexv1.LoopbackRedirect{Ports: []int32{10010, 10000}}
		}), []string{"spec.loopbackRedirect.ports"}},
		// The memory balloon: 1,000 ports of a 64 KiB path would make the manager build 64 MiB.
		// (The API server checks the CEL rule on the ports only once the path is within its
		// bound: the path alone refuses it.)
		{"loopback range of 1,000 ports with a long path", dsc(func(s *dexv1.DexStaticClientSpec) {
			s.LoopbackRedirect = &dexv1.LoopbackRedirect{Ports: []int32{10000, 10999}, Path: "/" + strings.Repeat("a", 64<<10)}
		}), []string{"spec.loopbackRedirect.path", "256 bytes"}},
		{"loopback range of 1,000 ports", dsc(func(s *dexv1.DexStaticClientSpec) {
			s.LoopbackRedirect = &dexv1.LoopbackRedirect{Ports: []int32{10000, 10999}, Path: "/login"}
		}), []string{"spec.loopbackRedirect.ports", "at most 100 ports"}},
		{"loopback range of 101 ports", dsc(func(s *dexv1.DexStaticClientSpec) {
			s.LoopbackRedirect = &dexv1.LoopbackRedirect{Ports: []int32{10000, 10100}}
		}), []string{"spec.loopbackRedirect.ports", "at most 100 ports"}},
		{"loopback path with a query", dsc(func(s *dexv1.DexStaticClientSpec) {
			s.LoopbackRedirect = &dexv1.LoopbackRedirect{Ports: []int32{10000, 10010}, Path: "/login?x=1"}
		}), []string{"spec.loopbackRedirect.path"}},
		{"plain http redirect on a host named like a loopback address", dsc(func(s *dexv1.DexStaticClientSpec) {
			s.RedirectURIs = []string{"https://app.example.com/cb", "http://127.evil.example/cb"}
		}), []string{"spec.redirectURIs[1]", "loopback"}},
		{"plain http redirect on a name under 127.0.0.1", dsc(func(s *dexv1.DexStaticClientSpec) { s.RedirectURIs = []string{"http://127.0.0.1.nip.io/cb"} }),
			[]string{"spec.redirectURIs[0]", "loopback"}},
		{"plain http redirect with a loopback address as user info", dsc(func(s *dexv1.DexStaticClientSpec) {
			s.RedirectURIs = []string{"http://127.0.0.1:80@evil.example/cb"}
		}), []string{"spec.redirectURIs[0]", "loopback"}},
		{"http issuer on a host named like a loopback address", provider(func(s *dexv1.OIDCProviderSpec) { s.IssuerURL = "http://127.evil.example/dex" }),
			[]string{"spec.issuerUrl", "https"}},
		{"unknown connector type", &dexv1.DexConnector{
			ObjectMeta: metav1.ObjectMeta{GenerateName: "k-", Namespace: ns},
			Spec:       dexv1.DexConnectorSpec{ProviderRef: dexv1.ObjectRef{Name: "dex"}, ConnectorID: "x", Type: "facebook"},
		}, []string{"spec.type", "github"}},
		{"connector id local", &dexv1.DexConnector{
			ObjectMeta: metav1.ObjectMeta{GenerateName: "k-", Namespace: ns},
			Spec:       dexv1.DexConnectorSpec{ProviderRef: dexv1.ObjectRef{Name: "dex"}, ConnectorID: "local", Type: "github"},
		}, []string{"spec.connectorId", "local"}},
		{"empty expression", &dexv1.GroupBinding{
			ObjectMeta: metav1.ObjectMeta{GenerateName: "gb-", Namespace: ns},
		}, []string{"spec.expression"}},
		{"too many module globs", &dexv1.GroupBinding{
			ObjectMeta: metav1.ObjectMeta{GenerateName: "gb-", Namespace: ns},
			Spec:       dexv1.GroupBindingSpec{Expression: "true", ModuleResources: slices.Repeat([]string{"team-a/*"}, 101)},
		}, []string{"spec.moduleResources", "100"}},
		{"provider glob too long", &dexv1.GroupBinding{
			ObjectMeta: metav1.ObjectMeta{GenerateName: "gb-", Namespace: ns},
			Spec:       dexv1.GroupBindingSpec{Expression: "true", ProviderResources: []string{strings.Repeat("*", 257)}},
		}, []string{"spec.providerResources[0]", "256"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			err := k8s.Create(ctx, tc.obj)
			g.Expect(err).To(HaveOccurred())
			for _, m := range tc.wantMsg {
				g.Expect(err.Error()).To(ContainSubstring(m))
			}
		})
	}

	// The corrected objects are accepted.
	t.Run("corrected objects accepted", func(t *testing.T) {
		g := NewWithT(t)
		g.Expect(k8s.Create(ctx, provider(func(s *dexv1.OIDCProviderSpec) {
			s.Enabled = ptr.To(false)
			s.UseBearerToken = true
		}))).To(Succeed())
		g.Expect(k8s.Create(ctx, provider(func(s *dexv1.OIDCProviderSpec) { s.IssuerURL = "http://dex.dex.svc.cluster.local:5556/dex" }))).To(Succeed())
		g.Expect(k8s.Create(ctx, provider(func(s *dexv1.OIDCProviderSpec) { s.IssuerURL = "http://127.0.0.1:5556/dex" }))).To(Succeed())
		g.Expect(k8s.Create(ctx, provider(func(s *dexv1.OIDCProviderSpec) { s.IssuerURL = "http://127.3.2.1:5556/dex" }))).To(Succeed())
		g.Expect(k8s.Create(ctx, dsc(func(s *dexv1.DexStaticClientSpec) {
			s.Public = false
			s.SecretRef = &dexv1.SecretKeyRef{Name: "s", Key: "clientSecret"}
			s.RedirectURIs = []string{"https://app.example.com/cb", "http://localhost:8000/cb", "http://127.0.0.1/cb", "http://127.1.2.3:8000/cb", "http://[::1]:8000/cb", "http://127.255.255.254/cb"}
		}))).To(Succeed())
		g.Expect(k8s.Create(ctx, dsc(func(s *dexv1.DexStaticClientSpec) {
			s.LoopbackRedirect = &dexv1.LoopbackRedirect{Ports: []int32{10000, 10099}, Path: "/" + strings.Repeat("a", 255)}
		}))).To(Succeed(), "100 ports and a 256-byte path are the bounds, not over them")
	})
}

// clientId and connectorId are immutable.
func TestImmutableIDs(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ns := newNamespace(t)
	c := &dexv1.DexStaticClient{
		ObjectMeta: metav1.ObjectMeta{Name: "c", Namespace: ns},
		Spec:       dexv1.DexStaticClientSpec{ProviderRef: dexv1.ObjectRef{Name: "dex"}, Public: true, ClientID: "first"},
	}
	g.Expect(k8s.Create(ctx, c)).To(Succeed())
	c.Spec.ClientID = "second"
	err := k8s.Update(ctx, c)
	g.Expect(err).To(HaveOccurred())
	g.Expect(err.Error()).To(ContainSubstring("spec.clientId"))
	g.Expect(err.Error()).To(ContainSubstring("immutable"))

	k := &dexv1.DexConnector{
		ObjectMeta: metav1.ObjectMeta{Name: "k", Namespace: ns},
		Spec:       dexv1.DexConnectorSpec{ProviderRef: dexv1.ObjectRef{Name: "dex"}, ConnectorID: "one", Type: "github"},
	}
	g.Expect(k8s.Create(ctx, k)).To(Succeed())
	k.Spec.ConnectorID = "two"
	err = k8s.Update(ctx, k)
	g.Expect(err).To(HaveOccurred())
	g.Expect(strings.Contains(err.Error(), "spec.connectorId") && strings.Contains(err.Error(), "immutable")).To(BeTrue(), err.Error())
}

// Module and Provider are checked by their schema alone.
func TestRegistryContentValidation(t *testing.T) {
	ctx := context.Background()
	ns := newNamespace(t)
	module := func(mut func(*dexv1.ModuleSpec)) client.Object {
		m := &dexv1.Module{
			ObjectMeta: metav1.ObjectMeta{GenerateName: "m-", Namespace: ns},
			Spec: dexv1.ModuleSpec{Namespace: "team-a", Name: "network", System: "aws",
				Versions: []dexv1.ModuleVersion{{Version: "1.0.0", Source: "https://downloads.example.org/n.tar.gz"}}},
		}
		mut(&m.Spec)
		return m
	}
	platform := dexv1.ProviderPlatform{OS: "linux", Arch: "amd64", Filename: "p.zip",
		DownloadURL: "https://downloads.example.org/p.zip", Shasum: strings.Repeat("0a", 32),
		ShasumsURL: "https://downloads.example.org/SHA256SUMS", ShasumsSignatureURL: "https://downloads.example.org/SHA256SUMS.sig"}
	provider := func(mut func(*dexv1.ProviderSpec)) client.Object {
		p := &dexv1.Provider{
			ObjectMeta: metav1.ObjectMeta{GenerateName: "p-", Namespace: ns},
			Spec: dexv1.ProviderSpec{Namespace: "team-a", Type: "echo",
				SigningKeys: dexv1.SigningKeys{GPGPublicKeys: []dexv1.GPGPublicKey{{KeyID: "51852D87348FFC4C", ASCIIArmor: "-----BEGIN PGP PUBLIC KEY BLOCK-----\nx\n-----END PGP PUBLIC KEY BLOCK-----\n"}}},
				Versions:    []dexv1.ProviderVersion{{Version: "0.1.0", Platforms: []dexv1.ProviderPlatform{platform}}}},
		}
		mut(&p.Spec)
		return p
	}
	for _, tc := range []struct {
		name    string
		obj     client.Object
		wantMsg string
	}{
		{"version with v", module(func(s *dexv1.ModuleSpec) { s.Versions[0].Version = "v1.0.0" }), "spec.versions[0].version"},
		{"duplicate version", module(func(s *dexv1.ModuleSpec) { s.Versions = append(s.Versions, s.Versions[0]) }), "spec.versions[1]"},
		{"no versions", module(func(s *dexv1.ModuleSpec) { s.Versions = nil }), "spec.versions"},
		{"system with capitals", module(func(s *dexv1.ModuleSpec) { s.System = "AWS" }), "spec.system"},
		{"empty source", module(func(s *dexv1.ModuleSpec) { s.Versions[0].Source = "" }), "spec.versions[0].source"},
		{"shasum not hex", provider(func(s *dexv1.ProviderSpec) { s.Versions[0].Platforms[0].Shasum = "abc" }), "spec.versions[0].platforms[0].shasum"},
		{"download URL not http(s)", provider(func(s *dexv1.ProviderSpec) { s.Versions[0].Platforms[0].DownloadURL = "ftp://x/p.zip" }), "spec.versions[0].platforms[0].downloadUrl"},
		{"duplicate platform", provider(func(s *dexv1.ProviderSpec) {
			s.Versions[0].Platforms = append(s.Versions[0].Platforms, platform)
		}), "spec.versions[0].platforms[1]"},
		{"key not armored", provider(func(s *dexv1.ProviderSpec) { s.SigningKeys.GPGPublicKeys[0].ASCIIArmor = "AAAA" }), "asciiArmor"},
		{"no signing key", provider(func(s *dexv1.ProviderSpec) { s.SigningKeys.GPGPublicKeys = nil }), "spec.signingKeys.gpgPublicKeys"},
		{"version too long", module(func(s *dexv1.ModuleSpec) { s.Versions[0].Version = "1.0.0-" + strings.Repeat("a", 200) }), "spec.versions[0].version"},
		{"trust signature too long", provider(func(s *dexv1.ProviderSpec) {
			s.SigningKeys.GPGPublicKeys[0].TrustSignature = strings.Repeat("a", 16385)
		}), "spec.signingKeys.gpgPublicKeys[0].trustSignature"},
		{"too many protocols", provider(func(s *dexv1.ProviderSpec) {
			s.Versions[0].Protocols = []string{"1.0", "2.0", "3.0", "4.0", "5.0", "6.0", "7.0", "8.0", "9.0", "10.0", "11.0"}
		}), "spec.versions[0].protocols"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := k8s.Create(ctx, tc.obj)
			NewWithT(t).Expect(err).To(MatchError(ContainSubstring(tc.wantMsg)))
		})
	}
	t.Run("valid objects accepted, protocols defaulted", func(t *testing.T) {
		g := NewWithT(t)
		g.Expect(k8s.Create(ctx, module(func(*dexv1.ModuleSpec) {}))).To(Succeed())
		p := provider(func(*dexv1.ProviderSpec) {}).(*dexv1.Provider)
		g.Expect(k8s.Create(ctx, p)).To(Succeed())
		g.Expect(p.Spec.Versions[0].Protocols).To(Equal([]string{"5.0"}))
	})
}
