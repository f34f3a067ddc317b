package webhooks

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"net"
	"net/url"
	"strings"

	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	dexv1 "dexterity.dev/dexterity/api/v1alpha1"
)

// +kubebuilder:webhook:path=/validate-dexterity-dev-v1alpha1-oidcprovider,mutating=false,failurePolicy=fail,sideEffects=None,groups=dexterity.dev,resources=oidcproviders,verbs=create;update,versions=v1alpha1,name=voidcprovider.dexterity.dev,admissionReviewVersions=v1

// OIDCProviderValidator validates OIDCProviders.
type OIDCProviderValidator struct{}

var _ admission.CustomValidator = &OIDCProviderValidator{}

// ValidateCreate implements admission.CustomValidator.
func (v *OIDCProviderValidator) ValidateCreate(_ context.Context, obj runtime.Object) (admission.Warnings, error) {
	p, ok := obj.(*dexv1.OIDCProvider)
	if !ok {
		return nil, fmt.Errorf("expected an OIDCProvider, got %T", obj)
	}
	w, errs := ValidateOIDCProvider(p)
	return w, invalid("OIDCProvider", p.Name, errs)
}

// ValidateUpdate implements admission.CustomValidator: a changed spec is checked.
func (v *OIDCProviderValidator) ValidateUpdate(ctx context.Context, oldObj, obj runtime.Object) (admission.Warnings, error) {
	return checkChanged(oldObj, obj, func(p *dexv1.OIDCProvider) any { return p.Spec },
		func(p *dexv1.OIDCProvider) (admission.Warnings, error) { return v.ValidateCreate(ctx, p) })
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

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func isInCluster(host string) bool {
	return strings.HasSuffix(host, ".svc") || strings.HasSuffix(host, ".cluster.local")
}

func parseAbsolute(raw string) (*url.URL, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, err
	}
	if !u.IsAbs() || u.Host == "" {
		return nil, fmt.Errorf("not absolute")
	}
	return u, nil
}
