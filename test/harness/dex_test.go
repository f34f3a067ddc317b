package harness

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"strings"
	"testing"
	"time"

	api "github.com/dexidp/dex/api/v2"
	. "github.com/onsi/gomega"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"
)

const rpcTimeout = 10 * time.Second

// startDex starts Dex for a test, stopping it on cleanup and dumping its log
// if the test failed.
func startDex(t *testing.T, opts DexOptions) *Dex {
	t.Helper()
	if opts.Dir == "" {
		opts.Dir = t.TempDir()
	}
	d, err := StartDex(opts)
	if err != nil {
		t.Fatalf("failed to start dex: %v", err)
	}
	t.Cleanup(func() {
		if err := d.Stop(); err != nil {
			t.Errorf("failed to stop dex: %v", err)
		}
		if t.Failed() {
			t.Logf("dex log (%s):\n%s", d.LogPath(), d.Log())
		}
	})
	return d
}

// dexClient opens a gRPC client to d that is closed on test cleanup.
func dexClient(t *testing.T, d *Dex) api.DexClient {
	t.Helper()
	client, closer, err := d.Client()
	if err != nil {
		t.Fatalf("failed to create dex client: %v", err)
	}
	t.Cleanup(func() { _ = closer.Close() })
	return client
}

func rpcContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), rpcTimeout)
	t.Cleanup(cancel)
	return ctx
}

// jwtClaims decodes the (unverified) payload of a JWT.
func jwtClaims(g Gomega, token string) map[string]any {
	parts := strings.Split(token, ".")
	g.Expect(parts).To(HaveLen(3))
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	g.Expect(err).NotTo(HaveOccurred())
	var claims map[string]any
	g.Expect(json.Unmarshal(payload, &claims)).To(Succeed())
	return claims
}

func TestDexPlain(t *testing.T) {
	g := NewWithT(t)
	d := startDex(t, DexOptions{})

	g.Expect(d.TLS()).To(BeNil())
	g.Expect(d.IssuerURL()).To(HavePrefix("http://127.0.0.1:"))
	g.Expect(d.IssuerURL()).To(HaveSuffix("/dex"))
	g.Expect(d.GRPCAddress()).To(HavePrefix("127.0.0.1:"))
	g.Expect(d.ConfigPath()).To(BeAnExistingFile())

	client := dexClient(t, d)
	version, err := client.GetVersion(rpcContext(t), &api.VersionReq{})
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(version.GetApi()).To(BeNumerically(">", 0))

	// Connector CRUD is enabled by default.
	_, err = client.ListConnectors(rpcContext(t), &api.ListConnectorReq{})
	g.Expect(err).NotTo(HaveOccurred())

	tokens, err := PasswordGrant(d.IssuerURL(), HarnessClientID, HarnessClientSecret, AdminUser.Email, AdminUser.Password)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(tokens).To(HaveKeyWithValue("id_token", BeAssignableToTypeOf("")))
	idToken, _ := tokens["id_token"].(string)
	g.Expect(idToken).NotTo(BeEmpty())
	claims := jwtClaims(g, idToken)
	g.Expect(claims).To(HaveKeyWithValue("iss", d.IssuerURL()))
	g.Expect(claims).To(HaveKeyWithValue("email", AdminUser.Email))
	g.Expect(claims).To(HaveKeyWithValue("groups", ConsistOf("platform", "team-a")))

	_, err = PasswordGrant(d.IssuerURL(), HarnessClientID, HarnessClientSecret, AdminUser.Email, "wrong")
	g.Expect(err).To(MatchError(ContainSubstring("status")))

	g.Expect(d.Restart()).To(Succeed())
	g.Expect(d.Stop()).To(Succeed())
	g.Expect(d.Stop()).To(Succeed(), "Stop must be idempotent")
	g.Expect(d.Start()).To(Succeed())
	g.Expect(d.Start()).NotTo(Succeed(), "Start on a running instance must fail")

	// A connection opened before the restarts reconnects on its own.
	g.Eventually(func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_, err := client.GetVersion(ctx, &api.VersionReq{})
		return err
	}).WithTimeout(30 * time.Second).WithPolling(200 * time.Millisecond).Should(Succeed())

	g.Expect(d.Log()).To(ContainSubstring("run 3"))
}

func TestDexMTLS(t *testing.T) {
	g := NewWithT(t)
	d := startDex(t, DexOptions{MTLS: true})

	material := d.TLS()
	g.Expect(material).NotTo(BeNil())

	client := dexClient(t, d)
	_, err := client.GetVersion(rpcContext(t), &api.VersionReq{})
	g.Expect(err).NotTo(HaveOccurred())

	for name, certs := range map[string][2][]byte{
		"untrusted client certificate": {material.BadClientCert, material.BadClientKey},
		"no client certificate":        {nil, nil},
	} {
		t.Run(name, func(t *testing.T) {
			g := NewWithT(t)
			cfg, err := ClientTLSConfig(material.CACert, certs[0], certs[1])
			g.Expect(err).NotTo(HaveOccurred())
			conn, err := grpc.NewClient(d.GRPCAddress(), grpc.WithTransportCredentials(credentials.NewTLS(cfg)))
			g.Expect(err).NotTo(HaveOccurred())
			defer func() { _ = conn.Close() }()

			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			_, err = api.NewDexClient(conn).GetVersion(ctx, &api.VersionReq{})
			g.Expect(status.Code(err)).To(Equal(codes.Unavailable), "unexpected error: %v", err)
		})
	}
}

func TestDexSQLitePersistsAcrossRestart(t *testing.T) {
	g := NewWithT(t)
	d := startDex(t, DexOptions{Storage: "sqlite3"})

	client := dexClient(t, d)
	created, err := client.CreateClient(rpcContext(t), &api.CreateClientReq{Client: &api.Client{
		Id:           "persisted-client",
		Secret:       "persisted-secret",
		Name:         "Persisted",
		RedirectUris: []string{"http://127.0.0.1:6666/callback"},
	}})
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(created.GetAlreadyExists()).To(BeFalse())

	_, err = client.GetClient(rpcContext(t), &api.GetClientReq{Id: "missing-client"})
	g.Expect(err).To(MatchError(ContainSubstring("not found")))

	g.Expect(d.Restart()).To(Succeed())

	// Start waits for readiness, but the old connection may still be
	// backing off from the restart, so allow it to reconnect.
	var got *api.GetClientResp
	g.Eventually(func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		got, err = client.GetClient(ctx, &api.GetClientReq{Id: "persisted-client"})
		return err
	}).WithTimeout(30 * time.Second).WithPolling(200 * time.Millisecond).Should(Succeed())
	g.Expect(got.GetClient().GetName()).To(Equal("Persisted"))
	g.Expect(got.GetClient().GetRedirectUris()).To(ConsistOf("http://127.0.0.1:6666/callback"))

	again, err := client.CreateClient(rpcContext(t), &api.CreateClientReq{Client: &api.Client{Id: "persisted-client", Secret: "x"}})
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(again.GetAlreadyExists()).To(BeTrue())
}

func TestDexConnectorsCRUDDisabled(t *testing.T) {
	g := NewWithT(t)
	d := startDex(t, DexOptions{DisableConnectorsCRUD: true})

	_, err := dexClient(t, d).ListConnectors(rpcContext(t), &api.ListConnectorReq{})
	g.Expect(err).To(MatchError(ContainSubstring("api_connectors_crud feature flag is not enabled")))
}
