// Command bundlegen writes Dexterity's OLM bundle (bundle/) from config/: `make bundle`.
//
// It renders config/manifests (config/default plus OLM-only patches) and config/samples with
// bin/kustomize (collect.go), builds the ClusterServiceVersion from them and the hand-written CSV
// base config/manifests/bases/dexterity.clusterserviceversion.yaml (csv.go), and writes the
// registry+v1 bundle deterministically (write.go). What config/manifests renders goes where:
//
//   - CustomResourceDefinitions → bundle/manifests/<group>_<plural>.yaml, as rendered. The CSV
//     base must own exactly these.
//   - The Deployment (exactly one: the manager) → the CSV's install strategy (name, labels,
//     spec); its containers of the same image repository as the CSV's containerImage are set to
//     containerImage.
//   - Validating- and MutatingWebhookConfigurations → the CSV's webhookdefinitions (types
//     ValidatingAdmissionWebhook, MutatingAdmissionWebhook), served by the Deployment
//     the webhook's Service selects. OLM creates the configurations, their Service and the
//     serving certificate, which it mounts at /tmp/k8s-webhook-server/serving-certs: the webhook
//     Service is left out, and so are the Deployment's own mounts at that path (config/manager's
//     emptyDir) and the volumes nothing else mounts.
//   - Roles and ClusterRoles bound to the Deployment's ServiceAccount → the CSV's permissions and
//     clusterPermissions. OLM creates the ServiceAccount, these roles and their bindings itself,
//     so they are left out.
//   - Namespace: left out (OLM installs into the namespace of the Subscription).
//   - Other kinds OLM can install from a bundle (Services such as the metrics Service, unbound
//     ClusterRoles, ConfigMaps, PodDisruptionBudgets, ServiceMonitors, ...) → bundle/manifests as
//     is, without metadata.namespace. Any other kind is left out with a notice on stderr.
//
// config/ renders none of the following, so they are not supported and fail the generation
// rather than being mishandled: Secrets, cert-manager objects and
// its cert-manager.io/inject-ca-from annotation, more than one Deployment, CRD conversion
// webhooks and aggregated ClusterRoles.
//
// alm-examples are the dexterity.dev objects of config/samples. Running bundlegen twice changes
// nothing, and hack/bundlegen's test fails when bundle/ is stale.
package main

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	operatorsv1alpha1 "github.com/operator-framework/api/pkg/operators/v1alpha1"
	"sigs.k8s.io/yaml"
)

// Options say where the inputs are and how the bundle is labelled.
type Options struct {
	Root           string // repository root
	Kustomize      string // kustomize binary; relative paths are relative to Root
	Image          string // operator image; empty: the CSV base's containerImage annotation
	Package        string
	Channels       []string
	DefaultChannel string
}

// DefaultOptions are what `make bundle` uses; the committed bundle/ is generated with them.
func DefaultOptions() Options {
	return Options{
		Root:           ".",
		Kustomize:      "bin/kustomize",
		Package:        "dexterity",
		Channels:       []string{"alpha"},
		DefaultChannel: "alpha",
	}
}

func main() {
	o := DefaultOptions()
	out := flag.String("out", "bundle", "Output directory (relative to -root unless absolute).")
	channels := flag.String("channels", strings.Join(o.Channels, ","), "Comma-separated bundle channels.")
	flag.StringVar(&o.Root, "root", o.Root, "Repository root.")
	flag.StringVar(&o.Kustomize, "kustomize", o.Kustomize, "kustomize binary (relative to -root unless absolute).")
	flag.StringVar(&o.Image, "image", "", "Operator image (default: the containerImage annotation of the CSV base).")
	flag.StringVar(&o.Package, "package", o.Package, "Package name.")
	flag.StringVar(&o.DefaultChannel, "default-channel", o.DefaultChannel, "Default channel.")
	flag.Parse()
	o.Channels = strings.Split(*channels, ",")

	files, err := Generate(o)
	if err != nil {
		fmt.Fprintln(os.Stderr, "bundlegen:", err)
		os.Exit(1)
	}
	dir := *out
	if !filepath.IsAbs(dir) {
		dir = filepath.Join(o.Root, dir)
	}
	if err := Write(dir, files); err != nil {
		fmt.Fprintln(os.Stderr, "bundlegen:", err)
		os.Exit(1)
	}
}

// Generate renders the bundle: slash-separated paths relative to the bundle directory → content.
func Generate(o Options) (map[string][]byte, error) {
	if o.Package == "" || o.DefaultChannel == "" || len(o.Channels) == 0 || slices.Contains(o.Channels, "") {
		return nil, errors.New("package, channels and default channel must be set")
	}
	if !slices.Contains(o.Channels, o.DefaultChannel) {
		return nil, fmt.Errorf("default channel %q is not one of the channels %v", o.DefaultChannel, o.Channels)
	}
	csv, err := readCSVBase(o)
	if err != nil {
		return nil, err
	}
	rendered, samples, err := collect(o)
	if err != nil {
		return nil, err
	}
	b := &builder{csv: csv, image: o.Image, files: map[string][]byte{}}
	if err := b.build(rendered, samples); err != nil {
		return nil, err
	}
	csvYAML, err := marshalClean(csv)
	if err != nil {
		return nil, err
	}
	b.files["manifests/"+o.Package+".clusterserviceversion.yaml"] = csvYAML
	b.files["metadata/annotations.yaml"] = annotationsYAML(o)
	b.files["bundle.Dockerfile"] = dockerfile(o)
	b.files["README.md"] = []byte(readme)
	return b.files, nil
}

// readCSVBase reads the hand-written part of the CSV.
func readCSVBase(o Options) (*operatorsv1alpha1.ClusterServiceVersion, error) {
	base, err := os.ReadFile(filepath.Join(o.Root, "config", "manifests", "bases", o.Package+".clusterserviceversion.yaml"))
	if err != nil {
		return nil, err
	}
	csv := &operatorsv1alpha1.ClusterServiceVersion{}
	if err := yaml.UnmarshalStrict(base, csv); err != nil {
		return nil, fmt.Errorf("CSV base: %w", err)
	}
	if want := o.Package + ".v" + csv.Spec.Version.String(); csv.Name != want {
		return nil, fmt.Errorf("CSV base: metadata.name is %q, want %q (<package>.v<spec.version>)", csv.Name, want)
	}
	return csv, nil
}

// bundleLabels are the registry+v1 annotations, in annotations.yaml and as image labels.
func bundleLabels(o Options) [][2]string {
	return [][2]string{
		{"operators.operatorframework.io.bundle.mediatype.v1", "registry+v1"},
		{"operators.operatorframework.io.bundle.manifests.v1", "manifests/"},
		{"operators.operatorframework.io.bundle.metadata.v1", "metadata/"},
		{"operators.operatorframework.io.bundle.package.v1", o.Package},
		{"operators.operatorframework.io.bundle.channels.v1", strings.Join(o.Channels, ",")},
		{"operators.operatorframework.io.bundle.channel.default.v1", o.DefaultChannel},
	}
}

func annotationsYAML(o Options) []byte {
	var ann bytes.Buffer
	ann.WriteString("annotations:\n")
	for _, l := range bundleLabels(o) {
		fmt.Fprintf(&ann, "  %s: %s\n", l[0], l[1])
	}
	return ann.Bytes()
}

func dockerfile(o Options) []byte {
	var df bytes.Buffer
	df.WriteString("# Generated by `make bundle` (hack/bundlegen): do not edit. Build from bundle/:\n" +
		"#   docker build -f bundle/bundle.Dockerfile -t <bundle image> bundle/\n" +
		"FROM scratch\n\n")
	for _, l := range bundleLabels(o) {
		fmt.Fprintf(&df, "LABEL %s=%s\n", l[0], l[1])
	}
	df.WriteString("\nCOPY manifests /manifests/\nCOPY metadata /metadata/\n")
	return df.Bytes()
}

const readme = `# OLM bundle

Generated by ` + "`make bundle`" + ` (hack/bundlegen) from config/manifests (config/default),
config/samples and the CSV base config/manifests/bases/dexterity.clusterserviceversion.yaml.
Do not edit: change config/ and run ` + "`make bundle`" + `; ` + "`go test ./hack/bundlegen/`" + ` fails when
this directory is stale, and validates it with operator-framework/api.

- ` + "`manifests/`" + `: the ClusterServiceVersion, the CRDs and other objects OLM installs.
- ` + "`metadata/annotations.yaml`" + `: package and channels.
- ` + "`bundle.Dockerfile`" + `: ` + "`docker build -f bundle/bundle.Dockerfile -t <bundle image> bundle/`" + `.
`
