package controllers_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"sync"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	"go.uber.org/zap/zapcore"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"dexterity.dev/dexterity/controllers"
	"dexterity.dev/dexterity/internal/dex"
	"dexterity.dev/dexterity/internal/oidc"
	"dexterity.dev/dexterity/test/harness"
)

// Shared by the tests of this package: one envtest, one manager, a plain Dex and an mTLS Dex.
var (
	k8s        client.Client
	restConfig *rest.Config
	plainDex   *harness.Dex
	mtlsDex    *harness.Dex
	pool       *dex.Pool
	keys       *oidc.Cache
	// managerCache is the manager's cache (what the controllers hold in memory).
	managerCache cache.Cache
)

// resyncPeriod of drift repair in these tests.
const resyncPeriod = 3 * time.Second

// keyRefreshInterval caps the signing-key refresh interval in these tests.
const keyRefreshInterval = 2 * time.Second

func TestMain(m *testing.M) {
	os.Exit(runSuite(m))
}

func runSuite(m *testing.M) int {
	// Everything the manager logs, at debug level, goes to managerLog (tests assert that no secret
	// is ever logged); warnings and errors also go to stderr.
	ctrl.SetLogger(zap.New(zap.UseDevMode(true), zap.WriteTo(io.MultiWriter(&managerLog, levelFilter{os.Stderr})), zap.Level(zapcore.Level(-5))))
	env, err := harness.StartEnv(harness.EnvOptions{})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer func() { _ = env.Stop() }()
	k8s = env.Client
	restConfig = env.Config

	dir, err := os.MkdirTemp("", "dexterity-controllers-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer func() { _ = os.RemoveAll(dir) }()
	plainDex, err = harness.StartDex(harness.DexOptions{Dir: dir + "/plain"})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer func() { _ = plainDex.Stop() }()
	mtlsDex, err = harness.StartDex(harness.DexOptions{Dir: dir + "/mtls", MTLS: true})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer func() { _ = mtlsDex.Stop() }()

	mgr, err := ctrl.NewManager(env.Config, ctrl.Options{
		Scheme:  harness.Scheme,
		Metrics: metricsserver.Options{BindAddress: "0"},
		Cache:   controllers.CacheOptions(),
		Client:  controllers.ClientOptions(),
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	managerCache = mgr.GetCache()
	keys = oidc.NewCache()
	keys.MaxRefreshInterval = keyRefreshInterval
	pool = dex.NewPool()
	defer pool.Close()
	if err := controllers.SetupWithManager(mgr, pool, keys, controllers.Options{
		ResyncPeriod:           resyncPeriod,
		ProviderHealthInterval: 500 * time.Millisecond,
		MaxRetryDelay:          2 * time.Second,
	}); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- mgr.Start(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			fmt.Fprintln(os.Stderr, "manager:", err)
		}
	}()

	code := m.Run()
	if code != 0 {
		fmt.Fprintf(os.Stderr, "--- plain Dex log (%s) ---\n%s\n--- mTLS Dex log (%s) ---\n%s\n", plainDex.LogPath(), tail(plainDex.Log()), mtlsDex.LogPath(), tail(mtlsDex.Log()))
	}
	return code
}

// managerLog holds the manager's whole log.
var managerLog syncBuffer

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

// levelFilter passes WARN and ERROR lines, or everything with TEST_VERBOSE_LOG set.
type levelFilter struct{ w io.Writer }

func (f levelFilter) Write(p []byte) (int, error) {
	if os.Getenv("TEST_VERBOSE_LOG") != "" || bytes.Contains(p, []byte("\tERROR\t")) || bytes.Contains(p, []byte("\tWARN\t")) {
		return f.w.Write(p)
	}
	return len(p), nil
}

func tail(s string) string {
	const n = 8000
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

func newNamespace(t *testing.T) string {
	t.Helper()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "t-"}}
	NewWithT(t).Expect(k8s.Create(context.Background(), ns)).To(Succeed())
	return ns.Name
}
