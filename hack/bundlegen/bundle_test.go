package main

import (
	"bytes"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/operator-framework/api/crds"
	"github.com/operator-framework/api/pkg/manifests"
	"github.com/operator-framework/api/pkg/validation"
	"github.com/operator-framework/api/pkg/validation/errors"
	"k8s.io/apiextensions-apiserver/pkg/apis/apiextensions"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apivalidation "k8s.io/apiextensions-apiserver/pkg/apiserver/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"sigs.k8s.io/yaml"
)

// The repository root, seen from this package's directory (where `go test` runs the test).
const root = "../.."

// k8sVersion is the Kubernetes version the bundle is checked against for removed APIs: the
// kube-apiserver the tests run (hack/tools/versions.env).
const k8sVersion = "1.34"

// TestBundleUpToDate regenerates the bundle into a temporary directory and fails when the
// committed bundle/ differs: bundle/ is never stale.
func TestBundleUpToDate(t *testing.T) {
	if _, err := os.Stat(filepath.Join(root, "bin", "kustomize")); err != nil {
		t.Fatalf("bin/kustomize is missing (%v): run `make tools`", err)
	}
	o := DefaultOptions()
	o.Root = root
	files, err := Generate(o)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := Write(dir, files); err != nil {
		t.Fatal(err)
	}
	want, got := readTree(t, dir), readTree(t, filepath.Join(root, "bundle"))
	for _, name := range sortedKeys(want) {
		g, ok := got[name]
		switch {
		case !ok:
			t.Errorf("bundle/%s is missing", name)
		case !bytes.Equal(g, want[name]):
			t.Errorf("bundle/%s is stale:\n%s", name, firstDifference(g, want[name]))
		}
	}
	for _, name := range sortedKeys(got) {
		if _, ok := want[name]; !ok {
			t.Errorf("bundle/%s is not generated any more", name)
		}
	}
	if t.Failed() {
		t.Log("bundle/ does not match config/: run `make bundle` and commit bundle/")
	}
}

// TestBundleValid validates the committed bundle/ with operator-framework/api, as
// `operator-sdk bundle validate --select-optional suite=operatorframework` does.
func TestBundleValid(t *testing.T) {
	bundle, err := manifests.GetBundleFromDir(filepath.Join(root, "bundle"))
	if err != nil {
		t.Fatal(err)
	}
	validators := validation.DefaultBundleValidators.WithValidators(
		validation.OperatorHubV2Validator,
		validation.StandardCapabilitiesValidator,
		validation.StandardCategoriesValidator,
		validation.GoodPracticesValidator,
		validation.AlphaDeprecatedAPIsValidator,
	)
	objs := append(bundle.ObjectsToValidate(), map[string]string{"k8s-version": k8sVersion})
	results := validators.Validate(objs...)
	for _, r := range results {
		for _, e := range r.Errors {
			t.Errorf("%s: %s", r.Name, describe(e))
		}
		for _, w := range r.Warnings {
			t.Logf("warning: %s: %s", r.Name, describe(w))
		}
	}

	// What the validators cannot know about this operator.
	csv := bundle.CSV
	if bundle.Package != "dexterity" || !slices.Equal(bundle.Channels, []string{"alpha"}) || bundle.DefaultChannel != "alpha" {
		t.Errorf("package %q, channels %v, default channel %q; want dexterity, [alpha], alpha", bundle.Package, bundle.Channels, bundle.DefaultChannel)
	}
	// Every CRD of config/crd/bases, whatever kinds there are, and Dex's storage CRDs.
	crdFiles, err := filepath.Glob(filepath.Join(root, "config", "crd", "bases", "*.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	dexCRDs, err := os.ReadFile(filepath.Join(root, "config", "crd", "dex", "dex.coreos.com.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	want := len(crdFiles) + strings.Count(string(dexCRDs), "\nkind: CustomResourceDefinition\n")
	if got := len(csv.Spec.CustomResourceDefinitions.Owned); got != want || len(crdFiles) == 0 {
		t.Errorf("CSV owns %d CRDs, want %d (one per file of config/crd/bases, and Dex's storage CRDs)", got, want)
	}
	image := csv.Annotations["containerImage"]
	deployments := csv.Spec.InstallStrategy.StrategySpec.DeploymentSpecs
	if len(deployments) != 1 {
		t.Fatalf("CSV has %d deployments, want 1 (the manager)", len(deployments))
	}
	pod := deployments[0].Spec.Template.Spec
	var args []string
	found := false
	for _, c := range pod.Containers {
		if c.Image == image {
			found = true
			args = append(args, c.Args...)
		}
	}
	if !found {
		t.Errorf("no container of Deployment %s runs the containerImage %s", deployments[0].Name, image)
	}
	if len(csv.Spec.WebhookDefinitions) > 0 && !slices.Contains(args, "--enable-webhooks") && !slices.Contains(args, "--enable-webhooks=true") {
		// With failurePolicy Fail, webhooks nobody serves reject every create and update.
		t.Errorf("the CSV defines %d webhooks, but the manager is not started with --enable-webhooks (args %v)", len(csv.Spec.WebhookDefinitions), args)
	}
	for _, a := range args {
		// OLM mounts its serving certificate at olmWebhookCertDir only.
		if dir, ok := strings.CutPrefix(a, "--webhook-cert-dir="); ok && len(csv.Spec.WebhookDefinitions) > 0 && filepath.Clean(dir) != olmWebhookCertDir {
			t.Errorf("the manager reads webhook certificates from %s, but OLM mounts them at %s", dir, olmWebhookCertDir)
		}
	}
	for _, v := range pod.Volumes {
		if v.Secret != nil {
			t.Errorf("Deployment %s mounts Secret %s, which the bundle does not create", deployments[0].Name, v.Secret.SecretName)
		}
	}
}

// TestCSVSchema checks the CSV against OLM's ClusterServiceVersion CRD schema, which the API
// server applies when OLM creates the CSV (the validators above decode into Go types and would
// not notice, e.g., a mistyped field of the CSV base).
func TestCSVSchema(t *testing.T) {
	crd := crds.ClusterServiceVersion()
	var schema apiextensions.JSONSchemaProps
	if err := apiextensionsv1.Convert_v1_JSONSchemaProps_To_apiextensions_JSONSchemaProps(crd.Spec.Versions[0].Schema.OpenAPIV3Schema, &schema, nil); err != nil {
		t.Fatal(err)
	}
	validator, _, err := apivalidation.NewSchemaValidator(&schema)
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(filepath.Join(root, "bundle", "manifests", "dexterity.clusterserviceversion.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var csv map[string]any
	if err := yaml.Unmarshal(data, &csv); err != nil {
		t.Fatal(err)
	}
	for _, e := range apivalidation.ValidateCustomResource(field.NewPath(""), csv, validator) {
		t.Error(e)
	}
}

func TestImageRepository(t *testing.T) {
	for in, want := range map[string]string{
		"dexterity":                         "dexterity",
		"dexterity:dev":                     "dexterity",
		"registry:5000/org/dexterity:0.0.1": "registry:5000/org/dexterity",
		"registry:5000/dexterity":           "registry:5000/dexterity",
		"ghcr.io/x/dexterity@sha256:abc":    "ghcr.io/x/dexterity",
	} {
		if got := imageRepository(in); got != want {
			t.Errorf("imageRepository(%q) = %q, want %q", in, got, want)
		}
	}
}

func describe(e errors.Error) string {
	s := e.Error()
	if e.Field != "" && !strings.Contains(s, e.Field) {
		s += " (" + e.Field + ")"
	}
	return s
}

// readTree reads every file under dir: slash-separated relative path → content.
func readTree(t *testing.T, dir string) map[string][]byte {
	t.Helper()
	files := map[string][]byte{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return err
		}
		files[filepath.ToSlash(rel)] = data
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return files
}

// firstDifference shows the first line where got and want differ.
func firstDifference(got, want []byte) string {
	g, w := strings.Split(string(got), "\n"), strings.Split(string(want), "\n")
	for i := 0; i < len(g) || i < len(w); i++ {
		var gl, wl string
		if i < len(g) {
			gl = g[i]
		}
		if i < len(w) {
			wl = w[i]
		}
		if gl != wl {
			return fmt.Sprintf("  line %d:\n  committed: %s\n  generated: %s", i+1, gl, wl)
		}
	}
	return "  (same lines, different line endings)"
}
