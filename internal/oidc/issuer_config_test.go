package oidc

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/pem"
	"strings"
	"sync"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

func TestValidate(t *testing.T) {
	iss := newTestIssuer(t)
	base := func(mut func(*Config)) Config {
		c := Config{IssuerURL: "https://dex.example.com", Audiences: []string{"a"}}
		mut(&c)
		return c
	}
	cases := []struct {
		name    string
		cfg     Config
		wantErr string // "" = valid
	}{
		{"https issuer", base(func(*Config) {}), ""},
		{"missing issuer", base(func(c *Config) { c.IssuerURL = "" }), "issuer URL is required"},
		{"relative issuer", base(func(c *Config) { c.IssuerURL = "/dex" }), "absolute"},
		{"ftp issuer", base(func(c *Config) { c.IssuerURL = "ftp://dex.example.com" }), "https"},
		{"http non-loopback rejected", base(func(c *Config) { c.IssuerURL = "http://dex.example.com" }), "must use https"},
		{"http public IP rejected", base(func(c *Config) { c.IssuerURL = "http://10.0.0.1:5556" }), "must use https"},
		{"http localhost", base(func(c *Config) { c.IssuerURL = "http://localhost:5556/dex" }), ""},
		{"http 127.0.0.0/8", base(func(c *Config) { c.IssuerURL = "http://127.1.2.3:5556" }), ""},
		{"http ::1", base(func(c *Config) { c.IssuerURL = "http://[::1]:5556" }), ""},
		{"http svc", base(func(c *Config) { c.IssuerURL = "http://dex.dex.svc:5556" }), ""},
		{"http svc.cluster.local", base(func(c *Config) { c.IssuerURL = "http://dex.dex.svc.cluster.local:5556/dex" }), ""},
		{"http cluster.local", base(func(c *Config) { c.IssuerURL = "http://dex.cluster.local" }), ""},
		{"http fake svc suffix rejected", base(func(c *Config) { c.IssuerURL = "http://dex.svc.example.com" }), "must use https"},
		{"query rejected", base(func(c *Config) { c.IssuerURL = "https://dex.example.com?x=1" }), "query"},
		{"http discovery URL in cluster", base(func(c *Config) { c.DiscoveryURL = "http://dex.dex.svc:5556" }), ""},
		{"http discovery URL public rejected", base(func(c *Config) { c.DiscoveryURL = "http://dex.internal.example.com" }), "invalid discovery URL"},
		{"no audiences", base(func(c *Config) { c.Audiences = nil }), "audience"},
		{"empty audience", base(func(c *Config) { c.Audiences = []string{""} }), "audience 0 is empty"},
		{"bad PEM", base(func(c *Config) { c.CABundle = []byte("not a pem") }), "invalid CA bundle"},
		{"PEM with bad certificate", base(func(c *Config) {
			c.CABundle = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: []byte("garbage")})
		}), "invalid CA bundle"},
		{"PEM private key rejected", base(func(c *Config) {
			c.CABundle = pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: []byte("x")})
		}), "invalid CA bundle"},
		{"good PEM", base(func(c *Config) { c.CABundle = iss.caPEM() }), ""},
		{"required claim without name", base(func(c *Config) { c.RequiredClaims = []RequiredClaim{{Value: "x"}} }), "required claim"},
		{"negative refresh", base(func(c *Config) { c.RefreshInterval = -time.Second }), "refresh interval"},
		{"short refresh allowed", base(func(c *Config) { c.RefreshInterval = 200 * time.Millisecond }), ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			err := tc.cfg.Validate()
			if tc.wantErr == "" {
				g.Expect(err).NotTo(HaveOccurred())
				_, err = NewIssuer(tc.cfg)
				g.Expect(err).NotTo(HaveOccurred())
				return
			}
			g.Expect(err).To(MatchError(ContainSubstring(tc.wantErr)))
			_, err = NewIssuer(tc.cfg)
			g.Expect(err).To(HaveOccurred())
		})
	}
}

func TestConfigReturnsConfigAsGiven(t *testing.T) {
	g := NewWithT(t)
	cfg := Config{IssuerURL: "https://dex.example.com", Audiences: []string{"a"}}
	p, err := NewIssuer(cfg)
	g.Expect(err).NotTo(HaveOccurred())
	got := p.Config()
	g.Expect(got).To(Equal(cfg))
	got.Audiences[0] = "mutated"
	g.Expect(p.Config().Audiences).To(Equal([]string{"a"}))
	g.Expect(p.cfg.UsernameClaim).To(Equal("sub"))
	g.Expect(p.cfg.GroupsClaim).To(Equal("groups"))
	g.Expect(p.cfg.RefreshInterval).To(Equal(time.Hour))
	g.Expect(p.cfg.UnknownKidCooldown).To(Equal(30 * time.Second))
	g.Expect(p.cfg.HTTPTimeout).To(Equal(10 * time.Second))
}

func TestRefreshTLSTrust(t *testing.T) {
	iss := newTestIssuer(t, newRSAKey(t, "k1", 0))
	ctx := context.Background()

	t.Run("without CA bundle the issuer's certificate is not trusted", func(t *testing.T) {
		g := NewWithT(t)
		cfg := iss.config()
		cfg.CABundle = nil
		p, err := NewIssuer(cfg)
		g.Expect(err).NotTo(HaveOccurred())
		err = p.Refresh(ctx)
		g.Expect(err).To(HaveOccurred())
		g.Expect(err.Error()).To(Or(ContainSubstring("x509"), ContainSubstring("certificate")))
		st := p.Status()
		g.Expect(st.DiscoveryReady).To(BeFalse())
		g.Expect(st.DiscoveryError).To(ContainSubstring("certificate"))
		g.Expect(st.LastError).To(ContainSubstring("certificate"))
		g.Expect(st.KeysReady).To(BeFalse())
	})

	t.Run("with CA bundle discovery and keys load", func(t *testing.T) {
		g := NewWithT(t)
		p, err := NewIssuer(iss.config())
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(p.Refresh(ctx)).To(Succeed())
		st := p.Status()
		g.Expect(st.DiscoveryReady).To(BeTrue())
		g.Expect(st.DiscoveryError).To(BeEmpty())
		g.Expect(st.JWKSURI).To(Equal(iss.URL() + "/keys"))
		g.Expect(st.AuthorizationEndpoint).To(Equal(iss.URL() + "/auth"))
		g.Expect(st.TokenEndpoint).To(Equal(iss.URL() + "/token"))
		g.Expect(st.KeysReady).To(BeTrue())
		g.Expect(st.Keys).To(Equal(1))
		g.Expect(st.LastError).To(BeEmpty())
		g.Expect(st.LastFetch).NotTo(BeZero())
		g.Expect(st.Fetches).To(BeEquivalentTo(1))
	})
}

func TestDiscoveryIssuerMismatch(t *testing.T) {
	g := NewWithT(t)
	iss := newTestIssuer(t, newRSAKey(t, "k1", 0))
	iss.setAdvertisedIssuer("https://evil.example.com")
	p, err := NewIssuer(iss.config())
	g.Expect(err).NotTo(HaveOccurred())
	err = p.Refresh(context.Background())
	g.Expect(err).To(HaveOccurred())
	g.Expect(err.Error()).To(ContainSubstring(`"https://evil.example.com"`))
	g.Expect(err.Error()).To(ContainSubstring(`"` + iss.URL() + `"`))
	st := p.Status()
	g.Expect(st.DiscoveryReady).To(BeFalse())
	g.Expect(st.DiscoveryError).To(ContainSubstring("does not match"))
	g.Expect(st.Fetches).To(BeZero(), "no JWKS fetch after a rejected discovery document")
}

func TestDiscoveryURLSplitNetwork(t *testing.T) {
	const publicIssuer = "https://dex.example.com/dex"
	key := newRSAKey(t, "k1", 0)
	iss := newTestIssuer(t, key)
	// The issuer advertises its public name; only the in-cluster address is reachable.
	iss.setAdvertisedIssuer(publicIssuer)
	iss.setJWKSBase("https://dex.example.com")

	for name, discoveryURL := range map[string]string{
		"base URL":       iss.URL(),
		"well-known URL": iss.URL() + "/.well-known/openid-configuration",
	} {
		t.Run(name, func(t *testing.T) {
			g := NewWithT(t)
			cfg := iss.config()
			cfg.IssuerURL = publicIssuer
			cfg.DiscoveryURL = discoveryURL
			p, err := NewIssuer(cfg)
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(p.Refresh(context.Background())).To(Succeed())
			st := p.Status()
			g.Expect(st.JWKSURI).To(Equal(iss.URL()+"/keys"), "jwks_uri on the issuer's host is rewritten to the discovery host")
			g.Expect(st.AuthorizationEndpoint).To(Equal(publicIssuer+"/auth"), "browser endpoints are kept as returned")
			g.Expect(st.TokenEndpoint).To(Equal(publicIssuer + "/token"))

			id, err := p.Verify(context.Background(), signToken(t, key, iss.claims(map[string]any{"iss": publicIssuer})))
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(id.Subject).To(Equal("user-1"))
		})
	}

	t.Run("jwks_uri on another host is kept", func(t *testing.T) {
		g := NewWithT(t)
		cfg := Config{IssuerURL: publicIssuer, DiscoveryURL: "https://dex.dex.svc:5556", Audiences: []string{"a"}}
		got, err := cfg.rewriteJWKSURI("https://keys.example.org/keys")
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(got).To(Equal("https://keys.example.org/keys"))
		got, err = cfg.rewriteJWKSURI("https://DEX.example.com:443/dex/keys")
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(got).To(Equal("https://dex.dex.svc:5556/dex/keys"))
	})
}

func readyProvider(t testing.TB, iss *testIssuer, mut func(*Config)) *Issuer {
	t.Helper()
	cfg := iss.config()
	if mut != nil {
		mut(&cfg)
	}
	p, err := NewIssuer(cfg)
	if err != nil {
		t.Fatalf("failed to create provider: %v", err)
	}
	if err := p.Refresh(context.Background()); err != nil {
		t.Fatalf("failed to refresh: %v", err)
	}
	return p
}

func TestVerifyValidToken(t *testing.T) {
	rsaK := newRSAKey(t, "rsa-1", 0)
	ecK := newECKey(t, "ec-1")
	iss := newTestIssuer(t, rsaK, ecK)
	p := readyProvider(t, iss, func(c *Config) {
		c.Audiences = []string{"other", testAudience}
		c.UsernameClaim = "email"
		c.UsernamePrefix = "oidc:"
		c.GroupsPrefix = "oidc:"
		c.RequiredClaims = []RequiredClaim{{Name: "email_verified", Value: "true"}, {Name: "tenant"}, {Name: "level", Value: "1000000"}}
	})
	extra := map[string]any{"email_verified": true, "tenant": "acme", "level": 1000000}

	for _, key := range []testKey{rsaK, ecK} {
		t.Run(string(key.alg), func(t *testing.T) {
			g := NewWithT(t)
			id, err := p.Verify(context.Background(), signToken(t, key, iss.claims(extra)))
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(id.Subject).To(Equal("user-1"))
			g.Expect(id.Username).To(Equal("oidc:alice@example.com"))
			g.Expect(id.Groups).To(Equal([]string{"oidc:dev", "oidc:ops"}))
			g.Expect(id.HasGroupsClaim).To(BeTrue())
			g.Expect(id.Audience).To(Equal([]string{testAudience}))
			g.Expect(id.AuthorizedParty).To(Equal("cli"))
			g.Expect(id.Expiry).To(BeTemporally("~", time.Now().Add(time.Hour), 5*time.Second))
			claims, err := id.Claims()
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(claims).To(HaveKeyWithValue("tenant", "acme"))
		})
	}

	t.Run("defaults, string groups claim, array audience", func(t *testing.T) {
		g := NewWithT(t)
		p := readyProvider(t, iss, nil)
		id, err := p.Verify(context.Background(), signToken(t, rsaK, iss.claims(map[string]any{
			"groups": "admins", "aud": []string{"x", testAudience},
		})))
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(id.Username).To(Equal("user-1"))
		g.Expect(id.Groups).To(Equal([]string{"admins"}))
		g.Expect(id.Audience).To(Equal([]string{"x", testAudience}))
	})

	t.Run("defaults: claim names are case-sensitive, bad groups refused", func(t *testing.T) {
		g := NewWithT(t)
		p := readyProvider(t, iss, nil)
		id, err := p.Verify(context.Background(), signToken(t, rsaK, iss.claims(map[string]any{
			"groups": nil, "GROUPS": []string{"admins"}, "Groups": "admins",
		})))
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(id.HasGroupsClaim).To(BeFalse(), "GROUPS and Groups are not the groups claim")
		_, err = p.Verify(context.Background(), signToken(t, rsaK, iss.claims(map[string]any{"groups": []any{"a", 1}})))
		g.Expect(ReasonOf(err)).To(Equal(ReasonMissingClaim))
		_, err = p.Verify(context.Background(), signToken(t, rsaK, iss.claims(map[string]any{"sub": 42})))
		g.Expect(err).To(HaveOccurred(), "a non-string sub is no username")
	})

	t.Run("absent groups claim", func(t *testing.T) {
		g := NewWithT(t)
		id, err := p.Verify(context.Background(), signToken(t, rsaK, iss.claims(map[string]any{
			"groups": nil, "email_verified": true, "tenant": "acme", "level": 1000000,
		})))
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(id.Groups).To(BeNil())
		g.Expect(id.HasGroupsClaim).To(BeFalse())
	})

	t.Run("token without kid tries every key", func(t *testing.T) {
		g := NewWithT(t)
		_, err := p.Verify(context.Background(), signTokenKid(t, ecK, "", iss.claims(extra)))
		g.Expect(err).NotTo(HaveOccurred())
	})
}

func TestVerifyRejections(t *testing.T) {
	key := newRSAKey(t, "k1", 0)
	other := newRSAKey(t, "k1", 1) // same kid, key unknown to the issuer
	iss := newTestIssuer(t, key)
	p := readyProvider(t, iss, func(c *Config) {
		c.RequiredClaims = []RequiredClaim{{Name: "tenant", Value: "acme"}}
	})
	ok := map[string]any{"tenant": "acme"}
	with := func(kv ...any) map[string]any {
		m := map[string]any{"tenant": "acme"}
		for i := 0; i < len(kv); i += 2 {
			m[kv[i].(string)] = kv[i+1]
		}
		return iss.claims(m)
	}
	valid := signToken(t, key, iss.claims(ok))
	parts := strings.Split(valid, ".")
	tampered := parts[0] + "." + b64(`{"iss":"`+iss.URL()+`","sub":"admin","aud":"registry","exp":9999999999,"tenant":"acme"}`) + "." + parts[2]

	cases := []struct {
		name   string
		token  string
		reason Reason
		detail string
	}{
		{"expired", signToken(t, key, with("exp", time.Now().Add(-time.Minute).Unix())), ReasonExpired, "expired"},
		{"no exp", signToken(t, key, with("exp", nil)), ReasonExpired, "no exp"},
		{"not yet valid", signToken(t, key, with("nbf", time.Now().Add(time.Hour).Unix())), ReasonExpired, "nbf"},
		{"wrong audience", signToken(t, key, with("aud", "someone-else")), ReasonWrongAudience, ""},
		{"tampered payload", tampered, ReasonBadSignature, ""},
		{"signed by another key with a known kid", signToken(t, other, iss.claims(ok)), ReasonBadSignature, "k1"},
		{"HS256", signHS256(t, "k1", iss.claims(ok)), ReasonUnsupportedAlg, "HS256"},
		{"alg none", unsignedToken(t, iss.claims(ok)), ReasonUnsupportedAlg, "none"},
		{"another issuer", signToken(t, key, with("iss", "https://other.example.com")), ReasonWrongIssuer, "https://other.example.com"},
		{"no issuer", signToken(t, key, with("iss", nil)), ReasonWrongIssuer, ""},
		{"not a JWT", "opaque-access-token", ReasonNotJWT, ""},
		{"two segments", "abc.def", ReasonNotJWT, ""},
		{"JWE-like five segments", "a.b.c.d.e", ReasonNotJWT, ""},
		{"payload not JSON", b64(`{"alg":"RS256"}`) + "." + b64("hello") + ".sig", ReasonNotJWT, ""},
		{"JSON serialization", `{"payload":"e30","signatures":[]}`, ReasonNotJWT, ""},
		{"required claim missing", signToken(t, key, with("tenant", nil)), ReasonMissingClaim, `"tenant"`},
		{"required claim wrong", signToken(t, key, with("tenant", "evil")), ReasonMissingClaim, `"tenant"`},
		{"username claim missing", signToken(t, key, with("sub", nil)), ReasonMissingClaim, `"sub"`},
		{"groups claim of wrong type", signToken(t, key, with("groups", 42)), ReasonMissingClaim, `"groups"`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			id, err := p.Verify(context.Background(), tc.token)
			g.Expect(id).To(BeNil())
			g.Expect(err).To(HaveOccurred())
			var ve *VerifyError
			g.Expect(err).To(BeAssignableToTypeOf(ve))
			g.Expect(ReasonOf(err)).To(Equal(tc.reason), err.Error())
			g.Expect(err.Error()).To(HavePrefix(string(tc.reason) + ": "))
			g.Expect(err.Error()).To(ContainSubstring(tc.detail))
			g.Expect(err.Error()).NotTo(ContainSubstring(tc.token), "errors must not contain the token")
		})
	}

	t.Run("VerifyForAnyAudience skips only the audience check", func(t *testing.T) {
		g := NewWithT(t)
		id, err := p.VerifyForAnyAudience(context.Background(), signToken(t, key, with("aud", "client-a")))
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(id.Audience).To(Equal([]string{"client-a"}))

		_, err = p.VerifyForAnyAudience(context.Background(), signToken(t, key, with("aud", "client-a", "exp", time.Now().Add(-time.Minute).Unix())))
		g.Expect(ReasonOf(err)).To(Equal(ReasonExpired))
		_, err = p.VerifyForAnyAudience(context.Background(), signToken(t, key, with("aud", "client-a", "iss", "https://other.example.com")))
		g.Expect(ReasonOf(err)).To(Equal(ReasonWrongIssuer))
		_, err = p.VerifyForAnyAudience(context.Background(), tampered)
		g.Expect(ReasonOf(err)).To(Equal(ReasonBadSignature))
		_, err = p.VerifyForAnyAudience(context.Background(), signToken(t, key, with("aud", "client-a", "tenant", nil)))
		g.Expect(ReasonOf(err)).To(Equal(ReasonMissingClaim))
	})

	t.Run("no JWKS fetch was triggered by any rejection", func(t *testing.T) {
		NewWithT(t).Expect(p.Status().Fetches).To(BeEquivalentTo(1))
	})
}

func TestReasonOf(t *testing.T) {
	g := NewWithT(t)
	g.Expect(ReasonOf(nil)).To(BeEmpty())
	g.Expect(ReasonOf(context.Canceled)).To(BeEmpty())
	err := &VerifyError{Reason: ReasonExpired, Detail: "x"}
	g.Expect(ReasonOf(err)).To(Equal(ReasonExpired))
	g.Expect(err.Error()).To(Equal("expired: x"))
}

func TestVerifyBeforeKeysLoaded(t *testing.T) {
	g := NewWithT(t)
	key := newRSAKey(t, "k1", 0)
	iss := newTestIssuer(t, key)
	p, err := NewIssuer(iss.config())
	g.Expect(err).NotTo(HaveOccurred())
	_, err = p.Verify(context.Background(), signToken(t, key, iss.claims(nil)))
	g.Expect(ReasonOf(err)).To(Equal(ReasonNotReady))
	g.Expect(string(ReasonNotReady)).To(Equal("keys_not_loaded"))
	g.Expect(iss.jwksHits.Load()).To(BeZero(), "Verify does not fetch keys that were never loaded")
}

func TestKeyRotationFetchesOnce(t *testing.T) {
	g := NewWithT(t)
	k1 := newRSAKey(t, "k1", 0)
	k2 := newRSAKey(t, "k2", 1)
	iss := newTestIssuer(t, k1)
	p := readyProvider(t, iss, nil)
	ctx := context.Background()
	g.Expect(p.Status().Fetches).To(BeEquivalentTo(1))

	_, err := p.Verify(ctx, signToken(t, k1, iss.claims(nil)))
	g.Expect(err).NotTo(HaveOccurred())

	iss.setKeys(k2)
	tok := signToken(t, k2, iss.claims(nil))
	_, err = p.Verify(ctx, tok)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(p.Status().Fetches).To(BeEquivalentTo(2))
	g.Expect(iss.jwksHits.Load()).To(BeEquivalentTo(2))
	g.Expect(iss.discoveryHits.Load()).To(BeEquivalentTo(1), "an unknown kid refetches only the JWKS")

	for range 10 {
		_, err = p.Verify(ctx, tok)
		g.Expect(err).NotTo(HaveOccurred())
	}
	g.Expect(iss.jwksHits.Load()).To(BeEquivalentTo(2), "the new key is cached")

	// k1 was rotated out: within the cooldown its tokens fail without another fetch.
	_, err = p.Verify(ctx, signToken(t, k1, iss.claims(nil)))
	g.Expect(ReasonOf(err)).To(Equal(ReasonUnknownKey))
	g.Expect(iss.jwksHits.Load()).To(BeEquivalentTo(2))
}

func TestUnknownKidCooldown(t *testing.T) {
	g := NewWithT(t)
	key := newECKey(t, "k1")
	iss := newTestIssuer(t, key)
	p := readyProvider(t, iss, func(c *Config) { c.UnknownKidCooldown = time.Minute })
	claims := iss.claims(nil)

	tokens := make([]string, 1000)
	for i := range tokens {
		kid := make([]byte, 8)
		_, _ = rand.Read(kid)
		tokens[i] = signTokenKid(t, key, hex.EncodeToString(kid), claims)
	}

	var wg sync.WaitGroup
	reasons := make([]Reason, len(tokens))
	const workers = 8
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < len(tokens); i += workers {
				_, err := p.Verify(context.Background(), tokens[i])
				reasons[i] = ReasonOf(err)
			}
		}()
	}
	wg.Wait()
	for _, r := range reasons {
		g.Expect(r).To(Equal(ReasonUnknownKey))
	}
	g.Expect(iss.jwksHits.Load()).To(BeNumerically("<=", 2), "at most one extra fetch per cooldown")
	g.Expect(p.Status().Fetches).To(BeNumerically("<=", 2))

	// The known key still verifies without a fetch.
	_, err := p.Verify(context.Background(), signToken(t, key, claims))
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(iss.jwksHits.Load()).To(BeNumerically("<=", 2))
}

func TestConcurrentVerifyAndRefresh(t *testing.T) {
	g := NewWithT(t)
	k1 := newECKey(t, "k1")
	k2 := newECKey(t, "k2")
	iss := newTestIssuer(t, k1)
	p := readyProvider(t, iss, func(c *Config) { c.UnknownKidCooldown = time.Millisecond })
	tok1 := signToken(t, k1, iss.claims(nil))
	tok2 := signToken(t, k2, iss.claims(nil))

	stop := make(chan struct{})
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				if _, err := p.Verify(context.Background(), tok1); err != nil {
					errs <- err
					return
				}
				_, _ = p.Verify(context.Background(), tok2) // k2 comes and goes
			}
		}()
	}
	for i := range 20 {
		if i%2 == 0 {
			iss.setKeys(k1, k2)
		} else {
			iss.setKeys(k1)
		}
		g.Expect(p.Refresh(context.Background())).To(Succeed())
	}
	close(stop)
	wg.Wait()
	close(errs)
	for err := range errs {
		g.Expect(err).NotTo(HaveOccurred())
	}
}

func TestIssuerDownKeepsKeys(t *testing.T) {
	g := NewWithT(t)
	key := newRSAKey(t, "k1", 0)
	iss := newTestIssuer(t, key)
	p := readyProvider(t, iss, nil)
	tok := signToken(t, key, iss.claims(nil))
	before := p.Status()

	iss.stop()
	err := p.Refresh(context.Background())
	g.Expect(err).To(HaveOccurred())
	st := p.Status()
	g.Expect(st.LastError).NotTo(BeEmpty())
	g.Expect(st.LastError).To(Equal(err.Error()))
	g.Expect(st.DiscoveryError).NotTo(BeEmpty())
	g.Expect(st.DiscoveryReady).To(BeTrue(), "the last good discovery document is kept")
	g.Expect(st.JWKSURI).To(Equal(before.JWKSURI))
	g.Expect(st.KeysReady).To(BeTrue())
	g.Expect(st.Keys).To(Equal(1))
	g.Expect(st.LastFetch).To(Equal(before.LastFetch))

	id, err := p.Verify(context.Background(), tok)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(id.Subject).To(Equal("user-1"))
}

func TestFailedJWKSFetchKeepsKeys(t *testing.T) {
	g := NewWithT(t)
	key := newRSAKey(t, "k1", 0)
	iss := newTestIssuer(t, key)
	p := readyProvider(t, iss, nil)
	tok := signToken(t, key, iss.claims(nil))

	for name, raw := range map[string]string{
		"no usable keys": `{"keys":[{"kty":"oct","k":"c2VjcmV0","kid":"h1"},{"kty":"RSA","use":"enc","n":"AQAB","e":"AQAB"}]}`,
		"empty set":      `{"keys":[]}`,
		"not JSON":       `<html>`,
	} {
		iss.setRawJWKS([]byte(raw))
		err := p.Refresh(context.Background())
		g.Expect(err).To(HaveOccurred(), name)
		g.Expect(err.Error()).To(ContainSubstring("failed to parse JWKS"), name)
		st := p.Status()
		g.Expect(st.LastError).To(ContainSubstring("failed to parse JWKS"), name)
		g.Expect(st.DiscoveryError).To(BeEmpty(), name)
		g.Expect(st.KeysReady).To(BeTrue(), name)
		g.Expect(st.Keys).To(Equal(1), name)
		_, err = p.Verify(context.Background(), tok)
		g.Expect(err).NotTo(HaveOccurred(), name)
	}

	iss.setRawJWKS(nil)
	g.Expect(p.Refresh(context.Background())).To(Succeed())
	g.Expect(p.Status().LastError).To(BeEmpty())
}

func TestLastFetchAdvancesWithUnchangedKeys(t *testing.T) {
	g := NewWithT(t)
	iss := newTestIssuer(t, newRSAKey(t, "k1", 0))
	p := readyProvider(t, iss, nil)
	first := p.Status()
	g.Expect(p.Refresh(context.Background())).To(Succeed())
	second := p.Status()
	g.Expect(second.LastFetch).To(BeTemporally(">", first.LastFetch))
	g.Expect(second.Fetches).To(Equal(first.Fetches + 1))
	g.Expect(second.Keys).To(Equal(first.Keys))
}

func TestUnverifiedIssuer(t *testing.T) {
	g := NewWithT(t)
	key := newECKey(t, "k1")
	tok := signToken(t, key, map[string]any{"iss": "https://dex.example.com", "sub": "x"})
	iss, ok := UnverifiedIssuer(tok)
	g.Expect(ok).To(BeTrue())
	g.Expect(iss).To(Equal("https://dex.example.com"))

	iss, ok = UnverifiedIssuer(signToken(t, key, map[string]any{"sub": "x"}))
	g.Expect(ok).To(BeTrue())
	g.Expect(iss).To(BeEmpty())

	for _, raw := range []string{"", "opaque", "a.b", "a.b.c", b64(`{}`) + "." + b64(`[1]`) + ".x"} {
		iss, ok = UnverifiedIssuer(raw)
		g.Expect(ok).To(BeFalse(), raw)
		g.Expect(iss).To(BeEmpty())
	}
}

func TestMetrics(t *testing.T) {
	g := NewWithT(t)
	key := newRSAKey(t, "k1", 0)
	iss := newTestIssuer(t, key)
	label := iss.URL() // providers made by NewIssuer are labelled by issuer
	// Ports may be reused by servers of earlier tests: compare deltas.
	value := func(c *prometheus.CounterVec, result string) float64 {
		return testutil.ToFloat64(c.WithLabelValues(label, result))
	}
	fetchOK, fetchErr := value(jwksFetchesTotal, "ok"), value(jwksFetchesTotal, "error")
	verifyOK, verifyNotJWT := value(verificationsTotal, "ok"), value(verificationsTotal, string(ReasonNotJWT))

	p := readyProvider(t, iss, nil)
	g.Expect(value(jwksFetchesTotal, "ok") - fetchOK).To(BeEquivalentTo(1))
	g.Expect(testutil.ToFloat64(keysGauge.WithLabelValues(label))).To(BeEquivalentTo(1))

	_, err := p.Verify(context.Background(), signToken(t, key, iss.claims(nil)))
	g.Expect(err).NotTo(HaveOccurred())
	_, err = p.Verify(context.Background(), "garbage")
	g.Expect(err).To(HaveOccurred())
	g.Expect(value(verificationsTotal, "ok") - verifyOK).To(BeEquivalentTo(1))
	g.Expect(value(verificationsTotal, string(ReasonNotJWT)) - verifyNotJWT).To(BeEquivalentTo(1))

	iss.setRawJWKS([]byte(`{"keys":[]}`))
	g.Expect(p.Refresh(context.Background())).NotTo(Succeed())
	g.Expect(value(jwksFetchesTotal, "error") - fetchErr).To(BeEquivalentTo(1))
	g.Expect(testutil.ToFloat64(keysGauge.WithLabelValues(label))).To(BeEquivalentTo(1), "keys are kept")
}
