package registry

import (
	"context"
	"net/http"
	"slices"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	dexv1 "dexterity.dev/dexterity/api/v1alpha1"
	"dexterity.dev/dexterity/internal/oidc"
)

// FuzzAuthenticate feeds raw Authorization header values through the registry's authentication
// (an OIDC provider with allowClientCredentials and the ServiceAccount fallback, and a provider
// in bearer mode), with real signatures in the seeds:
//
//	go test ./internal/registry/ -run '^$' -fuzz FuzzAuthenticate -fuzztime 60s
//
// Besides not crashing, every answer must follow the token table: a principal or a 401/503,
// client identities only for authenticated clients, and nothing that claims the provider's
// issuer, and no garbage, ever reaching Kubernetes.
func FuzzAuthenticate(f *testing.F) {
	is, err := StartClaimsIssuer()
	if err != nil {
		f.Fatal(err)
	}
	defer is.Close()
	fx := newAuthFixture(f)
	oidcTenant := fx.tenant(f, testProvider(is.URL(), func(s *dexv1.OIDCProviderSpec) {
		s.AllowClientCredentials = true
		s.AllowServiceAccountFallback = true
		s.Dex = &dexv1.DexAdminSpec{GRPCAddress: "dex:5557", Insecure: true}
	}))
	fx.loadKeys(f, is)
	bearer := testProvider(is.URL(), func(s *dexv1.OIDCProviderSpec) {
		s.Enabled = new(bool)
		s.UseBearerToken = true
		s.Hostnames = []string{"bearer.test"}
	})
	bearer.Namespace, bearer.UID = "bearer", "uid-bearer"
	bearerTenant := fx.tenant(f, bearer)
	for _, c := range []struct {
		id     string
		public bool
	}{{"team-a-ci", false}, {"team-a-cli", true}} {
		fx.store.upsert(&dexv1.DexStaticClient{
			ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: c.id, Generation: 1},
			Spec:       dexv1.DexStaticClientSpec{ProviderRef: dexv1.ObjectRef{Name: "dex"}, ClientID: c.id, Public: c.public},
			Status: dexv1.DexStaticClientStatus{ClientID: c.id, Conditions: []metav1.Condition{{
				Type: dexv1.ConditionRegistered, Status: metav1.ConditionTrue, ObservedGeneration: 1, Reason: "Reconciled"}}},
		})
	}
	exp := time.Now().Add(24 * time.Hour).Unix()
	sign := func(claims map[string]any) string {
		claims["exp"] = exp
		tok, err := is.Sign(claims)
		if err != nil {
			f.Fatal(err)
		}
		return tok
	}
	user := DexSubjectOf("08a8684b", "local")
	sa := unsignedJWT(map[string]any{"iss": "https://kubernetes.default.svc", "sub": "system:serviceaccount:team-a:ci", "exp": exp})
	fx.kube.accept[sa] = true
	for _, tok := range []string{
		sign(map[string]any{"aud": "registry", "sub": user, "groups": []string{"team-a"}}),
		sign(map[string]any{"aud": "registry", "sub": user}),
		sign(map[string]any{"aud": "team-a-ci", "sub": user, "groups": "team-a"}),
		sign(map[string]any{"aud": []string{"team-a-ci", "team-a-cli"}, "azp": "team-a-cli", "sub": user}),
		sign(map[string]any{"aud": "team-a-cli", "sub": user}),
		sign(map[string]any{"aud": "robot", "sub": DexSubjectOf("robot", "")}),
		sign(map[string]any{"aud": []string{"a", "b"}, "sub": user}),
		unsignedJWT(map[string]any{"iss": is.URL(), "aud": "registry", "sub": "x", "exp": exp}),
		sa,
		unsignedJWT(map[string]any{"iss": "https://kubernetes.default.svc", "exp": 1e300}),
		"garbage", "a.b.c", "Zm9v.YmFy.YmF6", "e30.e30.", "abcdef.0123456789abcdef",
	} {
		f.Add("Bearer " + tok)
	}
	f.Add("")
	f.Add("bearer    ")
	f.Add("Basic dXNlcjpwYXNz")
	f.Add("Bearer a b")
	ctx := context.Background()

	f.Fuzz(func(t *testing.T, header string) {
		token := bearerTokenOf(header)
		for _, tt := range []*tenant{oidcTenant, bearerTenant} {
			before, _ := fx.kube.counts()
			p, aerr := fx.auth.authenticate(ctx, tt, token)
			after, _ := fx.kube.counts()
			if (p == nil) == (aerr == nil) {
				t.Fatalf("authenticate(%q) = %v, %v: want exactly one", token, p, aerr)
			}
			if aerr != nil && aerr.status != http.StatusUnauthorized && aerr.status != http.StatusServiceUnavailable {
				t.Fatalf("authenticate(%q): status %d", token, aerr.status)
			}
			if after > before || (p != nil && p.path == pathK8s) {
				if !wellFormed(token) {
					t.Fatalf("garbage %q reached Kubernetes", token)
				}
				if tt == oidcTenant {
					claimed, isJWT := oidc.ParseUnverified(token)
					if !isJWT || claimed.Issuer == is.URL() {
						t.Fatalf("token %q (JWT %v, iss %q) reached Kubernetes", token, isJWT, claimed.Issuer)
					}
				}
			}
			if p == nil {
				continue
			}
			switch p.path {
			case pathClient:
				if !slices.Equal(p.groups, []string{"client:" + p.clientID}) {
					t.Fatalf("client principal %q with groups %v", p.clientID, p.groups)
				}
				if p.clientID != "team-a-ci" && !p.clientCredentials {
					t.Fatalf("token %q of client %q became a client identity", token, p.clientID)
				}
			case pathOIDC:
				if p.name == "" {
					t.Fatalf("token %q: a user without a name", token)
				}
			case pathK8s:
				if _, _, err := fx.auth.authorizeKubernetes(ctx, p, "team-a", kindModule, "network"); err != nil {
					t.Fatalf("authorizeKubernetes: %v", err)
				}
			default:
				t.Fatalf("principal on path %q", p.path)
			}
		}
	})
}
