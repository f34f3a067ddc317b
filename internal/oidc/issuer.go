package oidc

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

// maxResponseBytes bounds the size of discovery documents and JWKS responses.
const maxResponseBytes = 1 << 20

// allowedAlgs are the only JWS algorithms accepted: asymmetric ones, never "none" or HMAC.
var allowedAlgs = []jose.SignatureAlgorithm{
	jose.RS256, jose.RS384, jose.RS512,
	jose.PS256, jose.PS384, jose.PS512,
	jose.ES256, jose.ES384, jose.ES512,
	jose.EdDSA,
}

func isAllowedAlg(alg string) bool {
	for _, a := range allowedAlgs {
		if string(a) == alg {
			return true
		}
	}
	return false
}

// Status is a snapshot of a Issuer's discovery and key state.
type Status struct {
	// DiscoveryReady is true once a discovery document was fetched and accepted; it is
	// kept through later failures, as the last good document is kept.
	DiscoveryReady bool
	// DiscoveryError is the error of the last discovery attempt ("" after a success).
	DiscoveryError string
	// JWKSURI is the JWKS URL in use (after the DiscoveryURL rewrite, if any).
	JWKSURI string
	// AuthorizationEndpoint is the discovered authorization endpoint, as returned.
	AuthorizationEndpoint string
	// TokenEndpoint is the discovered token endpoint, as returned.
	TokenEndpoint string
	// KeysReady is true once at least one usable key was loaded; kept through failures.
	KeysReady bool
	// Keys is the number of usable keys currently cached.
	Keys int
	// LastFetch is the time of the last successful JWKS fetch, updated on every success.
	LastFetch time.Time
	// LastError is the error of the last refresh ("" after a success).
	LastError string
	// Fetches counts JWKS fetch attempts, successful or not.
	Fetches int64
}

// keySnapshot is an immutable set of usable verification keys.
type keySnapshot struct {
	keys  []jose.JSONWebKey
	byKid map[string][]int
}

func newKeySnapshot(keys []jose.JSONWebKey) *keySnapshot {
	s := &keySnapshot{keys: keys, byKid: make(map[string][]int, len(keys))}
	for i, k := range keys {
		s.byKid[k.KeyID] = append(s.byKid[k.KeyID], i)
	}
	return s
}

// Issuer verifies the tokens of one OIDC issuer against its cached JWKS. It is safe for
// concurrent use. Verify never contacts the issuer except for the rate-limited refetch of
// an unknown key id.
type Issuer struct {
	name   string // metrics label: the Cache key, or the issuer URL
	orig   Config // as given, returned by Config
	cfg    Config // with defaults applied
	client *http.Client

	keys    atomic.Pointer[keySnapshot]
	fetches atomic.Int64
	seq     atomic.Uint64 // orders concurrent fetches: only newer results are stored

	mu             sync.Mutex // guards the fields below
	storedSeq      uint64
	discoveryReady bool
	discoveryError string
	jwksURI        string
	authzEndpoint  string
	tokenEndpoint  string
	lastFetch      time.Time
	lastError      string

	kidMu        sync.Mutex // guards the unknown-kid fetch state below
	kidCall      *kidFetch
	lastKidFetch time.Time
}

// kidFetch is an in-flight JWKS fetch triggered by an unknown key id; callers that
// arrive meanwhile wait for done instead of fetching again.
type kidFetch struct {
	done chan struct{}
}

// NewIssuer validates cfg and builds a Issuer and its HTTP client. It does no network
// I/O: call Refresh (or let a Cache do it) to load discovery and keys.
func NewIssuer(cfg Config) (*Issuer, error) {
	return newIssuer(cfg.IssuerURL, cfg)
}

func newIssuer(name string, cfg Config) (*Issuer, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("failed to validate OIDC provider config: %w", err)
	}
	orig := cfg.clone()
	eff := orig.withDefaults()

	transport, ok := http.DefaultTransport.(*http.Transport)
	if !ok {
		return nil, errors.New("failed to build HTTP transport: http.DefaultTransport is not an *http.Transport")
	}
	transport = transport.Clone()
	tlsConfig := &tls.Config{MinVersion: tls.VersionTLS12}
	if len(eff.CABundle) > 0 {
		pool, err := parseCABundle(eff.CABundle)
		if err != nil {
			return nil, fmt.Errorf("failed to parse CA bundle: %w", err)
		}
		tlsConfig.RootCAs = pool
	}
	transport.TLSClientConfig = tlsConfig

	p := &Issuer{
		name: name,
		orig: orig,
		cfg:  eff,
		client: &http.Client{
			Transport: transport,
			Timeout:   eff.HTTPTimeout,
		},
	}
	return p, nil
}

// Config returns the config the Issuer was created with, as given (without defaults).
func (p *Issuer) Config() Config {
	return p.orig.clone()
}

// Status returns a snapshot of the provider's discovery and key state.
func (p *Issuer) Status() Status {
	p.mu.Lock()
	st := Status{
		DiscoveryReady:        p.discoveryReady,
		DiscoveryError:        p.discoveryError,
		JWKSURI:               p.jwksURI,
		AuthorizationEndpoint: p.authzEndpoint,
		TokenEndpoint:         p.tokenEndpoint,
		LastFetch:             p.lastFetch,
		LastError:             p.lastError,
	}
	p.mu.Unlock()
	if s := p.keys.Load(); s != nil {
		st.KeysReady = true
		st.Keys = len(s.keys)
	}
	st.Fetches = p.fetches.Load()
	return st
}

// Refresh fetches the discovery document and then the JWKS. On failure the last good
// discovery data and keys are kept, the error is recorded in Status.LastError, and returned.
func (p *Issuer) Refresh(ctx context.Context) error {
	jwksURI, err := p.discover(ctx)
	if err != nil {
		p.recordError(err)
		return err
	}
	return p.fetchKeys(ctx, jwksURI)
}

// discoveryDocument is the subset of the OIDC discovery document that is used.
type discoveryDocument struct {
	Issuer                string `json:"issuer"`
	JWKSURI               string `json:"jwks_uri"`
	AuthorizationEndpoint string `json:"authorization_endpoint"`
	TokenEndpoint         string `json:"token_endpoint"`
}

// discover fetches and checks the discovery document, stores it, and returns the JWKS URL.
func (p *Issuer) discover(ctx context.Context) (string, error) {
	docURL := p.cfg.discoveryDocumentURL()
	doc, err := p.fetchDiscovery(ctx, docURL)
	if err != nil {
		p.mu.Lock()
		p.discoveryError = err.Error()
		p.mu.Unlock()
		return "", err
	}
	p.mu.Lock()
	p.discoveryReady = true
	p.discoveryError = ""
	p.jwksURI = doc.JWKSURI
	p.authzEndpoint = doc.AuthorizationEndpoint
	p.tokenEndpoint = doc.TokenEndpoint
	p.mu.Unlock()
	return doc.JWKSURI, nil
}

func (p *Issuer) fetchDiscovery(ctx context.Context, docURL string) (*discoveryDocument, error) {
	body, err := p.get(ctx, docURL)
	if err != nil {
		return nil, fmt.Errorf("failed to fetch discovery document from %s: %w", docURL, err)
	}
	var doc discoveryDocument
	if err := json.Unmarshal(body, &doc); err != nil {
		return nil, fmt.Errorf("failed to decode discovery document from %s: %w", docURL, err)
	}
	if doc.Issuer != p.cfg.IssuerURL {
		return nil, fmt.Errorf("failed to validate discovery document from %s: its issuer %q does not match the configured issuer %q", docURL, doc.Issuer, p.cfg.IssuerURL)
	}
	if doc.JWKSURI == "" {
		return nil, fmt.Errorf("failed to validate discovery document from %s: jwks_uri is missing", docURL)
	}
	jwksURI, err := p.cfg.rewriteJWKSURI(doc.JWKSURI)
	if err != nil {
		return nil, fmt.Errorf("failed to validate discovery document from %s: %w", docURL, err)
	}
	if err := validateURL(jwksURI); err != nil {
		return nil, fmt.Errorf("failed to validate discovery document from %s: invalid jwks_uri: %w", docURL, err)
	}
	doc.JWKSURI = jwksURI
	return &doc, nil
}

// fetchKeys fetches the JWKS from jwksURI and, if it holds at least one usable key,
// replaces the cached keys. Failures are recorded and the previous keys kept.
func (p *Issuer) fetchKeys(ctx context.Context, jwksURI string) error {
	seq := p.seq.Add(1)
	p.fetches.Add(1)
	keys, err := p.fetchJWKS(ctx, jwksURI)
	if err != nil {
		jwksFetchesTotal.WithLabelValues(p.name, resultError).Inc()
		p.recordError(err)
		return err
	}
	jwksFetchesTotal.WithLabelValues(p.name, resultOK).Inc()

	p.mu.Lock()
	defer p.mu.Unlock()
	p.lastFetch = time.Now()
	p.lastError = ""
	if seq < p.storedSeq {
		// A fetch that started later has already stored its (newer) keys.
		return nil
	}
	p.storedSeq = seq
	p.keys.Store(newKeySnapshot(keys))
	keysGauge.WithLabelValues(p.name).Set(float64(len(keys)))
	return nil
}

func (p *Issuer) recordError(err error) {
	p.mu.Lock()
	p.lastError = err.Error()
	p.mu.Unlock()
}

func (p *Issuer) fetchJWKS(ctx context.Context, jwksURI string) ([]jose.JSONWebKey, error) {
	body, err := p.get(ctx, jwksURI)
	if err != nil {
		return nil, fmt.Errorf("failed to fetch JWKS from %s: %w", jwksURI, err)
	}
	keys, err := parseJWKS(body)
	if err != nil {
		return nil, fmt.Errorf("failed to parse JWKS from %s: %w", jwksURI, err)
	}
	return keys, nil
}

// parseJWKS returns the usable verification keys of a JWKS document: asymmetric keys
// (RSA, EC, Ed25519) meant for signatures. Keys it cannot parse are skipped; a set with no
// usable key is an error.
func parseJWKS(body []byte) ([]jose.JSONWebKey, error) {
	var doc struct {
		Keys []json.RawMessage `json:"keys"`
	}
	if err := json.Unmarshal(body, &doc); err != nil {
		return nil, fmt.Errorf("failed to decode JSON: %w", err)
	}
	var keys []jose.JSONWebKey
	for _, raw := range doc.Keys {
		var k jose.JSONWebKey
		if err := k.UnmarshalJSON(raw); err != nil {
			continue
		}
		if k.Use != "" && k.Use != "sig" {
			continue
		}
		if !k.IsPublic() {
			if _, symmetric := k.Key.([]byte); symmetric {
				continue
			}
			k = k.Public()
		}
		switch k.Key.(type) {
		case *rsa.PublicKey, *ecdsa.PublicKey, ed25519.PublicKey:
		default:
			continue
		}
		if !k.Valid() {
			continue
		}
		keys = append(keys, k)
	}
	if len(keys) == 0 {
		return nil, fmt.Errorf("no usable signing keys among %d keys", len(doc.Keys))
	}
	return keys, nil
}

// get performs a GET and returns the body of a 200 response.
func (p *Issuer) get(ctx context.Context, u string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, fmt.Errorf("failed to build request: %w", err)
	}
	req.Header.Set("Accept", "application/json")
	resp, err := p.client.Do(req)
	if err != nil {
		return nil, err
	}
	defer func() { _ = resp.Body.Close() }()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxResponseBytes+1))
	if err != nil {
		return nil, fmt.Errorf("failed to read response: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("unexpected HTTP status %d", resp.StatusCode)
	}
	if len(body) > maxResponseBytes {
		return nil, fmt.Errorf("response exceeds %d bytes", maxResponseBytes)
	}
	return body, nil
}

// fetchForUnknownKid refetches the JWKS because a token named an unknown key id. At most
// one such fetch starts per UnknownKidCooldown; callers arriving while one is in flight
// wait for it. It reports whether a fetch completed, so that the lookup is worth retrying.
func (p *Issuer) fetchForUnknownKid(ctx context.Context) bool {
	p.kidMu.Lock()
	if call := p.kidCall; call != nil {
		p.kidMu.Unlock()
		select {
		case <-call.done:
			return true
		case <-ctx.Done():
			return false
		}
	}
	now := time.Now()
	if !p.lastKidFetch.IsZero() && now.Sub(p.lastKidFetch) < p.cfg.UnknownKidCooldown {
		p.kidMu.Unlock()
		return false
	}
	p.mu.Lock()
	jwksURI := p.jwksURI
	p.mu.Unlock()
	if jwksURI == "" {
		p.kidMu.Unlock()
		return false
	}
	call := &kidFetch{done: make(chan struct{})}
	p.kidCall = call
	p.lastKidFetch = now
	p.kidMu.Unlock()

	// Waiters share this fetch, so it must not die with the first caller's context;
	// the HTTP client's timeout bounds it.
	_ = p.fetchKeys(context.WithoutCancel(ctx), jwksURI)

	p.kidMu.Lock()
	p.kidCall = nil
	p.kidMu.Unlock()
	close(call.done)
	return true
}
