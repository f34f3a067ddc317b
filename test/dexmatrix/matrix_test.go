package dexmatrix_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"

	api "github.com/dexidp/dex/api/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	dexv1 "dexterity.dev/dexterity/api/v1alpha1"
	"dexterity.dev/dexterity/test/dexmatrix/contract"
	"dexterity.dev/dexterity/test/harness"
)

// minConnectorRelease is the first Dex release with the connector RPCs.
const minConnectorRelease = "v2.41"

// TestReleases runs, on each Dex release, the contract table (against the release's binary and
// the fake set up like it) and then the operator on the same Dex: a tenant's client registered,
// repaired after a hand deletion and usable for a registry token, a DexConnector Ready (or, before
// v2.41, refused with DexVersionUnsupported), and no Dex write in the steady state.
func TestReleases(t *testing.T) {
	for _, rel := range harness.DexReleases {
		t.Run(rel.Version, func(t *testing.T) {
			dir := t.TempDir()
			on, err := contract.StartReal(harness.DexOptions{Dir: dir + "/crud-on", Release: rel.Version})
			NewWithT(t).Expect(err).NotTo(HaveOccurred())
			defer on.Close()
			dexLogOnFailure(t, on.Dex())
			off, err := contract.StartReal(harness.DexOptions{Dir: dir + "/crud-off", Release: rel.Version, DisableConnectorsCRUD: true})
			NewWithT(t).Expect(err).NotTo(HaveOccurred())
			defer off.Close()
			dexLogOnFailure(t, off.Dex())

			t.Run("contract", func(t *testing.T) {
				fake := &contract.Targets{CRUDOn: contract.NewFake(rel, false), CRUDOff: contract.NewFake(rel, true)}
				contract.Run(t, rel, contract.Targets{CRUDOn: on, CRUDOff: off}, fake)
			})
			off.Close()
			t.Run("static users' groups", func(t *testing.T) { testPasswordGroups(t, rel, on.Dex()) })
			t.Run("mutual TLS", func(t *testing.T) { testMTLS(t, rel, dir+"/mtls") })
			// The operator administers the contract's first Dex (memory storage: the contract left
			// only its own, prefixed entries).
			t.Run("operator", func(t *testing.T) { testOperator(t, rel, on.Dex()) })
		})
	}
}

// testPasswordGroups checks DexRelease.PasswordGroups: whether the groups of the harness's
// staticPasswords reach the ID token.
func testPasswordGroups(t *testing.T, rel harness.DexRelease, d *harness.Dex) {
	g := NewWithT(t)
	resp, err := harness.PasswordGrant(d.IssuerURL(), harness.HarnessClientID, harness.HarnessClientSecret, harness.AdminUser.Email, harness.AdminUser.Password)
	g.Expect(err).NotTo(HaveOccurred())
	idToken, _ := resp["id_token"].(string)
	parts := strings.Split(idToken, ".")
	g.Expect(parts).To(HaveLen(3), "id_token %q", idToken)
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	g.Expect(err).NotTo(HaveOccurred())
	var claims struct {
		Email  string   `json:"email"`
		Groups []string `json:"groups"`
	}
	g.Expect(json.Unmarshal(payload, &claims)).To(Succeed())
	g.Expect(claims.Email).To(Equal(harness.AdminUser.Email))
	if rel.PasswordGroups {
		g.Expect(claims.Groups).To(Equal(harness.AdminUser.Groups))
	} else {
		g.Expect(claims.Groups).To(BeEmpty(), "Dex %s ignores staticPasswords[].groups", rel.Version)
	}
}

// testMTLS checks DexRelease.MTLS: the operator reaches a Dex with grpc.tlsClientCA through a
// client certificate, or says the TLS handshake failed for want of ALPN.
func testMTLS(t *testing.T, rel harness.DexRelease, dir string) {
	g := NewWithT(t)
	ctx := context.Background()
	d, err := harness.StartDex(harness.DexOptions{Dir: dir, Release: rel.Version, MTLS: true})
	g.Expect(err).NotTo(HaveOccurred())
	defer func() { _ = d.Stop() }()
	dexLogOnFailure(t, d)
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "matrix-mtls-"}}
	g.Expect(k8s.Create(ctx, ns)).To(Succeed())
	m := d.TLS()
	g.Expect(k8s.Create(ctx, &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: "dex-grpc", Namespace: ns.Name},
		Data:       map[string][]byte{"ca.crt": m.CACert, "tls.crt": m.ClientCert, "tls.key": m.ClientKey},
	})).To(Succeed())
	p := &dexv1.OIDCProvider{
		ObjectMeta: metav1.ObjectMeta{Name: "dex", Namespace: ns.Name},
		Spec: dexv1.OIDCProviderSpec{
			IssuerURL: d.IssuerURL(), ClientID: "registry",
			Dex: &dexv1.DexAdminSpec{GRPCAddress: d.GRPCAddress(), TLS: &dexv1.DexTLSSpec{SecretRef: dexv1.LocalObjectReference{Name: "dex-grpc"}}},
		},
	}
	g.Expect(k8s.Create(ctx, p)).To(Succeed())
	if rel.MTLS {
		waitReady(t, p)
		g.Eventually(dexStatus(p), waitTimeout, poll).Should(HaveField("Version", rel.Version))
		return
	}
	g.Eventually(condition(p, dexv1.ConditionDexReachable), waitTimeout, poll).Should(And(
		HaveField("Status", metav1.ConditionFalse),
		HaveField("Reason", dexv1.ReasonDexTLSError),
		HaveField("Message", ContainSubstring("missing selected ALPN property")),
	), "Dex %s selects no ALPN protocol with client certificates", rel.Version)
}

func testOperator(t *testing.T, rel harness.DexRelease, d *harness.Dex) {
	g := NewWithT(t)
	ctx := context.Background()
	dapi, closer, err := d.Client()
	g.Expect(err).NotTo(HaveOccurred())
	defer func() { _ = closer.Close() }()

	tn := newTenant(t, d)
	g.Eventually(dexStatus(tn.provider), waitTimeout, poll).Should(Equal(dexv1.DexVersionStatus{Version: rel.Version, API: rel.API}),
		"the OIDCProvider shows the Dex release")

	// A tenant's confidential client with a generated secret.
	ci := &dexv1.DexStaticClient{
		ObjectMeta: metav1.ObjectMeta{Name: "ci", Namespace: tn.ns},
		Spec: dexv1.DexStaticClientSpec{
			ProviderRef: dexv1.ObjectRef{Name: "dex"}, DisplayName: "CI pipeline",
			RedirectURIs:   []string{"https://ci.example.org/callback"},
			SecretRef:      &dexv1.SecretKeyRef{Name: "ci-oidc", Key: "client-secret"},
			GenerateSecret: true,
		},
	}
	g.Expect(k8s.Create(ctx, ci)).To(Succeed())
	waitReady(t, ci)
	id := ci.EffectiveClientID()
	inDex := func(g Gomega) *api.Client {
		resp, err := dapi.GetClient(ctx, &api.GetClientReq{Id: id})
		g.Expect(err).NotTo(HaveOccurred())
		return resp.GetClient()
	}
	g.Expect(inDex(g)).To(HaveField("Name", "CI pipeline"))

	t.Run("drift repair", func(t *testing.T) {
		g := NewWithT(t)
		resp, err := dapi.DeleteClient(ctx, &api.DeleteClientReq{Id: id})
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(resp.GetNotFound()).To(BeFalse())
		g.Eventually(inDex, 3*resyncPeriod+waitTimeout, poll).Should(HaveField("Name", "CI pipeline"), "the operator re-creates the client")
	})

	t.Run("a token through the tenant's client is accepted by the registry", func(t *testing.T) {
		g := NewWithT(t)
		secret := &corev1.Secret{}
		g.Expect(k8s.Get(ctx, client.ObjectKey{Namespace: tn.ns, Name: "ci-oidc"}, secret)).To(Succeed())
		// The client binding counts, not the user's groups (before v2.44 static users have none).
		resp, err := harness.PasswordGrant(d.IssuerURL(), id, string(secret.Data["client-secret"]), harness.OtherUser.Email, harness.OtherUser.Password)
		g.Expect(err).NotTo(HaveOccurred())
		token, _ := resp["access_token"].(string)
		g.Expect(token).NotTo(BeEmpty(), "token response: %v", resp)
		for _, o := range []client.Object{
			&dexv1.Module{
				ObjectMeta: metav1.ObjectMeta{Name: "network", Namespace: tn.ns},
				Spec: dexv1.ModuleSpec{Namespace: "team-a", Name: "network", System: "local",
					Versions: []dexv1.ModuleVersion{{Version: "1.0.0", Source: "https://downloads.example.org/network-1.0.0.tar.gz"}}},
			},
			&dexv1.GroupBinding{
				ObjectMeta: metav1.ObjectMeta{Name: "ci", Namespace: tn.ns},
				Spec:       dexv1.GroupBindingSpec{Expression: fmt.Sprintf("%q in groups", "client:"+id), ModuleResources: []string{"team-a/*"}},
			},
		} {
			g.Expect(k8s.Create(ctx, o)).To(Succeed())
		}
		var body string
		g.Eventually(func() int {
			var code int
			code, body = tn.get("/v1/modules/team-a/network/local/versions", token)
			return code
		}, waitTimeout, poll).Should(Equal(http.StatusOK), "last body: %s", func() string { return body })
		g.Expect(body).To(ContainSubstring(`"1.0.0"`))
	})

	t.Run("a DexConnector", func(t *testing.T) {
		g := NewWithT(t)
		provider := tn.providerKey()
		conn := &dexv1.DexConnector{
			ObjectMeta: metav1.ObjectMeta{Name: "mock", Namespace: tn.ns},
			Spec: dexv1.DexConnectorSpec{ProviderRef: dexv1.ObjectRef{Name: "dex"}, ConnectorID: "mock-" + tn.ns,
				Type: "mockCallback", DisplayName: "Mock"},
		}
		createsBefore := harness.DexCalls(provider, "CreateConnector")
		g.Expect(k8s.Create(ctx, conn)).To(Succeed())
		if rel.ConnectorAPI {
			waitReady(t, conn)
			list, err := dapi.ListConnectors(ctx, &api.ListConnectorReq{})
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(list.GetConnectors()).To(ContainElement(And(HaveField("Id", "mock-"+tn.ns), HaveField("Type", "mockCallback"))))
			return
		}
		g.Eventually(condition(conn, dexv1.ConditionReady), waitTimeout, poll).Should(And(
			HaveField("Status", metav1.ConditionFalse),
			HaveField("Reason", dexv1.ReasonDexVersionUnsupported),
			HaveField("Message", And(ContainSubstring(rel.Version), ContainSubstring(minConnectorRelease))),
		), "a Dex without the connector API refuses the DexConnector, naming its release and the minimum")
		g.Expect(harness.DexCalls(provider, "CreateConnector")-createsBefore).To(BeZero(), "nothing written to Dex")
		// The clients still work.
		g.Expect(inDex(g)).To(HaveField("Name", "CI pipeline"))
	})

	t.Run("steady state writes nothing", func(t *testing.T) {
		l0 := harness.DexCalls(tn.providerKey(), "ListConnectors")
		watched := noWritesInSteadyState(t, tn.providerKey(), 1)
		if !rel.ConnectorAPI {
			// The refused DexConnector is not retried in a loop: at most one look per resync.
			NewWithT(t).Expect(harness.DexCalls(tn.providerKey(), "ListConnectors") - l0).To(BeNumerically("<=", float64(watched/resyncPeriod)+1))
		}
	})
}
