package webhookcert

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
)

// caFile is the CA certificate written next to the serving certificate (for clients and humans).
const caFile = "ca.crt"

// The cert dir layout, as the kubelet writes Secret volumes: the files live in a versioned
// directory, dataLink points at the current one, and each file name is a symlink through
// dataLink. Swapping dataLink replaces all files at once, so the webhook server never reads a
// new certificate with an old key.
const (
	dataLink    = "..data"
	dataLinkTmp = "..data_tmp"
	versionGlob = "..cert-*"
)

// Provided reports whether dir holds a certificate and key that this manager did not issue:
// both files exist and the certificate's issuer is not CAName/CAOrganization. A certificate that
// does not parse counts as provided (the webhook server then says what is wrong with it).
func Provided(dir, certName, keyName string) (bool, error) {
	for _, name := range []string{certName, keyName} {
		if _, err := os.Stat(filepath.Join(dir, name)); errors.Is(err, fs.ErrNotExist) {
			return false, nil
		} else if err != nil {
			return false, fmt.Errorf("failed to check webhook certificate: %w", err)
		}
	}
	data, err := os.ReadFile(filepath.Join(dir, certName))
	if err != nil {
		return false, fmt.Errorf("failed to read webhook certificate: %w", err)
	}
	block, _ := pem.Decode(data)
	if block == nil {
		return true, nil
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		return true, nil //nolint:nilerr // someone else's file; the webhook server reports it
	}
	return !issuedHere(cert), nil
}

func issuedHere(cert *x509.Certificate) bool {
	return cert.Issuer.CommonName == CAName && slices.Contains(cert.Issuer.Organization, CAOrganization)
}

// resetDir creates dir if needed and removes what this manager wrote there before (a container
// restarted with the same emptyDir), so that the server waits for the current certificate.
func resetDir(dir, certName, keyName string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("failed to create webhook cert dir: %w", err)
	}
	old, err := filepath.Glob(filepath.Join(dir, versionGlob))
	if err != nil {
		return fmt.Errorf("failed to list webhook cert dir: %w", err)
	}
	for _, name := range []string{certName, keyName, caFile, dataLink, dataLinkTmp} {
		old = append(old, filepath.Join(dir, name))
	}
	for _, p := range old {
		if err := os.RemoveAll(p); err != nil {
			return fmt.Errorf("failed to clean webhook cert dir: %w", err)
		}
	}
	return nil
}

// file is one file of the cert dir.
type file struct {
	name string
	data []byte
}

// writeDir makes dir hold files (written in this order: the serving certificate last, so that
// its presence means the key is there too). It reports whether anything changed.
func writeDir(dir string, files []file) (bool, error) {
	same := true
	for _, f := range files {
		if cur, err := os.ReadFile(filepath.Join(dir, f.name)); err != nil || !bytes.Equal(cur, f.data) {
			same = false
			break
		}
	}
	if same {
		return false, nil
	}
	version, err := os.MkdirTemp(dir, strings.TrimSuffix(versionGlob, "*"))
	if err != nil {
		return false, fmt.Errorf("failed to write webhook certificate: %w", err)
	}
	for _, f := range files {
		if err := os.WriteFile(filepath.Join(version, f.name), f.data, 0o600); err != nil {
			_ = os.RemoveAll(version)
			return false, fmt.Errorf("failed to write webhook certificate: %w", err)
		}
	}
	previous, _ := os.Readlink(filepath.Join(dir, dataLink))
	tmp := filepath.Join(dir, dataLinkTmp)
	_ = os.Remove(tmp)
	if err := os.Symlink(filepath.Base(version), tmp); err != nil {
		return false, fmt.Errorf("failed to write webhook certificate: %w", err)
	}
	if err := os.Rename(tmp, filepath.Join(dir, dataLink)); err != nil {
		return false, fmt.Errorf("failed to write webhook certificate: %w", err)
	}
	for _, f := range files {
		link, target := filepath.Join(dir, f.name), filepath.Join(dataLink, f.name)
		if cur, err := os.Readlink(link); err == nil && cur == target {
			continue
		}
		_ = os.Remove(link)
		if err := os.Symlink(target, link); err != nil {
			return false, fmt.Errorf("failed to write webhook certificate: %w", err)
		}
	}
	if previous != "" && previous != filepath.Base(version) {
		if err := os.RemoveAll(filepath.Join(dir, previous)); err != nil {
			return true, fmt.Errorf("failed to remove previous webhook certificate: %w", err)
		}
	}
	return true, nil
}

// dirWriter copies the certificate the rotator keeps in the Secret into the cert dir, on every
// replica.
type dirWriter struct {
	client.Reader
	Secret                 types.NamespacedName
	Dir, CertName, KeyName string
}

func (w *dirWriter) setupWithManager(mgr ctrl.Manager, name string) error {
	return ctrl.NewControllerManagedBy(mgr).
		Named(name).
		For(&corev1.Secret{}, builder.OnlyMetadata, builder.WithPredicates(predicate.NewPredicateFuncs(func(o client.Object) bool {
			return o.GetNamespace() == w.Secret.Namespace && o.GetName() == w.Secret.Name
		}))).
		WithOptions(controller.Options{NeedLeaderElection: ptr.To(false)}).
		Complete(w)
}

// Reconcile writes the Secret's certificate, key and CA into the cert dir when they differ.
func (w *dirWriter) Reconcile(ctx context.Context, _ ctrl.Request) (ctrl.Result, error) {
	log := ctrl.LoggerFrom(ctx)
	s := &corev1.Secret{}
	if err := w.Get(ctx, w.Secret, s); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	cert, key := s.Data[w.CertName], s.Data[w.KeyName]
	if len(cert) == 0 || len(key) == 0 {
		return ctrl.Result{}, nil // not issued yet; the rotator's update brings us back
	}
	pair, err := tls.X509KeyPair(cert, key)
	if err != nil {
		log.Error(err, "Webhook certificate Secret holds no valid key pair; waiting for the rotator to replace it")
		return ctrl.Result{}, nil
	}
	changed, err := writeDir(w.Dir, []file{{caFile, s.Data[caFile]}, {w.KeyName, key}, {w.CertName, cert}})
	if err != nil {
		return ctrl.Result{}, err
	}
	if changed {
		log.Info("Wrote the webhook serving certificate", "certDir", w.Dir, "notAfter", pair.Leaf.NotAfter)
	}
	return ctrl.Result{}, nil
}
