package oidc

import (
	"testing"
	"time"

	. "github.com/onsi/gomega"

	dexv1 "dexterity.dev/dexterity/api/v1alpha1"
)

// ProviderConfig is the one translation of an OIDCProvider's spec into the key cache's config:
// the audiences default to spec.clientId, every other field is carried over as written, and equal
// specs give configs the cache treats as equal (Lookup finds the issuer built from either).
func TestProviderConfig(t *testing.T) {
	ca := "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"
	for _, tc := range []struct {
		name    string
		spec    dexv1.OIDCProviderSpec
		want    Config
		refused bool // by the cache: the CA of "every field" is no real certificate
	}{{
		name: "audiences default to the client id",
		spec: dexv1.OIDCProviderSpec{IssuerURL: "https://dex.example", ClientID: "registry"},
		want: Config{IssuerURL: "https://dex.example", Audiences: []string{"registry"}},
	}, {
		name: "every field",
		spec: dexv1.OIDCProviderSpec{IssuerURL: "https://dex.example", DiscoveryURL: "http://dex.dex.svc:5556",
			ClientID: "registry", Audiences: []string{"registry", "ci"}, UsernameClaim: "email", GroupsClaim: "roles",
			UsernamePrefix: "oidc:", GroupsPrefix: "dex:", CABundle: ca, JWKSRefreshIntervalSeconds: 120,
			RequiredClaims: []dexv1.RequiredClaim{{Name: "hd", Value: "example.org"}, {Name: "email_verified"}}},
		want: Config{IssuerURL: "https://dex.example", DiscoveryURL: "http://dex.dex.svc:5556",
			Audiences: []string{"registry", "ci"}, UsernameClaim: "email", GroupsClaim: "roles",
			UsernamePrefix: "oidc:", GroupsPrefix: "dex:", CABundle: []byte(ca), RefreshInterval: 2 * time.Minute,
			RequiredClaims: []RequiredClaim{{Name: "hd", Value: "example.org"}, {Name: "email_verified"}}},
		refused: true,
	}} {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			p := &dexv1.OIDCProvider{Spec: tc.spec}
			got := ProviderConfig(p)
			g.Expect(got).To(Equal(tc.want))
			// Nothing shared with the spec: the cache keeps configs past the object's lifetime.
			if len(p.Spec.Audiences) > 0 {
				got.Audiences[0] = "changed"
				g.Expect(p.Spec.Audiences[0]).NotTo(Equal("changed"))
			}

			// What the writer made of the spec (an issuer, or the refusal) is what a reader of an
			// equal spec finds.
			c := NewCache()
			built, syncErr := c.Sync("ns/dex", ProviderConfig(p))
			found, ok, refused := c.Lookup("ns/dex", ProviderConfig(p.DeepCopy()))
			g.Expect(ok).To(BeTrue())
			if tc.refused {
				g.Expect(syncErr).To(HaveOccurred())
				g.Expect(refused).To(BeIdenticalTo(syncErr))
				g.Expect(found).To(BeNil())
				return
			}
			g.Expect(syncErr).NotTo(HaveOccurred())
			g.Expect(refused).NotTo(HaveOccurred())
			g.Expect(found).To(BeIdenticalTo(built))
		})
	}
}
