package oidc

import (
	"slices"
	"time"

	dexv1 "dexterity.dev/dexterity/api/v1alpha1"
	"dexterity.dev/dexterity/internal/tenancy"
)

// ProviderConfig is the key-cache configuration of an OIDCProvider's spec, and the only
// translation of that spec into a Config: the cache's writer builds issuers from it, and the
// readers (the OIDCProvider controller's status, the registry's verification) ask the cache for
// the issuer built from exactly this config (Cache.Lookup), so none of them works the spec's
// defaults out on its own. Defaults the spec leaves open (usernameClaim, groupsClaim, the refresh
// interval) stay zero here and are applied by the Issuer.
func ProviderConfig(p *dexv1.OIDCProvider) Config {
	cfg := Config{
		IssuerURL:       p.Spec.IssuerURL,
		DiscoveryURL:    p.Spec.DiscoveryURL,
		Audiences:       slices.Clone(tenancy.Audiences(p)),
		UsernameClaim:   p.Spec.UsernameClaim,
		GroupsClaim:     p.Spec.GroupsClaim,
		UsernamePrefix:  p.Spec.UsernamePrefix,
		GroupsPrefix:    p.Spec.GroupsPrefix,
		RefreshInterval: time.Duration(p.Spec.JWKSRefreshIntervalSeconds) * time.Second,
	}
	if p.Spec.CABundle != "" {
		cfg.CABundle = []byte(p.Spec.CABundle)
	}
	for _, rc := range p.Spec.RequiredClaims {
		cfg.RequiredClaims = append(cfg.RequiredClaims, RequiredClaim{Name: rc.Name, Value: rc.Value})
	}
	return cfg
}
