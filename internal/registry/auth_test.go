package registry

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	. "github.com/onsi/gomega"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"golang.org/x/time/rate"
	authnv1 "k8s.io/api/authentication/v1"
	authzv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	claimsv1 "dexterity.dev/dexterity/api/claims/v1alpha1"
	dexv1 "dexterity.dev/dexterity/api/v1alpha1"
	"dexterity.dev/dexterity/internal/oidc"
	"dexterity.dev/dexterity/internal/tenancy"
)

// fakeKube answers TokenReviews (authenticating the tokens in accept) and SubjectAccessReviews
// (allowing everything), and counts them.
type fakeKube struct {
	mu      sync.Mutex
	accept  map[string]bool
	reviews int
	sars    int
}

func (f *fakeKube) Create(_ context.Context, obj client.Object, _ ...client.CreateOption) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	switch o := obj.(type) {
	case *authnv1.TokenReview:
		f.reviews++
		if f.accept[o.Spec.Token] {
			o.Status.Authenticated = true
			o.Status.User = authnv1.UserInfo{Username: "system:serviceaccount:team-a:ci", UID: "sa-uid", Groups: []string{"system:serviceaccounts"}}
		}
	case *authzv1.SubjectAccessReview:
		f.sars++
		o.Status.Allowed = true
	}
	return nil
}

func (f *fakeKube) counts() (reviews, sars int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.reviews, f.sars
}

// unsignedJWT is a JWT-shaped token with the given claims and a meaningless signature (as a
// ServiceAccount token of another issuer looks to the registry before Kubernetes checks it).
func unsignedJWT(claims map[string]any) string {
	h, _ := json.Marshal(map[string]any{"alg": "RS256", "kid": "k"})
	p, _ := json.Marshal(claims)
	return base64.RawURLEncoding.EncodeToString(h) + "." + base64.RawURLEncoding.EncodeToString(p) + ".c2lnbmF0dXJl"
}

// authFixture is an authenticator over a Store and client identities with one provider, ns/dex,
// and an API server publishing its service-account keys.
type authFixture struct {
	store   *Store
	clients *clients
	auth    *authenticator
	kube    *fakeKube
	keys    *oidc.Cache
	api     *fakeAPIServer
	now     time.Time
}

func newAuthFixture(t testing.TB) *authFixture {
	return newAuthFixtureWith(t, newFakeAPIServer(t, true))
}

func newAuthFixtureWith(t testing.TB, api *fakeAPIServer) *authFixture {
	f := &authFixture{store: NewStore(""), clients: newClients(), kube: &fakeKube{accept: map[string]bool{}}, keys: oidc.NewCache(),
		api: api, now: time.Now()}
	tokens := newTokenCache(100, 5*time.Minute)
	f.store.forget = tokens.forget
	reviews := newKubeCache(16)
	reviews.now = func() time.Time { return f.now }
	sa := oidc.NewServiceAccountKeys(api.fetch)
	if err := sa.Refresh(context.Background()); (err == nil) != api.published {
		t.Fatalf("loading the service-account keys: %v", err)
	}
	f.auth = &authenticator{keys: f.keys, kube: f.kube, tokens: tokens, clients: f.clients, reviews: reviews,
		sa: newServiceAccountFallback(sa)}
	return f
}

// upsert feeds objects to the Store and the client identities, as the informers do.
func (f *authFixture) upsert(objs ...any) {
	for _, o := range objs {
		f.store.upsert(o)
		f.clients.upsert(o)
		// The operator claims a provider's hosts for it when nobody holds them yet.
		if p, ok := o.(*dexv1.OIDCProvider); ok && p.DeletionTimestamp.IsZero() {
			for _, h := range p.Spec.Hostnames {
				if _, held := f.store.claims[tenancy.NormalizeHostname(h)]; !held {
					f.store.upsert(hostClaim(p, h))
				}
			}
		}
	}
}

// remove is upsert for deleted objects.
func (f *authFixture) remove(objs ...any) {
	for _, o := range objs {
		f.store.remove(o)
		f.clients.remove(o)
	}
}

// saIssuer is the service-account issuer of the fake API server.
const saIssuer = "https://kubernetes.default.svc.cluster.local"

// fakeAPIServer serves a service-account issuer's discovery document and keys as kube-apiserver
// does (or, unpublished, answers 404), and signs ServiceAccount tokens.
type fakeAPIServer struct {
	published bool
	key       *ecdsa.PrivateKey
	signer    jose.Signer
	mu        sync.Mutex
	gets      int
}

func newFakeAPIServer(t testing.TB, published bool) *fakeAPIServer {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return &fakeAPIServer{published: published, key: key, signer: newSigner(t, key, "sa-key")}
}

func newSigner(t testing.TB, key *ecdsa.PrivateKey, kid string) jose.Signer {
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: jose.JSONWebKey{Key: key, KeyID: kid}}, (&jose.SignerOptions{}).WithType("JWT"))
	if err != nil {
		t.Fatal(err)
	}
	return signer
}

func (s *fakeAPIServer) fetch(_ context.Context, path string) ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.gets++
	if !s.published {
		return nil, fmt.Errorf("%w: GET %s: 404", oidc.ErrNotPublished, path)
	}
	switch path {
	case "/.well-known/openid-configuration":
		return json.Marshal(map[string]any{"issuer": saIssuer, "jwks_uri": "https://10.0.0.1:6443/openid/v1/jwks"})
	case "/openid/v1/jwks":
		return json.Marshal(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: &s.key.PublicKey, KeyID: "sa-key", Algorithm: "ES256", Use: "sig"}}})
	}
	return nil, fmt.Errorf("%w: GET %s: 404", oidc.ErrNotPublished, path)
}

func (s *fakeAPIServer) fetches() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.gets
}

// token returns a ServiceAccount token of the fake API server with claims (iss set unless given).
func (s *fakeAPIServer) token(t testing.TB, claims map[string]any) string {
	return signClaims(t, s.signer, claims)
}

func signClaims(t testing.TB, signer jose.Signer, claims map[string]any) string {
	t.Helper()
	c := map[string]any{"iss": saIssuer}
	for k, v := range claims {
		c[k] = v
	}
	payload, err := json.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	jws, err := signer.Sign(payload)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := jws.CompactSerialize()
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

func testProvider(issuer string, mutate func(*dexv1.OIDCProviderSpec)) *dexv1.OIDCProvider {
	p := &dexv1.OIDCProvider{
		ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "dex", UID: "uid-1", Generation: 1,
			CreationTimestamp: metav1.NewTime(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))},
		Spec: dexv1.OIDCProviderSpec{IssuerURL: issuer, ClientID: "registry", Hostnames: []string{"registry.test"}},
	}
	if mutate != nil {
		mutate(&p.Spec)
	}
	return p
}

func (f *authFixture) tenant(t testing.TB, p *dexv1.OIDCProvider) *tenant {
	t.Helper()
	f.upsert(p)
	tt := f.store.tenants[p.Namespace+"/"+p.Name]
	if tt == nil {
		t.Fatalf("provider %s/%s not in the store", p.Namespace, p.Name)
	}
	return tt
}

// loadKeys puts is's keys into the key cache for ns/dex, configured like the provider p.
func (f *authFixture) loadKeys(t testing.TB, is *ClaimsIssuer, audiences ...string) {
	t.Helper()
	if len(audiences) == 0 {
		audiences = []string{"registry"}
	}
	issuer, err := f.keys.Sync("ns/dex", oidc.Config{IssuerURL: is.URL(), Audiences: audiences})
	if err != nil {
		t.Fatal(err)
	}
	if err := issuer.Refresh(context.Background()); err != nil {
		t.Fatal(err)
	}
}

func TestKubernetesAnswersAreCachedBriefly(t *testing.T) {
	is, err := StartClaimsIssuer()
	if err != nil {
		t.Fatal(err)
	}
	defer is.Close()
	ctx := context.Background()

	t.Run("a repeated ServiceAccount token costs one TokenReview per TTL", func(t *testing.T) {
		g := NewWithT(t)
		f := newAuthFixture(t)
		tt := f.tenant(t, testProvider(is.URL(), func(s *dexv1.OIDCProviderSpec) { s.AllowServiceAccountFallback = true }))
		f.loadKeys(t, is)
		sa := f.api.token(t, map[string]any{"sub": "system:serviceaccount:team-a:ci", "exp": f.now.Add(time.Hour).Unix()})
		f.kube.accept[sa] = true
		for range 5 {
			p, aerr := f.auth.authenticate(ctx, tt, sa)
			g.Expect(aerr).ToNot(HaveOccurred())
			g.Expect(p.path).To(Equal(pathK8s))
			allowed, _, err := f.auth.authorizeKubernetes(ctx, p, "team-a", kindModule, "network")
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(allowed).To(BeTrue())
		}
		reviews, sars := f.kube.counts()
		g.Expect(reviews).To(Equal(1), "TokenReviews within the TTL")
		g.Expect(sars).To(Equal(1), "SubjectAccessReviews within the TTL")
		// Another resource is another question.
		p, _ := f.auth.authenticate(ctx, tt, sa)
		_, _, _ = f.auth.authorizeKubernetes(ctx, p, "team-a", kindProvider, "echo")
		_, sars = f.kube.counts()
		g.Expect(sars).To(Equal(2))
		// After the TTL Kubernetes is asked again.
		f.now = f.now.Add(kubePositiveTTL)
		p, aerr := f.auth.authenticate(ctx, tt, sa)
		g.Expect(aerr).ToNot(HaveOccurred())
		_, _, _ = f.auth.authorizeKubernetes(ctx, p, "team-a", kindModule, "network")
		reviews, sars = f.kube.counts()
		g.Expect(reviews).To(Equal(2))
		g.Expect(sars).To(Equal(3))
	})
	t.Run("refusals are cached shorter, and nothing past the token's exp", func(t *testing.T) {
		g := NewWithT(t)
		f := newAuthFixture(t)
		tt := f.tenant(t, testProvider(is.URL(), func(s *dexv1.OIDCProviderSpec) { s.AllowServiceAccountFallback = true }))
		revoked := f.api.token(t, map[string]any{"sub": "system:serviceaccount:team-a:gone", "exp": f.now.Add(time.Hour).Unix()})
		for range 3 {
			_, aerr := f.auth.authenticate(ctx, tt, revoked)
			g.Expect(aerr).To(HaveOccurred())
			g.Expect(aerr.status).To(Equal(http.StatusUnauthorized))
		}
		reviews, _ := f.kube.counts()
		g.Expect(reviews).To(Equal(1))
		f.now = f.now.Add(kubeNegativeTTL)
		_, _ = f.auth.authenticate(ctx, tt, revoked)
		reviews, _ = f.kube.counts()
		g.Expect(reviews).To(Equal(2), "a refusal is kept %s only", kubeNegativeTTL)

		short := f.api.token(t, map[string]any{"sub": "system:serviceaccount:team-a:short", "exp": f.now.Add(3 * time.Second).Unix()})
		f.kube.accept[short] = true
		_, aerr := f.auth.authenticate(ctx, tt, short)
		g.Expect(aerr).ToNot(HaveOccurred())
		f.now = f.now.Add(3 * time.Second)
		_, _ = f.auth.authenticate(ctx, tt, short)
		reviews, _ = f.kube.counts()
		g.Expect(reviews).To(Equal(4), "the answer is not used past the token's exp")
	})
	t.Run("garbage and tokens claiming the issuer never reach Kubernetes", func(t *testing.T) {
		g := NewWithT(t)
		f := newAuthFixture(t)
		tt := f.tenant(t, testProvider(is.URL(), func(s *dexv1.OIDCProviderSpec) { s.AllowServiceAccountFallback = true }))
		garbage := []string{"garbage", "a.b.c", "Zm9v.YmFy.YmF6", "a b", "tok\x00en", "é", "=abc", "ab=c",
			unsignedJWT(map[string]any{"iss": "x"})[:10], "e30.e30.", "bnVsbA.bnVsbA.c2ln"}
		// Claims this issuer: keys not loaded (503), then loaded (bad signature, expired: 401).
		claiming := unsignedJWT(map[string]any{"iss": is.URL(), "aud": "registry", "sub": "x", "exp": time.Now().Add(time.Hour).Unix()})
		for _, tok := range garbage {
			_, aerr := f.auth.authenticate(ctx, tt, tok)
			g.Expect(aerr).To(HaveOccurred(), "token %q", tok)
			g.Expect(aerr.status).To(Equal(http.StatusUnauthorized), "token %q", tok)
		}
		_, aerr := f.auth.authenticate(ctx, tt, claiming)
		g.Expect(aerr.status).To(Equal(http.StatusServiceUnavailable))
		f.loadKeys(t, is)
		expired, err := is.Sign(map[string]any{"aud": "registry", "sub": "x", "exp": time.Now().Add(-time.Hour).Unix()})
		g.Expect(err).NotTo(HaveOccurred())
		for _, tok := range []string{claiming, expired} {
			_, aerr = f.auth.authenticate(ctx, tt, tok)
			g.Expect(aerr).To(HaveOccurred())
			g.Expect(aerr.status).To(Equal(http.StatusUnauthorized))
		}
		reviews, sars := f.kube.counts()
		g.Expect(reviews).To(BeZero(), "TokenReviews")
		g.Expect(sars).To(BeZero())

		// Bearer mode sends well-formed tokens of any issuer to Kubernetes, never garbage.
		bearer := f.tenant(t, testProvider(is.URL(), func(s *dexv1.OIDCProviderSpec) {
			s.Enabled = new(bool)
			s.UseBearerToken = true
			s.Hostnames = nil
		}))
		for _, tok := range []string{"a b", "tok\x00en", "é", "ab=c"} {
			_, aerr := f.auth.authenticate(ctx, bearer, tok)
			g.Expect(aerr.status).To(Equal(http.StatusUnauthorized))
		}
		reviews, _ = f.kube.counts()
		g.Expect(reviews).To(BeZero())
		_, _ = f.auth.authenticate(ctx, bearer, "abcdef.0123456789abcdef") // a bootstrap token
		reviews, _ = f.kube.counts()
		g.Expect(reviews).To(Equal(1))
	})
	t.Run("bounded", func(t *testing.T) {
		g := NewWithT(t)
		c := newLRU[int, int](3)
		now := time.Now()
		for i := range 10 {
			c.add(i, i, now.Add(time.Minute))
			g.Expect(c.len()).To(BeNumerically("<=", 3))
		}
		_, ok := c.get(9, now)
		g.Expect(ok).To(BeTrue())
		_, ok = c.get(0, now)
		g.Expect(ok).To(BeFalse(), "the least recently used entries make room")
		c.get(7, now) // 7 is now the most recently used: 8 goes first
		c.add(10, 10, now.Add(time.Minute))
		_, ok = c.get(8, now)
		g.Expect(ok).To(BeFalse())
		_, ok = c.get(7, now)
		g.Expect(ok).To(BeTrue())
	})
}

// TestClientIdentities: with allowClientCredentials, a token of another audience (or a Dex
// client-credentials token) is client:<id> only when the ownership claim on the id in this
// provider's Dex names an existing, confidential, registered DexStaticClient in a namespace that
// spec.dex.clientIdentityNamespaces admits. What a client's status says never grants anything.
func TestClientIdentities(t *testing.T) {
	is, err := StartClaimsIssuer()
	if err != nil {
		t.Fatal(err)
	}
	defer is.Close()
	ctx := context.Background()
	g := NewWithT(t)
	f := newAuthFixture(t)
	const addr = "dex.example:5557"
	// The registry's provider (its address in another case) admits its own namespace and those
	// labelled registry=ns.
	identities := &dexv1.AllowedNamespaces{From: dexv1.NamespacesFromSelector,
		Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"registry": "ns"}}}
	tt := f.tenant(t, testProvider(is.URL(), func(s *dexv1.OIDCProviderSpec) {
		s.AllowClientCredentials = true
		s.Dex = &dexv1.DexAdminSpec{GRPCAddress: "Dex.Example:5557", Insecure: true, ClientIdentityNamespaces: identities}
	}))
	f.loadKeys(t, is)
	// The platform's provider of the same Dex, through which every namespace registers clients,
	// and a provider of another Dex.
	f.upsert(
		&dexv1.OIDCProvider{ObjectMeta: metav1.ObjectMeta{Namespace: "platform", Name: "dex", UID: "uid-p", Generation: 1},
			Spec: dexv1.OIDCProviderSpec{IssuerURL: is.URL(), ClientID: "x", Dex: &dexv1.DexAdminSpec{GRPCAddress: addr}}},
		&dexv1.OIDCProvider{ObjectMeta: metav1.ObjectMeta{Namespace: "other", Name: "dex", UID: "uid-o", Generation: 1},
			Spec: dexv1.OIDCProviderSpec{IssuerURL: "https://other-dex.example/dex", ClientID: "x", Dex: &dexv1.DexAdminSpec{GRPCAddress: "other-dex:5557"}}},
	)
	namespace := func(name string, lbls map[string]string) *corev1.Namespace {
		return &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: lbls}}
	}
	teamA := namespace("team-a", map[string]string{"registry": "ns"})
	f.upsert(namespace("ns", nil), teamA, namespace("mallory", nil))

	client := func(ns, name, id string, public bool) *dexv1.DexStaticClient {
		return &dexv1.DexStaticClient{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, UID: types.UID("uid-" + ns + "-" + name), Generation: 1},
			Spec:       dexv1.DexStaticClientSpec{ProviderRef: dexv1.ObjectRef{Name: "dex", Namespace: "platform"}, ClientID: id, Public: public},
			Status: dexv1.DexStaticClientStatus{ClientID: id, Conditions: []metav1.Condition{{
				Type: dexv1.ConditionRegistered, Status: metav1.ConditionTrue, ObservedGeneration: 1, Reason: "Reconciled"}}},
		}
	}
	claim := func(dexAddress, id string, owner *dexv1.DexStaticClient) *claimsv1.DexEntryClaim {
		return &claimsv1.DexEntryClaim{
			ObjectMeta: metav1.ObjectMeta{Name: clientClaimName(dexAddress, id), UID: types.UID("claim-" + dexAddress + "-" + id)},
			Spec: claimsv1.DexEntryClaimSpec{EntryKind: claimsv1.EntryClient, EntryID: id, DexAddress: dexAddress,
				Owner:    claimsv1.ClaimOwner{Kind: "DexStaticClient", Namespace: owner.Namespace, Name: owner.Name, UID: owner.UID},
				Provider: claimsv1.ClaimProvider{Namespace: "platform", Name: "dex"}},
		}
	}
	// owned registers c with its claim in the platform's Dex.
	owned := func(c *dexv1.DexStaticClient) *dexv1.DexStaticClient {
		f.upsert(c, claim(addr, c.Spec.ClientID, c))
		return c
	}
	ci := owned(client("team-a", "ci", "team-a-ci", false))
	owned(client("ns", "own", "ns-own", false))
	owned(client("team-a", "cli", "team-a-cli", true))
	owned(client("mallory", "ci", "mallory-squats-team-a", false))
	unregistered := client("team-a", "new", "team-a-new", false)
	unregistered.Status.Conditions[0].Status = metav1.ConditionFalse
	owned(unregistered)
	stale := client("team-a", "stale", "team-a-stale", false)
	stale.Generation = 2 // public -> confidential, not reconciled yet
	owned(stale)
	// A tenant allowed to write status makes a confidential client of its own claim the public
	// client's id (status.clientId, Registered=True): the claim on that id names the public client.
	forged := client("team-a", "decoy", "team-a-decoy", false)
	owned(forged)
	forged = forged.DeepCopy()
	forged.Status.ClientID = "team-a-cli"
	f.upsert(forged)
	// The claim names an older object of that name (deleted and created again).
	recreated := client("team-a", "recreated", "team-a-recreated", false)
	f.upsert(claim(addr, "team-a-recreated", recreated))
	recreated = recreated.DeepCopy()
	recreated.UID = "uid-team-a-recreated-2"
	f.upsert(recreated)
	// A claim under a name other than the operator's for the id: not the record of the id.
	misnamed := client("team-a", "misnamed", "team-a-misnamed", false)
	badName := claim(addr, "team-a-misnamed", misnamed)
	badName.Name = "client-0000"
	f.upsert(misnamed, badName)
	// Claims in another Dex.
	otherDex := client("team-a", "elsewhere", "team-a-elsewhere", false)
	f.upsert(otherDex, claim("other-dex:5557", "team-a-elsewhere", otherDex))
	// Client credentials: Dex issues them to a confidential client that authenticated with its
	// secret; whose client it is, the claim decides all the same.
	owned(client("team-a", "robot", "robot", false))
	owned(client("mallory", "robot", "mallory-robot", false))

	exp := time.Now().Add(time.Hour).Unix()
	sign := func(claims map[string]any) string {
		claims["exp"] = exp
		tok, err := is.Sign(claims)
		g.Expect(err).NotTo(HaveOccurred())
		return tok
	}
	user := DexSubjectOf("08a8684b", "local")
	cases := []struct {
		name   string
		token  string
		client string // "" when refused
	}{
		{"confidential client of an admitted namespace", sign(map[string]any{"aud": "team-a-ci", "sub": user}), "team-a-ci"},
		{"confidential client, cross-client token naming it as azp", sign(map[string]any{"aud": []string{"team-a-ci", "peer"}, "azp": "team-a-ci", "sub": user}), "team-a-ci"},
		{"confidential client of the provider's own namespace", sign(map[string]any{"aud": "ns-own", "sub": user}), "ns-own"},
		{"public client", sign(map[string]any{"aud": "team-a-cli", "sub": user}), ""},
		{"public client naming a confidential peer as audience", sign(map[string]any{"aud": []string{"team-a-ci", "team-a-cli"}, "azp": "team-a-cli", "sub": user}), ""},
		{"confidential client of a namespace the provider does not admit", sign(map[string]any{"aud": "mallory-squats-team-a", "sub": user}), ""},
		{"the connector probe client", sign(map[string]any{"aud": "dexterity-connector-probe", "sub": user}), ""},
		{"a client nobody claimed", sign(map[string]any{"aud": "somebody", "sub": user}), ""},
		{"a client claimed in another Dex", sign(map[string]any{"aud": "team-a-elsewhere", "sub": user}), ""},
		{"confidential client not registered", sign(map[string]any{"aud": "team-a-new", "sub": user}), ""},
		{"confidential client whose status is for an older generation", sign(map[string]any{"aud": "team-a-stale", "sub": user}), ""},
		{"a claim whose owner was recreated", sign(map[string]any{"aud": "team-a-recreated", "sub": user}), ""},
		{"a claim under another name", sign(map[string]any{"aud": "team-a-misnamed", "sub": user}), ""},
		{"client credentials of an admitted namespace", sign(map[string]any{"aud": "robot", "sub": DexSubjectOf("robot", "")}), "robot"},
		{"client credentials of a namespace the provider does not admit", sign(map[string]any{"aud": "mallory-robot", "sub": DexSubjectOf("mallory-robot", "")}), ""},
		{"client credentials of a client nobody claimed", sign(map[string]any{"aud": "ci-robot", "sub": DexSubjectOf("ci-robot", "")}), ""},
		{"client credentials of another client id", sign(map[string]any{"aud": "robot", "sub": DexSubjectOf("someone-else", "")}), "robot"},
		{"a plain subject", sign(map[string]any{"aud": "robot", "sub": "robot"}), "robot"},
	}
	for _, c := range cases {
		p, aerr := f.auth.authenticate(ctx, tt, c.token)
		if c.client == "" {
			g.Expect(aerr).To(HaveOccurred(), c.name)
			g.Expect(aerr.status).To(Equal(http.StatusUnauthorized), c.name)
			g.Expect(aerr.reason).To(Equal("unauthenticated_client"), c.name)
			continue
		}
		g.Expect(aerr).ToNot(HaveOccurred(), c.name)
		g.Expect(p.groups).To(Equal([]string{"client:" + c.client}), c.name)
	}
	cc, _ := f.auth.authenticate(ctx, tt, cases[13].token)
	g.Expect(cc.clientCredentials).To(BeTrue())

	// A cached client identity is checked again once the claims, clients or namespaces changed.
	tok := cases[0].token
	recheck := func(change func(), accepted bool, why string) {
		t.Helper()
		change()
		_, aerr := f.auth.authenticate(ctx, tt, tok)
		if accepted {
			g.Expect(aerr).ToNot(HaveOccurred(), why)
		} else {
			g.Expect(aerr).To(HaveOccurred(), why)
			g.Expect(aerr.reason).To(Equal("unauthenticated_client"), why)
		}
	}
	public := ci.DeepCopy()
	public.Spec.Public, public.Generation = true, 2
	public.Status.Conditions[0].ObservedGeneration = 2
	recheck(func() { f.upsert(public) }, false, "made public")
	recheck(func() { f.upsert(ci) }, true, "confidential again")
	recheck(func() { f.upsert(namespace("team-a", nil)) }, false, "its namespace lost the label")
	recheck(func() { f.upsert(teamA) }, true, "labelled again")
	recheck(func() { f.remove(claim(addr, "team-a-ci", ci)) }, false, "claim released")
	recheck(func() { f.upsert(claim(addr, "team-a-ci", ci)) }, true, "claimed again")
	recheck(func() { f.remove(ci) }, false, "a deleted client")

	// A registry provider without spec.dex (a team's registry on the platform's Dex): the
	// clients claimed in the Dex with its issuer, of its own namespace only.
	team := f.tenant(t, testProvider(is.URL(), func(s *dexv1.OIDCProviderSpec) { s.AllowClientCredentials = true }))
	f.loadKeys(t, is)
	p, aerr := f.auth.authenticate(ctx, team, cases[2].token)
	g.Expect(aerr).ToNot(HaveOccurred(), "confidential client of its namespace in the Dex with this issuer")
	g.Expect(p.groups).To(Equal([]string{"client:ns-own"}))
	for _, i := range []int{3, 5, 6, 8, 13} { // public, another namespace, probe, another Dex, robot of team-a
		_, aerr = f.auth.authenticate(ctx, team, cases[i].token)
		g.Expect(aerr).To(HaveOccurred(), cases[i].name)
		g.Expect(aerr.status).To(Equal(http.StatusUnauthorized), cases[i].name)
	}
	// The platform's provider goes: no Dex has this issuer any more.
	f.remove(&dexv1.OIDCProvider{ObjectMeta: metav1.ObjectMeta{Namespace: "platform", Name: "dex"}})
	_, aerr = f.auth.authenticate(ctx, team, cases[2].token)
	g.Expect(aerr).To(HaveOccurred(), "cached, and checked again after the provider change")
}

// TestServiceAccountFallback: with allowServiceAccountFallback, only a token that verifies
// against the keys the API server publishes for the cluster's service-account issuer reaches a
// TokenReview; a token of any other issuer is 401 without Kubernetes; claims are read
// case-sensitively; where the API server publishes no keys, TokenReviews are rate-limited.
func TestServiceAccountFallback(t *testing.T) {
	is, err := StartClaimsIssuer()
	if err != nil {
		t.Fatal(err)
	}
	defer is.Close()
	ctx := context.Background()
	fallback := func(s *dexv1.OIDCProviderSpec) { s.AllowServiceAccountFallback = true }

	t.Run("only tokens the API server signed reach a TokenReview", func(t *testing.T) {
		g := NewWithT(t)
		f := newAuthFixture(t)
		tt := f.tenant(t, testProvider(is.URL(), fallback))
		f.loadKeys(t, is)
		exp := time.Now().Add(time.Hour).Unix()
		other, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		g.Expect(err).NotTo(HaveOccurred())
		misSigner := newSigner(t, other, "sa-key") // the published key id, another key
		var forged, foreign []string
		for i := range 10 {
			sub := fmt.Sprintf("system:serviceaccount:team-a:forged-%d", i)
			forged = append(forged,
				unsignedJWT(map[string]any{"iss": saIssuer, "sub": sub, "exp": exp}),
				signClaims(t, misSigner, map[string]any{"sub": sub, "exp": exp}),
			)
			foreign = append(foreign,
				unsignedJWT(map[string]any{"iss": fmt.Sprintf("https://issuer-%d.example", i), "sub": sub, "exp": exp}),
				signClaims(t, misSigner, map[string]any{"iss": fmt.Sprintf("https://issuer-%d.example", i), "sub": sub, "exp": exp}),
				// The API server's signature, but another issuer: not a ServiceAccount token.
				f.api.token(t, map[string]any{"iss": fmt.Sprintf("https://issuer-%d.example", i), "sub": sub, "exp": exp}),
			)
		}
		for i := range 5 {
			sub := fmt.Sprintf("system:serviceaccount:team-a:old-%d", i)
			forged = append(forged,
				f.api.token(t, map[string]any{"sub": sub, "exp": time.Now().Add(-time.Minute).Unix()}),
				f.api.token(t, map[string]any{"sub": sub, "exp": exp, "nbf": time.Now().Add(time.Hour).Unix()}),
			)
		}
		g.Expect(forged).To(HaveLen(30))
		for _, tok := range forged {
			f.kube.accept[tok] = true // Kubernetes would not, but it is never asked
			_, aerr := f.auth.authenticate(ctx, tt, tok)
			g.Expect(aerr).To(HaveOccurred())
			g.Expect(aerr.status).To(Equal(http.StatusUnauthorized))
			g.Expect(aerr.reason).To(HavePrefix("serviceaccount_"))
		}
		for _, tok := range foreign {
			f.kube.accept[tok] = true
			_, aerr := f.auth.authenticate(ctx, tt, tok)
			g.Expect(aerr).To(HaveOccurred())
			g.Expect(aerr.status).To(Equal(http.StatusUnauthorized))
			g.Expect(aerr.reason).To(Equal(string(oidc.ReasonWrongIssuer)))
		}
		reviews, _ := f.kube.counts()
		g.Expect(reviews).To(BeZero(), "TokenReviews for forged and foreign tokens")
		// Unknown key ids refetch the keys at most once per cooldown (discovery and JWKS).
		g.Expect(f.api.fetches()).To(BeNumerically("<=", 4))

		sa := f.api.token(t, map[string]any{"sub": "system:serviceaccount:team-a:ci", "exp": exp})
		f.kube.accept[sa] = true
		p, aerr := f.auth.authenticate(ctx, tt, sa)
		g.Expect(aerr).ToNot(HaveOccurred())
		g.Expect(p.path).To(Equal(pathK8s))
		reviews, _ = f.kube.counts()
		g.Expect(reviews).To(Equal(1))
		// Kubernetes still decides.
		revoked := f.api.token(t, map[string]any{"sub": "system:serviceaccount:team-a:deleted", "exp": exp})
		_, aerr = f.auth.authenticate(ctx, tt, revoked)
		g.Expect(aerr.reason).To(Equal("not_authenticated"))
		reviews, _ = f.kube.counts()
		g.Expect(reviews).To(Equal(2))
	})

	t.Run("ISS is not iss", func(t *testing.T) {
		g := NewWithT(t)
		f := newAuthFixture(t)
		tt := f.tenant(t, testProvider(is.URL(), fallback))
		f.loadKeys(t, is)
		exp := time.Now().Add(time.Hour).Unix()
		// Claims this issuer (iss) and another one (ISS, last): decided as this issuer's token.
		payload := fmt.Sprintf(`{"iss":%q,"aud":"registry","sub":"admin","groups":["team-a"],"exp":%d,"ISS":%q}`, is.URL(), exp, saIssuer)
		forged := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"ES256","kid":"claims-key"}`)) + "." +
			base64.RawURLEncoding.EncodeToString([]byte(payload)) + ".c2lnbmF0dXJl"
		f.kube.accept[forged] = true
		_, aerr := f.auth.authenticate(ctx, tt, forged)
		g.Expect(aerr).To(HaveOccurred())
		g.Expect(aerr.path).To(Equal(pathOIDC))
		g.Expect(aerr.status).To(Equal(http.StatusUnauthorized))
		// Signed by the issuer, the same token is its user's.
		signed, err := is.SignRaw(payload)
		g.Expect(err).NotTo(HaveOccurred())
		p, aerr := f.auth.authenticate(ctx, tt, signed)
		g.Expect(aerr).ToNot(HaveOccurred())
		g.Expect(p.path).To(Equal(pathOIDC))
		g.Expect(p.groups).To(Equal([]string{"team-a"}))
		// The API server's signature on ISS, without iss: not a token of its issuer.
		noIss := f.api.token(t, map[string]any{"iss": nil, "ISS": saIssuer, "sub": "system:serviceaccount:team-a:ci", "exp": exp})
		f.kube.accept[noIss] = true
		_, aerr = f.auth.authenticate(ctx, tt, noIss)
		g.Expect(aerr).To(HaveOccurred())
		g.Expect(aerr.reason).To(Equal(string(oidc.ReasonWrongIssuer)))
		reviews, _ := f.kube.counts()
		g.Expect(reviews).To(BeZero())
	})

	t.Run("where the API server publishes no keys, TokenReviews are rate-limited", func(t *testing.T) {
		g := NewWithT(t)
		f := newAuthFixtureWith(t, newFakeAPIServer(t, false))
		f.auth.sa.limiter = rate.NewLimiter(0, 5) // a burst of 5, no refill during the test
		tt := f.tenant(t, testProvider(is.URL(), fallback))
		f.loadKeys(t, is)
		st := f.auth.sa.status()
		g.Expect(st.KeysPublished).To(BeFalse())
		g.Expect(st.Message).To(ContainSubstring("publishes no service-account keys"))
		exp := time.Now().Add(time.Hour).Unix()
		// Claims this issuer (iss) and another (ISS): this issuer's forgery, never a TokenReview.
		iss := unsignedJWT(map[string]any{"iss": is.URL(), "aud": "registry", "sub": "x", "exp": exp})
		parts := strings.Split(iss, ".")
		payload := fmt.Sprintf(`{"iss":%q,"aud":"registry","sub":"x","exp":%d,"ISS":%q}`, is.URL(), exp, saIssuer)
		iss = parts[0] + "." + base64.RawURLEncoding.EncodeToString([]byte(payload)) + "." + parts[2]
		_, aerr := f.auth.authenticate(ctx, tt, iss)
		g.Expect(aerr.path).To(Equal(pathOIDC))
		reviews, _ := f.kube.counts()
		g.Expect(reviews).To(BeZero())
		before := testutil.ToFloat64(serviceAccountThrottled)
		throttled := 0
		for i := range 30 {
			tok := unsignedJWT(map[string]any{"iss": saIssuer, "sub": fmt.Sprintf("system:serviceaccount:team-a:sa-%d", i), "exp": exp})
			if i == 0 {
				f.kube.accept[tok] = true
			}
			_, aerr := f.auth.authenticate(ctx, tt, tok)
			g.Expect(aerr == nil).To(Equal(i == 0))
			if aerr != nil && aerr.reason == "fallback_rate_limited" {
				g.Expect(aerr.status).To(Equal(http.StatusServiceUnavailable))
				throttled++
			}
		}
		reviews, _ = f.kube.counts()
		g.Expect(reviews).To(Equal(5))
		g.Expect(throttled).To(Equal(25))
		g.Expect(testutil.ToFloat64(serviceAccountThrottled) - before).To(BeEquivalentTo(25))
		// An answer Kubernetes gave a moment ago costs nothing.
		first := unsignedJWT(map[string]any{"iss": saIssuer, "sub": "system:serviceaccount:team-a:sa-0", "exp": exp})
		_, aerr = f.auth.authenticate(ctx, tt, first)
		g.Expect(aerr).ToNot(HaveOccurred())
	})

	t.Run("bearer mode sends every well-formed token to Kubernetes", func(t *testing.T) {
		g := NewWithT(t)
		f := newAuthFixture(t)
		bearer := f.tenant(t, testProvider(is.URL(), func(s *dexv1.OIDCProviderSpec) {
			s.Enabled = new(bool)
			s.UseBearerToken = true
		}))
		for i := range 10 {
			_, _ = f.auth.authenticate(ctx, bearer, unsignedJWT(map[string]any{"iss": fmt.Sprintf("https://issuer-%d.example", i)}))
		}
		reviews, _ := f.kube.counts()
		g.Expect(reviews).To(Equal(10))
	})
}

// TestVerificationsBelongToTheProviderObject: the token cache is keyed by the provider's UID and
// generation and emptied of a provider's entries when it goes, and a key cache still configured
// for an older spec is not used.
func TestVerificationsBelongToTheProviderObject(t *testing.T) {
	is, err := StartClaimsIssuer()
	if err != nil {
		t.Fatal(err)
	}
	defer is.Close()
	ctx := context.Background()
	g := NewWithT(t)
	f := newAuthFixture(t)
	old := testProvider(is.URL(), nil)
	tt := f.tenant(t, old)
	f.loadKeys(t, is)
	tok, err := is.Sign(map[string]any{"aud": "registry", "sub": "admin", "groups": []string{"team-a"}, "exp": time.Now().Add(time.Hour).Unix()})
	g.Expect(err).NotTo(HaveOccurred())
	_, aerr := f.auth.authenticate(ctx, tt, tok)
	g.Expect(aerr).ToNot(HaveOccurred())
	g.Expect(f.auth.tokens.len()).To(Equal(1))

	// Deleted: its verifications go.
	f.store.remove(old)
	g.Expect(f.auth.tokens.len()).To(BeZero())

	// Recreated under the same name for another audience, while the key cache still holds the
	// provider of the old spec: the old audience's token is not accepted.
	recreated := testProvider(is.URL(), func(s *dexv1.OIDCProviderSpec) { s.ClientID = "other-client" })
	recreated.UID = types.UID("uid-2")
	tt = f.tenant(t, recreated)
	_, aerr = f.auth.authenticate(ctx, tt, tok)
	g.Expect(aerr).To(HaveOccurred())
	g.Expect(aerr.status).To(Equal(http.StatusServiceUnavailable), "the key cache has not caught up")
	f.loadKeys(t, is, "other-client")
	_, aerr = f.auth.authenticate(ctx, tt, tok)
	g.Expect(aerr).To(HaveOccurred())
	g.Expect(aerr.status).To(Equal(http.StatusUnauthorized))
	g.Expect(aerr.reason).To(Equal(string(oidc.ReasonWrongAudience)))

	// A changed spec (generation) drops the entries of the older generation.
	tok2, _ := is.Sign(map[string]any{"aud": "other-client", "sub": "admin", "groups": []string{"team-a"}, "exp": time.Now().Add(time.Hour).Unix()})
	_, aerr = f.auth.authenticate(ctx, tt, tok2)
	g.Expect(aerr).ToNot(HaveOccurred())
	g.Expect(f.auth.tokens.len()).To(Equal(1))
	changed := recreated.DeepCopy()
	changed.Generation = 2
	changed.Spec.GroupsPrefix = "oidc:"
	f.store.upsert(changed)
	g.Expect(f.auth.tokens.len()).To(BeZero())
	// A status update (same generation) keeps them.
	tt = f.store.tenants["ns/dex"]
	f.loadKeys(t, is, "other-client") // still without the prefix: not current
	_, aerr = f.auth.authenticate(ctx, tt, tok2)
	g.Expect(aerr.status).To(Equal(http.StatusServiceUnavailable))
	issuer, err := f.keys.Sync("ns/dex", oidc.Config{IssuerURL: is.URL(), Audiences: []string{"other-client"}, GroupsPrefix: "oidc:"})
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(issuer.Refresh(ctx)).To(Succeed())
	p, aerr := f.auth.authenticate(ctx, tt, tok2)
	g.Expect(aerr).ToNot(HaveOccurred())
	g.Expect(p.groups).To(Equal([]string{"oidc:team-a"}))
	status := changed.DeepCopy()
	status.Status.Phase = "Ready"
	f.store.upsert(status)
	g.Expect(f.auth.tokens.len()).To(Equal(1))
}

// hostClaim is the HostnameClaim the operator creates when p is the first to list host.
func hostClaim(p *dexv1.OIDCProvider, host string) *claimsv1.HostnameClaim {
	h := tenancy.NormalizeHostname(host)
	return &claimsv1.HostnameClaim{
		ObjectMeta: metav1.ObjectMeta{Name: tenancy.HostnameClaimName(h), UID: types.UID("claim-" + h)},
		Spec:       claimsv1.HostnameClaimSpec{Hostname: h, Provider: claimsv1.HostnameClaimProvider{Namespace: p.Namespace, Name: p.Name, UID: p.UID}},
	}
}

// Hosts are served by the provider their HostnameClaim names (first come, first served, as the
// operator records it), never by creation time or name.
func TestHostOwnership(t *testing.T) {
	at := func(sec int) metav1.Time { return metav1.NewTime(time.Date(2026, 1, 1, 0, 0, sec, 0, time.UTC)) }
	provider := func(ns string, created int, hosts ...string) *dexv1.OIDCProvider {
		return &dexv1.OIDCProvider{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "dex", UID: types.UID(ns), Generation: 1, CreationTimestamp: at(created)},
			Spec:       dexv1.OIDCProviderSpec{IssuerURL: "https://dex.example.org", ClientID: "registry", Hostnames: hosts},
		}
	}
	holder := func(s *Store, host string) string {
		if t := s.tenantFor(host); t != nil {
			return t.key
		}
		return ""
	}
	g := NewWithT(t)
	s := NewStore("platform/dex")
	first := provider("zz-first", 0, "Registry.Example.org", "other.example.org")
	s.upsert(first)
	g.Expect(holder(s, "registry.example.org")).To(Equal(""), "listed but not claimed yet: served as a host nobody lists")
	s.upsert(hostClaim(first, "registry.example.org"))
	s.upsert(hostClaim(first, "other.example.org"))
	// Newer, in a namespace sorting first: serves nothing it shares, its own host once claimed.
	second := provider("aa-second", 5, "registry.example.org", "aa.example.org")
	s.upsert(second)
	s.upsert(hostClaim(second, "aa.example.org"))
	g.Expect(holder(s, "registry.example.org")).To(Equal("zz-first/dex"))
	g.Expect(holder(s, "REGISTRY.example.org:443")).To(Equal("zz-first/dex"), "without case, then without the port")
	g.Expect(holder(s, "aa.example.org")).To(Equal("aa-second/dex"))
	// A claim under another name than the host's is not the operator's record: ignored.
	forged := hostClaim(second, "registry.example.org")
	forged.Name = "host-forged"
	s.upsert(forged)
	g.Expect(holder(s, "registry.example.org")).To(Equal("zz-first/dex"))
	// The holder's spec changes (status too): still the holder.
	again := provider("zz-first", 0, "registry.example.org", "other.example.org")
	again.Generation = 2
	s.upsert(again)
	g.Expect(holder(s, "registry.example.org")).To(Equal("zz-first/dex"))
	// Being deleted: serves nothing (the operator then deletes its claims and the next in line
	// claims the host).
	deleting := again.DeepCopy()
	now := metav1.Now()
	deleting.DeletionTimestamp = &now
	s.upsert(deleting)
	g.Expect(holder(s, "registry.example.org")).To(Equal(""))
	s.remove(hostClaim(first, "registry.example.org"))
	s.upsert(hostClaim(second, "registry.example.org"))
	g.Expect(holder(s, "registry.example.org")).To(Equal("aa-second/dex"))
	g.Expect(holder(s, "other.example.org")).To(Equal(""), "no default provider object")
	// It comes back under its name (another object): the old claim is not its own.
	back := provider("zz-first", 9, "other.example.org")
	back.UID = "zz-first-2"
	s.remove(deleting)
	s.upsert(back)
	g.Expect(holder(s, "other.example.org")).To(Equal(""), "a claim of the earlier object of that name")
	// Same creation second, the namespace sorting first created second: the claim decides.
	b, a := provider("b", 20, "tie.example.org"), provider("a", 20, "tie.example.org")
	s.upsert(b)
	s.upsert(hostClaim(b, "tie.example.org"))
	s.upsert(a)
	g.Expect(holder(s, "tie.example.org")).To(Equal("b/dex"))
	// A claim whose provider dropped the host from its spec serves nothing.
	dropped := provider("b", 20)
	dropped.Generation = 2
	s.upsert(dropped)
	g.Expect(holder(s, "tie.example.org")).To(Equal(""))
	// The default provider serves the hosts nobody holds.
	s.upsert(provider("platform", 30, "platform.example.org"))
	g.Expect(holder(s, "unlisted.example.org")).To(Equal("platform/dex"))
}

func TestDexSubject(t *testing.T) {
	g := NewWithT(t)
	for _, c := range [][2]string{{"robot", ""}, {"08a8684b-db88-4b73-90a9-3cd1661f5466", "local"}, {"", "github"}, {"ü", "x"}} {
		user, conn, ok := oidc.DexSubject(DexSubjectOf(c[0], c[1]))
		g.Expect(ok).To(BeTrue(), "%v", c)
		g.Expect([2]string{user, conn}).To(Equal(c))
	}
	// Dex's own encoding of ("foo", "bar"), from server/tokens/claims_test.go.
	user, conn, ok := oidc.DexSubject("CgNmb28SA2Jhcg")
	g.Expect(ok).To(BeTrue())
	g.Expect([]string{user, conn}).To(Equal([]string{"foo", "bar"}))
	for _, bad := range []string{"", "robot", "CgNmb28SA2Jhcg==", "CgNmb2", "CgNmb28KA2Jhcg", "CAE", "_w", "Cv8"} {
		if u, c, ok := oidc.DexSubject(bad); ok {
			t.Errorf("DexSubject(%q) = %q, %q, true; want false", bad, u, c)
		}
	}
	g.Expect(isClientCredentials(DexSubjectOf("robot", ""), "robot")).To(BeTrue())
	g.Expect(isClientCredentials(DexSubjectOf("robot", "local"), "robot")).To(BeFalse())
	g.Expect(isClientCredentials(DexSubjectOf("", ""), "")).To(BeFalse())
}
