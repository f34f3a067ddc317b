package importer_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"dexterity.dev/dexterity/internal/importer"
)

// TestImportedObjectsPassAdmission creates what the importer makes of each fixture in the API
// server: the CRDs' OpenAPI and CEL rules accept every object as printed.
func TestImportedObjectsPassAdmission(t *testing.T) {
	var wide strings.Builder
	wide.WriteString("staticClients:\n- id: wide\n  public: true\n  redirectURIs:\n")
	for p := 20000; p < 20150; p++ { // 100 ports folded, 50 kept
		fmt.Fprintf(&wide, "  - http://localhost:%d/login\n", p)
	}
	for i := 0; i < 150; i++ {
		fmt.Fprintf(&wide, "  - https://app%d.example.com/callback\n", i)
	}
	fixtures := map[string][]byte{"wide": []byte(wide.String())}
	for _, f := range []string{"dex-examples.yaml", "shared-dex.yaml"} {
		data, err := os.ReadFile(filepath.Join("..", "..", "internal", "importer", "testdata", f))
		NewWithT(t).Expect(err).NotTo(HaveOccurred())
		fixtures[f] = data
	}
	fixtures["roundtrip.yaml"], _ = os.ReadFile(filepath.Join("testdata", "roundtrip.yaml"))
	filled := func(string) (string, bool) { return "value-from-env", true }

	for name, data := range fixtures {
		t.Run(name, func(t *testing.T) {
			g := NewWithT(t)
			ctx := context.Background()
			ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "admission-"}}
			g.Expect(k8s.Create(ctx, ns)).To(Succeed())
			res, err := importer.Import(data, importer.Options{Namespace: ns.Name, LookupEnv: filled})
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(res.Entries).NotTo(BeEmpty())
			for _, e := range res.Entries {
				var objs []client.Object
				if e.Secret != nil {
					objs = append(objs, e.Secret)
				}
				if e.Client != nil {
					objs = append(objs, e.Client)
				} else {
					objs = append(objs, e.Connector)
				}
				for _, o := range objs {
					g.Expect(k8s.Create(ctx, o, client.DryRunAll)).To(Succeed(), "%s of %s", o.GetName(), e.Field)
				}
			}
		})
	}
}
