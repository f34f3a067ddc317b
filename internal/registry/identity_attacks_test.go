package registry_test

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	. "github.com/onsi/gomega"
	authnv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	claimsv1 "dexterity.dev/dexterity/api/claims/v1alpha1"
	dexv1 "dexterity.dev/dexterity/api/v1alpha1"
	"dexterity.dev/dexterity/internal/registry"
	"dexterity.dev/dexterity/test/harness"
)

// Attacks on the registry's authentication (issue: client-identity squatting, status-forged
// client identities, TokenReview amplification), each made as the attacker would: objects
// through the API server, tokens from the real Dex and the real API server, requests through the
// registry's HTTP port.

// TestClientClaimName: the registry finds a client's claim under the name the controllers give it.
func TestClientClaimName(t *testing.T) {
	g := NewWithT(t)
	for _, c := range [][2]string{{"dex.dex.svc:5557", "team-a-ci"}, {"Dex.Example:5557", "x"}, {"127.0.0.1:1", "a\x00b"}} {
		g.Expect(registry.ClientClaimName(strings.ToLower(c[0]), c[1])).To(Equal(claimsv1.EntryClaimName(claimsv1.EntryClient, c[0], c[1])), "%q", c)
	}
}

// newNamespace creates a namespace named prefix<random>.
func newNamespace(t *testing.T, prefix string) string {
	t.Helper()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: prefix}}
	NewWithT(t).Expect(k8s.Create(context.Background(), ns)).To(Succeed())
	return ns.Name
}

// confidentialClient creates a DexStaticClient with a secret in ns through provider and waits
// until it is registered in Dex; it returns the client id and the secret.
func confidentialClient(t *testing.T, ns, name, id string, provider dexv1.ObjectRef) (string, string) {
	t.Helper()
	g := NewWithT(t)
	ctx := context.Background()
	secret := "secret-" + ns + "-" + name
	g.Expect(k8s.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: name + "-secret", Namespace: ns}, StringData: map[string]string{"secret": secret}})).To(Succeed())
	c := &dexv1.DexStaticClient{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec: dexv1.DexStaticClientSpec{ProviderRef: provider, ClientID: id,
			SecretRef: &dexv1.SecretKeyRef{Name: name + "-secret", Key: "secret"}},
	}
	g.Expect(k8s.Create(ctx, c)).To(Succeed())
	waitRegistered(t, ns, name)
	return c.EffectiveClientID(), secret
}

func waitRegistered(t *testing.T, ns, name string) *dexv1.DexStaticClient {
	t.Helper()
	got := &dexv1.DexStaticClient{}
	NewWithT(t).Eventually(func() bool {
		return k8s.Get(context.Background(), clientKey(ns, name), got) == nil && got.Status.ClientID != "" &&
			meta.IsStatusConditionTrue(got.Status.Conditions, dexv1.ConditionRegistered)
	}, 30*time.Second, 50*time.Millisecond).Should(BeTrue(), "DexStaticClient %s/%s never registered", ns, name)
	return got
}

// TestAttackClientIdentitySquatting: team A's GroupBinding grants client:<team-a>-ci. Mallory, in
// her own namespace, registers a confidential client with that id first (through the platform's
// provider, which admits every namespace's clients), logs her own user in through it, and calls
// team A's registry: she is refused. Team A's own confidential client is let in.
func TestAttackClientIdentitySquatting(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	platformNS, malloryNS := newNamespace(t, "platform-"), newNamespace(t, "mallory-")
	platform := &dexv1.OIDCProvider{
		ObjectMeta: metav1.ObjectMeta{Name: "dex", Namespace: platformNS},
		Spec: dexv1.OIDCProviderSpec{IssuerURL: dexMain.IssuerURL(), ClientID: harness.HarnessClientID,
			Dex: &dexv1.DexAdminSpec{GRPCAddress: dexMain.GRPCAddress(), Insecure: true,
				AllowedNamespaces: &dexv1.AllowedNamespaces{From: dexv1.NamespacesFromAll}}},
	}
	g.Expect(k8s.Create(ctx, platform)).To(Succeed())
	teamA := newTenant(t, tenantOptions{clientCreds: true, providerConfig: withDex})
	squatted, own := teamA.ns+"-ci", teamA.ns+"-deploy"
	teamA.create(t, module("network", "team-a", "network", "aws", "1.0.0"),
		binding("ci", `"client:`+squatted+`" in groups || "client:`+own+`" in groups`, []string{"team-a/*"}, nil))

	// Mallory claims team A's id first, from her namespace.
	_, mallorySecret := confidentialClient(t, malloryNS, "squat", squatted, dexv1.ObjectRef{Name: "dex", Namespace: platformNS})
	var cl claimsv1.DexEntryClaim
	g.Expect(k8s.Get(ctx, client.ObjectKey{Name: claimsv1.EntryClaimName(claimsv1.EntryClient, dexMain.GRPCAddress(), squatted)}, &cl)).To(Succeed())
	g.Expect(cl.Spec.Owner.Namespace).To(Equal(malloryNS), "mallory owns the id")
	// Team A's own confidential client, registered after mallory's: once the registry lets it in,
	// it has seen mallory's client and claim too.
	ownID, ownSecret := confidentialClient(t, teamA.ns, "deploy", own, dexv1.ObjectRef{Name: "dex"})
	teamA.eventuallyCode(t, versionsPath, token(t, dexMain, ownID, ownSecret, harness.OtherUser), http.StatusOK)

	mallory := token(t, dexMain, squatted, mallorySecret, harness.OtherUser)
	g.Consistently(func() int {
		code, _, _ := teamA.get(versionsPath, mallory)
		return code
	}, 2*time.Second, 100*time.Millisecond).Should(Equal(http.StatusUnauthorized))
	_, body, _ := teamA.get(versionsPath, mallory)
	g.Expect(body).To(ContainSubstring("clientIdentityNamespaces"))

	// Team A's provider admits mallory's namespace: now it is its owner's choice.
	p := &dexv1.OIDCProvider{}
	g.Expect(k8s.Get(ctx, clientKey(teamA.ns, "dex"), p)).To(Succeed())
	patch := client.MergeFrom(p.DeepCopy())
	p.Spec.Dex.ClientIdentityNamespaces = &dexv1.AllowedNamespaces{From: dexv1.NamespacesFromAll}
	g.Expect(k8s.Patch(ctx, p, patch)).To(Succeed())
	teamA.eventuallyCode(t, versionsPath, mallory, http.StatusOK)
}

// TestAttackForgedClientStatus: a tenant allowed to write status makes its confidential
// DexStaticClient say it registered the id of a public client (status.clientId,
// Registered=True). Tokens anyone obtains through that public client are refused all the same:
// the claim on the id names the public client.
func TestAttackForgedClientStatus(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	tt := newTenant(t, tenantOptions{clientCreds: true, providerConfig: withDex})
	public := &dexv1.DexStaticClient{
		ObjectMeta: metav1.ObjectMeta{Name: "cli", Namespace: tt.ns},
		Spec:       dexv1.DexStaticClientSpec{ProviderRef: dexv1.ObjectRef{Name: "dex"}, Public: true},
	}
	g.Expect(k8s.Create(ctx, public)).To(Succeed())
	waitRegistered(t, tt.ns, "cli")
	pubID := public.EffectiveClientID()
	decoyID, decoySecret := confidentialClient(t, tt.ns, "decoy", "", dexv1.ObjectRef{Name: "dex"})
	tt.create(t, module("network", "team-a", "network", "aws", "1.0.0"),
		binding("clients", `"client:`+pubID+`" in groups || "client:`+decoyID+`" in groups`, []string{"team-a/*"}, nil))
	tt.eventuallyCode(t, versionsPath, token(t, dexMain, decoyID, decoySecret, harness.OtherUser), http.StatusOK)
	pubToken := token(t, dexMain, pubID, "", harness.OtherUser)
	tt.eventuallyCode(t, versionsPath, pubToken, http.StatusUnauthorized)

	// The forgery. The controller rewrites it when the object's turn in the periodic resync comes
	// (once a minute here, at a phase of the object's own); a check during which that happened
	// proves nothing, and is done again.
	decoy := &dexv1.DexStaticClient{}
	for attempt := 1; ; attempt++ {
		g.Eventually(func() error {
			if err := k8s.Get(ctx, clientKey(tt.ns, "decoy"), decoy); err != nil {
				return err
			}
			decoy.Status.ClientID = pubID
			meta.SetStatusCondition(&decoy.Status.Conditions, metav1.Condition{Type: dexv1.ConditionRegistered, Status: metav1.ConditionTrue,
				Reason: "Reconciled", Message: "forged", ObservedGeneration: decoy.Generation})
			return k8s.Status().Update(ctx, decoy)
		}, 10*time.Second, 50*time.Millisecond).Should(Succeed())
		g.Consistently(func() int {
			code, _, _ := tt.get(versionsPath, pubToken)
			return code
		}, 3*time.Second, 100*time.Millisecond).Should(Equal(http.StatusUnauthorized))
		g.Expect(k8s.Get(ctx, clientKey(tt.ns, "decoy"), decoy)).To(Succeed())
		if decoy.Status.ClientID == pubID {
			break // the forged status stood throughout the check
		}
		g.Expect(attempt).To(BeNumerically("<", 3), "the resync rewrote the forged status during every check")
	}
}

// reviewCounter is the manager's client, counting the TokenReviews the registry creates.
type reviewCounter struct {
	client.Client
	reviews atomic.Int64
}

func (c *reviewCounter) Create(ctx context.Context, obj client.Object, opts ...client.CreateOption) error {
	if _, ok := obj.(*authnv1.TokenReview); ok {
		c.reviews.Add(1)
	}
	return c.Client.Create(ctx, obj, opts...)
}

// startCountingRegistry starts another registry server on its own informer cache, with the
// envtest REST config (it reads the API server's service-account keys) and a client that counts
// TokenReviews. It returns its URL.
func startCountingRegistry(t *testing.T) (*registry.Server, *reviewCounter, string) {
	t.Helper()
	g := NewWithT(t)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	c, err := cache.New(env.Config, cache.Options{Scheme: harness.Scheme})
	g.Expect(err).NotTo(HaveOccurred())
	go func() { _ = c.Start(ctx) }()
	g.Expect(c.WaitForCacheSync(ctx)).To(BeTrue())
	port, err := harness.FreePort()
	g.Expect(err).NotTo(HaveOccurred())
	kube := &reviewCounter{Client: k8s}
	srv, err := registry.New(ctx, c, registry.Options{Addr: fmt.Sprintf("127.0.0.1:%d", port), Keys: keys, Kube: kube, RESTConfig: env.Config})
	g.Expect(err).NotTo(HaveOccurred())
	go func() { _ = srv.Start(ctx) }()
	return srv, kube, fmt.Sprintf("http://127.0.0.1:%d", port)
}

// TestAttackTokenReviewAmplification: with allowServiceAccountFallback, anyone on the network
// sends JWTs claiming the cluster's service-account issuer (unsigned, tampered, or signed by
// another key with the API server's key id), or another issuer, or this provider's issuer in iss
// and another in ISS: none of them costs a TokenReview. A real ServiceAccount token (TokenRequest)
// still gets in.
func TestAttackTokenReviewAmplification(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	srv, kube, base := startCountingRegistry(t)
	tt := newTenant(t, tenantOptions{fallback: true})
	tt.create(t, module("network", "team-a", "network", "aws", "1.0.0"))
	tt.base = base
	tt.eventuallyCode(t, versionsPath, "", http.StatusUnauthorized) // served by this server
	g.Eventually(func() bool { return srv.ServiceAccountFallback().KeysPublished }, 20*time.Second, 50*time.Millisecond).Should(BeTrue(),
		func() string {
			return "the API server's service-account keys never loaded: " + srv.ServiceAccountFallback().Message
		})
	saIssuer := srv.ServiceAccountFallback().Issuer

	// A real ServiceAccount token, with RBAC to read modules.
	sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "ci", Namespace: tt.ns}}
	g.Expect(k8s.Create(ctx, sa)).To(Succeed())
	g.Expect(k8s.Create(ctx, &rbacv1.Role{
		ObjectMeta: metav1.ObjectMeta{Name: "module-reader", Namespace: tt.ns},
		Rules:      []rbacv1.PolicyRule{{APIGroups: []string{dexv1.GroupVersion.Group}, Resources: []string{"modules"}, Verbs: []string{"get"}}},
	})).To(Succeed())
	g.Expect(k8s.Create(ctx, &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "ci-modules", Namespace: tt.ns},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: "module-reader"},
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Name: sa.Name, Namespace: sa.Namespace}},
	})).To(Succeed())
	requestToken := func() string {
		tr := &authnv1.TokenRequest{Spec: authnv1.TokenRequestSpec{ExpirationSeconds: ptr(int64(3600))}}
		g.Expect(k8s.SubResource("token").Create(ctx, sa, tr)).To(Succeed())
		return tr.Status.Token
	}
	saToken := requestToken()
	parts := strings.Split(saToken, ".")
	g.Expect(parts).To(HaveLen(3))
	var hdr map[string]any
	headerJSON, err := base64.RawURLEncoding.DecodeString(parts[0])
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(json.Unmarshal(headerJSON, &hdr)).To(Succeed())
	kid, _ := hdr["kid"].(string)
	g.Expect(kid).NotTo(BeEmpty())

	enc := func(v any) string {
		b, err := json.Marshal(v)
		g.Expect(err).NotTo(HaveOccurred())
		return base64.RawURLEncoding.EncodeToString(b)
	}
	other, err := rsa.GenerateKey(rand.Reader, 2048)
	g.Expect(err).NotTo(HaveOccurred())
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.RS256, Key: jose.JSONWebKey{Key: other, KeyID: kid}}, (&jose.SignerOptions{}).WithType("JWT"))
	g.Expect(err).NotTo(HaveOccurred())
	exp := time.Now().Add(time.Hour).Unix()
	var forged []string
	for i := range 10 {
		claims := map[string]any{"iss": saIssuer, "sub": fmt.Sprintf("system:serviceaccount:%s:forged-%d", tt.ns, i),
			"aud": []string{saIssuer}, "exp": exp, "iat": time.Now().Unix(), "nbf": time.Now().Unix()}
		// Unsigned (a meaningless signature) with the API server's key id.
		forged = append(forged, enc(map[string]any{"alg": "RS256", "kid": kid})+"."+enc(claims)+".c2lnbmF0dXJl")
		// The real token's header and signature over other claims.
		forged = append(forged, parts[0]+"."+enc(claims)+"."+parts[2])
		// Signed by another key under the API server's key id.
		payload, err := json.Marshal(claims)
		g.Expect(err).NotTo(HaveOccurred())
		jws, err := signer.Sign(payload)
		g.Expect(err).NotTo(HaveOccurred())
		raw, err := jws.CompactSerialize()
		g.Expect(err).NotTo(HaveOccurred())
		forged = append(forged, raw)
	}
	foreign := []string{
		// Another issuer.
		enc(map[string]any{"alg": "RS256", "kid": kid}) + "." + enc(map[string]any{"iss": "https://elsewhere.example", "sub": "x", "exp": exp}) + ".c2lnbmF0dXJl",
		// Dex's issuer in iss and the service-account issuer in ISS: Dex's token, with a bad signature.
		enc(map[string]any{"alg": "RS256", "kid": kid}) + "." +
			base64.RawURLEncoding.EncodeToString([]byte(fmt.Sprintf(`{"iss":%q,"sub":"x","aud":%q,"exp":%d,"ISS":%q}`, dexMain.IssuerURL(), harness.HarnessClientID, exp, saIssuer))) + ".c2lnbmF0dXJl",
	}
	g.Expect(forged).To(HaveLen(30))
	before := kube.reviews.Load()
	for _, tok := range append(forged, foreign...) {
		code, body, _ := tt.get(versionsPath, tok)
		g.Expect(code).To(Equal(http.StatusUnauthorized), body)
	}
	g.Expect(kube.reviews.Load()-before).To(BeZero(), "TokenReviews for 32 forged tokens")

	// Real ServiceAccount tokens still get in, each with one TokenReview.
	tt.eventuallyCode(t, versionsPath, saToken, http.StatusOK)
	g.Expect(kube.reviews.Load() - before).To(BeNumerically(">=", 1))
	before = kube.reviews.Load()
	code, body, _ := tt.get(versionsPath, requestToken())
	g.Expect(code).To(Equal(http.StatusOK), body)
	g.Expect(kube.reviews.Load() - before).To(BeEquivalentTo(1))
}

// TestClientCredentialsIdentity: a Dex client-credentials token (sub = the client id, no
// connector) proves that its caller knows the client's secret, not whose client it is: it is
// client:<id> only when the claim on the id names a confidential DexStaticClient of a namespace
// the provider admits. Dex v2.45.1 has no client_credentials grant, so the tokens are shaped as
// Dex's and signed by an issuer this test serves, for a provider that administers the real Dex.
func TestClientCredentialsIdentity(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	is, err := registry.StartClaimsIssuer()
	g.Expect(err).NotTo(HaveOccurred())
	t.Cleanup(is.Close)
	platformNS, malloryNS := newNamespace(t, "platform-"), newNamespace(t, "mallory-")
	g.Expect(k8s.Create(ctx, &dexv1.OIDCProvider{
		ObjectMeta: metav1.ObjectMeta{Name: "dex", Namespace: platformNS},
		Spec: dexv1.OIDCProviderSpec{IssuerURL: is.URL(), ClientID: "registry",
			Dex: &dexv1.DexAdminSpec{GRPCAddress: dexMain.GRPCAddress(), Insecure: true,
				AllowedNamespaces: &dexv1.AllowedNamespaces{From: dexv1.NamespacesFromAll}}},
	})).To(Succeed())
	tt := newTenant(t, tenantOptions{clientCreds: true, providerConfig: func(p *dexv1.OIDCProvider) {
		p.Spec.IssuerURL, p.Spec.ClientID = is.URL(), "registry"
		withDex(p)
	}})
	robot, _ := confidentialClient(t, tt.ns, "robot", tt.ns+"-robot", dexv1.ObjectRef{Name: "dex"})
	squat, _ := confidentialClient(t, malloryNS, "robot", malloryNS+"-robot", dexv1.ObjectRef{Name: "dex", Namespace: platformNS})
	tt.create(t, module("network", "team-a", "network", "aws", "1.0.0"),
		binding("robots", `"client:`+robot+`" in groups || "client:`+squat+`" in groups || "client:`+tt.ns+`-unclaimed" in groups`, []string{"team-a/*"}, nil))
	cc := func(id string) string {
		tok, err := is.Sign(map[string]any{"aud": id, "sub": registry.DexSubjectOf(id, ""), "exp": time.Now().Add(time.Hour).Unix()})
		g.Expect(err).NotTo(HaveOccurred())
		return tok
	}
	tt.eventuallyCode(t, versionsPath, cc(robot), http.StatusOK)
	for _, id := range []string{squat, tt.ns + "-unclaimed"} {
		code, body, _ := tt.get(versionsPath, cc(id))
		g.Expect(code).To(Equal(http.StatusUnauthorized), "client credentials of %s: %s", id, body)
	}
}
