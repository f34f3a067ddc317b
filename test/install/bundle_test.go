package install

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"

	. "github.com/onsi/gomega"
	operatorsv1alpha1 "github.com/operator-framework/api/pkg/operators/v1alpha1"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/yaml"

	"dexterity.dev/dexterity/test/harness"
)

// apiGroup is Dexterity's API group: its sample objects are the alm-examples.
const apiGroup = "dexterity.dev"

// The CSV owns exactly the CRDs of config/crd, and bundle/manifests carries them unchanged.
func TestBundleOwnsTheCRDsOfConfig(t *testing.T) {
	g := NewWithT(t)
	csv := readCSV(t)
	crds := ofKind(render(t, "crd"), "CustomResourceDefinition")
	g.Expect(crds).NotTo(BeEmpty())

	owned := map[string]operatorsv1alpha1.CRDDescription{}
	for _, d := range csv.Spec.CustomResourceDefinitions.Owned {
		owned[d.Name] = d
	}
	var want []string
	for _, u := range crds {
		crd := &apiextensionsv1.CustomResourceDefinition{}
		convert(t, u, crd)
		want = append(want, crd.Name)
		t.Run(crd.Spec.Names.Kind, func(t *testing.T) {
			g := NewWithT(t)
			d, ok := owned[crd.Name]
			g.Expect(ok).To(BeTrue(), "CSV does not own %s: run `make bundle`", crd.Name)
			g.Expect(d.Kind).To(Equal(crd.Spec.Names.Kind))
			var served []string
			for _, v := range crd.Spec.Versions {
				if v.Served {
					served = append(served, v.Name)
				}
			}
			g.Expect(served).To(ContainElement(d.Version), "the CSV's version of %s is served", crd.Name)
			g.Expect(d.DisplayName).NotTo(BeEmpty())
			g.Expect(d.Description).NotTo(BeEmpty())

			var inBundle map[string]any
			readFile(t, filepath.Join("bundle", "manifests", crd.Spec.Group+"_"+crd.Spec.Names.Plural+".yaml"), &inBundle)
			g.Expect(inBundle).To(Equal(u.Object), "bundle/manifests has config's %s: run `make bundle`", crd.Name)
		})
	}
	g.Expect(keys(owned)).To(ConsistOf(want), "the CSV owns nothing config/crd does not define")
}

// alm-examples are config/samples' objects of Dexterity's group (namespace removed), and every
// owned kind but the internal ones (the operator's claims) has one.
func TestBundleExamplesAreTheSamples(t *testing.T) {
	g := NewWithT(t)
	csv := readCSV(t)
	examples := almExamples(t, csv)
	byKey := map[string]*unstructured.Unstructured{}
	for _, e := range examples {
		g.Expect(e.GetNamespace()).To(BeEmpty(), "%s %s: alm-examples carry no namespace", e.GetKind(), e.GetName())
		byKey[e.GetKind()+"/"+e.GetName()] = e
	}
	var want []string
	kinds := map[string]bool{}
	for _, s := range render(t, "samples") {
		if s.GroupVersionKind().Group != apiGroup {
			continue
		}
		key := s.GetKind() + "/" + s.GetName()
		want = append(want, key)
		kinds[s.GetKind()] = true
		e, ok := byKey[key]
		if !ok {
			t.Errorf("sample %s is not an alm-example: run `make bundle`", key)
			continue
		}
		g.Expect(e.Object["spec"]).To(Equal(s.Object["spec"]), "alm-example %s has the sample's spec", key)
	}
	g.Expect(keys(byKey)).To(ConsistOf(want))
	var internal []string
	g.Expect(json.Unmarshal([]byte(csv.Annotations["operators.operatorframework.io/internal-objects"]), &internal)).To(Succeed())
	for _, name := range internal {
		g.Expect(strings.HasSuffix(name, ".claims.dexterity.dev") || strings.HasSuffix(name, ".dex.coreos.com")).To(BeTrue(),
			"only the operator's claims and Dex's storage are internal, not %s", name)
	}
	g.Expect(internal).To(ContainElements("dexentryclaims.claims.dexterity.dev", "hostnameclaims.claims.dexterity.dev"))
	for _, d := range csv.Spec.CustomResourceDefinitions.Owned {
		if slices.Contains(internal, d.Name) {
			continue // the operator's own records: never written by users, no example
		}
		g.Expect(kinds).To(HaveKey(d.Kind), "config/samples has an example of %s", d.Kind)
	}
}

// Every alm-example is accepted by the API server (CRD schemas and CEL rules).
func TestBundleExamplesAreAccepted(t *testing.T) {
	for _, e := range almExamples(t, readCSV(t)) {
		t.Run(e.GetKind()+"/"+e.GetName(), func(t *testing.T) {
			e.SetNamespace(newNamespace(t, "example-"))
			NewWithT(t).Expect(k8s.Create(context.Background(), e)).To(Succeed())
		})
	}
}

// The CSV's webhookdefinitions are config/webhook's webhooks (validating and defaulting), served by the manager Deployment
// on the port of config/webhook's Service.
func TestBundleWebhooksAreTheConfigs(t *testing.T) {
	g := NewWithT(t)
	csv := readCSV(t)
	vwc, err := harness.WebhookConfiguration()
	g.Expect(err).NotTo(HaveOccurred())
	svc := &corev1.Service{}
	readFile(t, "config/webhook/service.yaml", svc)
	g.Expect(svc.Spec.Ports).To(HaveLen(1))
	port := svc.Spec.Ports[0]

	deployments := csv.Spec.InstallStrategy.StrategySpec.DeploymentSpecs
	g.Expect(deployments).To(HaveLen(1))
	var containerPorts []int32
	for _, c := range deployments[0].Spec.Template.Spec.Containers {
		for _, p := range c.Ports {
			containerPorts = append(containerPorts, p.ContainerPort)
		}
	}

	defs := map[string]operatorsv1alpha1.WebhookDescription{}
	for _, d := range csv.Spec.WebhookDefinitions {
		defs[d.GenerateName] = d
	}
	mwc, err := harness.MutatingWebhookConfiguration()
	g.Expect(err).NotTo(HaveOccurred())
	type webhook struct {
		typ           operatorsv1alpha1.WebhookAdmissionType
		name          string
		rules         []admissionregistrationv1.RuleWithOperations
		failurePolicy *admissionregistrationv1.FailurePolicyType
		sideEffects   *admissionregistrationv1.SideEffectClass
		timeout       *int32
		versions      []string
		cc            admissionregistrationv1.WebhookClientConfig
	}
	var all []webhook
	for _, w := range vwc.Webhooks {
		all = append(all, webhook{operatorsv1alpha1.ValidatingAdmissionWebhook, w.Name, w.Rules, w.FailurePolicy, w.SideEffects, w.TimeoutSeconds, w.AdmissionReviewVersions, w.ClientConfig})
	}
	for _, w := range mwc.Webhooks {
		all = append(all, webhook{operatorsv1alpha1.MutatingAdmissionWebhook, w.Name, w.Rules, w.FailurePolicy, w.SideEffects, w.TimeoutSeconds, w.AdmissionReviewVersions, w.ClientConfig})
	}
	var want []string
	for _, w := range all {
		want = append(want, w.name)
		t.Run(w.name, func(t *testing.T) {
			g := NewWithT(t)
			d, ok := defs[w.name]
			g.Expect(ok).To(BeTrue(), "the CSV has no webhook %s: run `make bundle`", w.name)
			g.Expect(d.Type).To(Equal(w.typ))
			g.Expect(d.Rules).To(Equal(w.rules))
			g.Expect(d.FailurePolicy).To(Equal(w.failurePolicy))
			g.Expect(d.SideEffects).To(Equal(w.sideEffects))
			g.Expect(d.TimeoutSeconds).To(Equal(w.timeout))
			g.Expect(d.AdmissionReviewVersions).To(Equal(w.versions))
			g.Expect(w.cc.Service).NotTo(BeNil())
			g.Expect(d.WebhookPath).To(Equal(w.cc.Service.Path))
			g.Expect(d.DeploymentName).To(Equal(deployments[0].Name))
			g.Expect(d.ContainerPort).To(Equal(port.Port))
			g.Expect(d.TargetPort).To(HaveValue(Equal(port.TargetPort)))
			g.Expect(port.TargetPort.Type).To(Equal(intstr.Int))
			g.Expect(containerPorts).To(ContainElement(port.TargetPort.IntVal), "the manager container exposes the webhook port")
		})
	}
	g.Expect(keys(defs)).To(ConsistOf(want))
}

// No permission of the bundle or of config/ uses a wildcard.
func TestNoWildcardPermissions(t *testing.T) {
	csv := readCSV(t)
	sets := map[string][]rbacv1.PolicyRule{}
	strategy := csv.Spec.InstallStrategy.StrategySpec
	for _, p := range strategy.Permissions {
		sets["CSV permissions of "+p.ServiceAccountName] = p.Rules
	}
	for _, p := range strategy.ClusterPermissions {
		sets["CSV clusterPermissions of "+p.ServiceAccountName] = p.Rules
	}
	for _, o := range render(t, "default") {
		if o.GetKind() == "Role" || o.GetKind() == "ClusterRole" {
			r := &rbacv1.ClusterRole{}
			convert(t, o, r)
			sets["config/default "+o.GetKind()+" "+o.GetName()] = r.Rules
		}
	}
	files, err := filepath.Glob(filepath.Join(root, "config", "rbac", "*.yaml"))
	NewWithT(t).Expect(err).NotTo(HaveOccurred())
	for _, f := range files {
		data, err := os.ReadFile(f)
		NewWithT(t).Expect(err).NotTo(HaveOccurred())
		for i, o := range decode(t, data) {
			if o.GetKind() == "Role" || o.GetKind() == "ClusterRole" {
				r := &rbacv1.ClusterRole{}
				convert(t, o, r)
				sets[fmt.Sprintf("config/rbac/%s #%d", filepath.Base(f), i)] = r.Rules
			}
		}
	}
	NewWithT(t).Expect(sets).To(HaveKey(HavePrefix("CSV clusterPermissions")))
	for _, name := range keys(sets) {
		t.Run(name, func(t *testing.T) {
			g := NewWithT(t)
			g.Expect(sets[name]).NotTo(BeEmpty())
			for i, r := range sets[name] {
				for _, list := range [][]string{r.APIGroups, r.Resources, r.Verbs, r.ResourceNames, r.NonResourceURLs} {
					for _, s := range list {
						g.Expect(s).NotTo(ContainSubstring("*"), "rule %d: %+v", i, r)
					}
				}
				g.Expect(r.NonResourceURLs).To(BeEmpty(), "rule %d", i)
			}
		})
	}
}

func almExamples(t *testing.T, csv *operatorsv1alpha1.ClusterServiceVersion) []*unstructured.Unstructured {
	t.Helper()
	var items []map[string]any
	if err := json.Unmarshal([]byte(csv.Annotations["alm-examples"]), &items); err != nil {
		t.Fatalf("alm-examples: %v", err)
	}
	if len(items) == 0 {
		t.Fatal("the CSV has no alm-examples")
	}
	out := make([]*unstructured.Unstructured, 0, len(items))
	for _, it := range items {
		// Round-trip through YAML so that numbers decode like the rendered samples'.
		data, err := yaml.Marshal(it)
		if err != nil {
			t.Fatal(err)
		}
		u := &unstructured.Unstructured{}
		if err := yaml.Unmarshal(data, &u.Object); err != nil {
			t.Fatal(err)
		}
		out = append(out, u)
	}
	return out
}

func keys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// has reports whether s holds every element of want.
func has(s []string, want ...string) bool {
	for _, w := range want {
		if !slices.Contains(s, w) {
			return false
		}
	}
	return true
}
