package clientspec

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"testing"

	. "github.com/onsi/gomega"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"sigs.k8s.io/yaml"

	dexv1 "dexterity.dev/dexterity/api/v1alpha1"
)

// manyURIs returns n distinct https redirect URIs of length bytes each.
func manyURIs(n, length int) []string {
	out := make([]string, n)
	for i := range out {
		u := fmt.Sprintf("https://app.example.com/%04d/", i)
		out[i] = u + strings.Repeat("a", length-len(u))
	}
	return out
}

// Check accepts what real clients use and the largest spec the schema admits, and refuses,
// naming the field and the fix, what exceeds the bounds or breaks the redirect URI rule.
func TestCheck(t *testing.T) {
	lr := func(from, to int32, path string) *dexv1.LoopbackRedirect {
		return &dexv1.LoopbackRedirect{Ports: []int32{from, to}, Path: path}
	}
	ok := []struct {
		name string
		spec dexv1.DexStaticClientSpec
	}{
		{"tofu login", dexv1.DexStaticClientSpec{LoopbackRedirect: lr(10000, 10010, "/login")}},
		{"default path", dexv1.DexStaticClientSpec{LoopbackRedirect: lr(10000, 10010, "")}},
		{"web app", dexv1.DexStaticClientSpec{RedirectURIs: []string{"https://app.example.com/cb", "http://localhost:8000/cb", "http://127.0.0.1/cb", "http://127.1.2.3:8000/cb", "http://[::1]:8000/cb"}}},
		{"largest", dexv1.DexStaticClientSpec{
			RedirectURIs:     manyURIs(MaxRedirectURIs, MaxRedirectURILength),
			LoopbackRedirect: lr(65535-MaxLoopbackPorts+1, 65535, "/"+strings.Repeat("p", MaxLoopbackPathLength-1)),
		}},
		{"path with every allowed character", dexv1.DexStaticClientSpec{LoopbackRedirect: lr(1, 1, "/a-Z0._~!$&'()*+,;=:@%2F/")}},
	}
	for _, tc := range ok {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			g.Expect(Check(&tc.spec)).To(Succeed())
			got := RedirectURIs(&tc.spec)
			g.Expect(len(got)).To(BeNumerically("<=", MaxEffectiveRedirectURIs))
			size := 0
			for _, u := range got {
				size += len(u)
			}
			g.Expect(size).To(BeNumerically("<=", MaxEffectiveRedirectBytes))
		})
	}

	refused := []struct {
		name string
		spec dexv1.DexStaticClientSpec
		want []string // all in the message
	}{
		{"1,000 ports and a long path (the balloon)", dexv1.DexStaticClientSpec{LoopbackRedirect: lr(10000, 10999, "/"+strings.Repeat("a", 1<<20))},
			[]string{"spec.loopbackRedirect.ports", "1000 ports", "at most 100", "[10000, 10010]"}},
		{"101 ports", dexv1.DexStaticClientSpec{LoopbackRedirect: lr(10000, 10100, "/login")},
			[]string{"spec.loopbackRedirect.ports", "101 ports", "narrow the range"}},
		{"every port", dexv1.DexStaticClientSpec{LoopbackRedirect: lr(1, 65535, "/login")},
			[]string{"spec.loopbackRedirect.ports", "65535 ports"}},
		{"reversed", dexv1.DexStaticClientSpec{LoopbackRedirect: lr(10010, 10000, "/login")},
			[]string{"spec.loopbackRedirect.ports", "from <= to"}},
		{"port 0", dexv1.DexStaticClientSpec{LoopbackRedirect: lr(0, 10, "/login")},
			[]string{"spec.loopbackRedirect.ports", "between 1 and 65535"}},
		{"negative port", dexv1.DexStaticClientSpec{LoopbackRedirect: lr(-2147483648, 10, "/login")},
			[]string{"spec.loopbackRedirect.ports", "between 1 and 65535"}},
		{"one port given", dexv1.DexStaticClientSpec{LoopbackRedirect: &dexv1.LoopbackRedirect{Ports: []int32{10000}}},
			[]string{"spec.loopbackRedirect.ports", "[from, to]"}},
		{"long path", dexv1.DexStaticClientSpec{LoopbackRedirect: lr(10000, 10010, "/"+strings.Repeat("a", MaxLoopbackPathLength))},
			[]string{"spec.loopbackRedirect.path", "257 bytes", "at most 256"}},
		{"path without slash", dexv1.DexStaticClientSpec{LoopbackRedirect: lr(10000, 10010, "login")},
			[]string{"spec.loopbackRedirect.path", "start with /"}},
		{"path with a query", dexv1.DexStaticClientSpec{LoopbackRedirect: lr(10000, 10010, "/login?next=x")},
			[]string{"spec.loopbackRedirect.path", "no query"}},
		{"path with a fragment", dexv1.DexStaticClientSpec{LoopbackRedirect: lr(10000, 10010, "/login#x")},
			[]string{"spec.loopbackRedirect.path"}},
		{"path with a space", dexv1.DexStaticClientSpec{LoopbackRedirect: lr(10000, 10010, "/log in")},
			[]string{"spec.loopbackRedirect.path"}},
		{"201 redirect URIs", dexv1.DexStaticClientSpec{RedirectURIs: manyURIs(MaxRedirectURIs+1, 64)},
			[]string{"spec.redirectURIs", "at most 200", "spec.loopbackRedirect"}},
		{"long redirect URI", dexv1.DexStaticClientSpec{RedirectURIs: []string{"https://app.example.com/" + strings.Repeat("a", 1<<20)}},
			[]string{"spec.redirectURIs[0]", "at most 2048", "shorten"}},
		{"http on a host named like a loopback address", dexv1.DexStaticClientSpec{RedirectURIs: []string{"https://ok.example.com/cb", "http://127.evil.example/cb"}},
			[]string{"spec.redirectURIs[1]", "127.evil.example", "loopback", "use https"}},
		{"http on 127.0.0.1.nip.io", dexv1.DexStaticClientSpec{RedirectURIs: []string{"http://127.0.0.1.nip.io/cb"}},
			[]string{"spec.redirectURIs[0]", "loopback"}},
		{"http with a loopback address as user info", dexv1.DexStaticClientSpec{RedirectURIs: []string{"http://127.0.0.1:80@evil.example/cb"}},
			[]string{"spec.redirectURIs[0]", "loopback"}},
		{"http off loopback", dexv1.DexStaticClientSpec{RedirectURIs: []string{"http://app.example.com/cb"}},
			[]string{"spec.redirectURIs[0]", "loopback"}},
		{"relative", dexv1.DexStaticClientSpec{RedirectURIs: []string{"/callback"}},
			[]string{"spec.redirectURIs[0]", "absolute URL"}},
		{"not http", dexv1.DexStaticClientSpec{RedirectURIs: []string{"javascript://alert(1)"}},
			[]string{"spec.redirectURIs[0]", "http(s)"}},
	}
	for _, tc := range refused {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			err := Check(&tc.spec)
			g.Expect(err).To(HaveOccurred())
			for _, w := range tc.want {
				g.Expect(err.Error()).To(ContainSubstring(w))
			}
			g.Expect(len(err.Error())).To(BeNumerically("<", 1024), "the message quotes no large value")
			g.Expect(RedirectURIs(&tc.spec)).To(BeNil(), "nothing is built from a refused spec")
		})
	}
}

// An object that bypassed admission (stored before the bounds, or written with the webhooks
// off) with a 1,000-port range and a 64 KiB path would expand to 64 MiB: Check refuses it
// without building any of that, and so does RedirectURIs (the controller's Desired).
func TestCheckRefusesWithoutBuildingTheExpansion(t *testing.T) {
	g := NewWithT(t)
	path := "/" + strings.Repeat("a", 64<<10)
	spec := &dexv1.DexStaticClientSpec{
		RedirectURIs:     []string{"https://app.example.com/cb"},
		LoopbackRedirect: &dexv1.LoopbackRedirect{Ports: []int32{10000, 10999}, Path: path},
	}
	expansion := 1000 * (len("http://localhost:10000") + len(path))
	g.Expect(Check(spec)).To(HaveOccurred())

	for name, f := range map[string]func(){
		"Check":        func() { _ = Check(spec) },
		"RedirectURIs": func() { _ = RedirectURIs(spec) },
	} {
		allocs := testing.AllocsPerRun(10, f)
		bytes := allocatedBy(f)
		t.Logf("%s of a spec that would expand to %d bytes: %.0f allocations, %d bytes", name, expansion, allocs, bytes)
		g.Expect(allocs).To(BeNumerically("<=", 100), name)
		g.Expect(bytes).To(BeNumerically("<", 8<<10), name+": far less than the expansion")
	}
}

// allocatedBy is the bytes f allocates (the average of 10 runs).
func allocatedBy(f func()) uint64 {
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	for range 10 {
		f()
	}
	runtime.ReadMemStats(&after)
	return (after.TotalAlloc - before.TotalAlloc) / 10
}

// The bounds the controller re-checks are the schema's: the CRD as generated says the same.
func TestBoundsMatchTheCRD(t *testing.T) {
	g := NewWithT(t)
	raw, err := os.ReadFile(filepath.Join("..", "..", "config", "crd", "bases", "dexterity.dev_dexstaticclients.yaml"))
	g.Expect(err).NotTo(HaveOccurred())
	var crd apiextensionsv1.CustomResourceDefinition
	g.Expect(yaml.Unmarshal(raw, &crd)).To(Succeed())
	schema := crd.Spec.Versions[0].Schema.OpenAPIV3Schema
	spec, status := schema.Properties["spec"], schema.Properties["status"]

	uris := spec.Properties["redirectURIs"]
	g.Expect(uris.MaxItems).To(HaveValue(BeEquivalentTo(MaxRedirectURIs)))
	g.Expect(uris.Items.Schema.MaxLength).To(HaveValue(BeEquivalentTo(MaxRedirectURILength)))
	g.Expect(status.Properties["redirectURIs"].MaxItems).To(HaveValue(BeNumerically(">=", MaxEffectiveRedirectURIs)),
		"status.redirectURIs must hold the largest effective list, or the status write fails")
	g.Expect(status.Properties["redirectURIs"].Items.Schema.MaxLength).To(HaveValue(BeNumerically(">=", MaxRedirectURILength)))

	lr := spec.Properties["loopbackRedirect"]
	path := lr.Properties["path"]
	g.Expect(path.MaxLength).To(HaveValue(BeEquivalentTo(MaxLoopbackPathLength)))
	g.Expect(string(path.Default.Raw)).To(Equal(`"` + DefaultLoopbackPath + `"`))
	pattern := regexp.MustCompile(path.Pattern)
	for _, p := range []string{"/login", "/", "/a/b", "/a-Z0._~!$&'()*+,;=:@%2F/", "login", "", "/a?b", "/a#b", "/a b", "/a\"b", "/a\\b", "/ä", "/a\nb", "/<x>"} {
		g.Expect(isURLPath(p)).To(Equal(pattern.MatchString(p)), "path %q: the schema's pattern and isURLPath disagree", p)
	}
	rules := lr.Properties["ports"].XValidations
	g.Expect(rules).To(HaveLen(1))
	g.Expect(rules[0].Rule).To(ContainSubstring("self[1] - self[0] < " + strconv.Itoa(MaxLoopbackPorts)))
}
