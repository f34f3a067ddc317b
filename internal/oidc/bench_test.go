package oidc

import (
	"context"
	"crypto"
	"testing"

	gooidc "github.com/coreos/go-oidc/v3/oidc"
)

// BenchmarkVerify verifies one RS256 token repeatedly through Issuer.Verify (cached keys).
func BenchmarkVerify(b *testing.B) {
	key := newRSAKey(b, "k1", 0)
	iss := newTestIssuer(b, key)
	p := readyProvider(b, iss, nil)
	tok := signToken(b, key, iss.claims(nil))
	ctx := context.Background()
	if _, err := p.Verify(ctx, tok); err != nil {
		b.Fatalf("Verify: %v", err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := p.Verify(ctx, tok); err != nil {
			b.Fatalf("Verify: %v", err)
		}
	}
	if got := p.Status().Fetches; got != 1 {
		b.Fatalf("Verify fetched the JWKS: %d fetches", got)
	}
}

// BenchmarkGoOIDCBaseline verifies the same kind of token with a plain go-oidc verifier over
// a static key set, as the lower bound for BenchmarkVerify.
func BenchmarkGoOIDCBaseline(b *testing.B) {
	key := newRSAKey(b, "k1", 0)
	iss := newTestIssuer(b, key)
	tok := signToken(b, key, iss.claims(nil))
	v := gooidc.NewVerifier(iss.URL(), &gooidc.StaticKeySet{PublicKeys: []crypto.PublicKey{key.priv.Public()}}, &gooidc.Config{
		ClientID:             testAudience,
		SupportedSigningAlgs: []string{gooidc.RS256},
	})
	ctx := context.Background()
	if _, err := v.Verify(ctx, tok); err != nil {
		b.Fatalf("Verify: %v", err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := v.Verify(ctx, tok); err != nil {
			b.Fatalf("Verify: %v", err)
		}
	}
}
