package harness

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// TofuBinaryEnv overrides the path of the OpenTofu binary (default <repo root>/bin/tofu).
const TofuBinaryEnv = "TOFU_BINARY"

const (
	// tofuOutputTail is how much of tofu's stderr an error from Run quotes.
	tofuOutputTail = 4096
	// loginURLPrompt ends the line after which `tofu login` prints the authorization URL when
	// it could not open a browser: "Open the following URL to access the login page for <host>:".
	loginURLPrompt = "Open the following URL to access the login page for "
)

// Tofu runs the real `tofu` binary in an isolated environment: its own HOME with the CLI config
// file <home>/.tofurc and the CLI config dir <home>/.terraform.d (where `tofu login` stores
// tokens in credentials.tfrc.json), its own trusted CA, no plugin cache, no checkpoint calls
// and no browser. TF_CLI_CONFIG_FILE is deliberately unset: when it is set, tofu reads only
// that file and ignores the config dir, so a token stored by `tofu login` would not be used by
// later commands. It is safe for concurrent use.
type Tofu struct {
	t       testing.TB
	binary  string
	dir     string
	home    string
	cliFile string
	caFile  string
	certDir string

	mu          sync.Mutex
	credentials map[string]string
	extraConfig string
	env         map[string]string
}

// TofuBinary returns the OpenTofu binary from $TOFU_BINARY or <repo root>/bin/tofu, or an error
// telling to run `make tools`.
func TofuBinary() (string, error) {
	bin := os.Getenv(TofuBinaryEnv)
	if bin == "" {
		root, err := repoRoot()
		if err != nil {
			return "", err
		}
		bin = filepath.Join(root, "bin", "tofu")
	}
	if _, err := os.Stat(bin); err != nil {
		return "", fmt.Errorf("failed to find tofu binary (run `make tools` to build bin/tofu): %w", err)
	}
	return bin, nil
}

// NewTofu prepares an isolated OpenTofu environment under dir (tests pass t.TempDir()). When the
// binary is missing the test is skipped, except in CI (CI set), where `make test` builds it
// first and a missing binary fails the test.
func NewTofu(t testing.TB, dir string) *Tofu {
	t.Helper()
	bin, err := TofuBinary()
	if err != nil {
		if os.Getenv("CI") == "" {
			t.Skipf("skipping: %v", err)
		}
		t.Fatalf("%v", err)
	}
	tf, err := newTofu(t, bin, dir)
	if err != nil {
		t.Fatalf("failed to prepare tofu: %v", err)
	}
	return tf
}

func newTofu(t testing.TB, bin, dir string) (*Tofu, error) {
	dir, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("failed to resolve tofu dir: %w", err)
	}
	tf := &Tofu{
		t:           t,
		binary:      bin,
		dir:         dir,
		home:        filepath.Join(dir, "home"),
		cliFile:     filepath.Join(dir, "home", ".tofurc"),
		caFile:      filepath.Join(dir, "ca.pem"),
		certDir:     filepath.Join(dir, "certs"),
		credentials: map[string]string{},
		env:         map[string]string{},
	}
	// <home>/.terraform.d must exist: otherwise tofu would fall back to $XDG_CONFIG_HOME/opentofu.
	for _, d := range []string{tf.ConfigDir(), tf.certDir, tf.noBrowserDir()} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, fmt.Errorf("failed to create %s: %w", d, err)
		}
	}
	// `tofu login` first tries xdg-open, x-www-browser, www-browser and wslview; a failing
	// xdg-open first in PATH makes it print the URL instead of opening a real browser.
	stub := filepath.Join(tf.noBrowserDir(), "xdg-open")
	if err := os.WriteFile(stub, []byte("#!/bin/sh\nexit 3\n"), 0o755); err != nil {
		return nil, fmt.Errorf("failed to write xdg-open stub: %w", err)
	}
	if err := os.WriteFile(tf.caFile, nil, 0o600); err != nil {
		return nil, fmt.Errorf("failed to write CA file: %w", err)
	}
	if err := tf.writeConfig(); err != nil {
		return nil, err
	}
	return tf, nil
}

// Dir is the state directory given to NewTofu.
func (tf *Tofu) Dir() string { return tf.dir }

// Home is the HOME tofu runs with.
func (tf *Tofu) Home() string { return tf.home }

// ConfigDir is tofu's CLI configuration directory (<home>/.terraform.d).
func (tf *Tofu) ConfigDir() string { return filepath.Join(tf.home, ".terraform.d") }

// CredentialsFile is where `tofu login` stores tokens: <config dir>/credentials.tfrc.json.
func (tf *Tofu) CredentialsFile() string {
	return filepath.Join(tf.ConfigDir(), "credentials.tfrc.json")
}

// CLIConfigFile is the CLI configuration file the harness writes (<home>/.tofurc, tofu's default).
func (tf *Tofu) CLIConfigFile() string { return tf.cliFile }

func (tf *Tofu) noBrowserDir() string { return filepath.Join(tf.dir, "nobrowser") }

// SetCACert makes tofu trust exactly the certificates in pem (one or more PEM blocks) for
// HTTPS, through SSL_CERT_FILE (and an empty SSL_CERT_DIR).
func (tf *Tofu) SetCACert(pem []byte) error {
	if err := os.WriteFile(tf.caFile, pem, 0o600); err != nil {
		return fmt.Errorf("failed to write CA file: %w", err)
	}
	return nil
}

// SetCredentials writes a `credentials "<host>" { token = "<token>" }` block into the CLI
// configuration file; tofu sends it as "Authorization: Bearer <token>" to that host's registry
// API (not to download URLs). An empty token removes the block. `tofu login` refuses a host
// that has one ("Credentials for <host> are manually configured").
func (tf *Tofu) SetCredentials(host, token string) error {
	tf.mu.Lock()
	defer tf.mu.Unlock()
	if token == "" {
		delete(tf.credentials, host)
	} else {
		tf.credentials[host] = token
	}
	return tf.writeConfigLocked()
}

// SetExtraConfig appends raw HCL (e.g. host or provider_installation blocks) to the CLI
// configuration file, replacing what a previous call set.
func (tf *Tofu) SetExtraConfig(hcl string) error {
	tf.mu.Lock()
	defer tf.mu.Unlock()
	tf.extraConfig = hcl
	return tf.writeConfigLocked()
}

// SetEnv sets an extra environment variable for later runs (e.g. TF_LOG=trace); an empty value
// removes it. It cannot override the isolation variables.
func (tf *Tofu) SetEnv(key, value string) {
	tf.mu.Lock()
	defer tf.mu.Unlock()
	if value == "" {
		delete(tf.env, key)
	} else {
		tf.env[key] = value
	}
}

func (tf *Tofu) writeConfig() error {
	tf.mu.Lock()
	defer tf.mu.Unlock()
	return tf.writeConfigLocked()
}

// writeConfigLocked renders the CLI configuration. tf.mu must be held.
func (tf *Tofu) writeConfigLocked() error {
	var b strings.Builder
	b.WriteString("# Written by the test harness.\n")
	hosts := make([]string, 0, len(tf.credentials))
	for h := range tf.credentials {
		hosts = append(hosts, h)
	}
	sort.Strings(hosts)
	for _, h := range hosts {
		fmt.Fprintf(&b, "credentials %s {\n  token = %s\n}\n", strconv.Quote(h), strconv.Quote(tf.credentials[h]))
	}
	if tf.extraConfig != "" {
		b.WriteString(tf.extraConfig)
		b.WriteString("\n")
	}
	if err := os.WriteFile(tf.cliFile, []byte(b.String()), 0o600); err != nil {
		return fmt.Errorf("failed to write tofu CLI config: %w", err)
	}
	return nil
}

// Env returns the environment tofu runs with: the test process's environment without any
// TF_*, TOFU_*, SSL_CERT_*, XDG_*, CHECKPOINT_* or proxy variables (TF_CLI_CONFIG_FILE,
// TF_DATA_DIR and TF_PLUGIN_CACHE_DIR included), plus HOME, SSL_CERT_FILE, SSL_CERT_DIR,
// CHECKPOINT_DISABLE=1, TF_IN_AUTOMATION=1, PATH with the no-browser stub first, and the
// variables given to SetEnv.
func (tf *Tofu) Env() []string {
	var env []string
	for _, kv := range os.Environ() {
		name, _, _ := strings.Cut(kv, "=")
		upper := strings.ToUpper(name)
		switch {
		case strings.HasPrefix(upper, "TF_"), strings.HasPrefix(upper, "TOFU_"),
			strings.HasPrefix(upper, "SSL_CERT_"), strings.HasPrefix(upper, "XDG_"),
			strings.HasPrefix(upper, "CHECKPOINT_"), strings.HasSuffix(upper, "_PROXY"),
			upper == "HOME", upper == "PATH", upper == "TERRAFORM_CONFIG", upper == "BROWSER":
			continue
		}
		env = append(env, kv)
	}
	tf.mu.Lock()
	for k, v := range tf.env {
		env = append(env, k+"="+v)
	}
	tf.mu.Unlock()
	return append(env,
		"HOME="+tf.home,
		"PATH="+tf.noBrowserDir()+string(os.PathListSeparator)+os.Getenv("PATH"),
		"SSL_CERT_FILE="+tf.caFile,
		"SSL_CERT_DIR="+tf.certDir,
		"CHECKPOINT_DISABLE=1",
		"TF_IN_AUTOMATION=1",
	)
}

// command builds an exec.Cmd for tofu in workdir (created if missing). Cancelling ctx sends
// SIGTERM to tofu's process group (tofu then stops its providers), SIGKILL 10s later.
func (tf *Tofu) command(ctx context.Context, workdir string, args ...string) (*exec.Cmd, error) {
	if workdir == "" {
		workdir = tf.dir
	}
	if err := os.MkdirAll(workdir, 0o755); err != nil {
		return nil, fmt.Errorf("failed to create tofu working dir: %w", err)
	}
	cmd := exec.CommandContext(ctx, tf.binary, args...)
	cmd.Dir = workdir
	cmd.Env = tf.Env()
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return signalGroup(cmd.Process.Pid, syscall.SIGTERM) }
	cmd.WaitDelay = stopTimeout
	return cmd, nil
}

// Run runs `tofu <args>` in workdir (tf.Dir() when empty) with no standard input and returns
// its output. A non-zero exit is an error quoting the end of stderr.
func (tf *Tofu) Run(ctx context.Context, workdir string, args ...string) (stdout, stderr string, err error) {
	cmd, err := tf.command(ctx, workdir, args...)
	if err != nil {
		return "", "", err
	}
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	start := time.Now()
	err = cmd.Run()
	tf.t.Logf("tofu %s: %s (%s)", strings.Join(args, " "), exitDescription(err), time.Since(start).Round(time.Millisecond))
	if err != nil {
		return out.String(), errOut.String(), fmt.Errorf("failed to run tofu %s: %w\n--- stderr ---\n%s",
			strings.Join(args, " "), err, tail(errOut.String(), tofuOutputTail))
	}
	return out.String(), errOut.String(), nil
}

// Login runs `tofu login <host>` the way a user does: it answers "yes" to the confirmation,
// reads the authorization URL tofu prints (the login.v1 service of the host's discovery
// document: client, authz, token, ports, scopes), and calls browser(url), which must complete
// the login so that the identity provider redirects to tofu's loopback callback
// (http://localhost:<port>/login?code=...&state=...). Login then waits for tofu to exchange the
// code (PKCE, no client secret) and store the access token in CredentialsFile.
func (tf *Tofu) Login(ctx context.Context, host string, browser func(authURL string) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	cmd, err := tf.command(ctx, "", "login", host)
	if err != nil {
		return err
	}
	// The answer is buffered in the pipe until tofu asks for it.
	cmd.Stdin = strings.NewReader("yes\n")
	pr, pw := io.Pipe()
	var out, errOut bytes.Buffer
	var outMu sync.Mutex
	cmd.Stdout = pw
	cmd.Stderr = &lockedWriter{mu: &outMu, w: &errOut}
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("failed to start tofu login: %w", err)
	}
	waitErr := make(chan error, 1)
	go func() {
		err := cmd.Wait()
		_ = pw.Close()
		waitErr <- err
	}()

	urls := make(chan string, 1)
	scanned := make(chan struct{})
	go func() {
		defer close(scanned)
		sc := bufio.NewScanner(pr)
		sc.Buffer(make([]byte, 64*1024), 1024*1024)
		expectURL := false
		for sc.Scan() {
			line := sc.Text()
			outMu.Lock()
			out.WriteString(line + "\n")
			outMu.Unlock()
			trimmed := strings.TrimSpace(line)
			switch {
			case strings.HasPrefix(trimmed, loginURLPrompt):
				expectURL = true
			case expectURL && trimmed != "":
				expectURL = false
				select {
				case urls <- trimmed:
				default:
				}
			}
		}
		_, _ = io.Copy(io.Discard, pr)
	}()

	output := func() string {
		outMu.Lock()
		defer outMu.Unlock()
		return "--- stdout ---\n" + tail(out.String(), tofuOutputTail) + "\n--- stderr ---\n" + tail(errOut.String(), tofuOutputTail)
	}
	fail := func(format string, args ...any) error {
		cancel()
		<-scanned
		return fmt.Errorf(format+"\n%s", append(args, output())...)
	}

	select {
	case authURL := <-urls:
		if err := browser(authURL); err != nil {
			return fail("failed to complete the browser login: %w", err)
		}
	case err := <-waitErr:
		<-scanned
		return fmt.Errorf("failed to log in to %s: tofu exited before printing the login URL: %s\n%s", host, exitDescription(err), output())
	case <-ctx.Done():
		return fail("failed to log in to %s: %w", host, ctx.Err())
	}

	select {
	case err := <-waitErr:
		<-scanned
		tf.t.Logf("tofu login %s: %s (%s)", host, exitDescription(err), time.Since(start).Round(time.Millisecond))
		if err != nil {
			return fmt.Errorf("failed to log in to %s: %w\n%s", host, err, output())
		}
		return nil
	case <-ctx.Done():
		return fail("failed to log in to %s: waiting for tofu to exit: %w", host, ctx.Err())
	}
}

// StoredToken returns the token `tofu login` stored for host in CredentialsFile.
func (tf *Tofu) StoredToken(host string) (string, error) {
	data, err := os.ReadFile(tf.CredentialsFile())
	if err != nil {
		return "", fmt.Errorf("failed to read tofu credentials: %w", err)
	}
	var creds struct {
		Credentials map[string]struct {
			Token string `json:"token"`
		} `json:"credentials"`
	}
	if err := json.Unmarshal(data, &creds); err != nil {
		return "", fmt.Errorf("failed to decode tofu credentials: %w", err)
	}
	c, ok := creds.Credentials[host]
	if !ok || c.Token == "" {
		return "", fmt.Errorf("failed to find a stored token for %s in %s", host, tf.CredentialsFile())
	}
	return c.Token, nil
}

// UnwrapOutput joins tofu's output into one line with single spaces. Tofu wraps diagnostics at
// 78 columns when its output is not a terminal, so match messages against the unwrapped text.
func UnwrapOutput(s string) string {
	return strings.Join(strings.Fields(s), " ")
}

// lockedWriter serialises writes to w.
type lockedWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// tail returns the last n bytes of s.
func tail(s string, n int) string {
	if len(s) > n {
		return "..." + s[len(s)-n:]
	}
	return s
}
