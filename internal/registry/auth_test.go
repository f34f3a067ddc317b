package registry

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"sync"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	authnv1 "k8s.io/api/authentication/v1"
	authzv1 "k8s.io/api/authorization/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	dexv1 "dexterity.dev/dexterity/api/v1alpha1"
	"dexterity.dev/dexterity/internal/oidc"
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

// authFixture is an authenticator over a Store with one provider, ns/dex.
type authFixture struct {
	store *Store
	auth  *authenticator
	kube  *fakeKube
	keys  *oidc.Cache
	now   time.Time
}

func newAuthFixture(t testing.TB) *authFixture {
	f := &authFixture{store: NewStore(""), kube: &fakeKube{accept: map[string]bool{}}, keys: oidc.NewCache(),
		now: time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)}
	tokens := newTokenCache(100, 5*time.Minute)
	f.store.forget = tokens.forget
	reviews := newKubeCache(16)
	reviews.now = func() time.Time { return f.now }
	f.auth = &authenticator{keys: f.keys, kube: f.kube, tokens: tokens, clients: f.store, reviews: reviews}
	return f
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
	f.store.upsert(p)
	tt := f.store.issuers[p.Namespace+"/"+p.Name]
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
	prov, err := f.keys.Sync("ns/dex", oidc.Config{IssuerURL: is.URL(), Audiences: audiences})
	if err != nil {
		t.Fatal(err)
	}
	if err := prov.Refresh(context.Background()); err != nil {
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
		sa := unsignedJWT(map[string]any{"iss": "https://kubernetes.default.svc", "sub": "system:serviceaccount:team-a:ci", "exp": f.now.Add(time.Hour).Unix()})
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
		revoked := unsignedJWT(map[string]any{"iss": "https://kubernetes.default.svc", "exp": f.now.Add(time.Hour).Unix()})
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

		short := unsignedJWT(map[string]any{"iss": "https://kubernetes.default.svc", "exp": f.now.Add(3 * time.Second).Unix()})
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

// TestClientIdentities: with allowClientCredentials, a token of another audience is client:<id>
// only for a client-credentials token or a registered confidential DexStaticClient of this Dex.
func TestClientIdentities(t *testing.T) {
	is, err := StartClaimsIssuer()
	if err != nil {
		t.Fatal(err)
	}
	defer is.Close()
	ctx := context.Background()
	g := NewWithT(t)
	f := newAuthFixture(t)
	dex := &dexv1.DexAdminSpec{GRPCAddress: "Dex.Example:5557", Insecure: true}
	tt := f.tenant(t, testProvider(is.URL(), func(s *dexv1.OIDCProviderSpec) { s.AllowClientCredentials = true; s.Dex = dex }))
	f.loadKeys(t, is)
	// Another provider of the same Dex (address in another case) registers the clients.
	f.store.upsert(&dexv1.OIDCProvider{ObjectMeta: metav1.ObjectMeta{Namespace: "platform", Name: "dex", UID: "uid-p", Generation: 1},
		Spec: dexv1.OIDCProviderSpec{IssuerURL: is.URL(), ClientID: "x", Dex: &dexv1.DexAdminSpec{GRPCAddress: "dex.example:5557"}}})
	f.store.upsert(&dexv1.OIDCProvider{ObjectMeta: metav1.ObjectMeta{Namespace: "other", Name: "dex", UID: "uid-o", Generation: 1},
		Spec: dexv1.OIDCProviderSpec{IssuerURL: "https://other-dex.example/dex", ClientID: "x", Dex: &dexv1.DexAdminSpec{GRPCAddress: "other-dex:5557"}}})
	client := func(ns, name, id string, public bool, provider dexv1.ObjectRef) *dexv1.DexStaticClient {
		return &dexv1.DexStaticClient{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Generation: 1},
			Spec:       dexv1.DexStaticClientSpec{ProviderRef: provider, ClientID: id, Public: public},
			Status: dexv1.DexStaticClientStatus{ClientID: id, Conditions: []metav1.Condition{{
				Type: dexv1.ConditionRegistered, Status: metav1.ConditionTrue, ObservedGeneration: 1, Reason: "Reconciled"}}},
		}
	}
	ci := client("team-a", "ci", "team-a-ci", false, dexv1.ObjectRef{Name: "dex", Namespace: "platform"})
	f.store.upsert(ci)
	f.store.upsert(client("team-a", "cli", "team-a-cli", true, dexv1.ObjectRef{Name: "dex", Namespace: "platform"}))
	f.store.upsert(client("team-b", "ci", "team-b-ci", false, dexv1.ObjectRef{Name: "dex", Namespace: "other"}))
	unregistered := client("team-a", "new", "team-a-new", false, dexv1.ObjectRef{Name: "dex", Namespace: "platform"})
	unregistered.Status.Conditions[0].Status = metav1.ConditionFalse
	f.store.upsert(unregistered)
	stale := client("team-a", "stale", "team-a-stale", false, dexv1.ObjectRef{Name: "dex", Namespace: "platform"})
	stale.Generation = 2 // public -> confidential, not reconciled yet
	f.store.upsert(stale)

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
		{"confidential client of this Dex", sign(map[string]any{"aud": "team-a-ci", "sub": user}), "team-a-ci"},
		{"confidential client, cross-client token naming it as azp", sign(map[string]any{"aud": []string{"team-a-ci", "peer"}, "azp": "team-a-ci", "sub": user}), "team-a-ci"},
		{"public client", sign(map[string]any{"aud": "team-a-cli", "sub": user}), ""},
		{"public client naming a confidential peer as audience", sign(map[string]any{"aud": []string{"team-a-ci", "team-a-cli"}, "azp": "team-a-cli", "sub": user}), ""},
		{"the connector probe client", sign(map[string]any{"aud": "dexterity-connector-probe", "sub": user}), ""},
		{"a client unknown to the operator", sign(map[string]any{"aud": "somebody", "sub": user}), ""},
		{"confidential client of another Dex", sign(map[string]any{"aud": "team-b-ci", "sub": user}), ""},
		{"confidential client not registered", sign(map[string]any{"aud": "team-a-new", "sub": user}), ""},
		{"confidential client whose status is for an older generation", sign(map[string]any{"aud": "team-a-stale", "sub": user}), ""},
		{"client credentials", sign(map[string]any{"aud": "robot", "sub": DexSubjectOf("robot", "")}), "robot"},
		{"client credentials of another client id", sign(map[string]any{"aud": "robot", "sub": DexSubjectOf("someone-else", "")}), ""},
		{"a subject with a connector", sign(map[string]any{"aud": "robot", "sub": DexSubjectOf("robot", "local")}), ""},
		{"a plain subject", sign(map[string]any{"aud": "robot", "sub": "robot"}), ""},
	}
	for _, c := range cases {
		p, aerr := f.auth.authenticate(ctx, tt, c.token)
		if c.client == "" {
			g.Expect(aerr).To(HaveOccurred(), c.name)
			g.Expect(aerr.status).To(Equal(http.StatusUnauthorized), c.name)
			continue
		}
		g.Expect(aerr).ToNot(HaveOccurred(), c.name)
		g.Expect(p.groups).To(Equal([]string{"client:" + c.client}), c.name)
	}

	// A registry provider without spec.dex (a team's registry on the platform's Dex) trusts the
	// confidential clients registered in the Dex with its issuer, and no others.
	team := f.tenant(t, testProvider(is.URL(), func(s *dexv1.OIDCProviderSpec) { s.AllowClientCredentials = true }))
	f.loadKeys(t, is)
	p, aerr := f.auth.authenticate(ctx, team, cases[0].token)
	g.Expect(aerr).ToNot(HaveOccurred(), "confidential client of the Dex with this issuer")
	g.Expect(p.groups).To(Equal([]string{"client:team-a-ci"}))
	for _, i := range []int{2, 4, 6} { // public, probe, another Dex
		_, aerr = f.auth.authenticate(ctx, team, cases[i].token)
		g.Expect(aerr).To(HaveOccurred(), cases[i].name)
		g.Expect(aerr.status).To(Equal(http.StatusUnauthorized), cases[i].name)
	}

	// A cached client identity stops working as soon as the client is no longer confidential.
	tok := cases[0].token
	_, aerr = f.auth.authenticate(ctx, tt, tok)
	g.Expect(aerr).ToNot(HaveOccurred())
	public := ci.DeepCopy()
	public.Spec.Public, public.Generation = true, 2
	public.Status.Conditions[0].ObservedGeneration = 2
	f.store.upsert(public)
	_, aerr = f.auth.authenticate(ctx, tt, tok)
	g.Expect(aerr).To(HaveOccurred())
	g.Expect(aerr.reason).To(Equal("unauthenticated_client"))
	f.store.upsert(ci)
	_, aerr = f.auth.authenticate(ctx, tt, tok)
	g.Expect(aerr).ToNot(HaveOccurred())
	f.store.remove(ci)
	_, aerr = f.auth.authenticate(ctx, tt, tok)
	g.Expect(aerr).To(HaveOccurred(), "a deleted client")
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
	tt = f.store.issuers["ns/dex"]
	f.loadKeys(t, is, "other-client") // still without the prefix: not current
	_, aerr = f.auth.authenticate(ctx, tt, tok2)
	g.Expect(aerr.status).To(Equal(http.StatusServiceUnavailable))
	prov, err := f.keys.Sync("ns/dex", oidc.Config{IssuerURL: is.URL(), Audiences: []string{"other-client"}, GroupsPrefix: "oidc:"})
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(prov.Refresh(ctx)).To(Succeed())
	p, aerr := f.auth.authenticate(ctx, tt, tok2)
	g.Expect(aerr).ToNot(HaveOccurred())
	g.Expect(p.groups).To(Equal([]string{"oidc:team-a"}))
	status := changed.DeepCopy()
	status.Status.Phase = "Ready"
	f.store.upsert(status)
	g.Expect(f.auth.tokens.len()).To(Equal(1))
}

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
	s.upsert(provider("zz-first", 0, "Registry.Example.org", "other.example.org"))
	// Newer, in a namespace sorting first: serves nothing it shares.
	s.upsert(provider("aa-second", 5, "registry.example.org", "aa.example.org"))
	g.Expect(holder(s, "registry.example.org")).To(Equal("zz-first/dex"))
	g.Expect(holder(s, "REGISTRY.example.org:443")).To(Equal("zz-first/dex"), "without case, then without the port")
	g.Expect(holder(s, "aa.example.org")).To(Equal("aa-second/dex"))
	// The holder's spec changes (status too): still the holder.
	again := provider("zz-first", 0, "registry.example.org", "other.example.org")
	again.Generation = 2
	s.upsert(again)
	g.Expect(holder(s, "registry.example.org")).To(Equal("zz-first/dex"))
	// Being deleted: serves nothing, the next in line takes over.
	deleting := again.DeepCopy()
	now := metav1.Now()
	deleting.DeletionTimestamp = &now
	s.upsert(deleting)
	g.Expect(holder(s, "registry.example.org")).To(Equal("aa-second/dex"))
	g.Expect(holder(s, "other.example.org")).To(Equal(""), "no default provider object")
	// It comes back (finalizer removed and recreated, say): it is newer now.
	back := provider("zz-first", 9, "registry.example.org")
	back.UID = "zz-first-2"
	s.remove(deleting)
	s.upsert(back)
	g.Expect(holder(s, "registry.example.org")).To(Equal("aa-second/dex"))
	// The holder drops the host from its spec: the other one gets it.
	dropped := provider("aa-second", 5, "aa.example.org")
	dropped.Generation = 2
	s.upsert(dropped)
	g.Expect(holder(s, "registry.example.org")).To(Equal("zz-first/dex"))
	// Same creation second: namespace/name decides.
	s.upsert(provider("b", 20, "tie.example.org"))
	s.upsert(provider("a", 20, "tie.example.org"))
	g.Expect(holder(s, "tie.example.org")).To(Equal("a/dex"))
	// The default provider serves the hosts nobody lists, and can claim its own.
	s.upsert(provider("platform", 30, "platform.example.org"))
	g.Expect(holder(s, "unlisted.example.org")).To(Equal("platform/dex"))
	s.upsert(provider("late", 40, "platform.example.org"))
	g.Expect(holder(s, "platform.example.org")).To(Equal("platform/dex"))
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
