package main

import (
	"context"
	"crypto/tls"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	dexv1 "dexterity.dev/dexterity/api/v1alpha1"
	"dexterity.dev/dexterity/test/harness"
)

// Addresses of the local registry and of the file server holding the module and provider
// archives it points to.
const (
	registryAddr = "127.0.0.1:8443"
	filesAddr    = "127.0.0.1:8444"
)

// registryTLS writes a fresh local CA and a certificate for 127.0.0.1/localhost, used by the
// registry and the file server, into dir (ca.crt, tls.crt, tls.key).
func registryTLS(dir string) error {
	sc, err := harness.NewServingCert(pkix.Name{CommonName: "Dexterity make run CA"})
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	for name, data := range map[string][]byte{"ca.crt": sc.CACert, "tls.crt": sc.Cert, "tls.key": sc.Key} {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o600); err != nil {
			return err
		}
	}
	return nil
}

// registryContent builds Team A's module (a tarball) and provider (zip, SHA256SUMS and its
// signature by a fresh GPG key) into dir, serves dir on HTTPS at filesAddr until ctx ends, and
// returns the Module and Provider objects that publish them.
func registryContent(ctx context.Context, dir, tlsDir string) ([]client.Object, error) {
	if err := os.RemoveAll(dir); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	tarball, err := harness.BuildModuleTarball(dir, map[string]string{
		"main.tf": `variable "name" {
  type    = string
  default = "team-a"
}

output "greeting" {
  value = "Hello from the network module of ${var.name}"
}
`,
	})
	if err != nil {
		return nil, err
	}
	key, err := harness.NewGPGKey("Dexterity make run")
	if err != nil {
		return nil, err
	}
	defer key.Close()
	sp, err := harness.BuildSignedProviderWithKey(key, dir, "team-a", "echo", "0.1.0", [][2]string{{runtime.GOOS, runtime.GOARCH}})
	if err != nil {
		return nil, err
	}

	cert, err := tls.LoadX509KeyPair(filepath.Join(tlsDir, "tls.crt"), filepath.Join(tlsDir, "tls.key"))
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", filesAddr)
	if err != nil {
		return nil, fmt.Errorf("failed to listen on %s for the registry's files: %w", filesAddr, err)
	}
	srv := &http.Server{Handler: http.FileServer(http.Dir(dir)), ReadHeaderTimeout: 10 * time.Second,
		TLSConfig: &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}}
	go func() {
		if err := srv.ServeTLS(ln, "", ""); err != nil && !errors.Is(err, http.ErrServerClosed) {
			fmt.Fprintln(os.Stderr, "devenv: file server:", err)
		}
	}()
	go func() { <-ctx.Done(); _ = srv.Close() }()

	base := "https://" + filesAddr + "/"
	module := &dexv1.Module{
		TypeMeta:   metav1.TypeMeta{APIVersion: dexv1.GroupVersion.String(), Kind: "Module"},
		ObjectMeta: metav1.ObjectMeta{Name: "network", Namespace: "team-a"},
		Spec: dexv1.ModuleSpec{Namespace: "team-a", Name: "network", System: "local",
			Versions: []dexv1.ModuleVersion{{Version: "1.0.0", Source: base + filepath.Base(tarball)}}},
	}
	provider := &dexv1.Provider{
		TypeMeta:   metav1.TypeMeta{APIVersion: dexv1.GroupVersion.String(), Kind: "Provider"},
		ObjectMeta: metav1.ObjectMeta{Name: "echo", Namespace: "team-a"},
		Spec:       sp.ProviderSpec(base),
	}
	return []client.Object{module, provider}, nil
}

// writeExample writes a root module using Team A's module and provider from the local registry.
// The folder is recreated on every run: the provider archive (and so its checksum in a lock file
// of an earlier run) is rebuilt each time.
func writeExample(dir string) error {
	if err := os.RemoveAll(dir); err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	main := fmt.Sprintf(`# Uses Team A's module and provider from the registry of `+"`make run`"+`.
terraform {
  required_providers {
    echo = {
      source  = "%[1]s/team-a/echo"
      version = "0.1.0"
    }
  }
}

module "network" {
  source  = "%[1]s/team-a/network/local"
  version = "1.0.0"
}

output "greeting" {
  value = module.network.greeting
}
`, registryAddr)
	return os.WriteFile(filepath.Join(dir, "main.tf"), []byte(main), 0o644)
}
