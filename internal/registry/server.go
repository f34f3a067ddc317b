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
	"sync"
	"time"

	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/log"

	dexv1 "dexterity.dev/dexterity/api/v1alpha1"
	"dexterity.dev/dexterity/internal/authz"
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
	// RESTConfig is the manager's REST config. With it the registry reads the cluster's
	// service-account issuer and the keys the API server publishes for it, and the
	// ServiceAccount fallback verifies tokens against them before any TokenReview; without it
	// (or where the API server publishes no keys) the fallback's TokenReviews are rate-limited.
	RESTConfig *rest.Config
	// RequestTimeout bounds every request (default DefaultRequestTimeout): past it the client
	// gets 503, and the request's context is done, which stops its Kubernetes calls and its
	// GroupBinding evaluation.
	RequestTimeout time.Duration
}

// DefaultRequestTimeout is the default of Options.RequestTimeout.
const DefaultRequestTimeout = 10 * time.Second

// Server is the registry HTTP server. It runs on every replica (no leader election).
type Server struct {
	opts  Options
	store *Store
	auth  *authenticator
	mux   *http.ServeMux
	// handler is mux behind the bounds every request is checked against first (boundedRequest).
	handler http.Handler
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
	if o.RequestTimeout <= 0 {
		o.RequestTimeout = DefaultRequestTimeout
	}
	if (o.TLSCertFile == "") != (o.TLSKeyFile == "") {
		return nil, errors.New("--registry-tls-cert-file and --registry-tls-key-file must be set together")
	}
	store := NewStore(o.DefaultProvider)
	tokens := newTokenCache(o.TokenCacheSize, o.TokenCacheMaxAge)
	// Verifications belong to one provider object and spec: dropped when it goes or changes.
	store.forget = tokens.forget
	clients := newClients()
	sa, err := startServiceAccountFallback(ctx, o.RESTConfig)
	if err != nil {
		return nil, err
	}
	s := &Server{
		opts:  o,
		store: store,
		auth: &authenticator{keys: o.Keys, kube: o.Kube, tokens: tokens, clients: clients, reviews: newKubeCache(o.KubeCacheSize),
			sa: sa},
	}
	if err := s.store.Watch(ctx, c); err != nil {
		return nil, err
	}
	// Client identities (clients.go) have their own handlers; the registry serves once they
	// have synced too.
	if err := clients.watch(ctx, c); err != nil {
		return nil, err
	}
	s.store.synced = append(s.store.synced, clients.hasSynced)
	s.routes()
	return s, nil
}

// Handler returns the server's HTTP handler.
func (s *Server) Handler() http.Handler { return s.handler }

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
		issuer, ok := s.opts.Keys.Get(key)
		if !ok {
			continue
		}
		if st := issuer.Status(); !st.KeysReady && st.LastError == "" {
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
		Handler:           s.handler,
		ReadHeaderTimeout: 10 * time.Second,
		// Headers hold a bearer token of at most maxTokenBytes, and little else.
		MaxHeaderBytes: maxTokenBytes + 32<<10,
		IdleTimeout:    2 * time.Minute,
		BaseContext:    func(net.Listener) context.Context { return ctx },
		// Handlers answer within the request deadline (instrument); writing the answer to a
		// slow reader gets a little more.
		WriteTimeout: s.requestTimeout() + 10*time.Second,
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
	s.handler = s.boundedRequest(s.mux)
}

// maxHostBytes is the longest Host header served: a DNS name (253 bytes) and a port.
const maxHostBytes = 253 + len(":65535")

// boundedRequest answers 404, before routing, any lookup, token verification or Kubernetes call,
// a request with a path segment longer than authz.MaxSegmentBytes (registry names are short; a
// longer one could only make glob matching and lookups costlier) or a Host longer than a DNS
// name with a port.
func (s *Server) boundedRequest(next http.Handler) http.Handler {
	tooLong := s.instrument(routeNotFound, func(w http.ResponseWriter, _ *http.Request) {
		writeError(w, http.StatusNotFound, fmt.Sprintf("not found: a path segment is longer than %d bytes", authz.MaxSegmentBytes))
	})
	unknownHost := s.instrument(routeNotFound, func(w http.ResponseWriter, _ *http.Request) {
		writeError(w, http.StatusNotFound, fmt.Sprintf("no registry is served for this host: it is longer than %d bytes", maxHostBytes))
	})
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case !segmentsBounded(r.URL.EscapedPath()):
			tooLong.ServeHTTP(w, r)
		case len(r.Host) > maxHostBytes:
			unknownHost.ServeHTTP(w, r)
		default:
			next.ServeHTTP(w, r)
		}
	})
}

// requestTimeout is Options.RequestTimeout or its default.
func (s *Server) requestTimeout() time.Duration {
	if s.opts.RequestTimeout > 0 {
		return s.opts.RequestTimeout
	}
	return DefaultRequestTimeout
}

type statusWriter struct {
	http.ResponseWriter
	code int
}

func (w *statusWriter) WriteHeader(code int) {
	w.code = code
	w.ResponseWriter.WriteHeader(code)
}

// instrument serves route with h under the request deadline (the request's context is done
// past it, which ends every wait and evaluation of the request: the handler answers 503 at
// once) and counts it in the request metrics.
func (s *Server) instrument(route string, h http.HandlerFunc) http.Handler {
	counters := map[int]interface{ Inc() }{}
	for _, code := range []int{200, 204, 401, 403, 404, 503} {
		counters[code] = requestsTotal.WithLabelValues(route, strconv.Itoa(code))
	}
	duration := requestDuration.WithLabelValues(route)
	timeout := s.requestTimeout()
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		ctx := &requestDeadline{Context: r.Context(), deadline: start.Add(timeout)}
		defer ctx.stop()
		sw := &statusWriter{ResponseWriter: w, code: http.StatusOK}
		h(sw, r.WithContext(ctx))
		duration.Observe(time.Since(start).Seconds())
		if c, ok := counters[sw.code]; ok {
			c.Inc()
		} else {
			requestsTotal.WithLabelValues(route, strconv.Itoa(sw.code)).Inc()
		}
	})
}

// requestDeadline is a request's context with the request deadline. The timer that closes Done
// at the deadline is made only when something waits on Done (a Kubernetes call, a key fetch):
// most requests never wait, and Err reads the clock instead (a timer per request would cost a
// quarter of a cached request).
type requestDeadline struct {
	context.Context // the request's own
	deadline        time.Time
	mu              sync.Mutex
	timer           context.Context // made by Done
	cancel          context.CancelFunc
}

func (c *requestDeadline) Deadline() (time.Time, bool) {
	if d, ok := c.Context.Deadline(); ok && d.Before(c.deadline) {
		return d, true
	}
	return c.deadline, true
}

func (c *requestDeadline) Done() <-chan struct{} {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.timer == nil {
		c.timer, c.cancel = context.WithDeadline(c.Context, c.deadline)
	}
	return c.timer.Done()
}

func (c *requestDeadline) Err() error {
	c.mu.Lock()
	timer := c.timer
	c.mu.Unlock()
	if timer != nil {
		return timer.Err()
	}
	if err := c.Context.Err(); err != nil {
		return err
	}
	if !time.Now().Before(c.deadline) {
		return context.DeadlineExceeded
	}
	return nil
}

// stop releases the timer, if Done made one.
func (c *requestDeadline) stop() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.cancel != nil {
		c.cancel()
	}
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
	if aerr != nil && s.pastDeadline(r) {
		// Authentication waited (for Kubernetes, or keys) until the request's deadline.
		aerr = &authError{status: http.StatusServiceUnavailable, path: aerr.path, reason: "request_deadline", message: s.deadlineMessage()}
	}
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
		case err != nil && s.pastDeadline(r):
			decisionCounter(pathK8s, "unavailable", "request_deadline").Inc()
			writeError(w, http.StatusServiceUnavailable, s.deadlineMessage())
			return false
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
	d := p.decide(r.Context(), s.store.contentOf(ns), res)
	if !d.allowed && s.pastDeadline(r) {
		// The request's deadline, not the binding, cut the evaluation short.
		decisionCounter(p.path, "unavailable", "request_deadline").Inc()
		writeError(w, http.StatusServiceUnavailable, s.deadlineMessage())
		return false
	}
	if !d.allowed {
		decisionCounter(p.path, "deny", d.reason).Inc()
		writeError(w, http.StatusForbidden, d.message)
		return false
	}
	decisionCounter(p.path, "allow", d.reason).Inc()
	return true
}

// pastDeadline reports whether the request ran past its deadline (Options.RequestTimeout).
func (s *Server) pastDeadline(r *http.Request) bool {
	return errors.Is(r.Context().Err(), context.DeadlineExceeded)
}

func (s *Server) deadlineMessage() string {
	return fmt.Sprintf("the request ran past the registry's %s deadline; retry shortly", s.requestTimeout())
}

func groupsClaim(p *dexv1.OIDCProvider) string {
	if p.Spec.GroupsClaim != "" {
		return p.Spec.GroupsClaim
	}
	return "groups"
}
