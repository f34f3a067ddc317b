// Command bundlegen writes Dexterity's OLM bundle (bundle/) from config/: `make bundle`.
//
// It renders config/manifests (config/default plus OLM-only patches) and config/samples with
// bin/kustomize and sorts every rendered object into the registry+v1 bundle format:
//
//   - CustomResourceDefinitions → bundle/manifests/<group>_<plural>.yaml, as rendered.
//   - The Deployment(s) → the CSV's install strategy (name, labels, spec); images of the operator
//     (same repository as the CSV's containerImage) are set to containerImage.
//   - Roles and ClusterRoles bound to a Deployment's ServiceAccount → the CSV's permissions and
//     clusterPermissions. OLM creates the ServiceAccount, the roles and their bindings itself, so
//     the ServiceAccount and the bindings are left out.
//   - Validating/MutatingWebhookConfigurations → the CSV's webhookdefinitions. OLM creates the
//     configurations, their Service and the serving certificate (mounted at
//     /tmp/k8s-webhook-server/serving-certs), so the webhook Service, Secrets and cert-manager
//     objects are left out and the Deployment's own mounts at that path are removed.
//   - Namespace: left out (OLM installs into the namespace of the Subscription).
//   - Other kinds OLM can install from a bundle (Services such as a metrics Service, ConfigMaps,
//     unbound roles, PodDisruptionBudgets, ServiceMonitors, ...) → bundle/manifests as is, without
//     metadata.namespace. Anything else is left out with a notice on stderr.
//
// The hand-written part of the CSV is config/manifests/bases/dexterity.clusterserviceversion.yaml;
// alm-examples are the dexterity.dev objects of config/samples. The output is deterministic:
// running it twice changes nothing, and hack/bundlegen's test fails when bundle/ is stale.
package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"slices"
	"sort"
	"strings"

	operatorsv1alpha1 "github.com/operator-framework/api/pkg/operators/v1alpha1"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"
)

// Group of Dexterity's API: sample objects of this group become alm-examples.
const apiGroup = "dexterity.dev"

// olmWebhookCertDir is where OLM mounts the webhook serving certificate it generates (and where
// controller-runtime looks by default).
const olmWebhookCertDir = "/tmp/k8s-webhook-server/serving-certs"

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

// generatedDirs are owned entirely by bundlegen: files in them that it does not generate are
// removed by Write.
var generatedDirs = []string{"manifests", "metadata"}

// Write makes dir hold files (slash-separated paths relative to dir): changed files are
// rewritten, files of manifests/ and metadata/ that are no longer generated are removed, and
// anything else in dir is left alone.
func Write(dir string, files map[string][]byte) error {
	for _, sub := range generatedDirs {
		err := filepath.WalkDir(filepath.Join(dir, sub), func(p string, d fs.DirEntry, err error) error {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			if err != nil || d.IsDir() {
				return err
			}
			rel, err := filepath.Rel(dir, p)
			if err != nil {
				return err
			}
			if _, ok := files[filepath.ToSlash(rel)]; !ok {
				return os.Remove(p)
			}
			return nil
		})
		if err != nil {
			return err
		}
	}
	for _, name := range sortedKeys(files) {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if old, err := os.ReadFile(p); err == nil && bytes.Equal(old, files[name]) {
			continue
		}
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(p, files[name], 0o644); err != nil {
			return err
		}
	}
	return nil
}

// Generate renders the bundle: slash-separated paths relative to the bundle directory → content.
func Generate(o Options) (map[string][]byte, error) {
	if o.Package == "" || o.DefaultChannel == "" || len(o.Channels) == 0 || slices.Contains(o.Channels, "") {
		return nil, errors.New("package, channels and default channel must be set")
	}
	if !slices.Contains(o.Channels, o.DefaultChannel) {
		return nil, fmt.Errorf("default channel %q is not one of the channels %v", o.DefaultChannel, o.Channels)
	}
	kustomize := o.Kustomize
	if !filepath.IsAbs(kustomize) && strings.ContainsRune(kustomize, filepath.Separator) {
		kustomize = filepath.Join(o.Root, kustomize)
	}

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
	rendered, err := kustomizeBuild(kustomize, filepath.Join(o.Root, "config", "manifests"))
	if err != nil {
		return nil, err
	}
	samples, err := kustomizeBuild(kustomize, filepath.Join(o.Root, "config", "samples"))
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

	lbls := bundleLabels(o)
	var ann bytes.Buffer
	ann.WriteString("annotations:\n")
	for _, l := range lbls {
		fmt.Fprintf(&ann, "  %s: %s\n", l[0], l[1])
	}
	b.files["metadata/annotations.yaml"] = ann.Bytes()

	var df bytes.Buffer
	df.WriteString("# Generated by `make bundle` (hack/bundlegen): do not edit. Build from bundle/:\n" +
		"#   docker build -f bundle/bundle.Dockerfile -t <bundle image> bundle/\n" +
		"FROM scratch\n\n")
	for _, l := range lbls {
		fmt.Fprintf(&df, "LABEL %s=%s\n", l[0], l[1])
	}
	df.WriteString("\nCOPY manifests /manifests/\nCOPY metadata /metadata/\n")
	b.files["bundle.Dockerfile"] = df.Bytes()
	b.files["README.md"] = []byte(readme)
	return b.files, nil
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

func kustomizeBuild(kustomize, dir string) ([]object, error) {
	if _, err := exec.LookPath(kustomize); err != nil {
		return nil, fmt.Errorf("kustomize not found (%v): run `make tools`", err)
	}
	cmd := exec.Command(kustomize, "build", dir)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("%s build %s: %v\n%s", kustomize, dir, err, stderr.String())
	}
	objs, err := decodeObjects(out)
	if err != nil {
		return nil, fmt.Errorf("kustomize build %s: %w", dir, err)
	}
	return objs, nil
}

// object is one rendered Kubernetes object.
type object struct {
	APIVersion, Kind, Name, Namespace string
	JSON                              []byte         // for typed decoding
	Map                               map[string]any // numbers as json.Number, for output as is
}

func (o object) group() string {
	if g, _, ok := strings.Cut(o.APIVersion, "/"); ok {
		return g
	}
	return ""
}

func (o object) String() string { return o.Kind + " " + path.Join(o.Namespace, o.Name) }

func (o object) decode(into any) error {
	if err := json.Unmarshal(o.JSON, into); err != nil {
		return fmt.Errorf("%s: %w", o, err)
	}
	return nil
}

func decodeObjects(data []byte) ([]object, error) {
	var objs []object
	r := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(data)))
	for {
		doc, err := r.Read()
		if err == io.EOF {
			return objs, nil
		}
		if err != nil {
			return nil, err
		}
		js, err := yaml.YAMLToJSON(doc)
		if err != nil {
			return nil, err
		}
		if bytes.Equal(bytes.TrimSpace(js), []byte("null")) {
			continue
		}
		m, err := decodeMap(js)
		if err != nil {
			return nil, err
		}
		o := object{JSON: js, Map: m}
		o.APIVersion, _ = m["apiVersion"].(string)
		o.Kind, _ = m["kind"].(string)
		if meta, ok := m["metadata"].(map[string]any); ok {
			o.Name, _ = meta["name"].(string)
			o.Namespace, _ = meta["namespace"].(string)
		}
		if o.APIVersion == "" || o.Kind == "" || o.Name == "" {
			return nil, fmt.Errorf("object without apiVersion, kind or metadata.name: %s", js)
		}
		objs = append(objs, o)
	}
}

func decodeMap(js []byte) (map[string]any, error) {
	d := json.NewDecoder(bytes.NewReader(js))
	d.UseNumber()
	var m map[string]any
	if err := d.Decode(&m); err != nil {
		return nil, err
	}
	return m, nil
}

// marshalClean renders the CSV as YAML without what its Go types add but a bundle does not
// carry: status, creationTimestamp: null, apiservicedefinitions: {} and cleanup: {enabled: false}.
func marshalClean(csv *operatorsv1alpha1.ClusterServiceVersion) ([]byte, error) {
	js, err := json.Marshal(csv)
	if err != nil {
		return nil, err
	}
	m, err := decodeMap(js)
	if err != nil {
		return nil, err
	}
	delete(m, "status")
	dropNullCreationTimestamps(m)
	if spec, ok := m["spec"].(map[string]any); ok {
		if a, ok := spec["apiservicedefinitions"].(map[string]any); ok && len(a) == 0 {
			delete(spec, "apiservicedefinitions")
		}
		if !csv.Spec.Cleanup.Enabled {
			delete(spec, "cleanup")
		}
	}
	return yaml.Marshal(m)
}

func dropNullCreationTimestamps(v any) {
	switch t := v.(type) {
	case map[string]any:
		for k, x := range t {
			if k == "creationTimestamp" && x == nil {
				delete(t, k)
				continue
			}
			dropNullCreationTimestamps(x)
		}
	case []any:
		for _, x := range t {
			dropNullCreationTimestamps(x)
		}
	}
}

type builder struct {
	csv   *operatorsv1alpha1.ClusterServiceVersion
	image string
	files map[string][]byte
}

func (b *builder) build(rendered, samples []object) error {
	byKind := map[string][]object{}
	for _, o := range rendered {
		byKind[o.Kind] = append(byKind[o.Kind], o)
	}
	for k := range byKind {
		sort.Slice(byKind[k], func(i, j int) bool { return byKind[k][i].String() < byKind[k][j].String() })
	}
	take := func(kind string) []object { o := byKind[kind]; delete(byKind, kind); return o }

	// The operator image.
	if b.csv.Annotations == nil {
		b.csv.Annotations = map[string]string{}
	}
	if b.image == "" {
		b.image = b.csv.Annotations["containerImage"]
	}
	if b.image == "" {
		return errors.New("no operator image: set metadata.annotations.containerImage in the CSV base or pass -image")
	}
	b.csv.Annotations["containerImage"] = b.image

	if err := b.crds(take("CustomResourceDefinition")); err != nil {
		return err
	}
	deployments, err := b.deployments(take("Deployment"))
	if err != nil {
		return err
	}
	secrets := take("Secret") // see webhooks
	services, err := b.webhooks(take("ValidatingWebhookConfiguration"), take("MutatingWebhookConfiguration"), take("Service"), deployments)
	if err != nil {
		return err
	}
	// Every Secret of config/default is the webhook serving certificate (or a placeholder the
	// manager fills with one): under OLM the certificate is OLM's, so Secrets are left out, and
	// so are volumes of the Deployments that mount them.
	dropSecretVolumes(deployments, secrets)
	// Services not used by a webhook (e.g. metrics) are installed as is.
	byKind["Service"] = services

	accounts := map[string]bool{}
	for _, d := range deployments {
		accounts[d.Spec.Template.Spec.ServiceAccountName] = true
	}
	if err := b.rbac(accounts, take("Role"), take("ClusterRole"), take("RoleBinding"), take("ClusterRoleBinding"), byKind); err != nil {
		return err
	}
	for _, sa := range take("ServiceAccount") {
		if !accounts[sa.Name] {
			byKind["ServiceAccount"] = append(byKind["ServiceAccount"], sa) // not OLM's: as is
		}
	}
	b.csv.Spec.InstallStrategy.StrategyName = operatorsv1alpha1.InstallStrategyNameDeployment
	b.csv.Spec.InstallStrategy.StrategySpec.DeploymentSpecs = nil
	for _, d := range deployments {
		b.csv.Spec.InstallStrategy.StrategySpec.DeploymentSpecs = append(b.csv.Spec.InstallStrategy.StrategySpec.DeploymentSpecs,
			operatorsv1alpha1.StrategyDeploymentSpec{Name: d.Name, Label: labels.Set(d.Labels), Spec: d.Spec})
	}

	// Left out: OLM installs into the Subscription's namespace and makes serving certificates.
	delete(byKind, "Namespace")
	delete(byKind, "Certificate") // cert-manager
	delete(byKind, "Issuer")      // cert-manager

	for _, kind := range sortedKeys(byKind) {
		for _, o := range byKind[kind] {
			if !installableAsIs[kind] {
				// Not a kind OLM can install from a bundle (registry+v1); left out.
				fmt.Fprintf(os.Stderr, "bundlegen: left out %s: OLM cannot install a %s from a bundle\n", o, kind)
				continue
			}
			if err := b.asIs(o); err != nil {
				return err
			}
		}
	}
	return b.examples(samples)
}

// installableAsIs are the kinds OLM (registry+v1 bundles) installs from bundle/manifests besides
// the CSV and CRDs.
var installableAsIs = map[string]bool{
	"ClusterRole": true, "ClusterRoleBinding": true, "ConfigMap": true, "Role": true, "RoleBinding": true,
	"Secret": true, "Service": true, "ServiceAccount": true,
	"PrometheusRule": true, "ServiceMonitor": true, "PodDisruptionBudget": true, "PriorityClass": true,
	"VerticalPodAutoscaler": true, "ConsoleYAMLSample": true, "ConsoleQuickStart": true,
	"ConsoleCLIDownload": true, "ConsoleLink": true,
}

// asIs writes o to manifests/<name>_<group>_<version>_<kind>.yaml without its namespace.
func (b *builder) asIs(o object) error {
	meta, _ := o.Map["metadata"].(map[string]any)
	delete(meta, "namespace")
	data, err := yaml.Marshal(o.Map)
	if err != nil {
		return err
	}
	name := strings.ToLower(strings.Join([]string{o.Name, strings.ReplaceAll(o.APIVersion, "/", "_"), o.Kind}, "_")) + ".yaml"
	return b.add("manifests/"+name, data)
}

func (b *builder) add(name string, data []byte) error {
	if _, dup := b.files[name]; dup {
		return fmt.Errorf("two objects would be written to %s", name)
	}
	b.files[name] = data
	return nil
}

// crds writes the CRDs and checks that the CSV base owns exactly these.
func (b *builder) crds(objs []object) error {
	type key struct{ name, kind string }
	rendered := map[key][]string{} // → served versions
	for _, o := range objs {
		crd := &apiextensionsv1.CustomResourceDefinition{}
		if err := o.decode(crd); err != nil {
			return err
		}
		if crd.Spec.Conversion != nil && crd.Spec.Conversion.Strategy == apiextensionsv1.WebhookConverter {
			return fmt.Errorf("%s: conversion webhooks are not supported by bundlegen yet", o)
		}
		for _, v := range crd.Spec.Versions {
			if v.Served {
				rendered[key{crd.Name, crd.Spec.Names.Kind}] = append(rendered[key{crd.Name, crd.Spec.Names.Kind}], v.Name)
			}
		}
		// cert-manager's CA injection does not apply under OLM.
		if meta, ok := o.Map["metadata"].(map[string]any); ok {
			if ann, ok := meta["annotations"].(map[string]any); ok {
				delete(ann, "cert-manager.io/inject-ca-from")
				if len(ann) == 0 {
					delete(meta, "annotations")
				}
			}
		}
		data, err := yaml.Marshal(o.Map)
		if err != nil {
			return err
		}
		if err := b.add("manifests/"+crd.Spec.Group+"_"+crd.Spec.Names.Plural+".yaml", data); err != nil {
			return err
		}
	}
	owned := map[key]bool{}
	for _, d := range b.csv.Spec.CustomResourceDefinitions.Owned {
		k := key{d.Name, d.Kind}
		versions, ok := rendered[k]
		if !ok {
			return fmt.Errorf("CSV base owns %s (%s), which config/crd does not define", d.Name, d.Kind)
		}
		if !slices.Contains(versions, d.Version) {
			return fmt.Errorf("CSV base owns %s version %s, which is not served (served: %v)", d.Name, d.Version, versions)
		}
		if d.Description == "" || d.DisplayName == "" {
			return fmt.Errorf("CSV base: owned CRD %s needs a displayName and a description", d.Name)
		}
		owned[k] = true
	}
	for _, k := range sortedKeysFunc(rendered, func(k key) string { return k.name }) {
		if !owned[k] {
			return fmt.Errorf("CRD %s (%s) is not in spec.customresourcedefinitions.owned of config/manifests/bases/dexterity.clusterserviceversion.yaml: add it with a displayName, description and descriptors", k.name, k.kind)
		}
	}
	return nil
}

// deployments decodes the Deployments and points the operator's containers at the image.
func (b *builder) deployments(objs []object) ([]*appsv1.Deployment, error) {
	if len(objs) == 0 {
		return nil, errors.New("config/manifests renders no Deployment")
	}
	repo := imageRepository(b.image)
	var ds []*appsv1.Deployment
	for _, o := range objs {
		d := &appsv1.Deployment{}
		if err := o.decode(d); err != nil {
			return nil, err
		}
		if d.Spec.Template.Spec.ServiceAccountName == "" {
			return nil, fmt.Errorf("%s has no serviceAccountName: OLM grants permissions to named ServiceAccounts only", o)
		}
		pod := &d.Spec.Template.Spec
		for _, cs := range [][]corev1.Container{pod.InitContainers, pod.Containers} {
			for i := range cs {
				if imageRepository(cs[i].Image) == repo {
					cs[i].Image = b.image
				}
			}
		}
		ds = append(ds, d)
	}
	return ds, nil
}

// imageRepository is image without its tag or digest.
func imageRepository(image string) string {
	image, _, _ = strings.Cut(image, "@")
	if i := strings.LastIndex(image, ":"); i > strings.LastIndex(image, "/") {
		image = image[:i]
	}
	return image
}

// webhooks turns the webhook configurations into webhookdefinitions and returns the Services
// that do not serve a webhook.
func (b *builder) webhooks(validating, mutating, services []object, deployments []*appsv1.Deployment) ([]object, error) {
	svcs := map[string]*corev1.Service{}
	for _, o := range services {
		s := &corev1.Service{}
		if err := o.decode(s); err != nil {
			return nil, err
		}
		svcs[s.Name] = s
	}
	used := map[string]bool{}
	var defs []operatorsv1alpha1.WebhookDescription

	add := func(o object, name string, cc admissionregistrationv1.WebhookClientConfig) (operatorsv1alpha1.WebhookDescription, error) {
		if cc.Service == nil {
			return operatorsv1alpha1.WebhookDescription{}, fmt.Errorf("%s: webhook %s: only clientConfig.service is supported under OLM", o, name)
		}
		svc, ok := svcs[cc.Service.Name]
		if !ok {
			return operatorsv1alpha1.WebhookDescription{}, fmt.Errorf("%s: webhook %s: Service %s is not rendered by config/manifests", o, name, cc.Service.Name)
		}
		used[svc.Name] = true
		port := int32(443)
		if cc.Service.Port != nil {
			port = *cc.Service.Port
		}
		var sp *corev1.ServicePort
		for i := range svc.Spec.Ports {
			if svc.Spec.Ports[i].Port == port {
				sp = &svc.Spec.Ports[i]
			}
		}
		if sp == nil {
			return operatorsv1alpha1.WebhookDescription{}, fmt.Errorf("%s: webhook %s: Service %s has no port %d", o, name, svc.Name, port)
		}
		target := sp.TargetPort
		if target.Type == intstr.Int && target.IntVal == 0 {
			target = intstr.FromInt32(sp.Port)
		}
		var dep string
		sel := labels.SelectorFromSet(svc.Spec.Selector)
		for _, d := range deployments {
			if len(svc.Spec.Selector) > 0 && sel.Matches(labels.Set(d.Spec.Template.Labels)) {
				if dep != "" {
					return operatorsv1alpha1.WebhookDescription{}, fmt.Errorf("service %s selects the pods of two Deployments (%s, %s)", svc.Name, dep, d.Name)
				}
				dep = d.Name
			}
		}
		if dep == "" {
			return operatorsv1alpha1.WebhookDescription{}, fmt.Errorf("%s: webhook %s: Service %s selects no Deployment", o, name, svc.Name)
		}
		// OLM creates a Service <deployment>-service listening on containerPort and forwarding to
		// targetPort: the same ports as the rendered Service.
		return operatorsv1alpha1.WebhookDescription{
			GenerateName:   name,
			DeploymentName: dep,
			ContainerPort:  sp.Port,
			TargetPort:     &target,
			WebhookPath:    cc.Service.Path,
		}, nil
	}

	for _, o := range validating {
		c := &admissionregistrationv1.ValidatingWebhookConfiguration{}
		if err := o.decode(c); err != nil {
			return nil, err
		}
		for _, w := range c.Webhooks {
			d, err := add(o, w.Name, w.ClientConfig)
			if err != nil {
				return nil, err
			}
			if w.NamespaceSelector != nil {
				// OLM sets namespaceSelector itself, from the OperatorGroup.
				fmt.Fprintf(os.Stderr, "bundlegen: %s: namespaceSelector of webhook %s is replaced by OLM's\n", o, w.Name)
			}
			d.Type = operatorsv1alpha1.ValidatingAdmissionWebhook
			d.Rules, d.FailurePolicy, d.MatchPolicy, d.ObjectSelector = w.Rules, w.FailurePolicy, w.MatchPolicy, w.ObjectSelector
			d.SideEffects, d.TimeoutSeconds, d.AdmissionReviewVersions = w.SideEffects, w.TimeoutSeconds, w.AdmissionReviewVersions
			defs = append(defs, d)
		}
	}
	for _, o := range mutating {
		c := &admissionregistrationv1.MutatingWebhookConfiguration{}
		if err := o.decode(c); err != nil {
			return nil, err
		}
		for _, w := range c.Webhooks {
			d, err := add(o, w.Name, w.ClientConfig)
			if err != nil {
				return nil, err
			}
			d.Type = operatorsv1alpha1.MutatingAdmissionWebhook
			d.Rules, d.FailurePolicy, d.MatchPolicy, d.ObjectSelector = w.Rules, w.FailurePolicy, w.MatchPolicy, w.ObjectSelector
			d.SideEffects, d.TimeoutSeconds, d.AdmissionReviewVersions = w.SideEffects, w.TimeoutSeconds, w.AdmissionReviewVersions
			d.ReinvocationPolicy = w.ReinvocationPolicy
			defs = append(defs, d)
		}
	}
	sort.SliceStable(defs, func(i, j int) bool {
		if defs[i].Type != defs[j].Type {
			return defs[i].Type < defs[j].Type
		}
		return defs[i].GenerateName < defs[j].GenerateName
	})
	b.csv.Spec.WebhookDefinitions = defs

	if len(defs) > 0 {
		// OLM mounts its serving certificate at olmWebhookCertDir; the Deployment's own mounts
		// there (cert-manager's or the manager's certificate Secret) would shadow or duplicate it.
		for _, d := range deployments {
			dropMounts(&d.Spec.Template.Spec, func(m corev1.VolumeMount) bool {
				return path.Clean(m.MountPath) == olmWebhookCertDir
			})
		}
	}

	var rest []object
	for _, o := range services {
		if !used[o.Name] {
			rest = append(rest, o)
		}
	}
	return rest, nil
}

// dropSecretVolumes removes the volumes (and their mounts) that mount one of the Secrets.
func dropSecretVolumes(deployments []*appsv1.Deployment, secrets []object) {
	names := map[string]bool{}
	for _, s := range secrets {
		names[s.Name] = true
	}
	for _, d := range deployments {
		pod := &d.Spec.Template.Spec
		drop := map[string]bool{}
		for _, v := range pod.Volumes {
			if v.Secret != nil && names[v.Secret.SecretName] {
				drop[v.Name] = true
			}
		}
		dropMounts(pod, func(m corev1.VolumeMount) bool { return drop[m.Name] })
		pod.Volumes = slices.DeleteFunc(pod.Volumes, func(v corev1.Volume) bool { return drop[v.Name] })
	}
}

// dropMounts removes the mounts for which drop is true, and the volumes nothing mounts anymore.
func dropMounts(pod *corev1.PodSpec, drop func(corev1.VolumeMount) bool) {
	dropped := map[string]bool{}
	for _, cs := range [][]corev1.Container{pod.InitContainers, pod.Containers} {
		for i := range cs {
			cs[i].VolumeMounts = slices.DeleteFunc(cs[i].VolumeMounts, func(m corev1.VolumeMount) bool {
				if drop(m) {
					dropped[m.Name] = true
					return true
				}
				return false
			})
		}
	}
	for _, cs := range [][]corev1.Container{pod.InitContainers, pod.Containers} {
		for _, c := range cs {
			for _, m := range c.VolumeMounts {
				delete(dropped, m.Name)
			}
		}
	}
	pod.Volumes = slices.DeleteFunc(pod.Volumes, func(v corev1.Volume) bool { return dropped[v.Name] })
}

// rbac turns the roles bound to the Deployments' ServiceAccounts into permissions. Roles bound to
// nothing OLM manages, and bindings of other subjects, are left in byKind to be installed as is.
func (b *builder) rbac(accounts map[string]bool, roles, clusterRoles, roleBindings, clusterRoleBindings []object, byKind map[string][]object) error {
	roleRules := map[string][]rbacv1.PolicyRule{}
	clusterRoleRules := map[string][]rbacv1.PolicyRule{}
	for _, o := range roles {
		r := &rbacv1.Role{}
		if err := o.decode(r); err != nil {
			return err
		}
		roleRules[r.Name] = r.Rules
	}
	for _, o := range clusterRoles {
		r := &rbacv1.ClusterRole{}
		if err := o.decode(r); err != nil {
			return err
		}
		if r.AggregationRule != nil {
			return fmt.Errorf("%s: aggregated ClusterRoles are not supported", o)
		}
		clusterRoleRules[r.Name] = r.Rules
	}
	usedRoles, usedClusterRoles := map[string]bool{}, map[string]bool{}
	perms, clusterPerms := map[string][]rbacv1.PolicyRule{}, map[string][]rbacv1.PolicyRule{}

	bind := func(o object, ref rbacv1.RoleRef, subjects []rbacv1.Subject, clusterWide bool) error {
		var sas []string
		for _, s := range subjects {
			if s.Kind == rbacv1.ServiceAccountKind && accounts[s.Name] {
				sas = append(sas, s.Name)
			}
		}
		if len(sas) == 0 {
			byKind[o.Kind] = append(byKind[o.Kind], o) // not about the operator: as is
			return nil
		}
		if len(sas) != len(subjects) {
			return fmt.Errorf("%s binds the operator's ServiceAccount and other subjects: split it", o)
		}
		var rules []rbacv1.PolicyRule
		switch ref.Kind {
		case "Role":
			r, ok := roleRules[ref.Name]
			if !ok {
				return fmt.Errorf("%s refers to Role %s, which is not rendered", o, ref.Name)
			}
			rules, usedRoles[ref.Name] = r, true
		case "ClusterRole":
			r, ok := clusterRoleRules[ref.Name]
			if !ok {
				return fmt.Errorf("%s refers to ClusterRole %s, which is not rendered", o, ref.Name)
			}
			rules, usedClusterRoles[ref.Name] = r, true
		default:
			return fmt.Errorf("%s: unknown roleRef kind %s", o, ref.Kind)
		}
		for _, sa := range sas {
			if clusterWide {
				clusterPerms[sa] = append(clusterPerms[sa], rules...)
			} else {
				perms[sa] = append(perms[sa], rules...)
			}
		}
		return nil
	}
	for _, o := range clusterRoleBindings {
		rb := &rbacv1.ClusterRoleBinding{}
		if err := o.decode(rb); err != nil {
			return err
		}
		if err := bind(o, rb.RoleRef, rb.Subjects, true); err != nil {
			return err
		}
	}
	for _, o := range roleBindings {
		rb := &rbacv1.RoleBinding{}
		if err := o.decode(rb); err != nil {
			return err
		}
		if err := bind(o, rb.RoleRef, rb.Subjects, false); err != nil {
			return err
		}
	}
	// Roles that only the operator uses are OLM's to create; others are installed as is.
	for _, o := range roles {
		if !usedRoles[o.Name] {
			byKind["Role"] = append(byKind["Role"], o)
		}
	}
	for _, o := range clusterRoles {
		if !usedClusterRoles[o.Name] {
			byKind["ClusterRole"] = append(byKind["ClusterRole"], o)
		}
	}
	strategy := &b.csv.Spec.InstallStrategy.StrategySpec
	strategy.Permissions, strategy.ClusterPermissions = nil, nil
	for _, sa := range sortedKeys(perms) {
		strategy.Permissions = append(strategy.Permissions, operatorsv1alpha1.StrategyDeploymentPermissions{ServiceAccountName: sa, Rules: perms[sa]})
	}
	for _, sa := range sortedKeys(clusterPerms) {
		strategy.ClusterPermissions = append(strategy.ClusterPermissions, operatorsv1alpha1.StrategyDeploymentPermissions{ServiceAccountName: sa, Rules: clusterPerms[sa]})
	}
	// OLM creates only the ServiceAccounts named in permissions or clusterPermissions.
	for _, sa := range sortedKeys(accounts) {
		if perms[sa] == nil && clusterPerms[sa] == nil {
			return fmt.Errorf("ServiceAccount %s of a Deployment has no Role or ClusterRole bound: OLM would not create it", sa)
		}
	}
	return nil
}

// examples sets alm-examples to the dexterity.dev objects of config/samples, without namespaces
// (the console creates them in the namespace the user is in), sorted by kind and name. Internal
// kinds (the CSV's internal-objects annotation) need no example.
func (b *builder) examples(samples []object) error {
	var ex []object
	for _, o := range samples {
		if o.group() == apiGroup {
			ex = append(ex, o)
		}
	}
	sort.SliceStable(ex, func(i, j int) bool {
		if ex[i].Kind != ex[j].Kind {
			return ex[i].Kind < ex[j].Kind
		}
		if ex[i].Name != ex[j].Name {
			return ex[i].Name < ex[j].Name
		}
		return ex[i].Namespace < ex[j].Namespace
	})
	kinds := map[string]bool{}
	items := make([]map[string]any, 0, len(ex))
	for _, o := range ex {
		delete(o.Map["metadata"].(map[string]any), "namespace")
		items = append(items, o.Map)
		kinds[o.Kind] = true
	}
	var internal []string
	if raw := b.csv.Annotations["operators.operatorframework.io/internal-objects"]; raw != "" {
		if err := json.Unmarshal([]byte(raw), &internal); err != nil {
			return fmt.Errorf("CSV base: operators.operatorframework.io/internal-objects is not a JSON list of CRD names: %w", err)
		}
	}
	for _, d := range b.csv.Spec.CustomResourceDefinitions.Owned {
		if !kinds[d.Kind] && !slices.Contains(internal, d.Name) {
			return fmt.Errorf("config/samples has no %s: every owned kind needs an example (alm-examples)", d.Kind)
		}
	}
	js, err := json.MarshalIndent(items, "", "  ")
	if err != nil {
		return err
	}
	b.csv.Annotations["alm-examples"] = string(js)
	return nil
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func sortedKeysFunc[K comparable, V any](m map[K]V, str func(K) string) []K {
	keys := make([]K, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool { return str(keys[i]) < str(keys[j]) })
	return keys
}
