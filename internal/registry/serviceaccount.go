package registry

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/time/rate"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/metrics"

	"dexterity.dev/dexterity/internal/oidc"
)

// The registry reads the cluster's service-account issuer and keys (ServiceAccountIssuerDiscovery)
// with the permission Kubernetes gives every ServiceAccount by default (the ClusterRoleBinding
// system:service-account-issuer-discovery of the group system:serviceaccounts). The install
// grants no non-resource URLs of its own; where a cluster removed that binding, the fallback is
// rate-limited and the OIDCProvider's status says so.

// Rate of the ServiceAccount fallback's TokenReviews where the API server publishes no keys to
// verify tokens against first: per manager process, shared by every provider with
// allowServiceAccountFallback. A token Kubernetes answered for recently (kubeCache) costs nothing.
const (
	serviceAccountReviewRate  = 5 // TokenReviews per second
	serviceAccountReviewBurst = 20
	// apiServerFetchTimeout bounds one GET of the API server's discovery document or keys.
	apiServerFetchTimeout = 10 * time.Second
)

var serviceAccountThrottled = prometheus.NewCounter(prometheus.CounterOpts{
	Name: "dexterity_registry_serviceaccount_fallback_throttled_total",
	Help: "ServiceAccount-fallback tokens answered 503 without a TokenReview because the fallback is rate-limited (the API server publishes no service-account keys to verify them against).",
})

func init() {
	metrics.Registry.MustRegister(serviceAccountThrottled)
}

// serviceAccountFallback is how the registry checks tokens of another issuer for providers with
// allowServiceAccountFallback: verified locally against the keys the API server publishes for
// the cluster's service-account issuer before any TokenReview; where it publishes none, through
// a token bucket.
type serviceAccountFallback struct {
	keys    *oidc.ServiceAccountKeys // nil: no REST config, nothing published to the registry
	limiter *rate.Limiter
}

func newServiceAccountFallback(keys *oidc.ServiceAccountKeys) *serviceAccountFallback {
	return &serviceAccountFallback{keys: keys, limiter: rate.NewLimiter(serviceAccountReviewRate, serviceAccountReviewBurst)}
}

// startServiceAccountFallback reads the service-account issuer and keys through cfg (none when cfg
// is nil) and refreshes them until ctx is done.
func startServiceAccountFallback(ctx context.Context, cfg *rest.Config) (*serviceAccountFallback, error) {
	if cfg == nil {
		return newServiceAccountFallback(nil), nil
	}
	fetch, err := apiServerFetcher(cfg)
	if err != nil {
		return nil, err
	}
	keys := oidc.NewServiceAccountKeys(fetch)
	go keys.Run(ctx)
	return newServiceAccountFallback(keys), nil
}

// apiServerFetcher GETs paths of the API server with cfg's credentials.
func apiServerFetcher(cfg *rest.Config) (oidc.Fetcher, error) {
	dc, err := discovery.NewDiscoveryClientForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("failed to create a client for the API server's service-account keys: %w", err)
	}
	rc := dc.RESTClient()
	return func(ctx context.Context, path string) ([]byte, error) {
		ctx, cancel := context.WithTimeout(ctx, apiServerFetchTimeout)
		defer cancel()
		// The JWKS is served as application/jwk-set+json, the discovery document as JSON.
		body, err := rc.Get().AbsPath(path).SetHeader("Accept", "application/jwk-set+json, application/json").DoRaw(ctx)
		switch {
		case apierrors.IsNotFound(err), apierrors.IsForbidden(err), apierrors.IsUnauthorized(err):
			return nil, fmt.Errorf("%w: GET %s: %v", oidc.ErrNotPublished, path, err)
		case err != nil:
			return nil, fmt.Errorf("failed to GET %s: %w", path, err)
		}
		return body, nil
	}, nil
}

// keysReady reports whether tokens are verified against published keys (else rate-limited).
func (f *serviceAccountFallback) keysReady() bool {
	return f.keys != nil && f.keys.Status().KeysReady
}

var errNotServiceAccountIssuer = &authError{status: http.StatusUnauthorized, path: pathOIDC, reason: string(oidc.ReasonWrongIssuer),
	message: "the token was issued neither by this registry's issuer nor by the cluster's service-account issuer"}

// serviceAccount decides a token of another issuer for a provider with
// allowServiceAccountFallback (claimed is what the token says of itself, unverified):
//   - the cluster's service-account issuer is known: a token of any other issuer ("iss", exactly)
//     is 401 without Kubernetes;
//   - an answer Kubernetes gave about this token a moment ago is used (kubeCache);
//   - keys are published: the token must verify against them (signature, exp, nbf) before a
//     TokenReview, which still decides (a bound token's pod may be gone);
//   - no keys are published (or not loaded yet): TokenReviews through a token bucket, 503 past it.
func (a *authenticator) serviceAccount(ctx context.Context, token string, claimed oidc.Unverified) (*principal, *authError) {
	f := a.sa
	if f.keys != nil {
		if iss := f.keys.Issuer(); iss != "" && claimed.Issuer != iss {
			return nil, errNotServiceAccountIssuer
		}
	}
	if p, ok := a.reviews.cachedToken(token); ok {
		return reviewed(p)
	}
	if f.keysReady() {
		sa, verr := f.keys.Verify(ctx, token)
		if verr != nil {
			return nil, &authError{status: http.StatusUnauthorized, path: pathK8s, reason: "serviceaccount_" + string(verr.Reason),
				message: fmt.Sprintf("invalid token: it claims the cluster's service-account issuer but %s", describeServiceAccountReason(verr.Reason))}
		}
		return a.kubernetes(ctx, token, sa.Expiry, nil)
	}
	return a.kubernetes(ctx, token, claimed.Expiry, f.limiter)
}

func describeServiceAccountReason(r oidc.Reason) string {
	switch r {
	case oidc.ReasonExpired:
		return "is expired or not yet valid"
	case oidc.ReasonBadSignature, oidc.ReasonUnknownKey:
		return "its signature does not verify with the keys the API server publishes"
	case oidc.ReasonUnsupportedAlg:
		return "its signing algorithm is not allowed"
	default:
		return "is malformed"
	}
}

// errThrottled is the rate-limited fallback refusing to ask Kubernetes.
var errThrottled = errors.New("ServiceAccount fallback rate-limited")

// ServiceAccountFallbackStatus says how the registry checks ServiceAccount tokens for providers
// with allowServiceAccountFallback, for the OIDCProvider's status.
type ServiceAccountFallbackStatus struct {
	// KeysPublished is true when tokens are verified against the keys the API server publishes
	// before a TokenReview; false when the fallback is rate-limited instead.
	KeysPublished bool
	// Issuer is the cluster's service-account issuer ("" when unknown).
	Issuer string
	// Keys is the number of keys loaded.
	Keys int
	// Message explains the state (for a condition message).
	Message string
}

// ServiceAccountFallback returns how ServiceAccount tokens are checked now.
func (s *Server) ServiceAccountFallback() ServiceAccountFallbackStatus {
	return s.auth.sa.status()
}

func (f *serviceAccountFallback) status() ServiceAccountFallbackStatus {
	limited := fmt.Sprintf("ServiceAccount tokens go to TokenReview at most %d per second (burst %d) for the whole manager", serviceAccountReviewRate, serviceAccountReviewBurst)
	if f.keys == nil {
		return ServiceAccountFallbackStatus{Message: "the registry does not read the API server's service-account keys (no REST config); " + limited}
	}
	st := f.keys.Status()
	out := ServiceAccountFallbackStatus{KeysPublished: st.KeysReady, Issuer: st.Issuer, Keys: st.Keys}
	switch {
	case st.KeysReady:
		out.Message = fmt.Sprintf("ServiceAccount tokens are verified against the %d keys the API server publishes for issuer %s before a TokenReview; tokens of other issuers are refused", st.Keys, st.Issuer)
	case st.NotPublished:
		out.Message = fmt.Sprintf("the API server publishes no service-account keys to the manager (%s): enable service-account issuer discovery and allow get on /.well-known/openid-configuration and /openid/v1/jwks; meanwhile %s", st.LastError, limited)
	case st.LastError != "":
		out.Message = fmt.Sprintf("the API server's service-account keys could not be loaded yet (%s); meanwhile %s", st.LastError, limited)
	default:
		out.Message = "the API server's service-account keys are loading; meanwhile " + limited
	}
	return out
}
