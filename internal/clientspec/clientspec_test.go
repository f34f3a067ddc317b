package clientspec

import (
	"testing"

	api "github.com/dexidp/dex/api/v2"
	. "github.com/onsi/gomega"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	dexv1 "dexterity.dev/dexterity/api/v1alpha1"
)

func TestRedirectURIs(t *testing.T) {
	g := NewWithT(t)
	spec := &dexv1.DexStaticClientSpec{
		RedirectURIs:     []string{"https://b.example.com/cb", "http://localhost:10001/login", "https://a.example.com/cb"},
		LoopbackRedirect: &dexv1.LoopbackRedirect{Ports: []int32{10000, 10002}, Path: "/login"},
	}
	g.Expect(RedirectURIs(spec)).To(Equal([]string{
		"http://localhost:10000/login", "http://localhost:10001/login", "http://localhost:10002/login",
		"https://a.example.com/cb", "https://b.example.com/cb",
	}))
	g.Expect(RedirectURIs(&dexv1.DexStaticClientSpec{LoopbackRedirect: &dexv1.LoopbackRedirect{Ports: []int32{10000, 10010}}})).To(HaveLen(11))
	g.Expect(RedirectURIs(&dexv1.DexStaticClientSpec{})).To(BeEmpty())
}

func TestPlan(t *testing.T) {
	c := &dexv1.DexStaticClient{
		ObjectMeta: metav1.ObjectMeta{Name: "cli", Namespace: "team-a"},
		Spec: dexv1.DexStaticClientSpec{
			DisplayName:  "Team A",
			RedirectURIs: []string{"https://a.example.com/cb"},
			TrustedPeers: []string{"z", "a"},
			LogoURL:      "https://a.example.com/logo.png",
		},
	}
	desired := Desired(c, "team-a-cli", "s3cret")
	with := func(mut func(*api.Client)) *api.Client {
		a := &api.Client{Id: desired.Id, Secret: desired.Secret, RedirectUris: desired.RedirectUris, TrustedPeers: []string{"a", "z"}, Public: desired.Public, Name: desired.Name, LogoUrl: desired.LogoUrl}
		mut(a)
		return a
	}
	cases := []struct {
		name    string
		actual  *api.Client
		desired *api.Client
		want    Action
	}{
		{"missing", nil, desired, Create},
		{"same", with(func(*api.Client) {}), desired, None},
		{"peers in another order", with(func(a *api.Client) { a.TrustedPeers = []string{"z", "a"} }), desired, None},
		{"new redirect", with(func(a *api.Client) { a.RedirectUris = []string{"https://old.example.com"} }), desired, Update},
		{"renamed", with(func(a *api.Client) { a.Name = "old" }), desired, Update},
		{"secret changed", with(func(a *api.Client) { a.Secret = "old" }), desired, Recreate},
		{"public flipped", with(func(a *api.Client) { a.Public = true }), desired, Recreate},
		{"peers cleared", with(func(*api.Client) {}), Desired(&dexv1.DexStaticClient{Spec: dexv1.DexStaticClientSpec{DisplayName: "Team A", RedirectURIs: c.Spec.RedirectURIs, LogoURL: c.Spec.LogoURL}}, "team-a-cli", "s3cret"), Recreate},
		{"logo cleared", with(func(*api.Client) {}), Desired(&dexv1.DexStaticClient{Spec: dexv1.DexStaticClientSpec{DisplayName: "Team A", RedirectURIs: c.Spec.RedirectURIs, TrustedPeers: c.Spec.TrustedPeers}}, "team-a-cli", "s3cret"), Recreate},
		{"public client ignores stored secret", &api.Client{Id: "p", Public: true, Secret: "x", Name: "p"}, &api.Client{Id: "p", Public: true, Name: "p"}, None},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, reason := Plan(tc.actual, tc.desired)
			NewWithT(t).Expect(got).To(Equal(tc.want), reason)
			if got != None {
				NewWithT(t).Expect(reason).NotTo(ContainSubstring("s3cret"))
			}
		})
	}
}
