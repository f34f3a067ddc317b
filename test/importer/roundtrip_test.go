// Package importer_test round-trips `dexterity import` through a real Dex: the entries of a Dex
// config file, imported and applied to an API server with the operator's controllers running,
// make Dex hold the same clients and connectors the config did.
package importer_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/dexidp/dex/api/v2"
	"github.com/dexidp/dex/connector/github"
	"github.com/dexidp/dex/connector/ldap"
	"github.com/dexidp/dex/connector/mock"
	dexoidc "github.com/dexidp/dex/connector/oidc"
	. "github.com/onsi/gomega"
	"go.uber.org/zap/zapcore"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	"sigs.k8s.io/yaml"

	dexv1 "dexterity.dev/dexterity/api/v1alpha1"
	"dexterity.dev/dexterity/internal/importer"
	"dexterity.dev/dexterity/test/harness"
	"dexterity.dev/dexterity/test/operatortest"
)

var k8s client.Client

const waitTimeout = 60 * time.Second

// The environment Dex reads the fixture's $VAR references, idEnv and secretEnv from.
var dexEnvironment = map[string]string{
	"ROUNDTRIP_PRIVATE_SECRET": "private-secret-from-env",
	"ROUNDTRIP_GITHUB_SECRET":  "github-secret-from-env",
	"ROUNDTRIP_OIDC_SECRET":    harness.HarnessClientSecret,
}

func TestMain(m *testing.M) { os.Exit(runSuite(m)) }

func runSuite(m *testing.M) int {
	ctrl.SetLogger(zap.New(zap.WriteTo(os.Stderr), zap.Level(zapcore.WarnLevel)))
	env, err := harness.StartEnv(harness.EnvOptions{})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer func() { _ = env.Stop() }()
	k8s = env.Client

	op, err := operatortest.Start(env.Config, operatortest.Options{})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer func() {
		if err := op.Stop(); err != nil {
			fmt.Fprintln(os.Stderr, "manager:", err)
		}
	}()
	return m.Run()
}

// dexWithEntries starts a Dex whose config also holds the entries of fixture (its staticClients
// next to the harness client, its connectors), with dexEnvironment set.
func dexWithEntries(t *testing.T, fixture map[string]any) *harness.Dex {
	t.Helper()
	g := NewWithT(t)
	port, err := harness.FreePort()
	g.Expect(err).NotTo(HaveOccurred())
	issuer := fmt.Sprintf("http://127.0.0.1:%d/dex", port)
	for k, v := range dexEnvironment {
		t.Setenv(k, v)
	}
	t.Setenv("ROUNDTRIP_ISSUER", issuer) // Dex's own issuer: the oidc connector logs in through the harness client
	d, err := harness.StartDex(harness.DexOptions{Dir: t.TempDir(), HTTPPort: port})
	g.Expect(err).NotTo(HaveOccurred())
	t.Cleanup(func() { _ = d.Stop() })
	g.Expect(d.IssuerURL()).To(Equal(issuer))
	rewriteConfig(t, d, fixture)
	return d
}

// rewriteConfig puts the entries of fixture (nil: none) into Dex's config and restarts it.
func rewriteConfig(t *testing.T, d *harness.Dex, fixture map[string]any) {
	t.Helper()
	g := NewWithT(t)
	raw, err := os.ReadFile(d.ConfigPath())
	g.Expect(err).NotTo(HaveOccurred())
	var cfg map[string]any
	g.Expect(yaml.Unmarshal(raw, &cfg)).To(Succeed())
	clients := []any{}
	for _, c := range cfg["staticClients"].([]any) {
		if c.(map[string]any)["id"] == harness.HarnessClientID {
			clients = append(clients, c)
		}
	}
	delete(cfg, "connectors")
	if fixture != nil {
		clients = append(clients, fixture["staticClients"].([]any)...)
		cfg["connectors"] = fixture["connectors"]
	}
	cfg["staticClients"] = clients
	out, err := yaml.Marshal(cfg)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(os.WriteFile(d.ConfigPath(), out, 0o600)).To(Succeed())
	g.Expect(d.Restart()).To(Succeed())
}

// state is what Dex holds for the fixture's ids, normalised for comparison.
type state struct {
	Clients    map[string]clientState
	Connectors map[string]connectorState
}

type clientState struct {
	Secret, Name, LogoURL      string
	Public                     bool
	RedirectURIs, TrustedPeers []string
}

type connectorState struct {
	Type, Name string
	Config     string // the config as Dex's own type reads it, re-encoded
}

// snapshot reads the clients and connectors with the given ids from Dex's gRPC API.
func snapshot(g Gomega, dapi api.DexClient, clientIDs, connectorIDs []string) state {
	ctx := context.Background()
	s := state{Clients: map[string]clientState{}, Connectors: map[string]connectorState{}}
	for _, id := range clientIDs {
		resp, err := dapi.GetClient(ctx, &api.GetClientReq{Id: id})
		g.Expect(err).NotTo(HaveOccurred(), "client %s", id)
		c := resp.GetClient()
		slices.Sort(c.RedirectUris)
		slices.Sort(c.TrustedPeers)
		g.Expect(c.GetId()).To(Equal(id))
		s.Clients[id] = clientState{Secret: c.Secret, Public: c.Public, Name: c.Name, LogoURL: c.LogoUrl, RedirectURIs: c.RedirectUris, TrustedPeers: c.TrustedPeers}
	}
	resp, err := dapi.ListConnectors(ctx, &api.ListConnectorReq{})
	g.Expect(err).NotTo(HaveOccurred())
	for _, c := range resp.GetConnectors() {
		if !slices.Contains(connectorIDs, c.Id) {
			continue
		}
		s.Connectors[c.Id] = connectorState{Type: c.Type, Name: c.Name, Config: normalise(g, c.Type, c.Config)}
	}
	return s
}

// normalise decodes a connector config into Dex's type for it and encodes it again: Dex stores a
// config-file connector as its whole struct and an API-created one as sent.
func normalise(g Gomega, typ string, raw []byte) string {
	var v any
	switch typ {
	case "github":
		v = new(github.Config)
	case "ldap":
		v = new(ldap.Config)
	case "oidc":
		v = new(dexoidc.Config)
	case "mockCallback":
		v = new(mock.CallbackConfig)
	default:
		g.Expect(typ).To(BeEmpty(), "no normalisation for this type")
	}
	if len(raw) > 0 {
		g.Expect(json.Unmarshal(raw, v)).To(Succeed())
	}
	out, err := json.Marshal(v)
	g.Expect(err).NotTo(HaveOccurred())
	return string(out)
}

func condition(obj client.Object, typ string) func(g Gomega) metav1.Condition {
	return func(g Gomega) metav1.Condition {
		g.Expect(k8s.Get(context.Background(), client.ObjectKeyFromObject(obj), obj)).To(Succeed())
		var conds []metav1.Condition
		switch o := obj.(type) {
		case *dexv1.DexStaticClient:
			conds = o.Status.Conditions
		case *dexv1.DexConnector:
			conds = o.Status.Conditions
		}
		c := meta.FindStatusCondition(conds, typ)
		g.Expect(c).NotTo(BeNil(), "condition %s not set yet", typ)
		return *c
	}
}

// TestRoundTripThroughDex follows docs/migration.md against a real Dex: Dex serves the fixture's
// entries from its config; the imported objects are applied (and wait, since Dex holds the ids);
// the entries are removed from the config and Dex restarted; the operator registers them; Dex
// then holds the same clients (id, name, secret, public, redirect URIs, trusted peers, logo) and
// connectors (id, type, name, config) as before.
func TestRoundTripThroughDex(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	data, err := os.ReadFile(filepath.Join("testdata", "roundtrip.yaml"))
	g.Expect(err).NotTo(HaveOccurred())
	var fixture map[string]any
	g.Expect(yaml.Unmarshal(data, &fixture)).To(Succeed())

	d := dexWithEntries(t, fixture)
	dapi, closer, err := d.Client()
	g.Expect(err).NotTo(HaveOccurred())
	t.Cleanup(func() { _ = closer.Close() })

	// Import, with this process's environment standing in for Dex's.
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "import-"}}
	g.Expect(k8s.Create(ctx, ns)).To(Succeed())
	res, err := importer.Import(data, importer.Options{Namespace: ns.Name, LookupEnv: os.LookupEnv})
	g.Expect(err).NotTo(HaveOccurred())
	var clientIDs, connectorIDs []string
	var objs []client.Object
	for _, e := range res.Entries {
		if e.Secret != nil {
			g.Expect(k8s.Create(ctx, e.Secret)).To(Succeed())
		}
		if e.Client != nil {
			clientIDs = append(clientIDs, e.ID)
			objs = append(objs, e.Client)
		} else {
			connectorIDs = append(connectorIDs, e.ID)
			objs = append(objs, e.Connector)
		}
	}
	g.Expect(clientIDs).To(HaveLen(3))
	g.Expect(connectorIDs).To(HaveLen(4))
	before := snapshot(g, dapi, clientIDs, connectorIDs)
	g.Expect(before.Connectors).To(HaveLen(4))
	g.Expect(before.Clients["team-a-tofu"].RedirectURIs).To(HaveLen(12))
	g.Expect(before.Clients["Private.Client_2"].Secret).To(Equal(dexEnvironment["ROUNDTRIP_PRIVATE_SECRET"]))
	g.Expect(before.Connectors["github"].Config).To(ContainSubstring(dexEnvironment["ROUNDTRIP_GITHUB_SECRET"]))
	g.Expect(before.Connectors["upstream"].Config).To(ContainSubstring(d.IssuerURL()))

	// The provider, then the objects: they wait while Dex's config holds their ids.
	g.Expect(k8s.Create(ctx, &dexv1.OIDCProvider{
		ObjectMeta: metav1.ObjectMeta{Name: "dex", Namespace: ns.Name},
		Spec: dexv1.OIDCProviderSpec{IssuerURL: d.IssuerURL(), ClientID: "registry",
			Dex: &dexv1.DexAdminSpec{GRPCAddress: d.GRPCAddress(), Insecure: true}},
	})).To(Succeed())
	for _, o := range objs {
		g.Expect(k8s.Create(ctx, o)).To(Succeed(), "%s", o.GetName())
	}
	g.Eventually(condition(&dexv1.DexStaticClient{ObjectMeta: metav1.ObjectMeta{Name: "example-app", Namespace: ns.Name}}, dexv1.ConditionRegistered), waitTimeout).
		Should(HaveField("Reason", dexv1.ReasonClientExistsInDex))
	g.Eventually(condition(&dexv1.DexConnector{ObjectMeta: metav1.ObjectMeta{Name: "github", Namespace: ns.Name}}, dexv1.ConditionRegistered), waitTimeout).
		Should(HaveField("Reason", dexv1.ReasonConnectorExistsInDex))

	// Remove the entries from the config and restart Dex: the operator registers them.
	rewriteConfig(t, d, nil)
	for _, o := range objs {
		g.Eventually(condition(o, dexv1.ConditionRegistered), waitTimeout).Should(HaveField("Status", metav1.ConditionTrue), "%s", o.GetName())
	}
	g.Eventually(func(g Gomega) state { return snapshot(g, dapi, clientIDs, connectorIDs) }, waitTimeout).Should(Equal(before))
}
