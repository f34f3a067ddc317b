package oidc

import (
	"context"
	"fmt"

	jose "github.com/go-jose/go-jose/v4"
)

// verifySignature verifies the signature of jws (a compact JWS with one signature, parsed with
// an allowed algorithm) with the cached keys and returns its payload. A key id not in the cache
// refetches the JWKS, at most once per UnknownKidCooldown (fetchForUnknownKid): go-oidc's
// RemoteKeySet would refetch for every unknown key id.
func (p *Issuer) verifySignature(ctx context.Context, jws *jose.JSONWebSignature) ([]byte, *VerifyError) {
	snap := p.keys.Load()
	if snap == nil {
		return nil, verifyErr(ReasonNotReady, "no signing keys have been loaded for issuer "+p.cfg.IssuerURL)
	}
	return snap.verifyRefetching(ctx, jws, p.fetchForUnknownKid, p.keys.Load)
}

// verifyRefetching verifies jws with s; when its key id is unknown and refetch completed a fetch,
// it verifies again with the keys current then.
func (s *keySnapshot) verifyRefetching(ctx context.Context, jws *jose.JSONWebSignature, refetch func(context.Context) bool, current func() *keySnapshot) ([]byte, *VerifyError) {
	if len(jws.Signatures) != 1 {
		return nil, verifyErr(ReasonNotJWT, "token must carry exactly one signature")
	}
	hdr := jws.Signatures[0].Header
	payload, verr := s.verify(jws, hdr.KeyID, hdr.Algorithm)
	if verr != nil && verr.Reason == ReasonUnknownKey && refetch(ctx) {
		if cur := current(); cur != nil {
			payload, verr = cur.verify(jws, hdr.KeyID, hdr.Algorithm)
		}
	}
	return payload, verr
}

// verify checks the signature with the key named by kid, or with every key if kid is empty.
func (s *keySnapshot) verify(jws *jose.JSONWebSignature, kid, alg string) ([]byte, *VerifyError) {
	if kid == "" {
		for i := range s.keys {
			if payload, ok := verifyWithKey(jws, &s.keys[i], alg); ok {
				return payload, nil
			}
		}
		return nil, verifyErr(ReasonBadSignature, "no cached key verifies the signature of the token without key id")
	}
	idx, found := s.byKid[kid]
	if !found {
		return nil, verifyErr(ReasonUnknownKey, fmt.Sprintf("key id %q is not in the issuer's JWKS", truncate(kid, 64)))
	}
	for _, i := range idx {
		if payload, ok := verifyWithKey(jws, &s.keys[i], alg); ok {
			return payload, nil
		}
	}
	return nil, verifyErr(ReasonBadSignature, fmt.Sprintf("signature does not verify with key id %q", truncate(kid, 64)))
}

func verifyWithKey(jws *jose.JSONWebSignature, k *jose.JSONWebKey, alg string) ([]byte, bool) {
	if k.Algorithm != "" && k.Algorithm != alg {
		return nil, false
	}
	payload, err := jws.Verify(k.Key)
	if err != nil {
		return nil, false
	}
	return payload, true
}
