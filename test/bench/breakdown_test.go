package bench

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/metrics"
)

// timing is a histogram's count and sum (seconds) for one label set.
type timing struct{ count, sum float64 }

// timings are histograms' count and sum by "<what> <labels>", for the time breakdown of a
// measured phase (after minus before).
type timings map[string]timing

func (t timings) sub(o timings) {
	for k, v := range o {
		c := t[k]
		c.count -= v.count
		c.sum -= v.sum
		if c.count == 0 {
			delete(t, k)
			continue
		}
		t[k] = c
	}
}

func (t timings) String() string {
	var sb strings.Builder
	fmt.Fprintf(&sb, "  %-62s %8s %9s %9s\n", "", "count", "total s", "mean ms")
	for _, k := range slices.Sorted(maps.Keys(t)) {
		v := t[k]
		fmt.Fprintf(&sb, "  %-62s %8.0f %9.2f %9.2f\n", k, v.count, v.sum, 1000*v.sum/v.count)
	}
	return sb.String()
}

// addHistograms adds the histograms of families named in keyLabels, keyed by the family's short
// name and the values of its key labels.
func (t timings) addHistograms(families map[string]*dto.MetricFamily, keyLabels map[string][]string) {
	for name, labels := range keyLabels {
		for _, m := range families[name].GetMetric() {
			l := map[string]string{}
			for _, p := range m.GetLabel() {
				l[p.GetName()] = p.GetValue()
			}
			parts := []string{name}
			for _, k := range labels {
				if l[k] != "" {
					parts = append(parts, l[k])
				}
			}
			key := strings.Join(parts, " ")
			v := t[key]
			v.count += float64(m.GetHistogram().GetSampleCount())
			v.sum += m.GetHistogram().GetSampleSum()
			t[key] = v
		}
	}
}

// apiServerMetrics reads kube-apiserver's /metrics.
func apiServerMetrics(b *testing.B) map[string]*dto.MetricFamily {
	hc, err := rest.HTTPClientFor(restConfig)
	if err != nil {
		b.Fatal(err)
	}
	resp, err := hc.Get(strings.TrimSuffix(restConfig.Host, "/") + "/metrics")
	if err != nil {
		b.Fatal(err)
	}
	defer resp.Body.Close()
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		b.Fatal(err)
	}
	return families
}

// breakdown reads where the time of the measured phase goes:
//   - kube-apiserver: requests by verb and resource, with the time it spent serving them
//     (apiserver_request_duration_seconds);
//   - the controllers (in this process): time in the work queues before a reconcile
//     (workqueue_queue_duration_seconds), reconcile time by controller
//     (controller_runtime_reconcile_time_seconds), Dex gRPC calls by method
//     (dexterity_dex_call_duration_seconds), and client-side API request latency by verb
//     (rest_client_request_duration_seconds: the benchmark's 8 writers share this process and are
//     counted too).
func breakdown(b *testing.B) timings {
	out := timings{}
	out.addHistograms(apiServerMetrics(b), map[string][]string{"apiserver_request_duration_seconds": {"verb", "resource", "subresource"}})
	gathered, err := metrics.Registry.Gather()
	if err != nil {
		b.Fatal(err)
	}
	local := map[string]*dto.MetricFamily{}
	for _, f := range gathered {
		local[f.GetName()] = f
	}
	out.addHistograms(local, map[string][]string{
		"workqueue_queue_duration_seconds":          {"name"},
		"controller_runtime_reconcile_time_seconds": {"controller"},
		"dexterity_dex_call_duration_seconds":       {"method"},
		"rest_client_request_duration_seconds":      {"verb"},
	})
	for k := range out {
		// Watches and the API server's own long-running requests are not work of the phase.
		if strings.Contains(k, " WATCH") || strings.HasPrefix(k, "apiserver_request_duration_seconds CONNECT") {
			delete(out, k)
		}
	}
	return out
}
