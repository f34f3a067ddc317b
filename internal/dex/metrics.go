package dex

import (
	"errors"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"sigs.k8s.io/controller-runtime/pkg/metrics"
)

var (
	callsTotal = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "dexterity_dex_calls_total",
		Help: "Dex gRPC API calls by provider, method and result (ok, not_found, already_exists, unavailable, tls_error, connectors_crud_disabled, error).",
	}, []string{"provider", "method", "result"})
	callDuration = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "dexterity_dex_call_duration_seconds",
		Help:    "Latency of Dex gRPC API calls by method.",
		Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
	}, []string{"method"})
)

func init() {
	metrics.Registry.MustRegister(callsTotal, callDuration)
}

// Result labels of dexterity_dex_calls_total.
const (
	ResultOK                     = "ok"
	ResultNotFound               = "not_found"
	ResultAlreadyExists          = "already_exists"
	ResultUnavailable            = "unavailable"
	ResultTLSError               = "tls_error"
	ResultConnectorsCRUDDisabled = "connectors_crud_disabled"
	ResultError                  = "error"
)

func resultLabel(err error) string {
	switch {
	case err == nil:
		return ResultOK
	case errors.Is(err, ErrNotFound):
		return ResultNotFound
	case errors.Is(err, ErrAlreadyExists):
		return ResultAlreadyExists
	case errors.Is(err, ErrTLS):
		return ResultTLSError
	case errors.Is(err, ErrUnavailable):
		return ResultUnavailable
	case errors.Is(err, ErrConnectorsCRUDDisabled):
		return ResultConnectorsCRUDDisabled
	}
	return ResultError
}

func observe(provider, method string, start time.Time, err error) {
	callsTotal.WithLabelValues(provider, method, resultLabel(err)).Inc()
	callDuration.WithLabelValues(method).Observe(time.Since(start).Seconds())
}
