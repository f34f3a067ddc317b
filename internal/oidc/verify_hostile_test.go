package oidc

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	. "github.com/onsi/gomega"
)

// Hostile tokens against the claim checks that replaced go-oidc's verifier (from the hostile
// review of tenant isolation, round two): alg none, HS256 keyed with the public key, foreign keys
// under the issuer's kid, odd claim types, duplicate keys, deep nesting; all refused.

// signRaw signs payload exactly as given (duplicate keys, odd types) with key, kid in the header.
func reviewSign(t *testing.T, key testKey, opts *jose.SignerOptions, payload string) string {
	t.Helper()
	var sk any = jose.JSONWebKey{Key: key.priv, KeyID: key.kid}
	if key.kid == "" {
		sk = key.priv
	}
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: key.alg, Key: sk}, opts)
	if err != nil {
		t.Fatal(err)
	}
	jws, err := signer.Sign([]byte(payload))
	if err != nil {
		t.Fatal(err)
	}
	raw, err := jws.CompactSerialize()
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

func TestVerifyRefusesHostileTokens(t *testing.T) {
	key := newRSAKey(t, "k1", 0)
	iss := newTestIssuer(t, key)
	p := readyProvider(t, iss, nil)
	u := iss.URL()
	exp := time.Now().Add(time.Hour).Unix()
	claims := func(extra string) string {
		return fmt.Sprintf(`{"iss":%q,"sub":"user-1","aud":"registry","groups":["dev"]%s}`, u, extra)
	}
	attackerEC, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	attacker := testKey{kid: "k1", alg: jose.ES256, priv: attackerEC}
	attackerNoKid := testKey{alg: jose.ES256, priv: attackerEC}
	der, _ := x509.MarshalPKIXPublicKey(key.priv.Public())
	pubPEM := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
	hsWithPublicKey := func(secret []byte) string {
		signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.HS256, Key: jose.JSONWebKey{Key: secret, KeyID: "k1"}}, nil)
		if err != nil {
			t.Fatal(err)
		}
		jws, _ := signer.Sign([]byte(claims(fmt.Sprintf(`,"exp":%d`, exp))))
		raw, _ := jws.CompactSerialize()
		return raw
	}
	deep := strings.Repeat("[", 20000) + strings.Repeat("]", 20000)

	reject := []struct {
		name  string
		token string
	}{
		{"HS256 keyed with the issuer's public key (PEM)", hsWithPublicKey(pubPEM)},
		{"HS256 keyed with the issuer's public key (DER)", hsWithPublicKey(der)},
		{"attacker key, issuer's kid", reviewSign(t, attacker, nil, claims(fmt.Sprintf(`,"exp":%d`, exp)))},
		{"attacker key, no kid (tries every key)", reviewSign(t, attackerNoKid, nil, claims(fmt.Sprintf(`,"exp":%d`, exp)))},
		{"attacker key embedded as jwk header", reviewSign(t, attackerNoKid, (&jose.SignerOptions{EmbedJWK: true}), claims(fmt.Sprintf(`,"exp":%d`, exp)))},
		{"exp as string", reviewSign(t, key, nil, claims(fmt.Sprintf(`,"exp":"%d"`, exp)))},
		{"exp as bool", reviewSign(t, key, nil, claims(`,"exp":true`))},
		{"exp as object", reviewSign(t, key, nil, claims(`,"exp":{"x":1}`))},
		{"exp 1e400", reviewSign(t, key, nil, claims(`,"exp":1e400`))},
		{"exp 2^64", reviewSign(t, key, nil, claims(`,"exp":18446744073709551616`))},
		{"exp 300 digits", reviewSign(t, key, nil, claims(`,"exp":`+strings.Repeat("9", 300)))},
		{"exp 2^40", reviewSign(t, key, nil, claims(`,"exp":1099511627776`))},
		{"exp null", reviewSign(t, key, nil, claims(`,"exp":null`))},
		{"exp -1e300", reviewSign(t, key, nil, claims(`,"exp":-1e300`))},
		{"nbf as string", reviewSign(t, key, nil, claims(fmt.Sprintf(`,"exp":%d,"nbf":"0"`, exp)))},
		{"nbf 1e400", reviewSign(t, key, nil, claims(fmt.Sprintf(`,"exp":%d,"nbf":1e400`, exp)))},
		{"nbf in an hour", reviewSign(t, key, nil, claims(fmt.Sprintf(`,"exp":%d,"nbf":%d`, exp, exp)))},
		{"EXP instead of exp", reviewSign(t, key, nil, claims(fmt.Sprintf(`,"EXP":%d`, exp)))},
		{"exp twice, the last expired", reviewSign(t, key, nil, claims(fmt.Sprintf(`,"exp":%d,"exp":1`, exp)))},
		{"aud twice, the last another", reviewSign(t, key, nil, claims(fmt.Sprintf(`,"exp":%d,"aud":"other"`, exp)))},
		{"nested depth 20000", reviewSign(t, key, nil, claims(fmt.Sprintf(`,"exp":%d,"x":%s`, exp, deep)))},
		{"payload null", reviewSign(t, key, nil, `null`)},
		{"payload array", reviewSign(t, key, nil, `[`+claims(fmt.Sprintf(`,"exp":%d`, exp))+`]`)},
		{"trailing data", reviewSign(t, key, nil, claims(fmt.Sprintf(`,"exp":%d`, exp))+`{}`)},
		{"BOM", reviewSign(t, key, nil, "\ufeff"+claims(fmt.Sprintf(`,"exp":%d`, exp)))},
		{"iss with a trailing slash", reviewSign(t, key, nil, fmt.Sprintf(`{"iss":%q,"sub":"u","aud":"registry","exp":%d}`, u+"/", exp))},
		{"iss twice, the last another", reviewSign(t, key, nil, fmt.Sprintf(`{"iss":%q,"iss":"https://evil","sub":"u","aud":"registry","exp":%d}`, u, exp))},
		{"sub a number", reviewSign(t, key, nil, fmt.Sprintf(`{"iss":%q,"sub":1,"aud":"registry","exp":%d}`, u, exp))},
		{"aud []", reviewSign(t, key, nil, fmt.Sprintf(`{"iss":%q,"sub":"u","aud":[],"exp":%d}`, u, exp))},
		{"aud nested", reviewSign(t, key, nil, fmt.Sprintf(`{"iss":%q,"sub":"u","aud":[["registry"]],"exp":%d}`, u, exp))},
		{"aud object", reviewSign(t, key, nil, fmt.Sprintf(`{"iss":%q,"sub":"u","aud":{"registry":1},"exp":%d}`, u, exp))},
		{"aud with a number", reviewSign(t, key, nil, fmt.Sprintf(`{"iss":%q,"sub":"u","aud":["registry",1],"exp":%d}`, u, exp))},
		{"Aud instead of aud", reviewSign(t, key, nil, fmt.Sprintf(`{"iss":%q,"sub":"u","Aud":"registry","exp":%d}`, u, exp))},
	}
	for _, tc := range reject {
		t.Run("reject/"+tc.name, func(t *testing.T) {
			g := NewWithT(t)
			id, err := p.Verify(context.Background(), tc.token)
			g.Expect(err).To(HaveOccurred(), "accepted: %+v", id)
			// Routing agrees with the verifier: what claims the issuer is decided by it.
			if claimed, ok := ParseUnverified(tc.token); ok && claimed.Issuer != u {
				g.Expect(ReasonOf(err)).To(BeElementOf(ReasonWrongIssuer, ReasonNotJWT, ReasonUnsupportedAlg), "routed elsewhere but verified as the issuer's")
			}
		})
	}

	accept := []struct {
		name  string
		token string
	}{
		{"exp fractional", reviewSign(t, key, nil, claims(fmt.Sprintf(`,"exp":%d.5`, exp)))},
		{"exp exponent", reviewSign(t, key, nil, claims(`,"exp":4.1e9`))},
		{"aud array with ours", reviewSign(t, key, nil, fmt.Sprintf(`{"iss":%q,"sub":"u","aud":["x","registry"],"exp":%d}`, u, exp))},
		// RFC 7797 unencoded payload: JWT never uses it and Dex never issues it, but go-jose
		// verifies it (only the issuer's key can sign one, so informational).
		{"crit b64=false (RFC 7797)", reviewSign(t, key, (&jose.SignerOptions{}).WithBase64(false), claims(fmt.Sprintf(`,"exp":%d`, exp)))},
		{"iss twice, the last ours", reviewSign(t, key, nil, fmt.Sprintf(`{"iss":"https://evil","iss":%q,"sub":"u","aud":"registry","exp":%d}`, u, exp))},
	}
	for _, tc := range accept {
		t.Run("accept/"+tc.name, func(t *testing.T) {
			g := NewWithT(t)
			_, err := p.Verify(context.Background(), tc.token)
			g.Expect(err).NotTo(HaveOccurred())
			if claimed, ok := ParseUnverified(tc.token); ok {
				g.Expect(claimed.Issuer).To(Equal(u), "routing reads the issuer the verifier read")
			} else {
				t.Logf("not routable as a JWT (ParseUnverified refuses it): %.80s", tc.token)
			}
		})
	}

	t.Run("groups [null] becomes the empty group", func(t *testing.T) {
		g := NewWithT(t)
		id, err := p.Verify(context.Background(), reviewSign(t, key, nil, fmt.Sprintf(`{"iss":%q,"sub":"u","aud":"registry","exp":%d,"groups":[null,"dev"]}`, u, exp)))
		g.Expect(err).NotTo(HaveOccurred())
		t.Logf("groups: %q (the map path used with a non-default mapping refuses this token)", id.Groups)
	})

	t.Run("no JWKS fetch was triggered", func(t *testing.T) {
		NewWithT(t).Expect(p.Status().Fetches).To(BeEquivalentTo(1))
	})
}
