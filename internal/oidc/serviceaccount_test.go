package oidc

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	. "github.com/onsi/gomega"
)

// fakeAPIServer serves a service-account issuer's discovery document and JWKS by path, as
// kube-apiserver does.
type fakeAPIServer struct {
	mu        sync.Mutex
	issuer    string
	jwksURI   string
	keys      []testKey
	published bool
	paths     []string
}

func (s *fakeAPIServer) fetch(_ context.Context, path string) ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.paths = append(s.paths, path)
	if !s.published {
		return nil, fmt.Errorf("%w: 403", ErrNotPublished)
	}
	switch path {
	case wellKnownPath:
		return json.Marshal(map[string]string{"issuer": s.issuer, "jwks_uri": s.jwksURI})
	case apiServerJWKSPath:
		set := jose.JSONWebKeySet{}
		for _, k := range s.keys {
			set.Keys = append(set.Keys, k.publicJWK())
		}
		return json.Marshal(set)
	}
	return nil, fmt.Errorf("%w: 404", ErrNotPublished)
}

func (s *fakeAPIServer) fetched() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.paths...)
}

func TestServiceAccountKeys(t *testing.T) {
	ctx := context.Background()
	const issuer = "https://kubernetes.default.svc.cluster.local"
	key, rotated, other := newRSAKey(t, "k1", 0), newECKey(t, "k2"), newRSAKey(t, "k1", 1)
	claims := func(kv ...any) map[string]any {
		c := map[string]any{"iss": issuer, "sub": "system:serviceaccount:ns:ci", "aud": []string{"https://kubernetes.default.svc"},
			"exp": time.Now().Add(time.Hour).Unix(), "nbf": time.Now().Unix()}
		for i := 0; i < len(kv); i += 2 {
			if kv[i+1] == nil {
				delete(c, kv[i].(string))
				continue
			}
			c[kv[i].(string)] = kv[i+1]
		}
		return c
	}

	t.Run("verifies tokens of the published issuer and keys", func(t *testing.T) {
		g := NewWithT(t)
		// jwks_uri names a host outside the cluster: the keys are read where kube-apiserver serves them.
		api := &fakeAPIServer{issuer: issuer, jwksURI: "https://oidc.example.com/keys", keys: []testKey{key}, published: true}
		sa := NewServiceAccountKeys(api.fetch)
		sa.UnknownKidCooldown = time.Hour
		_, verr := sa.Verify(ctx, signToken(t, key, claims()))
		g.Expect(verr.Reason).To(Equal(ReasonNotReady))
		g.Expect(sa.Refresh(ctx)).To(Succeed())
		g.Expect(api.fetched()).To(Equal([]string{wellKnownPath, "/keys", apiServerJWKSPath}))
		st := sa.Status()
		g.Expect([]any{st.Issuer, st.KeysReady, st.Keys, st.NotPublished}).To(Equal([]any{issuer, true, 1, false}))

		got, verr := sa.Verify(ctx, signToken(t, key, claims()))
		g.Expect(verr).ToNot(HaveOccurred())
		g.Expect(got.Expiry).To(BeTemporally("~", time.Now().Add(time.Hour), 2*time.Second))
		for name, c := range map[string]struct {
			token  string
			reason Reason
		}{
			"another issuer":           {signToken(t, key, claims("iss", "https://elsewhere.example")), ReasonWrongIssuer},
			"ISS is not iss":           {signToken(t, key, claims("iss", nil, "ISS", issuer)), ReasonWrongIssuer},
			"another key, same kid":    {signToken(t, other, claims()), ReasonBadSignature},
			"expired":                  {signToken(t, key, claims("exp", time.Now().Add(-time.Minute).Unix())), ReasonExpired},
			"no exp":                   {signToken(t, key, claims("exp", nil)), ReasonExpired},
			"EXP is not exp":           {signToken(t, key, claims("exp", nil, "EXP", time.Now().Add(time.Hour).Unix())), ReasonExpired},
			"not yet valid":            {signToken(t, key, claims("nbf", time.Now().Add(time.Hour).Unix())), ReasonExpired},
			"unsigned":                 {unsignedToken(t, claims()), ReasonUnsupportedAlg},
			"HMAC":                     {signHS256(t, "k1", claims()), ReasonUnsupportedAlg},
			"not a JWT":                {"abc.def", ReasonNotJWT},
			"unknown key id (rotated)": {signToken(t, rotated, claims()), ReasonUnknownKey},
		} {
			_, verr := sa.Verify(ctx, c.token)
			g.Expect(verr).To(HaveOccurred(), name)
			g.Expect(verr.Reason).To(Equal(c.reason), name)
		}
		// The unknown key id refetched once; more of them within the cooldown fetch nothing.
		g.Expect(sa.Status().Fetches).To(BeEquivalentTo(2))
		for range 20 {
			_, _ = sa.Verify(ctx, signToken(t, rotated, claims()))
		}
		g.Expect(sa.Status().Fetches).To(BeEquivalentTo(2))
	})

	t.Run("a rotated key is fetched on its first token", func(t *testing.T) {
		g := NewWithT(t)
		api := &fakeAPIServer{issuer: issuer, jwksURI: issuer + apiServerJWKSPath, keys: []testKey{key}, published: true}
		sa := NewServiceAccountKeys(api.fetch)
		g.Expect(sa.Refresh(ctx)).To(Succeed())
		api.mu.Lock()
		api.keys = []testKey{key, rotated}
		api.mu.Unlock()
		_, verr := sa.Verify(ctx, signToken(t, rotated, claims()))
		g.Expect(verr).ToNot(HaveOccurred())
	})

	t.Run("not published", func(t *testing.T) {
		g := NewWithT(t)
		api := &fakeAPIServer{issuer: issuer, published: false}
		sa := NewServiceAccountKeys(api.fetch)
		g.Expect(sa.Refresh(ctx)).To(MatchError(ErrNotPublished))
		st := sa.Status()
		g.Expect(st.NotPublished).To(BeTrue())
		g.Expect(st.KeysReady).To(BeFalse())
		g.Expect(st.LastError).To(ContainSubstring("403"))
		// Published later: keys load, and survive a later failure.
		api.mu.Lock()
		api.published, api.keys = true, []testKey{key}
		api.mu.Unlock()
		g.Expect(sa.Refresh(ctx)).To(Succeed())
		api.mu.Lock()
		api.published = false
		api.mu.Unlock()
		g.Expect(sa.Refresh(ctx)).To(HaveOccurred())
		_, verr := sa.Verify(ctx, signToken(t, key, claims()))
		g.Expect(verr).ToNot(HaveOccurred(), "the last good keys are kept")
	})
}
