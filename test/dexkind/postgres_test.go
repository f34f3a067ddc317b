package dexkind

import (
	"context"
	"crypto/x509"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	dexv1 "dexterity.dev/dexterity/api/v1alpha1"
	"dexterity.dev/dexterity/test/harness"
)

// postgresBinDir finds the binaries of the Debian package postgresql (apt-get install -y
// postgresql): /usr/lib/postgresql/<version>/bin, the newest version.
func postgresBinDir() (string, error) {
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	for i := len(dirs) - 1; i >= 0; i-- {
		if _, err := os.Stat(filepath.Join(dirs[i], "initdb")); err == nil {
			return dirs[i], nil
		}
	}
	return "", fmt.Errorf("no PostgreSQL server found under /usr/lib/postgresql/*/bin: install it (apt-get install -y postgresql)")
}

// postgresServer is a PostgreSQL server run by the test as a subprocess on a loopback port, with
// TLS from a generated CA that also signs Dex's client certificate; only TLS connections with a
// client certificate of the user and the password are admitted.
type postgresServer struct {
	bin, dir, port string
	cmd            *exec.Cmd
	cred           *syscall.Credential
	caPEM          []byte
	clientCert     map[string][]byte // kubernetes.io/tls data for the user "dex"
	password       string
}

func startPostgres(t *testing.T, g Gomega) *postgresServer {
	bin, err := postgresBinDir()
	g.Expect(err).NotTo(HaveOccurred())
	// The server refuses to run as root: it runs as the package's user. It listens on 127.0.0.1
	// (it resolves no name: the test's /etc/hosts is root's); Dex reaches it as localhost, the
	// name in its certificate.
	u, err := user.Lookup("postgres")
	g.Expect(err).NotTo(HaveOccurred(), "the postgresql package creates the user postgres")
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	cred := &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
	dir, err := os.MkdirTemp("", "dexkind-postgres-")
	g.Expect(err).NotTo(HaveOccurred())
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	g.Expect(os.Chown(dir, uid, gid)).To(Succeed())
	port, err := harness.FreePort()
	g.Expect(err).NotTo(HaveOccurred())
	pg := &postgresServer{bin: bin, dir: dir, port: strconv.Itoa(port), cred: cred, password: "dex-db-password"}

	ca := newTestCA(g)
	pg.caPEM = ca.pem
	serverData, _ := ca.serving(g, "localhost")
	pg.clientCert = ca.client(g, "dex")
	write := func(name string, data []byte, mode os.FileMode) string {
		p := filepath.Join(dir, name)
		g.Expect(os.WriteFile(p, data, mode)).To(Succeed())
		g.Expect(os.Chown(p, uid, gid)).To(Succeed())
		return p
	}
	pwfile := write("pwfile", []byte(pg.password+"\n"), 0o600)
	data := filepath.Join(dir, "data")
	pg.run(g, "initdb", "-D", data, "-U", "dex", "--pwfile", pwfile, "--auth-local=trust", "--auth-host=reject", "--no-sync")
	hba := "local all all trust\n" +
		"hostssl all dex 127.0.0.1/32 scram-sha-256 clientcert=verify-full\n"
	write("data/pg_hba.conf", []byte(hba), 0o600)
	pg.cmd = exec.Command(filepath.Join(bin, "postgres"), "-D", data, "-p", pg.port,
		"-c", "listen_addresses=127.0.0.1", "-c", "unix_socket_directories="+dir,
		"-c", "ssl=on",
		"-c", "ssl_cert_file="+write("server.crt", serverData[corev1.TLSCertKey], 0o644),
		"-c", "ssl_key_file="+write("server.key", serverData[corev1.TLSPrivateKeyKey], 0o600),
		"-c", "ssl_ca_file="+write("ca.crt", ca.pem, 0o644),
		"-c", "log_connections=on")
	pg.cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred, Pdeathsig: syscall.SIGKILL}
	logFile, err := os.Create(filepath.Join(dir, "postgres.log"))
	g.Expect(err).NotTo(HaveOccurred())
	pg.cmd.Stdout, pg.cmd.Stderr = logFile, logFile
	g.Expect(pg.cmd.Start()).To(Succeed())
	t.Cleanup(func() {
		_ = pg.cmd.Process.Signal(syscall.SIGINT) // fast shutdown
		_ = pg.cmd.Wait()
		if t.Failed() {
			b, _ := os.ReadFile(logFile.Name())
			t.Logf("--- postgres log ---\n%s", tail(string(b)))
		}
	})
	g.Eventually(func() error {
		_, err := pg.query("select 1")
		return err
	}, 30*time.Second, 200*time.Millisecond).Should(Succeed())
	return pg
}

func (pg *postgresServer) run(g Gomega, name string, args ...string) {
	cmd := exec.Command(filepath.Join(pg.bin, name), args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: pg.cred}
	cmd.Dir = pg.dir
	out, err := cmd.CombinedOutput()
	g.Expect(err).NotTo(HaveOccurred(), "%s: %s", name, out)
}

// query runs SQL as the superuser over the server's Unix socket.
func (pg *postgresServer) query(sql string) (string, error) {
	cmd := exec.Command(filepath.Join(pg.bin, "psql"), "-h", pg.dir, "-p", pg.port, "-U", "dex", "-d", "postgres", "-Atc", sql)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: pg.cred}
	out, err := cmd.CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("psql %q: %w: %s", sql, err, out)
	}
	return strings.TrimSpace(string(out)), nil
}

// client issues a client certificate for the database user cn.
func (ca *testCA) client(g Gomega, cn string) map[string][]byte {
	data, _ := ca.leaf(g, cn, nil, x509.ExtKeyUsageClientAuth)
	return data
}

// TestDexPostgresTLS: a Dex on the postgres storage reaches a real PostgreSQL server (the Debian
// package's, run by the test on a loopback port) that admits only TLS connections with a client
// certificate and the password: the server's certificate is verified against a private CA
// (verify-full), Dex authenticates with the client certificate from a kubernetes.io/tls Secret,
// and the pool settings reach it. Dex's tables are there and its connections use TLS with the
// client certificate.
func TestDexPostgresTLS(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	const ns = "platform-pg"
	waitNoDexPod(g) // another test's Dex would hold the ports
	pg := startPostgres(t, g)
	g.Expect(k8s.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}})).To(Succeed())
	for _, s := range []*corev1.Secret{
		{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "dex-db"}, StringData: map[string]string{"password": pg.password}},
		{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "dex-db-ca"}, Data: map[string][]byte{"ca.crt": pg.caPEM}},
		{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "dex-db-client"}, Type: corev1.SecretTypeTLS, Data: pg.clientCert},
	} {
		g.Expect(k8s.Create(ctx, s)).To(Succeed())
	}
	port, _ := strconv.Atoi(pg.port)
	d := &dexv1.Dex{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "dex"},
		Spec: dexv1.DexSpec{
			Issuer: "http://dex." + ns + ".svc:5556/dex",
			Storage: &dexv1.DexStorage{Type: dexv1.DexStoragePostgres, Postgres: &dexv1.DexPostgresStorage{
				Host: "localhost", Port: int32(port), Database: "postgres", User: "dex",
				PasswordSecretRef: dexv1.SecretKeyRef{Name: "dex-db", Key: "password"},
				SSL: &dexv1.DexPostgresSSL{Mode: "verify-full", CASecretRef: &dexv1.SecretKeyRef{Name: "dex-db-ca", Key: "ca.crt"},
					CertSecretRef: &dexv1.LocalObjectReference{Name: "dex-db-client"}},
				MaxOpenConns: 4, MaxIdleConns: 2, ConnMaxLifetime: 300, ConnectionTimeout: 5,
			}},
		},
	}
	g.Expect(k8s.Create(ctx, d)).To(Succeed())
	g.Eventually(func() error { return node.Run(ns, "dex") }, timeout).Should(Succeed())
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("--- Dex pod log ---\n%s", tail(node.Logs(ns, "dex")))
		}
		_ = k8s.Delete(context.Background(), d)
		NewWithT(t).Eventually(func() int { return node.PodPID(ns, "dex") }, timeout).Should(BeZero())
	})
	g.Eventually(condition(d, dexv1.ConditionReady), timeout).Should(HaveField("Status", metav1.ConditionTrue), "Dex starts on the postgres storage over TLS")

	// A client through the operator lands in Postgres.
	web := &dexv1.DexStaticClient{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "web"},
		Spec: dexv1.DexStaticClientSpec{ProviderRef: dexv1.ObjectRef{Name: "dex"}, Public: true,
			RedirectURIs: []string{"https://web.example.org/callback"}},
	}
	g.Expect(k8s.Create(ctx, web)).To(Succeed())
	t.Cleanup(func() { _ = k8s.Delete(context.Background(), web) })
	g.Eventually(condition(web, dexv1.ConditionReady), timeout).Should(HaveField("Status", metav1.ConditionTrue))
	g.Eventually(func() (string, error) {
		return pg.query(fmt.Sprintf("select count(*) from client where id = '%s'", web.EffectiveClientID()))
	}, timeout).Should(Equal("1"), "the client is a row of Dex's table")
	// Dex's connections are TLS, authenticated by the client certificate (CN=dex).
	g.Expect(pg.query("select count(*) from pg_stat_ssl join pg_stat_activity using (pid) where ssl and client_dn = '/CN=dex' and usename = 'dex'")).
		NotTo(Equal("0"))
}
