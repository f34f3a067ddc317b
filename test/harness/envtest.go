package harness

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"

	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"dexterity.dev/dexterity/internal/scheme"
)

// Scheme holds the Kubernetes built-in types and Dexterity's: the operator's own
// (internal/scheme).
var Scheme = scheme.Scheme

// Env is a real kube-apiserver + etcd (envtest) with Dexterity's CRDs installed.
type Env struct {
	Environment *envtest.Environment
	Config      *rest.Config
	Client      client.Client
}

// EnvOptions configures StartEnv.
type EnvOptions struct {
	// WebhookInstallOptions are passed to envtest (webhook manifests to register).
	WebhookInstallOptions envtest.WebhookInstallOptions
	// InstallWebhooks registers config/webhook's webhook configurations with the API server,
	// pointing at a local webhook server (host, port and certificates in
	// Environment.WebhookInstallOptions).
	InstallWebhooks bool
	// EtcdDataDir keeps etcd's data in this folder (default: a temporary folder).
	EtcdDataDir string
	// Profiling serves kube-apiserver's /debug/pprof (the benchmarks' API-server profile).
	Profiling bool
	// WithoutCRDs names files of config/crd/bases not to install (an install of an older version,
	// for upgrade tests; install them later with InstallCRD).
	WithoutCRDs []string
}

// StartEnv starts kube-apiserver and etcd from <repo>/bin (built by `make tools`; override with
// KUBEBUILDER_ASSETS) and installs the CRDs of config/crd/bases.
func StartEnv(opts EnvOptions) (*Env, error) {
	root, err := repoRoot()
	if err != nil {
		return nil, err
	}
	assets := os.Getenv("KUBEBUILDER_ASSETS")
	if assets == "" {
		assets = filepath.Join(root, "bin")
	}
	for _, b := range []string{"kube-apiserver", "etcd"} {
		if _, err := os.Stat(filepath.Join(assets, b)); err != nil {
			return nil, fmt.Errorf("failed to find %s in %s: run `make tools` first: %w", b, assets, err)
		}
	}
	env := &envtest.Environment{
		BinaryAssetsDirectory: assets,
		CRDDirectoryPaths:     crdPaths(root, opts.WithoutCRDs),
		ErrorIfCRDPathMissing: true,
		Scheme:                Scheme,
		WebhookInstallOptions: opts.WebhookInstallOptions,
	}
	if opts.InstallWebhooks {
		env.WebhookInstallOptions.Paths = append(env.WebhookInstallOptions.Paths, filepath.Join(root, "config", "webhook", "manifests.yaml"))
	}
	if opts.EtcdDataDir != "" {
		if err := os.MkdirAll(opts.EtcdDataDir, 0o700); err != nil {
			return nil, fmt.Errorf("failed to create etcd data dir: %w", err)
		}
		env.ControlPlane.Etcd = &envtest.Etcd{DataDir: opts.EtcdDataDir}
	}
	if opts.Profiling {
		env.ControlPlane.GetAPIServer().Configure().Set("profiling", "true")
	}
	cfg, err := env.Start()
	if err != nil {
		// Start may fail after it started the processes (e.g. a CRD the API server rejects):
		// stop them, or they outlive the test binary.
		_ = env.Stop()
		return nil, fmt.Errorf("failed to start envtest: %w", err)
	}
	// Like ctrl.GetConfig: no client-side throttling (the API server's priority and fairness
	// applies), as the manager runs in production.
	cfg.QPS, cfg.Burst = -1, 0
	c, err := client.New(cfg, client.Options{Scheme: Scheme})
	if err != nil {
		_ = env.Stop()
		return nil, fmt.Errorf("failed to create client: %w", err)
	}
	return &Env{Environment: env, Config: cfg, Client: c}, nil
}

// crdPaths is config/crd/bases (or its files but those in without) and Dex's storage CRDs.
func crdPaths(root string, without []string) []string {
	dir := filepath.Join(root, "config", "crd", "bases")
	dexCRDs := filepath.Join(root, "config", "crd", "dex")
	if len(without) == 0 {
		return []string{dir, dexCRDs}
	}
	files, _ := filepath.Glob(filepath.Join(dir, "*.yaml"))
	out := files[:0]
	for _, f := range files {
		if !slices.Contains(without, filepath.Base(f)) {
			out = append(out, f)
		}
	}
	return append(out, dexCRDs)
}

// InstallCRD installs the CRD of config/crd/bases/<file> and waits until it is served.
func (e *Env) InstallCRD(file string) error {
	root, err := repoRoot()
	if err != nil {
		return err
	}
	_, err = envtest.InstallCRDs(e.Config, envtest.CRDInstallOptions{Paths: []string{filepath.Join(root, "config", "crd", "bases", file)}, ErrorIfPathMissing: true, Scheme: Scheme})
	return err
}

// Stop stops kube-apiserver and etcd.
func (e *Env) Stop() error { return e.Environment.Stop() }
