package webhooks

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"net"
	"net/url"
	"slices"
	"strings"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	claimsv1 "dexterity.dev/dexterity/api/claims/v1alpha1"
	dexv1 "dexterity.dev/dexterity/api/v1alpha1"
	"dexterity.dev/dexterity/internal/tenancy"
)

// +kubebuilder:webhook:path=/validate-dexterity-dev-v1alpha1-oidcprovider,mutating=false,failurePolicy=fail,sideEffects=None,groups=dexterity.dev,resources=oidcproviders,verbs=create;update,versions=v1alpha1,name=voidcprovider.dexterity.dev,admissionReviewVersions=v1

// OIDCProviderValidator validates OIDCProviders: the single-object rules, and registry host
// names another provider already serves.
type OIDCProviderValidator struct {
	Client client.Reader
}

var _ admission.CustomValidator = &OIDCProviderValidator{}

// ValidateCreate implements admission.CustomValidator.
func (v *OIDCProviderValidator) ValidateCreate(ctx context.Context, obj runtime.Object) (admission.Warnings, error) {
	p, ok := obj.(*dexv1.OIDCProvider)
	if !ok {
		return nil, fmt.Errorf("expected an OIDCProvider, got %T", obj)
	}
	w, errs := ValidateOIDCProvider(p)
	more, err := v.hostnames(ctx, p, nil)
	if err != nil {
		return w, err
	}
	return w, invalid("OIDCProvider", p.Name, append(errs, more...))
}

// ValidateUpdate implements admission.CustomValidator: a changed spec is checked; of the host
// names, only those added by this update (a host it already lists stays its own problem, reported
// in its status, and must not block unrelated changes).
func (v *OIDCProviderValidator) ValidateUpdate(ctx context.Context, oldObj, obj runtime.Object) (admission.Warnings, error) {
	return checkChanged(oldObj, obj, func(p *dexv1.OIDCProvider) any { return p.Spec },
		func(p *dexv1.OIDCProvider) (admission.Warnings, error) {
			w, errs := ValidateOIDCProvider(p)
			old, _ := oldObj.(*dexv1.OIDCProvider)
			more, err := v.hostnames(ctx, p, old)
			if err != nil {
				return w, err
			}
			return w, invalid("OIDCProvider", p.Name, append(errs, more...))
		})
}

// hostnames refuses host names in spec.hostnames that another provider already serves (first
// come, first served), except those old already listed.
func (v *OIDCProviderValidator) hostnames(ctx context.Context, p, old *dexv1.OIDCProvider) (field.ErrorList, error) {
	if v.Client == nil || len(p.Spec.Hostnames) == 0 {
		return nil, nil
	}
	var all dexv1.OIDCProviderList
	if err := v.Client.List(ctx, &all); err != nil {
		return nil, fmt.Errorf("failed to list OIDCProviders: %w", err)
	}
	had := map[string]bool{}
	if old != nil {
		for _, h := range old.Spec.Hostnames {
			had[tenancy.NormalizeHostname(h)] = true
		}
	}
	var errs field.ErrorList
	conflicts := tenancy.HostnameConflicts(p, all.Items)
	// The claims decide (an atomic record per host): a host claimed by another provider is
	// refused even when that provider's listing is not in the cache yet.
	for _, raw := range p.Spec.Hostnames {
		h := tenancy.NormalizeHostname(raw)
		cl := &claimsv1.HostnameClaim{}
		err := v.Client.Get(ctx, types.NamespacedName{Name: tenancy.HostnameClaimName(h)}, cl)
		if apierrors.IsNotFound(err) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("failed to get the claim on registry host %s: %w", h, err)
		}
		holder := cl.Spec.Provider
		if (holder.Namespace != p.Namespace || holder.Name != p.Name) && !slices.ContainsFunc(conflicts, func(c tenancy.HostnameConflict) bool { return c.Host == h }) {
			conflicts = append(conflicts, tenancy.HostnameConflict{Host: h, Holder: types.NamespacedName{Namespace: holder.Namespace, Name: holder.Name}})
		}
	}
	for _, c := range conflicts {
		if had[c.Host] {
			continue
		}
		i := slices.IndexFunc(p.Spec.Hostnames, func(h string) bool { return tenancy.NormalizeHostname(h) == c.Host })
		errs = append(errs, field.Forbidden(field.NewPath("spec", "hostnames").Index(i),
			fmt.Sprintf("registry host %q is already served by OIDCProvider %s (first come, first served); remove it from spec.hostnames, or have that provider give it up first", c.Host, c.Holder)))
	}
	return errs, nil
}

// ValidateDelete implements admission.CustomValidator.
func (v *OIDCProviderValidator) ValidateDelete(context.Context, runtime.Object) (admission.Warnings, error) {
	return nil, nil
}

// ValidateOIDCProvider checks one OIDCProvider on its own.
func ValidateOIDCProvider(p *dexv1.OIDCProvider) (admission.Warnings, field.ErrorList) {
	var errs field.ErrorList
	var warns admission.Warnings
	spec := field.NewPath("spec")
	s := &p.Spec
	oidcOn := p.OIDCEnabled()
	if oidcOn && s.UseBearerToken {
		errs = append(errs, field.Invalid(spec.Child("useBearerToken"), true,
			"bearer-token mode and OIDC are mutually exclusive; set spec.enabled=false for bearer mode, or keep OIDC and set spec.allowServiceAccountFallback=true for service-account tokens"))
	}
	if !oidcOn && s.AllowServiceAccountFallback {
		errs = append(errs, field.Invalid(spec.Child("allowServiceAccountFallback"), true,
			"service-account fallback only applies when OIDC is on; set spec.enabled=true, or remove it (bearer mode already sends every token to Kubernetes)"))
	}
	if !oidcOn && s.AllowClientCredentials {
		errs = append(errs, field.Invalid(spec.Child("allowClientCredentials"), true,
			"client-credentials tokens are verified with OIDC; set spec.enabled=true or remove spec.allowClientCredentials"))
	}
	if u, err := url.Parse(s.IssuerURL); err != nil || !u.IsAbs() || u.Host == "" {
		errs = append(errs, field.Invalid(spec.Child("issuerUrl"), s.IssuerURL, "must be an absolute URL, e.g. https://dex.example.com/dex"))
	} else if u.Scheme != "https" {
		switch {
		case u.Scheme == "http" && isLoopback(u.Hostname()):
		case u.Scheme == "http" && isInCluster(u.Hostname()):
			warns = append(warns, fmt.Sprintf("spec.issuerUrl: %s is plain http; fine inside the cluster, but browsers and tofu login must reach the same issuer URL", s.IssuerURL))
		default:
			errs = append(errs, field.Invalid(spec.Child("issuerUrl"), s.IssuerURL, "must use https (http is allowed only for loopback hosts and in-cluster *.svc / *.cluster.local hosts)"))
		}
	}
	for _, f := range []struct {
		name, val string
	}{{"authzUrl", s.AuthzURL}, {"tokenUrl", s.TokenURL}, {"discoveryUrl", s.DiscoveryURL}} {
		if f.val == "" {
			continue
		}
		if u, err := url.Parse(f.val); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			errs = append(errs, field.Invalid(spec.Child(f.name), f.val, "must be an absolute http(s) URL, e.g. https://dex.example.com/dex/"+strings.TrimSuffix(f.name, "Url")))
		}
	}
	if d := s.Dex; d != nil && d.Insecure {
		if host, _, err := net.SplitHostPort(d.GRPCAddress); err != nil || !isLoopback(host) {
			errs = append(errs, field.Invalid(spec.Child("dex", "insecure"), true,
				fmt.Sprintf("plaintext gRPC is allowed only with a loopback spec.dex.grpcAddress (localhost, 127.0.0.1, ::1), not %q: anyone on the network path could administer this Dex; "+
					"remove spec.dex.insecure and set spec.dex.tls.secretRef (Secret with ca.crt, tls.crt and tls.key for mutual TLS)", d.GRPCAddress)))
		}
	}
	if s.CABundle != "" {
		if err := checkPEM([]byte(s.CABundle)); err != nil {
			errs = append(errs, field.Invalid(spec.Child("caBundle"), "<PEM>", err.Error()))
		}
	}
	return warns, errs
}

func checkPEM(data []byte) error {
	n := 0
	for {
		var b *pem.Block
		b, data = pem.Decode(data)
		if b == nil {
			break
		}
		if b.Type != "CERTIFICATE" {
			return fmt.Errorf("holds a %q PEM block; only CERTIFICATE blocks belong in a CA bundle", b.Type)
		}
		if _, err := x509.ParseCertificate(b.Bytes); err != nil {
			return fmt.Errorf("certificate %d does not parse: %v; paste the CA certificate(s) in PEM form", n+1, err)
		}
		n++
	}
	if n == 0 {
		return fmt.Errorf("holds no PEM certificate; paste the CA certificate(s) as -----BEGIN CERTIFICATE----- blocks")
	}
	return nil
}

func isLoopback(host string) bool { return tenancy.LoopbackHost(host) }

func isInCluster(host string) bool {
	return strings.HasSuffix(host, ".svc") || strings.HasSuffix(host, ".cluster.local")
}
