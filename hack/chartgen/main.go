// Command chartgen writes Dexterity's Helm chart (charts/dexterity) from config/: `make chart`.
//
// The chart is not written by hand, so that it cannot drift from the kustomize install and the
// OLM bundle: chartgen renders `kustomize build config/default` and `kustomize build
// config/prometheus` with bin/kustomize and turns every object into a template (objects.go),
// substituting values where a platform team expects them (values.go documents each one):
//
//   - Namespace: left out; the chart installs into the release namespace (`helm install -n
//     <ns> --create-namespace`), and every reference to config/default's namespace
//     (metadata.namespace, RoleBinding subjects, the webhook configurations' Service) becomes
//     the release namespace. Names stay config/default's (`dexterity-...`): they are the
//     manager's flag defaults and the RBAC resourceNames, and the operator is one per cluster.
//   - CustomResourceDefinitions → templates/crds/, installed and upgraded with the release
//     (not Helm's crds/ folder, which Helm never upgrades), kept on uninstall
//     (helm.sh/resource-policy: keep) unless crds.keep=false; Dex's storage CRDs
//     (dex.coreos.com) only with crds.dexStorage.
//   - The manager Deployment: image, replicas, leader election, resources, node placement, pod
//     annotations and labels, the metrics port, the registry port and TLS Secret, the webhook
//     certificate from cert-manager instead of the self-managed one, extra args and env.
//   - The webhook-cert RBAC only with the self-managed certificate; the tenant roles and their
//     aggregation on request.
//   - config/prometheus's ServiceMonitor, PrometheusRule (with its thresholds as values) and
//     Grafana dashboard ConfigMap, each on request.
//
// Everything else is rendered as kustomize renders it, with the chart's labels added. Literal
// "{{" and "}}" of the inputs (the alerts' Prometheus templates, the dashboard's legends) are
// escaped. An object chartgen does not know (a new kind in config/) is rendered as is, and a
// string that still names config/default's namespace fails the generation. Running chartgen
// twice changes nothing; its test fails when charts/dexterity is stale, and test/helm renders,
// lints and installs the chart and compares it with `kustomize build config/default`.
package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"dexterity.dev/dexterity/hack/internal/gendir"
)

// Options say where the inputs are.
type Options struct {
	Root      string // repository root
	Kustomize string // kustomize binary; relative paths are relative to Root
}

// DefaultOptions are what `make chart` uses.
func DefaultOptions() Options { return Options{Root: ".", Kustomize: "bin/kustomize"} }

func main() {
	o := DefaultOptions()
	out := flag.String("out", "charts/dexterity", "Output directory (relative to -root unless absolute).")
	flag.StringVar(&o.Root, "root", o.Root, "Repository root.")
	flag.StringVar(&o.Kustomize, "kustomize", o.Kustomize, "kustomize binary (relative to -root unless absolute).")
	flag.Parse()
	files, err := Generate(o)
	if err != nil {
		fmt.Fprintln(os.Stderr, "chartgen:", err)
		os.Exit(1)
	}
	dir := *out
	if !filepath.IsAbs(dir) {
		dir = filepath.Join(o.Root, dir)
	}
	if err := gendir.Write(dir, files); err != nil {
		fmt.Fprintln(os.Stderr, "chartgen:", err)
		os.Exit(1)
	}
}

// Generate renders the chart: slash-separated paths relative to the chart directory → content.
func Generate(o Options) (map[string][]byte, error) {
	kustomize := o.Kustomize
	if !filepath.IsAbs(kustomize) && strings.ContainsRune(kustomize, filepath.Separator) {
		kustomize = filepath.Join(o.Root, kustomize)
	}
	install, err := kustomizeBuild(kustomize, filepath.Join(o.Root, "config", "default"))
	if err != nil {
		return nil, err
	}
	monitoring, err := kustomizeBuild(kustomize, filepath.Join(o.Root, "config", "prometheus"))
	if err != nil {
		return nil, err
	}
	version, err := csvVersion(o.Root)
	if err != nil {
		return nil, err
	}
	g := &generator{files: map[string][]byte{}}
	if err := g.install(install); err != nil {
		return nil, err
	}
	if err := g.monitoring(monitoring); err != nil {
		return nil, err
	}
	if err := g.static(version); err != nil {
		return nil, err
	}
	return g.files, nil
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
