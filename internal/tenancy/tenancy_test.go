package tenancy_test

import (
	"context"
	"errors"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"

	dexv1 "dexterity.dev/dexterity/api/v1alpha1"
	"dexterity.dev/dexterity/internal/outcome"
	"dexterity.dev/dexterity/internal/tenancy"
)

var scheme = func() *runtime.Scheme {
	s := runtime.NewScheme()
	utilruntime.Must(clientgoscheme.AddToScheme(s))
	utilruntime.Must(dexv1.AddToScheme(s))
	return s
}()

// t0 is a fixed creation time; providers and claimants are made older or newer than it.
var t0 = time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)

func at(d time.Duration) metav1.Time { return metav1.NewTime(t0.Add(d)) }

func namespace(name string, labels map[string]string) *corev1.Namespace {
	return &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels}}
}

func provider(ns, name string, d *dexv1.DexAdminSpec) *dexv1.OIDCProvider {
	return &dexv1.OIDCProvider{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec:       dexv1.OIDCProviderSpec{IssuerURL: "https://dex.example/dex", ClientID: "registry", Dex: d},
	}
}

func from(f dexv1.NamespacesFrom) *dexv1.AllowedNamespaces { return &dexv1.AllowedNamespaces{From: f} }

func selector(labels map[string]string) *dexv1.AllowedNamespaces {
	return &dexv1.AllowedNamespaces{From: dexv1.NamespacesFromSelector, Selector: &metav1.LabelSelector{MatchLabels: labels}}
}

// invalidSelector fails metav1.LabelSelectorAsSelector (an unknown operator).
func invalidSelector() *dexv1.AllowedNamespaces {
	return &dexv1.AllowedNamespaces{From: dexv1.NamespacesFromSelector, Selector: &metav1.LabelSelector{
		MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "tenant", Operator: "Near"}},
	}}
}

func newClient(funcs *interceptor.Funcs, objs ...client.Object) client.Client {
	b := fake.NewClientBuilder().WithScheme(scheme).WithObjects(objs...)
	if funcs != nil {
		b = b.WithInterceptorFuncs(*funcs)
	}
	return b.Build()
}

// blockedReason is the Reason of a *outcome.Problem (the problem of an outcome), or "" for any
// other error.
func blockedReason(err error) string {
	var b *outcome.Problem
	if errors.As(err, &b) {
		return b.Reason
	}
	return ""
}

func TestRefKey(t *testing.T) {
	cases := []struct {
		name string
		ns   string
		ref  dexv1.ObjectRef
		want types.NamespacedName
	}{
		{"without namespace: the referring object's", "team-a", dexv1.ObjectRef{Name: "dex"}, types.NamespacedName{Namespace: "team-a", Name: "dex"}},
		{"with namespace: that one", "team-a", dexv1.ObjectRef{Name: "dex", Namespace: "platform"}, types.NamespacedName{Namespace: "platform", Name: "dex"}},
		{"the same namespace spelled out", "platform", dexv1.ObjectRef{Name: "dex", Namespace: "platform"}, types.NamespacedName{Namespace: "platform", Name: "dex"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			NewWithT(t).Expect(tenancy.RefKey(tc.ns, tc.ref)).To(Equal(tc.want))
		})
	}
}

func TestResolveProvider(t *testing.T) {
	objs := []client.Object{
		namespace("platform", nil),
		namespace("team-a", map[string]string{"tenant": "true"}),
		namespace("team-b", nil),
		provider("platform", "no-dex", nil),
		provider("platform", "same", &dexv1.DexAdminSpec{GRPCAddress: "dex:5557"}),
		provider("platform", "same-explicit", &dexv1.DexAdminSpec{GRPCAddress: "dex:5557", AllowedNamespaces: from(dexv1.NamespacesFromSame), ConnectorNamespaces: from(dexv1.NamespacesFromSame)}),
		provider("platform", "empty-from", &dexv1.DexAdminSpec{GRPCAddress: "dex:5557", AllowedNamespaces: from(""), ConnectorNamespaces: from("")}),
		provider("platform", "all-clients", &dexv1.DexAdminSpec{GRPCAddress: "dex:5557", AllowedNamespaces: from(dexv1.NamespacesFromAll)}),
		provider("platform", "all-both", &dexv1.DexAdminSpec{GRPCAddress: "dex:5557", AllowedNamespaces: from(dexv1.NamespacesFromAll), ConnectorNamespaces: from(dexv1.NamespacesFromAll)}),
		provider("platform", "selector", &dexv1.DexAdminSpec{GRPCAddress: "dex:5557", AllowedNamespaces: selector(map[string]string{"tenant": "true"}), ConnectorNamespaces: selector(map[string]string{"tenant": "true"})}),
		provider("platform", "selector-clients", &dexv1.DexAdminSpec{GRPCAddress: "dex:5557", AllowedNamespaces: selector(map[string]string{"tenant": "true"})}),
		provider("team-a", "own", &dexv1.DexAdminSpec{GRPCAddress: "dex:5557"}),
	}
	c := newClient(nil, objs...)
	platform := func(name string) dexv1.ObjectRef { return dexv1.ObjectRef{Name: name, Namespace: "platform"} }

	cases := []struct {
		name string
		ns   string
		ref  dexv1.ObjectRef
		use  tenancy.Use
		// want is the provider's name when resolved; otherwise reason is the Blocked reason and
		// msg parts of its message.
		want   string
		reason string
		msg    []string
	}{
		{name: "not found", ns: "team-a", ref: dexv1.ObjectRef{Name: "missing"}, use: tenancy.Clients,
			reason: dexv1.ReasonProviderNotFound, msg: []string{"OIDCProvider team-a/missing not found"}},
		{name: "not found in the named namespace", ns: "team-a", ref: platform("missing"), use: tenancy.Connectors,
			reason: dexv1.ReasonProviderNotFound, msg: []string{"platform/missing"}},
		{name: "no spec.dex", ns: "platform", ref: platform("no-dex"), use: tenancy.Clients,
			reason: dexv1.ReasonProviderNotManaged, msg: []string{"platform/no-dex has no spec.dex"}},
		{name: "no spec.dex, for connectors too", ns: "platform", ref: platform("no-dex"), use: tenancy.Connectors,
			reason: dexv1.ReasonProviderNotManaged},

		{name: "default Same: own namespace, clients", ns: "team-a", ref: dexv1.ObjectRef{Name: "own"}, use: tenancy.Clients, want: "own"},
		{name: "default Same: own namespace, connectors", ns: "team-a", ref: dexv1.ObjectRef{Name: "own"}, use: tenancy.Connectors, want: "own"},
		{name: "default Same: another namespace, clients", ns: "team-a", ref: platform("same"), use: tenancy.Clients,
			reason: dexv1.ReasonNamespaceNotAllowed, msg: []string{"namespace team-a may not use OIDCProvider platform/same for DexStaticClients", "spec.dex.allowedNamespaces"}},
		{name: "default Same: another namespace, connectors", ns: "team-a", ref: platform("same"), use: tenancy.Connectors,
			reason: dexv1.ReasonNamespaceNotAllowed, msg: []string{"for DexConnectors", "spec.dex.connectorNamespaces"}},
		{name: "explicit Same: another namespace", ns: "team-b", ref: platform("same-explicit"), use: tenancy.Clients, reason: dexv1.ReasonNamespaceNotAllowed},
		{name: "explicit Same: own namespace", ns: "platform", ref: platform("same-explicit"), use: tenancy.Connectors, want: "same-explicit"},
		{name: "empty from means Same", ns: "team-b", ref: platform("empty-from"), use: tenancy.Clients, reason: dexv1.ReasonNamespaceNotAllowed},
		{name: "empty from means Same, own namespace", ns: "platform", ref: platform("empty-from"), use: tenancy.Clients, want: "empty-from"},

		{name: "All for clients: any namespace's clients", ns: "team-b", ref: platform("all-clients"), use: tenancy.Clients, want: "all-clients"},
		{name: "All for clients: connectors still default to Same", ns: "team-b", ref: platform("all-clients"), use: tenancy.Connectors,
			reason: dexv1.ReasonNamespaceNotAllowed, msg: []string{"spec.dex.connectorNamespaces"}},
		{name: "All for clients: own namespace's connectors", ns: "platform", ref: platform("all-clients"), use: tenancy.Connectors, want: "all-clients"},
		{name: "All for both: any namespace's connectors", ns: "team-b", ref: platform("all-both"), use: tenancy.Connectors, want: "all-both"},
		{name: "All for both: a namespace that does not exist", ns: "ghost", ref: platform("all-both"), use: tenancy.Clients, want: "all-both"},

		{name: "Selector: matching namespace, clients", ns: "team-a", ref: platform("selector"), use: tenancy.Clients, want: "selector"},
		{name: "Selector: matching namespace, connectors", ns: "team-a", ref: platform("selector"), use: tenancy.Connectors, want: "selector"},
		{name: "Selector: other namespace, clients", ns: "team-b", ref: platform("selector"), use: tenancy.Clients,
			reason: dexv1.ReasonNamespaceNotAllowed, msg: []string{"spec.dex.allowedNamespaces"}},
		{name: "Selector: other namespace, connectors", ns: "team-b", ref: platform("selector"), use: tenancy.Connectors,
			reason: dexv1.ReasonNamespaceNotAllowed, msg: []string{"spec.dex.connectorNamespaces"}},
		{name: "Selector: own namespace without the labels", ns: "platform", ref: platform("selector"), use: tenancy.Clients, want: "selector"},
		{name: "Selector for clients: connectors still default to Same", ns: "team-a", ref: platform("selector-clients"), use: tenancy.Connectors,
			reason: dexv1.ReasonNamespaceNotAllowed},
		{name: "Selector for clients: matching namespace's clients", ns: "team-a", ref: platform("selector-clients"), use: tenancy.Clients, want: "selector-clients"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			p, err := tenancy.ResolveProvider(context.Background(), c, tc.ns, tc.ref, tc.use)
			if tc.want != "" {
				g.Expect(err).NotTo(HaveOccurred())
				g.Expect(p.Name).To(Equal(tc.want))
				return
			}
			g.Expect(p).To(BeNil())
			g.Expect(blockedReason(err)).To(Equal(tc.reason), "%v", err)
			// A provider not there yet is waited for (an ordinary order of applying
			// objects); every other refusal waits for the user.
			var waiting *outcome.Waiting
			g.Expect(errors.As(err, &waiting)).To(Equal(tc.reason == dexv1.ReasonProviderNotFound), "%v", err)
			g.Expect(outcome.IsStalled(err)).To(Equal(tc.reason != dexv1.ReasonProviderNotFound), "%v", err)
			for _, m := range tc.msg {
				g.Expect(err.Error()).To(ContainSubstring(m))
			}
		})
	}
}

// Errors reading objects are returned as they are (retried), never as Blocked.
func TestResolveProviderReadErrors(t *testing.T) {
	boom := errors.New("apiserver unavailable")
	cases := []struct {
		name  string
		funcs interceptor.Funcs
		ns    string
		ref   dexv1.ObjectRef
		msg   string
	}{
		{
			name: "getting the provider fails",
			funcs: interceptor.Funcs{Get: func(ctx context.Context, c client.WithWatch, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
				return boom
			}},
			ns: "team-a", ref: dexv1.ObjectRef{Name: "selector", Namespace: "platform"},
			msg: "failed to get OIDCProvider platform/selector",
		},
		{
			name: "getting the namespace for a selector fails",
			funcs: interceptor.Funcs{Get: func(ctx context.Context, c client.WithWatch, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
				if _, ok := obj.(*corev1.Namespace); ok {
					return boom
				}
				return c.Get(ctx, key, obj, opts...)
			}},
			ns: "team-a", ref: dexv1.ObjectRef{Name: "selector", Namespace: "platform"},
			msg: "failed to get Namespace team-a",
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			c := newClient(&tc.funcs, namespace("team-a", map[string]string{"tenant": "true"}),
				provider("platform", "selector", &dexv1.DexAdminSpec{GRPCAddress: "dex:5557", AllowedNamespaces: selector(map[string]string{"tenant": "true"})}))
			_, err := tenancy.ResolveProvider(context.Background(), c, tc.ns, tc.ref, tenancy.Clients)
			g.Expect(err).To(MatchError(boom))
			g.Expect(err.Error()).To(ContainSubstring(tc.msg))
			g.Expect(blockedReason(err)).To(BeEmpty())
		})
	}
}

func TestNamespaceAllowed(t *testing.T) {
	c := newClient(nil, namespace("platform", nil), namespace("team-a", map[string]string{"tenant": "true"}), namespace("team-b", nil))
	cases := []struct {
		name   string
		dex    *dexv1.DexAdminSpec
		ns     string
		use    tenancy.Use
		want   bool
		reason string // Blocked reason when an error is expected
		msg    string
		plain  bool // a read error, not Blocked
	}{
		{name: "invalid selector blocks other namespaces' clients", dex: &dexv1.DexAdminSpec{AllowedNamespaces: invalidSelector()}, ns: "team-a", use: tenancy.Clients,
			reason: dexv1.ReasonNamespaceNotAllowed, msg: "OIDCProvider platform/dex has an invalid spec.dex.allowedNamespaces.selector"},
		{name: "invalid selector blocks other namespaces' connectors", dex: &dexv1.DexAdminSpec{ConnectorNamespaces: invalidSelector()}, ns: "team-b", use: tenancy.Connectors,
			reason: dexv1.ReasonNamespaceNotAllowed, msg: "invalid spec.dex.connectorNamespaces.selector"},
		{name: "invalid selector still admits the provider's own namespace", dex: &dexv1.DexAdminSpec{AllowedNamespaces: invalidSelector()}, ns: "platform", use: tenancy.Clients, want: true},
		{name: "invalid client selector does not affect connectors", dex: &dexv1.DexAdminSpec{AllowedNamespaces: invalidSelector()}, ns: "team-a", use: tenancy.Connectors, want: false},
		{name: "selector without a selector matches no other namespace", dex: &dexv1.DexAdminSpec{AllowedNamespaces: from(dexv1.NamespacesFromSelector)}, ns: "team-a", use: tenancy.Clients, want: false},
		{name: "selector with matchExpressions", dex: &dexv1.DexAdminSpec{AllowedNamespaces: &dexv1.AllowedNamespaces{From: dexv1.NamespacesFromSelector, Selector: &metav1.LabelSelector{
			MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "tenant", Operator: metav1.LabelSelectorOpExists}},
		}}}, ns: "team-a", use: tenancy.Clients, want: true},
		{name: "empty selector matches every namespace", dex: &dexv1.DexAdminSpec{AllowedNamespaces: &dexv1.AllowedNamespaces{From: dexv1.NamespacesFromSelector, Selector: &metav1.LabelSelector{}}}, ns: "team-b", use: tenancy.Clients, want: true},
		{name: "selector and a missing namespace: a read error", dex: &dexv1.DexAdminSpec{AllowedNamespaces: selector(map[string]string{"tenant": "true"})}, ns: "ghost", use: tenancy.Clients,
			plain: true, msg: "failed to get Namespace ghost"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			p := provider("platform", "dex", tc.dex)
			ok, err := tenancy.NamespaceAllowed(context.Background(), c, p, tc.ns, tc.use)
			switch {
			case tc.plain:
				g.Expect(err).To(HaveOccurred())
				g.Expect(blockedReason(err)).To(BeEmpty())
				g.Expect(err.Error()).To(ContainSubstring(tc.msg))
			case tc.reason != "":
				g.Expect(blockedReason(err)).To(Equal(tc.reason), "%v", err)
				g.Expect(err.Error()).To(ContainSubstring(tc.msg))
				g.Expect(ok).To(BeFalse())
			default:
				g.Expect(err).NotTo(HaveOccurred())
				g.Expect(ok).To(Equal(tc.want))
			}
		})
	}
}

func TestCheckClientIDPrefix(t *testing.T) {
	withPrefix := func(prefix string) *dexv1.OIDCProvider {
		return provider("platform", "dex", &dexv1.DexAdminSpec{GRPCAddress: "dex:5557", ClientIDPrefix: prefix})
	}
	cases := []struct {
		name string
		p    *dexv1.OIDCProvider
		ns   string
		id   string
		// ok, or the message parts of a ClientIDPrefixMismatch (and what it must not say)
		ok     bool
		msg    []string
		notMsg string
	}{
		{name: "no spec.dex", p: provider("platform", "dex", nil), ns: "team-a", id: "anything", ok: true},
		{name: "no prefix", p: withPrefix(""), ns: "team-a", id: "anything", ok: true},
		{name: "{namespace}- matches", p: withPrefix("{namespace}-"), ns: "team-a", id: "team-a-web", ok: true},
		{name: "the default id matches {namespace}-", p: withPrefix("{namespace}-"), ns: "team-a", id: "team-a-ci", ok: true},
		{name: "{namespace}- does not match another namespace's id", p: withPrefix("{namespace}-"), ns: "team-a", id: "team-b-web",
			msg: []string{`spec.clientId: "team-b-web" must start with "team-a-"`, "OIDCProvider platform/dex", "set spec.clientId to team-a-<something>", "or leave it empty for team-a-<name>"}},
		{name: "{namespace}- without the dash", p: withPrefix("{namespace}-"), ns: "team-a", id: "team-a", msg: []string{`must start with "team-a-"`}},
		{name: "{namespace} twice", p: withPrefix("{namespace}.{namespace}-"), ns: "team-a", id: "team-a.team-a-web", ok: true},
		{name: "{namespace} twice, only once in the id", p: withPrefix("{namespace}.{namespace}-"), ns: "team-a", id: "team-a.web",
			msg: []string{`must start with "team-a.team-a-"`}, notMsg: "leave it empty"},
		{name: "fixed prefix matches", p: withPrefix("corp-"), ns: "team-a", id: "corp-web", ok: true},
		{name: "fixed prefix the default id cannot meet: no hint to leave it empty", p: withPrefix("corp-"), ns: "team-a", id: "web",
			msg: []string{`must start with "corp-"`, "set spec.clientId to corp-<something>"}, notMsg: "leave it empty"},
		{name: "fixed prefix the default id meets: the hint", p: withPrefix("team-"), ns: "team-a", id: "web",
			msg: []string{`must start with "team-"`, "or leave it empty for team-a-<name>"}},
		{name: "case matters", p: withPrefix("{namespace}-"), ns: "team-a", id: "TEAM-A-web", msg: []string{`must start with "team-a-"`}},
		// Namespace names contain "-": the longest existing namespace whose prefix the id starts
		// with owns it (namespaces team, team-b and team-b-x exist; team-c does not).
		{name: "a longer namespace owns the id", p: withPrefix("{namespace}-"), ns: "team", id: "team-b-portal",
			msg: []string{`"team-b-portal" belongs to namespace team-b`, `does not start with "team-b-"`}},
		{name: "the longest namespace owns the id", p: withPrefix("{namespace}-"), ns: "team-b", id: "team-b-x-portal",
			msg: []string{"belongs to namespace team-b-x"}},
		{name: "the owner registers it", p: withPrefix("{namespace}-"), ns: "team-b", id: "team-b-portal", ok: true},
		{name: "a namespace that does not exist owns nothing", p: withPrefix("{namespace}-"), ns: "team", id: "team-c-portal", ok: true},
		{name: "the longer name must be followed by the rest of the prefix", p: withPrefix("{namespace}-"), ns: "team", id: "team-bx", ok: true},
		{name: "a lead before the namespace", p: withPrefix("app.{namespace}-"), ns: "team", id: "app.team-b-portal",
			msg: []string{"belongs to namespace team-b"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			c := newClient(nil, namespace("team", nil), namespace("team-b", nil), namespace("team-b-x", nil), namespace("team-a", nil))
			err := tenancy.CheckClientIDPrefix(context.Background(), c, tc.p, tc.ns, tc.id)
			if tc.ok {
				g.Expect(err).NotTo(HaveOccurred())
				return
			}
			g.Expect(blockedReason(err)).To(Equal(dexv1.ReasonClientIDPrefixMismatch), "%v", err)
			for _, m := range tc.msg {
				g.Expect(err.Error()).To(ContainSubstring(m))
			}
			if tc.notMsg != "" {
				g.Expect(err.Error()).NotTo(ContainSubstring(tc.notMsg))
			}
		})
	}
}

func TestOlder(t *testing.T) {
	obj := func(ns, name string, created time.Duration) *corev1.ConfigMap {
		return &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, CreationTimestamp: at(created)}}
	}
	cases := []struct {
		name  string
		a, b  *corev1.ConfigMap
		older bool // Older(a, b)
	}{
		{name: "older first", a: obj("team-b", "z", 0), b: obj("team-a", "a", time.Second), older: true},
		{name: "newer second", a: obj("team-a", "a", time.Second), b: obj("team-b", "z", 0), older: false},
		{name: "same time: by namespace", a: obj("team-a", "z", 0), b: obj("team-b", "a", 0), older: true},
		{name: "same time and namespace: by name", a: obj("team-a", "a", 0), b: obj("team-a", "b", 0), older: true},
		// The key is the string "namespace/name": '-' sorts before '/', so team-a-x/a comes
		// before team-a/b (any strict order will do, as long as it is always the same).
		{name: "same time: compared as the string namespace/name", a: obj("team-a-x", "a", 0), b: obj("team-a", "b", 0), older: true},
		{name: "an object does not precede itself", a: obj("team-a", "a", 0), b: obj("team-a", "a", 0), older: false},
		{name: "sub-second differences count", a: obj("team-b", "b", time.Millisecond), b: obj("team-a", "a", 2*time.Millisecond), older: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			g.Expect(tenancy.Older(tc.a, tc.b)).To(Equal(tc.older), "Older(a, b)")
			if tc.a.Namespace+"/"+tc.a.Name != tc.b.Namespace+"/"+tc.b.Name {
				// A strict total order: exactly one of two different objects comes first.
				g.Expect(tenancy.Older(tc.b, tc.a)).To(Equal(!tc.older), "Older(b, a)")
			}
		})
	}
}

func TestSameDex(t *testing.T) {
	dexAt := func(addr string) *dexv1.DexAdminSpec { return &dexv1.DexAdminSpec{GRPCAddress: addr} }
	objs := []client.Object{
		provider("platform", "main", dexAt("dex.example:5557")),
		provider("platform", "upper", dexAt("DEX.Example:5557")),
		provider("team-a", "copy", dexAt("dex.example:5557")),
		provider("team-a", "other-port", dexAt("dex.example:5558")),
		provider("team-b", "other-host", dexAt("dex2.example:5557")),
		provider("team-b", "no-dex", nil),
	}
	listFails := &interceptor.Funcs{List: func(ctx context.Context, c client.WithWatch, list client.ObjectList, opts ...client.ListOption) error {
		return errors.New("list refused")
	}}
	cases := []struct {
		name  string
		funcs *interceptor.Funcs
		p     *dexv1.OIDCProvider
		want  []string // own key first, then the others in any order
		err   string
	}{
		{name: "same address, compared without case; own key first and once",
			p: provider("platform", "main", dexAt("dex.example:5557")), want: []string{"platform/main", "platform/upper", "team-a/copy"}},
		{name: "from the upper-case spelling",
			p: provider("platform", "upper", dexAt("DEX.Example:5557")), want: []string{"platform/upper", "platform/main", "team-a/copy"}},
		{name: "another port is another Dex",
			p: provider("team-a", "other-port", dexAt("dex.example:5558")), want: []string{"team-a/other-port"}},
		{name: "a provider not stored yet (admission) is listed first",
			p: provider("team-c", "new", dexAt("dex.example:5557")), want: []string{"team-c/new", "platform/main", "platform/upper", "team-a/copy"}},
		{name: "the stored copy's address does not matter, p's does",
			p: provider("team-a", "copy", dexAt("dex2.example:5557")), want: []string{"team-a/copy", "team-b/other-host"}},
		{name: "without spec.dex: only itself, nothing listed", funcs: listFails,
			p: provider("team-b", "no-dex", nil), want: []string{"team-b/no-dex"}},
		{name: "listing fails", funcs: listFails,
			p: provider("platform", "main", dexAt("dex.example:5557")), err: "failed to list OIDCProviders: list refused"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			keys, err := tenancy.SameDex(context.Background(), newClient(tc.funcs, objs...), tc.p)
			if tc.err != "" {
				g.Expect(err).To(MatchError(tc.err))
				return
			}
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(keys).NotTo(BeEmpty())
			g.Expect(keys[0]).To(Equal(tc.want[0]))
			g.Expect(keys[1:]).To(ConsistOf(tc.want[1:]))
		})
	}
}

func TestCheckReservedClientID(t *testing.T) {
	cases := []struct {
		id       string
		reserved bool
	}{
		{tenancy.ProbeClientID, true},
		{"team-a-web", false},
		{tenancy.ProbeClientID + "-2", false},
		{"", false},
	}
	for _, tc := range cases {
		t.Run(tc.id, func(t *testing.T) {
			g := NewWithT(t)
			err := tenancy.CheckReservedClientID(tc.id)
			if !tc.reserved {
				g.Expect(err).NotTo(HaveOccurred())
				return
			}
			g.Expect(blockedReason(err)).To(Equal(dexv1.ReasonInvalidSpec))
			g.Expect(err.Error()).To(ContainSubstring("reserved"))
		})
	}
}

func TestCheckReservedAudience(t *testing.T) {
	dexP := provider("platform", "dex", &dexv1.DexAdminSpec{GRPCAddress: "dex:5557"})
	registry := func(ns, name, issuer, clientID string, audiences ...string) *dexv1.OIDCProvider {
		return &dexv1.OIDCProvider{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
			Spec: dexv1.OIDCProviderSpec{IssuerURL: issuer, ClientID: clientID, Audiences: audiences}}
	}
	otherDex := provider("platform", "other", &dexv1.DexAdminSpec{GRPCAddress: "other:5557"})
	otherDex.Spec.IssuerURL = "https://other.example/dex"
	objs := []client.Object{
		dexP, otherDex,
		registry("team-a", "registry", "https://dex.example/dex/", "team-a-registry"),
		registry("team-b", "registry", "https://dex.example/dex", "team-b-registry", "team-b-extra", "team-b-registry"),
		registry("team-c", "registry", "https://other.example/dex", "team-c-registry"),
	}
	cases := []struct {
		name, ns, id string
		reserved     bool
	}{
		{name: "another team's clientId", ns: "mallory", id: "team-a-registry", reserved: true},
		{name: "another team's audience", ns: "mallory", id: "team-b-extra", reserved: true},
		{name: "the team's own namespace", ns: "team-a", id: "team-a-registry"},
		{name: "the Dex provider's own clientId, from another namespace", ns: "mallory", id: "registry", reserved: true},
		{name: "the audience of a provider of another Dex", ns: "mallory", id: "team-c-registry"},
		{name: "no provider's audience", ns: "mallory", id: "mallory-app"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			err := tenancy.CheckReservedAudience(context.Background(), newClient(nil, objs...), dexP, tc.ns, tc.id)
			if !tc.reserved {
				g.Expect(err).NotTo(HaveOccurred())
				return
			}
			g.Expect(blockedReason(err)).To(Equal(dexv1.ReasonClientIDReserved), "%v", err)
			g.Expect(err.Error()).To(ContainSubstring("spec.clientId"))
		})
	}
}
