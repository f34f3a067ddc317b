package webhooks_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
	"sigs.k8s.io/controller-runtime/pkg/webhook"

	claimsv1 "dexterity.dev/dexterity/api/claims/v1alpha1"
	dexv1 "dexterity.dev/dexterity/api/v1alpha1"
	"dexterity.dev/dexterity/controllers"
	"dexterity.dev/dexterity/internal/tenancy"
	"dexterity.dev/dexterity/test/harness"
	"dexterity.dev/dexterity/webhooks"
)

var (
	k8s      client.Client
	warnings = &warningRecorder{}
)

// warningRecorder keeps the admission warnings the API server returns.
type warningRecorder struct {
	mu   sync.Mutex
	msgs []string
}

func (w *warningRecorder) HandleWarningHeader(_ int, _ string, text string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.msgs = append(w.msgs, text)
}

func (w *warningRecorder) take() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := w.msgs
	w.msgs = nil
	return out
}

func TestMain(m *testing.M) { os.Exit(run(m)) }

func run(m *testing.M) int {
	env, err := harness.StartEnv(harness.EnvOptions{InstallWebhooks: true})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer func() { _ = env.Stop() }()
	wo := env.Environment.WebhookInstallOptions
	mgr, err := ctrl.NewManager(env.Config, ctrl.Options{
		Scheme:        harness.Scheme,
		Metrics:       metricsserver.Options{BindAddress: "0"},
		WebhookServer: webhook.NewServer(webhook.Options{Host: wo.LocalServingHost, Port: wo.LocalServingPort, CertDir: wo.LocalServingCertDir}),
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	// The webhooks list by the id indexes, which the controllers register in a manager.
	if err := controllers.RegisterIndexes(context.Background(), mgr.GetFieldIndexer()); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if err := webhooks.SetupWithManager(mgr); err != nil {
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

	// Wait for the webhook server to serve TLS.
	addr := net.JoinHostPort(wo.LocalServingHost, strconv.Itoa(wo.LocalServingPort))
	if err := harness.WaitTLS(addr, 30*time.Second); err != nil {
		fmt.Fprintln(os.Stderr, "webhook server not serving:", err)
		return 1
	}
	cfg := rest.CopyConfig(env.Config)
	cfg.WarningHandler = warnings
	k8s, err = client.New(cfg, client.Options{Scheme: harness.Scheme})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return m.Run()
}

func namespace(t *testing.T, labels map[string]string) string {
	t.Helper()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "wh-", Labels: labels}}
	NewWithT(t).Expect(k8s.Create(context.Background(), ns)).To(Succeed())
	return ns.Name
}

// rejected asserts that creating obj fails with every message part, then that fixed is accepted.
func rejected(t *testing.T, obj, fixed client.Object, parts ...string) {
	t.Helper()
	g := NewWithT(t)
	err := k8s.Create(context.Background(), obj)
	g.Expect(err).To(HaveOccurred())
	for _, p := range parts {
		g.Expect(err.Error()).To(ContainSubstring(p))
	}
	if fixed != nil {
		g.Expect(k8s.Create(context.Background(), fixed)).To(Succeed())
	}
}

func provider(ns, name string, mut func(*dexv1.OIDCProviderSpec)) *dexv1.OIDCProvider {
	p := &dexv1.OIDCProvider{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec:       dexv1.OIDCProviderSpec{IssuerURL: "https://dex.example.com/dex", ClientID: "registry", Dex: &dexv1.DexAdminSpec{GRPCAddress: "dex.dex.svc:5557", TLS: &dexv1.DexTLSSpec{SecretRef: dexv1.LocalObjectReference{Name: "dex-grpc"}}}},
	}
	if mut != nil {
		mut(&p.Spec)
	}
	return p
}

func TestOIDCProviderRules(t *testing.T) {
	ns := namespace(t, nil)
	on, off := true, false
	t.Run("bearer and OIDC both on", func(t *testing.T) {
		rejected(t,
			provider(ns, "bearer", func(s *dexv1.OIDCProviderSpec) { s.UseBearerToken = true }),
			provider(ns, "bearer", func(s *dexv1.OIDCProviderSpec) { s.UseBearerToken, s.Enabled = true, &off }),
			"spec.useBearerToken", "mutually exclusive", "set spec.enabled=false for bearer mode")
	})
	t.Run("fallback without OIDC", func(t *testing.T) {
		rejected(t,
			provider(ns, "fallback", func(s *dexv1.OIDCProviderSpec) { s.Enabled, s.AllowServiceAccountFallback = &off, true }),
			provider(ns, "fallback", func(s *dexv1.OIDCProviderSpec) { s.Enabled, s.AllowServiceAccountFallback = &on, true }),
			"spec.allowServiceAccountFallback")
	})
	t.Run("client credentials without OIDC", func(t *testing.T) {
		rejected(t,
			provider(ns, "cc", func(s *dexv1.OIDCProviderSpec) { s.Enabled, s.AllowClientCredentials = &off, true }),
			provider(ns, "cc", func(s *dexv1.OIDCProviderSpec) { s.Enabled, s.AllowClientCredentials = &on, true }),
			"spec.allowClientCredentials", "spec.enabled=true")
	})
	t.Run("http issuer outside loopback", func(t *testing.T) {
		rejected(t,
			provider(ns, "http", func(s *dexv1.OIDCProviderSpec) { s.IssuerURL = "http://dex.example.com/dex" }),
			provider(ns, "http", func(s *dexv1.OIDCProviderSpec) { s.IssuerURL = "http://dex.dex.svc.cluster.local:5556/dex" }),
			"spec.issuerUrl", "https")
		NewWithT(t).Expect(warnings.take()).To(ContainElement(ContainSubstring("plain http")), "in-cluster http issuer accepted with a warning")
	})
	t.Run("malformed authzUrl", func(t *testing.T) {
		rejected(t,
			provider(ns, "authz", func(s *dexv1.OIDCProviderSpec) { s.AuthzURL = "dex.example.com/auth" }),
			provider(ns, "authz", func(s *dexv1.OIDCProviderSpec) { s.AuthzURL = "https://dex.example.com/dex/auth" }),
			"spec.authzUrl")
	})
	t.Run("plaintext gRPC off loopback", func(t *testing.T) {
		rejected(t,
			provider(ns, "insecure", func(s *dexv1.OIDCProviderSpec) { s.Dex.TLS, s.Dex.Insecure = nil, true }),
			provider(ns, "insecure", func(s *dexv1.OIDCProviderSpec) {
				s.Dex.TLS, s.Dex.Insecure, s.Dex.GRPCAddress = nil, true, "127.0.0.1:5557"
			}),
			"spec.dex.insecure", "loopback", "spec.dex.tls.secretRef")
	})
	t.Run("a registry host another provider serves", func(t *testing.T) {
		g := NewWithT(t)
		ctx := context.Background()
		other := namespace(t, nil)
		host := "registry-" + other + ".example.com"
		holder := provider(other, "holder", func(s *dexv1.OIDCProviderSpec) { s.Hostnames = []string{strings.ToUpper(host)} })
		g.Expect(k8s.Create(ctx, holder)).To(Succeed())
		// Creation timestamps have whole seconds, and a tie goes by namespace/name: let the
		// newcomer be created in a later second than the holder.
		held := holder.CreationTimestamp.Add(time.Second)
		g.Eventually(func() bool { return time.Now().After(held) }, 2*time.Second, 50*time.Millisecond).Should(BeTrue())
		newcomer := func(hosts ...string) *dexv1.OIDCProvider {
			return provider(ns, "aaa-newcomer", func(s *dexv1.OIDCProviderSpec) { s.Hostnames = hosts })
		}
		// The webhook reads providers from the manager's cache: wait until it has seen the holder.
		g.Eventually(func() error {
			return k8s.Create(ctx, newcomer("other.example.com", host), client.DryRunAll)
		}, 10*time.Second, 100*time.Millisecond).Should(MatchError(ContainSubstring("already served by")))
		// An earlier-sorting namespace does not make a newcomer the holder.
		rejected(t, newcomer("other.example.com", host), newcomer("other.example.com"),
			"spec.hostnames[1]", "already served by OIDCProvider "+other+"/holder")
		// Nor can it add the host later.
		p := &dexv1.OIDCProvider{}
		g.Expect(k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: "aaa-newcomer"}, p)).To(Succeed())
		p.Spec.Hostnames = append(p.Spec.Hostnames, host)
		err := k8s.Update(ctx, p)
		g.Expect(err).To(HaveOccurred())
		g.Expect(err.Error()).To(ContainSubstring("already served by"))
	})
	t.Run("a registry host another provider holds the claim on", func(t *testing.T) {
		g := NewWithT(t)
		ctx := context.Background()
		other := namespace(t, nil)
		host := "claimed-" + other + ".example.com"
		// The operator's record that other/holder serves the host (the holder itself need not be
		// in the webhook's cache yet: the claim decides).
		cl := &claimsv1.HostnameClaim{
			ObjectMeta: metav1.ObjectMeta{Name: tenancy.HostnameClaimName(host)},
			Spec: claimsv1.HostnameClaimSpec{Hostname: host, Provider: claimsv1.HostnameClaimProvider{
				Namespace: other, Name: "holder", UID: "4d2c8a8e-0000-4000-8000-000000000001"}},
		}
		g.Expect(k8s.Create(ctx, cl)).To(Succeed())
		t.Cleanup(func() { _ = k8s.Delete(context.Background(), cl) })
		newcomer := func(hosts ...string) *dexv1.OIDCProvider {
			return provider(ns, "claimed-newcomer", func(s *dexv1.OIDCProviderSpec) { s.Hostnames = hosts })
		}
		g.Eventually(func() error {
			return k8s.Create(ctx, newcomer(strings.ToUpper(host)), client.DryRunAll)
		}, 10*time.Second, 100*time.Millisecond).Should(MatchError(ContainSubstring("already served by")))
		rejected(t, newcomer(host), newcomer("free-"+other+".example.com"),
			"spec.hostnames[0]", "already served by OIDCProvider "+other+"/holder")
	})
	t.Run("caBundle with a broken certificate", func(t *testing.T) {
		rejected(t,
			provider(ns, "ca", func(s *dexv1.OIDCProviderSpec) {
				s.CABundle = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"
			}),
			provider(ns, "ca", func(s *dexv1.OIDCProviderSpec) { s.CABundle = string(selfSignedPEM(t)) }),
			"spec.caBundle", "does not parse")
	})
}

func TestDexStaticClientRules(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	platform := namespace(t, nil)
	teamA := namespace(t, map[string]string{"tenant": "yes"})
	teamB := namespace(t, map[string]string{"tenant": "yes"})
	outsider := namespace(t, nil)
	g.Expect(k8s.Create(ctx, provider(platform, "dex", func(s *dexv1.OIDCProviderSpec) {
		s.Dex.AllowedNamespaces = &dexv1.AllowedNamespaces{From: dexv1.NamespacesFromSelector, Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"tenant": "yes"}}}
		s.Dex.ClientIDPrefix = "{namespace}-"
	}))).To(Succeed())
	ref := dexv1.ObjectRef{Name: "dex", Namespace: platform}
	dsc := func(ns, name, id string, mut func(*dexv1.DexStaticClientSpec)) *dexv1.DexStaticClient {
		c := &dexv1.DexStaticClient{
			ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
			Spec:       dexv1.DexStaticClientSpec{ProviderRef: ref, ClientID: id, Public: true, LoopbackRedirect: &dexv1.LoopbackRedirect{Ports: []int32{10000, 10010}}},
		}
		if mut != nil {
			mut(&c.Spec)
		}
		return c
	}
	t.Run("confidential client without secretRef", func(t *testing.T) {
		rejected(t,
			dsc(teamA, "conf", "", func(s *dexv1.DexStaticClientSpec) { s.Public = false }),
			dsc(teamA, "conf", "", func(s *dexv1.DexStaticClientSpec) {
				s.Public, s.SecretRef, s.GenerateSecret = false, &dexv1.SecretKeyRef{Name: "conf", Key: "secret"}, true
			}),
			"spec.secretRef", "spec.public=true")
	})
	t.Run("team-b claims team-a's client id", func(t *testing.T) {
		g := NewWithT(t)
		g.Expect(k8s.Create(ctx, dsc(teamA, "tofu", teamA+"-tofu", nil))).To(Succeed())
		rejected(t,
			dsc(teamB, "tofu", teamA+"-tofu", nil),
			dsc(teamB, "tofu", teamB+"-tofu", nil),
			"spec.clientId: Duplicate value", "already owned by DexStaticClient "+teamA+"/tofu")
	})
	t.Run("the operator's probe client id", func(t *testing.T) {
		rejected(t, dsc(teamA, "probe", "dexterity-connector-probe", func(s *dexv1.DexStaticClientSpec) { s.AdoptExisting = true }), nil,
			"spec.clientId", "reserved for Dexterity's connector health probe")
	})
	t.Run("namespace not allowed", func(t *testing.T) {
		rejected(t, dsc(outsider, "x", outsider+"-x", nil), nil, "spec.providerRef: Forbidden", "may not use OIDCProvider")
	})
	t.Run("client id outside the prefix policy", func(t *testing.T) {
		rejected(t, dsc(teamA, "noprefix", "other-id", nil), dsc(teamA, "noprefix", "", nil), "spec.clientId", "must start with \""+teamA+"-\"")
	})
	t.Run("another namespace's registry audience", func(t *testing.T) {
		g := NewWithT(t)
		g.Expect(k8s.Create(ctx, provider(platform, "open", func(s *dexv1.OIDCProviderSpec) {
			s.Dex.AllowedNamespaces = &dexv1.AllowedNamespaces{From: dexv1.NamespacesFromAll}
		}))).To(Succeed())
		aud := "aud-" + teamB
		g.Expect(k8s.Create(ctx, provider(teamB, "registry", func(s *dexv1.OIDCProviderSpec) { s.ClientID, s.Dex = aud, nil }))).To(Succeed())
		squat := func(ns string) *dexv1.DexStaticClient {
			c := dsc(ns, "squat", aud, nil)
			c.Spec.ProviderRef = dexv1.ObjectRef{Name: "open", Namespace: platform}
			return c
		}
		g.Eventually(func() error { return k8s.Create(ctx, squat(teamA), client.DryRunAll) }, 10*time.Second, 100*time.Millisecond).
			Should(MatchError(ContainSubstring("registry audience")))
		rejected(t, squat(teamA), squat(teamB), "spec.clientId", "registry audience of OIDCProvider "+teamB+"/registry")
	})
	t.Run("an id that belongs to a longer namespace", func(t *testing.T) {
		g := NewWithT(t)
		longer := teamA + "-b"
		g.Expect(k8s.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: longer, Labels: map[string]string{"tenant": "yes"}}})).To(Succeed())
		id := longer + "-portal"
		g.Eventually(func() error { return k8s.Create(ctx, dsc(teamA, "portal", id, nil), client.DryRunAll) }, 10*time.Second, 100*time.Millisecond).
			Should(MatchError(ContainSubstring("belongs to namespace " + longer)))
		rejected(t, dsc(teamA, "portal", id, nil), dsc(longer, "portal", id, nil), "spec.clientId", "belongs to namespace "+longer)
	})
	t.Run("plain http redirect off loopback", func(t *testing.T) {
		rejected(t,
			dsc(teamA, "redir", "", func(s *dexv1.DexStaticClientSpec) { s.RedirectURIs = []string{"http://app.example.com/cb"} }),
			dsc(teamA, "redir", "", func(s *dexv1.DexStaticClientSpec) { s.RedirectURIs = []string{"https://app.example.com/cb"} }),
			"spec.redirectURIs[0]")
	})
	t.Run("updates after the provider's policy tightened", func(t *testing.T) {
		g := NewWithT(t)
		g.Expect(k8s.Create(ctx, provider(platform, "narrowing", func(s *dexv1.OIDCProviderSpec) {
			s.Dex.AllowedNamespaces = &dexv1.AllowedNamespaces{From: dexv1.NamespacesFromAll}
		}))).To(Succeed())
		c := dsc(teamA, "kept", "", nil)
		c.Spec.ProviderRef = dexv1.ObjectRef{Name: "narrowing", Namespace: platform}
		c.Finalizers = []string{"test.dexterity.dev/hold"}
		g.Expect(k8s.Create(ctx, c)).To(Succeed())

		p := &dexv1.OIDCProvider{}
		g.Expect(k8s.Get(ctx, client.ObjectKey{Namespace: platform, Name: "narrowing"}, p)).To(Succeed())
		p.Spec.Dex.AllowedNamespaces = &dexv1.AllowedNamespaces{From: dexv1.NamespacesFromSame}
		g.Expect(k8s.Update(ctx, p)).To(Succeed())
		// The new policy is in force for new objects...
		g.Eventually(func() error {
			n := dsc(teamA, "", "", nil)
			n.GenerateName = "late-"
			n.Spec.ProviderRef = c.Spec.ProviderRef
			err := k8s.Create(ctx, n)
			if err == nil {
				_ = k8s.Delete(ctx, n)
			}
			return err
		}, 10*time.Second, 100*time.Millisecond).Should(MatchError(ContainSubstring("spec.providerRef: Forbidden")))
		// ...but the existing object's metadata updates, its deletion and the release of its
		// finalizer are still admitted: it must never be stuck Terminating.
		g.Expect(k8s.Get(ctx, client.ObjectKeyFromObject(c), c)).To(Succeed())
		c.Labels = map[string]string{"team": "a"}
		g.Expect(k8s.Update(ctx, c)).To(Succeed())
		// A changed spec is still checked on its own.
		bad := c.DeepCopy()
		bad.Spec.RedirectURIs = []string{"http://app.example.com/cb"}
		g.Expect(k8s.Update(ctx, bad)).To(MatchError(ContainSubstring("spec.redirectURIs[0]")))
		g.Expect(k8s.Delete(ctx, c)).To(Succeed())
		g.Expect(k8s.Get(ctx, client.ObjectKeyFromObject(c), c)).To(Succeed())
		c.Finalizers = nil
		g.Expect(k8s.Update(ctx, c)).To(Succeed())
		g.Expect(apierrors.IsNotFound(k8s.Get(ctx, client.ObjectKeyFromObject(c), c))).To(BeTrue())
	})
	t.Run("provider being deleted", func(t *testing.T) {
		g := NewWithT(t)
		p := provider(platform, "going", func(s *dexv1.OIDCProviderSpec) {
			s.Dex.AllowedNamespaces = &dexv1.AllowedNamespaces{From: dexv1.NamespacesFromAll}
		})
		p.Finalizers = []string{"test.dexterity.dev/hold"}
		g.Expect(k8s.Create(ctx, p)).To(Succeed())
		g.Expect(k8s.Delete(ctx, p)).To(Succeed())
		g.Eventually(func() error {
			c := dsc(teamA, "", "", nil)
			c.GenerateName = "late-"
			c.Spec.ProviderRef = dexv1.ObjectRef{Name: "going", Namespace: platform}
			err := k8s.Create(ctx, c)
			if err == nil {
				_ = k8s.Delete(ctx, c)
			}
			return err
		}, 10*time.Second, 100*time.Millisecond).Should(MatchError(And(ContainSubstring("spec.providerRef: Forbidden"), ContainSubstring("is being deleted"))))
		g.Expect(k8s.Get(ctx, client.ObjectKeyFromObject(p), p)).To(Succeed())
		p.Finalizers = nil
		g.Expect(k8s.Update(ctx, p)).To(Succeed())
	})
	t.Run("public client without redirect URIs warns", func(t *testing.T) {
		g := NewWithT(t)
		warnings.take()
		g.Expect(k8s.Create(ctx, dsc(teamA, "noredir", "", func(s *dexv1.DexStaticClientSpec) { s.LoopbackRedirect = nil }))).To(Succeed())
		g.Expect(warnings.take()).To(ContainElement(ContainSubstring("loopbackRedirect")))
	})
}

func TestDexConnectorRules(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ns := namespace(t, nil)
	g.Expect(k8s.Create(ctx, provider(ns, "dex", nil))).To(Succeed())
	conn := func(name, id, typ, cfg string, secrets ...dexv1.ConnectorSecret) *dexv1.DexConnector {
		c := &dexv1.DexConnector{
			ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
			Spec:       dexv1.DexConnectorSpec{ProviderRef: dexv1.ObjectRef{Name: "dex"}, ConnectorID: id, Type: dexv1.ConnectorType(typ), Secrets: secrets},
		}
		if cfg != "" {
			c.Spec.Config = &apiextensionsv1.JSON{Raw: []byte(cfg)}
		}
		return c
	}
	secret := dexv1.ConnectorSecret{Path: "clientSecret", SecretRef: dexv1.SecretKeyRef{Name: "gh", Key: "clientSecret"}}
	t.Run("literal secret", func(t *testing.T) {
		rejected(t,
			conn("gh", "github", "github", `{"clientID":"a","clientSecret":"oops"}`),
			conn("gh", "github", "github", `{"clientID":"a"}`, secret),
			"spec.config.clientSecret: Forbidden", "spec.secrets")
	})
	t.Run("config Dex would not load", func(t *testing.T) {
		rejected(t,
			conn("typo", "typo", "github", `{"clientID":"a","orgz":[]}`),
			conn("typo", "typo", "github", `{"clientID":"a","orgs":[]}`),
			"spec.config.orgz")
		rejected(t, conn("wrongtype", "wrongtype", "ldap", `{"host":"ldap:636","insecureNoSSL":"yes"}`), nil, "spec.config.insecureNoSSL")
	})
	t.Run("unknown type", func(t *testing.T) {
		rejected(t, conn("fb", "fb", "facebook", ""), nil, "spec.type")
	})
	t.Run("connector id already owned", func(t *testing.T) {
		rejected(t, conn("gh2", "github", "github", `{"clientID":"b"}`, secret), nil, "spec.connectorId: Duplicate value", ns+"/gh")
	})
	t.Run("namespace admitted for clients only", func(t *testing.T) {
		g := NewWithT(t)
		platform := namespace(t, nil)
		g.Expect(k8s.Create(ctx, provider(platform, "shared", func(s *dexv1.OIDCProviderSpec) {
			s.Dex.AllowedNamespaces = &dexv1.AllowedNamespaces{From: dexv1.NamespacesFromAll}
		}))).To(Succeed())
		c := conn("mock", "mock-"+ns, "mockCallback", "")
		c.Spec.ProviderRef = dexv1.ObjectRef{Name: "shared", Namespace: platform}
		// The webhook reads the provider from the manager's cache: wait until it has seen it.
		g.Eventually(func() error { return k8s.Create(ctx, c.DeepCopy(), client.DryRunAll) }, 10*time.Second, 100*time.Millisecond).
			Should(MatchError(ContainSubstring("spec.dex.connectorNamespaces")))
		rejected(t, c, nil, "spec.providerRef: Forbidden", "spec.dex.connectorNamespaces")
	})
}

func TestGroupBindingRules(t *testing.T) {
	ns := namespace(t, nil)
	gb := func(name, expr string) *dexv1.GroupBinding {
		return &dexv1.GroupBinding{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns}, Spec: dexv1.GroupBindingSpec{Expression: expr}}
	}
	NewWithT(t).Expect(k8s.Create(context.Background(), gb("ci", `"client:ci" in groups`))).To(Succeed())
	rejected(t, gb("contains", `groups contains`), gb("contains", `"x" in groups`), "spec.expression", "(1:")
	rejected(t, gb("notbool", `len(groups)`), gb("notbool", `len(groups) > 0`), "spec.expression", "expected bool")
}

func selfSignedPEM(t *testing.T) []byte {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	NewWithT(t).Expect(err).NotTo(HaveOccurred())
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test CA"}, NotBefore: time.Now(), NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	NewWithT(t).Expect(err).NotTo(HaveOccurred())
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

func TestRegistryContentRules(t *testing.T) {
	ctx := context.Background()
	ns := namespace(t, nil)
	mod := func(name, modName string) *dexv1.Module {
		return &dexv1.Module{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns}, Spec: dexv1.ModuleSpec{
			Namespace: "team-a", Name: modName, System: "aws",
			Versions: []dexv1.ModuleVersion{{Version: "1.0.0", Source: "https://downloads.example.org/m.tar.gz"}}}}
	}
	prov := func(name, typ string) *dexv1.Provider {
		return &dexv1.Provider{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns}, Spec: dexv1.ProviderSpec{
			Namespace: "team-a", Type: typ,
			SigningKeys: dexv1.SigningKeys{GPGPublicKeys: []dexv1.GPGPublicKey{{KeyID: "51852D87348FFC4C", ASCIIArmor: "-----BEGIN PGP PUBLIC KEY BLOCK-----\nx\n-----END PGP PUBLIC KEY BLOCK-----\n"}}},
			Versions: []dexv1.ProviderVersion{{Version: "0.1.0", Platforms: []dexv1.ProviderPlatform{{OS: "linux", Arch: "amd64",
				Filename: "p.zip", DownloadURL: "https://downloads.example.org/p.zip", Shasum: strings.Repeat("ab", 32),
				ShasumsURL: "https://downloads.example.org/S", ShasumsSignatureURL: "https://downloads.example.org/S.sig"}}}}}}
	}
	// duplicateRejected creates copies of obj under new names until the webhook (whose reads come
	// from the manager's cache, which sees the first object shortly after its creation) rejects one.
	duplicateRejected := func(t *testing.T, newObj func() client.Object, parts ...string) {
		t.Helper()
		NewWithT(t).Eventually(func(g Gomega) {
			o := newObj()
			o.SetName("")
			o.SetGenerateName("dup-")
			err := k8s.Create(ctx, o)
			if err == nil {
				_ = k8s.Delete(ctx, o)
			}
			g.Expect(err).To(HaveOccurred())
			for _, p := range parts {
				g.Expect(err.Error()).To(ContainSubstring(p))
			}
		}, 10*time.Second, 100*time.Millisecond).Should(Succeed())
	}

	NewWithT(t).Expect(k8s.Create(ctx, mod("network", "network"))).To(Succeed())
	duplicateRejected(t, func() client.Object { return mod("x", "network") }, "spec.name", "Module network already serves team-a/network/aws")
	duplicateRejected(t, func() client.Object {
		m := mod("x", "NETWORK")
		m.Spec.Namespace = "Team-A"
		return m
	}, "spec.name", "Module network already serves Team-A/NETWORK/aws") // addresses are case-insensitive
	NewWithT(t).Expect(k8s.Create(ctx, mod("storage", "storage"))).To(Succeed(), "another address is accepted")

	NewWithT(t).Expect(k8s.Create(ctx, prov("echo", "echo"))).To(Succeed())
	duplicateRejected(t, func() client.Object { return prov("x", "echo") }, "spec.type", "Provider echo already serves team-a/echo")
	NewWithT(t).Expect(k8s.Create(ctx, prov("random", "random"))).To(Succeed())

	// Updating an object in place is not a duplicate of itself.
	m := &dexv1.Module{}
	NewWithT(t).Expect(k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: "network"}, m)).To(Succeed())
	m.Spec.Versions = append(m.Spec.Versions, dexv1.ModuleVersion{Version: "1.1.0", Source: "https://downloads.example.org/m2.tar.gz"})
	NewWithT(t).Expect(k8s.Update(ctx, m)).To(Succeed())
}

// TestFinalizersSetAtCreation: new DexStaticClients and DexConnectors get their finalizer from the
// defaulting webhook (so the controller need not patch them); updates are left alone, so a
// finalizer taken off stays off until the controller itself adds it back.
func TestFinalizersSetAtCreation(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ns := namespace(t, nil)
	c := &dexv1.DexStaticClient{
		ObjectMeta: metav1.ObjectMeta{Name: "fin", Namespace: ns},
		Spec:       dexv1.DexStaticClientSpec{ProviderRef: dexv1.ObjectRef{Name: "absent"}, Public: true, RedirectURIs: []string{"https://app.example.com/cb"}},
	}
	g.Expect(k8s.Create(ctx, c)).To(Succeed())
	g.Expect(c.Finalizers).To(Equal([]string{dexv1.ClientFinalizer}), "the create's response carries the finalizer")
	orig := c.DeepCopy()
	c.Finalizers = nil
	g.Expect(k8s.Patch(ctx, c, client.MergeFrom(orig))).To(Succeed())
	got := &dexv1.DexStaticClient{}
	g.Expect(k8s.Get(ctx, client.ObjectKeyFromObject(c), got)).To(Succeed())
	g.Expect(got.Finalizers).To(BeEmpty(), "an update is not defaulted")

	k := &dexv1.DexConnector{
		ObjectMeta: metav1.ObjectMeta{Name: "fin", Namespace: ns},
		Spec:       dexv1.DexConnectorSpec{ProviderRef: dexv1.ObjectRef{Name: "absent"}, ConnectorID: "fin-" + ns, Type: "mockCallback"},
	}
	g.Expect(k8s.Create(ctx, k)).To(Succeed())
	g.Expect(k.Finalizers).To(Equal([]string{dexv1.ConnectorFinalizer}))

	// A tenant's own finalizers are kept next to ours.
	own := &dexv1.DexStaticClient{
		ObjectMeta: metav1.ObjectMeta{Name: "own", Namespace: ns, Finalizers: []string{"example.com/keep"}},
		Spec:       dexv1.DexStaticClientSpec{ProviderRef: dexv1.ObjectRef{Name: "absent"}, Public: true, RedirectURIs: []string{"https://app.example.com/cb"}},
	}
	g.Expect(k8s.Create(ctx, own)).To(Succeed())
	g.Expect(own.Finalizers).To(ConsistOf("example.com/keep", dexv1.ClientFinalizer))
	for _, o := range []client.Object{c, k, own} {
		o.SetFinalizers(nil)
		g.Expect(k8s.Update(ctx, o)).To(Succeed())
		g.Expect(k8s.Delete(ctx, o)).To(Succeed())
	}
}

// With server-side apply, the finalizer set at admission belongs to no field manager (the API
// server records managed fields before mutating admission), so applying the same manifest again,
// which does not list it, keeps it.
func TestAdmissionFinalizerSurvivesServerSideApply(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ns := namespace(t, nil)
	apply := func() *dexv1.DexStaticClient {
		c := &dexv1.DexStaticClient{
			TypeMeta:   metav1.TypeMeta{APIVersion: dexv1.GroupVersion.String(), Kind: "DexStaticClient"},
			ObjectMeta: metav1.ObjectMeta{Name: "ssa", Namespace: ns},
			Spec:       dexv1.DexStaticClientSpec{ProviderRef: dexv1.ObjectRef{Name: "absent"}, Public: true, RedirectURIs: []string{"https://app.example.com/cb"}},
		}
		g.Expect(k8s.Patch(ctx, c, client.Apply, client.FieldOwner("tenant"), client.ForceOwnership)).To(Succeed()) //nolint:staticcheck // typed apply is what kubectl apply --server-side sends
		return c
	}
	g.Expect(apply().Finalizers).To(ContainElement(dexv1.ClientFinalizer), "created by apply, defaulted")
	got := apply()
	g.Expect(got.Finalizers).To(ContainElement(dexv1.ClientFinalizer), "applied again without it: kept")
	got.Finalizers = nil
	g.Expect(k8s.Update(ctx, got)).To(Succeed())
	g.Expect(k8s.Delete(ctx, got)).To(Succeed())
}
