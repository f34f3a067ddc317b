package importer

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"

	. "github.com/onsi/gomega"
	"sigs.k8s.io/yaml"

	dexv1 "dexterity.dev/dexterity/api/v1alpha1"
)

func readFixture(t *testing.T, name string) []byte {
	t.Helper()
	data, err := os.ReadFile("testdata/" + name)
	NewWithT(t).Expect(err).NotTo(HaveOccurred())
	return data
}

func entry(t *testing.T, r *Result, id string) Entry {
	t.Helper()
	for _, e := range r.Entries {
		if e.ID == id {
			return e
		}
	}
	t.Fatalf("no entry for id %s", id)
	return Entry{}
}

func configOf(t *testing.T, c *dexv1.DexConnector) map[string]any {
	t.Helper()
	var m map[string]any
	NewWithT(t).Expect(json.Unmarshal(c.Spec.Config.Raw, &m)).To(Succeed())
	return m
}

func env(vars map[string]string) func(string) (string, bool) {
	return func(name string) (string, bool) {
		v, ok := vars[name]
		return v, ok
	}
}

// TestImportDexExamples imports a config shaped like Dex's own examples: every secret and every
// $VAR reference ends in a Secret, nothing secret is left in the objects or the warnings.
func TestImportDexExamples(t *testing.T) {
	g := NewWithT(t)
	data := readFixture(t, "dex-examples.yaml")
	res, err := Import(data, Options{Namespace: "dex"})
	g.Expect(err).NotTo(HaveOccurred())
	clients, connectors, secrets := res.Counts()
	g.Expect([]int{clients, connectors, secrets}).To(Equal([]int{3, 4, 5}))

	app := entry(t, res, "example-app")
	g.Expect(app.Client.Name).To(Equal("example-app"))
	g.Expect(app.Client.Namespace).To(Equal("dex"))
	g.Expect(app.Client.Spec.ProviderRef).To(Equal(dexv1.ObjectRef{Name: "dex"}))
	g.Expect(app.Client.Spec.RedirectURIs).To(Equal([]string{"http://127.0.0.1:5555/callback"}))
	g.Expect(app.Client.Spec.SecretRef).To(Equal(&dexv1.SecretKeyRef{Name: "example-app-dex-import", Key: "clientSecret"}))
	g.Expect(app.Secret.StringData).To(Equal(map[string]string{"clientSecret": "ZXhhbXBsZS1hcHAtc2VjcmV0"}))

	cli := entry(t, res, "example-cli")
	g.Expect(cli.Client.Spec.Public).To(BeTrue())
	g.Expect(cli.Secret).To(BeNil())
	g.Expect(cli.Client.Spec.SecretRef).To(BeNil())
	g.Expect(cli.Client.Spec.LoopbackRedirect).To(BeNil(), "one port is no run")
	g.Expect(cli.Client.Spec.RedirectURIs).To(Equal([]string{"http://localhost:8000/callback", "https://cli.example.com/done"}))

	priv := entry(t, res, "Private.Client_2")
	g.Expect(priv.Client.Name).To(Equal("private-client-2"))
	g.Expect(priv.Client.Spec.ClientID).To(Equal("Private.Client_2"), "ids are kept")
	g.Expect(priv.Client.Spec.TrustedPeers).To(Equal([]string{"example-app", "example-cli"}))
	g.Expect(priv.Client.Spec.LogoURL).To(Equal("https://example.com/logo.png"))
	g.Expect(priv.Secret.StringData).To(Equal(map[string]string{"clientSecret": ""}), "secretEnv unresolved: left empty")

	gh := entry(t, res, "github")
	g.Expect(gh.Connector.Spec.Type).To(Equal(dexv1.ConnectorType("github")))
	g.Expect(gh.Connector.Spec.Secrets).To(Equal([]dexv1.ConnectorSecret{
		{Path: "clientID", SecretRef: dexv1.SecretKeyRef{Name: "github-dex-import", Key: "clientID"}},
		{Path: "clientSecret", SecretRef: dexv1.SecretKeyRef{Name: "github-dex-import", Key: "clientSecret"}},
	}))
	g.Expect(configOf(t, gh.Connector)).NotTo(HaveKey("clientSecret"))
	g.Expect(configOf(t, gh.Connector)).To(HaveKeyWithValue("orgs", ConsistOf(HaveKeyWithValue("name", "my-organization"))))

	ldap := entry(t, res, "ldap")
	g.Expect(ldap.Secret.StringData).To(Equal(map[string]string{"bindPW": "admin-password"}))
	cfg := configOf(t, ldap.Connector)
	g.Expect(cfg).NotTo(HaveKey("bindPW"))
	g.Expect(cfg).To(HaveKeyWithValue("insecureSkipVerify", false), "YAML 1.1 `no` is false, as Dex reads it")

	google := entry(t, res, "google")
	g.Expect(google.Connector.Spec.Secrets).To(HaveLen(1))
	g.Expect(configOf(t, google.Connector)).To(HaveKeyWithValue("clientID", "my-client-id.apps.googleusercontent.com"))

	// Warnings name the fields and lines, never the values.
	var warnings []string
	for _, w := range res.Warnings {
		warnings = append(warnings, w.String())
	}
	all := strings.Join(warnings, "\n")
	g.Expect(all).To(ContainSubstring("line 17: staticClients[0].secret: the client secret moved to Secret example-app-dex-import"))
	g.Expect(all).To(ContainSubstring("line 26: staticClients[2].secretEnv: Dex reads the client secret from $PRIVATE_CLIENT_SECRET"))
	g.Expect(all).To(ContainSubstring("line 56: connectors[2].config.bindPW: the secret moved to Secret ldap-dex-import, key bindPW"))
	g.Expect(all).To(ContainSubstring("line 78: connectors[3].config.clientSecret: Dex fills this value from $GOOGLE_CLIENT_SECRET"))
	for _, secret := range []string{"ZXhhbXBsZS1hcHAtc2VjcmV0", "admin-password"} {
		g.Expect(all).NotTo(ContainSubstring(secret))
		g.Expect(res.Steps("dex.yaml", Options{})).NotTo(ContainSubstring(secret))
	}

	// The manifests: deterministic, every document an object with apiVersion and kind.
	out, err := res.Manifests()
	g.Expect(err).NotTo(HaveOccurred())
	again, _ := Import(data, Options{Namespace: "dex"})
	out2, err := again.Manifests()
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(string(out2)).To(Equal(string(out)))
	docs := strings.Split(strings.TrimPrefix(string(out), "---\n"), "\n---\n")
	g.Expect(docs).To(HaveLen(12))
	for _, d := range docs {
		var m map[string]any
		g.Expect(yaml.Unmarshal([]byte(d), &m)).To(Succeed())
		g.Expect(m).To(HaveKey("apiVersion"))
		g.Expect(m).To(HaveKey("kind"))
		g.Expect(m).NotTo(HaveKey("status"))
	}
	g.Expect(docs[0]).To(ContainSubstring("kind: Secret"), "a Secret comes before the object that reads it")
}

// TestImportSharedDex imports the registry teams' shared-Dex config: the eleven tofu login
// redirects become loopbackRedirect {ports: [10000, 10010], path: /login}.
func TestImportSharedDex(t *testing.T) {
	g := NewWithT(t)
	res, err := Import(readFixture(t, "shared-dex.yaml"), Options{Namespace: "platform", Provider: dexv1.ObjectRef{Namespace: "dex", Name: "shared"}})
	g.Expect(err).NotTo(HaveOccurred())
	a := entry(t, res, "team-a-tofu")
	g.Expect(a.Client.Spec.Public).To(BeTrue())
	g.Expect(a.Client.Spec.LoopbackRedirect).To(Equal(&dexv1.LoopbackRedirect{Ports: []int32{10000, 10010}, Path: "/login"}))
	g.Expect(a.Client.Spec.RedirectURIs).To(BeEmpty())
	g.Expect(a.Client.Spec.ProviderRef).To(Equal(dexv1.ObjectRef{Namespace: "dex", Name: "shared"}))
	b := entry(t, res, "team-b-tofu")
	g.Expect(b.Client.Spec.LoopbackRedirect).To(Equal(&dexv1.LoopbackRedirect{Ports: []int32{10000, 10010}, Path: "/login"}))
	g.Expect(b.Client.Spec.RedirectURIs).To(Equal([]string{"https://registry.team-b.example.com/oidc/callback"}))
	portal := entry(t, res, "team-a-portal")
	g.Expect(portal.Client.Spec.TrustedPeers).To(Equal([]string{"team-a-tofu"}))
	g.Expect(portal.Client.Spec.SecretRef.Name).To(Equal("team-a-portal-dex-import"))
}

func TestFoldLoopback(t *testing.T) {
	ports := func(path string, from, to int) []string {
		var out []string
		for p := from; p <= to; p++ {
			out = append(out, fmt.Sprintf("http://localhost:%d%s", p, path))
		}
		return out
	}
	cat := func(lists ...[]string) []string {
		var out []string
		for _, l := range lists {
			out = append(out, l...)
		}
		return out
	}
	for _, tc := range []struct {
		name string
		uris []string
		want *dexv1.LoopbackRedirect
		kept []string
	}{
		{"tofu login", ports("/login", 10000, 10010), &dexv1.LoopbackRedirect{Ports: []int32{10000, 10010}, Path: "/login"}, nil},
		{"order does not matter", []string{"http://localhost:10001/login", "https://a.example.com/cb", "http://localhost:10000/login"},
			&dexv1.LoopbackRedirect{Ports: []int32{10000, 10001}, Path: "/login"}, []string{"https://a.example.com/cb"}},
		{"one port is no run", ports("/login", 8000, 8000), nil, ports("/login", 8000, 8000)},
		{"a gap: the longer run", cat(ports("/cb", 1, 2), ports("/cb", 4, 8)), &dexv1.LoopbackRedirect{Ports: []int32{4, 8}, Path: "/cb"}, ports("/cb", 1, 2)},
		{"a tie: the first in the list", cat(ports("/b", 20, 21), ports("/a", 10, 11)), &dexv1.LoopbackRedirect{Ports: []int32{20, 21}, Path: "/b"}, ports("/a", 10, 11)},
		{"different paths do not join", []string{"http://localhost:1/a", "http://localhost:2/b"}, nil, []string{"http://localhost:1/a", "http://localhost:2/b"}},
		{"127.0.0.1 is not folded", []string{"http://127.0.0.1:1/cb", "http://127.0.0.1:2/cb"}, nil, []string{"http://127.0.0.1:1/cb", "http://127.0.0.1:2/cb"}},
		{"at most 100 ports", ports("/login", 1000, 1149), &dexv1.LoopbackRedirect{Ports: []int32{1000, 1099}, Path: "/login"}, ports("/login", 1100, 1149)},
		{"leading zeros are not the expansion", []string{"http://localhost:01/cb", "http://localhost:2/cb"}, nil, []string{"http://localhost:01/cb", "http://localhost:2/cb"}},
		{"a query is not a path", []string{"http://localhost:1/cb?x=1", "http://localhost:2/cb?x=1"}, nil, []string{"http://localhost:1/cb?x=1", "http://localhost:2/cb?x=1"}},
		{"no path", []string{"http://localhost:1", "http://localhost:2"}, nil, []string{"http://localhost:1", "http://localhost:2"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			got, kept := foldLoopback(tc.uris)
			g.Expect(got).To(Equal(tc.want))
			var keptURIs []string
			for _, i := range kept {
				keptURIs = append(keptURIs, tc.uris[i])
			}
			g.Expect(keptURIs).To(Equal(tc.kept))
		})
	}
}

// TestImportErrors: bad input is an error naming the line and the field, and nothing is printed.
func TestImportErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   string
		opts Options
		want []string // each "line N: field: ..." prefix or substring
	}{
		{"not YAML", "staticClients:\n\t- id: a\n", Options{}, []string{"line 2: the file is not valid YAML: found character that cannot start any token"}},
		{"empty", "", Options{}, []string{"line 1: the file is empty"}},
		{"not a mapping", "- a\n- b\n", Options{}, []string{"line 1: a Dex config must be a mapping"}},
		{"two documents", "staticClients: []\n---\nconnectors: []\n", Options{}, []string{"line 2: the file holds more than one YAML document"}},
		{"staticClients not a list", "issuer: x\nstaticClients:\n  id: a\n", Options{}, []string{"line 3: staticClients: must be a list"}},
		{"a client not a mapping", "staticClients:\n- just-an-id\n", Options{}, []string{"line 2: staticClients[0]: must be a mapping"}},
		{"a client without id", "staticClients:\n- name: A\n  public: true\n- id: b\n  name: B\n  public: true\n- name: C\n  secret: s\n", Options{},
			[]string{"line 2: staticClients[0].id: Required", "line 7: staticClients[2].id: Required"}},
		{"id and idEnv", "staticClients:\n- id: a\n  idEnv: A_ID\n  public: true\n", Options{}, []string{"line 3: staticClients[0].idEnv: id and idEnv are exclusive"}},
		{"idEnv without --expand-env", "staticClients:\n- idEnv: A_ID\n  public: true\n", Options{}, []string{"line 2: staticClients[0].idEnv: Dex reads this client id from $A_ID; write it as id, or run the import with --expand-env"}},
		{"a confidential client without secret", "staticClients:\n- id: a\n  name: A\n", Options{}, []string{"line 2: staticClients[0].secret: Required: a confidential client needs a secret"}},
		{"an id Dexterity cannot hold", "staticClients:\n- id: 'a b'\n  public: true\n", Options{}, []string{`line 2: staticClients[0].id: "a b" cannot be a DexStaticClient spec.clientId`}},
		{"public not a bool", "staticClients:\n- id: a\n  public: maybe\n", Options{}, []string{`line 3: staticClients[0].public: must be true or false, not "maybe"`}},
		{"redirectURIs not a list", "staticClients:\n- id: a\n  public: true\n  redirectURIs: https://a.example.com/cb\n", Options{}, []string{"line 4: staticClients[0].redirectURIs: must be a list of strings"}},
		{"a redirect URI Dexterity refuses", "staticClients:\n- id: a\n  public: true\n  redirectURIs:\n  - https://a.example.com/cb\n  - com.example.app:/oauth\n", Options{},
			[]string{"line 6: staticClients[0].redirectURIs[1]: must be an absolute URL"}},
		{"plain http off loopback", "staticClients:\n- id: a\n  public: true\n  redirectURIs: [http://app.example.com/cb]\n", Options{}, []string{"line 4: staticClients[0].redirectURIs[0]:"}},
		{"the key given twice", "staticClients:\n- id: a\n  public: true\n  ID: b\n", Options{}, []string{"line 4: staticClients[0].ID: id is given twice"}},
		{"a connector without id and type", "connectors:\n- name: X\n", Options{}, []string{"line 2: connectors[0].id: Required", "line 2: connectors[0].type: Required"}},
		{"an unknown connector type", "connectors:\n- id: fb\n  type: facebook\n", Options{}, []string{`line 3: connectors[0].type: unknown connector type "facebook"`}},
		{"the local connector", "connectors:\n- id: local\n  type: mockPassword\n", Options{}, []string{"line 2: connectors[0].id: the id 'local' is Dex's password database"}},
		{"config not a mapping", "connectors:\n- id: gh\n  type: github\n  config: [a]\n", Options{}, []string{"line 4: connectors[0].config: must be a mapping"}},
		{"a config field Dex does not know", "connectors:\n- id: gh\n  type: github\n  config:\n    clientID: xyz\n    clientSecret: xyz\n    redirectURI: https://dex.example.com/callback\n    orgz: [a]\n", Options{},
			[]string{"line 8: connectors[0].config.orgz:"}},
		{"a secret that is a number", "connectors:\n- id: l\n  type: ldap\n  config:\n    host: l:636\n    bindPW: 1234\n", Options{}, []string{"line 6: connectors[0].config.bindPW: a secret must be a string, not a int; quote it"}},
		{"a $VAR in a list", "connectors:\n- id: gh\n  type: github\n  config:\n    clientID: x\n    orgs:\n    - name: $ORG\n    teamNameField: slug\n", Options{},
			[]string{"line 7: connectors[0].config.orgs[0].name: Dex fills this value from $ORG at start; inside a list, spec.secrets cannot inject it"}},
		{"helm values without config", "image:\n  tag: v2\n", Options{HelmValues: true}, []string{"line 1: config: Required: Dex's Helm chart takes the Dex config under `config`"}},
		{"billion laughs", billionLaughs(), Options{}, []string{"too many YAML nodes"}},
		{"an alias that contains itself, in a connector config", "connectors: [{id: a, type: github, config: &x {a: *x}}]\n", Options{}, []string{"line 1: the file is not a YAML document Dex would load: anchor 'x' value contains itself"}},
		{"an alias that contains itself, in a list", "connectors: [{id: a, type: github, config: {orgs: &x [*x]}}]\n", Options{}, []string{"contains itself"}},
		{"idEnv empty in the environment", "staticClients:\n- idEnv: DEXTERITY_TEST_EMPTY_ID\n  public: true\n", Options{LookupEnv: func(string) (string, bool) { return "", true }}, []string{"line 2: staticClients[0].idEnv: $DEXTERITY_TEST_EMPTY_ID is empty in this environment"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			res, err := Import([]byte(tc.in), tc.opts)
			g.Expect(res).To(BeNil())
			var errs Errors
			g.Expect(errors.As(err, &errs)).To(BeTrue(), "error %v", err)
			for _, w := range tc.want {
				g.Expect(err.Error()).To(ContainSubstring(w))
			}
			g.Expect(errs).To(HaveLen(len(tc.want)), "%v", err)
		})
	}
}

// TestImportExpandEnv resolves what Dex reads from its environment, as Dex does: $VAR in strings
// of mappings and of lists directly inside mappings, idEnv, secretEnv.
func TestImportExpandEnv(t *testing.T) {
	g := NewWithT(t)
	in := `staticClients:
- idEnv: APP_ID
  name: App
  secretEnv: APP_SECRET
  redirectURIs: [https://app.example.com/cb]
connectors:
- id: gh
  type: github
  config:
    clientID: ${GH_ID}
    clientSecret: pre-$GH_SECRET
    redirectURI: $DEX_URL/callback
    orgs:
    - name: $ORG
      teams: [$TEAM]
    teamNameField: slug
`
	vars := map[string]string{"APP_ID": "app", "APP_SECRET": "s3cret", "GH_ID": "id", "GH_SECRET": "gh", "DEX_URL": "https://dex.example.com", "ORG": "acme", "TEAM": "red"}
	res, err := Import([]byte(in), Options{LookupEnv: env(vars)})
	g.Expect(err).NotTo(HaveOccurred())
	app := entry(t, res, "app")
	g.Expect(app.Secret.StringData).To(Equal(map[string]string{"clientSecret": "s3cret"}))
	gh := entry(t, res, "gh")
	g.Expect(gh.Secret.StringData).To(Equal(map[string]string{"clientID": "id", "clientSecret": "pre-gh", "redirectURI": "https://dex.example.com/callback"}))
	g.Expect(configOf(t, gh.Connector)).To(HaveKeyWithValue("orgs", ConsistOf(And(HaveKeyWithValue("name", "acme"), HaveKeyWithValue("teams", ConsistOf("red"))))))
	g.Expect(configOf(t, gh.Connector)).NotTo(HaveKey("redirectURI"))
	for _, w := range res.Warnings {
		for _, v := range vars {
			if len(v) > 3 {
				g.Expect(w.Message).NotTo(ContainSubstring(v))
			}
		}
	}

	// With DEX_EXPAND_ENV=false a $ is a $: nothing moves but the secret fields.
	res, err = Import([]byte(in), Options{LookupEnv: env(vars), LiteralDollars: true})
	g.Expect(err).NotTo(HaveOccurred())
	gh = entry(t, res, "gh")
	g.Expect(gh.Secret.StringData).To(Equal(map[string]string{"clientSecret": "pre-$GH_SECRET"}))
	g.Expect(configOf(t, gh.Connector)).To(HaveKeyWithValue("clientID", "${GH_ID}"))
}

func TestImportHelmValues(t *testing.T) {
	g := NewWithT(t)
	in := `replicaCount: 1
envVars:
- name: GH_SECRET
  valueFrom: {secretKeyRef: {name: dex-github, key: secret}}
config:
  issuer: https://dex.example.com
  staticClients:
  - id: tofu
    name: tofu
    public: true
    redirectURIs: [http://localhost:10000/login, http://localhost:10001/login]
`
	res, err := Import([]byte(in), Options{HelmValues: true})
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(entry(t, res, "tofu").Client.Spec.LoopbackRedirect.Ports).To(Equal([]int32{10000, 10001}))

	_, err = Import([]byte(in), Options{})
	g.Expect(err).NotTo(HaveOccurred(), "without --helm-values it is a config without clients")
}

func TestNames(t *testing.T) {
	g := NewWithT(t)
	var n names
	long := strings.Repeat("a", 70)
	g.Expect([]string{
		n.take("example-app", "client"),
		n.take("Example_App", "client"),
		n.take("example.app", "client"),
		n.take("::", "client"),
		n.take(long, "client"),
		n.take(long, "client"),
		n.take("-x-", "client"),
	}).To(Equal([]string{"example-app", "example-app-2", "example-app-3", "client", strings.Repeat("a", 63), strings.Repeat("a", 61) + "-2", "x"}))
}

// TestImportWarnsAndDedupes: fields Dex ignores and repeated entries are said, not silently lost.
func TestImportWarnsAndDedupes(t *testing.T) {
	g := NewWithT(t)
	in := `staticClients:
- id: a
  public: true
  color: blue
  redirectURIs: [https://a.example.com/cb, https://a.example.com/cb]
  trustedPeers: [b, b]
`
	res, err := Import([]byte(in), Options{})
	g.Expect(err).NotTo(HaveOccurred())
	a := entry(t, res, "a")
	g.Expect(a.Client.Spec.RedirectURIs).To(Equal([]string{"https://a.example.com/cb"}))
	g.Expect(a.Client.Spec.TrustedPeers).To(Equal([]string{"b"}))
	var all []string
	for _, w := range res.Warnings {
		all = append(all, w.String())
	}
	g.Expect(all).To(ContainElements(
		"line 4: staticClients[0].color: not a field of a Dex static client (Dex ignores it); not imported",
		"line 5: staticClients[0].redirectURIs[1]: listed twice; imported once",
		"line 6: staticClients[0].trustedPeers[1]: listed twice; imported once",
	))
}

// billionLaughs is a small file whose aliases expand to 10^7 nodes.
func billionLaughs() string {
	var b strings.Builder
	b.WriteString("a: &a [x, x, x, x, x, x, x, x, x, x]\n")
	prev := "a"
	for _, name := range []string{"b", "c", "d", "e", "f", "g"} {
		fmt.Fprintf(&b, "%s: &%s [%s]\n", name, name, strings.TrimSuffix(strings.Repeat("*"+prev+", ", 10), ", "))
		prev = name
	}
	b.WriteString("connectors:\n- id: x\n  type: github\n  config:\n    orgs: *g\n")
	return b.String()
}
