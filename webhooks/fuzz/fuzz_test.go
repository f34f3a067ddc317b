// Package fuzz fuzzes the single-object validators of the webhooks (pure functions, no API
// server), so `go test -fuzz` does not start envtest for every worker. Seed corpora run with every
// `go test`; long runs: `go test ./webhooks/fuzz/ -run '^$' -fuzz FuzzX -fuzztime 60s`.
package fuzz

import (
	"testing"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	dexv1 "dexterity.dev/dexterity/api/v1alpha1"
	"dexterity.dev/dexterity/webhooks"
)

func FuzzOIDCProvider(f *testing.F) {
	f.Add("https://dex.example.com/dex", "", "", "", true, false, false, false)
	f.Add("http://127.0.0.1:5556/dex", "https://x/auth", "ftp://x", "-----BEGIN CERTIFICATE-----\nAA\n-----END CERTIFICATE-----", false, true, true, true)
	f.Add("http://dex.dex.svc:5556", "::", "%zz", "garbage", true, true, false, true)
	f.Fuzz(func(t *testing.T, issuer, authz, token, ca string, enabled, bearer, fallback, cc bool) {
		p := &dexv1.OIDCProvider{ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: "ns"}, Spec: dexv1.OIDCProviderSpec{
			IssuerURL: issuer, ClientID: "c", AuthzURL: authz, TokenURL: token, CABundle: ca,
			Enabled: &enabled, UseBearerToken: bearer, AllowServiceAccountFallback: fallback, AllowClientCredentials: cc,
		}}
		_, errs := webhooks.ValidateOIDCProvider(p)
		if enabled && bearer && len(errs) == 0 {
			t.Fatal("enabled and useBearerToken both true must be rejected")
		}
		for _, e := range errs {
			if e.Field == "" || e.Detail == "" {
				t.Fatalf("error without field or fix: %v", e)
			}
		}
	})
}

func FuzzDexStaticClient(f *testing.F) {
	f.Add("https://app.example.com/cb", "http://localhost:8000/cb", false, true)
	f.Add("http://app.example.com", "/relative", true, false)
	f.Add("", "javascript:alert(1)", true, true)
	f.Fuzz(func(t *testing.T, r1, r2 string, public, withSecret bool) {
		c := &dexv1.DexStaticClient{ObjectMeta: metav1.ObjectMeta{Name: "c", Namespace: "ns"}, Spec: dexv1.DexStaticClientSpec{
			ProviderRef: dexv1.ObjectRef{Name: "dex"}, Public: public, RedirectURIs: []string{r1, r2},
		}}
		if withSecret {
			c.Spec.SecretRef = &dexv1.SecretKeyRef{Name: "s", Key: "k"}
		}
		_, errs := webhooks.ValidateDexStaticClient(c)
		if !public && !withSecret && len(errs) == 0 {
			t.Fatal("a confidential client without secretRef must be rejected")
		}
	})
}

func FuzzDexConnector(f *testing.F) {
	f.Add("github", `{"clientID":"a","orgs":[{"name":"x"}]}`, "clientSecret")
	f.Add("ldap", `{"host":"h:636","bindPW":"x","userSearch":{"baseDN":1}}`, "bindPW")
	f.Add("oidc", `{"issuer":"https://x","claimMapping":{"email":"e"}}`, "a.b.c")
	f.Add("mockCallback", `[]`, "")
	f.Add("saml", `{"caData":"not base64"}`, "x")
	f.Fuzz(func(t *testing.T, typ, config, secretPath string) {
		c := &dexv1.DexConnector{ObjectMeta: metav1.ObjectMeta{Name: "k", Namespace: "ns"}, Spec: dexv1.DexConnectorSpec{
			ProviderRef: dexv1.ObjectRef{Name: "dex"}, ConnectorID: "k", Type: dexv1.ConnectorType(typ),
			Config: &apiextensionsv1.JSON{Raw: []byte(config)},
		}}
		if secretPath != "" {
			c.Spec.Secrets = []dexv1.ConnectorSecret{{Path: secretPath, SecretRef: dexv1.SecretKeyRef{Name: "s", Key: "k"}}}
		}
		_ = webhooks.ValidateDexConnector(c)
	})
}

func FuzzGroupBinding(f *testing.F) {
	for _, s := range []string{`"client:ci" in groups`, `groups contains`, `len(groups)`, `filter(groups, {# startsWith "a"}) != []`, `((((`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, expr string) {
		b := &dexv1.GroupBinding{ObjectMeta: metav1.ObjectMeta{Name: "b", Namespace: "ns"}, Spec: dexv1.GroupBindingSpec{Expression: expr}}
		_ = webhooks.ValidateGroupBinding(b)
	})
}
