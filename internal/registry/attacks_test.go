package registry_test

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/dexidp/dex/api/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	dexv1 "dexterity.dev/dexterity/api/v1alpha1"
	"dexterity.dev/dexterity/controllers"
	"dexterity.dev/dexterity/internal/registry"
	"dexterity.dev/dexterity/test/harness"
)

// Tenant attacks on the registry (issue #14, items 4, 6 and 7), each made as a tenant would:
// objects through the API server, tokens from the real Dex.

// withDex makes a tenant's provider administer dexMain (so its confidential DexStaticClients
// count as authenticated clients).
func withDex(p *dexv1.OIDCProvider) {
	p.Spec.Dex = &dexv1.DexAdminSpec{GRPCAddress: dexMain.GRPCAddress(), Insecure: true}
}

// TestAttackHostTakeover (item 4): a newer OIDCProvider in a namespace that sorts earlier lists
// a host another provider already serves. The holder keeps serving it (its login.v1, its
// modules) until it is deleted; then the newcomer gets the host.
func TestAttackHostTakeover(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	namespace := func(prefix string) string {
		ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: prefix}}
		g.Expect(k8s.Create(ctx, ns)).To(Succeed())
		return ns.Name
	}
	holderNS, attackerNS := namespace("zz-holder-"), namespace("aa-attacker-")
	shared := holderNS + ".shared.test"
	provider := func(ns, who string, hosts ...string) *dexv1.OIDCProvider {
		return &dexv1.OIDCProvider{
			ObjectMeta: metav1.ObjectMeta{Name: "dex", Namespace: ns},
			Spec: dexv1.OIDCProviderSpec{
				IssuerURL: dexMain.IssuerURL(), ClientID: harness.HarnessClientID, Hostnames: hosts,
				AuthzURL: "https://" + who + ".example.org/auth", TokenURL: "https://" + who + ".example.org/token",
			},
		}
	}
	authz := func(host string) func() string {
		return func() string {
			tt := &testTenant{host: host}
			code, body, _ := tt.get("/.well-known/terraform.json", "")
			if code != http.StatusOK {
				return ""
			}
			login, _ := decodeJSON(t, body)["login.v1"].(map[string]any)
			s, _ := login["authz"].(string)
			return s
		}
	}
	holder := provider(holderNS, "holder", shared)
	g.Expect(k8s.Create(ctx, holder)).To(Succeed())
	for _, o := range []*dexv1.Module{module("network", "team-a", "network", "aws", "1.0.0")} {
		o.Namespace = holderNS
		g.Expect(k8s.Create(ctx, o)).To(Succeed())
	}
	hb := binding("members", `"team-a" in groups`, []string{"team-a/*"}, nil)
	hb.Namespace = holderNS
	g.Expect(k8s.Create(ctx, hb)).To(Succeed())
	g.Eventually(authz(shared), 10*time.Second, 20*time.Millisecond).Should(Equal("https://holder.example.org/auth"))

	// The attacker's provider must be younger: creation timestamps have one-second resolution,
	// and on a tie namespace/name would decide (in the attacker's favour).
	g.Eventually(func() bool { return time.Now().After(holder.CreationTimestamp.Add(1100 * time.Millisecond)) },
		3*time.Second, 50*time.Millisecond).Should(BeTrue())
	own := attackerNS + ".own.test"
	attacker := provider(attackerNS, "attacker", shared, own)
	g.Expect(k8s.Create(ctx, attacker)).To(Succeed())
	am := module("network", "team-a", "network", "aws", "6.6.6")
	am.Namespace = attackerNS
	ab := binding("everyone", `true`, []string{"*"}, []string{"*"})
	ab.Namespace = attackerNS
	g.Expect(k8s.Create(ctx, am)).To(Succeed())
	g.Expect(k8s.Create(ctx, ab)).To(Succeed())
	g.Expect(holder.CreationTimestamp.Before(&attacker.CreationTimestamp)).To(BeTrue())
	// Once the registry serves the attacker's own host, it has seen the attacker's provider.
	g.Eventually(authz(own), 10*time.Second, 20*time.Millisecond).Should(Equal("https://attacker.example.org/auth"))

	g.Expect(authz(shared)()).To(Equal("https://holder.example.org/auth"), "the shared host advertises the holder's login.v1")
	g.Eventually(func() bool {
		p, ok := keys.Get(holderNS + "/dex")
		return ok && p.Status().KeysReady
	}, 20*time.Second, 50*time.Millisecond).Should(BeTrue())
	admin := token(t, dexMain, harness.HarnessClientID, harness.HarnessClientSecret, harness.AdminUser)
	tt := &testTenant{host: shared}
	body := tt.eventuallyCode(t, versionsPath, admin, http.StatusOK)
	g.Expect(body).To(MatchJSON(`{"modules":[{"versions":[{"version":"1.0.0"}]}]}`), "the holder's modules")

	// The holder goes: the other provider listing the host takes it.
	g.Expect(k8s.Delete(ctx, holder)).To(Succeed())
	g.Eventually(authz(shared), 20*time.Second, 20*time.Millisecond).Should(Equal("https://attacker.example.org/auth"))
}

// TestAttackRecreatedProvider (item 6): an OIDCProvider deleted and created again under the same
// name with another clientId does not accept a token of the old audience from the cache.
func TestAttackRecreatedProvider(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	tt := newTenant(t, tenantOptions{})
	tt.create(t, module("network", "team-a", "network", "aws", "1.0.0"),
		binding("members", `"team-a" in groups`, []string{"team-a/*"}, nil))
	old := token(t, dexMain, harness.HarnessClientID, harness.HarnessClientSecret, harness.AdminUser)
	tt.eventuallyCode(t, versionsPath, old, http.StatusOK)
	tt.eventuallyCode(t, versionsPath, old, http.StatusOK) // and cached

	p := &dexv1.OIDCProvider{}
	g.Expect(k8s.Get(ctx, clientKey(tt.ns, "dex"), p)).To(Succeed())
	g.Expect(k8s.Delete(ctx, p)).To(Succeed())
	g.Eventually(func() bool { return apierrors.IsNotFound(k8s.Get(ctx, clientKey(tt.ns, "dex"), &dexv1.OIDCProvider{})) },
		20*time.Second, 50*time.Millisecond).Should(BeTrue())
	tt.eventuallyCode(t, "/.well-known/terraform.json", "", http.StatusNotFound)

	// Another Dex client becomes the registry's audience.
	otherID, otherSecret := "recreated-"+tt.ns, "recreated-secret"
	dc, closer, err := dexMain.Client()
	g.Expect(err).NotTo(HaveOccurred())
	defer func() { _ = closer.Close() }()
	_, err = dc.CreateClient(ctx, &api.CreateClientReq{Client: &api.Client{Id: otherID, Secret: otherSecret, Name: "Recreated"}})
	g.Expect(err).NotTo(HaveOccurred())
	recreated := &dexv1.OIDCProvider{
		ObjectMeta: metav1.ObjectMeta{Name: "dex", Namespace: tt.ns},
		Spec:       dexv1.OIDCProviderSpec{IssuerURL: dexMain.IssuerURL(), ClientID: otherID, Hostnames: []string{tt.host}},
	}
	g.Expect(k8s.Create(ctx, recreated)).To(Succeed())
	g.Expect(recreated.Generation).To(Equal(p.Generation), "the same name and generation: only the UID differs")
	fresh := token(t, dexMain, otherID, otherSecret, harness.AdminUser)
	tt.eventuallyCode(t, versionsPath, fresh, http.StatusOK)

	code, body, _ := tt.get(versionsPath, old)
	g.Expect(code).To(Equal(http.StatusUnauthorized), body)
	g.Expect(body).To(ContainSubstring("audience"))
}

// TestAttackPublicClientTokens (item 7): with allowClientCredentials, a token anyone can obtain
// through a public client (a tenant's public DexStaticClient, the operator's connector probe
// client) is refused; a confidential DexStaticClient's token is client:<id>, and so is a Dex
// client-credentials token only for a client claimed in this registry's namespace (TestClientCredentialsIdentity).
func TestAttackPublicClientTokens(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	tt := newTenant(t, tenantOptions{clientCreds: true, providerConfig: withDex})
	secret := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "ci-secret"}, StringData: map[string]string{"secret": "ci-" + tt.ns}}
	confidential := &dexv1.DexStaticClient{
		ObjectMeta: metav1.ObjectMeta{Name: "ci"},
		Spec: dexv1.DexStaticClientSpec{ProviderRef: dexv1.ObjectRef{Name: "dex"},
			SecretRef: &dexv1.SecretKeyRef{Name: "ci-secret", Key: "secret"}},
	}
	public := &dexv1.DexStaticClient{
		ObjectMeta: metav1.ObjectMeta{Name: "cli"},
		Spec:       dexv1.DexStaticClientSpec{ProviderRef: dexv1.ObjectRef{Name: "dex"}, Public: true},
	}
	tt.create(t, secret, confidential, public)
	for _, c := range []*dexv1.DexStaticClient{confidential, public} {
		g.Eventually(func() bool {
			got := &dexv1.DexStaticClient{}
			if err := k8s.Get(ctx, clientKey(tt.ns, c.Name), got); err != nil {
				return false
			}
			return got.Status.ClientID != "" && meta.IsStatusConditionTrue(got.Status.Conditions, dexv1.ConditionRegistered)
		}, 30*time.Second, 50*time.Millisecond).Should(BeTrue(), "DexStaticClient %s never registered", c.Name)
	}
	confID, pubID := confidential.EffectiveClientID(), public.EffectiveClientID()
	// The probe client, as the DexConnector controller registers it in every Dex it administers.
	dc, closer, err := dexMain.Client()
	g.Expect(err).NotTo(HaveOccurred())
	defer func() { _ = closer.Close() }()
	_, err = dc.CreateClient(ctx, &api.CreateClientReq{Client: &api.Client{Id: controllers.ProbeClientID, Name: "Dexterity connector probe",
		Public: true, RedirectUris: []string{controllers.ProbeRedirectURI}}})
	g.Expect(err).NotTo(HaveOccurred())

	is, err := registry.StartClaimsIssuer()
	g.Expect(err).NotTo(HaveOccurred())
	t.Cleanup(is.Close)
	ccTenant := newTenant(t, tenantOptions{clientCreds: true, providerConfig: func(p *dexv1.OIDCProvider) {
		p.Spec.IssuerURL, p.Spec.ClientID = is.URL(), "registry"
	}})
	expr := `"client:` + confID + `" in groups || "client:` + pubID + `" in groups || "client:` + controllers.ProbeClientID + `" in groups || "client:ci-robot" in groups`
	for _, x := range []*testTenant{tt, ccTenant} {
		x.create(t, module("network", "team-a", "network", "aws", "1.0.0"), binding("clients", expr, []string{"team-a/*"}, nil))
	}

	// Anyone with a user account gets these: no client secret is needed.
	pubToken := token(t, dexMain, pubID, "", harness.OtherUser)
	probeToken := token(t, dexMain, controllers.ProbeClientID, "", harness.OtherUser)
	confToken := token(t, dexMain, confID, "ci-"+tt.ns, harness.OtherUser)
	tt.eventuallyCode(t, versionsPath, confToken, http.StatusOK)
	for name, tok := range map[string]string{"public DexStaticClient": pubToken, "connector probe client": probeToken} {
		code, body, _ := tt.get(versionsPath, tok)
		g.Expect(code).To(Equal(http.StatusUnauthorized), "%s: %s", name, body)
		g.Expect(body).To(ContainSubstring("did not authenticate"), name)
	}

	// Dex v2.45.1 has no client_credentials grant: a token shaped as Dex's (sub = the client id
	// without a connector), signed by an issuer this test serves.
	exp := time.Now().Add(time.Hour).Unix()
	cc, err := is.Sign(map[string]any{"aud": "ci-robot", "sub": registry.DexSubjectOf("ci-robot", ""), "exp": exp})
	g.Expect(err).NotTo(HaveOccurred())
	// Nobody claimed ci-robot in a Dex with this issuer: no client identity of this registry,
	// client credentials or not (TestClientCredentialsIdentity has the claimed case).
	code, body, _ := ccTenant.get(versionsPath, cc)
	g.Expect(code).To(Equal(http.StatusUnauthorized), "client credentials of an unclaimed client: %s", body)
	viaClient, err := is.Sign(map[string]any{"aud": "ci-robot", "sub": registry.DexSubjectOf("ci-robot", "local"), "exp": exp})
	g.Expect(err).NotTo(HaveOccurred())
	code, body, _ = ccTenant.get(versionsPath, viaClient)
	g.Expect(code).To(Equal(http.StatusUnauthorized), "a user's token through an unknown client: %s", body)
}
