package registry

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"

	jose "github.com/go-jose/go-jose/v4"
	"google.golang.org/protobuf/encoding/protowire"
)

// ClaimsIssuer is an OIDC issuer on loopback HTTP (allowed for loopback issuers) that signs any
// claims with its ES256 key, for tokens the real Dex v2.45.1 cannot issue (client credentials).
// Test helper, exported for the registry_test package.
type ClaimsIssuer struct {
	srv    *httptest.Server
	key    *ecdsa.PrivateKey
	signer jose.Signer
}

// StartClaimsIssuer starts an issuer serving discovery and its JWKS.
func StartClaimsIssuer() (*ClaimsIssuer, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: key}, (&jose.SignerOptions{}).WithType("JWT").WithHeader("kid", "claims-key"))
	if err != nil {
		return nil, err
	}
	is := &ClaimsIssuer{key: key, signer: signer}
	is.srv = httptest.NewServer(http.HandlerFunc(is.serve))
	return is, nil
}

// URL is the issuer URL (http://127.0.0.1:<port>).
func (is *ClaimsIssuer) URL() string { return is.srv.URL }

// Close stops the issuer.
func (is *ClaimsIssuer) Close() { is.srv.Close() }

// Sign returns a compact JWS of claims (iss is set to the issuer unless claims has one).
func (is *ClaimsIssuer) Sign(claims map[string]any) (string, error) {
	c := map[string]any{"iss": is.URL()}
	for k, v := range claims {
		c[k] = v
	}
	payload, err := json.Marshal(c)
	if err != nil {
		return "", err
	}
	jws, err := is.signer.Sign(payload)
	if err != nil {
		return "", err
	}
	return jws.CompactSerialize()
}

// SignRaw returns a compact JWS of payload exactly as given (json.Marshal of a map would sort its
// keys, and "ISS" sorts before "iss").
func (is *ClaimsIssuer) SignRaw(payload string) (string, error) {
	jws, err := is.signer.Sign([]byte(payload))
	if err != nil {
		return "", err
	}
	return jws.CompactSerialize()
}

func (is *ClaimsIssuer) serve(w http.ResponseWriter, r *http.Request) {
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
		_ = json.NewEncoder(w).Encode(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: &is.key.PublicKey, KeyID: "claims-key", Algorithm: "ES256", Use: "sig"}}})
	default:
		http.NotFound(w, r)
	}
}

// DexSubjectOf encodes a subject as Dex does (tokens.GenSubject): the base64url protobuf of
// IDTokenSubject{user_id = 1, conn_id = 2}; proto3 leaves an empty conn_id out, as Dex's
// client_credentials grant does.
func DexSubjectOf(userID, connID string) string {
	var b []byte
	if userID != "" {
		b = protowire.AppendTag(b, 1, protowire.BytesType)
		b = protowire.AppendString(b, userID)
	}
	if connID != "" {
		b = protowire.AppendTag(b, 2, protowire.BytesType)
		b = protowire.AppendString(b, connID)
	}
	return base64.RawURLEncoding.EncodeToString(b)
}
