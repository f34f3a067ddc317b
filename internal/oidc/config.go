// Package oidc verifies OIDC (Dex) JSON Web Tokens locally against a cached JWKS.
//
// A Issuer holds one issuer's discovery document and signing keys; Verify never
// contacts the issuer on the happy path. Keys are refreshed in the background by a
// Cache, and at most once per UnknownKidCooldown when a token names a key id that is
// not in the cached set (key rotation at the issuer).
package oidc

import (
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"net/url"
	"slices"
	"strings"
	"time"
)

// Defaults applied by NewIssuer to zero-valued Config fields.
const (
	defaultUsernameClaim      = "sub"
	defaultGroupsClaim        = "groups"
	defaultRefreshInterval    = time.Hour
	defaultUnknownKidCooldown = 30 * time.Second
	defaultHTTPTimeout        = 10 * time.Second
)

// wellKnownPath is the discovery document path relative to an issuer (OIDC Discovery 1.0 §4).
const wellKnownPath = "/.well-known/openid-configuration"

// RequiredClaim is a claim a token must carry. An empty Value only requires the claim to
// be present; otherwise the claim must equal Value (non-string claims are compared by
// their fmt.Sprint form).
type RequiredClaim struct {
	Name  string
	Value string
}

// Config describes one OIDC issuer and how its tokens map to identities.
type Config struct {
	// IssuerURL must equal the tokens' "iss" claim and the discovery document's "issuer".
	IssuerURL string
	// DiscoveryURL, if set, is where discovery and the JWKS are fetched from instead of
	// IssuerURL (split network: the issuer's public name does not resolve in-cluster).
	// "/.well-known/openid-configuration" is appended unless already present. When set,
	// a discovered jwks_uri whose host equals IssuerURL's host (port normalised to the
	// scheme's default) has its scheme and host rewritten to DiscoveryURL's; any other
	// jwks_uri, and the authorization and token endpoints, are used as returned.
	DiscoveryURL string
	// CABundle is PEM. When set, it holds the only roots trusted for discovery and JWKS TLS.
	CABundle []byte
	// Audiences are the accepted "aud" values; a token matches if any of its audiences is listed.
	Audiences []string
	// UsernameClaim names the claim mapped to Identity.Username (default "sub").
	UsernameClaim string
	// GroupsClaim names the claim mapped to Identity.Groups (default "groups").
	GroupsClaim string
	// UsernamePrefix is prepended to the username.
	UsernamePrefix string
	// GroupsPrefix is prepended to every group.
	GroupsPrefix string
	// RequiredClaims must all be satisfied by a token.
	RequiredClaims []RequiredClaim
	// RefreshInterval is the background refresh period (default 1h), jittered by ±10%.
	RefreshInterval time.Duration
	// UnknownKidCooldown bounds JWKS fetches triggered by unknown key ids to one per
	// cooldown (default 30s).
	UnknownKidCooldown time.Duration
	// HTTPTimeout bounds each discovery or JWKS request (default 10s).
	HTTPTimeout time.Duration
}

// Validate checks the config without network access: IssuerURL and DiscoveryURL must be
// absolute http(s) URLs, https unless the host is loopback (localhost, 127.0.0.0/8, ::1)
// or in-cluster (*.svc, *.svc.cluster.local, *.cluster.local); CABundle, if set, must be
// PEM certificates; Audiences must be non-empty.
func (c Config) Validate() error {
	if c.IssuerURL == "" {
		return errors.New("issuer URL is required")
	}
	if err := validateURL(c.IssuerURL); err != nil {
		return fmt.Errorf("invalid issuer URL: %w", err)
	}
	if c.DiscoveryURL != "" {
		if err := validateURL(c.DiscoveryURL); err != nil {
			return fmt.Errorf("invalid discovery URL: %w", err)
		}
	}
	if len(c.CABundle) > 0 {
		if _, err := parseCABundle(c.CABundle); err != nil {
			return fmt.Errorf("invalid CA bundle: %w", err)
		}
	}
	if len(c.Audiences) == 0 {
		return errors.New("at least one audience is required")
	}
	for i, a := range c.Audiences {
		if a == "" {
			return fmt.Errorf("audience %d is empty", i)
		}
	}
	for i, rc := range c.RequiredClaims {
		if rc.Name == "" {
			return fmt.Errorf("required claim %d has an empty name", i)
		}
	}
	if c.RefreshInterval < 0 {
		return errors.New("refresh interval must not be negative")
	}
	if c.UnknownKidCooldown < 0 {
		return errors.New("unknown key id cooldown must not be negative")
	}
	if c.HTTPTimeout < 0 {
		return errors.New("HTTP timeout must not be negative")
	}
	return nil
}

// withDefaults returns c with zero-valued optional fields set to their defaults.
func (c Config) withDefaults() Config {
	if c.UsernameClaim == "" {
		c.UsernameClaim = defaultUsernameClaim
	}
	if c.GroupsClaim == "" {
		c.GroupsClaim = defaultGroupsClaim
	}
	if c.RefreshInterval == 0 {
		c.RefreshInterval = defaultRefreshInterval
	}
	if c.UnknownKidCooldown == 0 {
		c.UnknownKidCooldown = defaultUnknownKidCooldown
	}
	if c.HTTPTimeout == 0 {
		c.HTTPTimeout = defaultHTTPTimeout
	}
	return c
}

// clone returns a deep copy of c, so callers cannot mutate a Issuer's config.
func (c Config) clone() Config {
	c.CABundle = slices.Clone(c.CABundle)
	c.Audiences = slices.Clone(c.Audiences)
	c.RequiredClaims = slices.Clone(c.RequiredClaims)
	return c
}

func validateURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil {
		return fmt.Errorf("failed to parse %q: %w", raw, err)
	}
	if !u.IsAbs() {
		return fmt.Errorf("%q must be an absolute http(s) URL", raw)
	}
	if u.Scheme != "https" && u.Scheme != "http" {
		return fmt.Errorf("%q must use https (or http for loopback and in-cluster hosts)", raw)
	}
	if u.Host == "" || u.Hostname() == "" {
		return fmt.Errorf("%q must be an absolute URL with a host", raw)
	}
	if u.User != nil {
		return fmt.Errorf("%q must not contain user information", raw)
	}
	if u.RawQuery != "" || u.Fragment != "" {
		return fmt.Errorf("%q must not contain a query or fragment", raw)
	}
	if u.Scheme == "http" && !isLoopbackOrInClusterHost(u.Hostname()) {
		return fmt.Errorf("%q must use https: http is only allowed for loopback and in-cluster (*.svc, *.cluster.local) hosts", raw)
	}
	return nil
}

// isLoopbackOrInClusterHost reports whether host is localhost, a loopback IP, or a
// Kubernetes service DNS name.
func isLoopbackOrInClusterHost(host string) bool {
	h := strings.TrimSuffix(strings.ToLower(host), ".")
	if h == "localhost" {
		return true
	}
	if ip := net.ParseIP(h); ip != nil {
		return ip.IsLoopback()
	}
	for _, suffix := range []string{".svc", ".svc.cluster.local", ".cluster.local"} {
		if strings.HasSuffix(h, suffix) && len(h) > len(suffix) {
			return true
		}
	}
	return false
}

// parseCABundle parses PEM data that must hold at least one certificate and nothing else.
func parseCABundle(data []byte) (*x509.CertPool, error) {
	pool := x509.NewCertPool()
	rest := data
	n := 0
	for {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			break
		}
		if block.Type != "CERTIFICATE" {
			return nil, fmt.Errorf("unexpected PEM block %q: only CERTIFICATE blocks are allowed", block.Type)
		}
		cert, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("failed to parse certificate %d: %w", n+1, err)
		}
		pool.AddCert(cert)
		n++
	}
	if len(strings.TrimSpace(string(rest))) != 0 {
		return nil, errors.New("failed to parse PEM: trailing data is not a PEM block")
	}
	if n == 0 {
		return nil, errors.New("failed to parse PEM: no certificates found")
	}
	return pool, nil
}

// discoveryDocumentURL returns where the discovery document is fetched from.
func (c Config) discoveryDocumentURL() string {
	base := c.IssuerURL
	if c.DiscoveryURL != "" {
		base = c.DiscoveryURL
		if strings.HasSuffix(base, wellKnownPath) {
			return base
		}
	}
	return strings.TrimSuffix(base, "/") + wellKnownPath
}

// rewriteJWKSURI applies the split-network rule documented on Config.DiscoveryURL.
func (c Config) rewriteJWKSURI(jwksURI string) (string, error) {
	if c.DiscoveryURL == "" {
		return jwksURI, nil
	}
	j, err := url.Parse(jwksURI)
	if err != nil {
		return "", fmt.Errorf("failed to parse jwks_uri %q: %w", jwksURI, err)
	}
	iss, err := url.Parse(c.IssuerURL)
	if err != nil {
		return "", fmt.Errorf("failed to parse issuer URL %q: %w", c.IssuerURL, err)
	}
	if normalizedHost(j) != normalizedHost(iss) {
		return jwksURI, nil
	}
	d, err := url.Parse(c.DiscoveryURL)
	if err != nil {
		return "", fmt.Errorf("failed to parse discovery URL %q: %w", c.DiscoveryURL, err)
	}
	j.Scheme = d.Scheme
	j.Host = d.Host
	return j.String(), nil
}

// normalizedHost returns "host:port" in lower case with the scheme's default port filled in.
func normalizedHost(u *url.URL) string {
	port := u.Port()
	if port == "" {
		switch u.Scheme {
		case "https":
			port = "443"
		case "http":
			port = "80"
		}
	}
	return net.JoinHostPort(strings.ToLower(strings.TrimSuffix(u.Hostname(), ".")), port)
}
