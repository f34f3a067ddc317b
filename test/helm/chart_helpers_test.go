package helm

import (
	"io"
	"log/slog"
	"testing"

	. "github.com/onsi/gomega"
	"helm.sh/helm/v4/pkg/action"
	"helm.sh/helm/v4/pkg/chart/common"
	chart "helm.sh/helm/v4/pkg/chart/v2"
	"helm.sh/helm/v4/pkg/chart/v2/loader"
	kubefake "helm.sh/helm/v4/pkg/kube/fake"
	release "helm.sh/helm/v4/pkg/release/v1"
	"helm.sh/helm/v4/pkg/storage"
	"helm.sh/helm/v4/pkg/storage/driver"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/cli-runtime/pkg/genericclioptions"
)

// kubeVersion is the Kubernetes version templates render for: the kube-apiserver the tests run
// (hack/tools/versions.env).
const kubeVersion = "v1.34.0"

func loadChart(t *testing.T) *chart.Chart {
	t.Helper()
	ch, err := loader.LoadDir(chartDir)
	NewWithT(t).Expect(err).NotTo(HaveOccurred())
	return ch
}

// render is `helm template`: the release's manifest with vals, in namespace.
func render(t *testing.T, namespace string, vals map[string]any) []*unstructured.Unstructured {
	t.Helper()
	manifest, err := renderManifest(t, namespace, vals)
	NewWithT(t).Expect(err).NotTo(HaveOccurred())
	return decode(t, []byte(manifest))
}

// renderManifest is render's manifest, or the error helm gives.
func renderManifest(t *testing.T, namespace string, vals map[string]any) (string, error) {
	t.Helper()
	cfg := action.NewConfiguration(action.ConfigurationSetLogger(slog.DiscardHandler))
	cfg.Releases = storage.Init(driver.NewMemory())
	cfg.KubeClient = &kubefake.PrintingKubeClient{Out: io.Discard}
	cfg.Capabilities = common.DefaultCapabilities
	in := action.NewInstall(cfg)
	in.DryRunStrategy = action.DryRunClient
	in.Replace = true
	in.ReleaseName = "dexterity"
	in.Namespace = namespace
	kv, err := common.ParseKubeVersion(kubeVersion)
	NewWithT(t).Expect(err).NotTo(HaveOccurred())
	in.KubeVersion = kv
	rel, err := in.Run(loadChart(t), vals)
	if err != nil {
		return "", err
	}
	return asRelease(t, rel).Manifest, nil
}

func asRelease(t *testing.T, r any) *release.Release {
	t.Helper()
	rel, ok := r.(*release.Release)
	NewWithT(t).Expect(ok).To(BeTrue(), "a %T", r)
	return rel
}

// actionConfig acts on the envtest API server as its admin, in namespace.
func actionConfig(t *testing.T, namespace string) *action.Configuration {
	t.Helper()
	flags := genericclioptions.NewConfigFlags(false)
	flags.KubeConfig = &kubeconfig
	flags.Namespace = &namespace
	cfg := action.NewConfiguration(action.ConfigurationSetLogger(slog.DiscardHandler))
	NewWithT(t).Expect(cfg.Init(flags, namespace, "secret")).To(Succeed())
	return cfg
}
