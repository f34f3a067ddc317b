package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"runtime"
	"strings"
	"testing"

	. "github.com/onsi/gomega"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	toolscache "k8s.io/client-go/tools/cache"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	dexv1 "dexterity.dev/dexterity/api/v1alpha1"
	"dexterity.dev/dexterity/internal/authz"
	"dexterity.dev/dexterity/internal/clientspec"
	"dexterity.dev/dexterity/internal/registry"
)

// The bounds of the tenant kinds' schemas (api/v1alpha1), as the worst-case objects use them.
const (
	maxName        = 253
	maxDisplayName = 256
	maxURL         = 2048
	maxTrustedPeer = 253
	maxExpression  = 4096
	maxGlobs       = 100
	maxGlob        = 256
	maxSegment     = 64
	maxVersion     = 128
	maxSource      = 4096
	maxVersions    = 500
	maxKeys        = 20
	maxArmor       = 65536
	maxTrustSig    = 16384
	maxPlatforms   = 50
	maxFilename    = 255
	maxOSArch      = 32
)

// TestWorstCaseObjects builds the worst-case object of each tenant kind (every string at its
// maximum length, every list at its maximum count) and what the manager builds from it: the
// DexStaticClient's Dex client (the expanded redirect URI list, clientspec.Desired), the
// GroupBinding's compiled expression (authz.Compile) and the registry Store's read model
// (bindings with their globs, Modules and Providers by address, fed through the Store's informer
// handlers as the manager feeds them). It measures the heap that building allocates and what
// stays reachable afterwards (both after a GC), and checks them against the object's own size
// (its JSON) and 1 MiB (design.md §7 "Tenants").
//
// Run: go test ./test/bench/ -run TestWorstCaseObjects -v (no envtest, no Dex).
func TestWorstCaseObjects(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name  string
		obj   client.Object
		build func(client.Object) any
		// allocFactor bounds what building allocates, as a multiple of the object's JSON size
		// (plus a constant of 64 KiB); retainFactor what stays reachable.
		allocFactor, retainFactor float64
	}{
		{"DexStaticClient/Desired", worstClient(), func(o client.Object) any {
			c := o.(*dexv1.DexStaticClient)
			if err := clientspec.Check(&c.Spec); err != nil {
				t.Fatal(err)
			}
			return clientspec.Desired(c, c.EffectiveClientID(), "secret")
		}, 3, 1.5},
		{"GroupBinding/Compile long literal", worstBinding(longLiteral()), compileOf(t), 4, 2},
		{"GroupBinding/Compile most nodes", worstBinding(mostNodes()), compileOf(t), 40, 10},
		{"GroupBinding/Compile refused (over the cost bound)", worstBinding(overCost()), compileOf(t), 40, 10},
		{"GroupBinding/registry store", worstBinding(mostNodes()), storeOf(ctx, t), 40, 10},
		{"Module/registry store", worstModule(), storeOf(ctx, t), 1, 0.5},
		{"Provider/registry store", worstProvider(), storeOf(ctx, t), 1, 0.5},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			raw, err := json.Marshal(tc.obj)
			g.Expect(err).NotTo(HaveOccurred())
			size := float64(len(raw))
			allocated, retained := measure(func() any { return tc.build(tc.obj) })
			t.Logf("%-52s object %8.1f KiB; building allocates %8.1f KiB (%5.2fx), keeps %8.1f KiB (%5.2fx)",
				tc.name, size/1024, float64(allocated)/1024, float64(allocated)/size, float64(retained)/1024, float64(retained)/size)
			g.Expect(float64(allocated)).To(BeNumerically("<=", tc.allocFactor*size+64<<10), "allocated")
			g.Expect(float64(retained)).To(BeNumerically("<=", tc.retainFactor*size+64<<10), "retained")
			g.Expect(retained).To(BeNumerically("<", 1<<20), "what one object makes the manager keep is far under 1 MiB")
		})
	}
}

// measure returns the bytes build allocates and the growth of the live heap it leaves (what it
// returns stays reachable until the second reading).
func measure(build func() any) (allocated, retained int64) {
	var before, after runtime.MemStats
	runtime.GC()
	runtime.GC()
	runtime.ReadMemStats(&before)
	v := build()
	runtime.GC()
	runtime.GC()
	runtime.ReadMemStats(&after)
	runtime.KeepAlive(v)
	return int64(after.TotalAlloc - before.TotalAlloc), max(0, int64(after.HeapAlloc)-int64(before.HeapAlloc))
}

func compileOf(t *testing.T) func(client.Object) any {
	return func(o client.Object) any {
		p, err := authz.Compile(o.(*dexv1.GroupBinding).Spec.Expression)
		if err != nil && !authz.IsTooCostly(err) {
			t.Fatalf("compile: %v", err)
		}
		t.Logf("compiled: %v (error: %v)", p != nil, err)
		return p
	}
}

// storeOf returns a build that feeds an object to a new registry Store through its informer
// handlers (as the manager's informers do) and returns the Store.
func storeOf(ctx context.Context, t *testing.T) func(client.Object) any {
	return func(o client.Object) any {
		s := registry.NewStore("")
		inf := &fakeInformers{handlers: map[string]toolscache.ResourceEventHandler{}}
		if err := s.Watch(ctx, inf); err != nil {
			t.Fatal(err)
		}
		h := inf.handlers[fmt.Sprintf("%T", o)]
		if h == nil {
			t.Fatalf("the Store does not watch %T", o)
		}
		h.OnAdd(o, true)
		return s
	}
}

func ref(n int) dexv1.ObjectRef {
	return dexv1.ObjectRef{Name: strings.Repeat("p", n), Namespace: strings.Repeat("n", 63)}
}

func worstMeta(kind string) metav1.ObjectMeta {
	return metav1.ObjectMeta{Name: kind, Namespace: "team-a", UID: types.UID("uid-" + kind), Generation: 1}
}

func worstClient() *dexv1.DexStaticClient {
	uris := make([]string, clientspec.MaxRedirectURIs)
	for i := range uris {
		u := fmt.Sprintf("https://app.example.com/%04d/", i)
		uris[i] = u + strings.Repeat("a", clientspec.MaxRedirectURILength-len(u))
	}
	peers := make([]string, 100)
	for i := range peers {
		peers[i] = fmt.Sprintf("%04d", i) + strings.Repeat("c", maxTrustedPeer-4)
	}
	return &dexv1.DexStaticClient{ObjectMeta: worstMeta("client"), Spec: dexv1.DexStaticClientSpec{
		ProviderRef:      ref(maxName),
		ClientID:         strings.Repeat("i", maxName),
		DisplayName:      strings.Repeat("d", maxDisplayName),
		RedirectURIs:     uris,
		LoopbackRedirect: &dexv1.LoopbackRedirect{Ports: []int32{65535 - clientspec.MaxLoopbackPorts + 1, 65535}, Path: "/" + strings.Repeat("l", clientspec.MaxLoopbackPathLength-1)},
		TrustedPeers:     peers,
		LogoURL:          "https://logo.example.com/" + strings.Repeat("g", maxURL-25),
		SecretRef:        &dexv1.SecretKeyRef{Name: strings.Repeat("s", maxName), Key: strings.Repeat("k", maxName)},
		GenerateSecret:   true,
	}}
}

func worstBinding(expression string) *dexv1.GroupBinding {
	if len(expression) > maxExpression {
		panic(fmt.Sprintf("expression of %d bytes is over the bound", len(expression)))
	}
	// The costliest patterns the registry accepts (authz.CheckResources): as many "*" as allowed,
	// the rest character classes, at the length bound.
	globs := func(prefix string) []string {
		out := make([]string, maxGlobs)
		for i := range out {
			p := fmt.Sprintf("%s-%03d/", prefix, i) + strings.Repeat("[A-Z]*?", authz.MaxPatternStars)
			out[i] = p + strings.Repeat("[A-Z]", (maxGlob-len(p))/5)
		}
		return out
	}
	return &dexv1.GroupBinding{ObjectMeta: worstMeta("binding"), Spec: dexv1.GroupBindingSpec{
		Expression: expression, ModuleResources: globs("Module"), ProviderResources: globs("Provider"),
	}}
}

// longLiteral is one string literal as long as the bound allows.
func longLiteral() string {
	return `"` + strings.Repeat("a", maxExpression-len(`"" in groups`)) + `" in groups`
}

// mostNodes is an accepted expression with as many nodes as fit in the bound (expr refuses more
// than authz.MaxNodes; cheap terms, so that the cost bound admits it).
func mostNodes() string {
	var sb strings.Builder
	for i := 0; ; i++ {
		term := fmt.Sprintf(`len(groups) != %d`, i)
		if sb.Len()+len(term)+4 > maxExpression {
			break
		}
		if i > 0 {
			sb.WriteString(" && ")
		}
		sb.WriteString(term)
	}
	return sb.String()
}

// overCost is refused by the cost bound: loops nested over groups.
func overCost() string {
	return `all(groups, {all(groups, {all(groups, {# != ""})})})`
}

func worstModule() *dexv1.Module {
	versions := make([]dexv1.ModuleVersion, maxVersions)
	for i := range versions {
		v := fmt.Sprintf("%d.0.0-", i)
		versions[i] = dexv1.ModuleVersion{Version: v + strings.Repeat("r", maxVersion-len(v)),
			Source: "https://downloads.example.org/" + strings.Repeat("m", maxSource-30)}
	}
	return &dexv1.Module{ObjectMeta: worstMeta("module"), Spec: dexv1.ModuleSpec{
		Namespace: strings.Repeat("N", maxSegment), Name: strings.Repeat("M", maxSegment), System: strings.Repeat("s", maxSegment),
		Versions: versions,
	}}
}

// worstProvider has every string at its maximum length and the most keys; of the versions ×
// platforms (500 × 50 at most: 160 MiB, far over what the API server stores, 1.5 MiB by etcd's
// default limit) it has 10 × 50, already more than the API server accepts.
func worstProvider() *dexv1.Provider {
	keys := make([]dexv1.GPGPublicKey, maxKeys)
	for i := range keys {
		keys[i] = dexv1.GPGPublicKey{KeyID: strings.Repeat("A", 40),
			ASCIIArmor:     "-----BEGIN PGP PUBLIC KEY BLOCK-----" + strings.Repeat("k", maxArmor-36),
			TrustSignature: strings.Repeat("t", maxTrustSig), Source: strings.Repeat("s", 256), SourceURL: "https://" + strings.Repeat("u", maxURL-8)}
	}
	url := "https://downloads.example.org/" + strings.Repeat("d", maxURL-30)
	versions := make([]dexv1.ProviderVersion, 10)
	for i := range versions {
		platforms := make([]dexv1.ProviderPlatform, maxPlatforms)
		for j := range platforms {
			platforms[j] = dexv1.ProviderPlatform{OS: fmt.Sprintf("os%02d", j) + strings.Repeat("o", maxOSArch-4), Arch: strings.Repeat("a", maxOSArch),
				Filename: strings.Repeat("f", maxFilename), DownloadURL: url, Shasum: strings.Repeat("0", 64), ShasumsURL: url, ShasumsSignatureURL: url}
		}
		versions[i] = dexv1.ProviderVersion{Version: fmt.Sprintf("%d.0.0", i), Protocols: []string{"5.0", "6.0"}, Platforms: platforms}
	}
	return &dexv1.Provider{ObjectMeta: worstMeta("provider"), Spec: dexv1.ProviderSpec{
		Namespace: strings.Repeat("N", maxSegment), Type: strings.Repeat("t", maxSegment),
		SigningKeys: dexv1.SigningKeys{GPGPublicKeys: keys}, Versions: versions,
	}}
}

// fakeInformers hands out informers that only record their event handler, by object type, so
// that a test feeds objects to a handler as the manager's informers would.
type fakeInformers struct {
	cache.Informers
	handlers map[string]toolscache.ResourceEventHandler
}

func (f *fakeInformers) GetInformer(_ context.Context, obj client.Object, _ ...cache.InformerGetOption) (cache.Informer, error) {
	return &fakeInformer{record: func(h toolscache.ResourceEventHandler) { f.handlers[fmt.Sprintf("%T", obj)] = h }}, nil
}

type fakeInformer struct {
	cache.Informer
	record func(toolscache.ResourceEventHandler)
}

func (f *fakeInformer) AddEventHandler(h toolscache.ResourceEventHandler) (toolscache.ResourceEventHandlerRegistration, error) {
	f.record(h)
	return synced{}, nil
}

type synced struct{}

func (synced) HasSynced() bool { return true }
