// Package dexfake is an in-memory fake of Dex's gRPC API, behind the dex.Client interface, for
// tests that need a Dex but not a Dex process.
//
// It mimics Dex v2.45.1 (github.com/dexidp/dex 11d2eeb52b42, server/api.go and storage/static.go)
// on memory storage, quirk for quirk, and produces its answers as gRPC responses and status
// errors that go through the same wrapper as real connections (dex.NewClient), so dex.IsNotFound,
// dex.IsAlreadyExists, dex.IsConnectorsCRUDDisabled and dex.IsUnavailable classify them exactly
// as they classify the real Dex's (and the fake's calls are counted in dexterity_dex_calls_total,
// see harness.DexCalls). contract_test.go runs one table of behaviours against both the real Dex
// and this fake and requires the same outcome. The quirks:
//
//   - Missing and duplicate objects are flags in the response (not_found, already_exists), which
//     the wrapper turns into dex.ErrNotFound and dex.ErrAlreadyExists, except GetClient of a
//     missing id (also the empty id): gRPC Unknown "not found".
//   - CreateClient with an empty id gets a generated one, and a confidential (non-public) client
//     without a secret gets a generated secret (the wrapper does not return either).
//   - UpdateClient cannot change the secret or the public flag (its request has no such fields),
//     and an empty list or string means "no change": nothing can be cleared in place.
//     DeleteClient of the empty id answers not_found.
//   - Connector RPCs (List included) fail with "api_connectors_crud feature flag is not enabled"
//     when Dex runs without DEX_API_CONNECTORS_CRUD=true (Options.DisableConnectorsCRUD).
//   - CreateConnector needs an id, type, name and a non-empty JSON config; the type is not checked.
//   - UpdateConnector needs new_config in every request: empty new_type or new_name mean "keep
//     it", but an empty new_config fails ("invalid config supplied", since json.Valid of nothing
//     is false), before the connector is even looked up; all three empty fail with "nothing to
//     update"; an empty id fails with "no email supplied" (sic).
//   - Static clients and connectors (Dex's config file; LocalConnector with enablePasswordDB) are
//     read by GetClient and ListConnectors but every write to their ids fails with a generic
//     Unknown error ("... static clients: read-only cannot ..."), not already_exists.
//   - CreateConnector with a nil connector crashes Dex (nil pointer dereference; gRPC has no
//     recovery there): the call fails as unavailable, so does every call after it, and Dex comes
//     back empty only when restarted. The fake does the same until Reset.
//   - ListConnectors returns the dynamic connectors, then the static ones. The real order of the
//     dynamic ones is unspecified (a map); the fake sorts them by id.
//
// The fake keeps dynamic clients and connectors in memory and copies every message in and out,
// as the wire would. It is safe for concurrent use.
package dexfake

import (
	"context"
	"crypto/rand"
	"encoding/base32"
	"encoding/json"
	"slices"
	"sort"
	"strings"
	"sync"

	api "github.com/dexidp/dex/api/v2"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"dexterity.dev/dexterity/internal/dex"
)

const (
	// DefaultProvider labels the fake's calls in dexterity_dex_calls_total when Options.Provider
	// is empty.
	DefaultProvider = "dexfake"
	// DefaultVersion is GetVersion's server string when Options.Version is empty: what a Dex
	// built from source without a release tag reports (hack/tools.sh builds every release with
	// its tag, so the contract table sets Options.Version to the release).
	DefaultVersion = "DEV"
	// APIVersion is the gRPC API version of Dex v2.45.1.
	APIVersion = 3
)

// Method names, as in dex.Client, Calls and dexterity_dex_calls_total.
const (
	MethodGetVersion      = "GetVersion"
	MethodGetClient       = "GetClient"
	MethodCreateClient    = "CreateClient"
	MethodUpdateClient    = "UpdateClient"
	MethodDeleteClient    = "DeleteClient"
	MethodListConnectors  = "ListConnectors"
	MethodCreateConnector = "CreateConnector"
	MethodUpdateConnector = "UpdateConnector"
	MethodDeleteConnector = "DeleteConnector"
)

// Messages of the real Dex, word for word.
const (
	msgNotFound     = "not found" // storage.ErrNotFound, returned as is by GetClient
	msgCRUDDisabled = "api_connectors_crud feature flag is not enabled"
	// What a gRPC client sees when Dex is not there, and when it crashes mid-call.
	msgDown    = `connection error: desc = "transport: Error while dialing: dial tcp: connect: connection refused" (dexfake: Dex is down)`
	msgCrashed = "error reading from server: EOF (dexfake: this request crashes Dex v2.45.1)"
)

// LocalConnector is the static connector Dex adds with enablePasswordDB (as test/harness
// configures it): id and type "local", name "Email", no config.
func LocalConnector() *api.Connector {
	return &api.Connector{Id: "local", Type: "local", Name: "Email"}
}

// Options configure a fake Dex.
type Options struct {
	// Provider labels the calls in dexterity_dex_calls_total, like the "namespace/name" key of a
	// pooled client (default DefaultProvider).
	Provider string
	// Version is GetVersion's server string (default DefaultVersion).
	Version string
	// API is GetVersion's API version (default APIVersion).
	API int32
	// DisableConnectorsCRUD: Dex runs without DEX_API_CONNECTORS_CRUD=true; every connector RPC
	// fails with an error dex.IsConnectorsCRUDDisabled accepts.
	DisableConnectorsCRUD bool
	// NoConnectorAPI: a Dex release before v2.41, which has no connector RPCs at all; every
	// connector RPC fails with gRPC's Unimplemented (dex.IsUnimplemented).
	NoConnectorAPI bool
	// StaticClients are clients from Dex's config file (staticClients): GetClient returns them,
	// writes to their ids fail. They survive Reset.
	StaticClients []*api.Client
	// StaticConnectors are connectors from Dex's config file, plus LocalConnector with
	// enablePasswordDB: ListConnectors returns them, writes to their ids fail. They survive Reset.
	StaticConnectors []*api.Connector
}

// Dex is an in-memory Dex. Its dex.Client methods behave like a pooled client of the real Dex.
type Dex struct {
	client dex.Client // the real wrapper, around rpc

	mu               sync.Mutex
	version          string
	crudDisabled     bool
	noConnectorAPI   bool
	api              int32
	staticClients    map[string]*api.Client
	staticConnectors []*api.Connector
	clients          map[string]*api.Client
	connectors       map[string]*api.Connector
	unavailable      bool // SetUnavailable: a network outage
	crashed          bool // a request crashed Dex: down until Reset
	calls            map[string]int
}

var _ dex.Client = (*Dex)(nil)

// New returns an empty fake Dex (apart from opts' static clients and connectors).
func New(opts Options) *Dex {
	d := &Dex{
		version:        opts.Version,
		api:            opts.API,
		crudDisabled:   opts.DisableConnectorsCRUD,
		noConnectorAPI: opts.NoConnectorAPI,
		staticClients:  map[string]*api.Client{},
		clients:        map[string]*api.Client{},
		connectors:     map[string]*api.Connector{},
		calls:          map[string]int{},
	}
	if d.api == 0 {
		d.api = APIVersion
	}
	if d.version == "" {
		d.version = DefaultVersion
	}
	for _, c := range opts.StaticClients {
		d.staticClients[c.GetId()] = copyClient(c)
	}
	for _, c := range opts.StaticConnectors {
		d.staticConnectors = append(d.staticConnectors, copyConnector(c))
	}
	provider := opts.Provider
	if provider == "" {
		provider = DefaultProvider
	}
	d.client = dex.NewClient(provider, rpc{d: d})
	return d
}

// SetUnavailable starts (true) or ends (false) an outage: while it lasts every call fails with
// an error dex.IsUnavailable accepts, and nothing is lost (Dex is still running, it cannot be
// reached). It does not bring back a crashed Dex: Reset does.
func (d *Dex) SetUnavailable(down bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.unavailable = down
}

// SetConnectorsCRUD turns the connector RPCs on or off (DEX_API_CONNECTORS_CRUD), keeping what
// is stored (as a restart on persistent storage with the flag changed would).
func (d *Dex) SetConnectorsCRUD(enabled bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.crudDisabled = !enabled
}

// SetConnectorAPI makes this Dex a release with (true) or without (false, before v2.41) the
// connector RPCs.
func (d *Dex) SetConnectorAPI(present bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.noConnectorAPI = !present
}

// Reset is Dex restarted on memory storage: every client and connector created through the API
// is gone (static ones stay, they come from the config file) and a crashed Dex is back. An
// outage (SetUnavailable) and the call counters are left as they are.
func (d *Dex) Reset() {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.wipe()
}

func (d *Dex) wipe() {
	d.clients = map[string]*api.Client{}
	d.connectors = map[string]*api.Connector{}
	d.crashed = false
}

// Calls returns how many times method (a dex.Client method name, e.g. MethodCreateClient) was
// called, whatever the outcome (failures and outages included).
func (d *Dex) Calls(method string) int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.calls[method]
}

// CallCounts returns a copy of every method's call count.
func (d *Dex) CallCounts() map[string]int {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := make(map[string]int, len(d.calls))
	for k, v := range d.calls {
		out[k] = v
	}
	return out
}

// WriteMethods are the Dex RPCs that change state; tests and benchmarks count them.
var WriteMethods = []string{"CreateClient", "UpdateClient", "DeleteClient", "CreateConnector", "UpdateConnector", "DeleteConnector"}

// WriteCalls returns the number of calls of the methods that change state (WriteMethods).
func (d *Dex) WriteCalls() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	n := 0
	for _, m := range WriteMethods {
		n += d.calls[m]
	}
	return n
}

// ResetCalls sets every call counter to zero.
func (d *Dex) ResetCalls() {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.calls = map[string]int{}
}

// Client returns a copy of the client with id as stored (static or not), without a call: for
// assertions, also during an outage.
func (d *Dex) Client(id string) (*api.Client, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	c, ok := d.lookupClient(id)
	if !ok {
		return nil, false
	}
	return copyClient(c), true
}

// Clients returns copies of every client (created ones sorted by id, then static ones), without
// a call.
func (d *Dex) Clients() []*api.Client {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := make([]*api.Client, 0, len(d.clients)+len(d.staticClients))
	for _, id := range sortedKeys(d.clients) {
		out = append(out, copyClient(d.clients[id]))
	}
	for _, id := range sortedKeys(d.staticClients) {
		out = append(out, copyClient(d.staticClients[id]))
	}
	return out
}

// Connectors returns what ListConnectors would (copies), without a call and whatever the
// connectors CRUD flag.
func (d *Dex) Connectors() []*api.Connector {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.listConnectors()
}

func (d *Dex) count(method string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.calls[method]++
}

// dex.Client: each call is counted, then goes through the real wrapper to rpc.

// GetVersion implements dex.Client.
func (d *Dex) GetVersion(ctx context.Context) (*api.VersionResp, error) {
	d.count(MethodGetVersion)
	return d.client.GetVersion(ctx)
}

// GetClient implements dex.Client.
func (d *Dex) GetClient(ctx context.Context, id string) (*api.Client, error) {
	d.count(MethodGetClient)
	return d.client.GetClient(ctx, id)
}

// CreateClient implements dex.Client.
func (d *Dex) CreateClient(ctx context.Context, c *api.Client) error {
	d.count(MethodCreateClient)
	return d.client.CreateClient(ctx, c)
}

// UpdateClient implements dex.Client.
func (d *Dex) UpdateClient(ctx context.Context, req *api.UpdateClientReq) error {
	d.count(MethodUpdateClient)
	return d.client.UpdateClient(ctx, req)
}

// DeleteClient implements dex.Client.
func (d *Dex) DeleteClient(ctx context.Context, id string) error {
	d.count(MethodDeleteClient)
	return d.client.DeleteClient(ctx, id)
}

// ListConnectors implements dex.Client.
func (d *Dex) ListConnectors(ctx context.Context) ([]*api.Connector, error) {
	d.count(MethodListConnectors)
	return d.client.ListConnectors(ctx)
}

// CreateConnector implements dex.Client.
func (d *Dex) CreateConnector(ctx context.Context, c *api.Connector) error {
	d.count(MethodCreateConnector)
	return d.client.CreateConnector(ctx, c)
}

// UpdateConnector implements dex.Client.
func (d *Dex) UpdateConnector(ctx context.Context, req *api.UpdateConnectorReq) error {
	d.count(MethodUpdateConnector)
	return d.client.UpdateConnector(ctx, req)
}

// DeleteConnector implements dex.Client.
func (d *Dex) DeleteConnector(ctx context.Context, id string) error {
	d.count(MethodDeleteConnector)
	return d.client.DeleteConnector(ctx, id)
}

// rpc is the server side: Dex v2.45.1's server/api.go over memory storage wrapped in its static
// clients and connectors, as an api.DexClient. Only the RPCs the wrapper uses are implemented.
type rpc struct {
	api.DexClient // nil; the wrapper calls none of the other RPCs
	d             *Dex
}

// plain is an error returned as is by a Dex handler: gRPC sends it as Unknown with its text.
func plain(msg string) error { return status.Error(codes.Unknown, msg) }

// reachable fails like a gRPC call does when ctx is done or Dex is down. d.mu must be held.
func (d *Dex) reachable(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return status.FromContextError(err).Err()
	}
	if d.unavailable || d.crashed {
		return status.Error(codes.Unavailable, msgDown)
	}
	return nil
}

func (r rpc) GetVersion(ctx context.Context, _ *api.VersionReq, _ ...grpc.CallOption) (*api.VersionResp, error) {
	d := r.d
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := d.reachable(ctx); err != nil {
		return nil, err
	}
	return &api.VersionResp{Server: d.version, Api: d.api}, nil
}

func (r rpc) GetClient(ctx context.Context, in *api.GetClientReq, _ ...grpc.CallOption) (*api.GetClientResp, error) {
	d := r.d
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := d.reachable(ctx); err != nil {
		return nil, err
	}
	c, ok := d.lookupClient(in.GetId())
	if !ok {
		return nil, plain(msgNotFound)
	}
	return &api.GetClientResp{Client: copyClient(c)}, nil
}

func (r rpc) CreateClient(ctx context.Context, in *api.CreateClientReq, _ ...grpc.CallOption) (*api.CreateClientResp, error) {
	d := r.d
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := d.reachable(ctx); err != nil {
		return nil, err
	}
	if in.GetClient() == nil {
		return nil, plain("no client supplied")
	}
	c := copyClient(in.GetClient())
	if c.Id == "" {
		c.Id = newID()
	}
	if c.Secret == "" && !c.Public {
		c.Secret = newID() + newID()
	}
	if _, ok := d.staticClients[c.Id]; ok {
		return nil, plain("create client: static clients: read-only cannot create client")
	}
	if _, ok := d.clients[c.Id]; ok {
		return &api.CreateClientResp{AlreadyExists: true}, nil
	}
	d.clients[c.Id] = c
	return &api.CreateClientResp{Client: copyClient(c)}, nil
}

func (r rpc) UpdateClient(ctx context.Context, in *api.UpdateClientReq, _ ...grpc.CallOption) (*api.UpdateClientResp, error) {
	d := r.d
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := d.reachable(ctx); err != nil {
		return nil, err
	}
	id := in.GetId()
	if id == "" {
		return nil, plain("update client: no client ID supplied")
	}
	if _, ok := d.staticClients[id]; ok {
		return nil, plain("update client: static clients: read-only cannot update client")
	}
	old, ok := d.clients[id]
	if !ok {
		return &api.UpdateClientResp{NotFound: true}, nil
	}
	c := copyClient(old)
	// An empty repeated field does not reach Dex (it arrives as nil): "no change".
	if len(in.GetRedirectUris()) > 0 {
		c.RedirectUris = slices.Clone(in.GetRedirectUris())
	}
	if len(in.GetTrustedPeers()) > 0 {
		c.TrustedPeers = slices.Clone(in.GetTrustedPeers())
	}
	if in.GetName() != "" {
		c.Name = in.GetName()
	}
	if in.GetLogoUrl() != "" {
		c.LogoUrl = in.GetLogoUrl()
	}
	d.clients[id] = c
	return &api.UpdateClientResp{}, nil
}

func (r rpc) DeleteClient(ctx context.Context, in *api.DeleteClientReq, _ ...grpc.CallOption) (*api.DeleteClientResp, error) {
	d := r.d
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := d.reachable(ctx); err != nil {
		return nil, err
	}
	id := in.GetId()
	if _, ok := d.staticClients[id]; ok {
		return nil, plain("delete client: static clients: read-only cannot delete client")
	}
	if _, ok := d.clients[id]; !ok {
		return &api.DeleteClientResp{NotFound: true}, nil
	}
	delete(d.clients, id)
	return &api.DeleteClientResp{}, nil
}

func (r rpc) ListConnectors(ctx context.Context, _ *api.ListConnectorReq, _ ...grpc.CallOption) (*api.ListConnectorResp, error) {
	d := r.d
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := d.connectorRPC(ctx, "ListConnectors"); err != nil {
		return nil, err
	}
	return &api.ListConnectorResp{Connectors: d.listConnectors()}, nil
}

func (r rpc) CreateConnector(ctx context.Context, in *api.CreateConnectorReq, _ ...grpc.CallOption) (*api.CreateConnectorResp, error) {
	d := r.d
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := d.connectorRPC(ctx, "CreateConnector"); err != nil {
		return nil, err
	}
	if in.GetConnector() == nil {
		// Dex dereferences req.Connector and dies; memory storage dies with it.
		d.wipe()
		d.crashed = true
		return nil, status.Error(codes.Unavailable, msgCrashed)
	}
	c := copyConnector(in.GetConnector())
	switch {
	case c.Id == "":
		return nil, plain("no id supplied")
	case c.Type == "":
		return nil, plain("no type supplied")
	case c.Name == "":
		return nil, plain("no name supplied")
	case len(c.Config) == 0:
		return nil, plain("no config supplied")
	case !json.Valid(c.Config):
		return nil, plain("invalid config supplied")
	}
	if d.isStaticConnector(c.Id) {
		return nil, plain("create connector: static connectors: read-only cannot create connector")
	}
	if _, ok := d.connectors[c.Id]; ok {
		return &api.CreateConnectorResp{AlreadyExists: true}, nil
	}
	d.connectors[c.Id] = c
	return &api.CreateConnectorResp{}, nil
}

func (r rpc) UpdateConnector(ctx context.Context, in *api.UpdateConnectorReq, _ ...grpc.CallOption) (*api.UpdateConnectorResp, error) {
	d := r.d
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := d.connectorRPC(ctx, "UpdateConnector"); err != nil {
		return nil, err
	}
	id := in.GetId()
	switch {
	case id == "":
		return nil, plain("no email supplied") // sic
	case len(in.GetNewConfig()) == 0 && in.GetNewName() == "" && in.GetNewType() == "":
		return nil, plain("nothing to update")
	case !json.Valid(in.GetNewConfig()): // also when new_config is empty
		return nil, plain("invalid config supplied")
	}
	if d.isStaticConnector(id) {
		return nil, plain("update connector: static connectors: read-only cannot update connector")
	}
	old, ok := d.connectors[id]
	if !ok {
		return &api.UpdateConnectorResp{NotFound: true}, nil
	}
	c := copyConnector(old)
	if in.GetNewType() != "" {
		c.Type = in.GetNewType()
	}
	if in.GetNewName() != "" {
		c.Name = in.GetNewName()
	}
	c.Config = slices.Clone(in.GetNewConfig()) // never empty here
	d.connectors[id] = c
	return &api.UpdateConnectorResp{}, nil
}

func (r rpc) DeleteConnector(ctx context.Context, in *api.DeleteConnectorReq, _ ...grpc.CallOption) (*api.DeleteConnectorResp, error) {
	d := r.d
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := d.connectorRPC(ctx, "DeleteConnector"); err != nil {
		return nil, err
	}
	id := in.GetId()
	if id == "" {
		return nil, plain("no id supplied")
	}
	if d.isStaticConnector(id) {
		return nil, plain("delete connector: static connectors: read-only cannot delete connector")
	}
	if _, ok := d.connectors[id]; !ok {
		return &api.DeleteConnectorResp{NotFound: true}, nil
	}
	delete(d.connectors, id)
	return &api.DeleteConnectorResp{}, nil
}

// connectorRPC is the start of every connector RPC: reachable, then the feature flag. d.mu must
// be held.
func (d *Dex) connectorRPC(ctx context.Context, method string) error {
	if err := d.reachable(ctx); err != nil {
		return err
	}
	if d.noConnectorAPI {
		// What a release without the RPC answers (its server embeds UnimplementedDexServer).
		return status.Errorf(codes.Unimplemented, "method %s not implemented", method)
	}
	if d.crudDisabled {
		return plain(msgCRUDDisabled)
	}
	return nil
}

// lookupClient finds a client, static ones first (as Dex's static storage does). d.mu must be held.
func (d *Dex) lookupClient(id string) (*api.Client, bool) {
	if c, ok := d.staticClients[id]; ok {
		return c, true
	}
	c, ok := d.clients[id]
	return c, ok
}

func (d *Dex) isStaticConnector(id string) bool {
	for _, c := range d.staticConnectors {
		if c.GetId() == id {
			return true
		}
	}
	return false
}

// listConnectors copies the dynamic connectors (by id) then the static ones. d.mu must be held.
func (d *Dex) listConnectors() []*api.Connector {
	out := make([]*api.Connector, 0, len(d.connectors)+len(d.staticConnectors))
	for _, id := range sortedKeys(d.connectors) {
		out = append(out, copyConnector(d.connectors[id]))
	}
	for _, c := range d.staticConnectors {
		out = append(out, copyConnector(c))
	}
	return out
}

// copyClient keeps the fields Dex stores (all of api.Client in v2.45.1), in fresh memory.
func copyClient(c *api.Client) *api.Client {
	return &api.Client{
		Id:           c.GetId(),
		Secret:       c.GetSecret(),
		RedirectUris: slices.Clone(c.GetRedirectUris()),
		TrustedPeers: slices.Clone(c.GetTrustedPeers()),
		Public:       c.GetPublic(),
		Name:         c.GetName(),
		LogoUrl:      c.GetLogoUrl(),
	}
}

func copyConnector(c *api.Connector) *api.Connector {
	return &api.Connector{Id: c.GetId(), Type: c.GetType(), Name: c.GetName(), Config: slices.Clone(c.GetConfig())}
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// idEncoding is storage.NewID's alphabet.
var idEncoding = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567")

// newID is Dex's storage.NewID: a letter and 15 random bytes in lower-case base32, 25 characters.
func newID() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b) // never fails (crypto/rand panics instead)
	return string(rune(b[0]%26+'a')) + strings.TrimRight(idEncoding.EncodeToString(b[1:]), "=")
}
