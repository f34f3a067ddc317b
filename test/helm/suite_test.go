// Package helm tests charts/dexterity with Helm's own Go packages: lint, render with the default
// and other values, compare with `kustomize build config/default`, install into a real
// kube-apiserver, run the manager with the RBAC the chart installed, upgrade, uninstall. It also
// parses the alerts' and the dashboard's expressions with Prometheus's own PromQL parser.
//
// It is a module of its own (test/helm/go.mod): Helm v4 and Prometheus need newer Kubernetes
// libraries than the operator's module uses. From the operator it imports only
// internal/metrics/promexpr (the standard library and sigs.k8s.io/yaml); the manager runs as the
// binary `go build ./cmd/dexterity` makes in the operator's module.
package helm

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	. "github.com/onsi/gomega"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	"sigs.k8s.io/yaml"
)

// root is the repository root, seen from this package's directory.
const root = "../.."

var chartDir = filepath.Join(root, "charts", "dexterity")

var (
	env        *envtest.Environment
	restConfig *rest.Config
	k8s        client.Client
	kubeconfig string // the admin's kubeconfig file
)

func TestMain(m *testing.M) { os.Exit(run(m)) }

func run(m *testing.M) int {
	assets := os.Getenv("KUBEBUILDER_ASSETS")
	if assets == "" {
		assets = filepath.Join(root, "bin")
	}
	env = &envtest.Environment{BinaryAssetsDirectory: assets}
	var err error
	restConfig, err = env.Start()
	if err != nil {
		_ = env.Stop()
		fmt.Fprintf(os.Stderr, "failed to start envtest from %s (run `make tools`): %v\n", assets, err)
		return 1
	}
	defer func() { _ = env.Stop() }()
	k8s, err = client.New(restConfig, client.Options{})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	dir, err := os.MkdirTemp("", "dexterity-helm-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer func() { _ = os.RemoveAll(dir) }()
	kubeconfig = filepath.Join(dir, "kubeconfig")
	if err := os.WriteFile(kubeconfig, env.KubeConfig, 0o600); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return m.Run()
}

// kustomize renders a directory of config/ with bin/kustomize.
func kustomize(t *testing.T, dir string) []*unstructured.Unstructured {
	t.Helper()
	bin := filepath.Join(root, "bin", "kustomize")
	if _, err := os.Stat(bin); err != nil {
		t.Fatalf("bin/kustomize is missing (%v): run `make tools`", err)
	}
	cmd := exec.Command(bin, "build", filepath.Join(root, "config", dir))
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("kustomize build config/%s: %v\n%s", dir, err, stderr.String())
	}
	return decode(t, out)
}

// decode reads a multi-document YAML stream.
func decode(t *testing.T, data []byte) []*unstructured.Unstructured {
	t.Helper()
	var objs []*unstructured.Unstructured
	r := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(data)))
	for {
		doc, err := r.Read()
		if err == io.EOF {
			return objs
		}
		NewWithT(t).Expect(err).NotTo(HaveOccurred())
		u := &unstructured.Unstructured{}
		NewWithT(t).Expect(yaml.Unmarshal(doc, &u.Object)).To(Succeed(), "%s", doc)
		if len(u.Object) > 0 {
			objs = append(objs, u)
		}
	}
}

// find returns the object of kind and name, or nil.
func find(objs []*unstructured.Unstructured, kind, name string) *unstructured.Unstructured {
	for _, o := range objs {
		if o.GetKind() == kind && o.GetName() == name {
			return o
		}
	}
	return nil
}
