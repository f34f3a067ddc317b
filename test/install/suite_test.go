// Package install tests what users install: the kustomize deployment (config/default) and the OLM
// bundle (bundle/). Expectations are derived from config/ at test time (CRDs, samples, webhooks),
// so new kinds need no change here. The RBAC tests run the manager against a real kube-apiserver
// as the ServiceAccount with exactly the permissions an install grants, and a real Dex.
package install

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	operatorsv1alpha1 "github.com/operator-framework/api/pkg/operators/v1alpha1"
	"go.uber.org/zap/zapcore"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/klog/v2"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	"sigs.k8s.io/yaml"

	"dexterity.dev/dexterity/test/harness"
)

// root is the repository root, seen from this package's directory.
const root = "../.."

const waitTimeout = 60 * time.Second

var (
	env      *harness.Env
	k8s      client.Client
	plainDex *harness.Dex
)

func TestMain(m *testing.M) { os.Exit(run(m)) }

func run(m *testing.M) int {
	// The manager's whole log (client-go's included: a forbidden list or watch is logged by
	// client-go's reflector through klog) goes to managerLog; errors also to stderr.
	logger := zap.New(zap.UseDevMode(true), zap.WriteTo(io.MultiWriter(&managerLog, errorsTo{os.Stderr})), zap.Level(zapcore.DebugLevel))
	ctrl.SetLogger(logger)
	klog.SetLogger(logger)

	var err error
	env, err = harness.StartEnv(harness.EnvOptions{})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer func() { _ = env.Stop() }()
	k8s = env.Client

	dir, err := os.MkdirTemp("", "dexterity-install-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer func() { _ = os.RemoveAll(dir) }()
	plainDex, err = harness.StartDex(harness.DexOptions{Dir: dir})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer func() { _ = plainDex.Stop() }()
	return m.Run()
}

// managerLog holds everything the managers of this package logged.
var managerLog syncBuffer

type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// Since returns what was logged after offset, and the new offset.
func (b *syncBuffer) Since(offset int) (string, int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()[offset:], b.buf.Len()
}

// errorsTo passes ERROR lines, or everything with TEST_VERBOSE_LOG set.
type errorsTo struct{ w io.Writer }

func (f errorsTo) Write(p []byte) (int, error) {
	if os.Getenv("TEST_VERBOSE_LOG") != "" || bytes.Contains(p, []byte("\tERROR\t")) {
		return f.w.Write(p)
	}
	return len(p), nil
}

// render runs `kustomize build` on a directory of config/ (bin/kustomize, as `make bundle` does).
func render(t *testing.T, dir string) []*unstructured.Unstructured {
	t.Helper()
	kustomize := filepath.Join(root, "bin", "kustomize")
	if _, err := os.Stat(kustomize); err != nil {
		t.Fatalf("bin/kustomize is missing (%v): run `make tools`", err)
	}
	cmd := exec.Command(kustomize, "build", filepath.Join(root, "config", dir))
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
		if err != nil {
			t.Fatal(err)
		}
		u := &unstructured.Unstructured{}
		if err := yaml.Unmarshal(doc, &u.Object); err != nil {
			t.Fatal(err)
		}
		if len(u.Object) > 0 {
			objs = append(objs, u)
		}
	}
}

// readFile decodes one YAML file of the repository.
func readFile(t *testing.T, path string, into any) {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(root, path))
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(data, into); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

func readCSV(t *testing.T) *operatorsv1alpha1.ClusterServiceVersion {
	t.Helper()
	csv := &operatorsv1alpha1.ClusterServiceVersion{}
	readFile(t, "bundle/manifests/dexterity.clusterserviceversion.yaml", csv)
	return csv
}

// ofKind returns the objects of a kind.
func ofKind(objs []*unstructured.Unstructured, kind string) []*unstructured.Unstructured {
	var out []*unstructured.Unstructured
	for _, o := range objs {
		if o.GetKind() == kind {
			out = append(out, o)
		}
	}
	return out
}

// convert decodes an unstructured object into a typed one.
func convert(t *testing.T, u *unstructured.Unstructured, into any) {
	t.Helper()
	data, err := u.MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(data, into); err != nil {
		t.Fatalf("%s %s: %v", u.GetKind(), u.GetName(), err)
	}
}

func newNamespace(t *testing.T, prefix string) string {
	t.Helper()
	ns := &unstructured.Unstructured{}
	ns.SetAPIVersion("v1")
	ns.SetKind("Namespace")
	ns.SetGenerateName(prefix)
	NewWithT(t).Expect(k8s.Create(context.Background(), ns)).To(Succeed())
	return ns.GetName()
}
