// Package dex is the one place that talks to Dex's gRPC API: connections keyed by OIDCProvider,
// call metrics, and the mapping of Dex's error semantics to typed errors.
package dex

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	api "github.com/dexidp/dex/api/v2"
	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
)

// Config says how to reach one Dex.
type Config struct {
	// Address is host:port of Dex's gRPC API.
	Address string
	// Insecure selects plaintext gRPC.
	Insecure bool
	// CACert is PEM of the CA(s) that sign Dex's server certificate; empty means system roots.
	CACert []byte
	// ClientCert and ClientKey are PEM of the client certificate for mutual TLS (both or neither).
	ClientCert, ClientKey []byte
	// ServerName overrides the TLS server name (default: the host of Address).
	ServerName string
}

func (c Config) fingerprint() [32]byte {
	h := sha256.New()
	for _, b := range [][]byte{[]byte(c.Address), {boolByte(c.Insecure)}, c.CACert, c.ClientCert, c.ClientKey, []byte(c.ServerName)} {
		fmt.Fprintf(h, "%d:", len(b))
		h.Write(b)
	}
	var out [32]byte
	copy(out[:], h.Sum(nil))
	return out
}

func boolByte(b bool) byte {
	if b {
		return 1
	}
	return 0
}

func (c Config) transportCredentials() (credentials.TransportCredentials, error) {
	if c.Insecure {
		return insecure.NewCredentials(), nil
	}
	tlsCfg := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: c.ServerName}
	if len(c.CACert) > 0 {
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(c.CACert) {
			return nil, errors.New("ca.crt holds no PEM certificate")
		}
		tlsCfg.RootCAs = pool
	}
	if len(c.ClientCert) > 0 || len(c.ClientKey) > 0 {
		cert, err := tls.X509KeyPair(c.ClientCert, c.ClientKey)
		if err != nil {
			return nil, fmt.Errorf("failed to load client certificate (tls.crt/tls.key): %w", err)
		}
		tlsCfg.Certificates = []tls.Certificate{cert}
	}
	return &tlsCredentials{TransportCredentials: credentials.NewTLS(tlsCfg), cfg: tlsCfg}, nil
}

// tlsCredentials are gRPC's TLS credentials, except that a server which selects no ALPN protocol
// is accepted. Dex releases built with grpc-go before 1.67 (v2.39 to v2.41) select none on a
// gRPC port with a client CA (mutual TLS), and grpc-go clients refuse such servers since 1.67
// ("missing selected ALPN property"). The handshake is otherwise the same TLS handshake: the
// server's certificate is verified against the CA and the server name, the client certificate is
// sent, and only h2 is offered.
type tlsCredentials struct {
	credentials.TransportCredentials
	cfg *tls.Config
}

// ClientHandshake runs the TLS handshake on raw.
func (c *tlsCredentials) ClientHandshake(ctx context.Context, authority string, raw net.Conn) (net.Conn, credentials.AuthInfo, error) {
	cfg := c.cfg.Clone()
	if cfg.ServerName == "" {
		host, _, err := net.SplitHostPort(authority)
		if err != nil {
			host = authority
		}
		cfg.ServerName = host
	}
	cfg.NextProtos = []string{"h2"}
	conn := tls.Client(raw, cfg)
	if err := conn.HandshakeContext(ctx); err != nil {
		_ = conn.Close()
		return nil, nil, err
	}
	return conn, credentials.TLSInfo{State: conn.ConnectionState(), CommonAuthInfo: credentials.CommonAuthInfo{SecurityLevel: credentials.PrivacyAndIntegrity}}, nil
}

// Clone implements credentials.TransportCredentials.
func (c *tlsCredentials) Clone() credentials.TransportCredentials {
	return &tlsCredentials{TransportCredentials: c.TransportCredentials.Clone(), cfg: c.cfg.Clone()}
}

// OverrideServerName implements credentials.TransportCredentials (deprecated there, kept for it).
func (c *tlsCredentials) OverrideServerName(name string) error {
	c.cfg.ServerName = name
	return nil
}

// Client is the narrow interface controllers use. Errors are *Error values classified with the
// Is* helpers of this package.
type Client interface {
	GetVersion(ctx context.Context) (*api.VersionResp, error)
	GetClient(ctx context.Context, id string) (*api.Client, error)
	CreateClient(ctx context.Context, c *api.Client) error
	UpdateClient(ctx context.Context, req *api.UpdateClientReq) error
	DeleteClient(ctx context.Context, id string) error
	ListConnectors(ctx context.Context) ([]*api.Connector, error)
	CreateConnector(ctx context.Context, c *api.Connector) error
	UpdateConnector(ctx context.Context, req *api.UpdateConnectorReq) error
	DeleteConnector(ctx context.Context, id string) error
}

// Connections is what the controllers need of a Pool: the client of a provider (a
// "namespace/name" key) for a configuration. The controllers take this interface, so that unit
// tests can give them an in-memory Dex (internal/dex/dexfake).
type Connections interface {
	Get(provider string, cfg Config) (Client, error)
	Existing(provider string) (Client, bool)
	Forget(provider string)
}

var _ Connections = (*Pool)(nil)

// Pool holds one gRPC connection per OIDCProvider. A provider whose Config changes gets a new
// connection; the old one is closed.
type Pool struct {
	// CallTimeout bounds each RPC (default 10s).
	CallTimeout time.Duration

	mu    sync.Mutex
	conns map[string]*pooled
}

type pooled struct {
	fp   [32]byte
	conn *grpc.ClientConn
	cl   *client
}

// NewPool returns an empty pool.
func NewPool() *Pool { return &Pool{conns: map[string]*pooled{}, CallTimeout: 10 * time.Second} }

// Get returns the client of provider (a "namespace/name" key), connecting with cfg. Connecting
// is lazy: Get fails only on bad configuration, never because Dex is down.
func (p *Pool) Get(provider string, cfg Config) (Client, error) {
	fp := cfg.fingerprint()
	p.mu.Lock()
	defer p.mu.Unlock()
	if e, ok := p.conns[provider]; ok {
		if e.fp == fp {
			return e.cl, nil
		}
		_ = e.conn.Close()
		delete(p.conns, provider)
	}
	creds, err := cfg.transportCredentials()
	if err != nil {
		return nil, err
	}
	conn, err := grpc.NewClient(cfg.Address,
		grpc.WithTransportCredentials(creds),
		grpc.WithConnectParams(grpc.ConnectParams{
			Backoff:           backoff.Config{BaseDelay: 200 * time.Millisecond, Multiplier: 1.6, Jitter: 0.2, MaxDelay: 5 * time.Second},
			MinConnectTimeout: 5 * time.Second,
		}),
	)
	if err != nil {
		return nil, fmt.Errorf("failed to create gRPC client for %s: %w", cfg.Address, err)
	}
	e := &pooled{fp: fp, conn: conn, cl: &client{provider: provider, api: api.NewDexClient(conn), timeout: p.CallTimeout}}
	p.conns[provider] = e
	return e.cl, nil
}

// Existing returns provider's current client, whatever configuration it was made with: deletions
// use it when the configuration can no longer be read (the TLS Secret was deleted, e.g. together
// with the namespace), since its credentials are the last good ones.
func (p *Pool) Existing(provider string) (Client, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if e, ok := p.conns[provider]; ok {
		return e.cl, true
	}
	return nil, false
}

// Forget closes and drops the connection of provider (when the OIDCProvider is deleted).
func (p *Pool) Forget(provider string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if e, ok := p.conns[provider]; ok {
		_ = e.conn.Close()
		delete(p.conns, provider)
	}
}

// Close closes every connection.
func (p *Pool) Close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for k, e := range p.conns {
		_ = e.conn.Close()
		delete(p.conns, k)
	}
}

// NewClient wraps an existing Dex API client (e.g. one a test built) with the same error
// mapping and metrics as pooled clients.
func NewClient(provider string, c api.DexClient) Client {
	return &client{provider: provider, api: c, timeout: 10 * time.Second}
}

type client struct {
	provider string
	api      api.DexClient
	timeout  time.Duration
}

// call runs one RPC with the timeout, classifies its error and records metrics.
func (c *client) call(ctx context.Context, method string, fn func(ctx context.Context) (error, error)) error {
	start := time.Now()
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	flagErr, err := fn(ctx)
	var out error
	switch {
	case err != nil:
		out = &Error{Method: method, Kind: classify(err), Err: err}
	case flagErr != nil:
		out = &Error{Method: method, Kind: flagErr}
	}
	observe(c.provider, method, start, out)
	return out
}

func (c *client) GetVersion(ctx context.Context) (*api.VersionResp, error) {
	var resp *api.VersionResp
	err := c.call(ctx, "GetVersion", func(ctx context.Context) (error, error) {
		var err error
		resp, err = c.api.GetVersion(ctx, &api.VersionReq{})
		return nil, err
	})
	return resp, err
}

func (c *client) GetClient(ctx context.Context, id string) (*api.Client, error) {
	var out *api.Client
	err := c.call(ctx, "GetClient", func(ctx context.Context) (error, error) {
		resp, err := c.api.GetClient(ctx, &api.GetClientReq{Id: id})
		if err != nil {
			return nil, err
		}
		out = resp.GetClient()
		if out == nil {
			return ErrNotFound, nil
		}
		return nil, nil
	})
	return out, err
}

func (c *client) CreateClient(ctx context.Context, cl *api.Client) error {
	return c.call(ctx, "CreateClient", func(ctx context.Context) (error, error) {
		resp, err := c.api.CreateClient(ctx, &api.CreateClientReq{Client: cl})
		if err != nil {
			return nil, err
		}
		if resp.GetAlreadyExists() {
			return ErrAlreadyExists, nil
		}
		return nil, nil
	})
}

func (c *client) UpdateClient(ctx context.Context, req *api.UpdateClientReq) error {
	return c.call(ctx, "UpdateClient", func(ctx context.Context) (error, error) {
		resp, err := c.api.UpdateClient(ctx, req)
		if err != nil {
			return nil, err
		}
		if resp.GetNotFound() {
			return ErrNotFound, nil
		}
		return nil, nil
	})
}

func (c *client) DeleteClient(ctx context.Context, id string) error {
	return c.call(ctx, "DeleteClient", func(ctx context.Context) (error, error) {
		resp, err := c.api.DeleteClient(ctx, &api.DeleteClientReq{Id: id})
		if err != nil {
			return nil, err
		}
		if resp.GetNotFound() {
			return ErrNotFound, nil
		}
		return nil, nil
	})
}

func (c *client) ListConnectors(ctx context.Context) ([]*api.Connector, error) {
	var out []*api.Connector
	err := c.call(ctx, "ListConnectors", func(ctx context.Context) (error, error) {
		resp, err := c.api.ListConnectors(ctx, &api.ListConnectorReq{})
		if err != nil {
			return nil, err
		}
		out = resp.GetConnectors()
		return nil, nil
	})
	return out, err
}

func (c *client) CreateConnector(ctx context.Context, conn *api.Connector) error {
	return c.call(ctx, "CreateConnector", func(ctx context.Context) (error, error) {
		resp, err := c.api.CreateConnector(ctx, &api.CreateConnectorReq{Connector: conn})
		if err != nil {
			return nil, err
		}
		if resp.GetAlreadyExists() {
			return ErrAlreadyExists, nil
		}
		return nil, nil
	})
}

// UpdateConnector changes a connector. Dex fails unless the full config is sent, so callers
// always pass NewConfig, NewType and NewName.
func (c *client) UpdateConnector(ctx context.Context, req *api.UpdateConnectorReq) error {
	return c.call(ctx, "UpdateConnector", func(ctx context.Context) (error, error) {
		resp, err := c.api.UpdateConnector(ctx, req)
		if err != nil {
			return nil, err
		}
		if resp.GetNotFound() {
			return ErrNotFound, nil
		}
		return nil, nil
	})
}

func (c *client) DeleteConnector(ctx context.Context, id string) error {
	return c.call(ctx, "DeleteConnector", func(ctx context.Context) (error, error) {
		resp, err := c.api.DeleteConnector(ctx, &api.DeleteConnectorReq{Id: id})
		if err != nil {
			return nil, err
		}
		if resp.GetNotFound() {
			return ErrNotFound, nil
		}
		return nil, nil
	})
}
