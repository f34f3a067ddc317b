package authz

import (
	"github.com/prometheus/client_golang/prometheus"
	"sigs.k8s.io/controller-runtime/pkg/metrics"
)

// evaluationDeadlineTotal counts evaluations stopped at their deadline (each one denied a request).
var evaluationDeadlineTotal = prometheus.NewCounter(prometheus.CounterOpts{
	Name: "dexterity_groupbinding_evaluation_deadline_total",
	Help: "GroupBinding expression evaluations stopped at their deadline (the request was denied).",
})

func init() {
	metrics.Registry.MustRegister(evaluationDeadlineTotal)
}
