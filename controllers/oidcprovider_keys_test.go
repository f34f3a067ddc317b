package controllers_test

import (
	"context"
	"encoding/base64"
	"path/filepath"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	dexv1 "dexterity.dev/dexterity/api/v1alpha1"
	"dexterity.dev/dexterity/internal/oidc"
	"dexterity.dev/dexterity/test/harness"
)

func getProvider(t *testing.T, key client.ObjectKey) *dexv1.OIDCProvider {
	t.Helper()
	p := &dexv1.OIDCProvider{}
	NewWithT(t).Expect(k8s.Get(context.Background(), key, p)).To(Succeed())
	return p
}

func createOIDCProvider(t *testing.T, ns string, spec dexv1.OIDCProviderSpec) client.ObjectKey {
	t.Helper()
	p := &dexv1.OIDCProvider{ObjectMeta: metav1.ObjectMeta{Name: "issuer", Namespace: ns}, Spec: spec}
	NewWithT(t).Expect(k8s.Create(context.Background(), p)).To(Succeed())
	return client.ObjectKeyFromObject(p)
}

// Against the real Dex: Ready with Dex's jwks_uri and key count; a password-grant token verifies
// from the cache; after Dex restarts on memory storage (new keys) a new token verifies after one
// unknown-kid refresh; tampered and other-audience tokens fail with the right reason.
func TestProviderKeysFromRealDex(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	d, err := harness.StartDex(harness.DexOptions{Dir: filepath.Join(t.TempDir(), "dex")})
	g.Expect(err).NotTo(HaveOccurred())
	t.Cleanup(func() { _ = d.Stop() })
	ns := newNamespace(t)
	key := createOIDCProvider(t, ns, dexv1.OIDCProviderSpec{IssuerURL: d.IssuerURL(), ClientID: harness.HarnessClientID,
		GroupsPrefix: "dex:"})
	g.Eventually(providerCondition(key, dexv1.ConditionReady), waitTimeout).Should(HaveField("Status", metav1.ConditionTrue))
	p := getProvider(t, key)
	g.Expect(p.Status.Phase).To(Equal(dexv1.PhaseReady))
	g.Expect(p.Status.JWKSURI).To(Equal(d.IssuerURL() + "/keys"))
	g.Expect(p.Status.Keys).To(BeNumerically(">=", 1))
	g.Expect(p.Status.LastJWKSFetch).NotTo(BeNil())
	g.Expect(findCond(p, dexv1.ConditionDiscoveryReady).Status).To(Equal(metav1.ConditionTrue))

	// lastJwksFetch advances with every successful refresh, even when the keys did not change.
	first := p.Status.LastJWKSFetch.Time
	g.Eventually(func() time.Time { return getProvider(t, key).Status.LastJWKSFetch.Time }, waitTimeout).Should(BeTemporally(">", first))

	issuer, ok := keys.Get(key.String())
	g.Expect(ok).To(BeTrue())
	tok := passwordToken(t, d)
	id, err := issuer.Verify(ctx, tok)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(id.Groups).To(ConsistOf("dex:platform", "dex:team-a"))

	tampered := tamper(tok)
	_, err = issuer.Verify(ctx, tampered)
	g.Expect(oidc.ReasonOf(err)).To(Equal(oidc.ReasonBadSignature))

	// Another provider whose audience is not the harness client.
	otherKey := createOIDCProvider(t, newNamespace(t), dexv1.OIDCProviderSpec{IssuerURL: d.IssuerURL(), ClientID: "registry"})
	g.Eventually(providerCondition(otherKey, dexv1.ConditionReady), waitTimeout).Should(HaveField("Status", metav1.ConditionTrue))
	other, _ := keys.Get(otherKey.String())
	_, err = other.Verify(ctx, tok)
	g.Expect(oidc.ReasonOf(err)).To(Equal(oidc.ReasonWrongAudience))

	// Dex restarts on memory storage: new signing keys. The new token verifies right away
	// through one unknown-kid refresh.
	g.Expect(d.Restart()).To(Succeed())
	tok2 := passwordToken(t, d)
	before := issuer.Status().Fetches
	_, err = issuer.Verify(ctx, tok2)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(issuer.Status().Fetches - before).To(BeNumerically("<=", 1))
}

// A token from the real Dex fails with "expired" once its exp has passed.
func TestProviderKeysExpiredDexToken(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	d, err := harness.StartDex(harness.DexOptions{Dir: filepath.Join(t.TempDir(), "dex"), IDTokenTTL: "2s"})
	g.Expect(err).NotTo(HaveOccurred())
	t.Cleanup(func() { _ = d.Stop() })
	key := createOIDCProvider(t, newNamespace(t), dexv1.OIDCProviderSpec{IssuerURL: d.IssuerURL(), ClientID: harness.HarnessClientID})
	g.Eventually(providerCondition(key, dexv1.ConditionReady), waitTimeout).Should(HaveField("Status", metav1.ConditionTrue))
	issuer, _ := keys.Get(key.String())
	tok := passwordToken(t, d)
	_, err = issuer.Verify(ctx, tok)
	g.Expect(err).NotTo(HaveOccurred(), "fresh token verifies")
	g.Eventually(func() oidc.Reason {
		_, err := issuer.Verify(ctx, tok)
		return oidc.ReasonOf(err)
	}, 15*time.Second, 250*time.Millisecond).Should(Equal(oidc.ReasonExpired))
}

// An in-process HTTPS issuer with its own CA: TLS failure without caBundle, Ready with it, key
// rotation picked up, and last good keys kept while the issuer is down.
func TestProviderKeysPrivateCA(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	is, err := harness.StartIssuer()
	g.Expect(err).NotTo(HaveOccurred())
	t.Cleanup(is.Stop)
	ns := newNamespace(t)
	key := createOIDCProvider(t, ns, dexv1.OIDCProviderSpec{IssuerURL: is.URL(), ClientID: "registry"})

	g.Eventually(providerCondition(key, dexv1.ConditionDiscoveryReady), waitTimeout).Should(And(
		HaveField("Status", metav1.ConditionFalse),
		HaveField("Reason", dexv1.ReasonDiscoveryFailed),
		HaveField("Message", Or(ContainSubstring("x509"), ContainSubstring("certificate"))),
	))
	g.Eventually(func() dexv1.ProviderPhase { return getProvider(t, key).Status.Phase }, waitTimeout).Should(Equal(dexv1.PhaseFailed))

	p := getProvider(t, key)
	orig := p.DeepCopy()
	p.Spec.CABundle = string(is.CAPEM())
	g.Expect(k8s.Patch(ctx, p, client.MergeFrom(orig))).To(Succeed()) // the controller writes the status meanwhile
	g.Eventually(providerCondition(key, dexv1.ConditionReady), waitTimeout).Should(HaveField("Status", metav1.ConditionTrue))

	issuer, _ := keys.Get(key.String())
	tok, err := is.Token("registry", "alice", []string{"team-a"}, time.Minute)
	g.Expect(err).NotTo(HaveOccurred())
	_, err = issuer.Verify(ctx, tok)
	g.Expect(err).NotTo(HaveOccurred())
	expired, err := is.Token("registry", "alice", nil, -time.Minute)
	g.Expect(err).NotTo(HaveOccurred())
	_, err = issuer.Verify(ctx, expired)
	g.Expect(oidc.ReasonOf(err)).To(Equal(oidc.ReasonExpired))

	// Rotation at the issuer: a token with the new kid verifies after one extra fetch.
	g.Expect(is.Rotate()).To(Succeed())
	rotated, err := is.Token("registry", "alice", nil, time.Minute)
	g.Expect(err).NotTo(HaveOccurred())
	_, err = issuer.Verify(ctx, rotated)
	g.Expect(err).NotTo(HaveOccurred())

	// Issuer down: tokens still verify from the last good keys; status says the refresh failed.
	is.Stop()
	g.Eventually(providerCondition(key, dexv1.ConditionKeysReady), waitTimeout).Should(And(
		HaveField("Status", metav1.ConditionTrue),
		HaveField("Reason", dexv1.ReasonKeysRefreshFailed),
	))
	g.Expect(getProvider(t, key).Status.Message).To(ContainSubstring("last refresh failed"))
	_, err = issuer.Verify(ctx, rotated)
	g.Expect(err).NotTo(HaveOccurred())

	// Back up: the condition clears.
	g.Expect(is.Start()).To(Succeed())
	g.Eventually(providerCondition(key, dexv1.ConditionKeysReady), waitTimeout).Should(HaveField("Reason", dexv1.ReasonReconciled))
}

func findCond(p *dexv1.OIDCProvider, t string) metav1.Condition {
	for _, c := range p.Status.Conditions {
		if c.Type == t {
			return c
		}
	}
	return metav1.Condition{}
}

func passwordToken(t *testing.T, d *harness.Dex) string {
	t.Helper()
	u := harness.AdminUser
	resp, err := harness.PasswordGrant(d.IssuerURL(), harness.HarnessClientID, harness.HarnessClientSecret, u.Email, u.Password)
	NewWithT(t).Expect(err).NotTo(HaveOccurred())
	tok, ok := resp["id_token"].(string)
	NewWithT(t).Expect(ok).To(BeTrue())
	return tok
}

// tamper rewrites a claim in the payload (team-a -> team-z), keeping header and signature.
func tamper(tok string) string {
	parts := strings.Split(tok, ".")
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		panic(err)
	}
	parts[1] = base64.RawURLEncoding.EncodeToString([]byte(strings.ReplaceAll(string(payload), "team-a", "team-z")))
	return strings.Join(parts, ".")
}

// Issuer settings the key cache refuses (here a plain-http discovery URL outside the cluster,
// which the CRD lets through) make DiscoveryReady and KeysReady say so, and the registry has no
// keys for the provider; corrected, the provider turns Ready.
func TestProviderKeysInvalidSettings(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	is, err := harness.StartIssuer()
	g.Expect(err).NotTo(HaveOccurred())
	t.Cleanup(is.Stop)
	key := createOIDCProvider(t, newNamespace(t), dexv1.OIDCProviderSpec{IssuerURL: is.URL(), ClientID: "registry",
		CABundle: string(is.CAPEM()), DiscoveryURL: "http://dex.example.com"})

	for _, cond := range []string{dexv1.ConditionDiscoveryReady, dexv1.ConditionKeysReady} {
		g.Eventually(providerCondition(key, cond), waitTimeout).Should(And(
			HaveField("Status", metav1.ConditionFalse),
			HaveField("Reason", dexv1.ReasonInvalidSpec),
			HaveField("Message", And(ContainSubstring("invalid issuer settings"), ContainSubstring("discovery URL"))),
		))
	}
	// Settings the user must fix: kstatus reads the provider as Stalled, not Reconciling.
	g.Eventually(providerCondition(key, dexv1.ConditionStalled), waitTimeout).Should(And(
		HaveField("Status", metav1.ConditionTrue), HaveField("Reason", dexv1.ReasonInvalidSpec)))
	_, ok := keys.Get(key.String())
	g.Expect(ok).To(BeFalse(), "no keys under refused settings")

	p := getProvider(t, key)
	orig := p.DeepCopy()
	p.Spec.DiscoveryURL = ""
	g.Expect(k8s.Patch(ctx, p, client.MergeFrom(orig))).To(Succeed())
	g.Eventually(providerCondition(key, dexv1.ConditionReady), waitTimeout).Should(HaveField("Status", metav1.ConditionTrue))
	_, ok = keys.Get(key.String())
	g.Expect(ok).To(BeTrue())
}
