package oidc

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

const testAudience = "registry"

// testKey is a signing key of the test issuer.
type testKey struct {
	kid  string
	alg  jose.SignatureAlgorithm
	priv crypto.Signer
}

func (k testKey) publicJWK() jose.JSONWebKey {
	return jose.JSONWebKey{Key: k.priv.Public(), KeyID: k.kid, Algorithm: string(k.alg), Use: "sig"}
}

var (
	rsaKeysOnce sync.Once
	rsaKeys     []*rsa.PrivateKey
)

// rsaKey returns the i-th of a few RSA keys generated once per test binary (slow to make).
func rsaKey(t testing.TB, i int) *rsa.PrivateKey {
	t.Helper()
	rsaKeysOnce.Do(func() {
		for range 3 {
			k, err := rsa.GenerateKey(rand.Reader, 2048)
			if err != nil {
				panic(err)
			}
			rsaKeys = append(rsaKeys, k)
		}
	})
	return rsaKeys[i]
}

func newRSAKey(t testing.TB, kid string, i int) testKey {
	return testKey{kid: kid, alg: jose.RS256, priv: rsaKey(t, i)}
}

func newECKey(t testing.TB, kid string) testKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatalf("failed to generate EC key: %v", err)
	}
	return testKey{kid: kid, alg: jose.ES256, priv: k}
}

// testIssuer is an in-process OIDC issuer over TLS serving discovery and a JWKS.
type testIssuer struct {
	srv *httptest.Server

	mu               sync.Mutex
	keys             []testKey
	advertisedIssuer string // discovery "issuer"; srv.URL if empty
	jwksBase         string // base of the advertised jwks_uri; srv.URL if empty
	rawJWKS          []byte // served instead of keys if set

	jwksHits      atomic.Int64
	discoveryHits atomic.Int64
}

func newTestIssuer(t testing.TB, keys ...testKey) *testIssuer {
	t.Helper()
	iss := &testIssuer{keys: keys}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /.well-known/openid-configuration", func(w http.ResponseWriter, _ *http.Request) {
		iss.discoveryHits.Add(1)
		iss.mu.Lock()
		issuer := iss.advertisedIssuer
		if issuer == "" {
			issuer = iss.srv.URL
		}
		base := iss.jwksBase
		if base == "" {
			base = iss.srv.URL
		}
		iss.mu.Unlock()
		writeJSON(w, map[string]any{
			"issuer":                 issuer,
			"jwks_uri":               base + "/keys",
			"authorization_endpoint": issuer + "/auth",
			"token_endpoint":         issuer + "/token",
		})
	})
	mux.HandleFunc("GET /keys", func(w http.ResponseWriter, _ *http.Request) {
		iss.jwksHits.Add(1)
		iss.mu.Lock()
		defer iss.mu.Unlock()
		if iss.rawJWKS != nil {
			_, _ = w.Write(iss.rawJWKS)
			return
		}
		set := jose.JSONWebKeySet{}
		for _, k := range iss.keys {
			set.Keys = append(set.Keys, k.publicJWK())
		}
		writeJSON(w, set)
	})
	iss.srv = httptest.NewUnstartedServer(mux)
	// Handshakes refused by clients that do not trust the server are expected.
	iss.srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	iss.srv.StartTLS()
	t.Cleanup(iss.srv.Close)
	return iss
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(v)
}

func (i *testIssuer) URL() string { return i.srv.URL }

// caPEM returns the server's self-signed certificate as a PEM CA bundle.
func (i *testIssuer) caPEM() []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: i.srv.Certificate().Raw})
}

// setKeys replaces the published keys (key rotation).
func (i *testIssuer) setKeys(keys ...testKey) {
	i.mu.Lock()
	defer i.mu.Unlock()
	i.keys = keys
}

func (i *testIssuer) setRawJWKS(raw []byte) {
	i.mu.Lock()
	defer i.mu.Unlock()
	i.rawJWKS = raw
}

func (i *testIssuer) setAdvertisedIssuer(issuer string) {
	i.mu.Lock()
	defer i.mu.Unlock()
	i.advertisedIssuer = issuer
}

func (i *testIssuer) setJWKSBase(base string) {
	i.mu.Lock()
	defer i.mu.Unlock()
	i.jwksBase = base
}

func (i *testIssuer) stop() { i.srv.Close() }

// config returns a Config trusting the issuer's certificate.
func (i *testIssuer) config() Config {
	return Config{
		IssuerURL: i.URL(),
		CABundle:  i.caPEM(),
		Audiences: []string{testAudience},
	}
}

// claims returns valid claims for the issuer, with overrides applied (nil deletes).
func (i *testIssuer) claims(overrides map[string]any) map[string]any {
	c := map[string]any{
		"iss":    i.URL(),
		"sub":    "user-1",
		"aud":    testAudience,
		"azp":    "cli",
		"exp":    time.Now().Add(time.Hour).Unix(),
		"iat":    time.Now().Unix(),
		"email":  "alice@example.com",
		"groups": []string{"dev", "ops"},
	}
	for k, v := range overrides {
		if v == nil {
			delete(c, k)
			continue
		}
		c[k] = v
	}
	return c
}

// signToken signs claims with key, putting its kid in the header.
func signToken(t testing.TB, key testKey, claims map[string]any) string {
	t.Helper()
	return signTokenKid(t, key, key.kid, claims)
}

// signTokenKid signs claims with key but with an arbitrary kid header ("" for none).
func signTokenKid(t testing.TB, key testKey, kid string, claims map[string]any) string {
	t.Helper()
	var signingKey any = key.priv
	if kid != "" {
		signingKey = jose.JSONWebKey{Key: key.priv, KeyID: kid}
	}
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: key.alg, Key: signingKey}, (&jose.SignerOptions{}).WithType("JWT"))
	if err != nil {
		t.Fatalf("failed to create signer: %v", err)
	}
	payload, err := json.Marshal(claims)
	if err != nil {
		t.Fatalf("failed to marshal claims: %v", err)
	}
	jws, err := signer.Sign(payload)
	if err != nil {
		t.Fatalf("failed to sign: %v", err)
	}
	raw, err := jws.CompactSerialize()
	if err != nil {
		t.Fatalf("failed to serialize: %v", err)
	}
	return raw
}

// signHS256 signs claims with HMAC, an algorithm the provider must refuse.
func signHS256(t testing.TB, kid string, claims map[string]any) string {
	t.Helper()
	secret := make([]byte, 32)
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.HS256, Key: jose.JSONWebKey{Key: secret, KeyID: kid}}, nil)
	if err != nil {
		t.Fatalf("failed to create signer: %v", err)
	}
	payload, _ := json.Marshal(claims)
	jws, err := signer.Sign(payload)
	if err != nil {
		t.Fatalf("failed to sign: %v", err)
	}
	raw, err := jws.CompactSerialize()
	if err != nil {
		t.Fatalf("failed to serialize: %v", err)
	}
	return raw
}

// unsignedToken builds an alg "none" token.
func unsignedToken(t testing.TB, claims map[string]any) string {
	t.Helper()
	payload, _ := json.Marshal(claims)
	return b64(`{"alg":"none","typ":"JWT"}`) + "." + base64.RawURLEncoding.EncodeToString(payload) + "."
}

func b64(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }
