package dexmatrix_test

import (
	"context"
	"testing"

	api "github.com/dexidp/dex/api/v2"
	. "github.com/onsi/gomega"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	dexv1 "dexterity.dev/dexterity/api/v1alpha1"
	"dexterity.dev/dexterity/test/harness"
)

// TestUpgrade upgrades, under the operator, a sqlite3 Dex of each older release to the latest on
// the same database: every client and connector is still there and unchanged, the objects stay
// Ready, the OIDCProvider shows the new release, and the operator writes nothing to Dex for it
// (before v2.41, the DexConnector it refused is created once the Dex can take it).
func TestUpgrade(t *testing.T) {
	latest, _ := harness.LookupDexRelease(harness.LatestDexRelease)
	for _, from := range harness.DexReleases {
		if from.Version == latest.Version {
			continue
		}
		t.Run(from.Version+" to "+latest.Version, func(t *testing.T) { testUpgrade(t, from, latest) })
	}
}

func testUpgrade(t *testing.T, from, to harness.DexRelease) {
	g := NewWithT(t)
	ctx := context.Background()
	d, err := harness.StartDex(harness.DexOptions{Dir: t.TempDir(), Storage: harness.StorageSQLite, Release: from.Version})
	g.Expect(err).NotTo(HaveOccurred())
	defer func() { _ = d.Stop() }()
	dexLogOnFailure(t, d)
	dapi, closer, err := d.Client()
	g.Expect(err).NotTo(HaveOccurred())
	defer func() { _ = closer.Close() }()

	tn := newTenant(t, d)
	provider := tn.providerKey()
	g.Eventually(dexStatus(tn.provider), waitTimeout, poll).Should(Equal(dexv1.DexVersionStatus{Version: from.Version, API: from.API}))
	clients := []*dexv1.DexStaticClient{
		{
			ObjectMeta: metav1.ObjectMeta{Name: "ci", Namespace: tn.ns},
			Spec: dexv1.DexStaticClientSpec{
				ProviderRef: dexv1.ObjectRef{Name: "dex"}, DisplayName: "CI pipeline",
				RedirectURIs:   []string{"https://ci.example.org/callback"},
				SecretRef:      &dexv1.SecretKeyRef{Name: "ci-oidc", Key: "client-secret"},
				GenerateSecret: true,
			},
		},
		{
			ObjectMeta: metav1.ObjectMeta{Name: "cli", Namespace: tn.ns},
			Spec: dexv1.DexStaticClientSpec{
				ProviderRef: dexv1.ObjectRef{Name: "dex"}, ClientID: "cli-" + tn.ns, DisplayName: "CLI", Public: true,
				LoopbackRedirect: &dexv1.LoopbackRedirect{Ports: []int32{10000, 10010}, Path: "/login"},
			},
		},
	}
	conn := &dexv1.DexConnector{
		ObjectMeta: metav1.ObjectMeta{Name: "mock", Namespace: tn.ns},
		Spec: dexv1.DexConnectorSpec{ProviderRef: dexv1.ObjectRef{Name: "dex"}, ConnectorID: "mock-" + tn.ns,
			Type: "mockCallback", DisplayName: "Mock"},
	}
	for _, c := range clients {
		g.Expect(k8s.Create(ctx, c)).To(Succeed())
	}
	g.Expect(k8s.Create(ctx, conn)).To(Succeed())
	for _, c := range clients {
		waitReady(t, c)
	}
	if from.ConnectorAPI {
		waitReady(t, conn)
	} else {
		g.Eventually(condition(conn, dexv1.ConditionReady), waitTimeout, poll).Should(HaveField("Reason", dexv1.ReasonDexVersionUnsupported))
	}

	// What Dex holds before the upgrade.
	inDex := func(g Gomega, connectorAPI bool) ([]*api.Client, []*api.Connector) {
		var got []*api.Client
		for _, c := range clients {
			resp, err := dapi.GetClient(ctx, &api.GetClientReq{Id: c.EffectiveClientID()})
			g.Expect(err).NotTo(HaveOccurred())
			got = append(got, resp.GetClient())
		}
		if !connectorAPI {
			return got, nil
		}
		resp, err := dapi.ListConnectors(ctx, &api.ListConnectorReq{})
		g.Expect(err).NotTo(HaveOccurred())
		return got, resp.GetConnectors()
	}
	clientsBefore, connectorsBefore := inDex(g, from.ConnectorAPI)
	g.Expect(clientsBefore).To(HaveEach(Not(BeNil())))
	if from.ConnectorAPI {
		g.Expect(connectorsBefore).To(ContainElement(HaveField("Id", "mock-"+tn.ns)))
	}
	writesBefore := writes(provider)

	g.Expect(d.SwitchRelease(to.Version)).To(Succeed())
	g.Eventually(dexStatus(tn.provider), waitTimeout, poll).Should(Equal(dexv1.DexVersionStatus{Version: to.Version, API: to.API}),
		"the OIDCProvider shows the new release")

	if !from.ConnectorAPI {
		// The refused connector is created now, with the connector probe's client (once per
		// Dex); then nothing more is written.
		waitReady(t, conn)
		g.Expect(writes(provider)-writesBefore).To(BeNumerically("==", 2), "only the connector and the probe client were written: %v", writesByMethod(provider))
		g.Expect(harness.DexCalls(provider, "CreateConnector")).To(BeNumerically("==", 1))
		writesBefore = writes(provider)
	}
	noWritesInSteadyState(t, provider, len(clients))
	g.Expect(writes(provider)-writesBefore).To(BeZero(), "the upgrade made the operator write nothing to Dex: %v", writesByMethod(provider))

	clientsAfter, connectorsAfter := inDex(g, true)
	for i := range clients {
		g.Expect(clientsAfter[i]).To(And(
			HaveField("Id", clientsBefore[i].GetId()),
			HaveField("Secret", clientsBefore[i].GetSecret()),
			HaveField("Name", clientsBefore[i].GetName()),
			HaveField("RedirectUris", clientsBefore[i].GetRedirectUris()),
			HaveField("Public", clientsBefore[i].GetPublic()),
		), "client %s after the upgrade", clients[i].Name)
	}
	g.Expect(connectorsAfter).To(ContainElement(And(HaveField("Id", "mock-"+tn.ns), HaveField("Type", "mockCallback"), HaveField("Name", "Mock"))))
	if from.ConnectorAPI {
		g.Expect(connectorsAfter).To(HaveLen(len(connectorsBefore)))
	}
	for _, o := range []conditioned{clients[0], clients[1], conn, tn.provider} {
		g.Expect(k8s.Get(ctx, client.ObjectKeyFromObject(o), o)).To(Succeed())
		g.Expect(o.GetConditions()).To(ContainElement(And(HaveField("Type", dexv1.ConditionReady), HaveField("Status", metav1.ConditionTrue))), "%T %s", o, o.GetName())
	}
}
