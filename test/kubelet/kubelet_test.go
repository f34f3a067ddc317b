package kubelet

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
	"unsafe"

	. "github.com/onsi/gomega"
	"golang.org/x/crypto/bcrypt"
	appsv1 "k8s.io/api/apps/v1"
	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	"dexterity.dev/dexterity/test/harness"
)

const (
	kubeletTimeout  = 30 * time.Second
	kubeletPoll     = 100 * time.Millisecond
	kubeletNS       = "kubelet"
	kubeletClientID = "kubelet-client"
)

func TestMain(m *testing.M) {
	if code, exited := EnterMountNamespace(); exited {
		os.Exit(code)
	}
	os.Exit(m.Run())
}

// TestKubelet runs a Dex Deployment through the kubelet emulator: env, args, Secret, PVC and
// service-account volumes, probes, status, Service names, Secret updates, rollouts, RestartPod
// and Stop.
func TestKubelet(t *testing.T) {
	g := NewWithT(t)
	g.SetDefaultEventuallyTimeout(kubeletTimeout)
	g.SetDefaultEventuallyPollingInterval(kubeletPoll)
	ctx := context.Background()

	env, err := harness.StartEnv(harness.EnvOptions{})
	g.Expect(err).NotTo(HaveOccurred())
	t.Cleanup(func() { _ = env.Stop() })
	c := env.Client
	root, err := harness.RepoRoot()
	g.Expect(err).NotTo(HaveOccurred())

	// The mount points the pod needs that the host lacks are created (and left empty by Stop:
	// another test process's pods may have them mounted).
	mountPoints := []string{"/etc/dex/cfg", serviceAccountMountPath, "/var/lib/dex"}
	existed := map[string]bool{}
	for _, p := range mountPoints {
		_, err := os.Stat(p)
		existed[p] = err == nil
	}

	k, err := Start(ctx, Options{
		Config: env.Config,
		Files:  map[string]string{"/usr/local/bin/dex": filepath.Join(root, "bin", "dex")},
		LogDir: t.TempDir(),
	})
	g.Expect(err).NotTo(HaveOccurred())
	stopped := false
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("kubelet log:\n%s", k.Logs(kubeletNS, "dex"))
		}
		if !stopped {
			k.Stop()
		}
	})

	webPort, err := harness.FreePort()
	g.Expect(err).NotTo(HaveOccurred())
	telemetryPort, err := harness.FreePort()
	g.Expect(err).NotTo(HaveOccurred())
	issuer := fmt.Sprintf("http://dex.%s.svc:%d/dex", kubeletNS, webPort)
	const clientSecret = "from-a-secret"

	g.Expect(c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: kubeletNS}})).To(Succeed())
	// A root CA ConfigMap left by an earlier API server (an etcd kept across runs): the pod must
	// still get this one's CA.
	g.Expect(c.Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: kubeletNS, Name: rootCAConfigMap},
		Data: map[string]string{"ca.crt": "stale"}})).To(Succeed())
	objs := []client.Object{
		&corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: kubeletNS, Name: "dex"}},
		&corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{Namespace: kubeletNS, Name: "dex-config"},
			Data:       map[string][]byte{"config.yaml": kubeletDexConfig(t, issuer, webPort, telemetryPort), "extra.txt": []byte("v1")},
		},
		&corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{Namespace: kubeletNS, Name: "dex-client"},
			Data:       map[string][]byte{"secret": []byte(clientSecret)},
		},
		&corev1.PersistentVolumeClaim{
			ObjectMeta: metav1.ObjectMeta{Namespace: kubeletNS, Name: "dex-data"},
			Spec: corev1.PersistentVolumeClaimSpec{
				AccessModes: []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
				Resources:   corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("1Gi")}},
			},
		},
		kubeletDexDeployment(webPort, telemetryPort),
	}
	for _, o := range objs {
		g.Expect(c.Create(ctx, o)).To(Succeed())
	}
	g.Expect(k.Run(kubeletNS, "dex")).To(Succeed())

	// Services created after Run: the matching one is mapped, the one with targetPort != port
	// is refused.
	g.Expect(c.Create(ctx, kubeletService("dex", webPort, intstr.FromString("web")))).To(Succeed())
	g.Expect(c.Create(ctx, kubeletService("dex-remapped", 80, intstr.FromInt(webPort)))).To(Succeed())

	dep := &appsv1.Deployment{}
	waitAvailable := func() {
		t.Helper()
		g.Eventually(func(g Gomega) {
			g.Expect(c.Get(ctx, client.ObjectKey{Namespace: kubeletNS, Name: "dex"}, dep)).To(Succeed())
			g.Expect(dep.Status.ObservedGeneration).To(Equal(dep.Generation))
			g.Expect(dep.Status.UpdatedReplicas).To(Equal(int32(1)))
			g.Expect(dep.Status.ReadyReplicas).To(Equal(int32(1)))
			g.Expect(dep.Status.AvailableReplicas).To(Equal(int32(1)))
			g.Expect(deploymentCondition(dep, appsv1.DeploymentAvailable)).To(Equal(corev1.ConditionTrue))
			g.Expect(deploymentCondition(dep, appsv1.DeploymentProgressing)).To(Equal(corev1.ConditionTrue))
		}).Should(Succeed(), func() string { return k.Logs(kubeletNS, "dex") })
	}
	waitDiscovery := func() {
		t.Helper()
		g.Eventually(func(g Gomega) {
			doc, err := getJSON(issuer + "/.well-known/openid-configuration")
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(doc).To(HaveKeyWithValue("issuer", issuer))
		}).Should(Succeed(), func() string { return k.Logs(kubeletNS, "dex") })
	}
	waitAvailable()
	waitDiscovery()
	g.Eventually(func() string { return k.Logs(kubeletNS, "dex") }).Should(ContainSubstring("service dex-remapped (resourceVersion"))

	// The client secret reached Dex through a secretKeyRef env var (secretEnv in the config).
	_, err = harness.PasswordGrant(issuer, kubeletClientID, clientSecret, harness.AdminUser.Email, harness.AdminUser.Password)
	g.Expect(err).NotTo(HaveOccurred())

	pid := k.PodPID(kubeletNS, "dex")
	g.Expect(pid).NotTo(BeZero())
	podEnv := processEnv(t, pid)
	g.Expect(podEnv).To(HaveKeyWithValue("ESCAPED", "$(CONFIG_DIR)"))
	g.Expect(podEnv).To(HaveKeyWithValue("UNKNOWN", "$(NOT_DEFINED)/x"))
	g.Expect(podEnv).To(HaveKeyWithValue("POD_NAMESPACE", kubeletNS))
	g.Expect(podEnv).To(HaveKeyWithValue("SA", "dex"))
	g.Expect(podEnv).To(HaveKeyWithValue("DEX_SERVICE_PORT_WEB", strconv.Itoa(webPort)))
	g.Expect(podEnv["POD_NAME"]).To(HavePrefix("dex-"))
	g.Expect(podEnv).NotTo(HaveKey("KUBEBUILDER_ASSETS"))
	cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(strings.Split(strings.TrimSuffix(string(cmdline), "\x00"), "\x00")).To(Equal([]string{"/usr/local/bin/dex", "serve", "/etc/dex/cfg/config.yaml"}))

	// The automounted token works as an in-cluster client would use it.
	podRoot := func(pid int, path string) string {
		t.Helper()
		g.Expect(k.PodPID(kubeletNS, "dex")).To(Equal(pid))
		p, err := k.PodPath(kubeletNS, "dex", path)
		g.Expect(err).NotTo(HaveOccurred())
		return p
	}
	token, err := os.ReadFile(podRoot(pid, serviceAccountMountPath+"/token"))
	g.Expect(err).NotTo(HaveOccurred())
	ca, err := os.ReadFile(podRoot(pid, serviceAccountMountPath+"/ca.crt"))
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(os.ReadFile(podRoot(pid, serviceAccountMountPath+"/namespace"))).To(BeEquivalentTo(kubeletNS))
	inCluster, err := client.New(&rest.Config{
		Host:            "https://" + podEnv["KUBERNETES_SERVICE_HOST"] + ":" + podEnv["KUBERNETES_SERVICE_PORT"],
		BearerToken:     string(token),
		TLSClientConfig: rest.TLSClientConfig{CAData: ca},
	}, client.Options{Scheme: clientgoscheme.Scheme})
	g.Expect(err).NotTo(HaveOccurred())
	review := &authenticationv1.SelfSubjectReview{}
	g.Expect(inCluster.Create(ctx, review)).To(Succeed())
	g.Expect(review.Status.UserInfo.Username).To(Equal("system:serviceaccount:" + kubeletNS + ":dex"))

	// Secret volumes are read-only; the PVC is writable.
	g.Expect(os.WriteFile(podRoot(pid, "/etc/dex/cfg/new"), nil, 0o600)).To(MatchError(syscall.EROFS))
	g.Expect(os.WriteFile(podRoot(pid, "/var/lib/dex/marker"), []byte("kept"), 0o600)).To(Succeed())

	// A Secret update reaches the running pod through the atomic writer: a watcher of the
	// directory (Dex's TLS reloader watches the certificate's) sees "..data" created, and
	// nothing else.
	watch := watchDir(t, podRoot(pid, "/etc/dex/cfg"))
	oldData, err := os.Readlink(podRoot(pid, "/etc/dex/cfg/..data"))
	g.Expect(err).NotTo(HaveOccurred())
	secret := &corev1.Secret{}
	g.Expect(c.Get(ctx, client.ObjectKey{Namespace: kubeletNS, Name: "dex-config"}, secret)).To(Succeed())
	secret.Data["extra.txt"] = []byte("v2")
	g.Expect(c.Update(ctx, secret)).To(Succeed())
	g.Eventually(func() ([]byte, error) { return os.ReadFile(podRoot(pid, "/etc/dex/cfg/extra.txt")) }).Should(BeEquivalentTo("v2"))
	g.Expect(os.Readlink(podRoot(pid, "/etc/dex/cfg/..data"))).NotTo(Equal(oldData))
	g.Expect(os.Readlink(podRoot(pid, "/etc/dex/cfg/extra.txt"))).To(Equal("..data/extra.txt"))
	g.Eventually(watch).Should(ContainElement("IN_MOVED_TO ..data"))
	g.Expect(watch()).NotTo(ContainElement(HaveSuffix(" extra.txt")))
	g.Expect(k.PodPID(kubeletNS, "dex")).To(Equal(pid), "a Secret update does not restart the pod")

	// A template change rolls out a new pod; the old one is gone.
	g.Expect(c.Get(ctx, client.ObjectKey{Namespace: kubeletNS, Name: "dex"}, dep)).To(Succeed())
	dep.Spec.Template.Annotations = map[string]string{"rollout": "2"}
	g.Expect(c.Update(ctx, dep)).To(Succeed())
	g.Eventually(func() int { return k.PodStarts(kubeletNS, "dex") }).Should(Equal(2))
	g.Expect(processGone(pid)).To(BeTrue())
	waitAvailable()
	waitDiscovery()
	pid2 := k.PodPID(kubeletNS, "dex")
	g.Expect(pid2).NotTo(BeZero())
	g.Expect(pid2).NotTo(Equal(pid))
	g.Expect(os.ReadFile(podRoot(pid2, "/var/lib/dex/marker"))).To(BeEquivalentTo("kept"), "the PVC survives rollouts")

	// RestartPod: a fresh pod with a new token.
	g.Expect(k.RestartPod(kubeletNS, "dex")).To(Succeed())
	g.Expect(k.PodStarts(kubeletNS, "dex")).To(Equal(3))
	g.Expect(processGone(pid2)).To(BeTrue())
	waitAvailable()
	waitDiscovery()
	pid3 := k.PodPID(kubeletNS, "dex")
	g.Expect(os.ReadFile(podRoot(pid3, serviceAccountMountPath+"/token"))).NotTo(Equal(token))
	g.Expect(os.ReadFile(podRoot(pid3, "/var/lib/dex/marker"))).To(BeEquivalentTo("kept"))

	// Stop: no pod left, nothing of the pod on the host's mount points, the host names gone.
	k.Stop()
	stopped = true
	g.Expect(processGone(pid3)).To(BeTrue())
	for _, p := range mountPoints {
		entries, err := os.ReadDir(p)
		if existed[p] {
			continue // the host's own content
		}
		g.Expect(err).NotTo(HaveOccurred(), "mount point %s", p)
		g.Expect(entries).To(BeEmpty(), "nothing of the pod is visible at %s on the host", p)
	}
	hosts, err := os.ReadFile(etcHosts)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(string(hosts)).NotTo(ContainSubstring("dex." + kubeletNS))
}

// kubeletDexConfig is a Dex configuration with memory storage, the admin static user and a
// client whose secret comes from $CLIENT_SECRET.
func kubeletDexConfig(t *testing.T, issuer string, webPort, telemetryPort int) []byte {
	t.Helper()
	hash, err := bcrypt.GenerateFromPassword([]byte(harness.AdminUser.Password), bcrypt.DefaultCost)
	if err != nil {
		t.Fatal(err)
	}
	data, err := yaml.Marshal(map[string]any{
		"issuer":           issuer,
		"storage":          map[string]any{"type": harness.StorageMemory},
		"web":              map[string]any{"http": fmt.Sprintf("0.0.0.0:%d", webPort)},
		"telemetry":        map[string]any{"http": fmt.Sprintf("0.0.0.0:%d", telemetryPort)},
		"oauth2":           map[string]any{"passwordConnector": "local", "skipApprovalScreen": true},
		"enablePasswordDB": true,
		"staticPasswords": []map[string]any{{
			"email": harness.AdminUser.Email, "username": harness.AdminUser.Username, "userID": harness.AdminUser.UserID, "hash": string(hash),
		}},
		"staticClients": []map[string]any{{
			"id": kubeletClientID, "name": "Kubelet test", "secretEnv": "CLIENT_SECRET", "redirectURIs": []string{harness.HarnessRedirectURI},
		}},
	})
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// kubeletDexDeployment runs Dex with its config from Secret dex-config and a PVC.
func kubeletDexDeployment(webPort, telemetryPort int) *appsv1.Deployment {
	labels := map[string]string{"app": "dex"}
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Namespace: kubeletNS, Name: "dex"},
		Spec: appsv1.DeploymentSpec{
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{
					ServiceAccountName: "dex",
					Containers: []corev1.Container{{
						Name:    "dex",
						Image:   "ghcr.io/dexidp/dex:test",
						Command: []string{"/usr/local/bin/dex"},
						Args:    []string{"serve", "$(CONFIG_DIR)/config.yaml"},
						Env: []corev1.EnvVar{
							{Name: "CONFIG_DIR", Value: "/etc/dex/cfg"},
							{Name: "ESCAPED", Value: "$$(CONFIG_DIR)"},
							{Name: "UNKNOWN", Value: "$(NOT_DEFINED)/x"},
							{Name: "CLIENT_SECRET", ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{
								LocalObjectReference: corev1.LocalObjectReference{Name: "dex-client"}, Key: "secret",
							}}},
							{Name: "POD_NAME", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.name"}}},
							{Name: "POD_NAMESPACE", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.namespace"}}},
							{Name: "SA", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "spec.serviceAccountName"}}},
						},
						Ports: []corev1.ContainerPort{
							{Name: "web", ContainerPort: int32(webPort)},
							{Name: "telemetry", ContainerPort: int32(telemetryPort)},
						},
						ReadinessProbe: &corev1.Probe{
							ProbeHandler:  corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/healthz/ready", Port: intstr.FromString("telemetry")}},
							PeriodSeconds: 10,
						},
						LivenessProbe: &corev1.Probe{
							ProbeHandler:     corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/healthz/live", Port: intstr.FromInt(telemetryPort)}},
							FailureThreshold: 3,
						},
						VolumeMounts: []corev1.VolumeMount{
							{Name: "config", MountPath: "/etc/dex/cfg"},
							{Name: "data", MountPath: "/var/lib/dex"},
						},
					}},
					Volumes: []corev1.Volume{
						{Name: "config", VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{SecretName: "dex-config"}}},
						{Name: "data", VolumeSource: corev1.VolumeSource{PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: "dex-data"}}},
					},
				},
			},
		},
	}
}

// kubeletService selects the Dex pods.
func kubeletService(name string, port int, target intstr.IntOrString) *corev1.Service {
	return &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: kubeletNS, Name: name},
		Spec: corev1.ServiceSpec{
			Selector: map[string]string{"app": "dex"},
			Ports:    []corev1.ServicePort{{Name: "web", Port: int32(port), TargetPort: target}},
		},
	}
}

func deploymentCondition(d *appsv1.Deployment, t appsv1.DeploymentConditionType) corev1.ConditionStatus {
	for _, c := range d.Status.Conditions {
		if c.Type == t {
			return c.Status
		}
	}
	return corev1.ConditionUnknown
}

// getJSON gets a URL (resolving names through /etc/hosts, no proxy) and decodes its JSON body.
func getJSON(url string) (map[string]any, error) {
	httpClient := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{Proxy: nil}}
	resp, err := httpClient.Get(url)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: status %d", url, resp.StatusCode)
	}
	var out map[string]any
	return out, json.NewDecoder(resp.Body).Decode(&out)
}

// processEnv reads the environment of a process.
func processEnv(t *testing.T, pid int) map[string]string {
	t.Helper()
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/environ", pid))
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, kv := range bytes.Split(data, []byte{0}) {
		if k, v, ok := strings.Cut(string(kv), "="); ok {
			out[k] = v
		}
	}
	return out
}

// processGone reports whether no process has the PID (the kubelet reaps its pods).
func processGone(pid int) bool {
	return errors.Is(syscall.Kill(pid, 0), syscall.ESRCH)
}

// watchDir watches dir with inotify and returns a function listing the events so far as
// "<IN_CREATE|IN_MOVED_TO|IN_MODIFY|IN_DELETE> <name>".
func watchDir(t *testing.T, dir string) func() []string {
	t.Helper()
	fd, err := syscall.InotifyInit1(syscall.IN_NONBLOCK | syscall.IN_CLOEXEC)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = syscall.Close(fd) })
	if _, err := syscall.InotifyAddWatch(fd, dir, syscall.IN_CREATE|syscall.IN_MOVED_TO|syscall.IN_MODIFY|syscall.IN_DELETE); err != nil {
		t.Fatal(err)
	}
	var events []string
	return func() []string {
		buf := make([]byte, 64<<10)
		for {
			n, err := syscall.Read(fd, buf)
			if n <= 0 || err != nil {
				return events
			}
			for off := 0; off+syscall.SizeofInotifyEvent <= n; {
				ev := (*syscall.InotifyEvent)(unsafe.Pointer(&buf[off]))
				name := strings.TrimRight(string(buf[off+syscall.SizeofInotifyEvent:off+syscall.SizeofInotifyEvent+int(ev.Len)]), "\x00")
				for mask, op := range map[uint32]string{syscall.IN_CREATE: "IN_CREATE", syscall.IN_MOVED_TO: "IN_MOVED_TO", syscall.IN_MODIFY: "IN_MODIFY", syscall.IN_DELETE: "IN_DELETE"} {
					if ev.Mask&mask != 0 {
						events = append(events, op+" "+name)
					}
				}
				off += syscall.SizeofInotifyEvent + int(ev.Len)
			}
		}
	}
}

// TestKubeletExpandEnv checks Kubernetes' $(VAR) semantics.
func TestKubeletExpandEnv(t *testing.T) {
	g := NewWithT(t)
	lookup := envMapping([]string{"A=a", "EMPTY="})
	for in, want := range map[string]string{
		"$(A)/x":     "a/x",
		"$$(A)":      "$(A)",
		"$$$(A)":     "$a",
		"$(B)":       "$(B)",
		"$A $":       "$A $",
		"$(A":        "$(A",
		"$()":        "$()",
		"[$(EMPTY)]": "[]",
		"$$":         "$",
	} {
		g.Expect(expandEnv(in, lookup)).To(Equal(want), "expanding %q", in)
	}
}

// TestKubeletAtomicWrite checks the atomic writer's layout and updates.
func TestKubeletAtomicWrite(t *testing.T) {
	g := NewWithT(t)
	dir := filepath.Join(t.TempDir(), "vol")
	g.Expect(atomicWrite(dir, map[string]fileProjection{"a": {Data: []byte("1"), Mode: 0o600}, "sub/b": {Data: []byte("2"), Mode: 0o644}})).To(Succeed())
	first, err := os.Readlink(filepath.Join(dir, atomicDataDir))
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(first).To(HavePrefix(".."))
	g.Expect(os.Readlink(filepath.Join(dir, "a"))).To(Equal("..data/a"))
	g.Expect(os.Readlink(filepath.Join(dir, "sub"))).To(Equal("..data/sub"))
	g.Expect(os.ReadFile(filepath.Join(dir, "sub", "b"))).To(BeEquivalentTo("2"))
	st, err := os.Stat(filepath.Join(dir, "a"))
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(st.Mode().Perm()).To(Equal(os.FileMode(0o600)))

	g.Expect(atomicWrite(dir, map[string]fileProjection{"a": {Data: []byte("3"), Mode: 0o644}})).To(Succeed())
	g.Expect(os.Readlink(filepath.Join(dir, atomicDataDir))).NotTo(Equal(first))
	g.Expect(filepath.Join(dir, first)).NotTo(BeAnExistingFile(), "the previous data dir is removed")
	g.Expect(os.ReadFile(filepath.Join(dir, "a"))).To(BeEquivalentTo("3"))
	_, err = os.Lstat(filepath.Join(dir, "sub"))
	g.Expect(err).To(MatchError(os.ErrNotExist), "names no longer projected are removed")
	g.Expect(atomicWrite(dir, map[string]fileProjection{"../x": {}})).To(MatchError(ContainSubstring("invalid file path")))
}

// TestKubeletRefusesUnsupported checks that unsupported template fields are refused, not ignored.
func TestKubeletRefusesUnsupported(t *testing.T) {
	g := NewWithT(t)
	spec := kubeletDexDeployment(1, 2).Spec.Template.Spec
	spec.InitContainers = []corev1.Container{{Name: "init"}}
	spec.Containers[0].LivenessProbe = &corev1.Probe{ProbeHandler: corev1.ProbeHandler{Exec: &corev1.ExecAction{Command: []string{"true"}}}}
	spec.Volumes = append(spec.Volumes, corev1.Volume{Name: "nfs", VolumeSource: corev1.VolumeSource{NFS: &corev1.NFSVolumeSource{}}})
	spec.Containers = append(spec.Containers, corev1.Container{Name: "sidecar"})
	warnings, err := validatePodSpec(&spec)
	g.Expect(err).To(MatchError(And(
		ContainSubstring("initContainers not supported"),
		ContainSubstring("livenessProbe: only httpGet and tcpSocket"),
		ContainSubstring(`volume "nfs": type not supported`),
	)))
	g.Expect(warnings).To(ContainElement(ContainSubstring(`container "sidecar" ignored`)))
}
