package webhookcert

import (
	"context"
	"crypto/tls"
	"crypto/x509/pkix"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	"sigs.k8s.io/controller-runtime/pkg/webhook"

	"dexterity.dev/dexterity/test/harness"
)

func servingCert(t *testing.T, ca pkix.Name) *harness.ServingCert {
	t.Helper()
	c, err := harness.NewServingCert(ca)
	NewWithT(t).Expect(err).NotTo(HaveOccurred())
	return c
}

func writeFile(t *testing.T, dir, name string, data []byte) {
	t.Helper()
	NewWithT(t).Expect(os.WriteFile(filepath.Join(dir, name), data, 0o600)).To(Succeed())
}

func TestProvided(t *testing.T) {
	own := servingCert(t, pkix.Name{CommonName: CAName, Organization: []string{CAOrganization}})
	olm := servingCert(t, pkix.Name{CommonName: "olm-selfsigned-abc", Organization: []string{"Red Hat, Inc."}})
	sameNameOtherOrg := servingCert(t, pkix.Name{CommonName: CAName, Organization: []string{"someone else"}})
	for _, tc := range []struct {
		name       string
		cert, key  []byte
		want       bool
		ownWritten bool // written by writeDir, as the manager does
	}{
		{name: "empty dir: self-manage", want: false},
		{name: "certificate without key: self-manage", cert: olm.Cert, want: false},
		{name: "key without certificate: self-manage", key: olm.Key, want: false},
		{name: "OLM's certificate: provided", cert: olm.Cert, key: olm.Key, want: true},
		{name: "another issuer with our CA's name: provided", cert: sameNameOtherOrg.Cert, key: sameNameOtherOrg.Key, want: true},
		{name: "our own certificate from an earlier run: self-manage", cert: own.Cert, key: own.Key, want: false, ownWritten: true},
		{name: "not a certificate: provided (the webhook server reports it)", cert: []byte("garbage"), key: []byte("garbage"), want: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			dir := t.TempDir()
			if tc.ownWritten {
				_, err := writeDir(dir, []file{{"tls.key", tc.key}, {"tls.crt", tc.cert}})
				g.Expect(err).NotTo(HaveOccurred())
			} else {
				if tc.cert != nil {
					writeFile(t, dir, "tls.crt", tc.cert)
				}
				if tc.key != nil {
					writeFile(t, dir, "tls.key", tc.key)
				}
			}
			got, err := Provided(dir, "tls.crt", "tls.key")
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(got).To(Equal(tc.want))
		})
	}
	t.Run("missing dir: self-manage", func(t *testing.T) {
		got, err := Provided(filepath.Join(t.TempDir(), "nope"), "tls.crt", "tls.key")
		NewWithT(t).Expect(err).NotTo(HaveOccurred())
		NewWithT(t).Expect(got).To(BeFalse())
	})
}

func TestWriteDirSwapsAllFilesAtOnce(t *testing.T) {
	g := NewWithT(t)
	dir := t.TempDir()
	first := servingCert(t, pkix.Name{CommonName: CAName, Organization: []string{CAOrganization}})
	second := servingCert(t, pkix.Name{CommonName: CAName, Organization: []string{CAOrganization}})
	files := func(c *harness.ServingCert) []file {
		return []file{{caFile, c.CACert}, {"tls.key", c.Key}, {"tls.crt", c.Cert}}
	}
	versions := func() []string {
		v, err := filepath.Glob(filepath.Join(dir, versionGlob))
		g.Expect(err).NotTo(HaveOccurred())
		return v
	}
	loads := func(c *harness.ServingCert) {
		t.Helper()
		pair, err := tls.LoadX509KeyPair(filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key"))
		g.Expect(err).NotTo(HaveOccurred())
		want, err := tls.X509KeyPair(c.Cert, c.Key)
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(pair.Certificate[0]).To(Equal(want.Certificate[0]))
		ca, err := os.ReadFile(filepath.Join(dir, caFile))
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(ca).To(Equal(c.CACert))
	}

	changed, err := writeDir(dir, files(first))
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(changed).To(BeTrue())
	loads(first)
	for _, name := range []string{"tls.crt", "tls.key", caFile} {
		target, err := os.Readlink(filepath.Join(dir, name))
		g.Expect(err).NotTo(HaveOccurred(), "%s is a symlink through %s", name, dataLink)
		g.Expect(target).To(Equal(filepath.Join(dataLink, name)))
	}
	g.Expect(versions()).To(HaveLen(1))

	changed, err = writeDir(dir, files(first))
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(changed).To(BeFalse(), "nothing to write when the files are current")

	changed, err = writeDir(dir, files(second))
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(changed).To(BeTrue())
	loads(second)
	g.Expect(versions()).To(HaveLen(1), "the previous version is removed")

	g.Expect(resetDir(dir, "tls.crt", "tls.key")).To(Succeed())
	entries, err := os.ReadDir(dir)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(entries).To(BeEmpty())
}

// The gated server neither listens nor reports started before its certificate is ready.
func TestServerStartsWhenReady(t *testing.T) {
	g := NewWithT(t)
	dir := t.TempDir()
	c := servingCert(t, pkix.Name{CommonName: "test CA"})
	writeFile(t, dir, "tls.crt", c.Cert)
	writeFile(t, dir, "tls.key", c.Key)
	port, err := harness.FreePort()
	g.Expect(err).NotTo(HaveOccurred())
	srv := NewServer(webhook.Options{Host: "127.0.0.1", Port: port, CertDir: dir})
	g.Expect(srv.CertDir()).To(Equal(dir))
	ready := make(chan struct{})
	srv.waitFor(ready)

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Start(ctx) }()
	defer func() { cancel(); g.Expect(<-done).To(Succeed()) }()

	started := func() error { return srv.StartedChecker()(&http.Request{}) }
	dial := func() error {
		conn, err := tls.Dial("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), &tls.Config{InsecureSkipVerify: true}) //nolint:gosec // reachability only
		if err == nil {
			_ = conn.Close()
		}
		return err
	}
	g.Consistently(started, 500*time.Millisecond, 50*time.Millisecond).ShouldNot(Succeed())
	g.Expect(dial()).NotTo(Succeed(), "nothing listens before the certificate is ready")

	close(ready)
	g.Eventually(started, 10*time.Second, 50*time.Millisecond).Should(Succeed())
	g.Expect(dial()).To(Succeed())
}

func TestServerDefaults(t *testing.T) {
	g := NewWithT(t)
	srv := NewServer(webhook.Options{})
	g.Expect(srv.CertDir()).To(Equal(filepath.Join(os.TempDir(), "k8s-webhook-server", "serving-certs")), "controller-runtime's default")
	g.Expect(srv.certName).To(Equal("tls.crt"))
	g.Expect(srv.keyName).To(Equal("tls.key"))
}
