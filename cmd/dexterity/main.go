// Command dexterity is the Dexterity manager: controllers, validating webhooks and the
// registry server in one process.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"time"

	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
	"sigs.k8s.io/controller-runtime/pkg/webhook"

	"dexterity.dev/dexterity/controllers"
	"dexterity.dev/dexterity/internal/dex"
	"dexterity.dev/dexterity/internal/dexdeploy"
	dexmetrics "dexterity.dev/dexterity/internal/metrics"
	"dexterity.dev/dexterity/internal/oidc"
	"dexterity.dev/dexterity/internal/registry"
	"dexterity.dev/dexterity/internal/scheme"
	"dexterity.dev/dexterity/internal/webhookcert"
	"dexterity.dev/dexterity/webhooks"
)

type options struct {
	metricsAddr, probeAddr       string
	pprofAddr                    string
	leaderElect                  bool
	leaderElectionNamespace      string
	webhookPort                  int
	webhookCertDir               string
	enableWebhooks               bool
	webhookCert                  webhookcert.Options
	registryAddr                 string
	registryTLSCert, registryKey string
	registryDefaultProvider      string
	registryRequestTimeout       time.Duration
	dexResyncPeriod              time.Duration
	providerHealthInterval       time.Duration
	dexCerts                     dexdeploy.CertPolicy
}

func main() {
	if len(os.Args) > 1 && os.Args[1] == "import" {
		os.Exit(runImport(os.Args[2:], os.Stdin, os.Stdout, os.Stderr))
	}
	var o options
	// --kubeconfig is registered by controller-runtime's config package.
	flag.StringVar(&o.metricsAddr, "metrics-bind-address", ":8080", "Address of the Prometheus /metrics endpoint; \"0\" disables it.")
	flag.StringVar(&o.probeAddr, "health-probe-bind-address", ":8081", "Address of the /healthz and /readyz endpoints.")
	flag.StringVar(&o.pprofAddr, "pprof-bind-address", "", "Address of the /debug/pprof endpoints (for profiling; unauthenticated, keep it on loopback); empty disables them.")
	flag.BoolVar(&o.leaderElect, "leader-elect", false, "Run controllers only on the elected leader (use with several replicas).")
	flag.StringVar(&o.leaderElectionNamespace, "leader-election-namespace", "", "Namespace of the leader-election Lease (default: the pod's namespace; required to run several replicas out of a cluster).")
	flag.IntVar(&o.webhookPort, "webhook-port", 9443, "Port of the validating webhook server.")
	flag.StringVar(&o.webhookCertDir, "webhook-cert-dir", "", "Directory with tls.crt and tls.key for the webhook server (default: the system temp dir's k8s-webhook-server/serving-certs).")
	flag.BoolVar(&o.enableWebhooks, "enable-webhooks", false, "Serve the validating webhooks.")
	o.webhookCert.BindFlags(flag.CommandLine)
	flag.StringVar(&o.registryAddr, "registry-bind-address", ":8443", "Address of the embedded registry server; \"0\" disables it.")
	flag.StringVar(&o.registryTLSCert, "registry-tls-cert-file", "", "TLS certificate of the registry server (plain HTTP when empty).")
	flag.StringVar(&o.registryKey, "registry-tls-key-file", "", "TLS key of the registry server.")
	flag.StringVar(&o.registryDefaultProvider, "registry-default-provider", "", "OIDCProvider <namespace>/<name> that serves registry Hosts no provider lists in spec.hostnames.")
	flag.DurationVar(&o.registryRequestTimeout, "registry-request-timeout", registry.DefaultRequestTimeout, "Deadline of every registry request (503 past it).")
	flag.DurationVar(&o.dexResyncPeriod, "dex-resync-period", 10*time.Minute, "Period of drift repair: every object is compared with Dex once per period (at a phase of its own) and fixed where they differ.")
	flag.DurationVar(&o.providerHealthInterval, "provider-health-interval", 30*time.Second, "How often a reachable Dex gRPC API is checked again.")
	flag.DurationVar(&o.dexCerts.LeafValidity, "dex-grpc-cert-validity", dexdeploy.DefaultCertPolicy.LeafValidity, "Lifetime of the gRPC server and client certificates of Dex objects (renewed after two thirds of it).")
	flag.DurationVar(&o.dexCerts.CAValidity, "dex-grpc-ca-validity", dexdeploy.DefaultCertPolicy.CAValidity, "Lifetime of the gRPC CA of Dex objects (renewed after two thirds of it, in two steps).")
	flag.DurationVar(&o.dexCerts.ActivationDelay, "dex-grpc-ca-activation-delay", dexdeploy.DefaultCertPolicy.ActivationDelay, "How long a renewed gRPC CA is only trusted before it signs (time for every Dex pod to load the new trust bundle).")
	zapOpts := zap.Options{}
	zapOpts.BindFlags(flag.CommandLine)
	flag.Parse()
	ctrl.SetLogger(zap.New(zap.UseFlagOptions(&zapOpts)))

	if err := run(o); err != nil {
		ctrl.Log.Error(err, "Manager exited with an error")
		os.Exit(1)
	}
}

func run(o options) error {
	setupLog := ctrl.Log.WithName("setup")
	cfg, err := ctrl.GetConfig()
	if err != nil {
		return fmt.Errorf("failed to load kubeconfig: %w", err)
	}
	webhookServer := webhookcert.NewServer(webhook.Options{Port: o.webhookPort, CertDir: o.webhookCertDir})
	mgr, err := ctrl.NewManager(cfg, ctrl.Options{
		Scheme:                  scheme.Scheme,
		Metrics:                 metricsserver.Options{BindAddress: o.metricsAddr},
		HealthProbeBindAddress:  o.probeAddr,
		PprofBindAddress:        o.pprofAddr,
		LeaderElection:          o.leaderElect,
		LeaderElectionID:        "dexterity.dev",
		LeaderElectionNamespace: o.leaderElectionNamespace,
		WebhookServer:           webhookServer,
		Cache:                   controllers.CacheOptions(),
		Client:                  controllers.ClientOptions(),
	})
	if err != nil {
		return fmt.Errorf("failed to create manager: %w", err)
	}

	keys := oidc.NewCache()
	pool := dex.NewPool()
	defer pool.Close()
	// The registry (set up below) says how it checks ServiceAccount tokens; OIDCProviders show it.
	var srv *registry.Server
	saFallback := func() (bool, string) {
		if srv == nil {
			return false, "the registry server is off (--registry-bind-address=0)"
		}
		st := srv.ServiceAccountFallback()
		return st.KeysPublished, st.Message
	}
	if err := controllers.SetupWithManager(mgr, pool, keys, controllers.Options{
		ResyncPeriod:           o.dexResyncPeriod,
		ProviderHealthInterval: o.providerHealthInterval,
		DexCerts:               o.dexCerts,
		ServiceAccountFallback: saFallback,
	}); err != nil {
		return err
	}
	// The gauges of docs/monitoring.md (objects by state and condition, Dex certificate expiry),
	// read from the cache at scrape time by the leader.
	if err := dexmetrics.Register(ctrlmetrics.Registry, mgr.GetClient(), mgr.Elected()); err != nil {
		return err
	}

	if o.registryAddr != "0" {
		// Warning events on GroupBindings cut off at the evaluation deadline.
		registry.SetEventRecorder(mgr.GetEventRecorderFor("dexterity-registry"), mgr.GetClient())
		var err error
		srv, err = registry.New(context.Background(), mgr.GetCache(), registry.Options{
			Addr: o.registryAddr, TLSCertFile: o.registryTLSCert, TLSKeyFile: o.registryKey,
			DefaultProvider: o.registryDefaultProvider, Keys: keys, Kube: mgr.GetClient(),
			RequestTimeout: o.registryRequestTimeout, RESTConfig: mgr.GetConfig(),
		})
		if err != nil {
			return fmt.Errorf("failed to set up registry server: %w", err)
		}
		if err := mgr.Add(srv); err != nil {
			return fmt.Errorf("failed to add registry server: %w", err)
		}
		if err := mgr.AddReadyzCheck("registry", srv.ReadyCheck); err != nil {
			return fmt.Errorf("failed to add registry ready check: %w", err)
		}
	}

	if err := mgr.AddHealthzCheck("healthz", healthz.Ping); err != nil {
		return fmt.Errorf("failed to add health check: %w", err)
	}
	if err := mgr.AddReadyzCheck("readyz", healthz.Ping); err != nil {
		return fmt.Errorf("failed to add ready check: %w", err)
	}
	if o.enableWebhooks {
		// The serving certificate: the one in the cert dir (OLM's), or self-managed (see docs/install.md).
		if _, err := webhookcert.Setup(context.Background(), mgr, webhookServer, o.webhookCert); err != nil {
			return err
		}
		if err := webhooks.SetupWithManager(mgr); err != nil {
			return err
		}
		if err := mgr.AddReadyzCheck("webhooks", mgr.GetWebhookServer().StartedChecker()); err != nil {
			return fmt.Errorf("failed to add webhook ready check: %w", err)
		}
	}
	setupLog.Info("Starting manager", "leaderElect", o.leaderElect, "dexResyncPeriod", o.dexResyncPeriod.String())
	return mgr.Start(ctrl.SetupSignalHandler())
}
