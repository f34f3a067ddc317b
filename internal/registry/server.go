// Package registry is the embedded OpenTofu/Terraform registry server: service discovery with
// login.v1, the modules.v1 and providers.v1 protocols, authentication of Dex tokens against the
// cached JWKS (or of Kubernetes tokens), and GroupBinding authorization.
package registry

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"time"

	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/log"

	dexv1 "dexterity.dev/dexterity/api/v1alpha1"
	"dexterity.dev/dexterity/internal/oidc"
)

// RBAC of the registry: read content, and ask Kubernetes about ServiceAccount tokens.
// +kubebuilder:rbac:groups=dexterity.dev,resources=modules;providers,verbs=get;list;watch
// +kubebuilder:rbac:groups=dexterity.dev,resources=groupbindings;oidcproviders,verbs=get;list;watch
// +kubebuilder:rbac:groups=authentication.k8s.io,resources=tokenreviews,verbs=create
// +kubebuilder:rbac:groups=authorization.k8s.io,resources=subjectaccessreviews,verbs=create

// Paths of the registry protocols, advertised in /.well-known/terraform.json.
const (
	ModulesPath   = "/v1/modules/"
	ProvidersPath = "/v1/providers/"
)

// Options configure a Server.
type Options struct {
	// Addr is the listen address, e.g. ":8443".
	Addr string
	// TLSCertFile and TLSKeyFile enable HTTPS (OpenTofu requires HTTPS registries).
	TLSCertFile, TLSKeyFile string
	// DefaultProvider ("<namespace>/<name>") serves hosts that no OIDCProvider lists.
	DefaultProvider string
	// Keys is the shared key cache (filled by the OIDCProvider key sync on every replica).
	Keys *oidc.Cache
	// Kube creates TokenReviews and SubjectAccessReviews.
	Kube creator
	// TokenCacheSize bounds the verified-token cache (default 10000 entries).
	TokenCacheSize int
	// TokenCacheMaxAge bounds how long a verification is reused (default 5m; never past exp).
	TokenCacheMaxAge time.Duration
	// KubeCacheSize bounds each of the caches of TokenReview and SubjectAccessReview answers
	// (default 4096 entries).
	KubeCacheSize int
}

// Server is the registry HTTP server. It runs on every replica (no leader election).
type Server struct {
	opts  Options
	store *Store
	auth  *authenticator
	mux   *http.ServeMux
	// noAuth serves every request without authentication or authorization; only benchmarks
	// set it, to measure the server's cost with auth off.
	noAuth bool
}

// New builds a Server reading content from the informers of c.
func New(ctx context.Context, c cache.Informers, o Options) (*Server, error) {
	if o.TokenCacheSize <= 0 {
		o.TokenCacheSize = 10000
	}
	if o.TokenCacheMaxAge <= 0 {
		o.TokenCacheMaxAge = 5 * time.Minute
	}
	if (o.TLSCertFile == "") != (o.TLSKeyFile == "") {
		return nil, errors.New("--registry-tls-cert-file and --registry-tls-key-file must be set together")
	}
	store := NewStore(o.DefaultProvider)
	tokens := newTokenCache(o.TokenCacheSize, o.TokenCacheMaxAge)
	// Verifications belong to one provider object and spec: dropped when it goes or changes.
	store.forget = tokens.forget
	s := &Server{
		opts:  o,
		store: store,
		auth:  &authenticator{keys: o.Keys, kube: o.Kube, tokens: tokens, clients: store, reviews: newKubeCache(o.KubeCacheSize)},
	}
	if err := s.store.Watch(ctx, c); err != nil {
		return nil, err
	}
	s.routes()
	return s, nil
}

// Handler returns the server's HTTP handler.
func (s *Server) Handler() http.Handler { return s.mux }

// ReadyCheck is a readiness check (healthz.Checker) for the manager's /readyz: a replica joins
// the registry Service only once its informers have synced and every OIDC-enabled provider's keys
// have been loaded or at least tried once, so a restarted or new replica does not answer 503
// while the others serve. A provider whose issuer is down does not hold readiness back (no
// replica could verify its tokens), and neither does one whose issuer settings are invalid (its
// OIDCProvider reports why).
func (s *Server) ReadyCheck(*http.Request) error {
	if !s.store.Synced() || !s.opts.Keys.Synced() {
		return errors.New("registry: the informer caches have not synced yet")
	}
	for _, key := range s.store.oidcTenants() {
		p, ok := s.opts.Keys.Get(key)
		if !ok {
			continue
		}
		if st := p.Status(); !st.KeysReady && st.LastError == "" {
			return fmt.Errorf("registry: the signing keys of OIDCProvider %s are still loading", key)
		}
	}
	return nil
}

// NeedLeaderElection returns false: every replica serves registry traffic.
func (s *Server) NeedLeaderElection() bool { return false }

// Start serves until ctx is done (manager.Runnable).
func (s *Server) Start(ctx context.Context) error {
	srv := &http.Server{
		Addr:              s.opts.Addr,
		Handler:           s.mux,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		BaseContext:       func(net.Listener) context.Context { return ctx },
	}
	ln, err := net.Listen("tcp", s.opts.Addr)
	if err != nil {
		return fmt.Errorf("failed to listen on %s: %w", s.opts.Addr, err)
	}
	log.FromContext(ctx).WithName("registry").Info("Serving registry", "address", ln.Addr().String(), "tls", s.opts.TLSCertFile != "")
	errc := make(chan error, 1)
	go func() {
		if s.opts.TLSCertFile != "" {
			errc <- srv.ServeTLS(ln, s.opts.TLSCertFile, s.opts.TLSKeyFile)
		} else {
			errc <- srv.Serve(ln)
		}
	}()
	select {
	case err := <-errc:
		return fmt.Errorf("failed to serve registry: %w", err)
	case <-ctx.Done():
		shutdown, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		return srv.Shutdown(shutdown)
	}
}

// Route names (the "route" label of the request metrics).
const (
	routeDiscovery        = "discovery"
	routeModuleVersions   = "module_versions"
	routeModuleDownload   = "module_download"
	routeProviderVersions = "provider_versions"
	routeProviderDownload = "provider_download"
	routeNotFound         = "not_found"
)

func (s *Server) routes() {
	s.mux = http.NewServeMux()
	s.mux.Handle("GET /.well-known/terraform.json", s.instrument(routeDiscovery, s.discovery))
	s.mux.Handle("GET "+ModulesPath+"{ns}/{name}/{system}/versions", s.instrument(routeModuleVersions, s.moduleVersions))
	s.mux.Handle("GET "+ModulesPath+"{ns}/{name}/{system}/{version}/download", s.instrument(routeModuleDownload, s.moduleDownload))
	s.mux.Handle("GET "+ProvidersPath+"{ns}/{type}/versions", s.instrument(routeProviderVersions, s.providerVersions))
	s.mux.Handle("GET "+ProvidersPath+"{ns}/{type}/{version}/download/{os}/{arch}", s.instrument(routeProviderDownload, s.providerDownload))
	s.mux.Handle("/", s.instrument(routeNotFound, func(w http.ResponseWriter, _ *http.Request) {
		writeError(w, http.StatusNotFound, "not found")
	}))
}

type statusWriter struct {
	http.ResponseWriter
	code int
}

func (w *statusWriter) WriteHeader(code int) {
	w.code = code
	w.ResponseWriter.WriteHeader(code)
}

func (s *Server) instrument(route string, h http.HandlerFunc) http.Handler {
	counters := map[int]interface{ Inc() }{}
	for _, code := range []int{200, 204, 401, 403, 404, 503} {
		counters[code] = requestsTotal.WithLabelValues(route, strconv.Itoa(code))
	}
	duration := requestDuration.WithLabelValues(route)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		sw := &statusWriter{ResponseWriter: w, code: http.StatusOK}
		h(sw, r)
		duration.Observe(time.Since(start).Seconds())
		if c, ok := counters[sw.code]; ok {
			c.Inc()
		} else {
			requestsTotal.WithLabelValues(route, strconv.Itoa(sw.code)).Inc()
		}
	})
}

// errorBody is the registry protocol's error document.
type errorBody struct {
	Errors []string `json:"errors"`
}

func writeError(w http.ResponseWriter, code int, msg string) {
	if code == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Bearer realm="dexterity"`)
	}
	if code == http.StatusServiceUnavailable {
		w.Header().Set("Retry-After", "5")
	}
	writeJSON(w, code, errorBody{Errors: []string{msg}})
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

// tenantOf resolves the request's provider, or writes the error and returns nil.
func (s *Server) tenantOf(w http.ResponseWriter, r *http.Request) *tenant {
	if !s.store.Synced() {
		writeError(w, http.StatusServiceUnavailable, "the registry is starting; retry shortly")
		return nil
	}
	t := s.store.tenantFor(r.Host)
	if t == nil {
		writeError(w, http.StatusNotFound, fmt.Sprintf("no registry is served for host %q: list it in an OIDCProvider's spec.hostnames or set --registry-default-provider", r.Host))
		return nil
	}
	return t
}

// access authenticates and authorizes a request for res. It writes the error response and
// returns false when the request may not proceed. objectName is the Kubernetes object serving
// res ("" when none; the caller answers 404 only after access returned true).
func (s *Server) access(w http.ResponseWriter, r *http.Request, t *tenant, res resource, objectName string) bool {
	if s.noAuth {
		return true
	}
	p, aerr := s.auth.authenticate(r.Context(), t, bearerToken(r))
	if aerr != nil {
		decision := "unauthenticated"
		if aerr.status == http.StatusServiceUnavailable {
			decision = "unavailable"
		}
		decisionCounter(aerr.path, decision, aerr.reason).Inc()
		writeError(w, aerr.status, aerr.message)
		return false
	}
	ns := t.provider.Namespace
	if p.path == pathK8s {
		allowed, reason, err := s.auth.authorizeKubernetes(r.Context(), p, ns, res.kind, objectName)
		switch {
		case err != nil:
			decisionCounter(pathK8s, "unavailable", "subjectaccessreview_failed").Inc()
			writeError(w, http.StatusServiceUnavailable, "the registry could not check access with Kubernetes; retry shortly")
			return false
		case !allowed:
			decisionCounter(pathK8s, "deny", "rbac").Inc()
			msg := fmt.Sprintf("Kubernetes RBAC does not allow %s to get this %s in namespace %s", p.name, res.kind, ns)
			if reason != "" {
				msg += ": " + reason
			}
			writeError(w, http.StatusForbidden, msg)
			return false
		}
		decisionCounter(pathK8s, "allow", "rbac").Inc()
		return true
	}
	if p.noGroups {
		decisionCounter(p.path, "deny", "no_groups_claim").Inc()
		writeError(w, http.StatusForbidden, fmt.Sprintf("the token has no %q claim: log in again requesting the groups scope", groupsClaim(t.provider)))
		return false
	}
	d := p.decide(s.store.contentOf(ns), res)
	if !d.allowed {
		decisionCounter(p.path, "deny", d.reason).Inc()
		writeError(w, http.StatusForbidden, d.message)
		return false
	}
	decisionCounter(p.path, "allow", d.reason).Inc()
	return true
}

func groupsClaim(p *dexv1.OIDCProvider) string {
	if p.Spec.GroupsClaim != "" {
		return p.Spec.GroupsClaim
	}
	return "groups"
}
