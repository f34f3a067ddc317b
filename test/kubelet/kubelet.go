// Package kubelet runs the pods of Deployments for tests and `make run`, on envtest, which has no
// kubelet: the pod the operator rendered runs with the real binaries (bin/dex), its Secret and
// ConfigMap files mounted at the container paths in a private mount namespace, a real
// ServiceAccount token and its probes (see Kubelet for what is emulated and what is refused). It
// is a package of its own, apart from test/harness, so that only the packages that run pods build
// it.
//
// A process using it calls EnterMountNamespace first (in TestMain, or first thing in main).
package kubelet

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"maps"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	utilrand "k8s.io/apimachinery/pkg/util/rand"
	"k8s.io/apimachinery/pkg/util/uuid"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

const (
	// kubeletPollInterval is how often the emulator reads Deployments, Services, Secrets and
	// ConfigMaps (a real kubelet learns of Secret updates after up to a minute or so).
	kubeletPollInterval = 250 * time.Millisecond
	// probeCap caps probes' periodSeconds and initialDelaySeconds, so that tests are fast.
	probeCap = time.Second
	// terminationGraceCap caps terminationGracePeriodSeconds (default 30 s).
	terminationGraceCap = 5 * time.Second
	// restartBackoffMin and restartBackoffMax bound the delay before a container restart
	// (CrashLoopBackOff, 10 s to 5 min in a real kubelet) or a new try to create a pod.
	restartBackoffMin = 200 * time.Millisecond
	restartBackoffMax = 2 * time.Second
	// restartBackoffReset is how long a container must run for the backoff to start over.
	restartBackoffReset = 10 * time.Second

	// serviceAccountMountPath is where the ServiceAccount admission plugin mounts the token.
	serviceAccountMountPath = "/var/run/secrets/kubernetes.io/serviceaccount"
	// rootCAConfigMap is the ConfigMap kube-controller-manager publishes in every namespace.
	rootCAConfigMap = "kube-root-ca.crt"
	// automountTokenSeconds is the lifetime of the automounted token, as the admission plugin
	// requests it.
	automountTokenSeconds = 3607
	// defaultTokenSeconds is the default expirationSeconds of a projected token.
	defaultTokenSeconds = 3600

	// podIP is the IP of every pod (and of every Service).
	podIP = "127.0.0.1"
	// kubeletNodeName is spec.nodeName of the pods.
	kubeletNodeName = "harness-kubelet"
	// podTemplateHashLabel is the label the deployment controller adds to its pods.
	podTemplateHashLabel = "pod-template-hash"
	// defaultVolumeMode is the default mode of Secret, ConfigMap and projected files.
	defaultVolumeMode = 0o644

	// atomicDataDir is the symlink of an atomic-writer volume to its current timestamped dir.
	atomicDataDir    = "..data"
	atomicDataDirTmp = "..data_tmp"
)

// Options configures Start.
type Options struct {
	// Config is envtest's config: the API server address and CA the pods see, and the
	// credentials of the emulator.
	Config *rest.Config
	// Files make up the containers' "image": container paths mapped to host files, e.g.
	// "/usr/local/bin/dex" -> "<repo>/bin/dex". For each directory holding such files
	// ("/usr/local/bin") the pods get a directory of their own, with only these files in it,
	// mounted over the host's. Everything else is the host's file system.
	Files map[string]string
	// LogDir receives a log per Deployment: the kubelet's lines and the output of its pods.
	// Default: a temporary directory removed by Stop.
	LogDir string
	// StateDir holds the pods' volumes and the PersistentVolumeClaims' directories.
	// Default: a temporary directory removed by Stop.
	StateDir string
}

// Kubelet emulates a kubelet, and the deployment controller, for envtest, which has neither:
// it runs the pods of Deployments as child processes of the test binary, each in a mount
// namespace of its own where the Files of the image and the volumes are bind-mounted at their
// container paths, and it writes the Deployments' status. All pods share the network namespace
// of the test (127.0.0.1 is every pod's and every Service's IP); Service names resolve through
// AddHosts.
//
// Emulated: one pod per Deployment (see Run), the first container of it, env and envFrom,
// command and args with $(VAR) expansion, workingDir, volumes (secret, configMap, emptyDir,
// persistentVolumeClaim, hostPath, downwardAPI, projected with serviceAccountToken), the
// automatic service-account mount, Secret and ConfigMap updates through the atomic writer,
// httpGet and tcpSocket probes (startup, liveness, readiness), restart with backoff, rollouts
// on template changes and the Deployment status. Unsupported fields of the pod template are
// refused (the pod is not created and the Deployment's log says why) or, when they cannot
// matter here, logged as ignored.
//
// The process must have called EnterMountNamespace. Kubelet is safe for concurrent use.
type Kubelet struct {
	client   client.Client
	apiHost  string
	apiPort  int
	caData   []byte
	images   []podMount // directories of Files, mounted in every pod
	stateDir string
	logDir   string
	cleanup  []string // directories Start created, removed by Stop

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu          sync.Mutex
	stopped     bool
	deployments map[types.NamespacedName]*deploymentRunner
	mountPoints []string       // host paths created as mount points, in creation order
	hostRefs    map[string]int // names mapped by AddHosts -> runners mapping them
}

// Start prepares the image directories of opts.Files and returns a kubelet that runs no
// Deployment yet (see Run). Its client knows the Kubernetes built-in types only: the emulator
// reads nothing else. Canceling ctx stops all pods; Stop also removes what the kubelet
// created.
func Start(ctx context.Context, opts Options) (*Kubelet, error) {
	if opts.Config == nil {
		return nil, errors.New("failed to start kubelet: no rest.Config")
	}
	nsHosts.mu.Lock()
	inNamespace := nsHosts.path != ""
	nsHosts.mu.Unlock()
	if !inNamespace {
		return nil, errors.New("failed to start kubelet: not in the private mount namespace (call EnterMountNamespace first in TestMain)")
	}
	c, err := client.New(opts.Config, client.Options{Scheme: clientgoscheme.Scheme})
	if err != nil {
		return nil, fmt.Errorf("failed to start kubelet: failed to create client: %w", err)
	}
	host, port, err := apiServerAddress(opts.Config.Host)
	if err != nil {
		return nil, fmt.Errorf("failed to start kubelet: %w", err)
	}
	ca := opts.Config.CAData
	if len(ca) == 0 && opts.Config.CAFile != "" {
		if ca, err = os.ReadFile(opts.Config.CAFile); err != nil {
			return nil, fmt.Errorf("failed to start kubelet: failed to read CA: %w", err)
		}
	}
	if len(ca) == 0 {
		return nil, errors.New("failed to start kubelet: the rest.Config has no CA (the pods' ca.crt)")
	}

	k := &Kubelet{
		client:      c,
		apiHost:     host,
		apiPort:     port,
		caData:      ca,
		stateDir:    opts.StateDir,
		logDir:      opts.LogDir,
		deployments: map[types.NamespacedName]*deploymentRunner{},
		hostRefs:    map[string]int{},
	}
	fail := func(err error) (*Kubelet, error) {
		for _, d := range k.cleanup {
			_ = os.RemoveAll(d)
		}
		return nil, fmt.Errorf("failed to start kubelet: %w", err)
	}
	for _, d := range []*string{&k.stateDir, &k.logDir} {
		if *d == "" {
			if *d, err = os.MkdirTemp("", "harness-kubelet-"); err != nil {
				return fail(err)
			}
			k.cleanup = append(k.cleanup, *d)
		} else if err := os.MkdirAll(*d, 0o755); err != nil {
			return fail(err)
		}
		if *d, err = filepath.Abs(*d); err != nil {
			return fail(err)
		}
	}
	// pods/ and image/ are the kubelet's own; pvc/ is kept when StateDir was given.
	k.cleanup = append(k.cleanup, filepath.Join(k.stateDir, "pods"), filepath.Join(k.stateDir, "image"))
	if k.images, err = buildImageDirs(filepath.Join(k.stateDir, "image"), opts.Files); err != nil {
		return fail(err)
	}
	k.ctx, k.cancel = context.WithCancel(ctx)
	return k, nil
}

// apiServerAddress returns the host and port of the API server URL (or host:port) in host.
func apiServerAddress(host string) (string, int, error) {
	if !strings.Contains(host, "://") {
		host = "https://" + host
	}
	u, err := url.Parse(host)
	if err != nil {
		return "", 0, fmt.Errorf("failed to parse API server address %q: %w", host, err)
	}
	port := 443
	if u.Scheme == "http" {
		port = 80
	}
	if p := u.Port(); p != "" {
		if port, err = strconv.Atoi(p); err != nil {
			return "", 0, fmt.Errorf("failed to parse API server port %q: %w", p, err)
		}
	}
	return u.Hostname(), port, nil
}

// buildImageDirs makes, under root, one directory per top directory of files' container paths,
// holding symlinks to the host files, and returns their mounts.
func buildImageDirs(root string, files map[string]string) ([]podMount, error) {
	var parents []string
	for c, h := range files {
		if !filepath.IsAbs(c) || filepath.Clean(c) != c || filepath.Dir(c) == "/" {
			return nil, fmt.Errorf("image file %q: want a clean absolute path below a directory other than /", c)
		}
		if st, err := os.Stat(h); err != nil {
			return nil, fmt.Errorf("image file %q: %w", c, err)
		} else if st.IsDir() {
			return nil, fmt.Errorf("image file %q: %s is a directory", c, h)
		}
		parents = append(parents, filepath.Dir(c))
	}
	slices.Sort(parents)
	var tops []string
	for _, p := range slices.Compact(parents) {
		if len(tops) == 0 || !isUnder(p, tops[len(tops)-1]) {
			tops = append(tops, p)
		}
	}
	mounts := make([]podMount, 0, len(tops))
	for i, top := range tops {
		dir := filepath.Join(root, strconv.Itoa(i))
		for c, h := range files {
			if !isUnder(filepath.Dir(c), top) {
				continue
			}
			link := filepath.Join(dir, strings.TrimPrefix(c, top))
			abs, err := filepath.Abs(h)
			if err != nil {
				return nil, err
			}
			if err := os.MkdirAll(filepath.Dir(link), 0o755); err != nil {
				return nil, err
			}
			if err := os.Symlink(abs, link); err != nil {
				return nil, err
			}
		}
		mounts = append(mounts, podMount{Source: dir, Target: top, ReadOnly: true})
	}
	return mounts, nil
}

// isUnder reports whether path is dir or inside it.
func isUnder(path, dir string) bool {
	return path == dir || strings.HasPrefix(path, strings.TrimSuffix(dir, "/")+"/")
}

// Run makes the kubelet run the Deployment namespace/name, which need not exist yet. It polls
// the Deployment and, like the deployment controller with a kubelet, runs one pod for its
// current pod template while spec.replicas >= 1 (none at 0). Only one pod runs even when
// replicas > 1 (the pods would share the network namespace and their ports), and the status says
// so (readyReplicas 1). A changed template (spec.template's hash) replaces the pod: the old one
// is stopped (SIGTERM, SIGKILL after the grace period) before the new one starts, i.e. every
// rollout is a Recreate. Only the first container of the template runs.
//
// Services of the namespace whose selector matches the template's labels get their names
// mapped to 127.0.0.1 (see AddHosts); their ports must equal their target ports.
func (k *Kubelet) Run(namespace, deployment string) error {
	key := types.NamespacedName{Namespace: namespace, Name: deployment}
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.stopped {
		return errors.New("failed to run deployment: kubelet stopped")
	}
	if _, ok := k.deployments[key]; ok {
		return fmt.Errorf("failed to run deployment %s: already running", key)
	}
	logPath := filepath.Join(k.logDir, namespace+"_"+deployment+".log")
	log, err := os.OpenFile(logPath, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		return fmt.Errorf("failed to run deployment %s: %w", key, err)
	}
	r := &deploymentRunner{
		k:       k,
		key:     key,
		log:     log,
		logPath: logPath,
		restart: make(chan chan error),
		said:    map[string]bool{},
	}
	k.deployments[key] = r
	k.wg.Add(1)
	go r.loop()
	return nil
}

// RestartPod deletes the current pod of the Deployment and starts a fresh one (new name,
// new token, volumes and env read again), as `kubectl delete pod` would.
func (k *Kubelet) RestartPod(namespace, deployment string) error {
	r, err := k.runner(namespace, deployment)
	if err != nil {
		return err
	}
	reply := make(chan error, 1)
	select {
	case r.restart <- reply:
	case <-k.ctx.Done():
		return errors.New("failed to restart pod: kubelet stopped")
	}
	return <-reply
}

// Logs returns the Deployment's log from the start of its previous pod: the kubelet's lines
// ("=== kubelet ...") and the output of the previous and current pods. It is meant for test
// failure messages.
func (k *Kubelet) Logs(namespace, deployment string) string {
	r, err := k.runner(namespace, deployment)
	if err != nil {
		return fmt.Sprintf("<%v>", err)
	}
	return r.logs()
}

// PodStarts returns how many pods (not container restarts) the kubelet created for the
// Deployment.
func (k *Kubelet) PodStarts(namespace, deployment string) int {
	r, err := k.runner(namespace, deployment)
	if err != nil {
		return 0
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.starts
}

// PodPID returns the PID of the Deployment's running container process, 0 if none runs. The
// pod's file system, as the container sees it, is /proc/<pid>/root.
func (k *Kubelet) PodPID(namespace, deployment string) int {
	r, err := k.runner(namespace, deployment)
	if err != nil {
		return 0
	}
	if p := r.current(); p != nil {
		return p.processID()
	}
	return 0
}

// PodPath returns the path, as the test process can open it, of path in the file system of the
// Deployment's running container: /proc/<pid>/root/... with the symlinks of the directories
// resolved inside the container (an absolute symlink such as /var/run -> /run would otherwise
// lead into the test's own root). The last element is not resolved, so Readlink works on it.
func (k *Kubelet) PodPath(namespace, deployment, path string) (string, error) {
	pid := k.PodPID(namespace, deployment)
	if pid == 0 {
		return "", fmt.Errorf("no container of %s/%s running", namespace, deployment)
	}
	return resolveInRoot(fmt.Sprintf("/proc/%d/root", pid), path)
}

// resolveInRoot resolves the symlinks of path's directories as if root were /.
func resolveInRoot(root, path string) (string, error) {
	rest := strings.Split(strings.TrimPrefix(filepath.Clean("/"+path), "/"), "/")
	cur := "/"
	for hops := 0; len(rest) > 1; {
		next := filepath.Join(cur, rest[0])
		target, err := os.Readlink(root + next)
		if err != nil { // not a symlink (or missing: let the caller's open fail)
			cur, rest = next, rest[1:]
			continue
		}
		if hops++; hops > 40 {
			return "", fmt.Errorf("failed to resolve %s: too many symlinks", path)
		}
		if filepath.IsAbs(target) {
			cur = "/"
		}
		rest = append(strings.Split(strings.Trim(filepath.Clean(target), "/"), "/"), rest[1:]...)
		rest = slices.DeleteFunc(rest, func(s string) bool { return s == "" || s == "." })
		for len(rest) > 0 && rest[0] == ".." {
			cur, rest = filepath.Dir(cur), rest[1:]
		}
	}
	return root + filepath.Join(cur, rest[0]), nil
}

// Stop stops every pod and removes what the kubelet created: the mappings of AddHosts and the
// state and log directories it created (Logs still answers afterwards). The mount points it made
// on the host stay, empty (see below), and so do the objects it created in the API (see Run).
func (k *Kubelet) Stop() {
	k.mu.Lock()
	if k.stopped {
		k.mu.Unlock()
		return
	}
	k.stopped = true
	k.mu.Unlock()

	k.cancel()
	k.wg.Wait()

	k.mu.Lock()
	defer k.mu.Unlock()
	for _, r := range k.deployments {
		r.finish()
	}
	names := slices.Collect(maps.Keys(k.hostRefs))
	_ = removeHosts(names...)
	k.hostRefs = map[string]int{}
	// The mount points created on the host stay (empty): removing a directory that is a mount
	// point in another mount namespace detaches that mount, and the pods of another test process
	// (packages run in parallel) may have the same paths mounted (e.g. the service account
	// token's). Nothing is left mounted on the host itself.
	k.mountPoints = nil
	for _, d := range k.cleanup {
		_ = os.RemoveAll(d)
	}
}

// runner returns the runner of a Deployment passed to Run.
func (k *Kubelet) runner(namespace, deployment string) (*deploymentRunner, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	r, ok := k.deployments[types.NamespacedName{Namespace: namespace, Name: deployment}]
	if !ok {
		return nil, fmt.Errorf("deployment %s/%s not run by the kubelet", namespace, deployment)
	}
	return r, nil
}

// setHosts maps names to podIP for owner, unmapping those the owner mapped before and maps no
// longer (unless another owner maps them).
func (k *Kubelet) setHosts(old, names []string) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	var add, remove []string
	for _, n := range names {
		if !slices.Contains(old, n) {
			if k.hostRefs[n]++; k.hostRefs[n] == 1 {
				add = append(add, n)
			}
		}
	}
	for _, n := range old {
		if !slices.Contains(names, n) {
			if k.hostRefs[n]--; k.hostRefs[n] <= 0 {
				delete(k.hostRefs, n)
				remove = append(remove, n)
			}
		}
	}
	if err := removeHosts(remove...); err != nil {
		return err
	}
	if len(add) == 0 {
		return nil
	}
	return AddHosts(podIP, add...)
}

// ensureMountPoint creates path on the host (a directory, or an empty file when dir is false)
// with its missing parents (they stay after Stop: see Stop).
func (k *Kubelet) ensureMountPoint(path string, dir bool) error {
	if _, err := os.Stat(path); err == nil {
		return nil
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	parts := strings.Split(strings.TrimPrefix(path, "/"), "/")
	cur := "/"
	for i, part := range parts {
		cur = filepath.Join(cur, part)
		if _, err := os.Stat(cur); err == nil {
			continue
		} else if !errors.Is(err, os.ErrNotExist) {
			return err
		}
		var err error
		if i < len(parts)-1 || dir {
			err = os.Mkdir(cur, 0o755)
		} else {
			var f *os.File
			if f, err = os.OpenFile(cur, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644); err == nil {
				f.Close()
			}
		}
		if errors.Is(err, os.ErrExist) {
			continue // another test process created it meanwhile
		}
		if err != nil {
			return fmt.Errorf("failed to create mount point %s: %w", cur, err)
		}
		k.mountPoints = append(k.mountPoints, cur)
	}
	return nil
}

// deploymentRunner is the deployment controller and kubelet for one Deployment. Its loop alone
// creates and stops pods.
type deploymentRunner struct {
	k       *Kubelet
	key     types.NamespacedName
	log     *os.File
	logPath string
	restart chan chan error

	// Owned by the loop.
	hash         string    // template hash the current rollout is for
	rolloutStart time.Time // when hash changed
	nextCreate   time.Time // no pod creation before (backoff after a failure)
	createDelay  time.Duration
	createErr    string   // why the last pod creation failed ("" when it did not)
	hosts        []string // names mapped for the Services
	said         map[string]bool

	mu        sync.Mutex
	pod       *pod
	starts    int
	podOffset []int64 // log offsets at which pods started
	finalLogs *string // the logs, kept by Stop
}

// logf appends a kubelet line to the Deployment's log.
func (r *deploymentRunner) logf(format string, args ...any) {
	fmt.Fprintf(r.log, "=== kubelet %s: %s ===\n", time.Now().Format("15:04:05.000"), fmt.Sprintf(format, args...))
}

// logOnce logs a line unless the same line was logged already.
func (r *deploymentRunner) logOnce(format string, args ...any) {
	line := fmt.Sprintf(format, args...)
	if !r.said[line] {
		r.said[line] = true
		r.logf("%s", line)
	}
}

func (r *deploymentRunner) current() *pod {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.pod
}

func (r *deploymentRunner) logs() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.finalLogs != nil {
		return *r.finalLogs
	}
	return r.logsLocked()
}

func (r *deploymentRunner) logsLocked() string {
	data, err := os.ReadFile(r.logPath)
	if err != nil {
		return fmt.Sprintf("<failed to read kubelet log: %v>", err)
	}
	if n := len(r.podOffset); n >= 2 && r.podOffset[n-2] <= int64(len(data)) {
		return fmt.Sprintf("... (%s, earlier pods left out)\n", r.logPath) + string(data[r.podOffset[n-2]:])
	}
	return string(data)
}

// finish keeps the logs and closes the log file (after the loop ended).
func (r *deploymentRunner) finish() {
	r.mu.Lock()
	defer r.mu.Unlock()
	logs := r.logsLocked()
	r.finalLogs = &logs
	r.log.Close()
}

// loop syncs the Deployment every kubeletPollInterval until the kubelet stops.
func (r *deploymentRunner) loop() {
	defer r.k.wg.Done()
	defer r.stopPod("kubelet stopping")
	ticker := time.NewTicker(kubeletPollInterval)
	defer ticker.Stop()
	for {
		r.sync()
		select {
		case <-r.k.ctx.Done():
			return
		case reply := <-r.restart:
			reply <- r.restartPod()
		case <-ticker.C:
		}
	}
}

// restartPod replaces the running pod by a new one.
func (r *deploymentRunner) restartPod() error {
	if r.current() == nil {
		return fmt.Errorf("failed to restart pod of %s: no pod running", r.key)
	}
	var d appsv1.Deployment
	if err := r.k.client.Get(r.k.ctx, r.key, &d); err != nil {
		return fmt.Errorf("failed to restart pod of %s: %w", r.key, err)
	}
	r.stopPod("pod deleted (RestartPod)")
	if err := r.createPod(&d, templateHash(&d.Spec.Template)); err != nil {
		return fmt.Errorf("failed to restart pod of %s: %w", r.key, err)
	}
	return nil
}

// sync does one round of the deployment controller's and the kubelet's work.
func (r *deploymentRunner) sync() {
	ctx := r.k.ctx
	var d appsv1.Deployment
	if err := r.k.client.Get(ctx, r.key, &d); err != nil {
		if ctx.Err() != nil {
			return
		}
		if apierrors.IsNotFound(err) {
			r.stopPod("deployment not found")
			r.syncServices(nil)
			return
		}
		r.logOnce("failed to get deployment: %v", err)
		return
	}
	hash := templateHash(&d.Spec.Template)
	if hash != r.hash {
		r.hash, r.rolloutStart = hash, time.Now()
		r.nextCreate, r.createDelay, r.createErr = time.Time{}, 0, ""
	}
	desired := ptr.Deref(d.Spec.Replicas, 1)
	if p := r.current(); p != nil {
		switch {
		case desired == 0:
			r.stopPod("scaled to 0")
		case p.hash != hash && !d.Spec.Paused:
			r.stopPod("pod template changed")
		}
	}
	if r.current() == nil && desired > 0 && !time.Now().Before(r.nextCreate) {
		if err := r.createPod(&d, hash); err != nil {
			r.createErr = err.Error()
			r.createDelay = min(max(2*r.createDelay, restartBackoffMin), restartBackoffMax)
			r.nextCreate = time.Now().Add(r.createDelay)
			r.logOnce("failed to create pod: %v", err)
		} else {
			r.createErr = ""
		}
	}
	if p := r.current(); p != nil {
		p.syncVolumes(ctx)
	}
	r.syncServices(&d)
	r.syncStatus(&d, hash)
}

// stopPod stops the current pod, if any.
func (r *deploymentRunner) stopPod(reason string) {
	p := r.current()
	if p == nil {
		return
	}
	r.logf("stopping pod %s: %s", p.name, reason)
	p.stop()
	r.mu.Lock()
	r.pod = nil
	r.mu.Unlock()
	r.logf("pod %s stopped", p.name)
}

// createPod validates the template as the API server and admission would, and starts a pod.
func (r *deploymentRunner) createPod(d *appsv1.Deployment, hash string) error {
	tmpl := d.Spec.Template.DeepCopy()
	warnings, err := validatePodSpec(&tmpl.Spec)
	if err != nil {
		return err
	}
	for _, w := range warnings {
		r.logOnce("template %s: %s", hash, w)
	}
	saName := tmpl.Spec.ServiceAccountName
	if saName == "" {
		saName = tmpl.Spec.DeprecatedServiceAccount
	}
	if saName == "" {
		saName = "default"
	}
	tmpl.Spec.ServiceAccountName = saName
	sa, err := r.k.serviceAccount(r.k.ctx, r.key.Namespace, saName)
	if err != nil {
		return err
	}
	if ptr.Deref(tmpl.Spec.AutomountServiceAccountToken, ptr.Deref(sa.AutomountServiceAccountToken, true)) {
		if err := r.k.ensureRootCA(r.k.ctx, r.key.Namespace); err != nil {
			return err
		}
		addServiceAccountVolume(&tmpl.Spec)
	}
	if tmpl.Labels == nil {
		tmpl.Labels = map[string]string{}
	}
	tmpl.Labels[podTemplateHashLabel] = hash

	name := fmt.Sprintf("%s-%s-%s", d.Name, hash, utilrand.String(5))
	p := &pod{
		k:         r.k,
		r:         r,
		name:      name,
		namespace: r.key.Namespace,
		uid:       string(uuid.NewUUID()),
		hash:      hash,
		meta:      tmpl.ObjectMeta,
		spec:      tmpl.Spec,
		container: tmpl.Spec.Containers[0],
		dir:       filepath.Join(r.k.stateDir, "pods", name),
		done:      make(chan struct{}),
		tokens:    map[string]cachedToken{},
	}
	var ctx context.Context
	ctx, p.cancel = context.WithCancel(r.k.ctx)
	off, _ := r.log.Seek(0, io.SeekEnd)
	r.mu.Lock()
	r.pod = p
	r.starts++
	r.podOffset = append(r.podOffset, off)
	r.mu.Unlock()
	r.logf("created pod %s (pod %d of the deployment)", name, r.starts)
	go p.run(ctx)
	return nil
}

// serviceAccount gets a ServiceAccount, creating "default" when missing as
// kube-controller-manager would.
func (k *Kubelet) serviceAccount(ctx context.Context, namespace, name string) (*corev1.ServiceAccount, error) {
	sa := &corev1.ServiceAccount{}
	err := k.client.Get(ctx, types.NamespacedName{Namespace: namespace, Name: name}, sa)
	if apierrors.IsNotFound(err) && name == "default" {
		sa = &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: name}}
		if err = k.client.Create(ctx, sa); apierrors.IsAlreadyExists(err) {
			err = k.client.Get(ctx, client.ObjectKeyFromObject(sa), sa)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("failed to get serviceaccount %s/%s: %w", namespace, name, err)
	}
	return sa, nil
}

// ensureRootCA publishes the API server's CA as ConfigMap kube-root-ca.crt in namespace, as
// kube-controller-manager does in every namespace, and brings a stale one up to date (an etcd
// kept from an earlier run, as `make run`'s state directory, holds the CA of an earlier API
// server).
func (k *Kubelet) ensureRootCA(ctx context.Context, namespace string) error {
	cm := &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: rootCAConfigMap},
		Data:       map[string]string{"ca.crt": string(k.caData)},
	}
	err := k.client.Create(ctx, cm)
	if apierrors.IsAlreadyExists(err) {
		cur := &corev1.ConfigMap{}
		if err = k.client.Get(ctx, client.ObjectKeyFromObject(cm), cur); err == nil && cur.Data["ca.crt"] != string(k.caData) {
			cur.Data = cm.Data
			err = k.client.Update(ctx, cur)
		}
	}
	if err != nil {
		return fmt.Errorf("failed to publish configmap %s/%s: %w", namespace, rootCAConfigMap, err)
	}
	return nil
}

// addServiceAccountVolume adds the projected volume and mount the ServiceAccount admission
// plugin adds, unless the container mounts something at the path already.
func addServiceAccountVolume(spec *corev1.PodSpec) {
	c := &spec.Containers[0]
	for _, m := range c.VolumeMounts {
		if m.MountPath == serviceAccountMountPath {
			return
		}
	}
	name := "kube-api-access-" + utilrand.String(5)
	spec.Volumes = append(spec.Volumes, corev1.Volume{
		Name: name,
		VolumeSource: corev1.VolumeSource{Projected: &corev1.ProjectedVolumeSource{
			DefaultMode: ptr.To[int32](defaultVolumeMode),
			Sources: []corev1.VolumeProjection{
				{ServiceAccountToken: &corev1.ServiceAccountTokenProjection{Path: "token", ExpirationSeconds: ptr.To[int64](automountTokenSeconds)}},
				{ConfigMap: &corev1.ConfigMapProjection{
					LocalObjectReference: corev1.LocalObjectReference{Name: rootCAConfigMap},
					Items:                []corev1.KeyToPath{{Key: "ca.crt", Path: "ca.crt"}},
				}},
				{DownwardAPI: &corev1.DownwardAPIProjection{Items: []corev1.DownwardAPIVolumeFile{{
					Path: "namespace", FieldRef: &corev1.ObjectFieldSelector{APIVersion: "v1", FieldPath: "metadata.namespace"},
				}}}},
			},
		}},
	})
	c.VolumeMounts = append(c.VolumeMounts, corev1.VolumeMount{Name: name, MountPath: serviceAccountMountPath, ReadOnly: true})
}

// templateHash is the pod-template-hash of a template.
func templateHash(t *corev1.PodTemplateSpec) string {
	data, _ := json.Marshal(t)
	h := fnv.New32a()
	_, _ = h.Write(data)
	return utilrand.SafeEncodeString(strconv.FormatUint(uint64(h.Sum32()), 10))
}

// syncServices maps the names of the Services that select the pods (nil d: none).
func (r *deploymentRunner) syncServices(d *appsv1.Deployment) {
	var names []string
	if d != nil {
		var svcs corev1.ServiceList
		if err := r.k.client.List(r.k.ctx, &svcs, client.InNamespace(r.key.Namespace)); err != nil {
			if r.k.ctx.Err() == nil {
				r.logOnce("failed to list services: %v", err)
			}
			return
		}
		for i := range svcs.Items {
			svc := &svcs.Items[i]
			if !selects(svc.Spec.Selector, d.Spec.Template.Labels) {
				continue
			}
			if err := checkServicePorts(svc, &d.Spec.Template.Spec); err != nil {
				r.logOnce("service %s (resourceVersion %s) not mapped: %v", svc.Name, svc.ResourceVersion, err)
				continue
			}
			ns := r.key.Namespace
			names = append(names, svc.Name, svc.Name+"."+ns, svc.Name+"."+ns+".svc", svc.Name+"."+ns+".svc.cluster.local")
		}
	}
	slices.Sort(names)
	names = slices.Compact(names)
	if slices.Equal(names, r.hosts) {
		return
	}
	if err := r.k.setHosts(r.hosts, names); err != nil {
		r.logOnce("failed to map service names: %v", err)
		return
	}
	r.logf("service names mapped to %s: %v", podIP, names)
	r.hosts = names
}

// selects reports whether a Service selector matches labels (an empty selector selects nothing).
func selects(selector, labels map[string]string) bool {
	if len(selector) == 0 {
		return false
	}
	for k, v := range selector {
		if l, ok := labels[k]; !ok || l != v {
			return false
		}
	}
	return true
}

// checkServicePorts refuses ports the emulator cannot serve: there is no kube-proxy, so a client
// connects to the Service port and the pod must listen on it.
func checkServicePorts(svc *corev1.Service, spec *corev1.PodSpec) error {
	for _, p := range svc.Spec.Ports {
		target := p.TargetPort
		if target.Type == intstr.String {
			port, err := containerPort(target, spec.Containers[0])
			if err != nil {
				return fmt.Errorf("port %d: %w", p.Port, err)
			}
			target = intstr.FromInt32(port)
		}
		if target.IntVal != 0 && target.IntVal != p.Port {
			return fmt.Errorf("port %d has targetPort %d: the emulator has no kube-proxy, port must equal targetPort", p.Port, target.IntVal)
		}
		if p.Protocol != "" && p.Protocol != corev1.ProtocolTCP {
			return fmt.Errorf("port %d: protocol %s not supported", p.Port, p.Protocol)
		}
	}
	return nil
}

// containerPort resolves a port number or container port name.
func containerPort(port intstr.IntOrString, c corev1.Container) (int32, error) {
	if port.Type == intstr.Int {
		return port.IntVal, nil
	}
	for _, p := range c.Ports {
		if p.Name == port.StrVal {
			return p.ContainerPort, nil
		}
	}
	return 0, fmt.Errorf("container %s has no port named %q", c.Name, port.StrVal)
}

// syncStatus writes the Deployment's status as the deployment controller would for the one pod.
func (r *deploymentRunner) syncStatus(d *appsv1.Deployment, hash string) {
	desired := ptr.Deref(d.Spec.Replicas, 1)
	st := appsv1.DeploymentStatus{ObservedGeneration: d.Generation}
	if p := r.current(); p != nil {
		st.Replicas = 1
		if p.hash == hash {
			st.UpdatedReplicas = 1
		}
		if since, ready := p.readySince(); ready {
			st.ReadyReplicas = 1
			if time.Since(since) >= time.Duration(d.Spec.MinReadySeconds)*time.Second {
				st.AvailableReplicas = 1
			}
		}
	}
	st.UnavailableReplicas = max(desired-st.AvailableReplicas, 0)
	st.Conditions = slices.Clone(d.Status.Conditions)
	rs := fmt.Sprintf("ReplicaSet %q", d.Name+"-"+hash)

	if st.AvailableReplicas > 0 || desired == 0 {
		setDeploymentCondition(&st, appsv1.DeploymentAvailable, corev1.ConditionTrue, "MinimumReplicasAvailable", "Deployment has minimum availability.")
	} else {
		setDeploymentCondition(&st, appsv1.DeploymentAvailable, corev1.ConditionFalse, "MinimumReplicasUnavailable", "Deployment does not have minimum availability.")
	}
	deadline := time.Duration(ptr.Deref(d.Spec.ProgressDeadlineSeconds, 600)) * time.Second
	switch {
	case desired == 0 || st.UpdatedReplicas == 1 && st.AvailableReplicas == 1:
		setDeploymentCondition(&st, appsv1.DeploymentProgressing, corev1.ConditionTrue, "NewReplicaSetAvailable", rs+" has successfully progressed.")
	case time.Since(r.rolloutStart) > deadline:
		setDeploymentCondition(&st, appsv1.DeploymentProgressing, corev1.ConditionFalse, "ProgressDeadlineExceeded", rs+" has timed out progressing.")
	default:
		setDeploymentCondition(&st, appsv1.DeploymentProgressing, corev1.ConditionTrue, "ReplicaSetUpdated", rs+" is progressing.")
	}
	if r.createErr != "" {
		setDeploymentCondition(&st, appsv1.DeploymentReplicaFailure, corev1.ConditionTrue, "FailedCreate", r.createErr)
	} else {
		st.Conditions = slices.DeleteFunc(st.Conditions, func(c appsv1.DeploymentCondition) bool { return c.Type == appsv1.DeploymentReplicaFailure })
	}
	if equality.Semantic.DeepEqual(st, d.Status) {
		return
	}
	updated := d.DeepCopy()
	updated.Status = st
	if err := r.k.client.Status().Patch(r.k.ctx, updated, client.MergeFrom(d)); err != nil && r.k.ctx.Err() == nil {
		r.logOnce("failed to update deployment status: %v", err)
	}
}

// setDeploymentCondition sets a condition, keeping its times unless it changed.
func setDeploymentCondition(st *appsv1.DeploymentStatus, t appsv1.DeploymentConditionType, status corev1.ConditionStatus, reason, message string) {
	now := metav1.Now()
	for i := range st.Conditions {
		c := &st.Conditions[i]
		if c.Type != t {
			continue
		}
		if c.Status != status {
			c.LastTransitionTime = now
		}
		if c.Status != status || c.Reason != reason || c.Message != message {
			c.Status, c.Reason, c.Message, c.LastUpdateTime = status, reason, message, now
		}
		return
	}
	st.Conditions = append(st.Conditions, appsv1.DeploymentCondition{Type: t, Status: status, Reason: reason, Message: message, LastUpdateTime: now, LastTransitionTime: now})
}

// validatePodSpec refuses what the emulator does not support and returns warnings for what it
// ignores.
func validatePodSpec(spec *corev1.PodSpec) (warnings []string, err error) {
	if len(spec.Containers) == 0 {
		return nil, errors.New("pod template has no containers")
	}
	for _, c := range spec.Containers[1:] {
		warnings = append(warnings, fmt.Sprintf("only the first container runs: container %q ignored", c.Name))
	}
	var errs []error
	refuse := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if len(spec.InitContainers) > 0 {
		refuse("initContainers not supported")
	}
	if len(spec.HostAliases) > 0 {
		refuse("hostAliases not supported (all pods share /etc/hosts)")
	}
	if spec.ShareProcessNamespace != nil || spec.HostPID || spec.HostIPC {
		warnings = append(warnings, "process and IPC namespaces are the host's: shareProcessNamespace, hostPID, hostIPC ignored")
	}
	if spec.SecurityContext != nil && !equality.Semantic.DeepEqual(*spec.SecurityContext, corev1.PodSecurityContext{}) {
		warnings = append(warnings, "pods run as root: pod securityContext ignored")
	}
	c := spec.Containers[0]
	if len(c.Command) == 0 {
		refuse("container %q: command is required (the emulated image has no entrypoint)", c.Name)
	}
	if c.Lifecycle != nil {
		refuse("container %q: lifecycle hooks not supported", c.Name)
	}
	if c.SecurityContext != nil {
		warnings = append(warnings, fmt.Sprintf("container %q runs as root: securityContext ignored", c.Name))
	}
	if len(c.VolumeDevices) > 0 {
		refuse("container %q: volumeDevices not supported", c.Name)
	}
	for i, p := range []*corev1.Probe{c.StartupProbe, c.LivenessProbe, c.ReadinessProbe} {
		kind := []string{"startupProbe", "livenessProbe", "readinessProbe"}[i]
		if p == nil {
			continue
		}
		switch {
		case p.HTTPGet != nil:
			if s := p.HTTPGet.Scheme; s != "" && s != corev1.URISchemeHTTP && s != corev1.URISchemeHTTPS {
				refuse("container %q: %s: scheme %s not supported", c.Name, kind, s)
			}
		case p.TCPSocket != nil:
		default:
			refuse("container %q: %s: only httpGet and tcpSocket probes are supported", c.Name, kind)
		}
	}
	for _, e := range c.Env {
		if e.ValueFrom == nil {
			continue
		}
		if e.ValueFrom.ResourceFieldRef != nil || e.ValueFrom.FileKeyRef != nil {
			refuse("container %q: env %s: only fieldRef, secretKeyRef and configMapKeyRef are supported in valueFrom", c.Name, e.Name)
		}
	}
	volumes := map[string]bool{}
	for _, v := range spec.Volumes {
		volumes[v.Name] = true
		if err := checkVolumeSource(&v.VolumeSource); err != nil {
			refuse("volume %q: %v", v.Name, err)
		}
	}
	for _, m := range c.VolumeMounts {
		switch {
		case !volumes[m.Name]:
			refuse("container %q: volumeMount %q: no such volume", c.Name, m.Name)
		case !filepath.IsAbs(m.MountPath):
			refuse("container %q: volumeMount %q: mountPath %q is not absolute", c.Name, m.Name, m.MountPath)
		case m.MountPropagation != nil && *m.MountPropagation != corev1.MountPropagationNone:
			refuse("container %q: volumeMount %q: mountPropagation %s not supported", c.Name, m.Name, *m.MountPropagation)
		case m.RecursiveReadOnly != nil && *m.RecursiveReadOnly != corev1.RecursiveReadOnlyDisabled:
			refuse("container %q: volumeMount %q: recursiveReadOnly not supported", c.Name, m.Name)
		}
	}
	return warnings, errors.Join(errs...)
}

// checkVolumeSource refuses volume types the emulator does not support.
func checkVolumeSource(v *corev1.VolumeSource) error {
	switch {
	case v.Secret != nil, v.ConfigMap != nil, v.EmptyDir != nil, v.PersistentVolumeClaim != nil, v.HostPath != nil:
		return nil
	case v.DownwardAPI != nil:
		for _, it := range v.DownwardAPI.Items {
			if it.ResourceFieldRef != nil {
				return errors.New("resourceFieldRef not supported")
			}
		}
		return nil
	case v.Projected != nil:
		for _, s := range v.Projected.Sources {
			switch {
			case s.Secret != nil, s.ConfigMap != nil, s.ServiceAccountToken != nil:
			case s.DownwardAPI != nil:
				for _, it := range s.DownwardAPI.Items {
					if it.ResourceFieldRef != nil {
						return errors.New("projected downwardAPI: resourceFieldRef not supported")
					}
				}
			default:
				return errors.New("projected: only secret, configMap, downwardAPI and serviceAccountToken sources are supported")
			}
		}
		return nil
	default:
		return errors.New("type not supported (secret, configMap, emptyDir, persistentVolumeClaim, hostPath, downwardAPI, projected are)")
	}
}

// pod is one pod: its volumes and the restarts of its container.
type pod struct {
	k         *Kubelet
	r         *deploymentRunner
	name      string
	namespace string
	uid       string
	hash      string
	meta      metav1.ObjectMeta // the template's, with pod-template-hash
	spec      corev1.PodSpec    // with the service-account volume
	container corev1.Container
	dir       string // volumes and the container's spec
	cancel    context.CancelFunc
	done      chan struct{}

	// Written by the pod's goroutine until volumesReady is set, then only by the runner's loop
	// (syncVolumes).
	volumes      map[string]*podVolume
	volumesReady atomic.Bool
	tokens       map[string]cachedToken // volume/path -> token

	mu       sync.Mutex
	pid      int
	ready    bool
	readyAt  time.Time
	restarts int
}

// podVolume is a volume set up on the host.
type podVolume struct {
	dir      string // the volume's host directory
	source   *corev1.VolumeSource
	atomic   bool // written by the atomic writer (Secret, ConfigMap, downwardAPI, projected)
	readOnly bool
	written  map[string]fileProjection
}

type cachedToken struct {
	token   string
	renewAt time.Time
}

func (p *pod) logf(format string, args ...any) {
	p.r.logf("pod %s: %s", p.name, fmt.Sprintf(format, args...))
}

func (p *pod) processID() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.pid
}

func (p *pod) readySince() (time.Time, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.readyAt, p.ready
}

func (p *pod) setReady(ready bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if ready && !p.ready {
		p.readyAt = time.Now()
	}
	p.ready = ready
}

// stop terminates the container, waits for the pod's goroutine and removes the pod's files.
func (p *pod) stop() {
	p.cancel()
	<-p.done
	_ = os.RemoveAll(p.dir)
}

// run sets the volumes up and runs the container, restarting it with backoff (restartPolicy
// Always), until ctx is done.
func (p *pod) run(ctx context.Context) {
	defer close(p.done)
	backoff := restartBackoffMin
	for {
		started := time.Now()
		err := p.runContainer(ctx)
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			p.logf("%v", err)
		}
		if time.Since(started) > restartBackoffReset {
			backoff = restartBackoffMin
		}
		p.logf("back-off %s restarting failed container", backoff)
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, restartBackoffMax)
	}
}

// runContainer starts the container process and waits until it exits, is stopped (ctx) or fails
// its liveness probe.
func (p *pod) runContainer(ctx context.Context) error {
	if !p.volumesReady.Load() {
		if err := p.setUpVolumes(ctx); err != nil {
			return fmt.Errorf("failed to set up volumes: %w", err)
		}
		p.volumesReady.Store(true)
	}
	env, err := p.containerEnv(ctx)
	if err != nil {
		return fmt.Errorf("failed to create container config: %w", err)
	}
	spec, err := p.execSpec(env)
	if err != nil {
		return fmt.Errorf("failed to create container config: %w", err)
	}
	specPath := filepath.Join(p.dir, "container.json")
	data, err := json.Marshal(spec)
	if err != nil {
		return err
	}
	if err := os.WriteFile(specPath, data, 0o600); err != nil {
		return err
	}
	exe, err := os.Executable()
	if err != nil {
		return err
	}

	cmd := exec.Command(exe)
	cmd.Args = []string{"harness-pod-" + p.name}
	cmd.Env = []string{podSpecEnv + "=" + specPath}
	cmd.Stdout, cmd.Stderr = p.r.log, p.r.log
	cmd.SysProcAttr = &syscall.SysProcAttr{Unshareflags: syscall.CLONE_NEWNS, Setpgid: true, Pdeathsig: syscall.SIGKILL}
	// Pdeathsig fires when the thread that started the process exits: hold it until then.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("failed to start container: %w", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	pid := cmd.Process.Pid
	p.mu.Lock()
	p.pid = pid
	p.mu.Unlock()
	p.logf("started container %s (pid %d): %s", p.container.Name, pid, strings.Join(spec.Argv, " "))

	probeCtx, stopProbes := context.WithCancel(ctx)
	kill := make(chan string, 1)
	go p.probe(probeCtx, time.Now(), kill)
	var waitErr error
	select {
	case waitErr = <-exited:
	case <-ctx.Done():
		waitErr = p.terminate(pid, exited)
	case reason := <-kill:
		p.logf("%s: killing container", reason)
		waitErr = p.terminate(pid, exited)
	}
	stopProbes()
	_ = syscall.Kill(-pid, syscall.SIGKILL) // what is left of the container's process group
	p.setReady(false)
	p.mu.Lock()
	p.pid = 0
	p.restarts++
	restarts := p.restarts
	p.mu.Unlock()
	p.logf("container %s exited (%d so far): %s", p.container.Name, restarts, exitDescription(waitErr))
	return nil
}

// terminate sends SIGTERM to the container's process group and SIGKILL after the grace period.
func (p *pod) terminate(pid int, exited <-chan error) error {
	grace := min(time.Duration(ptr.Deref(p.spec.TerminationGracePeriodSeconds, 30))*time.Second, terminationGraceCap)
	_ = syscall.Kill(-pid, syscall.SIGTERM)
	select {
	case err := <-exited:
		return err
	case <-time.After(grace):
	}
	p.logf("container did not exit %s after SIGTERM: killing it", grace)
	_ = syscall.Kill(-pid, syscall.SIGKILL)
	return <-exited
}

// exitDescription describes the result of cmd.Wait for the log.
func exitDescription(err error) string {
	if err == nil {
		return "exit status 0"
	}
	return err.Error()
}

// execSpec computes the container's mounts, command and working directory.
func (p *pod) execSpec(env []string) (*podExec, error) {
	c := p.container
	lookup := envMapping(env)
	argv := make([]string, 0, len(c.Command)+len(c.Args))
	for _, s := range append(slices.Clone(c.Command), c.Args...) {
		argv = append(argv, expandEnv(s, lookup))
	}
	dir := c.WorkingDir
	if dir == "" {
		dir = "/"
	}
	mounts := slices.Clone(p.k.images)
	for _, m := range c.VolumeMounts {
		v := p.volumes[m.Name]
		src := v.dir
		sub := m.SubPath
		if m.SubPathExpr != "" {
			sub = expandEnv(m.SubPathExpr, lookup)
		}
		if sub != "" {
			var err error
			if src, err = p.subPath(v, sub); err != nil {
				return nil, fmt.Errorf("volumeMount %q: %w", m.Name, err)
			}
		}
		mounts = append(mounts, podMount{Source: src, Target: filepath.Clean(m.MountPath), ReadOnly: m.ReadOnly || v.readOnly})
	}
	// Parents before what is mounted inside them.
	slices.SortStableFunc(mounts, func(a, b podMount) int {
		return strings.Count(a.Target, "/") - strings.Count(b.Target, "/")
	})
	for i, m := range mounts {
		st, err := os.Stat(m.Source)
		if err != nil {
			return nil, err
		}
		// A mount point inside an earlier mount is made in that mount's source, as the
		// container runtime makes it in the container's file system.
		host := m.Target
		for _, outer := range slices.Backward(mounts[:i]) {
			if outer.Target != m.Target && isUnder(m.Target, outer.Target) {
				host = filepath.Join(outer.Source, strings.TrimPrefix(m.Target, outer.Target))
				break
			}
		}
		if err := p.k.ensureMountPoint(host, st.IsDir()); err != nil {
			return nil, err
		}
	}
	return &podExec{Mounts: mounts, Dir: dir, Argv: argv, Env: env}, nil
}

// subPath returns the host path of sub in volume v, which must stay inside it. Like the kubelet,
// it creates a missing subPath directory in writable volumes.
func (p *pod) subPath(v *podVolume, sub string) (string, error) {
	if filepath.IsAbs(sub) || slices.Contains(strings.Split(sub, "/"), "..") {
		return "", fmt.Errorf("subPath %q must be a relative path without '..'", sub)
	}
	path := filepath.Join(v.dir, sub)
	if _, err := os.Lstat(path); errors.Is(err, os.ErrNotExist) && !v.atomic {
		if err := os.MkdirAll(path, 0o755); err != nil {
			return "", err
		}
	}
	real, err := filepath.EvalSymlinks(path)
	if err != nil {
		return "", fmt.Errorf("subPath %q: %w", sub, err)
	}
	root, err := filepath.EvalSymlinks(v.dir)
	if err != nil {
		return "", err
	}
	if !isUnder(real, root) {
		return "", fmt.Errorf("subPath %q leaves the volume", sub)
	}
	return real, nil
}

// setUpVolumes creates the pod's volumes on the host.
func (p *pod) setUpVolumes(ctx context.Context) error {
	p.volumes = map[string]*podVolume{}
	for i := range p.spec.Volumes {
		vol := &p.spec.Volumes[i]
		v := &podVolume{dir: filepath.Join(p.dir, "volumes", vol.Name), source: &vol.VolumeSource}
		switch src := &vol.VolumeSource; {
		case src.EmptyDir != nil:
			if err := os.MkdirAll(v.dir, 0o777); err != nil {
				return err
			}
		case src.PersistentVolumeClaim != nil:
			claim := src.PersistentVolumeClaim.ClaimName
			if err := p.k.client.Get(ctx, types.NamespacedName{Namespace: p.namespace, Name: claim}, &corev1.PersistentVolumeClaim{}); err != nil {
				return fmt.Errorf("volume %q: failed to get persistentvolumeclaim %s: %w", vol.Name, claim, err)
			}
			v.dir = filepath.Join(p.k.stateDir, "pvc", p.namespace, claim)
			v.readOnly = src.PersistentVolumeClaim.ReadOnly
			if err := os.MkdirAll(v.dir, 0o777); err != nil {
				return err
			}
		case src.HostPath != nil:
			v.dir = src.HostPath.Path
			if t := ptr.Deref(src.HostPath.Type, corev1.HostPathUnset); t == corev1.HostPathDirectoryOrCreate {
				if err := os.MkdirAll(v.dir, 0o755); err != nil {
					return err
				}
			} else if _, err := os.Stat(v.dir); err != nil {
				return fmt.Errorf("volume %q: hostPath: %w", vol.Name, err)
			}
		default:
			v.atomic, v.readOnly = true, true
			payload, err := p.payload(ctx, vol.Name, src)
			if err != nil {
				return fmt.Errorf("volume %q: %w", vol.Name, err)
			}
			if err := atomicWrite(v.dir, payload); err != nil {
				return fmt.Errorf("volume %q: %w", vol.Name, err)
			}
			v.written = payload
		}
		p.volumes[vol.Name] = v
	}
	return nil
}

// syncVolumes rewrites the atomic-writer volumes whose content changed (Secret and ConfigMap
// updates, token renewal).
func (p *pod) syncVolumes(ctx context.Context) {
	if !p.volumesReady.Load() {
		return
	}
	for name, v := range p.volumes {
		if !v.atomic {
			continue
		}
		payload, err := p.payload(ctx, name, v.source)
		if err != nil {
			if ctx.Err() == nil {
				p.r.logOnce("pod %s: volume %q not updated: %v", p.name, name, err)
			}
			continue
		}
		if maps.EqualFunc(payload, v.written, fileProjection.equal) {
			continue
		}
		if err := atomicWrite(v.dir, payload); err != nil {
			p.r.logOnce("pod %s: volume %q not updated: %v", p.name, name, err)
			continue
		}
		v.written = payload
		p.logf("volume %q updated", name)
	}
}

// fileProjection is a file of an atomic-writer volume.
type fileProjection struct {
	Data []byte
	Mode os.FileMode
}

func (f fileProjection) equal(o fileProjection) bool {
	return f.Mode == o.Mode && bytes.Equal(f.Data, o.Data)
}

// payload computes the files of a Secret, ConfigMap, downwardAPI or projected volume.
func (p *pod) payload(ctx context.Context, volume string, src *corev1.VolumeSource) (map[string]fileProjection, error) {
	out := map[string]fileProjection{}
	switch {
	case src.Secret != nil:
		s := src.Secret
		err := p.objectFiles(ctx, out, "secret", s.SecretName, s.Items, ptr.Deref(s.Optional, false), mode(s.DefaultMode))
		return out, err
	case src.ConfigMap != nil:
		c := src.ConfigMap
		err := p.objectFiles(ctx, out, "configmap", c.Name, c.Items, ptr.Deref(c.Optional, false), mode(c.DefaultMode))
		return out, err
	case src.DownwardAPI != nil:
		return out, p.downwardFiles(out, src.DownwardAPI.Items, mode(src.DownwardAPI.DefaultMode))
	case src.Projected != nil:
		def := mode(src.Projected.DefaultMode)
		for _, s := range src.Projected.Sources {
			var err error
			switch {
			case s.Secret != nil:
				err = p.objectFiles(ctx, out, "secret", s.Secret.Name, s.Secret.Items, ptr.Deref(s.Secret.Optional, false), def)
			case s.ConfigMap != nil:
				err = p.objectFiles(ctx, out, "configmap", s.ConfigMap.Name, s.ConfigMap.Items, ptr.Deref(s.ConfigMap.Optional, false), def)
			case s.DownwardAPI != nil:
				err = p.downwardFiles(out, s.DownwardAPI.Items, def)
			case s.ServiceAccountToken != nil:
				var token string
				if token, err = p.token(ctx, volume, s.ServiceAccountToken); err == nil {
					out[s.ServiceAccountToken.Path] = fileProjection{Data: []byte(token), Mode: def}
				}
			}
			if err != nil {
				return nil, err
			}
		}
		return out, nil
	}
	return nil, errors.New("not an atomic-writer volume")
}

func mode(m *int32) os.FileMode {
	return os.FileMode(ptr.Deref(m, defaultVolumeMode))
}

// objectFiles adds the keys of a Secret or ConfigMap (all, or items) to out.
func (p *pod) objectFiles(ctx context.Context, out map[string]fileProjection, kind, name string, items []corev1.KeyToPath, optional bool, def os.FileMode) error {
	data := map[string][]byte{}
	key := types.NamespacedName{Namespace: p.namespace, Name: name}
	var err error
	if kind == "secret" {
		var s corev1.Secret
		if err = p.k.client.Get(ctx, key, &s); err == nil {
			data = s.Data
		}
	} else {
		var cm corev1.ConfigMap
		if err = p.k.client.Get(ctx, key, &cm); err == nil {
			for k, v := range cm.Data {
				data[k] = []byte(v)
			}
			maps.Copy(data, cm.BinaryData)
		}
	}
	if apierrors.IsNotFound(err) && optional {
		return nil
	}
	if err != nil {
		return fmt.Errorf("failed to get %s %s: %w", kind, key, err)
	}
	if len(items) == 0 {
		for k, v := range data {
			out[k] = fileProjection{Data: v, Mode: def}
		}
		return nil
	}
	for _, it := range items {
		v, ok := data[it.Key]
		if !ok {
			if optional {
				continue
			}
			return fmt.Errorf("%s %s has no key %q", kind, key, it.Key)
		}
		m := def
		if it.Mode != nil {
			m = os.FileMode(*it.Mode)
		}
		out[it.Path] = fileProjection{Data: v, Mode: m}
	}
	return nil
}

// downwardFiles adds downward API files to out.
func (p *pod) downwardFiles(out map[string]fileProjection, items []corev1.DownwardAPIVolumeFile, def os.FileMode) error {
	for _, it := range items {
		if it.FieldRef == nil {
			return fmt.Errorf("downwardAPI %s: only fieldRef is supported", it.Path)
		}
		v, err := p.fieldValue(it.FieldRef.FieldPath, true)
		if err != nil {
			return err
		}
		m := def
		if it.Mode != nil {
			m = os.FileMode(*it.Mode)
		}
		out[it.Path] = fileProjection{Data: []byte(v), Mode: m}
	}
	return nil
}

// token returns a token of the pod's ServiceAccount from the TokenRequest API, renewed like the
// kubelet does after 80% of its lifetime. The token is not bound to the pod (the pod is not an
// API object).
func (p *pod) token(ctx context.Context, volume string, s *corev1.ServiceAccountTokenProjection) (string, error) {
	key := volume + "/" + s.Path
	if t, ok := p.tokens[key]; ok && time.Now().Before(t.renewAt) {
		return t.token, nil
	}
	seconds := ptr.Deref(s.ExpirationSeconds, defaultTokenSeconds)
	tr := &authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: &seconds}}
	if s.Audience != "" {
		tr.Spec.Audiences = []string{s.Audience}
	}
	sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: p.namespace, Name: p.spec.ServiceAccountName}}
	if err := p.k.client.SubResource("token").Create(ctx, sa, tr); err != nil {
		return "", fmt.Errorf("failed to request token for serviceaccount %s/%s: %w", p.namespace, sa.Name, err)
	}
	lifetime := time.Until(tr.Status.ExpirationTimestamp.Time)
	p.tokens[key] = cachedToken{token: tr.Status.Token, renewAt: time.Now().Add(lifetime * 8 / 10)}
	return tr.Status.Token, nil
}

// fieldValue resolves a downward API field path; whole label and annotation maps only in volumes.
func (p *pod) fieldValue(path string, volume bool) (string, error) {
	switch path {
	case "metadata.name":
		return p.name, nil
	case "metadata.namespace":
		return p.namespace, nil
	case "metadata.uid":
		return p.uid, nil
	case "spec.nodeName":
		return kubeletNodeName, nil
	case "spec.serviceAccountName":
		return p.spec.ServiceAccountName, nil
	case "status.podIP", "status.podIPs", "status.hostIP", "status.hostIPs":
		return podIP, nil
	case "metadata.labels", "metadata.annotations":
		if volume {
			m := p.meta.Labels
			if path == "metadata.annotations" {
				m = p.meta.Annotations
			}
			var b strings.Builder
			for _, k := range slices.Sorted(maps.Keys(m)) {
				fmt.Fprintf(&b, "%s=%s\n", k, strconv.Quote(m[k]))
			}
			return strings.TrimSuffix(b.String(), "\n"), nil
		}
	}
	for prefix, m := range map[string]map[string]string{"metadata.labels['": p.meta.Labels, "metadata.annotations['": p.meta.Annotations} {
		if rest, ok := strings.CutPrefix(path, prefix); ok {
			if k, ok := strings.CutSuffix(rest, "']"); ok {
				return m[k], nil
			}
		}
	}
	return "", fmt.Errorf("fieldRef %q not supported", path)
}

// containerEnv computes the container's environment as the kubelet and the runtime do: the
// image's (PATH and HOME of the test process, HOSTNAME), the Service links, envFrom and env (with
// $(VAR) expansion), later definitions replacing earlier ones.
func (p *pod) containerEnv(ctx context.Context) ([]string, error) {
	c := p.container
	var names []string
	values := map[string]string{}
	set := func(name, value string) {
		if _, ok := values[name]; !ok {
			names = append(names, name)
		}
		values[name] = value
	}
	for _, e := range c.EnvFrom {
		data, err := p.envSource(ctx, e)
		if err != nil {
			return nil, err
		}
		for _, k := range slices.Sorted(maps.Keys(data)) {
			if strings.Contains(e.Prefix+k, "=") {
				p.r.logOnce("pod %s: envFrom: key %q skipped (not a valid variable name)", p.name, k)
				continue
			}
			set(e.Prefix+k, data[k])
		}
	}
	services, err := p.serviceEnv(ctx)
	if err != nil {
		return nil, err
	}
	lookup := func(name string) (string, bool) {
		if v, ok := values[name]; ok {
			return v, true
		}
		v, ok := services[name]
		return v, ok
	}
	for _, e := range c.Env {
		if e.ValueFrom == nil {
			set(e.Name, expandEnv(e.Value, lookup))
			continue
		}
		v, ok, err := p.envValueFrom(ctx, e.ValueFrom)
		if err != nil {
			return nil, fmt.Errorf("env %s: %w", e.Name, err)
		}
		if ok {
			set(e.Name, v)
		}
	}

	env := []string{"HOSTNAME=" + p.name}
	for _, k := range []string{"PATH", "HOME"} {
		if _, ok := values[k]; !ok {
			env = append(env, k+"="+os.Getenv(k))
		}
	}
	for _, k := range slices.Sorted(maps.Keys(services)) {
		if _, ok := values[k]; !ok {
			env = append(env, k+"="+services[k])
		}
	}
	for _, k := range names {
		env = append(env, k+"="+values[k])
	}
	return env, nil
}

// envSource reads the data of an envFrom source (nil when optional and missing).
func (p *pod) envSource(ctx context.Context, e corev1.EnvFromSource) (map[string]string, error) {
	out := map[string]string{}
	switch {
	case e.SecretRef != nil:
		var s corev1.Secret
		err := p.k.client.Get(ctx, types.NamespacedName{Namespace: p.namespace, Name: e.SecretRef.Name}, &s)
		if apierrors.IsNotFound(err) && ptr.Deref(e.SecretRef.Optional, false) {
			return out, nil
		}
		if err != nil {
			return nil, fmt.Errorf("envFrom: failed to get secret %s: %w", e.SecretRef.Name, err)
		}
		for k, v := range s.Data {
			out[k] = string(v)
		}
	case e.ConfigMapRef != nil:
		var cm corev1.ConfigMap
		err := p.k.client.Get(ctx, types.NamespacedName{Namespace: p.namespace, Name: e.ConfigMapRef.Name}, &cm)
		if apierrors.IsNotFound(err) && ptr.Deref(e.ConfigMapRef.Optional, false) {
			return out, nil
		}
		if err != nil {
			return nil, fmt.Errorf("envFrom: failed to get configmap %s: %w", e.ConfigMapRef.Name, err)
		}
		maps.Copy(out, cm.Data)
	}
	return out, nil
}

// envValueFrom resolves an env valueFrom; ok is false for a missing optional key.
func (p *pod) envValueFrom(ctx context.Context, from *corev1.EnvVarSource) (value string, ok bool, err error) {
	switch {
	case from.FieldRef != nil:
		v, err := p.fieldValue(from.FieldRef.FieldPath, false)
		return v, err == nil, err
	case from.SecretKeyRef != nil:
		ref := from.SecretKeyRef
		var s corev1.Secret
		err := p.k.client.Get(ctx, types.NamespacedName{Namespace: p.namespace, Name: ref.Name}, &s)
		optional := ptr.Deref(ref.Optional, false)
		if apierrors.IsNotFound(err) && optional {
			return "", false, nil
		}
		if err != nil {
			return "", false, fmt.Errorf("failed to get secret %s: %w", ref.Name, err)
		}
		v, found := s.Data[ref.Key]
		if !found && !optional {
			return "", false, fmt.Errorf("secret %s has no key %q", ref.Name, ref.Key)
		}
		return string(v), found, nil
	case from.ConfigMapKeyRef != nil:
		ref := from.ConfigMapKeyRef
		var cm corev1.ConfigMap
		err := p.k.client.Get(ctx, types.NamespacedName{Namespace: p.namespace, Name: ref.Name}, &cm)
		optional := ptr.Deref(ref.Optional, false)
		if apierrors.IsNotFound(err) && optional {
			return "", false, nil
		}
		if err != nil {
			return "", false, fmt.Errorf("failed to get configmap %s: %w", ref.Name, err)
		}
		v, found := cm.Data[ref.Key]
		if !found && !optional {
			return "", false, fmt.Errorf("configmap %s has no key %q", ref.Name, ref.Key)
		}
		return v, found, nil
	}
	return "", false, errors.New("valueFrom not supported")
}

// serviceEnv returns the Service environment variables the kubelet injects: KUBERNETES_* for the
// API server (envtest's address) and, unless enableServiceLinks is false, the links of the
// namespace's Services at the time the container starts (with host 127.0.0.1).
func (p *pod) serviceEnv(ctx context.Context) (map[string]string, error) {
	out := map[string]string{}
	addServiceLinks(out, "kubernetes", p.k.apiHost, []corev1.ServicePort{{Name: "https", Port: int32(p.k.apiPort), Protocol: corev1.ProtocolTCP}})
	if !ptr.Deref(p.spec.EnableServiceLinks, true) {
		return out, nil
	}
	var svcs corev1.ServiceList
	if err := p.k.client.List(ctx, &svcs, client.InNamespace(p.namespace)); err != nil {
		return nil, fmt.Errorf("failed to list services: %w", err)
	}
	for _, s := range svcs.Items {
		if s.Spec.ClusterIP == "" || s.Spec.ClusterIP == corev1.ClusterIPNone || s.Name == "kubernetes" {
			continue
		}
		addServiceLinks(out, s.Name, podIP, s.Spec.Ports)
	}
	return out, nil
}

// addServiceLinks adds the Docker-link style variables of one Service.
func addServiceLinks(out map[string]string, service, host string, ports []corev1.ServicePort) {
	if len(ports) == 0 {
		return
	}
	prefix := strings.ToUpper(strings.ReplaceAll(service, "-", "_"))
	out[prefix+"_SERVICE_HOST"] = host
	out[prefix+"_SERVICE_PORT"] = strconv.Itoa(int(ports[0].Port))
	for i, sp := range ports {
		proto := strings.ToLower(string(sp.Protocol))
		if proto == "" {
			proto = "tcp"
		}
		port := strconv.Itoa(int(sp.Port))
		addr := proto + "://" + net.JoinHostPort(host, port)
		if sp.Name != "" {
			out[prefix+"_SERVICE_PORT_"+strings.ToUpper(strings.ReplaceAll(sp.Name, "-", "_"))] = port
		}
		if i == 0 {
			out[prefix+"_PORT"] = addr
		}
		link := prefix + "_PORT_" + port + "_" + strings.ToUpper(proto)
		out[link] = addr
		out[link+"_PROTO"] = proto
		out[link+"_PORT"] = port
		out[link+"_ADDR"] = host
	}
}

// envMapping looks variables up in a NAME=value list (the last definition wins).
func envMapping(env []string) func(string) (string, bool) {
	m := map[string]string{}
	for _, kv := range env {
		k, v, _ := strings.Cut(kv, "=")
		m[k] = v
	}
	return func(name string) (string, bool) {
		v, ok := m[name]
		return v, ok
	}
}

// expandEnv expands $(VAR) references as Kubernetes does in env values, command and args:
// $(VAR) is replaced when lookup knows VAR and kept literally otherwise, $$ is an escaped $, and
// any other $ is literal.
func expandEnv(s string, lookup func(string) (string, bool)) string {
	if !strings.Contains(s, "$") {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '$' || i+1 == len(s) {
			b.WriteByte(s[i])
			continue
		}
		switch s[i+1] {
		case '$':
			b.WriteByte('$')
			i++
		case '(':
			end := strings.IndexByte(s[i+2:], ')')
			if end < 0 {
				b.WriteString(s[i:]) // unterminated: literal
				return b.String()
			}
			name := s[i+2 : i+2+end]
			if v, ok := lookup(name); ok && name != "" {
				b.WriteString(v)
			} else {
				b.WriteString("$(" + name + ")")
			}
			i += 2 + end
		default:
			b.WriteByte('$')
		}
	}
	return b.String()
}

// probe runs the container's startup, liveness and readiness probes until ctx is done. It sends
// on kill when a startup or liveness probe failed failureThreshold times in a row. Without a
// readiness probe the container is ready once started (startup probe passed).
func (p *pod) probe(ctx context.Context, started time.Time, kill chan<- string) {
	c := p.container
	startupDone := make(chan struct{})
	run := func(kind string, pr *corev1.Probe, onResult func(ok bool, successes, failures int32) bool) {
		delay := min(time.Duration(pr.InitialDelaySeconds)*time.Second, probeCap) - time.Since(started)
		period := min(time.Duration(max(pr.PeriodSeconds, 1))*time.Second, probeCap)
		timer := time.NewTimer(max(delay, 0))
		defer timer.Stop()
		var successes, failures int32
		for {
			select {
			case <-ctx.Done():
				return
			case <-timer.C:
			}
			err := p.check(ctx, pr)
			if ctx.Err() != nil {
				return
			}
			if err == nil {
				successes, failures = successes+1, 0
			} else {
				successes, failures = 0, failures+1
				p.logf("%s probe failed: %v", kind, err)
			}
			if !onResult(err == nil, successes, failures) {
				return
			}
			timer.Reset(period)
		}
	}
	threshold := func(pr *corev1.Probe) int32 { return max(pr.FailureThreshold, 1) }
	sendKill := func(reason string) {
		select {
		case kill <- reason:
		default:
		}
	}

	if pr := c.StartupProbe; pr != nil {
		go run("startup", pr, func(ok bool, _, failures int32) bool {
			if ok {
				close(startupDone)
				return false
			}
			if failures >= threshold(pr) {
				sendKill("startup probe failed")
				return false
			}
			return true
		})
	} else {
		close(startupDone)
	}
	select {
	case <-ctx.Done():
		return
	case <-startupDone:
	}
	if pr := c.LivenessProbe; pr != nil {
		go run("liveness", pr, func(ok bool, _, failures int32) bool {
			if !ok && failures >= threshold(pr) {
				sendKill("liveness probe failed")
				return false
			}
			return true
		})
	}
	pr := c.ReadinessProbe
	if pr == nil {
		p.setReady(true)
		return
	}
	run("readiness", pr, func(ok bool, successes, failures int32) bool {
		if ok && successes >= max(pr.SuccessThreshold, 1) {
			p.setReady(true)
		} else if !ok && failures >= threshold(pr) {
			p.setReady(false)
		}
		return true
	})
}

// check performs one probe against the pod (127.0.0.1).
func (p *pod) check(ctx context.Context, pr *corev1.Probe) error {
	timeout := time.Duration(max(pr.TimeoutSeconds, 1)) * time.Second
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var (
		port intstr.IntOrString
		host string
	)
	switch {
	case pr.HTTPGet != nil:
		port, host = pr.HTTPGet.Port, pr.HTTPGet.Host
	case pr.TCPSocket != nil:
		port, host = pr.TCPSocket.Port, pr.TCPSocket.Host
	}
	n, err := containerPort(port, p.container)
	if err != nil {
		return err
	}
	if host == "" {
		host = podIP
	}
	addr := net.JoinHostPort(host, strconv.Itoa(int(n)))
	if pr.TCPSocket != nil {
		conn, err := (&net.Dialer{}).DialContext(ctx, "tcp", addr)
		if err != nil {
			return err
		}
		return conn.Close()
	}
	h := pr.HTTPGet
	scheme := strings.ToLower(string(h.Scheme))
	if scheme == "" {
		scheme = "http"
	}
	path := h.Path
	if !strings.HasPrefix(path, "/") {
		path = "/" + path
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, scheme+"://"+addr+path, nil)
	if err != nil {
		return err
	}
	req.Header.Set("User-Agent", "kube-probe/harness")
	for _, hd := range h.HTTPHeaders {
		if strings.EqualFold(hd.Name, "Host") {
			req.Host = hd.Value
		} else {
			req.Header.Add(hd.Name, hd.Value)
		}
	}
	// Like the kubelet: no certificate verification, no proxy, redirects count as success.
	httpClient := &http.Client{
		Transport: &http.Transport{
			Proxy:             nil,
			TLSClientConfig:   &tls.Config{InsecureSkipVerify: true}, //nolint:gosec // as the kubelet probes
			DisableKeepAlives: true,
		},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	resp, err := httpClient.Do(req)
	if err != nil {
		return err
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 10<<10))
	resp.Body.Close()
	if resp.StatusCode < http.StatusOK || resp.StatusCode >= http.StatusBadRequest {
		return fmt.Errorf("HTTP probe failed with statuscode: %d", resp.StatusCode)
	}
	return nil
}

// atomicWrite writes payload into dir as the kubelet's atomic writer does: the files go into a
// new timestamped directory "..<time>.<random>", the symlink "..data" is switched to it by a
// rename, each top-level name is a symlink "<name> -> ..data/<name>" (created once, removed when
// no longer projected), and the previous timestamped directory is removed. A process watching dir
// sees the rename as a Create of "..data"; the per-name symlinks do not change.
func atomicWrite(dir string, payload map[string]fileProjection) error {
	tops := map[string]bool{}
	for path := range payload {
		if path == "" || filepath.IsAbs(path) || strings.HasPrefix(path, "..") || slices.Contains(strings.Split(path, "/"), "..") {
			return fmt.Errorf("invalid file path %q", path)
		}
		top, _, _ := strings.Cut(path, "/")
		tops[top] = true
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	oldTS, _ := os.Readlink(filepath.Join(dir, atomicDataDir))
	ts, err := os.MkdirTemp(dir, time.Now().UTC().Format("..2006_01_02_15_04_05."))
	if err != nil {
		return err
	}
	if err := os.Chmod(ts, 0o755); err != nil {
		return err
	}
	for path, f := range payload {
		full := filepath.Join(ts, path)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(full, f.Data, f.Mode); err != nil {
			return err
		}
		if err := os.Chmod(full, f.Mode); err != nil { // not subject to the umask
			return err
		}
	}
	tmp := filepath.Join(dir, atomicDataDirTmp)
	_ = os.Remove(tmp)
	if err := os.Symlink(filepath.Base(ts), tmp); err != nil {
		return err
	}
	if err := os.Rename(tmp, filepath.Join(dir, atomicDataDir)); err != nil {
		return err
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	for _, e := range entries {
		if !strings.HasPrefix(e.Name(), "..") && !tops[e.Name()] && e.Type()&os.ModeSymlink != 0 {
			if err := os.Remove(filepath.Join(dir, e.Name())); err != nil {
				return err
			}
		}
	}
	for top := range tops {
		link := filepath.Join(dir, top)
		if _, err := os.Lstat(link); errors.Is(err, os.ErrNotExist) {
			if err := os.Symlink(filepath.Join(atomicDataDir, top), link); err != nil {
				return err
			}
		}
	}
	if oldTS != "" && oldTS != filepath.Base(ts) {
		return os.RemoveAll(filepath.Join(dir, oldTS))
	}
	return nil
}
