package registry

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strings"
	"sync"
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
		fx.upsert(&dexv1.DexStaticClient{
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
	sa := fx.api.token(f, map[string]any{"sub": "system:serviceaccount:team-a:ci", "exp": exp})
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
		unsignedJWT(map[string]any{"iss": "https://kubernetes.default.svc", "sub": "system:serviceaccount:team-a:ci", "exp": exp}),
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

// fuzzBudget is how long any registry request may take in FuzzServeHTTP: the evaluation deadline
// (a few milliseconds), one glob match and a signature verification, with a wide margin for a
// loaded machine running the fuzz workers.
const fuzzBudget = time.Second

// FuzzServeHTTP sends fuzzed requests (method, request target, Host, Authorization and any
// header lines injected through them) through the registry's whole HTTP handler, served from a
// Store with modules, providers and bindings (one with the costliest globs within the bounds),
// with real signatures in the seeds:
//
//	go test ./internal/registry/ -run '^$' -fuzz FuzzServeHTTP -fuzztime 60s
//
// It fails on a panic, on a request that takes longer than fuzzBudget, on a status the registry
// never answers, and on a path segment over 256 bytes answered otherwise than 404 or reaching
// Kubernetes. With REGISTRY_FUZZ_SLOWEST=<file>, each worker writes the slowest request it saw
// to <file>.<pid>.
func FuzzServeHTTP(f *testing.F) {
	fx := newHandlerFixture(f, Options{})
	fx.store.upsert(testModule("network", "team-a", "network", "aws"))
	fx.store.upsert(&dexv1.Provider{
		ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "echo", UID: "uid-echo"},
		Spec: dexv1.ProviderSpec{Namespace: "team-a", Type: "echo", Versions: []dexv1.ProviderVersion{{Version: "1.0.0",
			Platforms: []dexv1.ProviderPlatform{{OS: "linux", Arch: "amd64", Filename: "echo.zip", DownloadURL: "https://downloads.example.org/echo.zip",
				ShasumsURL: "https://downloads.example.org/SHA256SUMS", ShasumsSignatureURL: "https://downloads.example.org/SHA256SUMS.sig", Shasum: "00"}}}}},
	})
	fx.store.upsert(testBinding("a-members", `"team-a" in groups`, []string{"team-a/*", "dns", "*[a-z]*x"}, []string{"team-a/e*"}))
	fx.store.upsert(testBinding("b-worst", `"team-b" in groups`, worstPatterns(64), worstPatterns(64)))
	fx.store.upsert(testBinding("c-everyone", `any(groups, # startsWith "team-")`, []string{"*/*/*"}, []string{"*"}))
	teamA, teamB, other := fx.token(f, "team-a"), fx.token(f, "team-b"), fx.token(f, "team-c")
	sa := fx.saToken(f)

	long := strings.Repeat("a", 300)
	for _, target := range []string{
		"/.well-known/terraform.json",
		"/v1/modules/team-a/network/aws/versions",
		"/v1/modules/team-a/network/aws/1.0.0/download",
		"/v1/providers/team-a/echo/versions",
		"/v1/providers/team-a/echo/1.0.0/download/linux/amd64",
		"/v1/modules/" + worstName + "/" + worstName + "/" + worstName + "/versions",
		"/v1/modules/team-a/" + long + "/aws/versions",
		"/v1/modules/team-a%2Fx/network/aws/versions",
		"/v1/modules/TEAM-A/Network/AWS/versions?x=1",
		"//v1/../v1/modules/./team-a/network/aws/versions",
		"*",
	} {
		for _, tok := range []string{teamA, teamB, other, sa, "garbage", ""} {
			f.Add("GET", target, "registry.test", "Bearer "+tok)
		}
	}
	f.Add("HEAD", "/v1/modules/team-a/network/aws/versions", "REGISTRY.test:443", "bearer "+teamA)
	f.Add("POST", "/v1/modules/team-a/network/aws/versions", "registry.test", "Bearer "+teamA)
	f.Add("GET", "/v1/modules/team-a/network/aws/versions", "other.test", "Bearer "+teamA)
	f.Add("GET", "/v1/modules/team-a/network/aws/versions", strings.Repeat("h", 300), "Bearer "+teamA)
	f.Add("GET", "/v1/modules/team-a/network/aws/versions", "registry.test\r\nAuthorization: Bearer x", "Basic dXNlcjpwYXNz")

	var slowest time.Duration
	var mu sync.Mutex
	report := os.Getenv("REGISTRY_FUZZ_SLOWEST")
	f.Fuzz(func(t *testing.T, method, target, host, authorization string) {
		raw := fmt.Sprintf("%s %s HTTP/1.1\r\nHost: %s\r\nAuthorization: %s\r\n\r\n", method, target, host, authorization)
		req, err := http.ReadRequest(bufio.NewReader(strings.NewReader(raw)))
		if err != nil {
			return // the HTTP server answers 400 itself
		}
		req.RemoteAddr = "192.0.2.1:1234"
		reviews, sars := fx.kube.counts()
		rec := httptest.NewRecorder()
		start := time.Now()
		fx.server.Handler().ServeHTTP(rec, req)
		took := time.Since(start)
		if took > fuzzBudget {
			t.Fatalf("%s %.100q (Host %.60q) took %s, more than %s", req.Method, req.RequestURI, req.Host, took, fuzzBudget)
		}
		switch rec.Code {
		case http.StatusOK, http.StatusNoContent, http.StatusUnauthorized, http.StatusForbidden, http.StatusNotFound, http.StatusServiceUnavailable:
		case http.StatusMovedPermanently, http.StatusTemporaryRedirect, http.StatusPermanentRedirect, http.StatusBadRequest:
			// The mux's own answers: a redirect to the clean path ("//x/../y"), 400 for "*".
		default:
			t.Fatalf("%s %.100q: status %d", req.Method, req.RequestURI, rec.Code)
		}
		if !segmentsBounded(req.URL.EscapedPath()) {
			if rec.Code != http.StatusNotFound {
				t.Fatalf("%.100q with a segment over 256 bytes: status %d", req.RequestURI, rec.Code)
			}
			if r, s := fx.kube.counts(); r != reviews || s != sars {
				t.Fatalf("%.100q with a segment over 256 bytes reached Kubernetes", req.RequestURI)
			}
		}
		mu.Lock()
		defer mu.Unlock()
		if took > slowest {
			slowest = took
			if report != "" {
				_ = os.WriteFile(fmt.Sprintf("%s.%d", report, os.Getpid()),
					[]byte(fmt.Sprintf("%s %s %.200q Host %.60q -> %d\n", took, req.Method, req.RequestURI, req.Host, rec.Code)), 0o644)
			}
		}
	})
}
