package harness

import (
	"sigs.k8s.io/controller-runtime/pkg/metrics"
)

// DexCalls is the number of Dex gRPC calls the operator in this process made to provider's Dex
// with method, any result: the sum of dexterity_dex_calls_total{provider, method} in
// controller-runtime's metrics registry (what /metrics serves).
func DexCalls(provider, method string) float64 {
	families, err := metrics.Registry.Gather()
	if err != nil {
		return 0
	}
	var total float64
	for _, f := range families {
		if f.GetName() != "dexterity_dex_calls_total" {
			continue
		}
		for _, m := range f.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			if labels["provider"] == provider && labels["method"] == method {
				total += m.GetCounter().GetValue()
			}
		}
	}
	return total
}
