package oidc

import (
	"context"
	"fmt"

	jose "github.com/go-jose/go-jose/v4"
)

// keySet implements go-oidc's KeySet over the Issuer's cached keys. Unlike go-oidc's
// RemoteKeySet it does not refetch on every unknown key id: see fetchForUnknownKid.
type keySet struct {
	p *Issuer
}

// verifyStateKey carries a *verifyState through go-oidc's Verify, which flattens the
// KeySet's error into a string: the typed error and the verified payload are kept here.
type verifyStateKey struct{}

type verifyState struct {
	// raw and jws: the token Issuer.verify already parsed, so that the key set does not
	// parse it again.
	raw string
	jws *jose.JSONWebSignature

	err     *VerifyError
	payload []byte
}

// VerifySignature implements oidc.KeySet.
func (ks *keySet) VerifySignature(ctx context.Context, raw string) ([]byte, error) {
	st, _ := ctx.Value(verifyStateKey{}).(*verifyState)
	if st == nil {
		st = &verifyState{}
	}
	payload, verr := ks.verify(ctx, raw, st)
	if verr != nil {
		st.err = verr
		return nil, verr
	}
	st.payload = payload
	return payload, nil
}

func (ks *keySet) verify(ctx context.Context, raw string, st *verifyState) ([]byte, *VerifyError) {
	jws := st.jws
	if jws == nil || st.raw != raw {
		var err error
		if jws, err = jose.ParseSignedCompact(raw, allowedAlgs); err != nil {
			return nil, verifyErr(ReasonNotJWT, "failed to parse JWS")
		}
	}
	if len(jws.Signatures) != 1 {
		return nil, verifyErr(ReasonNotJWT, "token must carry exactly one signature")
	}
	hdr := jws.Signatures[0].Header
	snap := ks.p.keys.Load()
	if snap == nil {
		return nil, verifyErr(ReasonNotReady, "no signing keys have been loaded for issuer "+ks.p.cfg.IssuerURL)
	}
	payload, verr := snap.verify(jws, hdr.KeyID, hdr.Algorithm)
	if verr != nil && verr.Reason == ReasonUnknownKey && ks.p.fetchForUnknownKid(ctx) {
		payload, verr = ks.p.keys.Load().verify(jws, hdr.KeyID, hdr.Algorithm)
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
