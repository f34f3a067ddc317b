package harness

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"time"

	"k8s.io/apimachinery/pkg/util/wait"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
)

// WriteAdminKubeconfig writes a kubeconfig for a new cluster-admin user (group system:masters)
// of the environment, for processes started outside the test (the manager binary, kubectl).
func (e *Env) WriteAdminKubeconfig(path, user string) error {
	u, err := e.Environment.AddUser(envtest.User{Name: user, Groups: []string{"system:masters"}}, nil)
	if err != nil {
		return fmt.Errorf("failed to add user %s: %w", user, err)
	}
	kc, err := u.KubeConfig()
	if err != nil {
		return fmt.Errorf("failed to build kubeconfig: %w", err)
	}
	return os.WriteFile(path, kc, 0o600)
}

// BuildManager builds cmd/dexterity as `make build` does (static, CGO off) into path.
func BuildManager(path string) error {
	root, err := repoRoot()
	if err != nil {
		return err
	}
	cmd := exec.Command("go", "build", "-trimpath", "-o", path, "./cmd/dexterity")
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("failed to build the manager: %w\n%s", err, out)
	}
	return nil
}

// WaitHTTPOK polls url until it answers 200 (e.g. a manager's /readyz), for at most timeout.
func WaitHTTPOK(ctx context.Context, url string, timeout time.Duration) error {
	err := wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, timeout, true, func(ctx context.Context) (bool, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return false, err
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return false, nil
		}
		_ = resp.Body.Close()
		return resp.StatusCode == http.StatusOK, nil
	})
	if err != nil {
		return fmt.Errorf("%s did not answer 200 within %s: %w", url, timeout, err)
	}
	return nil
}

// WaitTLS polls addr until it completes a TLS handshake (a webhook server that serves), for at
// most timeout.
func WaitTLS(addr string, timeout time.Duration) error {
	err := wait.PollUntilContextTimeout(context.Background(), 100*time.Millisecond, timeout, true, func(context.Context) (bool, error) {
		conn, err := tls.DialWithDialer(&net.Dialer{Timeout: time.Second}, "tcp", addr, &tls.Config{InsecureSkipVerify: true}) //nolint:gosec // readiness probe only
		if err != nil {
			return false, nil
		}
		_ = conn.Close()
		return true, nil
	})
	if err != nil {
		return fmt.Errorf("%s did not serve TLS within %s: %w", addr, timeout, err)
	}
	return nil
}

// ManagerProcess is the dexterity binary running as a subprocess, its output in a log file.
type ManagerProcess struct {
	cmd *exec.Cmd
	log *os.File
}

// StartManagerProcess starts bin with args (and the test's environment plus env), its stdout and
// stderr appended to logPath.
func StartManagerProcess(bin, logPath string, env []string, args ...string) (*ManagerProcess, error) {
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		_ = logf.Close()
		return nil, fmt.Errorf("failed to start the manager: %w", err)
	}
	return &ManagerProcess{cmd: cmd, log: logf}, nil
}

// Pid is the process id of the manager (for reading its memory).
func (m *ManagerProcess) Pid() int { return m.cmd.Process.Pid }

// Kill ends the manager with SIGKILL: no cleanup, wherever it is (fault tests).
func (m *ManagerProcess) Kill() {
	_ = m.cmd.Process.Kill()
	_ = m.cmd.Wait()
	_ = m.log.Close()
}

// Stop interrupts the manager (it shuts down as on SIGINT in a pod) and kills it after 15 s.
func (m *ManagerProcess) Stop() {
	_ = m.cmd.Process.Signal(os.Interrupt)
	done := make(chan struct{})
	go func() { _ = m.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(15 * time.Second):
		_ = m.cmd.Process.Kill()
		<-done
	}
	_ = m.log.Close()
}
