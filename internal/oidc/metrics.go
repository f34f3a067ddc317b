package oidc

import (
	"github.com/prometheus/client_golang/prometheus"
	"sigs.k8s.io/controller-runtime/pkg/metrics"
)

// Result labels of dexterity_oidc_jwks_fetches_total; dexterity_oidc_verifications_total
// uses resultOK or a Reason.
const (
	resultOK    = "ok"
	resultError = "error"
)

var (
	jwksFetchesTotal = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "dexterity_oidc_jwks_fetches_total",
		Help: "JWKS fetches by OIDC provider and result (ok, error).",
	}, []string{"provider", "result"})
	keysGauge = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "dexterity_oidc_keys",
		Help: "Number of usable signing keys cached for an OIDC provider.",
	}, []string{"provider"})
	verificationsTotal = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "dexterity_oidc_verifications_total",
		Help: "Token verifications by OIDC provider and result (ok, or the rejection reason).",
	}, []string{"provider", "result"})
)

func init() {
	metrics.Registry.MustRegister(jwksFetchesTotal, keysGauge, verificationsTotal)
}

// forgetMetrics drops the per-provider series of a removed provider.
func forgetMetrics(provider string) {
	keysGauge.DeleteLabelValues(provider)
	jwksFetchesTotal.DeletePartialMatch(prometheus.Labels{"provider": provider})
	verificationsTotal.DeletePartialMatch(prometheus.Labels{"provider": provider})
}
