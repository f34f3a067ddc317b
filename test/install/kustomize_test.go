package install

import (
	"net"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	. "github.com/onsi/gomega"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/utils/ptr"

	"dexterity.dev/dexterity/internal/webhookcert"
	"dexterity.dev/dexterity/test/harness"
)

// defaultInstall is config/default rendered and sorted by kind.
type defaultInstall struct {
	namespace  string
	crds       []string
	sa         *corev1.ServiceAccount
	deployment *appsv1.Deployment
	service    *corev1.Service
	vwc        *admissionregistrationv1.ValidatingWebhookConfiguration
	mwc        *admissionregistrationv1.MutatingWebhookConfiguration
	// rules granted to the ServiceAccount: cluster-wide, and in namespace.
	clusterRules, namespaceRules []rbacv1.PolicyRule
}

func renderDefault(t *testing.T) *defaultInstall {
	t.Helper()
	g := NewWithT(t)
	objs := render(t, "default")
	in := &defaultInstall{}

	nss := ofKind(objs, "Namespace")
	g.Expect(nss).To(HaveLen(1), "one Namespace")
	in.namespace = nss[0].GetName()
	for _, o := range ofKind(objs, "CustomResourceDefinition") {
		in.crds = append(in.crds, o.GetName())
	}
	one := func(kind string, into any) {
		t.Helper()
		os := ofKind(objs, kind)
		g.Expect(os).To(HaveLen(1), "one %s", kind)
		convert(t, os[0], into)
	}
	in.sa, in.deployment = &corev1.ServiceAccount{}, &appsv1.Deployment{}
	in.vwc = &admissionregistrationv1.ValidatingWebhookConfiguration{}
	in.mwc = &admissionregistrationv1.MutatingWebhookConfiguration{}
	one("ServiceAccount", in.sa)
	one("Deployment", in.deployment)
	one("ValidatingWebhookConfiguration", in.vwc)
	one("MutatingWebhookConfiguration", in.mwc)
	// The webhook Service is the one the configuration calls (there may be others).
	g.Expect(in.vwc.Webhooks).NotTo(BeEmpty())
	g.Expect(in.vwc.Webhooks[0].ClientConfig.Service).NotTo(BeNil())
	for _, o := range ofKind(objs, "Service") {
		if o.GetName() == in.vwc.Webhooks[0].ClientConfig.Service.Name {
			in.service = &corev1.Service{}
			convert(t, o, in.service)
		}
	}
	g.Expect(in.service).NotTo(BeNil(), "the webhook Service %s is rendered", in.vwc.Webhooks[0].ClientConfig.Service.Name)

	roles, clusterRoles := map[string][]rbacv1.PolicyRule{}, map[string][]rbacv1.PolicyRule{}
	for _, o := range ofKind(objs, "Role") {
		r := &rbacv1.Role{}
		convert(t, o, r)
		g.Expect(r.Namespace).To(Equal(in.namespace))
		roles[r.Name] = r.Rules
	}
	for _, o := range ofKind(objs, "ClusterRole") {
		r := &rbacv1.ClusterRole{}
		convert(t, o, r)
		clusterRoles[r.Name] = r.Rules
	}
	isSA := func(subjects []rbacv1.Subject) bool {
		return len(subjects) == 1 && subjects[0].Kind == rbacv1.ServiceAccountKind &&
			subjects[0].Name == in.sa.Name && subjects[0].Namespace == in.namespace
	}
	for _, o := range ofKind(objs, "ClusterRoleBinding") {
		b := &rbacv1.ClusterRoleBinding{}
		convert(t, o, b)
		g.Expect(isSA(b.Subjects)).To(BeTrue(), "%s binds the manager's ServiceAccount", b.Name)
		g.Expect(b.RoleRef.Kind).To(Equal("ClusterRole"))
		g.Expect(clusterRoles).To(HaveKey(b.RoleRef.Name), "%s refers to a rendered ClusterRole", b.Name)
		in.clusterRules = append(in.clusterRules, clusterRoles[b.RoleRef.Name]...)
	}
	for _, o := range ofKind(objs, "RoleBinding") {
		b := &rbacv1.RoleBinding{}
		convert(t, o, b)
		g.Expect(b.Namespace).To(Equal(in.namespace))
		g.Expect(isSA(b.Subjects)).To(BeTrue(), "%s binds the manager's ServiceAccount", b.Name)
		g.Expect(b.RoleRef.Kind).To(Equal("Role"))
		g.Expect(roles).To(HaveKey(b.RoleRef.Name), "%s refers to a rendered Role", b.Name)
		in.namespaceRules = append(in.namespaceRules, roles[b.RoleRef.Name]...)
	}

	// No Secret, which `kubectl apply` would reset (the manager fills the certificate Secret
	// itself), and every namespaced object in the install namespace.
	clusterScoped := map[string]bool{"Namespace": true, "CustomResourceDefinition": true, "ClusterRole": true,
		"ClusterRoleBinding": true, "ValidatingWebhookConfiguration": true, "MutatingWebhookConfiguration": true}
	for _, o := range objs {
		g.Expect(o.GetKind()).NotTo(Equal("Secret"), "config/default renders Secret %s", o.GetName())
		if !clusterScoped[o.GetKind()] {
			g.Expect(o.GetNamespace()).To(Equal(in.namespace), "%s %s is in the install namespace", o.GetKind(), o.GetName())
		}
	}
	return in
}

// arg returns the value of --name=value in args, and whether it is there.
func arg(args []string, name string) (string, bool) {
	for _, a := range args {
		if a == "--"+name {
			return "true", true
		}
		if v, ok := strings.CutPrefix(a, "--"+name+"="); ok {
			return v, true
		}
	}
	return "", false
}

// `kustomize build config/default` renders a complete, hardened and consistent install.
func TestKustomizeDefault(t *testing.T) {
	in := renderDefault(t)
	pod := in.deployment.Spec.Template.Spec
	NewWithT(t).Expect(pod.Containers).To(HaveLen(1))
	c := pod.Containers[0]

	t.Run("CRDs of config/crd", func(t *testing.T) {
		var want []string
		for _, o := range ofKind(render(t, "crd"), "CustomResourceDefinition") {
			want = append(want, o.GetName())
		}
		NewWithT(t).Expect(in.crds).To(ConsistOf(want))
	})
	t.Run("Deployment", func(t *testing.T) {
		g := NewWithT(t)
		g.Expect(pod.ServiceAccountName).To(Equal(in.sa.Name))
		g.Expect(c.Image).NotTo(BeEmpty())
		g.Expect(c.Image).NotTo(HavePrefix("controller:"), "config/manager's images: transformer sets the image")
		_, leader := arg(c.Args, "leader-elect")
		g.Expect(leader).To(BeTrue(), "--leader-elect")
		probeAddr, ok := arg(c.Args, "health-probe-bind-address")
		g.Expect(ok).To(BeTrue())
		_, probePort, err := net.SplitHostPort(probeAddr)
		g.Expect(err).NotTo(HaveOccurred())
		for name, p := range map[string]*corev1.Probe{"/healthz": c.LivenessProbe, "/readyz": c.ReadinessProbe} {
			g.Expect(p).NotTo(BeNil(), "probe %s", name)
			g.Expect(p.HTTPGet).NotTo(BeNil())
			g.Expect(p.HTTPGet.Path).To(Equal(name))
			g.Expect(p.HTTPGet.Port.String()).To(Equal(probePort))
		}
		for _, r := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
			g.Expect(c.Resources.Requests).To(HaveKey(r), "requests")
			g.Expect(c.Resources.Limits).To(HaveKey(r), "limits")
		}
	})
	t.Run("security context", func(t *testing.T) {
		g := NewWithT(t)
		g.Expect(pod.SecurityContext).NotTo(BeNil())
		g.Expect(pod.SecurityContext.RunAsNonRoot).To(Equal(ptr.To(true)))
		g.Expect(pod.SecurityContext.SeccompProfile).To(HaveValue(HaveField("Type", corev1.SeccompProfileTypeRuntimeDefault)))
		sc := c.SecurityContext
		g.Expect(sc).NotTo(BeNil())
		g.Expect(sc.AllowPrivilegeEscalation).To(Equal(ptr.To(false)))
		g.Expect(sc.ReadOnlyRootFilesystem).To(Equal(ptr.To(true)))
		g.Expect(sc.Capabilities).NotTo(BeNil())
		g.Expect(sc.Capabilities.Drop).To(ConsistOf(corev1.Capability("ALL")))
		g.Expect(sc.Capabilities.Add).To(BeEmpty())
		g.Expect(sc.Privileged).NotTo(Equal(ptr.To(true)))
	})
	t.Run("webhook server", func(t *testing.T) {
		g := NewWithT(t)
		_, on := arg(c.Args, "enable-webhooks")
		g.Expect(on).To(BeTrue(), "--enable-webhooks")
		port := int32(9443) // the manager's default
		if v, ok := arg(c.Args, "webhook-port"); ok {
			p, err := net.LookupPort("tcp", v)
			g.Expect(err).NotTo(HaveOccurred())
			port = int32(p)
		}
		g.Expect(c.Ports).To(ContainElement(HaveField("ContainerPort", port)))

		// The cert dir is a writable emptyDir (the root filesystem is read-only).
		dir, ok := arg(c.Args, "webhook-cert-dir")
		g.Expect(ok).To(BeTrue(), "--webhook-cert-dir")
		var volume string
		for _, m := range c.VolumeMounts {
			if m.MountPath == dir {
				volume = m.Name
				g.Expect(m.ReadOnly).To(BeFalse())
			}
		}
		g.Expect(volume).NotTo(BeEmpty(), "a volume is mounted at the cert dir %s", dir)
		g.Expect(pod.Volumes).To(ContainElement(And(HaveField("Name", volume), HaveField("EmptyDir", Not(BeNil())))))
		g.Expect(c.Env).To(ContainElement(And(HaveField("Name", "POD_NAMESPACE"),
			HaveField("ValueFrom.FieldRef.FieldPath", "metadata.namespace"))), "the manager knows its namespace")

		// The Service selects the manager's pods and forwards to the webhook port.
		g.Expect(in.service.Namespace).To(Equal(in.namespace))
		g.Expect(in.service.Spec.Selector).NotTo(BeEmpty())
		g.Expect(labels.SelectorFromSet(in.service.Spec.Selector).Matches(labels.Set(in.deployment.Spec.Template.Labels))).To(BeTrue())
		g.Expect(in.service.Spec.Ports).To(HaveLen(1))
		g.Expect(in.service.Spec.Ports[0].TargetPort.IntVal).To(Equal(port))

		// The configurations call that Service, and have every webhook of config/webhook, without
		// a caBundle (the manager injects it; `kubectl apply` does not reset it).
		want, err := harness.WebhookConfiguration()
		g.Expect(err).NotTo(HaveOccurred())
		wantM, err := harness.MutatingWebhookConfiguration()
		g.Expect(err).NotTo(HaveOccurred())
		var names, wantNames []string
		check := func(name string, cc admissionregistrationv1.WebhookClientConfig) {
			names = append(names, name)
			g.Expect(cc.Service).NotTo(BeNil())
			g.Expect(cc.Service.Name).To(Equal(in.service.Name), "webhook %s", name)
			g.Expect(cc.Service.Namespace).To(Equal(in.namespace), "webhook %s", name)
			g.Expect(cc.Service.Port).To(Or(BeNil(), HaveValue(Equal(in.service.Spec.Ports[0].Port))))
			g.Expect(cc.CABundle).To(BeEmpty())
		}
		for _, w := range in.vwc.Webhooks {
			check(w.Name, w.ClientConfig)
		}
		for _, w := range in.mwc.Webhooks {
			check(w.Name, w.ClientConfig)
		}
		for _, w := range want.Webhooks {
			wantNames = append(wantNames, w.Name)
		}
		for _, w := range wantM.Webhooks {
			wantNames = append(wantNames, w.Name)
		}
		g.Expect(names).To(ConsistOf(wantNames))
	})
	t.Run("self-managed certificate names and permissions", func(t *testing.T) {
		g := NewWithT(t)
		// The manager's flag defaults are the rendered names (a changed namePrefix needs flags).
		effective := func(name, def string) string {
			if v, ok := arg(c.Args, name); ok {
				return v
			}
			return def
		}
		g.Expect(effective("webhook-service-name", webhookcert.DefaultServiceName)).To(Equal(in.service.Name))
		g.Expect(effective("webhook-config-name", webhookcert.DefaultWebhookConfigName)).To(Equal(in.vwc.Name))
		g.Expect(effective("mutating-webhook-config-name", webhookcert.DefaultMutatingWebhookConfigName)).To(Equal(in.mwc.Name))
		secret := effective("webhook-cert-secret", webhookcert.DefaultSecretName)
		g.Expect(secret).NotTo(BeEmpty(), "self-management is on")
		for _, tc := range []struct {
			rules                       []rbacv1.PolicyRule
			group, resource, verb, name string
			allowed                     bool
		}{
			{in.namespaceRules, "", "secrets", "create", "", true},
			{in.namespaceRules, "", "secrets", "update", secret, true},
			{in.namespaceRules, "", "secrets", "update", "someone-elses", false},
			{in.clusterRules, "admissionregistration.k8s.io", "validatingwebhookconfigurations", "update", in.vwc.Name, true},
			{in.clusterRules, "admissionregistration.k8s.io", "validatingwebhookconfigurations", "update", "someone-elses", false},
			{in.clusterRules, "admissionregistration.k8s.io", "validatingwebhookconfigurations", "watch", "", true},
			{in.clusterRules, "admissionregistration.k8s.io", "mutatingwebhookconfigurations", "update", in.vwc.Name, false},
			{in.clusterRules, "admissionregistration.k8s.io", "mutatingwebhookconfigurations", "update", in.mwc.Name, true},
			{in.clusterRules, "admissionregistration.k8s.io", "mutatingwebhookconfigurations", "update", "someone-elses", false},
			{in.clusterRules, "admissionregistration.k8s.io", "validatingwebhookconfigurations", "update", in.mwc.Name, false},
		} {
			g.Expect(allows(tc.rules, tc.group, tc.resource, tc.verb, tc.name)).To(Equal(tc.allowed), "%s %s/%s %q", tc.verb, tc.group, tc.resource, tc.name)
		}
	})
}

// allows evaluates RBAC rules for one request (name empty: a request without a name).
func allows(rules []rbacv1.PolicyRule, group, resource, verb, name string) bool {
	for _, r := range rules {
		if has(r.APIGroups, group) && has(r.Resources, resource) && has(r.Verbs, verb) &&
			(len(r.ResourceNames) == 0 || (name != "" && has(r.ResourceNames, name))) {
			return true
		}
	}
	return false
}

// `kubectl kustomize config/default` (what users run with `kubectl apply -k`) renders the same
// objects as the pinned bin/kustomize the other tests use.
func TestKubectlKustomizeDefault(t *testing.T) {
	g := NewWithT(t)
	kubectl, err := exec.LookPath("kubectl")
	if err != nil {
		t.Fatalf("kubectl is not on PATH: %v", err)
	}
	out, err := exec.Command(kubectl, "kustomize", filepath.Join(root, "config", "default")).CombinedOutput()
	g.Expect(err).NotTo(HaveOccurred(), "%s", out)
	viaKubectl := decode(t, out)
	viaKustomize := render(t, "default")
	g.Expect(viaKubectl).To(HaveLen(len(viaKustomize)))
	for i := range viaKustomize {
		g.Expect(viaKubectl[i].Object).To(Equal(viaKustomize[i].Object), "%s %s", viaKustomize[i].GetKind(), viaKustomize[i].GetName())
	}
}

// Every Service of the install selects the manager's pods and targets a port the container
// names; the optional ServiceMonitor of config/prometheus selects the metrics Service.
func TestServicesReachTheManager(t *testing.T) {
	g := NewWithT(t)
	in := renderDefault(t)
	pod := in.deployment.Spec.Template
	ports := map[string]bool{}
	for _, p := range pod.Spec.Containers[0].Ports {
		ports[p.Name] = true
	}
	var metrics *corev1.Service
	for _, o := range ofKind(render(t, "default"), "Service") {
		s := &corev1.Service{}
		convert(t, o, s)
		for k, v := range s.Spec.Selector {
			g.Expect(pod.Labels).To(HaveKeyWithValue(k, v), "Service %s selects the manager's pods", s.Name)
		}
		for _, p := range s.Spec.Ports {
			if p.TargetPort.StrVal != "" {
				g.Expect(ports).To(HaveKey(p.TargetPort.StrVal), "Service %s targets a named container port", s.Name)
			}
		}
		if s.Labels["app.kubernetes.io/component"] == "metrics" {
			metrics = s
		}
	}
	g.Expect(metrics).NotTo(BeNil(), "a metrics Service")
	g.Expect(metrics.Spec.Ports).To(ContainElement(HaveField("TargetPort.StrVal", "metrics")))

	monitors := ofKind(render(t, "prometheus"), "ServiceMonitor")
	g.Expect(monitors).To(HaveLen(1))
	m := monitors[0]
	g.Expect(m.GetNamespace()).To(Equal(in.namespace))
	sel, _, _ := unstructured.NestedStringMap(m.Object, "spec", "selector", "matchLabels")
	g.Expect(sel).NotTo(BeEmpty())
	for k, v := range sel {
		g.Expect(metrics.Labels).To(HaveKeyWithValue(k, v), "the ServiceMonitor selects the metrics Service")
	}
	eps, _, _ := unstructured.NestedSlice(m.Object, "spec", "endpoints")
	g.Expect(eps).To(ContainElement(HaveKeyWithValue("port", "metrics")))
}
