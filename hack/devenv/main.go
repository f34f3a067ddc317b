// Command devenv runs Dexterity locally for `make run`: etcd + kube-apiserver (envtest), a real
// Dex on sqlite3, the manager binary with the registry on HTTPS (local CA), config/samples, and
// Team A's module and signed provider on a local file server. State lives under --state (default
// .dev/) and survives restarts; delete that folder to start from scratch. Ctrl-C stops everything.
package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/controller-runtime/pkg/client"

	dexv1 "dexterity.dev/dexterity/api/v1alpha1"
	"dexterity.dev/dexterity/internal/dexdeploy"
	"dexterity.dev/dexterity/test/harness"
	"dexterity.dev/dexterity/test/kubelet"
)

func main() {
	// The Dex pod runs as the tests run it: in a private mount namespace where its Secret volumes
	// are bind-mounted at the Deployment's paths and /etc/hosts resolves the Service names.
	if code, exited := kubelet.EnterMountNamespace(); exited {
		os.Exit(code)
	}
	manager := flag.String("manager", "bin/dexterity", "Manager binary to run.")
	state := flag.String("state", ".dev", "Folder for etcd data, Dex's sqlite3 database, logs and the kubeconfig.")
	samples := flag.String("samples", "config/samples", "Kustomization applied once everything runs.")
	flag.Parse()
	if err := run(*manager, *state, *samples); err != nil {
		fmt.Fprintln(os.Stderr, "devenv:", err)
		os.Exit(1)
	}
}

func run(managerBin, state, samples string) error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	state, err := filepath.Abs(state)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(state, 0o755); err != nil {
		return err
	}

	fmt.Println(">> starting etcd + kube-apiserver (data in", filepath.Join(state, "etcd")+")")
	env, err := harness.StartEnv(harness.EnvOptions{EtcdDataDir: filepath.Join(state, "etcd")})
	if err != nil {
		return err
	}
	defer func() { _ = env.Stop() }()
	kubeconfig := filepath.Join(state, "kubeconfig")
	if err := env.WriteAdminKubeconfig(kubeconfig, "dev-admin"); err != nil {
		return err
	}

	root, err := filepath.Abs(".")
	if err != nil {
		return err
	}
	fmt.Println(">> starting the local kubelet (runs the Dex object's pod with bin/dex; pod logs in", filepath.Join(state, "pods")+")")
	node, err := kubelet.Start(ctx, kubelet.Options{
		Config: env.Config,
		Files:  map[string]string{dexdeploy.BinaryPath: filepath.Join(root, "bin", "dex")},
		LogDir: filepath.Join(state, "pods"),
	})
	if err != nil {
		return err
	}
	defer node.Stop()

	tlsDir := filepath.Join(state, "registry-tls")
	fmt.Println(">> writing a local CA and the registry's certificate to", tlsDir)
	if err := registryTLS(tlsDir); err != nil {
		return err
	}

	fmt.Println(">> starting the manager:", managerBin, "(log in", filepath.Join(state, "manager.log")+")")
	mgr, err := startManager(managerBin, kubeconfig, filepath.Join(state, "manager.log"), tlsDir)
	if err != nil {
		return err
	}
	defer stopProcess(mgr)

	fmt.Println(">> applying", samples)
	if err := applyKustomization(ctx, env.Client, samples); err != nil {
		return err
	}
	fmt.Println(">> running the pod of Dex dexterity-system/dex (HTTP 127.0.0.1:5556, gRPC with mTLS at dex.dexterity-system.svc:5557) once the operator has rendered it")
	if err := runWhenRendered(ctx, node, "dexterity-system", "dex", 2*time.Minute); err != nil {
		return err
	}
	filesDir := filepath.Join(state, "registry-files")
	fmt.Println(">> building Team A's module and signed provider into", filesDir, "(served on https://"+filesAddr+")")
	content, err := registryContent(ctx, filesDir, tlsDir)
	if err != nil {
		return err
	}
	for _, obj := range content {
		u := &unstructured.Unstructured{}
		if u.Object, err = runtime.DefaultUnstructuredConverter.ToUnstructured(obj); err != nil {
			return err
		}
		if err := applyWithRetry(ctx, env.Client, u); err != nil {
			return err
		}
		fmt.Printf("   applied %s %s/%s\n", u.GetKind(), u.GetNamespace(), u.GetName())
	}
	example := filepath.Join(state, "example")
	if err := writeExample(example); err != nil {
		return err
	}
	if err := waitReady(ctx, env.Client, 2*time.Minute); err != nil {
		return err
	}
	fmt.Printf(`
Dexterity is running.
  Kubernetes API:  kubectl --kubeconfig %s get dex,oidcproviders,dexstaticclients,dexconnectors,groupbindings,modules,providers -A
  Dex issuer:      %s  (users admin@example.com / bob@example.com, password "password")
  Dex gRPC API:    %s (mutual TLS with the certificates the operator generated)
  Manager log:     %s
  Dex pod log:     %s
  Registry:        https://%s (Team A's tenant: OIDCProvider team-a/registry)

Try the registry with OpenTofu (bin/tofu, built by make tools), in another shell:
  export SSL_CERT_FILE=%s   # trust the local CA
  unset TF_CLI_CONFIG_FILE   # so that tofu reads the token tofu login stores
  %s login %s   # answer yes, open the URL, sign in as admin@example.com / password
  cd %s && %s init
Signed in as bob@example.com (team-b) instead, tofu init is refused with 403 Forbidden.

Press Ctrl-C to stop everything (state is kept in %s).
`, kubeconfig, "http://127.0.0.1:5556/dex", "dex.dexterity-system.svc:5557", filepath.Join(state, "manager.log"), filepath.Join(state, "pods"),
		registryAddr, filepath.Join(tlsDir, "ca.crt"), filepath.Join(root, "bin", "tofu"), registryAddr,
		example, filepath.Join(root, "bin", "tofu"), state)

	exited := make(chan error, 1)
	go func() { exited <- mgr.Wait() }()
	select {
	case <-ctx.Done():
		fmt.Println("\n>> stopping")
	case err := <-exited:
		return fmt.Errorf("manager exited: %v (see %s)", err, filepath.Join(state, "manager.log"))
	}
	return nil
}

func startManager(bin, kubeconfig, logPath, tlsDir string) (*exec.Cmd, error) {
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, "--kubeconfig", kubeconfig,
		"--metrics-bind-address", "127.0.0.1:8080", "--health-probe-bind-address", "127.0.0.1:8081",
		"--registry-bind-address", registryAddr, "--registry-default-provider", "team-a/registry",
		"--registry-tls-cert-file", filepath.Join(tlsDir, "tls.crt"), "--registry-tls-key-file", filepath.Join(tlsDir, "tls.key"),
		"--dex-resync-period", "1m")
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("failed to start manager %s (run `make build`): %w", bin, err)
	}
	return cmd, nil
}

func stopProcess(cmd *exec.Cmd) {
	if cmd.Process == nil || cmd.ProcessState != nil {
		return
	}
	_ = cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { _, _ = cmd.Process.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(15 * time.Second):
		_ = cmd.Process.Kill()
	}
}

// applyKustomization renders dir with bin/kustomize and server-side applies every object.
func applyKustomization(ctx context.Context, c client.Client, dir string) error {
	out, err := exec.CommandContext(ctx, "bin/kustomize", "build", dir).Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return fmt.Errorf("kustomize build %s: %s", dir, ee.Stderr)
		}
		return fmt.Errorf("kustomize build %s: %w", dir, err)
	}
	dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(out), 4096)
	for {
		u := &unstructured.Unstructured{}
		if err := dec.Decode(&u.Object); err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return err
		}
		if len(u.Object) == 0 {
			continue
		}
		if err := applyWithRetry(ctx, c, u); err != nil {
			return err
		}
		fmt.Printf("   applied %s %s/%s\n", u.GetKind(), u.GetNamespace(), u.GetName())
	}
}

func applyWithRetry(ctx context.Context, c client.Client, u *unstructured.Unstructured) error {
	var err error
	for i := 0; i < 20; i++ {
		if err = c.Patch(ctx, u, client.Apply, client.FieldOwner("dexterity-devenv"), client.ForceOwnership); err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(500 * time.Millisecond):
		}
	}
	return fmt.Errorf("failed to apply %s %s/%s: %w", u.GetKind(), u.GetNamespace(), u.GetName(), err)
}

// waitReady waits until every OIDCProvider and DexStaticClient is Ready.
func waitReady(ctx context.Context, c client.Client, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		notReady, n, err := notReadyObjects(ctx, c)
		if err != nil {
			return err
		}
		if notReady == "" {
			fmt.Printf(">> %d object(s) Ready\n", n)
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not Ready after %s: %s", timeout, notReady)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Second):
		}
	}
}

// runWhenRendered hands the Deployment of a Dex object to the kubelet once the operator created it.
func runWhenRendered(ctx context.Context, k *kubelet.Kubelet, ns, name string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		err := k.Run(ns, name)
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the Deployment of Dex %s/%s did not appear within %s: %w", ns, name, timeout, err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Second):
		}
	}
}

func notReadyObjects(ctx context.Context, c client.Client) (string, int, error) {
	var dexes dexv1.DexList
	if err := c.List(ctx, &dexes); err != nil {
		return "", 0, err
	}
	for _, d := range dexes.Items {
		if r := meta.FindStatusCondition(d.Status.Conditions, dexv1.ConditionReady); r == nil || r.Status != metav1.ConditionTrue {
			msg := "not reconciled yet"
			if r != nil {
				msg = r.Reason + ": " + r.Message
			}
			return fmt.Sprintf("Dex %s/%s: %s", d.Namespace, d.Name, msg), 0, nil
		}
	}
	var providers dexv1.OIDCProviderList
	if err := c.List(ctx, &providers); err != nil {
		return "", 0, err
	}
	var clients dexv1.DexStaticClientList
	if err := c.List(ctx, &clients); err != nil {
		return "", 0, err
	}
	var connectors dexv1.DexConnectorList
	if err := c.List(ctx, &connectors); err != nil {
		return "", 0, err
	}
	n := 0
	for _, k := range connectors.Items {
		n++
		if !meta.IsStatusConditionTrue(k.Status.Conditions, dexv1.ConditionReady) {
			msg := ""
			if r := meta.FindStatusCondition(k.Status.Conditions, dexv1.ConditionReady); r != nil {
				msg = r.Reason + ": " + r.Message
			}
			return fmt.Sprintf("DexConnector %s/%s: %s", k.Namespace, k.Name, msg), n, nil
		}
	}
	for _, p := range providers.Items {
		n++
		if !meta.IsStatusConditionTrue(p.Status.Conditions, dexv1.ConditionReady) {
			return fmt.Sprintf("OIDCProvider %s/%s: %s", p.Namespace, p.Name, p.Status.Message), n, nil
		}
	}
	for _, d := range clients.Items {
		n++
		if !meta.IsStatusConditionTrue(d.Status.Conditions, dexv1.ConditionReady) {
			msg := ""
			if r := meta.FindStatusCondition(d.Status.Conditions, dexv1.ConditionReady); r != nil {
				msg = r.Reason + ": " + r.Message
			}
			return fmt.Sprintf("DexStaticClient %s/%s: %s", d.Namespace, d.Name, msg), n, nil
		}
	}
	return "", n, nil
}
