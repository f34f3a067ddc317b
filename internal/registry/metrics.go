package registry

import (
	"github.com/prometheus/client_golang/prometheus"
	"sigs.k8s.io/controller-runtime/pkg/metrics"
)

var (
	requestsTotal = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "dexterity_registry_requests_total",
		Help: "Registry HTTP requests by route and status code.",
	}, []string{"route", "code"})
	requestDuration = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "dexterity_registry_request_duration_seconds",
		Help:    "Registry HTTP request latency by route.",
		Buckets: []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, 1},
	}, []string{"route"})
	authDecisionsTotal = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "dexterity_registry_auth_decisions_total",
		Help: "Registry authentication and authorization decisions by path (oidc, client, k8s, none), decision (allow, deny, unauthenticated, unavailable) and reason.",
	}, []string{"path", "decision", "reason"})
	tokenCacheTotal = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "dexterity_registry_token_cache_total",
		Help: "Lookups of the verified-token cache by result (hit, miss).",
	}, []string{"result"})
	kubeCacheTotal = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "dexterity_registry_kube_cache_total",
		Help: "Lookups of the cache of Kubernetes answers by review (tokenreview, subjectaccessreview) and result (hit, miss).",
	}, []string{"review", "result"})
)

// Pre-bound series of the hot path.
var (
	tokenCacheHits   = tokenCacheTotal.WithLabelValues("hit")
	tokenCacheMisses = tokenCacheTotal.WithLabelValues("miss")
	kubeTokenHits    = kubeCacheTotal.WithLabelValues("tokenreview", "hit")
	kubeTokenMisses  = kubeCacheTotal.WithLabelValues("tokenreview", "miss")
	kubeAccessHits   = kubeCacheTotal.WithLabelValues("subjectaccessreview", "hit")
	kubeAccessMisses = kubeCacheTotal.WithLabelValues("subjectaccessreview", "miss")
)

// decisionCounter returns the series of one auth decision; the common ones are pre-bound.
func decisionCounter(path, decision, reason string) prometheus.Counter {
	if decision == "allow" && reason == "granted" {
		switch path {
		case pathOIDC:
			return allowOIDC
		case pathClient:
			return allowClient
		}
	}
	return authDecisionsTotal.WithLabelValues(path, decision, reason)
}

var (
	allowOIDC   = authDecisionsTotal.WithLabelValues(pathOIDC, "allow", "granted")
	allowClient = authDecisionsTotal.WithLabelValues(pathClient, "allow", "granted")
)

func init() {
	metrics.Registry.MustRegister(requestsTotal, requestDuration, authDecisionsTotal, tokenCacheTotal, kubeCacheTotal)
}
