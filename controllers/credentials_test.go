package controllers_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	gooidc "github.com/coreos/go-oidc/v3/oidc"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	dexv1 "dexterity.dev/dexterity/api/v1alpha1"
	"dexterity.dev/dexterity/test/harness"
)

// credentialsSecret returns a func for Eventually yielding the data of Secret ns/name (nil when
// missing).
func credentialsSecret(ns, name string) func(g Gomega) map[string]string {
	return func(g Gomega) map[string]string {
		s := &corev1.Secret{}
		err := k8s.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: name}, s)
		if apierrors.IsNotFound(err) {
			return nil
		}
		g.Expect(err).NotTo(HaveOccurred())
		out := map[string]string{}
		for k, v := range s.Data {
			out[k] = string(v)
		}
		return out
	}
}

// An app gets its credentials as it expects them: a Secret with the client id, the secret and the
// issuer, under the keys it reads, owned by the DexStaticClient, kept in step with the secret's
// rotation and repaired after a hand edit; and a real OIDC relying party (go-oidc) verifies a
// token obtained with exactly what the Secret holds. No secret value reaches events or status.
func TestCredentialsSecret(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	dapi := dexAPI(t, plainDex)
	ns := providerFor(t, plainDex, nil)
	c := &dexv1.DexStaticClient{
		ObjectMeta: metav1.ObjectMeta{Name: "grafana", Namespace: ns},
		Spec: dexv1.DexStaticClientSpec{ProviderRef: dexv1.ObjectRef{Name: "dex"}, RedirectURIs: []string{"https://grafana.example.com/login/generic_oauth"},
			SecretRef: &dexv1.SecretKeyRef{Name: "grafana-client", Key: "secret"}, GenerateSecret: true,
			Credentials: &dexv1.ClientCredentials{SecretName: "grafana-oidc",
				Keys:   &dexv1.CredentialKeys{ClientID: "GF_AUTH_GENERIC_OAUTH_CLIENT_ID", ClientSecret: "GF_AUTH_GENERIC_OAUTH_CLIENT_SECRET", IssuerURL: "issuer"},
				Labels: map[string]dexv1.LabelValue{"app.kubernetes.io/part-of": "grafana"}}},
	}
	g.Expect(k8s.Create(ctx, c)).To(Succeed())
	id := ns + "-grafana"
	var secret string
	g.Eventually(func(g Gomega) {
		gen := credentialsSecret(ns, "grafana-client")(g)
		g.Expect(gen).To(HaveKey("secret"))
		secret = gen["secret"]
		g.Expect(credentialsSecret(ns, "grafana-oidc")(g)).To(Equal(map[string]string{
			"GF_AUTH_GENERIC_OAUTH_CLIENT_ID": id, "GF_AUTH_GENERIC_OAUTH_CLIENT_SECRET": secret, "issuer": plainDex.IssuerURL(),
		}))
	}, waitTimeout, 100*time.Millisecond).Should(Succeed())
	s := &corev1.Secret{}
	g.Expect(k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: "grafana-oidc"}, s)).To(Succeed())
	g.Expect(metav1.IsControlledBy(s, getClient(t, ns, "grafana"))).To(BeTrue(), "owned by the DexStaticClient")
	g.Expect(s.Labels).To(HaveKeyWithValue("app.kubernetes.io/part-of", "grafana"))

	// A relying party logs a user in with exactly what the Secret holds.
	creds := credentialsSecret(ns, "grafana-oidc")(g)
	verifyWithRelyingParty(t, creds["issuer"], creds["GF_AUTH_GENERIC_OAUTH_CLIENT_ID"], creds["GF_AUTH_GENERIC_OAUTH_CLIENT_SECRET"])

	// Rotation: a new secret in the client's Secret reaches Dex and the credentials.
	orig := &corev1.Secret{}
	g.Expect(k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: "grafana-client"}, orig)).To(Succeed())
	rotated := orig.DeepCopy()
	rotated.Data["secret"] = []byte("rotated-" + ns)
	g.Expect(k8s.Patch(ctx, rotated, client.MergeFrom(orig))).To(Succeed())
	g.Eventually(dexClient(dapi, id), waitTimeout).Should(HaveField("Secret", "rotated-"+ns))
	g.Eventually(credentialsSecret(ns, "grafana-oidc"), waitTimeout).Should(HaveKeyWithValue("GF_AUTH_GENERIC_OAUTH_CLIENT_SECRET", "rotated-"+ns))

	// A hand edit is repaired.
	g.Expect(k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: "grafana-oidc"}, s)).To(Succeed())
	edited := s.DeepCopy()
	edited.Data["issuer"] = []byte("https://evil.example.com")
	g.Expect(k8s.Patch(ctx, edited, client.MergeFrom(s))).To(Succeed())
	g.Eventually(credentialsSecret(ns, "grafana-oidc"), waitTimeout).Should(HaveKeyWithValue("issuer", plainDex.IssuerURL()))

	// No secret value in events or status.
	for _, v := range []string{secret, "rotated-" + ns} {
		g.Expect(fmt.Sprint(getClient(t, ns, "grafana").Status)).NotTo(ContainSubstring(v))
		var evs corev1.EventList
		g.Expect(k8s.List(ctx, &evs, client.InNamespace(ns))).To(Succeed())
		for _, e := range evs.Items {
			g.Expect(e.Message).NotTo(ContainSubstring(v))
		}
	}

	// Without spec.credentials, the Secret goes.
	cur := getClient(t, ns, "grafana")
	before := cur.DeepCopy()
	cur.Spec.Credentials = nil
	g.Expect(k8s.Patch(ctx, cur, client.MergeFrom(before))).To(Succeed())
	g.Eventually(credentialsSecret(ns, "grafana-oidc"), waitTimeout).Should(BeNil())
}

// A public client's credentials hold its id and the issuer, with the default key names; a
// credentials Secret name taken by a Secret the client does not own is reported, and that Secret
// is left as it is.
func TestCredentialsSecretPublicAndForeign(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ns := providerFor(t, plainDex, nil)
	pub := &dexv1.DexStaticClient{
		ObjectMeta: metav1.ObjectMeta{Name: "cli", Namespace: ns},
		Spec: dexv1.DexStaticClientSpec{ProviderRef: dexv1.ObjectRef{Name: "dex"}, Public: true,
			LoopbackRedirect: &dexv1.LoopbackRedirect{Ports: []int32{10000, 10010}, Path: "/login"},
			Credentials:      &dexv1.ClientCredentials{SecretName: "cli-oidc"}},
	}
	g.Expect(k8s.Create(ctx, pub)).To(Succeed())
	g.Eventually(credentialsSecret(ns, "cli-oidc"), waitTimeout).Should(Equal(map[string]string{"clientID": ns + "-cli", "issuerURL": plainDex.IssuerURL()}))

	foreign := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "taken", Namespace: ns}, StringData: map[string]string{"k": "v"}}
	g.Expect(k8s.Create(ctx, foreign)).To(Succeed())
	c := &dexv1.DexStaticClient{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: ns},
		Spec: dexv1.DexStaticClientSpec{ProviderRef: dexv1.ObjectRef{Name: "dex"}, Public: true, RedirectURIs: []string{"https://web.example.com/cb"},
			Credentials: &dexv1.ClientCredentials{SecretName: "taken"}},
	}
	g.Expect(k8s.Create(ctx, c)).To(Succeed())
	g.Eventually(clientCondition(client.ObjectKeyFromObject(c), dexv1.ConditionSecretReady), waitTimeout).Should(And(
		reason(dexv1.ReasonOwnedByOther), HaveField("Message", ContainSubstring("spec.credentials.secretName"))))
	g.Consistently(credentialsSecret(ns, "taken"), 2*time.Second, 200*time.Millisecond).Should(Equal(map[string]string{"k": "v"}))

	// The credentials Secret may not be the client's own secretRef (CEL).
	bad := &dexv1.DexStaticClient{
		ObjectMeta: metav1.ObjectMeta{Name: "same", Namespace: ns},
		Spec: dexv1.DexStaticClientSpec{ProviderRef: dexv1.ObjectRef{Name: "dex"}, RedirectURIs: []string{"https://same.example.com/cb"},
			SecretRef: &dexv1.SecretKeyRef{Name: "same", Key: "secret"}, Credentials: &dexv1.ClientCredentials{SecretName: "same"}},
	}
	err := k8s.Create(ctx, bad)
	g.Expect(err).To(HaveOccurred())
	g.Expect(err.Error()).To(ContainSubstring("spec.credentials.secretName"))
}

func getClient(t *testing.T, ns, name string) *dexv1.DexStaticClient {
	t.Helper()
	c := &dexv1.DexStaticClient{}
	NewWithT(t).Expect(k8s.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: name}, c)).To(Succeed())
	return c
}

// verifyWithRelyingParty obtains an ID token from issuer with clientID and secret (the password
// grant of a static user) and verifies it with go-oidc as a relying party configured with
// exactly those values would.
func verifyWithRelyingParty(t *testing.T, issuer, clientID, secret string) {
	t.Helper()
	g := NewWithT(t)
	ctx := context.Background()
	resp, err := harness.PasswordGrant(issuer, clientID, secret, harness.OtherUser.Email, harness.OtherUser.Password)
	g.Expect(err).NotTo(HaveOccurred())
	raw, _ := resp["id_token"].(string)
	g.Expect(raw).NotTo(BeEmpty(), "token response: %v", resp)
	provider, err := gooidc.NewProvider(ctx, issuer)
	g.Expect(err).NotTo(HaveOccurred())
	idt, err := provider.Verifier(&gooidc.Config{ClientID: clientID}).Verify(ctx, raw)
	g.Expect(err).NotTo(HaveOccurred())
	var claims struct {
		Email string `json:"email"`
	}
	g.Expect(idt.Claims(&claims)).To(Succeed())
	g.Expect(strings.EqualFold(claims.Email, harness.OtherUser.Email)).To(BeTrue(), "the relying party sees the user")
}
