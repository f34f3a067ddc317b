package registry_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	authnv1 "k8s.io/api/authentication/v1"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	dexv1 "dexterity.dev/dexterity/api/v1alpha1"
	"dexterity.dev/dexterity/controllers"
	"dexterity.dev/dexterity/internal/oidc"
	"dexterity.dev/dexterity/internal/registry"
	"dexterity.dev/dexterity/test/harness"
)

const versionsPath = "/v1/modules/team-a/network/aws/versions"

func TestDiscovery(t *testing.T) {
	t.Run("login.v1 from the issuer's discovery", func(t *testing.T) {
		g := NewWithT(t)
		tt := newTenant(t, tenantOptions{})
		code, body, _ := tt.get("/.well-known/terraform.json", "")
		g.Expect(code).To(Equal(http.StatusOK), body)
		doc := decodeJSON(t, body)
		g.Expect(doc).To(HaveKeyWithValue("modules.v1", "/v1/modules/"))
		g.Expect(doc).To(HaveKeyWithValue("providers.v1", "/v1/providers/"))
		g.Expect(doc).To(HaveKey("login.v1"))
		login := doc["login.v1"].(map[string]any)
		g.Expect(login).To(HaveKeyWithValue("client", harness.HarnessClientID))
		g.Expect(login).To(HaveKeyWithValue("grant_types", ConsistOf("authz_code", "device_code")))
		g.Expect(login).To(HaveKeyWithValue("authz", dexMain.IssuerURL()+"/auth"))
		g.Expect(login).To(HaveKeyWithValue("token", dexMain.IssuerURL()+"/token"))
		g.Expect(login).To(HaveKeyWithValue("ports", Equal([]any{10000.0, 10010.0})))
		g.Expect(login).To(HaveKeyWithValue("scopes", Equal([]any{"openid", "profile", "email", "groups"})))
	})
	t.Run("split network: authzUrl and tokenUrl are advertised", func(t *testing.T) {
		g := NewWithT(t)
		tt := newTenant(t, tenantOptions{authzURL: "https://dex.example.org/dex/auth", tokenURL: "https://dex.example.org/dex/token"})
		code, body, _ := tt.get("/.well-known/terraform.json", "")
		g.Expect(code).To(Equal(http.StatusOK), body)
		login := decodeJSON(t, body)["login.v1"].(map[string]any)
		g.Expect(login).To(HaveKeyWithValue("authz", "https://dex.example.org/dex/auth"))
		g.Expect(login).To(HaveKeyWithValue("token", "https://dex.example.org/dex/token"))
	})
	t.Run("no login.v1 when OIDC is disabled", func(t *testing.T) {
		g := NewWithT(t)
		tt := newTenant(t, tenantOptions{disabled: true})
		code, body, _ := tt.get("/.well-known/terraform.json", "")
		g.Expect(code).To(Equal(http.StatusOK), body)
		doc := decodeJSON(t, body)
		g.Expect(doc).To(HaveKey("modules.v1"))
		g.Expect(doc).NotTo(HaveKey("login.v1"))
	})
	t.Run("unknown host", func(t *testing.T) {
		g := NewWithT(t)
		tt := &testTenant{host: "nobody.test"}
		code, body, _ := tt.get("/.well-known/terraform.json", "")
		g.Expect(code).To(Equal(http.StatusNotFound))
		g.Expect(body).To(ContainSubstring("spec.hostnames"))
	})
}

// TestTokenTable proves every row of design.md §4's token table with real Dex and Kubernetes tokens.
func TestTokenTable(t *testing.T) {
	ctx := context.Background()
	mods := func(tt *testTenant) {
		tt.create(t,
			module("network", "team-a", "network", "aws", "1.0.0", "1.1.0"),
			binding("members", `"team-a" in groups || "client:ci-pipeline" in groups`, []string{"team-a/*"}, nil),
		)
	}
	oidcTenant := newTenant(t, tenantOptions{clientCreds: true, providerConfig: withDex})
	mods(oidcTenant)
	// A second Dex client, as a CI pipeline would use: a confidential DexStaticClient of the
	// provider's Dex (only a client that authenticated becomes client:<id>).
	ciClient := "ci-pipeline"
	oidcTenant.create(t,
		&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "ci"}, StringData: map[string]string{"secret": "ci-secret"}},
		&dexv1.DexStaticClient{ObjectMeta: metav1.ObjectMeta{Name: "ci"}, Spec: dexv1.DexStaticClientSpec{
			ProviderRef: dexv1.ObjectRef{Name: "dex"}, ClientID: ciClient, SecretRef: &dexv1.SecretKeyRef{Name: "ci", Key: "secret"}}},
	)
	NewWithT(t).Eventually(func() bool {
		c := &dexv1.DexStaticClient{}
		return k8s.Get(ctx, clientKey(oidcTenant.ns, "ci"), c) == nil && c.Status.ClientID == ciClient &&
			meta.IsStatusConditionTrue(c.Status.Conditions, dexv1.ConditionRegistered)
	}, 30*time.Second, 50*time.Millisecond).Should(BeTrue(), "the CI client was never registered in Dex")
	strict := newTenant(t, tenantOptions{})
	mods(strict)
	fallback := newTenant(t, tenantOptions{fallback: true})
	mods(fallback)
	short := newTenant(t, tenantOptions{dex: dexShort})
	mods(short)

	admin := token(t, dexMain, harness.HarnessClientID, harness.HarnessClientSecret, harness.AdminUser)
	bob := token(t, dexMain, harness.HarnessClientID, harness.HarnessClientSecret, harness.OtherUser)

	t.Run("valid token of the registry client, groups match a binding", func(t *testing.T) {
		body := oidcTenant.eventuallyCode(t, versionsPath, admin, http.StatusOK)
		NewWithT(t).Expect(body).To(MatchJSON(`{"modules":[{"versions":[{"version":"1.0.0"},{"version":"1.1.0"}]}]}`))
	})
	t.Run("valid token, groups match no binding", func(t *testing.T) {
		body := oidcTenant.eventuallyCode(t, versionsPath, bob, http.StatusForbidden)
		NewWithT(t).Expect(body).To(ContainSubstring("no GroupBinding"))
	})
	t.Run("valid token without the groups claim", func(t *testing.T) {
		noGroups := token(t, dexMain, harness.HarnessClientID, harness.HarnessClientSecret, harness.AdminUser, "openid", "email", "profile")
		body := oidcTenant.eventuallyCode(t, versionsPath, noGroups, http.StatusForbidden)
		NewWithT(t).Expect(body).To(ContainSubstring("requesting the groups scope"))
	})
	ci := token(t, dexMain, ciClient, "ci-secret", harness.OtherUser)
	t.Run("token of another Dex client with allowClientCredentials", func(t *testing.T) {
		oidcTenant.eventuallyCode(t, versionsPath, ci, http.StatusOK)
	})
	t.Run("token of another Dex client without allowClientCredentials", func(t *testing.T) {
		body := strict.eventuallyCode(t, versionsPath, ci, http.StatusUnauthorized)
		NewWithT(t).Expect(body).To(ContainSubstring("audience"))
	})
	t.Run("another client's token needs a client binding", func(t *testing.T) {
		tt := newTenant(t, tenantOptions{clientCreds: true, providerConfig: func(p *dexv1.OIDCProvider) {
			withDex(p)
			// ci-pipeline belongs to another namespace: this registry admits it as a client identity.
			p.Spec.Dex.ClientIdentityNamespaces = &dexv1.AllowedNamespaces{From: dexv1.NamespacesFromAll}
		}})
		tt.create(t, module("network", "team-a", "network", "aws", "1.0.0"),
			binding("members", `"team-a" in groups`, []string{"team-a/*"}, nil))
		body := tt.eventuallyCode(t, versionsPath, ci, http.StatusForbidden)
		NewWithT(t).Expect(body).To(ContainSubstring("no GroupBinding"))
	})
	t.Run("tampered token", func(t *testing.T) {
		parts := strings.Split(admin, ".")
		sig := []byte(parts[2])
		sig[len(sig)/2] ^= 0x01 // flips one character of the signature
		if sig[len(sig)/2] == '.' {
			sig[len(sig)/2] = 'A'
		}
		tampered := parts[0] + "." + parts[1] + "." + string(sig)
		code, _, hdr := oidcTenant.get(versionsPath, tampered)
		NewWithT(t).Expect(code).To(Equal(http.StatusUnauthorized))
		NewWithT(t).Expect(hdr.Get("WWW-Authenticate")).To(HavePrefix("Bearer"))
	})
	t.Run("expired token", func(t *testing.T) {
		g := NewWithT(t)
		tok := token(t, dexShort, harness.HarnessClientID, harness.HarnessClientSecret, harness.AdminUser)
		// Accepted while valid (and cached), refused once exp has passed: the cache never
		// outlives the token.
		code, body, _ := short.get(versionsPath, tok)
		g.Expect(code).To(Equal(http.StatusOK), body)
		body = short.eventuallyCode(t, versionsPath, tok, http.StatusUnauthorized)
		g.Expect(body).To(ContainSubstring("expired"))
	})
	t.Run("missing and garbage tokens", func(t *testing.T) {
		g := NewWithT(t)
		for _, tok := range []string{"", "garbage", "a.b.c", "Zm9v.YmFy.YmF6"} {
			code, body, hdr := oidcTenant.get(versionsPath, tok)
			g.Expect(code).To(Equal(http.StatusUnauthorized), "token %q: %s", tok, body)
			g.Expect(hdr.Get("WWW-Authenticate")).To(HavePrefix("Bearer"))
			// With the fallback on, garbage goes to Kubernetes, which refuses it.
			code, body, _ = fallback.get(versionsPath, tok)
			g.Expect(code).To(Equal(http.StatusUnauthorized), "token %q with fallback: %s", tok, body)
		}
	})

	// ServiceAccount tokens from the TokenRequest API.
	sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "ci-runner", Namespace: fallback.ns}}
	NewWithT(t).Expect(k8s.Create(ctx, sa)).To(Succeed())
	tr := &authnv1.TokenRequest{Spec: authnv1.TokenRequestSpec{ExpirationSeconds: ptr(int64(3600))}}
	NewWithT(t).Expect(k8s.SubResource("token").Create(ctx, sa, tr)).To(Succeed())
	saToken := tr.Status.Token

	t.Run("ServiceAccount token, fallback on, no RBAC", func(t *testing.T) {
		body := fallback.eventuallyCode(t, versionsPath, saToken, http.StatusForbidden)
		NewWithT(t).Expect(body).To(ContainSubstring("RBAC"))
	})
	t.Run("ServiceAccount token, fallback on, RBAC get on modules", func(t *testing.T) {
		g := NewWithT(t)
		role := &rbacv1.Role{
			ObjectMeta: metav1.ObjectMeta{Name: "module-reader", Namespace: fallback.ns},
			Rules:      []rbacv1.PolicyRule{{APIGroups: []string{dexv1.GroupVersion.Group}, Resources: []string{"modules"}, Verbs: []string{"get"}}},
		}
		g.Expect(k8s.Create(ctx, role)).To(Succeed())
		rb := &rbacv1.RoleBinding{
			ObjectMeta: metav1.ObjectMeta{Name: "ci-runner-modules", Namespace: fallback.ns},
			RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: role.Name},
			Subjects:   []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Name: sa.Name, Namespace: sa.Namespace}},
		}
		g.Expect(k8s.Create(ctx, rb)).To(Succeed())
		fallback.eventuallyCode(t, versionsPath, saToken, http.StatusOK)
		// RBAC on modules grants no providers.
		fallback.eventuallyCode(t, "/v1/providers/team-a/echo/versions", saToken, http.StatusForbidden)
	})
	t.Run("ServiceAccount token, fallback off", func(t *testing.T) {
		body := oidcTenant.eventuallyCode(t, versionsPath, saToken, http.StatusUnauthorized)
		NewWithT(t).Expect(body).To(ContainSubstring("not issued by this registry's issuer"))
	})
	t.Run("token claiming Dex's issuer with a bad signature never reaches Kubernetes", func(t *testing.T) {
		g := NewWithT(t)
		// Dex's header and claims, with the ServiceAccount token's (valid, but foreign) signature.
		parts, saParts := strings.Split(admin, "."), strings.Split(saToken, ".")
		forged := parts[0] + "." + parts[1] + "." + saParts[2]
		before := counter(t, "dexterity_registry_auth_decisions_total", map[string]string{"path": "k8s"})
		code, body, _ := fallback.get(versionsPath, forged)
		g.Expect(code).To(Equal(http.StatusUnauthorized), body)
		g.Expect(counter(t, "dexterity_registry_auth_decisions_total", map[string]string{"path": "k8s"})).To(Equal(before))
	})
	t.Run("bearer mode: Kubernetes decides", func(t *testing.T) {
		tt := newTenant(t, tenantOptions{disabled: true})
		tt.create(t, module("network", "team-a", "network", "aws", "1.0.0"))
		sa2 := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "reader", Namespace: tt.ns}}
		NewWithT(t).Expect(k8s.Create(ctx, sa2)).To(Succeed())
		tr := &authnv1.TokenRequest{Spec: authnv1.TokenRequestSpec{ExpirationSeconds: ptr(int64(3600))}}
		NewWithT(t).Expect(k8s.SubResource("token").Create(ctx, sa2, tr)).To(Succeed())
		tt.eventuallyCode(t, versionsPath, tr.Status.Token, http.StatusForbidden)
		tt.eventuallyCode(t, versionsPath, admin, http.StatusUnauthorized)
	})
}

func TestBindings(t *testing.T) {
	admin := token(t, dexMain, harness.HarnessClientID, harness.HarnessClientSecret, harness.AdminUser)
	t.Run("the first matching binding by name decides", func(t *testing.T) {
		g := NewWithT(t)
		tt := newTenant(t, tenantOptions{})
		tt.create(t,
			module("network", "team-a", "network", "aws", "1.0.0"),
			module("storage", "team-a", "storage", "aws", "1.0.0"),
			// Both match the admin; "alpha" sorts first and grants only the network module.
			binding("beta", `"team-a" in groups`, []string{"team-a/*"}, nil),
			binding("alpha", `"platform" in groups`, []string{"team-a/network"}, nil),
		)
		tt.eventuallyCode(t, "/v1/modules/team-a/network/aws/versions", admin, http.StatusOK)
		body := tt.eventuallyCode(t, "/v1/modules/team-a/storage/aws/versions", admin, http.StatusForbidden)
		g.Expect(body).To(ContainSubstring("GroupBinding alpha"))
		// Without alpha, beta decides and grants both.
		g.Expect(k8s.Delete(context.Background(), &dexv1.GroupBinding{ObjectMeta: metav1.ObjectMeta{Name: "alpha", Namespace: tt.ns}})).To(Succeed())
		tt.eventuallyCode(t, "/v1/modules/team-a/storage/aws/versions", admin, http.StatusOK)
	})
	t.Run("a binding that fails at run time denies", func(t *testing.T) {
		g := NewWithT(t)
		tt := newTenant(t, tenantOptions{})
		tt.create(t,
			module("network", "team-a", "network", "aws", "1.0.0"),
			binding("members", `"team-a" in groups`, []string{"team-a/*"}, nil),
		)
		tt.eventuallyCode(t, versionsPath, admin, http.StatusOK)
		// Sorted first; indexing past the end of groups fails at run time.
		tt.create(t, binding("aaa", `groups[7] == "x"`, []string{"*"}, nil))
		body := tt.eventuallyCode(t, versionsPath, admin, http.StatusForbidden)
		g.Expect(body).To(ContainSubstring("GroupBinding aaa failed to evaluate"))
	})
	t.Run("unknown resources are 404 only after authorization", func(t *testing.T) {
		tt := newTenant(t, tenantOptions{})
		tt.create(t, binding("members", `"team-a" in groups`, []string{"team-a/*"}, nil))
		tt.eventuallyCode(t, "/v1/modules/team-a/missing/aws/versions", admin, http.StatusNotFound)
		tt.eventuallyCode(t, "/v1/modules/team-b/missing/aws/versions", admin, http.StatusForbidden)
		tt.eventuallyCode(t, "/v1/modules/team-a/missing/aws/versions", "", http.StatusUnauthorized)
	})
	t.Run("pattern forms", func(t *testing.T) {
		tt := newTenant(t, tenantOptions{})
		tt.create(t,
			module("network", "team-a", "network", "aws", "1.0.0"),
			module("network-gcp", "team-a", "network", "gcp", "1.0.0"),
			module("dns", "team-b", "dns", "aws", "1.0.0"),
			binding("members", `"team-a" in groups`, []string{"dns", "team-a/network/aws"}, []string{"random", "team-a/e*"}),
		)
		tt.eventuallyCode(t, "/v1/modules/team-a/network/aws/versions", admin, http.StatusOK)
		tt.eventuallyCode(t, "/v1/modules/team-a/network/gcp/versions", admin, http.StatusForbidden)
		tt.eventuallyCode(t, "/v1/modules/team-b/dns/aws/versions", admin, http.StatusOK)
		tt.eventuallyCode(t, "/v1/providers/team-b/random/versions", admin, http.StatusNotFound)
		tt.eventuallyCode(t, "/v1/providers/team-a/echo/versions", admin, http.StatusNotFound)
		tt.eventuallyCode(t, "/v1/providers/team-a/null/versions", admin, http.StatusForbidden)
	})
}

func TestProtocol(t *testing.T) {
	admin := token(t, dexMain, harness.HarnessClientID, harness.HarnessClientSecret, harness.AdminUser)
	tt := newTenant(t, tenantOptions{})
	provider := &dexv1.Provider{
		ObjectMeta: metav1.ObjectMeta{Name: "echo"},
		Spec: dexv1.ProviderSpec{
			Namespace: "team-a", Type: "echo",
			SigningKeys: dexv1.SigningKeys{GPGPublicKeys: []dexv1.GPGPublicKey{{KeyID: "51852D87348FFC4C", ASCIIArmor: "-----BEGIN PGP PUBLIC KEY BLOCK-----\nabc\n-----END PGP PUBLIC KEY BLOCK-----\n"}}},
			Versions: []dexv1.ProviderVersion{{
				Version: "0.1.0", Protocols: []string{"5.0", "6.0"},
				Platforms: []dexv1.ProviderPlatform{{
					OS: "linux", Arch: "amd64", Filename: "terraform-provider-echo_0.1.0_linux_amd64.zip",
					DownloadURL: "https://downloads.example.org/echo.zip", Shasum: strings.Repeat("ab", 32),
					ShasumsURL: "https://downloads.example.org/SHA256SUMS", ShasumsSignatureURL: "https://downloads.example.org/SHA256SUMS.sig",
				}},
			}},
		},
	}
	tt.create(t,
		module("network", "team-a", "network", "aws", "1.0.0"),
		module("storage", "Team-A", "Storage", "aws", "2.0.0"),
		provider,
		binding("members", `"team-a" in groups`, []string{"team-a/*"}, []string{"team-a/*"}),
	)
	t.Run("module download", func(t *testing.T) {
		g := NewWithT(t)
		tt.eventuallyCode(t, "/v1/modules/team-a/network/aws/1.0.0/download", admin, http.StatusNoContent)
		_, _, hdr := tt.get("/v1/modules/team-a/network/aws/1.0.0/download", admin)
		g.Expect(hdr.Get("X-Terraform-Get")).To(Equal("https://downloads.example.org/network-1.0.0.tar.gz"))
		tt.eventuallyCode(t, "/v1/modules/team-a/network/aws/9.9.9/download", admin, http.StatusNotFound)
	})
	t.Run("addresses are case-insensitive", func(t *testing.T) {
		// OpenTofu lower-cases addresses; a Module written with capitals is still found, and a
		// request in any case finds the module.
		body := tt.eventuallyCode(t, "/v1/modules/team-a/storage/aws/versions", admin, http.StatusOK)
		NewWithT(t).Expect(body).To(MatchJSON(`{"modules":[{"versions":[{"version":"2.0.0"}]}]}`))
		tt.eventuallyCode(t, "/v1/modules/TEAM-A/Network/AWS/versions", admin, http.StatusOK)
		tt.eventuallyCode(t, "/v1/providers/Team-A/ECHO/versions", admin, http.StatusOK)
	})
	t.Run("provider versions", func(t *testing.T) {
		body := tt.eventuallyCode(t, "/v1/providers/team-a/echo/versions", admin, http.StatusOK)
		NewWithT(t).Expect(body).To(MatchJSON(`{"versions":[{"version":"0.1.0","protocols":["5.0","6.0"],"platforms":[{"os":"linux","arch":"amd64"}]}]}`))
	})
	t.Run("provider download", func(t *testing.T) {
		body := tt.eventuallyCode(t, "/v1/providers/team-a/echo/0.1.0/download/linux/amd64", admin, http.StatusOK)
		NewWithT(t).Expect(body).To(MatchJSON(`{
			"protocols": ["5.0", "6.0"], "os": "linux", "arch": "amd64",
			"filename": "terraform-provider-echo_0.1.0_linux_amd64.zip",
			"download_url": "https://downloads.example.org/echo.zip",
			"shasums_url": "https://downloads.example.org/SHA256SUMS",
			"shasums_signature_url": "https://downloads.example.org/SHA256SUMS.sig",
			"shasum": "` + strings.Repeat("ab", 32) + `",
			"signing_keys": {"gpg_public_keys": [{"key_id": "51852D87348FFC4C", "ascii_armor": "-----BEGIN PGP PUBLIC KEY BLOCK-----\nabc\n-----END PGP PUBLIC KEY BLOCK-----\n"}]}
		}`))
		tt.eventuallyCode(t, "/v1/providers/team-a/echo/0.1.0/download/darwin/arm64", admin, http.StatusNotFound)
	})
}

func TestUnavailableUntilKeysLoad(t *testing.T) {
	g := NewWithT(t)
	port, err := harness.FreePort()
	g.Expect(err).NotTo(HaveOccurred())
	// The issuer is Dex, but discovery goes to an address where nothing listens yet.
	tt := newTenant(t, tenantOptions{discoveryURL: "http://127.0.0.1:" + itoa(port) + "/dex", skipKeysReady: true})
	admin := token(t, dexMain, harness.HarnessClientID, harness.HarnessClientSecret, harness.AdminUser)
	code, body, hdr := tt.get(versionsPath, admin)
	g.Expect(code).To(Equal(http.StatusServiceUnavailable), body)
	g.Expect(hdr.Get("Retry-After")).NotTo(BeEmpty())
	code, _, _ = tt.get("/.well-known/terraform.json", "")
	g.Expect(code).To(Equal(http.StatusServiceUnavailable))
	// Pointing discovery at Dex loads the keys and the same token is accepted.
	tt.create(t, binding("members", `"team-a" in groups`, []string{"team-a/*"}, nil),
		module("network", "team-a", "network", "aws", "1.0.0"))
	p := &dexv1.OIDCProvider{}
	g.Expect(k8s.Get(context.Background(), clientKey(tt.ns, "dex"), p)).To(Succeed())
	orig := p.DeepCopy()
	p.Spec.DiscoveryURL = ""
	g.Expect(k8s.Patch(context.Background(), p, client.MergeFrom(orig))).To(Succeed()) // the controller writes the status meanwhile
	tt.eventuallyCode(t, versionsPath, admin, http.StatusOK)
}

func TestRepeatedTokenIsVerifiedOnce(t *testing.T) {
	g := NewWithT(t)
	tt := newTenant(t, tenantOptions{})
	tt.create(t, module("network", "team-a", "network", "aws", "1.0.0"),
		binding("members", `"team-a" in groups`, []string{"team-a/*"}, nil))
	admin := token(t, dexMain, harness.HarnessClientID, harness.HarnessClientSecret, harness.AdminUser)
	tt.eventuallyCode(t, versionsPath, admin, http.StatusOK)
	verifications := func() float64 {
		return counter(t, "dexterity_oidc_verifications_total", map[string]string{"provider": tt.ns + "/dex"})
	}
	hits := func() float64 {
		return counter(t, "dexterity_registry_token_cache_total", map[string]string{"result": "hit"})
	}
	v0, h0 := verifications(), hits()
	for range 50 {
		code, body, _ := tt.get(versionsPath, admin)
		g.Expect(code).To(Equal(http.StatusOK), body)
	}
	g.Expect(verifications()).To(Equal(v0), "a cached token was verified again")
	g.Expect(hits() - h0).To(BeNumerically(">=", 50))
}

// TestNonLeaderReplicaServes: a replica that is not the leader (another holds the lease) still
// loads the keys and answers registry traffic (design.md §1, scaling out).
func TestNonLeaderReplicaServes(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	// Somebody else holds the lease for an hour.
	holder, now := "another-replica", metav1.NewMicroTime(time.Now())
	lease := &coordinationv1.Lease{
		ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("registry-replica-%d", time.Now().UnixNano()), Namespace: "default"},
		Spec: coordinationv1.LeaseSpec{HolderIdentity: &holder, LeaseDurationSeconds: ptr(int32(3600)),
			AcquireTime: &now, RenewTime: &now},
	}
	g.Expect(k8s.Create(ctx, lease)).To(Succeed())

	mgr, err := ctrl.NewManager(env.Config, ctrl.Options{
		Scheme:                  harness.Scheme,
		Metrics:                 metricsserver.Options{BindAddress: "0"},
		LeaderElection:          true,
		LeaderElectionID:        lease.Name,
		LeaderElectionNamespace: lease.Namespace,
	})
	g.Expect(err).NotTo(HaveOccurred())
	replicaKeys := oidc.NewCache()
	g.Expect((&controllers.KeyCacheSync{Keys: replicaKeys}).SetupWithManager(mgr)).To(Succeed())
	port, err := harness.FreePort()
	g.Expect(err).NotTo(HaveOccurred())
	srv, err := registry.New(ctx, mgr.GetCache(), registry.Options{Addr: "127.0.0.1:" + itoa(port), Keys: replicaKeys, Kube: mgr.GetClient()})
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(mgr.Add(srv)).To(Succeed())
	mctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- mgr.Start(mctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Log("manager:", err)
		}
	}()

	tt := newTenant(t, tenantOptions{})
	tt.create(t, module("network", "team-a", "network", "aws", "1.0.0"),
		binding("members", `"team-a" in groups`, []string{"team-a/*"}, nil))
	admin := token(t, dexMain, harness.HarnessClientID, harness.HarnessClientSecret, harness.AdminUser)
	replica := &testTenant{ns: tt.ns, host: tt.host, provider: tt.provider, base: "http://127.0.0.1:" + itoa(port)}
	replica.eventuallyCode(t, versionsPath, admin, http.StatusOK)
	g.Expect(mgr.Elected()).NotTo(BeClosed(), "the replica is not the leader")
}

// A replica is not ready (so the registry Service sends it no traffic) while a provider's keys
// are still loading; a failed first fetch makes it ready (no replica could verify those tokens).
func TestReadyOnceKeysWereTried(t *testing.T) {
	g := NewWithT(t)
	g.Eventually(func() error { return server.ReadyCheck(nil) }, 30*time.Second).Should(Succeed())
	// Discovery answers only when released.
	release := make(chan struct{})
	hanging := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
		http.Error(w, "not here", http.StatusNotFound)
	}))
	t.Cleanup(hanging.Close)
	released := false
	t.Cleanup(func() {
		if !released {
			close(release)
		}
	})
	tt := newTenant(t, tenantOptions{discoveryURL: hanging.URL + "/dex", skipKeysReady: true})
	g.Eventually(func() error { return server.ReadyCheck(nil) }, 30*time.Second).Should(MatchError(ContainSubstring(tt.ns + "/dex")))
	g.Consistently(func() error { return server.ReadyCheck(nil) }, time.Second, 100*time.Millisecond).Should(HaveOccurred())
	close(release)
	released = true
	g.Eventually(func() error { return server.ReadyCheck(nil) }, 30*time.Second).Should(Succeed())
}

// A provider being deleted (it may wait for its clients a long time) serves its host no more:
// 404 with the usual hint, not 503 for keys that were dropped.
func TestDeletingProviderServesNoHost(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	tt := newTenant(t, tenantOptions{})
	tt.eventuallyCode(t, "/.well-known/terraform.json", "", http.StatusOK)
	p := &dexv1.OIDCProvider{}
	g.Expect(k8s.Get(ctx, clientKey(tt.ns, "dex"), p)).To(Succeed())
	// Patched, not updated: the controller writes the provider's status meanwhile (a conflict
	// failed this test once).
	orig := p.DeepCopy()
	p.Finalizers = append(p.Finalizers, "test.dexterity.dev/hold")
	g.Expect(k8s.Patch(ctx, p, client.MergeFrom(orig))).To(Succeed())
	t.Cleanup(func() {
		if err := k8s.Get(ctx, clientKey(tt.ns, "dex"), p); err == nil {
			orig := p.DeepCopy()
			p.Finalizers = nil
			_ = k8s.Patch(ctx, p, client.MergeFrom(orig))
		}
	})
	g.Expect(k8s.Delete(ctx, p)).To(Succeed())
	body := tt.eventuallyCode(t, "/.well-known/terraform.json", "", http.StatusNotFound)
	g.Expect(body).To(ContainSubstring("spec.hostnames"))
}
