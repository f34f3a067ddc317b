package registry

import (
	"context"
	"net/http"
	"testing"

	. "github.com/onsi/gomega"

	"dexterity.dev/dexterity/internal/oidc"
)

// login.v1 sends tofu login to the authorization and token endpoints of the issuer built from
// exactly the provider's spec, never to those of an issuer of an older spec that the key cache
// still holds (its writer, KeyCacheSync, follows the provider through its own informer handler):
// a provider re-pointed away from an issuer stops advertising that issuer at once.
func TestDiscoveryAdvertisesOnlyTheCurrentIssuer(t *testing.T) {
	g := NewWithT(t)
	fx := newHandlerFixture(t, Options{})
	code, body, _ := fx.get("/.well-known/terraform.json", "registry.test", "")
	g.Expect(code).To(Equal(http.StatusOK), body)
	g.Expect(body).To(ContainSubstring(fx.is.URL() + "/auth"))

	next, err := StartClaimsIssuer()
	g.Expect(err).NotTo(HaveOccurred())
	defer next.Close()
	moved := fx.store.tenants["ns/dex"].provider.DeepCopy()
	moved.Generation++
	moved.Spec.IssuerURL = next.URL()
	fx.upsert(moved)

	// The key cache still holds the issuer of the old spec.
	code, body, _ = fx.get("/.well-known/terraform.json", "registry.test", "")
	g.Expect(body).NotTo(ContainSubstring(fx.is.URL()), "the old issuer is advertised")
	g.Expect(code).To(Equal(http.StatusServiceUnavailable), body)

	issuer, err := fx.keys.Sync("ns/dex", oidc.ProviderConfig(moved))
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(issuer.Refresh(context.Background())).To(Succeed())
	code, body, _ = fx.get("/.well-known/terraform.json", "registry.test", "")
	g.Expect(code).To(Equal(http.StatusOK), body)
	g.Expect(body).To(ContainSubstring(next.URL() + "/auth"))
	g.Expect(body).To(ContainSubstring(next.URL() + "/token"))

	// An explicit spec.authzUrl/tokenUrl needs no issuer at all.
	explicit := moved.DeepCopy()
	explicit.Generation++
	explicit.Spec.AuthzURL, explicit.Spec.TokenURL = "https://login.example.org/auth", "https://login.example.org/token"
	fx.upsert(explicit)
	code, body, _ = fx.get("/.well-known/terraform.json", "registry.test", "")
	g.Expect(code).To(Equal(http.StatusOK), body)
	g.Expect(body).To(ContainSubstring("https://login.example.org/auth"))
}
