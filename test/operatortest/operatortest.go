// Package operatortest runs the operator's controllers in a test process against an envtest API
// server, the way the manager binary wires them (cache and client options, one Dex connection
// pool, one key cache), for the suites that need the controllers but not the binary.
package operatortest

import (
	"context"
	"fmt"
	"time"

	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"dexterity.dev/dexterity/controllers"
	"dexterity.dev/dexterity/internal/dex"
	"dexterity.dev/dexterity/internal/oidc"
	"dexterity.dev/dexterity/test/harness"
)

// Options tune the controllers (zero values: the suites' usual short periods).
type Options struct {
	// ResyncPeriod of drift repair (default 2s).
	ResyncPeriod time.Duration
	// Setup adds more to the manager before it starts (a registry server, say).
	Setup func(mgr ctrl.Manager, keys *oidc.Cache) error
}

// Operator is a running manager with the controllers.
type Operator struct {
	stop func() error
}

// Start builds the manager against cfg, sets up the controllers and starts it.
func Start(cfg *rest.Config, o Options) (*Operator, error) {
	if o.ResyncPeriod == 0 {
		o.ResyncPeriod = 2 * time.Second
	}
	keys := oidc.NewCache()
	mgr, err := ctrl.NewManager(cfg, ctrl.Options{
		Scheme:  harness.Scheme,
		Metrics: metricsserver.Options{BindAddress: "0"},
		Cache:   controllers.CacheOptions(),
		Client:  controllers.ClientOptions(),
	})
	if err != nil {
		return nil, fmt.Errorf("failed to create manager: %w", err)
	}
	pool := dex.NewPool()
	if err := controllers.SetupWithManager(mgr, pool, keys, controllers.Options{
		ResyncPeriod:           o.ResyncPeriod,
		ProviderHealthInterval: 500 * time.Millisecond,
		MaxRetryDelay:          2 * time.Second,
	}); err != nil {
		pool.Close()
		return nil, err
	}
	if o.Setup != nil {
		if err := o.Setup(mgr, keys); err != nil {
			pool.Close()
			return nil, err
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- mgr.Start(ctx) }()
	return &Operator{stop: func() error {
		cancel()
		err := <-done
		pool.Close()
		return err
	}}, nil
}

// Stop stops the manager and closes the Dex connections.
func (op *Operator) Stop() error { return op.stop() }
