package v1alpha1_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	. "github.com/onsi/gomega"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"

	dexv1 "dexterity.dev/dexterity/api/v1alpha1"
)

// tenantCRDs are the kinds a tenant writes (the dexterity-tenant-edit role: admin and edit in
// its own namespace). Their status is the operator's (no tenant role grants it).
var tenantCRDs = []string{
	"dexterity.dev_dexstaticclients.yaml",
	"dexterity.dev_groupbindings.yaml",
	"dexterity.dev_modules.yaml",
	"dexterity.dev_providers.yaml",
}

// Every string, list and map a tenant can write has a bound in the CRD schema (design.md §7
// "Tenants"): what one object can make the shared manager hold is bounded before the manager
// reads it. The test reads the CRDs as generated (config/crd/bases) and lists the JSON paths
// without a bound: a string without maxLength (or an enum), a list without maxItems, a map
// (additionalProperties) or free-form object without maxProperties.
func TestTenantInputIsBounded(t *testing.T) {
	g := NewWithT(t)
	var unbounded []string
	for _, name := range tenantCRDs {
		raw, err := os.ReadFile(filepath.Join("..", "..", "config", "crd", "bases", name))
		g.Expect(err).NotTo(HaveOccurred())
		var crd apiextensionsv1.CustomResourceDefinition
		g.Expect(yaml.Unmarshal(raw, &crd)).To(Succeed())
		g.Expect(crd.Spec.Versions).NotTo(BeEmpty(), name)
		for _, v := range crd.Spec.Versions {
			spec, ok := v.Schema.OpenAPIV3Schema.Properties["spec"]
			g.Expect(ok).To(BeTrue(), "%s %s has no spec", name, v.Name)
			for _, p := range unboundedPaths(".spec", spec) {
				key := crd.Spec.Names.Plural + " " + p
				unbounded = append(unbounded, key)
			}
		}
	}
	sort.Strings(unbounded)
	g.Expect(unbounded).To(BeEmpty(), "tenant-writable fields without a schema bound (add MaxLength, MaxItems or MaxProperties, generous for real use)")
}

// unboundedPaths lists the paths under s (at path) without a bound.
func unboundedPaths(path string, s apiextensionsv1.JSONSchemaProps) []string {
	var out []string
	switch s.Type {
	case "string":
		if s.MaxLength == nil && len(s.Enum) == 0 {
			out = append(out, path)
		}
	case "array":
		if s.MaxItems == nil {
			out = append(out, path)
		}
		if s.Items != nil && s.Items.Schema != nil {
			out = append(out, unboundedPaths(path+"[*]", *s.Items.Schema)...)
		}
	case "object", "":
		free := s.AdditionalProperties != nil || (s.XPreserveUnknownFields != nil && *s.XPreserveUnknownFields) || s.XIntOrString
		if free && s.MaxProperties == nil {
			out = append(out, path)
		}
		if ap := s.AdditionalProperties; ap != nil && ap.Schema != nil {
			out = append(out, unboundedPaths(path+"[*]", *ap.Schema)...)
		}
		names := make([]string, 0, len(s.Properties))
		for n := range s.Properties {
			names = append(names, n)
		}
		sort.Strings(names)
		for _, n := range names {
			out = append(out, unboundedPaths(path+"."+n, s.Properties[n])...)
		}
	}
	return out
}

// The walker finds what it must: a schema with one unbounded field of each shape.
func TestUnboundedPathsFindsEachShape(t *testing.T) {
	g := NewWithT(t)
	preserve := true
	ten := int64(10)
	s := apiextensionsv1.JSONSchemaProps{Type: "object", Properties: map[string]apiextensionsv1.JSONSchemaProps{
		"bounded":   {Type: "string", MaxLength: &ten},
		"enum":      {Type: "string", Enum: []apiextensionsv1.JSON{{Raw: []byte(`"a"`)}}},
		"string":    {Type: "string"},
		"list":      {Type: "array", MaxItems: &ten, Items: &apiextensionsv1.JSONSchemaPropsOrArray{Schema: &apiextensionsv1.JSONSchemaProps{Type: "string"}}},
		"map":       {Type: "object", AdditionalProperties: &apiextensionsv1.JSONSchemaPropsOrBool{Allows: true, Schema: &apiextensionsv1.JSONSchemaProps{Type: "string", MaxLength: &ten}}},
		"freeform":  {Type: "object", XPreserveUnknownFields: &preserve},
		"number":    {Type: "integer"},
		"structure": {Type: "object", Properties: map[string]apiextensionsv1.JSONSchemaProps{"x": {Type: "array"}}},
	}}
	g.Expect(unboundedPaths(".spec", s)).To(ConsistOf(".spec.string", ".spec.list[*]", ".spec.map", ".spec.freeform", ".spec.structure.x"))
}

// The largest DexStaticClient and GroupBinding the schema allows (every string at its maximum
// length, every list at its maximum count) are accepted: the bounds leave real use room, and the
// CEL rules' runtime cost stays within the API server's budget at the bounds.
func TestLargestObjectsAccepted(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ns := newNamespace(t)
	uris := make([]string, 200)
	for i := range uris {
		u := fmt.Sprintf("https://app.example.com/%04d/", i)
		if i%2 == 1 {
			u = fmt.Sprintf("http://127.0.%d.%d:8000/", i/200, i%200)
		}
		uris[i] = u + strings.Repeat("a", 2048-len(u))
	}
	peers := make([]string, 100)
	for i := range peers {
		peers[i] = fmt.Sprintf("%04d", i) + strings.Repeat("p", 249)
	}
	c := &dexv1.DexStaticClient{
		ObjectMeta: metav1.ObjectMeta{Name: "largest", Namespace: ns},
		Spec: dexv1.DexStaticClientSpec{
			ProviderRef:      dexv1.ObjectRef{Name: "dex"},
			ClientID:         strings.Repeat("i", 253),
			DisplayName:      strings.Repeat("d", 256),
			RedirectURIs:     uris,
			LoopbackRedirect: &dexv1.LoopbackRedirect{Ports: []int32{65436, 65535}, Path: "/" + strings.Repeat("l", 255)},
			TrustedPeers:     peers,
			LogoURL:          "https://logo.example.com/" + strings.Repeat("g", 2048-25),
			SecretRef:        &dexv1.SecretKeyRef{Name: "s", Key: "k"},
		},
	}
	g.Expect(k8s.Create(ctx, c)).To(Succeed())

	globs := make([]string, 100)
	for i := range globs {
		p := fmt.Sprintf("team-%03d/", i)
		globs[i] = p + strings.Repeat("[a-z]*?", (256-len(p))/7)
	}
	gb := &dexv1.GroupBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "largest", Namespace: ns},
		Spec: dexv1.GroupBindingSpec{Expression: `"` + strings.Repeat("g", 4096-len(`"" in groups`)) + `" in groups`,
			ModuleResources: globs, ProviderResources: globs},
	}
	g.Expect(k8s.Create(ctx, gb)).To(Succeed())
}
