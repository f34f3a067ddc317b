package tenancy_test

import (
	"testing"
	"time"

	. "github.com/onsi/gomega"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	dexv1 "dexterity.dev/dexterity/api/v1alpha1"
	"dexterity.dev/dexterity/internal/tenancy"
)

// registry returns an OIDCProvider serving hosts, created at t0+created (zero time when created
// is nil: not created yet).
func registry(ns, name string, created *time.Duration, hosts ...string) dexv1.OIDCProvider {
	p := dexv1.OIDCProvider{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec:       dexv1.OIDCProviderSpec{IssuerURL: "https://dex.example/dex", ClientID: "registry", Hostnames: hosts},
	}
	if created != nil {
		p.CreationTimestamp = at(*created)
	}
	return p
}

func after(d time.Duration) *time.Duration { return &d }

func deleting(p dexv1.OIDCProvider) dexv1.OIDCProvider {
	now := at(time.Hour)
	p.DeletionTimestamp = &now
	p.Finalizers = []string{"dexterity.dev/finalizer"}
	return p
}

func TestNormalizeHostname(t *testing.T) {
	cases := []struct{ in, want string }{
		{"registry.example.com", "registry.example.com"},
		{"Registry.Example.COM", "registry.example.com"},
		{"  registry.example.com\t", "registry.example.com"},
		{"registry.example.com:8443", "registry.example.com:8443"},
		{"", ""},
	}
	for _, tc := range cases {
		t.Run(tc.in, func(t *testing.T) {
			NewWithT(t).Expect(tenancy.NormalizeHostname(tc.in)).To(Equal(tc.want))
		})
	}
}

func TestHostnameHolder(t *testing.T) {
	const host = "registry.example.com"
	cases := []struct {
		name string
		all  []dexv1.OIDCProvider
		host string
		want string // namespace/name of the holder, "" for none
	}{
		{name: "no providers", all: nil, host: host},
		{name: "nobody lists it", all: []dexv1.OIDCProvider{registry("team-a", "p", after(0), "other.example.com")}, host: host},
		{name: "the only one listing it", all: []dexv1.OIDCProvider{
			registry("team-a", "p", after(0), "other.example.com"),
			registry("team-b", "q", after(time.Hour), "other.example.com", host),
		}, host: host, want: "team-b/q"},
		{name: "oldest wins, wherever it is in the list", all: []dexv1.OIDCProvider{
			registry("team-a", "newer", after(time.Minute), host),
			registry("team-z", "oldest", after(0), host),
			registry("team-b", "newest", after(time.Hour), host),
		}, host: host, want: "team-z/oldest"},
		{name: "same age: by namespace", all: []dexv1.OIDCProvider{
			registry("team-b", "a", after(0), host),
			registry("team-a", "z", after(0), host),
		}, host: host, want: "team-a/z"},
		{name: "same age and namespace: by name", all: []dexv1.OIDCProvider{
			registry("team-a", "b", after(0), host),
			registry("team-a", "a", after(0), host),
		}, host: host, want: "team-a/a"},
		{name: "a provider being deleted holds nothing", all: []dexv1.OIDCProvider{
			deleting(registry("team-a", "oldest", after(0), host)),
			registry("team-b", "newer", after(time.Hour), host),
		}, host: host, want: "team-b/newer"},
		{name: "only providers being deleted: nobody", all: []dexv1.OIDCProvider{
			deleting(registry("team-a", "p", after(0), host)),
		}, host: host},
		{name: "hosts compared without case, listed side", all: []dexv1.OIDCProvider{
			registry("team-a", "p", after(0), "Registry.Example.COM"),
		}, host: host, want: "team-a/p"},
		{name: "hosts compared without case and spaces, asked side", all: []dexv1.OIDCProvider{
			registry("team-a", "p", after(0), host),
		}, host: " REGISTRY.example.com ", want: "team-a/p"},
		{name: "a port makes another host", all: []dexv1.OIDCProvider{
			registry("team-a", "p", after(0), host+":8443"),
		}, host: host},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			holder, ok := tenancy.HostnameHolder(tc.all, tc.host)
			if tc.want == "" {
				g.Expect(ok).To(BeFalse())
				g.Expect(holder).To(BeNil())
				return
			}
			g.Expect(ok).To(BeTrue())
			g.Expect(holder.Namespace + "/" + holder.Name).To(Equal(tc.want))
		})
	}
}

func TestHostnameConflicts(t *testing.T) {
	const host = "registry.example.com"
	conflict := func(h, ns, name string) tenancy.HostnameConflict {
		return tenancy.HostnameConflict{Host: h, Holder: types.NamespacedName{Namespace: ns, Name: name}}
	}
	cases := []struct {
		name string
		p    dexv1.OIDCProvider
		all  []dexv1.OIDCProvider
		want []tenancy.HostnameConflict
	}{
		{name: "no hostnames", p: registry("team-a", "p", after(time.Hour)),
			all: []dexv1.OIDCProvider{registry("team-b", "q", after(0), host)}},
		{name: "nobody else lists it", p: registry("team-a", "p", after(time.Hour), host),
			all: []dexv1.OIDCProvider{registry("team-b", "q", after(0), "other.example.com")}},
		{name: "p is older: no conflict", p: registry("team-a", "p", after(0), host),
			all: []dexv1.OIDCProvider{registry("team-b", "q", after(time.Hour), host)}},
		{name: "p is newer: the older holds it", p: registry("team-a", "p", after(time.Hour), host),
			all:  []dexv1.OIDCProvider{registry("team-b", "q", after(0), host)},
			want: []tenancy.HostnameConflict{conflict(host, "team-b", "q")}},
		{name: "same age: namespace/name decides, p second", p: registry("team-b", "p", after(0), host),
			all:  []dexv1.OIDCProvider{registry("team-a", "q", after(0), host)},
			want: []tenancy.HostnameConflict{conflict(host, "team-a", "q")}},
		{name: "same age: namespace/name decides, p first", p: registry("team-a", "p", after(0), host),
			all: []dexv1.OIDCProvider{registry("team-b", "q", after(0), host)}},
		{name: "the older holder is being deleted: no conflict", p: registry("team-a", "p", after(time.Hour), host),
			all: []dexv1.OIDCProvider{deleting(registry("team-b", "q", after(0), host))}},
		{name: "not created yet (admission): newer than everyone, even one created just now",
			p:    registry("team-a", "new", nil, host),
			all:  []dexv1.OIDCProvider{{ObjectMeta: metav1.ObjectMeta{Namespace: "team-z", Name: "q", CreationTimestamp: metav1.NewTime(time.Now().Add(-time.Second))}, Spec: dexv1.OIDCProviderSpec{Hostnames: []string{host}}}},
			want: []tenancy.HostnameConflict{conflict(host, "team-z", "q")}},
		{name: "not created yet and nobody else lists it", p: registry("team-a", "new", nil, host),
			all: []dexv1.OIDCProvider{registry("team-b", "q", after(0), "other.example.com")}},
		{name: "p's own stored copy is ignored, p is what counts", p: registry("team-a", "p", after(0), host),
			all: []dexv1.OIDCProvider{
				registry("team-a", "p", after(-time.Hour), "stale.example.com"),
				registry("team-b", "q", after(time.Minute), host),
			}},
		{name: "hosts compared without case; the conflict names the normalized host", p: registry("team-a", "p", after(time.Hour), "Registry.Example.COM"),
			all:  []dexv1.OIDCProvider{registry("team-b", "q", after(0), "registry.EXAMPLE.com")},
			want: []tenancy.HostnameConflict{conflict(host, "team-b", "q")}},
		{name: "one host listed twice in two spellings: one conflict", p: registry("team-a", "p", after(time.Hour), host, "REGISTRY.example.com"),
			all:  []dexv1.OIDCProvider{registry("team-b", "q", after(0), host)},
			want: []tenancy.HostnameConflict{conflict(host, "team-b", "q")}},
		{name: "only the hosts held by others, in p's order, each with its holder",
			p: registry("team-a", "p", after(time.Hour), "c.example.com", "free.example.com", "a.example.com"),
			all: []dexv1.OIDCProvider{
				registry("team-b", "holds-a", after(0), "a.example.com"),
				registry("team-c", "holds-c", after(time.Minute), "c.example.com"),
				registry("team-d", "newer", after(2*time.Hour), "free.example.com", "a.example.com"),
			},
			want: []tenancy.HostnameConflict{conflict("c.example.com", "team-c", "holds-c"), conflict("a.example.com", "team-b", "holds-a")}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			p := tc.p
			g.Expect(tenancy.HostnameConflicts(&p, tc.all)).To(Equal(tc.want))
			g.Expect(p.CreationTimestamp).To(Equal(tc.p.CreationTimestamp), "p is not changed")
		})
	}
}
