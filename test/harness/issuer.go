package harness

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
)

// Issuer is an in-process OIDC issuer on HTTPS with its own CA (httptest), serving discovery and
// a JWKS, for tests of key caching: it counts JWKS requests, rotates keys, and can be stopped and
// started again on the same address.
type Issuer struct {
	mu      sync.Mutex
	srv     *httptest.Server
	addr    string
	key     *ecdsa.PrivateKey
	kid     string
	seq     int
	fetches atomic.Int64
}

// StartIssuer starts an issuer on a free loopback port.
func StartIssuer() (*Issuer, error) {
	is := &Issuer{}
	if err := is.rotateLocked(); err != nil {
		return nil, err
	}
	is.srv = httptest.NewUnstartedServer(http.HandlerFunc(is.serve))
	is.srv.StartTLS()
	is.addr = is.srv.Listener.Addr().String()
	return is, nil
}

// URL is the issuer URL (https://127.0.0.1:<port>).
func (is *Issuer) URL() string { return "https://" + is.addr }

// CAPEM is the PEM of the certificate the issuer serves (self-signed: its own CA).
func (is *Issuer) CAPEM() []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: is.srv.Certificate().Raw})
}

// JWKSFetches is the number of JWKS requests served so far.
func (is *Issuer) JWKSFetches() int64 { return is.fetches.Load() }

// Rotate replaces the signing key with a new one (new kid).
func (is *Issuer) Rotate() error {
	is.mu.Lock()
	defer is.mu.Unlock()
	return is.rotateLocked()
}

func (is *Issuer) rotateLocked() error {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return fmt.Errorf("failed to generate key: %w", err)
	}
	is.seq++
	is.key, is.kid = k, fmt.Sprintf("key-%d", is.seq)
	return nil
}

// Stop closes the listener (requests fail with connection refused).
func (is *Issuer) Stop() { is.srv.Close() }

// Start serves again on the same address and certificate after Stop.
func (is *Issuer) Start() error {
	l, err := net.Listen("tcp", is.addr)
	if err != nil {
		return fmt.Errorf("failed to listen on %s: %w", is.addr, err)
	}
	// httptest serves the same built-in certificate every time, so CAPEM stays valid.
	is.srv = httptest.NewUnstartedServer(http.HandlerFunc(is.serve))
	is.srv.Listener = l
	is.srv.StartTLS()
	return nil
}

// Token signs a token with the current key: iss is the issuer, exp is now+ttl.
func (is *Issuer) Token(aud, sub string, groups []string, ttl time.Duration) (string, error) {
	is.mu.Lock()
	key, kid := is.key, is.kid
	is.mu.Unlock()
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: key}, (&jose.SignerOptions{}).WithType("JWT").WithHeader("kid", kid))
	if err != nil {
		return "", err
	}
	now := time.Now()
	claims := map[string]any{
		"iss": is.URL(), "aud": aud, "sub": sub, "groups": groups,
		"iat": now.Unix(), "exp": now.Add(ttl).Unix(),
	}
	return jwt.Signed(signer).Claims(claims).Serialize()
}

func (is *Issuer) serve(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	switch r.URL.Path {
	case "/.well-known/openid-configuration":
		_ = json.NewEncoder(w).Encode(map[string]any{
			"issuer":                                is.URL(),
			"authorization_endpoint":                is.URL() + "/auth",
			"token_endpoint":                        is.URL() + "/token",
			"jwks_uri":                              is.URL() + "/keys",
			"id_token_signing_alg_values_supported": []string{"ES256"},
		})
	case "/keys":
		is.fetches.Add(1)
		is.mu.Lock()
		set := jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: &is.key.PublicKey, KeyID: is.kid, Algorithm: "ES256", Use: "sig"}}}
		is.mu.Unlock()
		_ = json.NewEncoder(w).Encode(set)
	default:
		http.NotFound(w, r)
	}
}
