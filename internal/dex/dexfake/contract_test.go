package dexfake_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	api "github.com/dexidp/dex/api/v2"
	. "github.com/onsi/gomega"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"dexterity.dev/dexterity/internal/dex"
	"dexterity.dev/dexterity/internal/dex/dexfake"
	"dexterity.dev/dexterity/test/harness"
)

// The contract: one table of behaviours, run against the real Dex (bin/dex, memory storage,
// through dex.NewClient as the controllers see it) and against the fake. Every step's outcome
// must be the one the table says, for both. Each run of a case prefixes its ids ("{p}"), so
// cases share one Dex without seeing each other.

var (
	// crudOn and crudOff are the real Dex with and without DEX_API_CONNECTORS_CRUD=true.
	crudOn, crudOff *realDex
	// contractRun numbers runs of TestContract (-count), so ids never repeat in one Dex.
	contractRun int
)

func TestMain(m *testing.M) {
	os.Exit(runMain(m))
}

func runMain(m *testing.M) int {
	dir, err := os.MkdirTemp("", "dexfake-contract-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer func() { _ = os.RemoveAll(dir) }()
	if crudOn, err = startRealDex(harness.DexOptions{Dir: dir + "/crud-on"}); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer crudOn.close()
	if crudOff, err = startRealDex(harness.DexOptions{Dir: dir + "/crud-off", DisableConnectorsCRUD: true}); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer crudOff.close()
	code := m.Run()
	if code != 0 {
		for _, r := range []*realDex{crudOn, crudOff} {
			fmt.Fprintf(os.Stderr, "--- Dex log (%s) ---\n%s\n", r.d.LogPath(), tail(r.d.Log()))
		}
	}
	return code
}

func tail(s string) string {
	if len(s) > 8192 {
		return "..." + s[len(s)-8192:]
	}
	return s
}

// target is one Dex under test: the client and the two ways its Dex can go away.
type target interface {
	client() dex.Client
	// outage cuts (true) or restores (false) the network to Dex; Dex keeps running.
	outage(t *testing.T, on bool)
	// restart restarts Dex (on memory storage), also after a crash.
	restart(t *testing.T)
}

// realDex is a bin/dex subprocess reached through a TCP proxy (to cut the network).
type realDex struct {
	d     *harness.Dex
	proxy *harness.TCPProxy
	conn  *grpc.ClientConn
	c     dex.Client
}

func startRealDex(opts harness.DexOptions) (*realDex, error) {
	d, err := harness.StartDex(opts)
	if err != nil {
		return nil, err
	}
	proxy, err := harness.StartTCPProxy(d.GRPCAddress())
	if err != nil {
		_ = d.Stop()
		return nil, err
	}
	r := &realDex{d: d, proxy: proxy}
	if err := r.connect(); err != nil {
		r.close()
		return nil, err
	}
	return r, nil
}

// connect replaces the gRPC connection, so that the next call does not wait out the backoff of
// one that failed while Dex was away.
func (r *realDex) connect() error {
	if r.conn != nil {
		_ = r.conn.Close()
	}
	conn, err := grpc.NewClient(r.proxy.Addr(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return err
	}
	r.conn, r.c = conn, dex.NewClient("contract-real", api.NewDexClient(conn))
	return nil
}

func (r *realDex) close() {
	if r.conn != nil {
		_ = r.conn.Close()
	}
	_ = r.proxy.Close()
	_ = r.d.Stop()
}

func (r *realDex) client() dex.Client { return r.c }

func (r *realDex) outage(t *testing.T, on bool) {
	if on {
		r.proxy.Cut(time.Hour)
		return
	}
	r.proxy.Cut(0)
	if err := r.connect(); err != nil {
		t.Fatal(err)
	}
}

func (r *realDex) restart(t *testing.T) {
	if err := r.d.Restart(); err != nil {
		t.Fatal(err)
	}
	if err := r.connect(); err != nil {
		t.Fatal(err)
	}
}

// fakeDex is the fake configured like test/harness's Dex.
type fakeDex struct{ f *dexfake.Dex }

func newFakeDex(crudDisabled bool) *fakeDex {
	return &fakeDex{f: dexfake.New(dexfake.Options{
		Provider:              "contract-fake",
		DisableConnectorsCRUD: crudDisabled,
		StaticClients: []*api.Client{{
			Id:           harness.HarnessClientID,
			Secret:       harness.HarnessClientSecret,
			Name:         "Harness Client",
			RedirectUris: []string{harness.HarnessRedirectURI},
		}},
		StaticConnectors: []*api.Connector{dexfake.LocalConnector()},
	})}
}

func (f *fakeDex) client() dex.Client           { return f.f }
func (f *fakeDex) outage(_ *testing.T, on bool) { f.f.SetUnavailable(on) }
func (f *fakeDex) restart(_ *testing.T)         { f.f.Reset() }

// action is one call (or a control step); it returns the outcome. p is the case's id prefix.
type action struct {
	desc string
	run  func(ctx context.Context, t *testing.T, tg target, p string) string
}

type step struct {
	act  action
	want string
}

func sub(s, p string) string   { return strings.ReplaceAll(s, "{p}", p) }
func unsub(s, p string) string { return strings.ReplaceAll(s, p, "{p}") }

// outcome names what an error means to the controllers (the dex.Is* helpers) and, unless it is
// an outage (whose text depends on how the connection failed), whether it came as a response
// flag or as which gRPC status.
func outcome(err error) string {
	kind := "error"
	switch {
	case err == nil:
		return "ok"
	case dex.IsUnavailable(err):
		return "unavailable"
	case dex.IsNotFound(err):
		kind = "not_found"
	case dex.IsAlreadyExists(err):
		kind = "already_exists"
	case dex.IsConnectorsCRUDDisabled(err):
		kind = "crud_disabled"
	}
	var de *dex.Error
	if !errors.As(err, &de) {
		return kind + " (not a *dex.Error: " + err.Error() + ")"
	}
	if de.Err == nil {
		return kind + " (flag)"
	}
	st := status.Convert(de.Err)
	return fmt.Sprintf("%s [%s: %s]", kind, st.Code(), st.Message())
}

// generated matches a secret Dex made up: two storage.NewID()s.
var generated = regexp.MustCompile(`^([a-z][a-z2-7]{24}){2}$`)

func showClient(c *api.Client, p string) string {
	secret := c.GetSecret()
	if generated.MatchString(secret) {
		secret = "<generated>"
	}
	return unsub(fmt.Sprintf("id=%s name=%q secret=%q redirects=%v peers=%v public=%t logo=%q",
		c.GetId(), c.GetName(), secret, c.GetRedirectUris(), c.GetTrustedPeers(), c.GetPublic(), c.GetLogoUrl()), p)
}

func version() action {
	return action{"GetVersion", func(ctx context.Context, _ *testing.T, tg target, _ string) string {
		v, err := tg.client().GetVersion(ctx)
		if err != nil {
			return outcome(err)
		}
		return fmt.Sprintf("ok server=%s api=%d", v.GetServer(), v.GetApi())
	}}
}

func createClient(c *api.Client) action {
	return action{"CreateClient " + c.GetId(), func(ctx context.Context, _ *testing.T, tg target, p string) string {
		var in *api.Client
		if c != nil {
			in = &api.Client{Id: sub(c.Id, p), Secret: c.Secret, RedirectUris: c.RedirectUris, TrustedPeers: c.TrustedPeers, Public: c.Public, Name: c.Name, LogoUrl: c.LogoUrl}
		}
		return outcome(tg.client().CreateClient(ctx, in))
	}}
}

func getClient(id string) action {
	return action{"GetClient " + id, func(ctx context.Context, _ *testing.T, tg target, p string) string {
		c, err := tg.client().GetClient(ctx, sub(id, p))
		if err != nil {
			return outcome(err)
		}
		return "ok " + showClient(c, p)
	}}
}

func updateClient(req *api.UpdateClientReq) action {
	return action{"UpdateClient " + req.GetId(), func(ctx context.Context, _ *testing.T, tg target, p string) string {
		in := &api.UpdateClientReq{Id: sub(req.Id, p), RedirectUris: req.RedirectUris, TrustedPeers: req.TrustedPeers, Name: req.Name, LogoUrl: req.LogoUrl}
		return outcome(tg.client().UpdateClient(ctx, in))
	}}
}

func deleteClient(id string) action {
	return action{"DeleteClient " + id, func(ctx context.Context, _ *testing.T, tg target, p string) string {
		return outcome(tg.client().DeleteClient(ctx, sub(id, p)))
	}}
}

// listConnectors shows the static "local" connector and this case's, sorted (the order of
// Dex's answer is unspecified).
func listConnectors() action {
	return action{"ListConnectors", func(ctx context.Context, _ *testing.T, tg target, p string) string {
		all, err := tg.client().ListConnectors(ctx)
		if err != nil {
			return outcome(err)
		}
		var shown []string
		for _, c := range all {
			if strings.HasPrefix(c.GetId(), p) || c.GetId() == "local" {
				shown = append(shown, unsub(fmt.Sprintf("%s/%s/%s/%s", c.GetId(), c.GetType(), c.GetName(), c.GetConfig()), p))
			}
		}
		sort.Strings(shown)
		return "ok [" + strings.Join(shown, " ") + "]"
	}}
}

func createConnector(c *api.Connector) action {
	return action{"CreateConnector " + c.GetId(), func(ctx context.Context, _ *testing.T, tg target, p string) string {
		var in *api.Connector
		if c != nil {
			in = &api.Connector{Id: sub(c.Id, p), Type: c.Type, Name: c.Name, Config: c.Config}
		}
		return outcome(tg.client().CreateConnector(ctx, in))
	}}
}

func updateConnector(req *api.UpdateConnectorReq) action {
	return action{"UpdateConnector " + req.GetId(), func(ctx context.Context, _ *testing.T, tg target, p string) string {
		in := &api.UpdateConnectorReq{Id: sub(req.Id, p), NewType: req.NewType, NewName: req.NewName, NewConfig: req.NewConfig}
		return outcome(tg.client().UpdateConnector(ctx, in))
	}}
}

func deleteConnector(id string) action {
	return action{"DeleteConnector " + id, func(ctx context.Context, _ *testing.T, tg target, p string) string {
		return outcome(tg.client().DeleteConnector(ctx, sub(id, p)))
	}}
}

// everyMethod calls each method of dex.Client once (with ids of this case) and shows the outcomes.
func everyMethod() action {
	return action{"every method", func(ctx context.Context, _ *testing.T, tg target, p string) string {
		c := tg.client()
		_, e1 := c.GetVersion(ctx)
		_, e2 := c.GetClient(ctx, p+"a")
		e3 := c.CreateClient(ctx, &api.Client{Id: p + "new", Secret: "s", Name: "N"})
		e4 := c.UpdateClient(ctx, &api.UpdateClientReq{Id: p + "a", Name: "N2"})
		e5 := c.DeleteClient(ctx, p+"a")
		_, e6 := c.ListConnectors(ctx)
		e7 := c.CreateConnector(ctx, &api.Connector{Id: p + "new", Type: "oidc", Name: "N", Config: []byte(`{}`)})
		e8 := c.UpdateConnector(ctx, &api.UpdateConnectorReq{Id: p + "c", NewConfig: []byte(`{}`)})
		e9 := c.DeleteConnector(ctx, p+"c")
		var out []string
		for i, e := range []error{e1, e2, e3, e4, e5, e6, e7, e8, e9} {
			out = append(out, fmt.Sprintf("%d:%s", i+1, outcome(e)))
		}
		return strings.Join(out, " ")
	}}
}

func outage(on bool) action {
	return action{fmt.Sprintf("outage %t", on), func(_ context.Context, t *testing.T, tg target, _ string) string {
		tg.outage(t, on)
		return "done"
	}}
}

func restart() action {
	return action{"restart Dex", func(_ context.Context, t *testing.T, tg target, _ string) string {
		tg.restart(t)
		return "done"
	}}
}

const (
	crudDisabled   = `crud_disabled [Unknown: api_connectors_crud feature flag is not enabled]`
	localConnector = `local/local/Email/`
	staticClient   = `ok id=harness-client name="Harness Client" secret="harness-secret" redirects=[http://127.0.0.1:5555/callback] peers=[] public=false logo=""`
)

var (
	clientA = &api.Client{Id: "{p}a", Secret: "secret-a", Name: "A", RedirectUris: []string{"https://a.example/cb"}, TrustedPeers: []string{"peer-a"}, LogoUrl: "https://a.example/logo.png"}
	shownA  = `ok id={p}a name="A" secret="secret-a" redirects=[https://a.example/cb] peers=[peer-a] public=false logo="https://a.example/logo.png"`
	connC   = &api.Connector{Id: "{p}c", Type: "oidc", Name: "C", Config: []byte(`{"issuer":"https://idp.example"}`)}
	shownC  = `{p}c/oidc/C/{"issuer":"https://idp.example"}`
)

func contractCases() []struct {
	name    string
	crudOff bool
	steps   []step
} {
	return []struct {
		name    string
		crudOff bool
		steps   []step
	}{
		{name: "GetVersion", steps: []step{
			{version(), "ok server=DEV api=3"},
		}},
		{name: "create then get", steps: []step{
			{createClient(clientA), "ok"},
			{getClient("{p}a"), shownA},
		}},
		{name: "duplicate create is a flag and changes nothing", steps: []step{
			{createClient(clientA), "ok"},
			{createClient(&api.Client{Id: "{p}a", Secret: "other", Name: "Other"}), "already_exists (flag)"},
			{getClient("{p}a"), shownA},
		}},
		{name: "confidential client without secret gets a generated one", steps: []step{
			{createClient(&api.Client{Id: "{p}g", Name: "G"}), "ok"},
			{getClient("{p}g"), `ok id={p}g name="G" secret="<generated>" redirects=[] peers=[] public=false logo=""`},
		}},
		{name: "public client without secret keeps none", steps: []step{
			{createClient(&api.Client{Id: "{p}pub", Name: "P", Public: true}), "ok"},
			{getClient("{p}pub"), `ok id={p}pub name="P" secret="" redirects=[] peers=[] public=true logo=""`},
		}},
		{name: "create with an empty id gets a generated id", steps: []step{
			{createClient(&api.Client{Name: "anonymous", Secret: "s"}), "ok"},
		}},
		{name: "create without a client", steps: []step{
			{createClient(nil), "error [Unknown: no client supplied]"},
		}},
		{name: "create over a static client", steps: []step{
			{createClient(&api.Client{Id: harness.HarnessClientID, Secret: "s", Name: "N"}), "error [Unknown: create client: static clients: read-only cannot create client]"},
			{getClient(harness.HarnessClientID), staticClient},
		}},
		{name: "get missing is Unknown not found", steps: []step{
			{getClient("{p}missing"), "not_found [Unknown: not found]"},
			{getClient(""), "not_found [Unknown: not found]"},
		}},
		{name: "update changes redirects, peers, name and logo but never the secret or public", steps: []step{
			{createClient(clientA), "ok"},
			{updateClient(&api.UpdateClientReq{Id: "{p}a", RedirectUris: []string{"https://b.example/cb", "https://c.example/cb"}, TrustedPeers: []string{"peer-b"}, Name: "B", LogoUrl: "https://b.example/logo.png"}), "ok"},
			{getClient("{p}a"), `ok id={p}a name="B" secret="secret-a" redirects=[https://b.example/cb https://c.example/cb] peers=[peer-b] public=false logo="https://b.example/logo.png"`},
		}},
		{name: "update with empty lists and strings changes nothing", steps: []step{
			{createClient(clientA), "ok"},
			{updateClient(&api.UpdateClientReq{Id: "{p}a", RedirectUris: []string{}, TrustedPeers: []string{}}), "ok"},
			{updateClient(&api.UpdateClientReq{Id: "{p}a"}), "ok"},
			{getClient("{p}a"), shownA},
		}},
		{name: "update missing, without id, static", steps: []step{
			{updateClient(&api.UpdateClientReq{Id: "{p}missing", Name: "N"}), "not_found (flag)"},
			{updateClient(&api.UpdateClientReq{Name: "N"}), "error [Unknown: update client: no client ID supplied]"},
			{updateClient(&api.UpdateClientReq{Id: harness.HarnessClientID, Name: "N"}), "error [Unknown: update client: static clients: read-only cannot update client]"},
			{getClient(harness.HarnessClientID), staticClient},
		}},
		{name: "delete then get, delete again", steps: []step{
			{createClient(clientA), "ok"},
			{deleteClient("{p}a"), "ok"},
			{getClient("{p}a"), "not_found [Unknown: not found]"},
			{deleteClient("{p}a"), "not_found (flag)"},
		}},
		{name: "delete without id, static", steps: []step{
			{deleteClient(""), "not_found (flag)"},
			{deleteClient(harness.HarnessClientID), "error [Unknown: delete client: static clients: read-only cannot delete client]"},
			{getClient(harness.HarnessClientID), staticClient},
		}},
		{name: "connectors: only the static local one at first", steps: []step{
			{listConnectors(), "ok [" + localConnector + "]"},
		}},
		{name: "connector create, list, duplicate", steps: []step{
			{createConnector(connC), "ok"},
			{listConnectors(), "ok [" + localConnector + " " + shownC + "]"},
			{createConnector(&api.Connector{Id: "{p}c", Type: "github", Name: "Other", Config: []byte(`{}`)}), "already_exists (flag)"},
			{listConnectors(), "ok [" + localConnector + " " + shownC + "]"},
		}},
		{name: "connector create needs id, type, name and JSON config; the type is not checked", steps: []step{
			{createConnector(&api.Connector{Type: "oidc", Name: "N", Config: []byte(`{}`)}), "error [Unknown: no id supplied]"},
			{createConnector(&api.Connector{Id: "{p}x", Name: "N", Config: []byte(`{}`)}), "error [Unknown: no type supplied]"},
			{createConnector(&api.Connector{Id: "{p}x", Type: "oidc", Config: []byte(`{}`)}), "error [Unknown: no name supplied]"},
			{createConnector(&api.Connector{Id: "{p}x", Type: "oidc", Name: "N"}), "error [Unknown: no config supplied]"},
			{createConnector(&api.Connector{Id: "{p}x", Type: "oidc", Name: "N", Config: []byte(`{"issuer":`)}), "error [Unknown: invalid config supplied]"},
			{createConnector(&api.Connector{Id: "{p}x", Type: "no-such-type", Name: "N", Config: []byte(`{}`)}), "ok"},
			{listConnectors(), "ok [" + localConnector + " {p}x/no-such-type/N/{}]"},
		}},
		{name: "connector create over the static one", steps: []step{
			{createConnector(&api.Connector{Id: "local", Type: "oidc", Name: "N", Config: []byte(`{}`)}), "error [Unknown: create connector: static connectors: read-only cannot create connector]"},
		}},
		{name: "connector update with the full config", steps: []step{
			{createConnector(connC), "ok"},
			{updateConnector(&api.UpdateConnectorReq{Id: "{p}c", NewType: "github", NewName: "C2", NewConfig: []byte(`{"clientID":"x"}`)}), "ok"},
			{listConnectors(), "ok [" + localConnector + ` {p}c/github/C2/{"clientID":"x"}]`},
		}},
		{name: "connector update needs new_config; empty type and name are kept", steps: []step{
			{createConnector(connC), "ok"},
			{updateConnector(&api.UpdateConnectorReq{Id: "{p}c", NewName: "C2"}), "error [Unknown: invalid config supplied]"},
			{updateConnector(&api.UpdateConnectorReq{Id: "{p}c", NewType: "github", NewName: "C2"}), "error [Unknown: invalid config supplied]"},
			{listConnectors(), "ok [" + localConnector + " " + shownC + "]"},
			{updateConnector(&api.UpdateConnectorReq{Id: "{p}c", NewConfig: []byte(`{"issuer":"https://other.example"}`)}), "ok"},
			{listConnectors(), "ok [" + localConnector + ` {p}c/oidc/C/{"issuer":"https://other.example"}]`},
		}},
		{name: "connector update: nothing, no id, bad JSON, missing, static", steps: []step{
			{createConnector(connC), "ok"},
			{updateConnector(&api.UpdateConnectorReq{Id: "{p}c"}), "error [Unknown: nothing to update]"},
			{updateConnector(&api.UpdateConnectorReq{NewConfig: []byte(`{}`)}), "error [Unknown: no email supplied]"},
			{updateConnector(&api.UpdateConnectorReq{Id: "{p}c", NewConfig: []byte(`{"issuer":`)}), "error [Unknown: invalid config supplied]"},
			{updateConnector(&api.UpdateConnectorReq{Id: "{p}missing", NewConfig: []byte(`{}`)}), "not_found (flag)"},
			{updateConnector(&api.UpdateConnectorReq{Id: "{p}missing", NewName: "N"}), "error [Unknown: invalid config supplied]"},
			{updateConnector(&api.UpdateConnectorReq{Id: "local", NewConfig: []byte(`{}`)}), "error [Unknown: update connector: static connectors: read-only cannot update connector]"},
			{listConnectors(), "ok [" + localConnector + " " + shownC + "]"},
		}},
		{name: "connector delete, again, without id, static", steps: []step{
			{createConnector(connC), "ok"},
			{deleteConnector("{p}c"), "ok"},
			{listConnectors(), "ok [" + localConnector + "]"},
			{deleteConnector("{p}c"), "not_found (flag)"},
			{deleteConnector(""), "error [Unknown: no id supplied]"},
			{deleteConnector("local"), "error [Unknown: delete connector: static connectors: read-only cannot delete connector]"},
			{listConnectors(), "ok [" + localConnector + "]"},
		}},
		{name: "connectors CRUD disabled: every connector RPC fails, clients work", crudOff: true, steps: []step{
			{listConnectors(), crudDisabled},
			{createConnector(connC), crudDisabled},
			{createConnector(nil), crudDisabled}, // the flag is checked before the connector is read
			{updateConnector(&api.UpdateConnectorReq{Id: "{p}c", NewConfig: []byte(`{}`)}), crudDisabled},
			{updateConnector(&api.UpdateConnectorReq{}), crudDisabled},
			{deleteConnector("{p}c"), crudDisabled},
			{version(), "ok server=DEV api=3"},
			{createClient(clientA), "ok"},
			{getClient("{p}a"), shownA},
		}},
		{name: "outage: every call is unavailable, nothing is lost", steps: []step{
			{createClient(clientA), "ok"},
			{createConnector(connC), "ok"},
			{outage(true), "done"},
			{everyMethod(), "1:unavailable 2:unavailable 3:unavailable 4:unavailable 5:unavailable 6:unavailable 7:unavailable 8:unavailable 9:unavailable"},
			{outage(false), "done"},
			{getClient("{p}a"), shownA},
			{listConnectors(), "ok [" + localConnector + " " + shownC + "]"},
		}},
		{name: "restart on memory storage: everything but the static objects is gone", steps: []step{
			{createClient(clientA), "ok"},
			{createConnector(connC), "ok"},
			{restart(), "done"},
			{getClient("{p}a"), "not_found [Unknown: not found]"},
			{listConnectors(), "ok [" + localConnector + "]"},
			{getClient(harness.HarnessClientID), staticClient},
		}},
		{name: "CreateConnector without a connector crashes Dex", steps: []step{
			{createClient(clientA), "ok"},
			{createConnector(nil), "unavailable"},
			{version(), "unavailable"},
			{restart(), "done"},
			{version(), "ok server=DEV api=3"},
			{getClient("{p}a"), "not_found [Unknown: not found]"},
		}},
	}
}

func TestContract(t *testing.T) {
	contractRun++
	fakeOn, fakeOff := newFakeDex(false), newFakeDex(true)
	for i, tc := range contractCases() {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			p := fmt.Sprintf("r%d-t%d-", contractRun, i)
			var real, fake target = crudOn, fakeOn
			if tc.crudOff {
				real, fake = crudOff, fakeOff
			}
			want := make([]string, len(tc.steps))
			for j, s := range tc.steps {
				want[j] = s.act.desc + " => " + s.want
			}
			run := func(tg target) []string {
				ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				defer cancel()
				out := make([]string, len(tc.steps))
				for j, s := range tc.steps {
					out[j] = s.act.desc + " => " + s.act.run(ctx, t, tg, p)
				}
				return out
			}
			gotReal := run(real)
			gotFake := run(fake)
			g.Expect(gotReal).To(Equal(want), "the real Dex")
			g.Expect(gotFake).To(Equal(gotReal), "the fake, compared with the real Dex")
		})
	}
}
