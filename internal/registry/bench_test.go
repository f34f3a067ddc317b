package registry_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	gooidc "github.com/coreos/go-oidc/v3/oidc"
	. "github.com/onsi/gomega"

	dexv1 "dexterity.dev/dexterity/api/v1alpha1"
	"dexterity.dev/dexterity/internal/registry"
	"dexterity.dev/dexterity/test/harness"
)

// The registry benchmarks of design.md §7. Each runs the server's handler in-process (no network)
// against a baseline measured in the same run, and prints the figures:
//
//	go test ./internal/registry/ -run '^$' -bench . -benchtime 1x
//
// Requests go straight to the handler so that the cost of authentication is compared with the
// cost of serving, not hidden behind TCP.

const benchRequests = 10000

// serve sends n GET requests with Host: host, for paths[i%len] with tokens[i%len], and returns
// the elapsed time; every answer must be code.
func serve(b *testing.B, h http.Handler, host string, paths, tokens []string, n, code int) time.Duration {
	b.Helper()
	reqs := make([]*http.Request, max(len(tokens), len(paths)))
	for i := range reqs {
		r := httptest.NewRequest(http.MethodGet, paths[i%len(paths)], nil)
		r.Host = host
		r.Header.Set("Authorization", "Bearer "+tokens[i%len(tokens)])
		reqs[i] = r
	}
	start := time.Now()
	for i := range n {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, reqs[i%len(reqs)])
		if w.Code != code {
			b.Fatalf("request %d: %d %s", i, w.Code, w.Body.String())
		}
	}
	return time.Since(start)
}

func best(a, b time.Duration) time.Duration {
	if a == 0 || b < a {
		return b
	}
	return a
}

func perSecond(n int, d time.Duration) float64 { return float64(n) / d.Seconds() }

// BenchmarkRepeatedToken: authorised requests/s with one repeated Dex token vs the same server
// with auth off (goal ≥ 0.8×).
func BenchmarkRepeatedToken(b *testing.B) {
	t := &testing.T{}
	tt := newTenant(t, tenantOptions{})
	tt.create(t, module("network", "team-a", "network", "aws", "1.0.0"),
		binding("members", `"team-a" in groups`, []string{"team-a/*"}, nil))
	admin := token(t, dexMain, harness.HarnessClientID, harness.HarnessClientSecret, harness.AdminUser)
	tt.eventuallyCode(t, versionsPath, admin, http.StatusOK)
	if t.Failed() {
		b.Fatal("setup failed")
	}
	h := server.Handler()
	for range b.N {
		// Three alternating rounds; the best round of each side counts (the machine is noisy).
		var off, on time.Duration
		for range 3 {
			registry.SetNoAuth(server, true)
			off = best(off, serve(b, h, tt.host, []string{versionsPath}, []string{admin}, benchRequests, http.StatusOK))
			registry.SetNoAuth(server, false)
			on = best(on, serve(b, h, tt.host, []string{versionsPath}, []string{admin}, benchRequests, http.StatusOK))
		}
		b.Logf("repeated token: auth off %.0f req/s, auth on %.0f req/s, ratio %.2f (goal >= 0.8)",
			perSecond(benchRequests, off), perSecond(benchRequests, on), off.Seconds()/on.Seconds())
		b.ReportMetric(off.Seconds()/on.Seconds(), "ratio")
	}
}

// BenchmarkDistinctTokens: requests/s with 10,000 distinct tokens (every one verified) vs a bare
// go-oidc verify loop over the same tokens (goal ≥ 0.8×), and the JWKS fetches during those
// 10,000 requests (goal 0).
func BenchmarkDistinctTokens(b *testing.B) {
	g := NewWithT(b)
	is, err := harness.StartIssuer()
	g.Expect(err).NotTo(HaveOccurred())
	defer is.Stop()
	t := &testing.T{}
	tt := newTenant(t, tenantOptions{providerConfig: func(p *dexv1.OIDCProvider) {
		p.Spec.IssuerURL = is.URL()
		p.Spec.ClientID = "registry"
		p.Spec.CABundle = string(is.CAPEM())
	}})
	tt.create(t, module("network", "team-a", "network", "aws", "1.0.0"),
		binding("members", `"team-a" in groups`, []string{"team-a/*"}, nil))
	if t.Failed() {
		b.Fatal("setup failed")
	}
	// Three rounds, each with its own 10,000 tokens (a verified token is cached); the best
	// round of each side counts (the machine is noisy).
	var rounds [3][]string
	for r := range rounds {
		rounds[r] = make([]string, benchRequests)
		for i := range rounds[r] {
			rounds[r][i], err = is.Token("registry", fmt.Sprintf("user-%d-%d", r, i), []string{"team-a"}, time.Hour)
			g.Expect(err).NotTo(HaveOccurred())
		}
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(is.CAPEM())
	ctx := gooidc.ClientContext(context.Background(), &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}})
	gp, err := gooidc.NewProvider(ctx, is.URL())
	g.Expect(err).NotTo(HaveOccurred())
	verifier := gp.Verifier(&gooidc.Config{ClientID: "registry"})
	h := server.Handler()
	for range b.N {
		var bare, on time.Duration
		var fetched int64
		for _, tokens := range rounds {
			start := time.Now()
			for _, tok := range tokens {
				if _, err := verifier.Verify(ctx, tok); err != nil {
					b.Fatal(err)
				}
			}
			bare = best(bare, time.Since(start))
			fetches := is.JWKSFetches()
			on = best(on, serve(b, h, tt.host, []string{versionsPath}, tokens, benchRequests, http.StatusOK))
			fetched += is.JWKSFetches() - fetches
		}
		b.Logf("distinct tokens: go-oidc verify %.0f tokens/s, registry %.0f req/s, ratio %.2f (goal >= 0.8); JWKS fetches during %d requests: %d (goal 0)",
			perSecond(benchRequests, bare), perSecond(benchRequests, on), bare.Seconds()/on.Seconds(), 3*benchRequests, fetched)
		b.ReportMetric(bare.Seconds()/on.Seconds(), "ratio")
		b.ReportMetric(float64(fetched), "jwks-fetches")
	}
}

// BenchmarkHundredBindings: time per authorised request when 100 GroupBindings are evaluated
// (the first 99 are false), next to one binding.
func BenchmarkHundredBindings(b *testing.B) {
	t := &testing.T{}
	one := newTenant(t, tenantOptions{})
	one.create(t, module("network", "team-a", "network", "aws", "1.0.0"),
		binding("members", `"team-a" in groups`, []string{"team-a/*"}, nil))
	many := newTenant(t, tenantOptions{})
	many.create(t, module("network", "team-a", "network", "aws", "1.0.0"))
	for i := range 99 {
		many.create(t, binding(fmt.Sprintf("b%03d", i), fmt.Sprintf(`"nobody-%d" in groups || filter(groups, {# startsWith "other-%d:"}) != []`, i, i), []string{"team-a/*"}, nil))
	}
	many.create(t, binding("b999", `"team-a" in groups`, []string{"team-a/*"}, nil))
	admin := token(t, dexMain, harness.HarnessClientID, harness.HarnessClientSecret, harness.AdminUser)
	one.eventuallyCode(t, versionsPath, admin, http.StatusOK)
	many.eventuallyCode(t, versionsPath, admin, http.StatusOK)
	if t.Failed() {
		b.Fatal("setup failed")
	}
	// Every request names another module (404 after authorization), so the decision memo of
	// the cached token never answers and all bindings are evaluated each time.
	paths := make([]string, benchRequests)
	for i := range paths {
		paths[i] = fmt.Sprintf("/v1/modules/team-a/m%d/aws/versions", i)
	}
	h := server.Handler()
	for range b.N {
		d1 := serve(b, h, one.host, paths, []string{admin}, benchRequests, http.StatusNotFound)
		d100 := serve(b, h, many.host, paths, []string{admin}, benchRequests, http.StatusNotFound)
		per1, per100 := d1/benchRequests, d100/benchRequests
		b.Logf("bindings: 1 binding %v/request, 100 bindings %v/request (%.1fx)", per1, per100, float64(per100)/float64(per1))
		b.ReportMetric(float64(per100.Nanoseconds()), "ns/request-100-bindings")
	}
}
