package oidc

import (
	"context"
	"fmt"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	. "github.com/onsi/gomega"
)

// signRaw signs payload as given (json.Marshal of a map would sort "ISS" before "iss"; the order
// matters to a decoder that folds case, where the last of the two wins).
func signRaw(t testing.TB, key testKey, payload string) string {
	t.Helper()
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: key.alg, Key: jose.JSONWebKey{Key: key.priv, KeyID: key.kid}}, (&jose.SignerOptions{}).WithType("JWT"))
	if err != nil {
		t.Fatalf("failed to create signer: %v", err)
	}
	jws, err := signer.Sign([]byte(payload))
	if err != nil {
		t.Fatalf("failed to sign: %v", err)
	}
	raw, err := jws.CompactSerialize()
	if err != nil {
		t.Fatalf("failed to serialize: %v", err)
	}
	return raw
}

// TestClaimNamesAreCaseSensitive: JWT claim names are case-sensitive (RFC 7519 §4), so "ISS",
// "EXP", "AUD", "SUB" and "Groups" are other claims than iss, exp, aud, sub and groups, whatever
// their order in the payload, in the verified path (both claim mappings) and the unverified one.
func TestClaimNamesAreCaseSensitive(t *testing.T) {
	key := newRSAKey(t, "k1", 0)
	iss := newTestIssuer(t, key)
	future, past := time.Now().Add(time.Hour).Unix(), time.Now().Add(-time.Hour).Unix()
	payload := func(registered, shadows string) string {
		return fmt.Sprintf(`{%s,"tenant":"acme",%s}`, registered, shadows)
	}
	good := fmt.Sprintf(`"iss":%q,"sub":"user-1","aud":%q,"exp":%d,"groups":["dev"]`, iss.URL(), testAudience, future)
	shadows := fmt.Sprintf(`"ISS":"https://elsewhere.example","Iss":"https://elsewhere.example","EXP":%d,"NBF":%d,"AUD":"other","SUB":"mallory","Groups":["admin"],"AZP":"x"`, past, future+7200)

	for name, mut := range map[string]func(*Config){
		"default mapping":             nil,
		"map of claims (requirement)": func(c *Config) { c.RequiredClaims = []RequiredClaim{{Name: "tenant", Value: "acme"}} },
	} {
		t.Run(name, func(t *testing.T) {
			g := NewWithT(t)
			p := readyProvider(t, iss, mut)
			// The provider's token, with look-alike claims after the real ones.
			id, err := p.Verify(context.Background(), signRaw(t, key, payload(good, shadows)))
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(id.Subject).To(Equal("user-1"))
			g.Expect(id.Username).To(Equal("user-1"))
			g.Expect(id.Groups).To(Equal([]string{"dev"}))
			g.Expect(id.Audience).To(Equal([]string{testAudience}))
			g.Expect(id.Expiry.Unix()).To(Equal(future))

			// Look-alikes never stand in for the real claims.
			cases := []struct {
				payload string
				reason  Reason
			}{
				{fmt.Sprintf(`{"ISS":%q,"sub":"u","aud":%q,"exp":%d,"tenant":"acme"}`, iss.URL(), testAudience, future), ReasonWrongIssuer},
				{fmt.Sprintf(`{"iss":%q,"sub":"u","aud":%q,"exp":%d,"EXP":%d,"tenant":"acme"}`, iss.URL(), testAudience, past, future), ReasonExpired},
				{fmt.Sprintf(`{"iss":%q,"sub":"u","aud":%q,"EXP":%d,"tenant":"acme"}`, iss.URL(), testAudience, future), ReasonExpired},
				{fmt.Sprintf(`{"iss":%q,"sub":"u","aud":"other","AUD":%q,"exp":%d,"tenant":"acme"}`, iss.URL(), testAudience, future), ReasonWrongAudience},
				{fmt.Sprintf(`{"iss":%q,"SUB":"u","aud":%q,"exp":%d,"tenant":"acme"}`, iss.URL(), testAudience, future), ReasonMissingClaim},
				{fmt.Sprintf(`{"iss":%q,"sub":"u","aud":%q,"exp":%d,"nbf":%d,"NBF":1,"tenant":"acme"}`, iss.URL(), testAudience, future, future), ReasonExpired},
			}
			for _, c := range cases {
				_, err := p.Verify(context.Background(), signRaw(t, key, c.payload))
				g.Expect(ReasonOf(err)).To(Equal(c.reason), c.payload)
			}
			id, err = p.Verify(context.Background(), signRaw(t, key, fmt.Sprintf(`{"iss":%q,"sub":"u","aud":%q,"exp":%d,"tenant":"acme","GROUPS":["admin"]}`, iss.URL(), testAudience, future)))
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(id.HasGroupsClaim).To(BeFalse(), "GROUPS is not groups")
		})
	}

	t.Run("unverified", func(t *testing.T) {
		g := NewWithT(t)
		for _, p := range []string{
			`{"iss":"https://dex.example","ISS":"https://elsewhere.example","exp":1800000000,"EXP":1900000000}`,
			`{"ISS":"https://elsewhere.example","Iss":"https://elsewhere.example","iss":"https://dex.example","EXP":1900000000,"exp":1800000000}`,
		} {
			raw := b64(`{"alg":"RS256","ALG":"none"}`) + "." + b64(p) + ".c2ln"
			u, ok := ParseUnverified(raw)
			g.Expect(ok).To(BeTrue(), p)
			g.Expect(u.Issuer).To(Equal("https://dex.example"), p)
			g.Expect(u.Expiry).To(Equal(time.Unix(1800000000, 0)), p)
			got, ok := UnverifiedIssuer(raw)
			g.Expect(ok).To(BeTrue())
			g.Expect(got).To(Equal("https://dex.example"), p)
		}
		u, ok := ParseUnverified(b64(`{"alg":"RS256"}`) + "." + b64(`{"ISS":"https://elsewhere.example","Exp":1800000000}`) + ".c2ln")
		g.Expect(ok).To(BeTrue())
		g.Expect(u).To(Equal(Unverified{}), "ISS and Exp are not iss and exp")
		_, ok = ParseUnverified(b64(`{"ALG":"RS256"}`) + "." + b64(`{"iss":"x"}`) + ".c2ln")
		g.Expect(ok).To(BeFalse(), "ALG is not alg")
	})
}
