// Package contract is the behaviour of Dex's gRPC API as the controllers see it (through
// dex.Client): one table of calls and their outcomes. internal/dex/dexfake checks the in-memory
// fake against the real Dex with it, and test/dexmatrix runs it on every Dex release of
// harness.DexReleases. Each run of a case prefixes its ids ("{p}"), so cases share one Dex
// without seeing each other.
package contract

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"sort"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	api "github.com/dexidp/dex/api/v2"
	"github.com/onsi/gomega"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"dexterity.dev/dexterity/internal/dex"
	"dexterity.dev/dexterity/internal/dex/dexfake"
	"dexterity.dev/dexterity/test/harness"
)

// Target is one Dex under test: the client and the two ways its Dex can go away.
type Target interface {
	Client() dex.Client
	// Outage cuts (true) or restores (false) the network to Dex; Dex keeps running.
	Outage(t *testing.T, on bool)
	// Restart restarts Dex (on memory storage), also after a crash.
	Restart(t *testing.T)
}

// Targets are a Dex with DEX_API_CONNECTORS_CRUD=true and one without.
type Targets struct {
	CRUDOn, CRUDOff Target
}

// Real is a Dex subprocess (harness.StartDex) reached through a TCP proxy (to cut the network).
type Real struct {
	d     *harness.Dex
	proxy *harness.TCPProxy
	conn  *grpc.ClientConn
	c     dex.Client
}

var _ Target = (*Real)(nil)

// StartReal starts Dex with opts (memory storage) behind a proxy.
func StartReal(opts harness.DexOptions) (*Real, error) {
	d, err := harness.StartDex(opts)
	if err != nil {
		return nil, err
	}
	proxy, err := harness.StartTCPProxy(d.GRPCAddress())
	if err != nil {
		_ = d.Stop()
		return nil, err
	}
	r := &Real{d: d, proxy: proxy}
	if err := r.connect(); err != nil {
		r.Close()
		return nil, err
	}
	return r, nil
}

// connect replaces the gRPC connection, so that the next call does not wait out the backoff of
// one that failed while Dex was away.
func (r *Real) connect() error {
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

// Close stops Dex and the proxy.
func (r *Real) Close() {
	if r.conn != nil {
		_ = r.conn.Close()
	}
	_ = r.proxy.Close()
	_ = r.d.Stop()
}

// Dex is the subprocess (for its log).
func (r *Real) Dex() *harness.Dex { return r.d }

// Client is the controllers' client of this Dex.
func (r *Real) Client() dex.Client { return r.c }

// Outage cuts or restores the proxy.
func (r *Real) Outage(t *testing.T, on bool) {
	if on {
		r.proxy.Cut(time.Hour)
		return
	}
	r.proxy.Cut(0)
	if err := r.connect(); err != nil {
		t.Fatal(err)
	}
}

// Restart restarts the subprocess.
func (r *Real) Restart(t *testing.T) {
	if err := r.d.Restart(); err != nil {
		t.Fatal(err)
	}
	if err := r.connect(); err != nil {
		t.Fatal(err)
	}
}

// Fake is the fake configured like test/harness's Dex of a release.
type Fake struct{ f *dexfake.Dex }

var _ Target = (*Fake)(nil)

// NewFake returns the fake of release rel, with or without the connector CRUD flag.
func NewFake(rel harness.DexRelease, crudDisabled bool) *Fake {
	return &Fake{f: dexfake.New(dexfake.Options{
		Provider:              "contract-fake",
		Version:               rel.Version,
		API:                   rel.API,
		DisableConnectorsCRUD: crudDisabled,
		NoConnectorAPI:        !rel.ConnectorAPI,
		StaticClients: []*api.Client{{
			Id:           harness.HarnessClientID,
			Secret:       harness.HarnessClientSecret,
			Name:         "Harness Client",
			RedirectUris: []string{harness.HarnessRedirectURI},
		}},
		StaticConnectors: []*api.Connector{dexfake.LocalConnector()},
	})}
}

// Client is the fake.
func (f *Fake) Client() dex.Client { return f.f }

// Outage makes the fake unavailable.
func (f *Fake) Outage(_ *testing.T, on bool) { f.f.SetUnavailable(on) }

// Restart empties the fake (memory storage).
func (f *Fake) Restart(_ *testing.T) { f.f.Reset() }

// action is one call (or a control step); it returns the outcome. p is the case's id prefix.
// method is the dex.Client method it calls, if it calls one.
type action struct {
	desc   string
	method string
	run    func(ctx context.Context, t *testing.T, tg Target, p string) string
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
	case dex.IsUnimplemented(err):
		kind = "unimplemented"
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
	return action{"GetVersion", "GetVersion", func(ctx context.Context, _ *testing.T, tg Target, _ string) string {
		v, err := tg.Client().GetVersion(ctx)
		if err != nil {
			return outcome(err)
		}
		return fmt.Sprintf("ok server=%s api=%d", v.GetServer(), v.GetApi())
	}}
}

func createClient(c *api.Client) action {
	return action{"CreateClient " + c.GetId(), "CreateClient", func(ctx context.Context, _ *testing.T, tg Target, p string) string {
		var in *api.Client
		if c != nil {
			in = &api.Client{Id: sub(c.Id, p), Secret: c.Secret, RedirectUris: c.RedirectUris, TrustedPeers: c.TrustedPeers, Public: c.Public, Name: c.Name, LogoUrl: c.LogoUrl}
		}
		return outcome(tg.Client().CreateClient(ctx, in))
	}}
}

func getClient(id string) action {
	return action{"GetClient " + id, "GetClient", func(ctx context.Context, _ *testing.T, tg Target, p string) string {
		c, err := tg.Client().GetClient(ctx, sub(id, p))
		if err != nil {
			return outcome(err)
		}
		return "ok " + showClient(c, p)
	}}
}

func updateClient(req *api.UpdateClientReq) action {
	return action{"UpdateClient " + req.GetId(), "UpdateClient", func(ctx context.Context, _ *testing.T, tg Target, p string) string {
		in := &api.UpdateClientReq{Id: sub(req.Id, p), RedirectUris: req.RedirectUris, TrustedPeers: req.TrustedPeers, Name: req.Name, LogoUrl: req.LogoUrl}
		return outcome(tg.Client().UpdateClient(ctx, in))
	}}
}

func deleteClient(id string) action {
	return action{"DeleteClient " + id, "DeleteClient", func(ctx context.Context, _ *testing.T, tg Target, p string) string {
		return outcome(tg.Client().DeleteClient(ctx, sub(id, p)))
	}}
}

// listConnectors shows the static "local" connector and this case's, sorted (the order of
// Dex's answer is unspecified).
func listConnectors() action {
	return action{"ListConnectors", "ListConnectors", func(ctx context.Context, _ *testing.T, tg Target, p string) string {
		all, err := tg.Client().ListConnectors(ctx)
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
	return action{"CreateConnector " + c.GetId(), "CreateConnector", func(ctx context.Context, _ *testing.T, tg Target, p string) string {
		var in *api.Connector
		if c != nil {
			in = &api.Connector{Id: sub(c.Id, p), Type: c.Type, Name: c.Name, Config: c.Config}
		}
		return outcome(tg.Client().CreateConnector(ctx, in))
	}}
}

func updateConnector(req *api.UpdateConnectorReq) action {
	return action{"UpdateConnector " + req.GetId(), "UpdateConnector", func(ctx context.Context, _ *testing.T, tg Target, p string) string {
		in := &api.UpdateConnectorReq{Id: sub(req.Id, p), NewType: req.NewType, NewName: req.NewName, NewConfig: req.NewConfig}
		return outcome(tg.Client().UpdateConnector(ctx, in))
	}}
}

func deleteConnector(id string) action {
	return action{"DeleteConnector " + id, "DeleteConnector", func(ctx context.Context, _ *testing.T, tg Target, p string) string {
		return outcome(tg.Client().DeleteConnector(ctx, sub(id, p)))
	}}
}

// everyMethod calls each method of dex.Client once (with ids of this case) and shows the outcomes.
func everyMethod() action {
	return action{"every method", "", func(ctx context.Context, _ *testing.T, tg Target, p string) string {
		c := tg.Client()
		_, e1 := c.GetVersion(ctx)
		_, e2 := c.GetClient(ctx, p+"a")
		e3 := c.CreateClient(ctx, &api.Client{Id: p + "new", Secret: "s", Name: "N"})
		e4 := c.UpdateClient(ctx, &api.UpdateClientReq{Id: p + "a", Name: "N2"})
		e5 := c.DeleteClient(ctx, p+"a")
		_, e6 := c.ListConnectors(ctx)
		e7 := c.CreateConnector(ctx, &api.Connector{Id: p + "new", Type: typeOIDC, Name: "N", Config: []byte(`{}`)})
		e8 := c.UpdateConnector(ctx, &api.UpdateConnectorReq{Id: p + "c", NewConfig: []byte(`{}`)})
		e9 := c.DeleteConnector(ctx, p+"c")
		errs := []error{e1, e2, e3, e4, e5, e6, e7, e8, e9}
		out := make([]string, 0, len(errs))
		for i, e := range errs {
			out = append(out, fmt.Sprintf("%d:%s", i+1, outcome(e)))
		}
		return strings.Join(out, " ")
	}}
}

func outage(on bool) action {
	return action{fmt.Sprintf("outage %t", on), "", func(_ context.Context, t *testing.T, tg Target, _ string) string {
		tg.Outage(t, on)
		return "done"
	}}
}

func restart() action {
	return action{"restart Dex", "", func(_ context.Context, t *testing.T, tg Target, _ string) string {
		tg.Restart(t)
		return "done"
	}}
}

// connectorMethods are the RPCs that came with v2.41.
var connectorMethods = map[string]bool{"ListConnectors": true, "CreateConnector": true, "UpdateConnector": true, "DeleteConnector": true}

// Unimplemented is the outcome of a connector RPC on a release without the connector API: the
// generated UnimplementedDexServer's answer (api/v2 before v2.41's Dex already has the methods).
func Unimplemented(method string) string {
	return fmt.Sprintf("unimplemented [Unimplemented: method %s not implemented]", method)
}

const (
	// typeOIDC and idC are the connector type and id most cases use.
	typeOIDC       = "oidc"
	idC            = "{p}c"
	crudDisabled   = `crud_disabled [Unknown: api_connectors_crud feature flag is not enabled]`
	localConnector = `local/local/Email/`
	staticClient   = `ok id=harness-client name="Harness Client" secret="harness-secret" redirects=[http://127.0.0.1:5555/callback] peers=[] public=false logo=""`
)

var (
	clientA = &api.Client{Id: "{p}a", Secret: "secret-a", Name: "A", RedirectUris: []string{"https://a.example/cb"}, TrustedPeers: []string{"peer-a"}, LogoUrl: "https://a.example/logo.png"}
	shownA  = `ok id={p}a name="A" secret="secret-a" redirects=[https://a.example/cb] peers=[peer-a] public=false logo="https://a.example/logo.png"`
	connC   = &api.Connector{Id: idC, Type: typeOIDC, Name: "C", Config: []byte(`{"issuer":"https://idp.example"}`)}
	shownC  = `{p}c/oidc/C/{"issuer":"https://idp.example"}`
)

// contractCase is one row of the table. The wants are those of a release with the connector API;
// on one without, every connector RPC's want is Unimplemented(method) (cases marked connectorAPI
// only make sense with it and are skipped there).
type contractCase struct {
	name         string
	crudOff      bool // run on the Dex without DEX_API_CONNECTORS_CRUD=true
	connectorAPI bool // only on releases with the connector API
	steps        []step
}

func cases(rel harness.DexRelease) []contractCase {
	ver := fmt.Sprintf("ok server=%s api=%d", rel.Version, rel.API)
	return []contractCase{
		{name: "GetVersion", steps: []step{
			{version(), ver},
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
			{createConnector(&api.Connector{Id: idC, Type: "github", Name: "Other", Config: []byte(`{}`)}), "already_exists (flag)"},
			{listConnectors(), "ok [" + localConnector + " " + shownC + "]"},
		}},
		{name: "connector create needs id, type, name and JSON config; the type is not checked", steps: []step{
			{createConnector(&api.Connector{Type: typeOIDC, Name: "N", Config: []byte(`{}`)}), "error [Unknown: no id supplied]"},
			{createConnector(&api.Connector{Id: "{p}x", Name: "N", Config: []byte(`{}`)}), "error [Unknown: no type supplied]"},
			{createConnector(&api.Connector{Id: "{p}x", Type: typeOIDC, Config: []byte(`{}`)}), "error [Unknown: no name supplied]"},
			{createConnector(&api.Connector{Id: "{p}x", Type: typeOIDC, Name: "N"}), "error [Unknown: no config supplied]"},
			{createConnector(&api.Connector{Id: "{p}x", Type: typeOIDC, Name: "N", Config: []byte(`{"issuer":`)}), "error [Unknown: invalid config supplied]"},
			{createConnector(&api.Connector{Id: "{p}x", Type: "no-such-type", Name: "N", Config: []byte(`{}`)}), "ok"},
			{listConnectors(), "ok [" + localConnector + " {p}x/no-such-type/N/{}]"},
		}},
		{name: "connector create over the static one", steps: []step{
			{createConnector(&api.Connector{Id: "local", Type: typeOIDC, Name: "N", Config: []byte(`{}`)}), "error [Unknown: create connector: static connectors: read-only cannot create connector]"},
		}},
		{name: "connector update with the full config", steps: []step{
			{createConnector(connC), "ok"},
			{updateConnector(&api.UpdateConnectorReq{Id: idC, NewType: "github", NewName: "C2", NewConfig: []byte(`{"clientID":"x"}`)}), "ok"},
			{listConnectors(), "ok [" + localConnector + ` {p}c/github/C2/{"clientID":"x"}]`},
		}},
		{name: "connector update needs new_config; empty type and name are kept", steps: []step{
			{createConnector(connC), "ok"},
			{updateConnector(&api.UpdateConnectorReq{Id: idC, NewName: "C2"}), "error [Unknown: invalid config supplied]"},
			{updateConnector(&api.UpdateConnectorReq{Id: idC, NewType: "github", NewName: "C2"}), "error [Unknown: invalid config supplied]"},
			{listConnectors(), "ok [" + localConnector + " " + shownC + "]"},
			{updateConnector(&api.UpdateConnectorReq{Id: idC, NewConfig: []byte(`{"issuer":"https://other.example"}`)}), "ok"},
			{listConnectors(), "ok [" + localConnector + ` {p}c/oidc/C/{"issuer":"https://other.example"}]`},
		}},
		{name: "connector update: nothing, no id, bad JSON, missing, static", steps: []step{
			{createConnector(connC), "ok"},
			{updateConnector(&api.UpdateConnectorReq{Id: idC}), "error [Unknown: nothing to update]"},
			{updateConnector(&api.UpdateConnectorReq{NewConfig: []byte(`{}`)}), "error [Unknown: no email supplied]"},
			{updateConnector(&api.UpdateConnectorReq{Id: idC, NewConfig: []byte(`{"issuer":`)}), "error [Unknown: invalid config supplied]"},
			{updateConnector(&api.UpdateConnectorReq{Id: "{p}missing", NewConfig: []byte(`{}`)}), "not_found (flag)"},
			{updateConnector(&api.UpdateConnectorReq{Id: "{p}missing", NewName: "N"}), "error [Unknown: invalid config supplied]"},
			{updateConnector(&api.UpdateConnectorReq{Id: "local", NewConfig: []byte(`{}`)}), "error [Unknown: update connector: static connectors: read-only cannot update connector]"},
			{listConnectors(), "ok [" + localConnector + " " + shownC + "]"},
		}},
		{name: "connector delete, again, without id, static", steps: []step{
			{createConnector(connC), "ok"},
			{deleteConnector(idC), "ok"},
			{listConnectors(), "ok [" + localConnector + "]"},
			{deleteConnector(idC), "not_found (flag)"},
			{deleteConnector(""), "error [Unknown: no id supplied]"},
			{deleteConnector("local"), "error [Unknown: delete connector: static connectors: read-only cannot delete connector]"},
			{listConnectors(), "ok [" + localConnector + "]"},
		}},
		{name: "connectors CRUD disabled: every connector RPC fails, clients work", crudOff: true, steps: []step{
			{listConnectors(), crudDisabled},
			{createConnector(connC), crudDisabled},
			{createConnector(nil), crudDisabled}, // the flag is checked before the connector is read
			{updateConnector(&api.UpdateConnectorReq{Id: idC, NewConfig: []byte(`{}`)}), crudDisabled},
			{updateConnector(&api.UpdateConnectorReq{}), crudDisabled},
			{deleteConnector(idC), crudDisabled},
			{version(), ver},
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
		{name: "CreateConnector without a connector crashes Dex", connectorAPI: true, steps: []step{
			{createClient(clientA), "ok"},
			{createConnector(nil), "unavailable"},
			{version(), "unavailable"},
			{restart(), "done"},
			{version(), ver},
			{getClient("{p}a"), "not_found [Unknown: not found]"},
		}},
	}
}

// runs numbers runs of Run (-count, several releases), so ids never repeat in one Dex.
var runs atomic.Int64

// Run runs every case of the table for release rel, each as a subtest: on real (which must
// answer what the table says) and, unless fake is nil, on fake (which must answer what real did).
func Run(t *testing.T, rel harness.DexRelease, real Targets, fake *Targets) {
	run := runs.Add(1)
	for i, tc := range cases(rel) {
		t.Run(tc.name, func(t *testing.T) {
			if tc.connectorAPI && !rel.ConnectorAPI {
				t.Skipf("Dex %s has no connector API", rel.Version)
			}
			g := gomega.NewWithT(t)
			p := fmt.Sprintf("r%d-t%d-", run, i)
			realTarget := real.CRUDOn
			if tc.crudOff {
				realTarget = real.CRUDOff
			}
			want := make([]string, len(tc.steps))
			for j, s := range tc.steps {
				w := s.want
				if !rel.ConnectorAPI && connectorMethods[s.act.method] {
					w = Unimplemented(s.act.method)
				}
				want[j] = s.act.desc + " => " + w
			}
			do := func(tg Target) []string {
				ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				defer cancel()
				out := make([]string, len(tc.steps))
				for j, s := range tc.steps {
					out[j] = s.act.desc + " => " + s.act.run(ctx, t, tg, p)
				}
				return out
			}
			gotReal := do(realTarget)
			var gotFake []string
			if fake != nil {
				fakeTarget := fake.CRUDOn
				if tc.crudOff {
					fakeTarget = fake.CRUDOff
				}
				gotFake = do(fakeTarget)
			}
			g.Expect(gotReal).To(gomega.Equal(want), "the real Dex %s", rel.Version)
			if fake != nil {
				g.Expect(gotFake).To(gomega.Equal(gotReal), "the fake, compared with the real Dex %s", rel.Version)
			}
		})
	}
}
