package registry_test

import (
	"context"
	"net/http"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	dexv1 "dexterity.dev/dexterity/api/v1alpha1"
	"dexterity.dev/dexterity/test/harness"
)

// TestAttackAudienceHeldElsewhere: mallory registered, from her namespace, a client whose id became
// team A's registry audience later (its OIDCProvider's clientId). Tokens issued through her client
// carry team A's audience: team A's registry refuses its issuer's tokens (401) until the platform
// resolves it, then accepts its own again.
func TestAttackAudienceHeldElsewhere(t *testing.T) {
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
	aud := "registry-" + malloryNS
	// Mallory registers the id first (no provider names it yet).
	_, mallorySecret := confidentialClient(t, malloryNS, "early", aud, dexv1.ObjectRef{Name: "dex", Namespace: platformNS})

	// Team A's registry names it as its audience afterwards.
	teamA := newTenant(t, tenantOptions{providerConfig: func(p *dexv1.OIDCProvider) { p.Spec.ClientID = aud }})
	teamA.create(t, module("network", "team-a", "network", "aws", "1.0.0"),
		binding("all", `"team-b" in groups`, []string{"team-a/*"}, nil))
	phished := token(t, dexMain, aud, mallorySecret, harness.OtherUser)
	body := teamA.eventuallyCode(t, versionsPath, phished, http.StatusUnauthorized)
	g.Expect(body).To(ContainSubstring("registered in Dex by a client of another namespace"))
	g.Consistently(func() int {
		code, _, _ := teamA.get(versionsPath, phished)
		return code
	}, 2*time.Second, 100*time.Millisecond).Should(Equal(http.StatusUnauthorized))

	// Resolved: mallory's client goes; team A registers its own client for its audience.
	g.Expect(k8s.Delete(ctx, &dexv1.DexStaticClient{ObjectMeta: metav1.ObjectMeta{Name: "early", Namespace: malloryNS}})).To(Succeed())
	ownID, ownSecret := confidentialClient(t, teamA.ns, "registry", aud, dexv1.ObjectRef{Name: "dex", Namespace: platformNS})
	teamA.eventuallyCode(t, versionsPath, token(t, dexMain, ownID, ownSecret, harness.OtherUser), http.StatusOK)
}
