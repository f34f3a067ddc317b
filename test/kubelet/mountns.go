package kubelet

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"syscall"
)

const (
	// hostsEnv marks a process started by EnterMountNamespace in its private mount namespace;
	// its value is the file to bind over /etc/hosts (created and removed by the parent).
	hostsEnv = "DEXTERITY_HARNESS_HOSTS"
	// podSpecEnv marks a pod process started by the kubelet emulator; its value is the JSON
	// file (a podExec) with the pod's mounts and container process.
	podSpecEnv = "DEXTERITY_HARNESS_POD"

	etcHosts = "/etc/hosts"
	// hostsMarker separates the host's /etc/hosts from the mappings of AddHosts. Its text is
	// what it was when the emulator lived in test/harness: the block of an earlier run is found
	// by it.
	hostsMarker = "# --- dexterity test harness (AddHosts) ---"
)

// nsHosts is the /etc/hosts of the private mount namespace: the host's content and the names
// AddHosts mapped. path is empty until EnterMountNamespace set the namespace up.
var nsHosts struct {
	mu     sync.Mutex
	path   string
	static []string          // lines of the host's /etc/hosts
	names  map[string]string // name -> ip
}

// EnterMountNamespace must be the first call of TestMain (or of a main()):
//
//	func TestMain(m *testing.M) {
//		if code, exited := kubelet.EnterMountNamespace(); exited {
//			os.Exit(code)
//		}
//		os.Exit(m.Run())
//	}
//
// It does one of three things:
//   - in a pod process of the kubelet emulator (see Start) it performs the pod's bind
//     mounts and execs the container's command; it never returns there;
//   - in a process not yet in a private mount namespace it re-executes the binary with the same
//     arguments and environment in a new private mount namespace (/ recursively private, so
//     nothing mounted there reaches the host), forwards SIGINT, SIGTERM and SIGQUIT to it, waits
//     and returns its exit code with exited true;
//   - in that re-executed process it bind-mounts a copy of /etc/hosts over /etc/hosts (see
//     AddHosts) and returns (0, false).
//
// The process must run as root (mount namespaces and bind mounts).
func EnterMountNamespace() (code int, exited bool) {
	if spec := os.Getenv(podSpecEnv); spec != "" {
		runPodProcess(spec) // does not return
	}
	if hosts := os.Getenv(hostsEnv); hosts != "" {
		// Children (Dex, tofu, another test binary) must not take the marker as theirs.
		_ = os.Unsetenv(hostsEnv)
		if err := setUpNamespace(hosts); err != nil {
			fmt.Fprintf(os.Stderr, "kubelet: failed to set up the private mount namespace: %v\n", err)
			return 1, true
		}
		return 0, false
	}
	code, err := reexecInNamespace()
	if err != nil {
		fmt.Fprintf(os.Stderr, "kubelet: %v\n", err)
		return 1, true
	}
	return code, true
}

// reexecInNamespace runs this binary again in a new private mount namespace and returns its
// exit code. It creates the file the child binds over /etc/hosts and removes it afterwards.
func reexecInNamespace() (int, error) {
	if os.Geteuid() != 0 {
		return 0, errors.New("failed to enter a private mount namespace: must run as root")
	}
	exe, err := os.Executable()
	if err != nil {
		return 0, fmt.Errorf("failed to find the test binary: %w", err)
	}
	hosts, err := os.CreateTemp("", "harness-hosts-")
	if err != nil {
		return 0, fmt.Errorf("failed to create the namespace's hosts file: %w", err)
	}
	hosts.Close()
	defer func() { _ = os.Remove(hosts.Name()) }()

	cmd := exec.Command(exe, os.Args[1:]...)
	cmd.Args[0] = os.Args[0]
	cmd.Env = append(os.Environ(), hostsEnv+"="+hosts.Name())
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Unshareflags: syscall.CLONE_NEWNS, Pdeathsig: syscall.SIGKILL}

	// Pdeathsig fires when the thread that started the child exits: keep this one.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()

	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGQUIT)
	defer signal.Stop(sigs)
	if err := cmd.Start(); err != nil {
		return 0, fmt.Errorf("failed to re-execute the test binary in a private mount namespace: %w", err)
	}
	done := make(chan struct{})
	go func() {
		for {
			select {
			case sig := <-sigs:
				_ = cmd.Process.Signal(sig)
			case <-done:
				return
			}
		}
	}()
	err = cmd.Wait()
	close(done)
	var exitErr *exec.ExitError
	switch {
	case err == nil:
		return 0, nil
	case errors.As(err, &exitErr):
		if ws, ok := exitErr.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			return 128 + int(ws.Signal()), nil
		}
		return exitErr.ExitCode(), nil
	default:
		return 0, fmt.Errorf("failed to wait for the test binary: %w", err)
	}
}

// setUpNamespace checks that this process is in a mount namespace of its own and binds a copy of
// /etc/hosts (in the file hosts) over /etc/hosts.
func setUpNamespace(hosts string) error {
	self, err := os.Readlink("/proc/self/ns/mnt")
	if err != nil {
		return fmt.Errorf("failed to read the mount namespace: %w", err)
	}
	if parent, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/mnt", os.Getppid())); err == nil && parent == self {
		return fmt.Errorf("%s is set but the process shares its parent's mount namespace", hostsEnv)
	}
	data, err := os.ReadFile(etcHosts)
	if err != nil {
		return fmt.Errorf("failed to read %s: %w", etcHosts, err)
	}
	// The host's file may carry an older run's block (a copy of a copy): drop it.
	content, _, _ := strings.Cut(string(data), hostsMarker)
	nsHosts.mu.Lock()
	defer nsHosts.mu.Unlock()
	nsHosts.static = strings.Split(strings.TrimRight(content, "\n"), "\n")
	nsHosts.names = map[string]string{}
	if err := writeHostsLocked(hosts); err != nil {
		return err
	}
	if err := syscall.Mount(hosts, etcHosts, "", syscall.MS_BIND, ""); err != nil {
		return fmt.Errorf("failed to bind %s over %s: %w", hosts, etcHosts, err)
	}
	nsHosts.path = hosts
	return nil
}

// AddHosts maps names to ip in the /etc/hosts of the private mount namespace (and of the pods of
// the kubelet emulator, which share the file). It replaces any earlier mapping of the same names,
// including the host's. EnterMountNamespace must have been called.
//
// Go's resolver re-reads /etc/hosts at most every 5 s: callers should expect the first lookups
// to fail and use Eventually.
func AddHosts(ip string, names ...string) error {
	nsHosts.mu.Lock()
	defer nsHosts.mu.Unlock()
	if nsHosts.path == "" {
		return errors.New("failed to add hosts: not in the private mount namespace (call EnterMountNamespace first in TestMain)")
	}
	changed := false
	for _, n := range names {
		if n == "" || strings.ContainsAny(n, " \t\n#") {
			return fmt.Errorf("failed to add hosts: invalid name %q", n)
		}
		if nsHosts.names[n] != ip {
			nsHosts.names[n] = ip
			changed = true
		}
	}
	if !changed {
		return nil
	}
	return writeHostsLocked(nsHosts.path)
}

// removeHosts removes the mappings AddHosts made for names.
func removeHosts(names ...string) error {
	nsHosts.mu.Lock()
	defer nsHosts.mu.Unlock()
	if nsHosts.path == "" {
		return nil
	}
	changed := false
	for _, n := range names {
		if _, ok := nsHosts.names[n]; ok {
			delete(nsHosts.names, n)
			changed = true
		}
	}
	if !changed {
		return nil
	}
	return writeHostsLocked(nsHosts.path)
}

// writeHostsLocked writes the host's lines without the mapped names, then the mappings, into
// path. It rewrites the file in place (the bind mount refers to its inode) with a single write,
// so that readers see either the old or the new content. nsHosts.mu must be held.
func writeHostsLocked(path string) error {
	var b strings.Builder
	for _, line := range nsHosts.static {
		b.WriteString(withoutNames(line, nsHosts.names))
		b.WriteByte('\n')
	}
	b.WriteString(hostsMarker + "\n")
	names := make([]string, 0, len(nsHosts.names))
	for n := range nsHosts.names {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, n := range names {
		fmt.Fprintf(&b, "%s\t%s\n", nsHosts.names[n], n)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_TRUNC, 0)
	if err != nil {
		return fmt.Errorf("failed to open %s: %w", path, err)
	}
	_, err = f.WriteString(b.String())
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("failed to write %s: %w", path, err)
	}
	return nil
}

// withoutNames returns a hosts line without the names in drop (commented out when no name is
// left).
func withoutNames(line string, drop map[string]string) string {
	entry, comment, hasComment := strings.Cut(line, "#")
	fields := strings.Fields(entry)
	if len(fields) < 2 {
		return line
	}
	kept := fields[:1]
	for _, n := range fields[1:] {
		if _, ok := drop[n]; !ok {
			kept = append(kept, n)
		}
	}
	if len(kept) == len(fields) {
		return line
	}
	out := strings.Join(kept, "\t")
	if len(kept) == 1 {
		out = "# " + out + " (names remapped by the harness)"
	}
	if hasComment {
		out += " #" + comment
	}
	return out
}

// podExec is what a pod process does before it becomes the container (written by the kubelet
// emulator as JSON, read by runPodProcess).
type podExec struct {
	// Mounts are bind-mounted in order (parents before what is mounted inside them).
	Mounts []podMount `json:"mounts"`
	// Dir is the container's working directory.
	Dir string `json:"dir"`
	// Argv is the command and its arguments; Argv[0] is a path in the pod's file system, or a
	// name looked up in the PATH of Env.
	Argv []string `json:"argv"`
	// Env is the container's complete environment.
	Env []string `json:"env"`
}

// podMount bind-mounts Source (a host path) at Target.
type podMount struct {
	Source   string `json:"source"`
	Target   string `json:"target"`
	ReadOnly bool   `json:"readOnly,omitempty"`
}

// runPodProcess performs the mounts of the podExec in file and execs the container. It runs in
// the pod's fresh mount namespace and never returns; on failure it exits with status 127, after
// a message on stderr (the pod's log).
func runPodProcess(file string) {
	fail := func(format string, args ...any) {
		fmt.Fprintf(os.Stderr, "kubelet: failed to start container: "+format+"\n", args...)
		os.Exit(127)
	}
	data, err := os.ReadFile(file)
	if err != nil {
		fail("%v", err)
	}
	var spec podExec
	if err := json.Unmarshal(data, &spec); err != nil {
		fail("failed to decode %s: %v", file, err)
	}
	for _, m := range spec.Mounts {
		if err := syscall.Mount(m.Source, m.Target, "", syscall.MS_BIND|syscall.MS_REC, ""); err != nil {
			fail("failed to bind %s at %s: %v", m.Source, m.Target, err)
		}
		if m.ReadOnly {
			if err := syscall.Mount("", m.Target, "", syscall.MS_BIND|syscall.MS_REMOUNT|syscall.MS_RDONLY, ""); err != nil {
				fail("failed to make %s read-only: %v", m.Target, err)
			}
		}
	}
	if err := os.Chdir(spec.Dir); err != nil {
		fail("failed to change to working directory: %v", err)
	}
	if len(spec.Argv) == 0 {
		fail("no command")
	}
	path, err := lookPathIn(spec.Argv[0], spec.Env)
	if err != nil {
		fail("%v", err)
	}
	err = syscall.Exec(path, spec.Argv, spec.Env)
	fail("failed to exec %s: %v", path, err)
}

// lookPathIn resolves a command without a slash in the PATH of env, as a container runtime does.
func lookPathIn(name string, env []string) (string, error) {
	if strings.Contains(name, "/") {
		return name, nil
	}
	path := ""
	for _, kv := range env {
		if v, ok := strings.CutPrefix(kv, "PATH="); ok {
			path = v
		}
	}
	for _, dir := range filepath.SplitList(path) {
		p := filepath.Join(dir, name)
		if st, err := os.Stat(p); err == nil && !st.IsDir() && st.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", fmt.Errorf("executable %q not found in $PATH (%s)", name, path)
}
