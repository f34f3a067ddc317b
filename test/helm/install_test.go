package helm

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	"helm.sh/helm/v4/pkg/action"
	"helm.sh/helm/v4/pkg/kube"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

const waitTimeout = 90 * time.Second

// The chart installs into a namespace other than config/default's, the manager runs with
// exactly the RBAC it installed, an upgrade applies changed values, and an uninstall leaves
// nothing but the CRDs (crds.keep).
func TestInstallUpgradeUninstall(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	const ns, name = "platform-dexterity", "dex-operator"
	cfg := actionConfig(t, ns)

	in := action.NewInstall(cfg)
	in.ReleaseName, in.Namespace, in.CreateNamespace = name, ns, true
	in.WaitStrategy = kube.HookOnlyStrategy // no kubelet: the Deployment never becomes available
	in.Timeout = time.Minute
	rel, err := in.Run(loadChart(t), nil)
	g.Expect(err).NotTo(HaveOccurred())
	installed := decode(t, []byte(asRelease(t, rel).Manifest))
	g.Expect(installed).NotTo(BeEmpty())
	for _, o := range installed {
		g.Expect(k8s.Get(ctx, client.ObjectKeyFromObject(o), liveOf(o))).To(Succeed(), "%s %s is installed", o.GetKind(), o.GetName())
	}
	// The aggregation labels reach the built-in roles' controller-side? (no controller-manager in
	// envtest): the labels are what the aggregation selects.
	edit := &rbacv1.ClusterRole{}
	g.Expect(k8s.Get(ctx, client.ObjectKey{Name: "dexterity-tenant-edit"}, edit)).To(Succeed())
	g.Expect(edit.Labels).To(HaveKeyWithValue("rbac.authorization.k8s.io/aggregate-to-edit", "true"))

	t.Run("least privilege", func(t *testing.T) { leastPrivilege(t, ns) })

	// Upgrade with changed values.
	up := action.NewUpgrade(cfg)
	up.Namespace = ns
	up.WaitStrategy = kube.HookOnlyStrategy
	up.Timeout = time.Minute
	_, err = up.Run(name, loadChart(t), map[string]any{
		"replicaCount": 2,
		"rbac":         map[string]any{"tenantRoles": map[string]any{"aggregate": false}},
		"metrics":      map[string]any{"port": 9090},
		"registry":     map[string]any{"enabled": false},
	})
	g.Expect(err).NotTo(HaveOccurred())
	dep := &appsv1.Deployment{}
	g.Expect(k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: "dexterity-controller-manager"}, dep)).To(Succeed())
	g.Expect(dep.Spec.Replicas).To(HaveValue(BeEquivalentTo(2)))
	g.Expect(dep.Spec.Template.Spec.Containers[0].Args).To(ContainElements("--metrics-bind-address=:9090", "--registry-bind-address=0"))
	g.Expect(k8s.Get(ctx, client.ObjectKey{Name: "dexterity-tenant-edit"}, edit)).To(Succeed())
	g.Expect(edit.Labels).NotTo(HaveKey("rbac.authorization.k8s.io/aggregate-to-edit"))
	err = k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: "dexterity-registry"}, &corev1.Service{})
	g.Expect(apierrors.IsNotFound(err)).To(BeTrue(), "the registry Service is removed: %v", err)
	svc := &corev1.Service{}
	g.Expect(k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: "dexterity-metrics"}, svc)).To(Succeed())
	g.Expect(svc.Spec.Ports[0].Port).To(BeEquivalentTo(9090))

	// Uninstall: the CRDs stay (crds.keep), everything else of the release goes.
	un := action.NewUninstall(cfg)
	un.WaitStrategy = kube.HookOnlyStrategy
	_, err = un.Run(name)
	g.Expect(err).NotTo(HaveOccurred())
	var crds int
	for _, o := range installed {
		err := k8s.Get(ctx, client.ObjectKeyFromObject(o), liveOf(o))
		if o.GetKind() == "CustomResourceDefinition" {
			crds++
			g.Expect(err).NotTo(HaveOccurred(), "CRD %s is kept", o.GetName())
			continue
		}
		g.Eventually(func() bool {
			return apierrors.IsNotFound(k8s.Get(ctx, client.ObjectKeyFromObject(o), liveOf(o)))
		}, waitTimeout, 200*time.Millisecond).Should(BeTrue(), "%s %s is deleted", o.GetKind(), o.GetName())
	}
	g.Expect(crds).To(BeNumerically(">", 10))

	// A later install adopts the kept CRDs (same owner annotations), and with crds.keep=false an
	// uninstall removes them.
	in = action.NewInstall(cfg)
	in.ReleaseName, in.Namespace = name, ns
	in.WaitStrategy = kube.HookOnlyStrategy
	in.Timeout = time.Minute
	_, err = in.Run(loadChart(t), map[string]any{"crds": map[string]any{"keep": false}})
	g.Expect(err).NotTo(HaveOccurred())
	un = action.NewUninstall(cfg)
	un.WaitStrategy = kube.HookOnlyStrategy
	_, err = un.Run(name)
	g.Expect(err).NotTo(HaveOccurred())
	for _, o := range installed {
		if o.GetKind() != "CustomResourceDefinition" {
			continue
		}
		g.Eventually(func() bool {
			return apierrors.IsNotFound(k8s.Get(ctx, client.ObjectKeyFromObject(o), liveOf(o)))
		}, waitTimeout, 200*time.Millisecond).Should(BeTrue(), "CRD %s is deleted", o.GetName())
	}
}

// liveOf is an empty object of o's kind to read the live one into.
func liveOf(o *unstructured.Unstructured) *unstructured.Unstructured {
	u := &unstructured.Unstructured{}
	u.SetGroupVersionKind(o.GroupVersionKind())
	return u
}

// leastPrivilege runs the manager binary with the installed Deployment's flags as the installed
// ServiceAccount, with only the installed RBAC: its self-managed webhook certificate, leader
// election and controllers work, and nothing is forbidden.
func leastPrivilege(t *testing.T, ns string) {
	g := NewWithT(t)
	ctx := context.Background()
	dep := &appsv1.Deployment{}
	g.Expect(k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: "dexterity-controller-manager"}, dep)).To(Succeed())
	pod := dep.Spec.Template.Spec
	sa := pod.ServiceAccountName

	bin := buildManager(t)
	dir := t.TempDir()
	kc := impersonatingKubeconfig(t, dir, ns, sa)
	ports := freePorts(t, 4)
	args := []string{"--kubeconfig=" + kc, "--leader-election-namespace=" + ns}
	for _, a := range pod.Containers[0].Args {
		flag, _, _ := strings.Cut(a, "=")
		switch flag {
		case "--health-probe-bind-address":
			a = fmt.Sprintf("%s=127.0.0.1:%d", flag, ports[0])
		case "--metrics-bind-address":
			a = fmt.Sprintf("%s=127.0.0.1:%d", flag, ports[1])
		case "--registry-bind-address":
			a = fmt.Sprintf("%s=127.0.0.1:%d", flag, ports[2])
		case "--webhook-port":
			a = fmt.Sprintf("%s=%d", flag, ports[3])
		case "--webhook-cert-dir":
			a = flag + "=" + filepath.Join(dir, "certs") // the emptyDir
		}
		args = append(args, a)
	}
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), "POD_NAMESPACE="+ns)
	var log syncBuffer
	cmd.Stdout, cmd.Stderr = &log, &log
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	g.Expect(cmd.Start()).To(Succeed())
	t.Cleanup(func() {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-done
		}
		if t.Failed() {
			t.Logf("manager log:\n%s", log.String())
		}
	})

	// Ready: the certificate Secret was created and filled, the CA injected into both
	// configurations of the chart, the webhook server serves.
	g.Eventually(func() (int, error) {
		resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/readyz", ports[0])) //nolint:noctx // test
		if err != nil {
			return 0, err
		}
		_ = resp.Body.Close()
		return resp.StatusCode, nil
	}, waitTimeout, 200*time.Millisecond).Should(Equal(http.StatusOK), "the manager becomes ready")
	secret := &corev1.Secret{}
	g.Expect(k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: "dexterity-webhook-server-cert"}, secret)).To(Succeed())
	g.Expect(secret.Data).To(HaveKey("tls.crt"))
	vwc := &admissionregistrationv1.ValidatingWebhookConfiguration{}
	g.Expect(k8s.Get(ctx, client.ObjectKey{Name: "dexterity-validating-webhook-configuration"}, vwc)).To(Succeed())
	mwc := &admissionregistrationv1.MutatingWebhookConfiguration{}
	g.Expect(k8s.Get(ctx, client.ObjectKey{Name: "dexterity-mutating-webhook-configuration"}, mwc)).To(Succeed())
	for _, w := range vwc.Webhooks {
		g.Expect(w.ClientConfig.CABundle).NotTo(BeEmpty(), "caBundle of %s", w.Name)
	}
	for _, w := range mwc.Webhooks {
		g.Expect(w.ClientConfig.CABundle).NotTo(BeEmpty(), "caBundle of %s", w.Name)
	}
	g.Eventually(func(g Gomega) {
		lease := &coordinationv1.Lease{}
		g.Expect(k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: "dexterity.dev"}, lease)).To(Succeed())
		g.Expect(lease.Spec.HolderIdentity).To(HaveValue(Not(BeEmpty())))
	}, waitTimeout, 200*time.Millisecond).Should(Succeed(), "the manager is the leader")

	// envtest's API server cannot reach the webhook Service: let it skip the webhooks (the
	// manager's own checks are test/install's), so the controllers get objects to reconcile.
	// The chart's settings come back afterwards (the upgrade must not meet another owner's).
	origV, origM := vwc.DeepCopy(), mwc.DeepCopy()
	t.Cleanup(func() {
		g := NewWithT(t)
		for _, wc := range []client.Object{vwc, mwc} {
			g.Expect(k8s.Get(ctx, client.ObjectKeyFromObject(wc), wc)).To(Succeed())
		}
		for i := range vwc.Webhooks {
			vwc.Webhooks[i].ClientConfig, vwc.Webhooks[i].FailurePolicy = origV.Webhooks[i].ClientConfig, origV.Webhooks[i].FailurePolicy
		}
		for i := range mwc.Webhooks {
			mwc.Webhooks[i].ClientConfig, mwc.Webhooks[i].FailurePolicy = origM.Webhooks[i].ClientConfig, origM.Webhooks[i].FailurePolicy
		}
		g.Expect(k8s.Update(ctx, vwc)).To(Succeed())
		g.Expect(k8s.Update(ctx, mwc)).To(Succeed())
	})
	for i := range vwc.Webhooks {
		vwc.Webhooks[i].ClientConfig = admissionregistrationv1.WebhookClientConfig{URL: ptr.To("https://127.0.0.1:1/closed"), CABundle: vwc.Webhooks[i].ClientConfig.CABundle}
		vwc.Webhooks[i].FailurePolicy = ptr.To(admissionregistrationv1.Ignore)
	}
	g.Expect(k8s.Update(ctx, vwc)).To(Succeed())
	for i := range mwc.Webhooks {
		mwc.Webhooks[i].ClientConfig = admissionregistrationv1.WebhookClientConfig{URL: ptr.To("https://127.0.0.1:1/closed"), CABundle: mwc.Webhooks[i].ClientConfig.CABundle}
		mwc.Webhooks[i].FailurePolicy = ptr.To(admissionregistrationv1.Ignore)
	}
	g.Expect(k8s.Update(ctx, mwc)).To(Succeed())

	tenant := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "tenant-"}}
	g.Expect(k8s.Create(ctx, tenant)).To(Succeed())
	objs := []*unstructured.Unstructured{
		obj("OIDCProvider", tenant.Name, "idp", map[string]any{"issuerUrl": "https://127.0.0.1:1/dex", "clientId": "registry"}),
		obj("GroupBinding", tenant.Name, "team", map[string]any{"expression": `"team" in groups`}),
		obj("DexStaticClient", tenant.Name, "app", map[string]any{"providerRef": map[string]any{"name": "idp"},
			"redirectURIs": []any{"https://app.example.com/cb"}, "secretRef": map[string]any{"name": "app", "key": "secret"}, "generateSecret": true}),
	}
	for _, o := range objs {
		g.Expect(k8s.Create(ctx, o)).To(Succeed(), "%s", o.GetKind())
	}
	for _, o := range objs {
		g.Eventually(func(g Gomega) {
			live := liveOf(o)
			g.Expect(k8s.Get(ctx, client.ObjectKeyFromObject(o), live)).To(Succeed())
			conds, _, _ := unstructured.NestedSlice(live.Object, "status", "conditions")
			g.Expect(conds).NotTo(BeEmpty(), "%s %s has conditions", o.GetKind(), o.GetName())
		}, waitTimeout, 200*time.Millisecond).Should(Succeed())
	}
	g.Eventually(func(g Gomega) {
		events := &corev1.EventList{}
		g.Expect(k8s.List(ctx, events, client.InNamespace(tenant.Name))).To(Succeed())
		g.Expect(events.Items).NotTo(BeEmpty(), "the manager records events")
	}, waitTimeout, 200*time.Millisecond).Should(Succeed())
	for _, o := range objs {
		g.Expect(k8s.Delete(ctx, o)).To(Succeed())
	}
	for _, o := range objs {
		g.Eventually(func() bool {
			return apierrors.IsNotFound(k8s.Get(ctx, client.ObjectKeyFromObject(o), liveOf(o)))
		}, waitTimeout, 200*time.Millisecond).Should(BeTrue(), "%s %s is deleted (finalizers run)", o.GetKind(), o.GetName())
	}
	g.Expect(strings.ToLower(log.String())).NotTo(ContainSubstring("forbidden"), "the manager was denied something:\n%s", log.String())
}

func obj(kind, ns, name string, spec map[string]any) *unstructured.Unstructured {
	u := &unstructured.Unstructured{Object: map[string]any{"spec": spec}}
	u.SetGroupVersionKind(schema.GroupVersionKind{Group: "dexterity.dev", Version: "v1alpha1", Kind: kind})
	u.SetNamespace(ns)
	u.SetName(name)
	return u
}

var (
	buildOnce sync.Once
	built     string
	buildErr  error
)

// buildManager builds cmd/dexterity of the operator's module (its own go.mod, not this one's),
// or returns $DEXTERITY_MANAGER_BINARY when set.
func buildManager(t *testing.T) string {
	t.Helper()
	if bin := os.Getenv("DEXTERITY_MANAGER_BINARY"); bin != "" {
		return bin
	}
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "dexterity-manager-")
		if err != nil {
			buildErr = err
			return
		}
		built = filepath.Join(dir, "dexterity")
		cmd := exec.Command("go", "build", "-o", built, "./cmd/dexterity")
		cmd.Dir = root
		cmd.Env = append(os.Environ(), "GOWORK=off", "GOFLAGS=")
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build ./cmd/dexterity: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return built
}

// impersonatingKubeconfig is the admin's kubeconfig acting as the ServiceAccount.
func impersonatingKubeconfig(t *testing.T, dir, ns, sa string) string {
	t.Helper()
	cfg, err := clientcmd.Load(env.KubeConfig)
	NewWithT(t).Expect(err).NotTo(HaveOccurred())
	for _, a := range cfg.AuthInfos {
		a.Impersonate = "system:serviceaccount:" + ns + ":" + sa
		a.ImpersonateGroups = []string{"system:serviceaccounts", "system:serviceaccounts:" + ns, "system:authenticated"}
	}
	path := filepath.Join(dir, "kubeconfig-"+sa)
	NewWithT(t).Expect(clientcmd.WriteToFile(*cfg, path)).To(Succeed())
	return path
}

func freePorts(t *testing.T, n int) []int {
	t.Helper()
	var out []int
	var ls []net.Listener
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		NewWithT(t).Expect(err).NotTo(HaveOccurred())
		ls = append(ls, l)
		out = append(out, l.Addr().(*net.TCPAddr).Port)
	}
	for _, l := range ls {
		_ = l.Close()
	}
	return out
}

type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
