// Package harness starts the real Dex identity server as a subprocess so that
// tests can exercise it over HTTP (OIDC) and gRPC (the Dex API).
package harness

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	api "github.com/dexidp/dex/api/v2"
	"golang.org/x/crypto/bcrypt"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"sigs.k8s.io/yaml"
)

const (
	// modulePath is the module whose root holds bin/dex.
	modulePath = "dexterity.dev/dexterity"

	// BinaryEnv overrides the path of the Dex binary.
	BinaryEnv = "DEX_BINARY"

	// StorageMemory selects Dex's in-memory storage (lost on restart).
	StorageMemory = "memory"
	// StorageSQLite selects Dex's sqlite3 storage, kept in the state dir.
	StorageSQLite = "sqlite3"

	// HarnessClientID is the ID of the static confidential client configured in Dex.
	HarnessClientID = "harness-client"
	// HarnessClientSecret is the secret of the static client HarnessClientID.
	HarnessClientSecret = "harness-secret"
	// HarnessRedirectURI is the only redirect URI registered for HarnessClientID.
	HarnessRedirectURI = "http://127.0.0.1:5555/callback"

	// connectorsCRUDEnv enables the connector CRUD gRPC endpoints in Dex.
	connectorsCRUDEnv = "DEX_API_CONNECTORS_CRUD"

	readyTimeout  = 60 * time.Second
	readyInterval = 100 * time.Millisecond
	probeTimeout  = 2 * time.Second
	stopTimeout   = 10 * time.Second
	bcryptCost    = 10
	logTailBytes  = 4096
)

// StaticUser is a user configured in Dex's static password database.
type StaticUser struct {
	Email    string
	Username string
	Password string
	UserID   string
	Groups   []string
}

var (
	// AdminUser is a static Dex user in the "platform" and "team-a" groups.
	AdminUser = StaticUser{
		Email:    "admin@example.com",
		Username: "admin",
		Password: "password",
		UserID:   "08a8684b-db88-4b73-90a9-3cd1661f5466",
		Groups:   []string{"platform", "team-a"},
	}
	// OtherUser is a static Dex user in the "team-b" group.
	OtherUser = StaticUser{
		Email:    "bob@example.com",
		Username: "bob",
		Password: "password",
		UserID:   "5b1e2a4c-7f3d-4c8e-9a61-2d0f8b3e6c17",
		Groups:   []string{"team-b"},
	}
)

// DefaultScopes are the scopes PasswordGrant requests when none are given.
var DefaultScopes = []string{"openid", "email", "profile", "groups"}

// DexOptions configures a Dex instance started by StartDex.
type DexOptions struct {
	// Storage is "memory" (default) or "sqlite3" (database file in Dir).
	Storage string
	// MTLS enables TLS with mandatory client certificates on the gRPC API.
	// The certificates are generated at start and exposed via Dex.TLS.
	MTLS bool
	// DisableConnectorsCRUD leaves DEX_API_CONNECTORS_CRUD unset. By default
	// it is set to "true" so connectors can be managed over gRPC.
	DisableConnectorsCRUD bool
	// Dir is the state directory (config, certificates, database, log).
	// When empty a new temporary directory is created and never removed;
	// tests should pass t.TempDir().
	Dir string
	// HTTPPort and GRPCPort are the loopback ports Dex listens on.
	// Zero picks a free port.
	HTTPPort, GRPCPort int
	// IDTokenTTL sets Dex's expiry.idTokens (e.g. "2s"); empty keeps Dex's default (24h).
	IDTokenTTL string
	// Release picks the Dex release to run (one of DexReleases, e.g. "v2.39.1"): bin/dex-<release>
	// (bin/dex for LatestDexRelease), looked up in $KUBEBUILDER_ASSETS and then the repository's
	// bin/. Empty runs bin/dex (or $DEX_BINARY).
	Release string
}

// LatestDexRelease is the release bin/dex is built from (hack/tools/dex).
const LatestDexRelease = "v2.45.1"

// DexRelease is a Dex release the tests run, and what it is known to answer: the matrix
// (test/dexmatrix) checks each fact against the real binary, docs/compatibility.md is written from
// them, and hack/tools.sh builds each one into bin/ (see BinaryName).
type DexRelease struct {
	// Version is the release tag; GetVersion's server string says it (the binaries are built with
	// -ldflags "-X main.version=<tag>").
	Version string
	// API is GetVersion's api: 2 before v2.44, 3 from v2.44 on.
	API int32
	// ConnectorAPI: the connector RPCs (ListConnectors, Create/Update/DeleteConnector) exist; they
	// came with v2.41. An older Dex answers them with gRPC's Unimplemented.
	ConnectorAPI bool
	// MTLS: the operator's gRPC client reaches it over mutual TLS (grpc.tlsClientCA set, as the
	// Dex kind renders it). Dex built with grpc-go before 1.67 (v2.41 and older) selects no ALPN
	// protocol when it asks for a client certificate; plain grpc-go 1.67 and later refuse such a
	// handshake ("missing selected ALPN property"), the operator's client accepts it.
	MTLS bool
	// PasswordGroups: a staticPasswords entry's groups reach the token's groups claim (v2.45 on).
	// Older releases ignore the key: their tokens for AdminUser and OtherUser carry no groups.
	PasswordGroups bool
}

// DexReleases are the releases the matrix runs, oldest first; the last is LatestDexRelease.
var DexReleases = []DexRelease{
	{Version: "v2.39.1", API: 2, MTLS: true},
	{Version: "v2.41.1", API: 2, ConnectorAPI: true, MTLS: true},
	{Version: "v2.43.1", API: 2, ConnectorAPI: true, MTLS: true},
	{Version: "v2.44.0", API: 3, ConnectorAPI: true, MTLS: true},
	{Version: LatestDexRelease, API: 3, ConnectorAPI: true, MTLS: true, PasswordGroups: true},
}

// LookupDexRelease returns the entry of DexReleases for version.
func LookupDexRelease(version string) (DexRelease, bool) {
	for _, r := range DexReleases {
		if r.Version == version {
			return r, true
		}
	}
	return DexRelease{}, false
}

// BinaryName is the file name of the release's binary in bin/: "dex" for LatestDexRelease,
// "dex-<version>" for the others.
func (r DexRelease) BinaryName() string {
	if r.Version == LatestDexRelease {
		return "dex"
	}
	return "dex-" + r.Version
}

// Dex is a Dex server running as a subprocess. It is safe for concurrent use.
type Dex struct {
	binary     string
	dir        string
	configPath string
	logPath    string
	httpPort   int
	grpcPort   int
	tls        *TLSMaterial
	env        []string

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{} // closed once cmd has exited
	runs int
}

// StartDex writes a Dex configuration for opts, starts Dex and waits until it
// serves OIDC discovery over HTTP and answers GetVersion over gRPC.
func StartDex(opts DexOptions) (*Dex, error) {
	binary, err := DexBinary(opts.Release)
	if err != nil {
		return nil, err
	}
	switch opts.Storage {
	case "":
		opts.Storage = StorageMemory
	case StorageMemory, StorageSQLite:
	default:
		return nil, fmt.Errorf("failed to configure storage: unsupported type %q", opts.Storage)
	}

	dir := opts.Dir
	if dir == "" {
		if dir, err = os.MkdirTemp("", "dex-harness-"); err != nil {
			return nil, fmt.Errorf("failed to create state dir: %w", err)
		}
	} else if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("failed to create state dir: %w", err)
	}
	if dir, err = filepath.Abs(dir); err != nil {
		return nil, fmt.Errorf("failed to resolve state dir: %w", err)
	}

	d := &Dex{
		binary:     binary,
		dir:        dir,
		configPath: filepath.Join(dir, "config.yaml"),
		logPath:    filepath.Join(dir, "dex.log"),
		httpPort:   opts.HTTPPort,
		grpcPort:   opts.GRPCPort,
		env:        dexEnv(!opts.DisableConnectorsCRUD),
	}
	if d.httpPort == 0 {
		if d.httpPort, err = FreePort(); err != nil {
			return nil, err
		}
	}
	if d.grpcPort == 0 {
		if d.grpcPort, err = FreePort(); err != nil {
			return nil, err
		}
	}
	if opts.MTLS {
		if d.tls, err = generateTLSMaterial(); err != nil {
			return nil, err
		}
	}
	if err := d.writeConfig(opts); err != nil {
		return nil, err
	}
	if err := d.Start(); err != nil {
		return nil, err
	}
	return d, nil
}

// IssuerURL returns the OIDC issuer URL, e.g. "http://127.0.0.1:5556/dex".
func (d *Dex) IssuerURL() string {
	return fmt.Sprintf("http://127.0.0.1:%d/dex", d.httpPort)
}

// GRPCAddress returns the host:port of the Dex gRPC API.
func (d *Dex) GRPCAddress() string {
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(d.grpcPort))
}

// TLS returns the generated TLS material, or nil unless MTLS was requested.
func (d *Dex) TLS() *TLSMaterial {
	return d.tls
}

// LogPath returns the file Dex's stdout and stderr are appended to. It
// accumulates output across restarts.
func (d *Dex) LogPath() string {
	return d.logPath
}

// Log returns the contents of the Dex log file.
func (d *Dex) Log() string {
	data, err := os.ReadFile(d.logPath)
	if err != nil {
		return fmt.Sprintf("<failed to read dex log %s: %v>", d.logPath, err)
	}
	return string(data)
}

// ConfigPath returns the path of the generated Dex configuration file.
func (d *Dex) ConfigPath() string {
	return d.configPath
}

// Dir returns the state directory of this instance.
func (d *Dex) Dir() string {
	return d.dir
}

// Client opens a new gRPC connection to the Dex API, using the harness
// client certificate when MTLS is enabled. The caller must close the
// returned io.Closer when done.
func (d *Dex) Client() (api.DexClient, io.Closer, error) {
	creds := insecure.NewCredentials()
	if d.tls != nil {
		cfg, err := ClientTLSConfig(d.tls.CACert, d.tls.ClientCert, d.tls.ClientKey)
		if err != nil {
			return nil, nil, err
		}
		creds = credentials.NewTLS(cfg)
	}
	conn, err := grpc.NewClient(d.GRPCAddress(), grpc.WithTransportCredentials(creds))
	if err != nil {
		return nil, nil, fmt.Errorf("failed to create dex grpc client: %w", err)
	}
	return api.NewDexClient(conn), conn, nil
}

// ClientTLSConfig builds a TLS client configuration trusting caPEM and
// presenting the given client certificate. An empty certPEM presents none.
func ClientTLSConfig(caPEM, certPEM, keyPEM []byte) (*tls.Config, error) {
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		return nil, errors.New("failed to parse CA certificate: no PEM certificates found")
	}
	cfg := &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	if len(certPEM) > 0 {
		pair, err := tls.X509KeyPair(certPEM, keyPEM)
		if err != nil {
			return nil, fmt.Errorf("failed to load client certificate: %w", err)
		}
		cfg.Certificates = []tls.Certificate{pair}
	}
	return cfg, nil
}

// Start starts Dex with the existing configuration and ports and waits until
// it is ready. It is used to bring Dex back after Stop and fails if Dex is
// already running.
func (d *Dex) Start() error {
	d.mu.Lock()
	defer d.mu.Unlock()

	if d.running() {
		return errors.New("failed to start dex: already running")
	}
	d.runs++
	run := d.runs

	logFile, err := os.OpenFile(d.logPath, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		return fmt.Errorf("failed to open dex log: %w", err)
	}
	fmt.Fprintf(logFile, "=== harness: starting dex (run %d) at %s ===\n", run, time.Now().Format(time.RFC3339Nano))

	cmd := exec.Command(d.binary, "serve", d.configPath)
	cmd.Dir = d.dir
	cmd.Env = d.env
	cmd.Stdout = logFile
	cmd.Stderr = logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		logFile.Close()
		return fmt.Errorf("failed to start dex: %w", err)
	}

	done := make(chan struct{})
	go func() {
		err := cmd.Wait()
		fmt.Fprintf(logFile, "=== harness: dex (run %d) exited: %v ===\n", run, exitDescription(err))
		logFile.Close()
		close(done)
	}()
	d.cmd, d.done = cmd, done

	if err := d.waitReady(done); err != nil {
		_ = d.stopLocked()
		return fmt.Errorf("failed to start dex: %w\n--- dex log tail ---\n%s", err, d.logTail())
	}
	return nil
}

// Stop sends SIGTERM to Dex and waits for it to exit, killing it after 10s.
// Stopping an already stopped instance is a no-op.
func (d *Dex) Stop() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.stopLocked()
}

// Restart stops Dex and starts it again with the same configuration.
func (d *Dex) Restart() error {
	if err := d.Stop(); err != nil {
		return err
	}
	return d.Start()
}

// SwitchRelease stops Dex and starts the binary of release (see DexOptions.Release) with the same
// configuration, state directory (so the same sqlite3 database) and ports: an upgrade in place.
func (d *Dex) SwitchRelease(release string) error {
	binary, err := DexBinary(release)
	if err != nil {
		return err
	}
	if err := d.Stop(); err != nil {
		return err
	}
	d.mu.Lock()
	d.binary = binary
	d.mu.Unlock()
	return d.Start()
}

// running reports whether the subprocess is alive. d.mu must be held.
func (d *Dex) running() bool {
	if d.cmd == nil {
		return false
	}
	select {
	case <-d.done:
		return false
	default:
		return true
	}
}

// stopLocked terminates the subprocess. d.mu must be held.
func (d *Dex) stopLocked() error {
	if d.cmd == nil {
		return nil
	}
	cmd, done := d.cmd, d.done
	d.cmd, d.done = nil, nil

	select {
	case <-done:
		return nil
	default:
	}
	if err := signalGroup(cmd.Process.Pid, syscall.SIGTERM); err != nil {
		return fmt.Errorf("failed to signal dex: %w", err)
	}
	select {
	case <-done:
		return nil
	case <-time.After(stopTimeout):
	}
	if err := signalGroup(cmd.Process.Pid, syscall.SIGKILL); err != nil {
		return fmt.Errorf("failed to kill dex: %w", err)
	}
	<-done
	return nil
}

// signalGroup signals the process group led by pid, falling back to the
// process itself.
func signalGroup(pid int, sig syscall.Signal) error {
	err := syscall.Kill(-pid, sig)
	if errors.Is(err, syscall.ESRCH) {
		err = syscall.Kill(pid, sig)
	}
	if errors.Is(err, syscall.ESRCH) {
		return nil // already gone
	}
	return err
}

// waitReady polls Dex until both the HTTP discovery endpoint and the gRPC
// API respond, the process exits or readyTimeout elapses.
func (d *Dex) waitReady(done <-chan struct{}) error {
	deadline := time.Now().Add(readyTimeout)
	httpClient := &http.Client{Timeout: probeTimeout}
	var lastErr error
	for {
		lastErr = d.probe(httpClient)
		if lastErr == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not ready after %s: %w", readyTimeout, lastErr)
		}
		select {
		case <-done:
			return fmt.Errorf("process exited before becoming ready: %w", lastErr)
		case <-time.After(readyInterval):
		}
	}
}

// probe performs one readiness check.
func (d *Dex) probe(httpClient *http.Client) error {
	resp, err := httpClient.Get(d.IssuerURL() + "/.well-known/openid-configuration")
	if err != nil {
		return fmt.Errorf("failed to get discovery document: %w", err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("failed to get discovery document: status %d", resp.StatusCode)
	}

	client, closer, err := d.Client()
	if err != nil {
		return err
	}
	defer closer.Close()
	ctx, cancel := context.WithTimeout(context.Background(), probeTimeout)
	defer cancel()
	if _, err := client.GetVersion(ctx, &api.VersionReq{}); err != nil {
		if d.tls != nil && strings.Contains(err.Error(), alpnMissing) {
			// A Dex whose gRPC server selects no ALPN protocol with client certificates (see
			// DexRelease.MTLS): this process's gRPC client refuses it, a TLS handshake tells it is up.
			return d.probeTLS()
		}
		return fmt.Errorf("failed to get version over grpc: %w", err)
	}
	return nil
}

// alpnMissing is what grpc-go (1.67 and later) says of a TLS server that selected no ALPN protocol.
const alpnMissing = "missing selected ALPN property"

// probeTLS completes a TLS handshake with the gRPC port, presenting the client certificate.
func (d *Dex) probeTLS() error {
	cfg, err := ClientTLSConfig(d.tls.CACert, d.tls.ClientCert, d.tls.ClientKey)
	if err != nil {
		return err
	}
	cfg.ServerName = "127.0.0.1"
	conn, err := tls.DialWithDialer(&net.Dialer{Timeout: probeTimeout}, "tcp", d.GRPCAddress(), cfg)
	if err != nil {
		return fmt.Errorf("failed to complete a TLS handshake with the grpc port: %w", err)
	}
	return conn.Close()
}

// logTail returns the last logTailBytes of the Dex log.
func (d *Dex) logTail() string {
	log := d.Log()
	if len(log) > logTailBytes {
		log = "..." + log[len(log)-logTailBytes:]
	}
	return log
}

// writeConfig renders the Dex configuration (and TLS files) into the state dir.
func (d *Dex) writeConfig(opts DexOptions) error {
	storage := map[string]any{"type": opts.Storage}
	if opts.Storage == StorageSQLite {
		storage["config"] = map[string]any{"file": filepath.Join(d.dir, "dex.db")}
	}

	grpcCfg := map[string]any{"addr": d.GRPCAddress()}
	if d.tls != nil {
		files := map[string][]byte{
			"ca.crt":     d.tls.CACert,
			"server.crt": d.tls.ServerCert,
			"server.key": d.tls.ServerKey,
			"client.crt": d.tls.ClientCert,
			"client.key": d.tls.ClientKey,
		}
		for name, data := range files {
			if err := os.WriteFile(filepath.Join(d.dir, name), data, 0o600); err != nil {
				return fmt.Errorf("failed to write %s: %w", name, err)
			}
		}
		grpcCfg["tlsCert"] = filepath.Join(d.dir, "server.crt")
		grpcCfg["tlsKey"] = filepath.Join(d.dir, "server.key")
		grpcCfg["tlsClientCA"] = filepath.Join(d.dir, "ca.crt")
	}

	var passwords []map[string]any
	for _, u := range []StaticUser{AdminUser, OtherUser} {
		hash, err := bcrypt.GenerateFromPassword([]byte(u.Password), bcryptCost)
		if err != nil {
			return fmt.Errorf("failed to hash password for %s: %w", u.Email, err)
		}
		passwords = append(passwords, map[string]any{
			"email":    u.Email,
			"username": u.Username,
			"userID":   u.UserID,
			"hash":     string(hash),
			"groups":   u.Groups,
		})
	}

	cfg := map[string]any{
		"issuer":  d.IssuerURL(),
		"storage": storage,
		"web":     map[string]any{"http": net.JoinHostPort("127.0.0.1", strconv.Itoa(d.httpPort))},
		"grpc":    grpcCfg,
		"oauth2": map[string]any{
			"passwordConnector":  "local",
			"skipApprovalScreen": true,
			"responseTypes":      []string{"code"},
		},
		"enablePasswordDB": true,
		"staticPasswords":  passwords,
		"staticClients": []map[string]any{{
			"id":           HarnessClientID,
			"secret":       HarnessClientSecret,
			"name":         "Harness Client",
			"redirectURIs": []string{HarnessRedirectURI},
		}},
		"logger": map[string]any{"level": "debug", "format": "text"},
	}
	if opts.IDTokenTTL != "" {
		cfg["expiry"] = map[string]any{"idTokens": opts.IDTokenTTL}
	}

	data, err := yaml.Marshal(cfg)
	if err != nil {
		return fmt.Errorf("failed to marshal dex config: %w", err)
	}
	if err := os.WriteFile(d.configPath, data, 0o600); err != nil {
		return fmt.Errorf("failed to write dex config: %w", err)
	}
	return nil
}

// dexEnv returns the environment for the Dex process.
func dexEnv(connectorsCRUD bool) []string {
	env := make([]string, 0, len(os.Environ())+1)
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, connectorsCRUDEnv+"=") {
			env = append(env, kv)
		}
	}
	if connectorsCRUD {
		env = append(env, connectorsCRUDEnv+"=true")
	}
	return env
}

// DexBinary returns the binary of release (see DexOptions.Release): for "" $DEX_BINARY or
// <repo root>/bin/dex; for a release of DexReleases its BinaryName in $KUBEBUILDER_ASSETS, else in
// <repo root>/bin.
func DexBinary(release string) (string, error) {
	if release == "" {
		return dexBinary()
	}
	r, ok := LookupDexRelease(release)
	if !ok {
		return "", fmt.Errorf("failed to find dex binary: release %q is not one of the releases the tests build (harness.DexReleases)", release)
	}
	var dirs []string
	if assets := os.Getenv("KUBEBUILDER_ASSETS"); assets != "" {
		dirs = append(dirs, assets)
	}
	root, err := repoRoot()
	if err != nil {
		return "", err
	}
	dirs = append(dirs, filepath.Join(root, "bin"))
	for _, dir := range dirs {
		bin := filepath.Join(dir, r.BinaryName())
		if _, err := os.Stat(bin); err == nil {
			return bin, nil
		}
	}
	return "", fmt.Errorf("failed to find dex binary: no %s in %s (hack/tools.sh all builds it)", r.BinaryName(), strings.Join(dirs, " or "))
}

// dexBinary returns the Dex binary from $DEX_BINARY or <repo root>/bin/dex.
func dexBinary() (string, error) {
	bin := os.Getenv(BinaryEnv)
	if bin == "" {
		root, err := repoRoot()
		if err != nil {
			return "", err
		}
		bin = filepath.Join(root, "bin", "dex")
	}
	if _, err := os.Stat(bin); err != nil {
		return "", fmt.Errorf("failed to find dex binary: %w", err)
	}
	return bin, nil
}

// RepoRoot is the root of the repository (where config/ is), found from the working directory.
func RepoRoot() (string, error) { return repoRoot() }

// repoRoot walks up from the working directory to the directory containing
// the go.mod of module dexterity.dev/dexterity.
func repoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", fmt.Errorf("failed to get working directory: %w", err)
	}
	for {
		if isModuleRoot(filepath.Join(dir, "go.mod")) {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("failed to find repo root: no go.mod for module %s above working directory", modulePath)
		}
		dir = parent
	}
}

// isModuleRoot reports whether the first line of the go.mod at path declares
// modulePath.
func isModuleRoot(path string) bool {
	f, err := os.Open(path)
	if err != nil {
		return false
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	return sc.Scan() && strings.TrimSpace(sc.Text()) == "module "+modulePath
}

// exitDescription describes the result of cmd.Wait for the log.
func exitDescription(err error) string {
	if err == nil {
		return "exit status 0"
	}
	return err.Error()
}

// FreePort returns a currently unused TCP port on 127.0.0.1.
func FreePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("failed to find free port: %w", err)
	}
	defer func() { _ = l.Close() }()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// PasswordGrant performs an OAuth2 resource owner password credentials grant
// against <issuer>/token, authenticating the client with HTTP basic auth, and
// returns the decoded JSON response. It uses DefaultScopes when no scopes
// are given.
func PasswordGrant(issuer, clientID, clientSecret, username, password string, scopes ...string) (map[string]any, error) {
	if len(scopes) == 0 {
		scopes = DefaultScopes
	}
	form := url.Values{
		"grant_type": {"password"},
		"username":   {username},
		"password":   {password},
		"scope":      {strings.Join(scopes, " ")},
	}
	req, err := http.NewRequest(http.MethodPost, strings.TrimSuffix(issuer, "/")+"/token", strings.NewReader(form.Encode()))
	if err != nil {
		return nil, fmt.Errorf("failed to build token request: %w", err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	req.SetBasicAuth(url.QueryEscape(clientID), url.QueryEscape(clientSecret))

	resp, err := (&http.Client{Timeout: 30 * time.Second}).Do(req)
	if err != nil {
		return nil, fmt.Errorf("failed to request token: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("failed to read token response: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("failed to request token: status %d: %s", resp.StatusCode, strings.TrimSpace(string(body)))
	}
	var out map[string]any
	if err := json.Unmarshal(body, &out); err != nil {
		return nil, fmt.Errorf("failed to decode token response: %w", err)
	}
	return out, nil
}
