package controllers_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"

	api "github.com/dexidp/dex/api/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	dexv1 "dexterity.dev/dexterity/api/v1alpha1"
	"dexterity.dev/dexterity/test/harness"
)

func dexConnector(d api.DexClient, id string) func(g Gomega) *api.Connector {
	return func(g Gomega) *api.Connector {
		resp, err := d.ListConnectors(context.Background(), &api.ListConnectorReq{})
		g.Expect(err).NotTo(HaveOccurred())
		for _, c := range resp.GetConnectors() {
			if c.GetId() == id {
				return c
			}
		}
		return nil
	}
}

func connectorCondition(key client.ObjectKey, condType string) func(g Gomega) metav1.Condition {
	return func(g Gomega) metav1.Condition {
		c := &dexv1.DexConnector{}
		g.Expect(k8s.Get(context.Background(), key, c)).To(Succeed())
		cond := meta.FindStatusCondition(c.Status.Conditions, condType)
		g.Expect(cond).NotTo(BeNil(), "condition %s not set yet", condType)
		return *cond
	}
}

func newConnector(ns, name, id string, typ dexv1.ConnectorType, config string, secrets ...dexv1.ConnectorSecret) *dexv1.DexConnector {
	c := &dexv1.DexConnector{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec:       dexv1.DexConnectorSpec{ProviderRef: dexv1.ObjectRef{Name: "dex"}, ConnectorID: id, Type: typ, DisplayName: "Login with " + id, Secrets: secrets},
	}
	if config != "" {
		c.Spec.Config = &apiextensionsv1.JSON{Raw: []byte(config)}
	}
	return c
}

// A mockCallback connector appears on Dex's login page, a full authorization-code login through
// it returns a token, and deleting the object removes it from Dex.
func TestConnectorMockCallbackLogin(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	dapi := dexAPI(t, plainDex)
	ns := providerFor(t, plainDex, nil)
	id := "mock-" + ns
	c := newConnector(ns, "mock", id, "mockCallback", "")
	g.Expect(k8s.Create(ctx, c)).To(Succeed())
	key := client.ObjectKeyFromObject(c)
	g.Eventually(connectorCondition(key, dexv1.ConditionReady), waitTimeout).Should(readyTrue())
	g.Expect(connectorCondition(key, dexv1.ConditionConnectorHealthy)(g)).To(HaveField("Status", metav1.ConditionTrue))
	g.Expect(dexConnector(dapi, id)(g)).To(And(Not(BeNil()), HaveField("Type", "mockCallback"), HaveField("Name", "Login with "+id)))

	// Dex's login page lists it.
	page := getBody(t, plainDex.IssuerURL()+"/auth?"+url.Values{"client_id": {harness.HarnessClientID}, "redirect_uri": {harness.HarnessRedirectURI}, "response_type": {"code"}, "scope": {"openid"}}.Encode())
	g.Expect(page).To(ContainSubstring("Login with " + id))

	// Full authorization-code login through the connector.
	tok := authCodeLogin(t, plainDex, id)
	g.Expect(tok).To(HaveKey("id_token"))

	g.Expect(k8s.Delete(ctx, c)).To(Succeed())
	g.Eventually(dexConnector(dapi, id), waitTimeout).Should(BeNil())
	g.Eventually(func() bool { return apierrors.IsNotFound(k8s.Get(ctx, key, &dexv1.DexConnector{})) }, waitTimeout).Should(BeTrue())
}

// Secret values flow into Dex's config and nowhere else; a Secret change updates Dex.
func TestConnectorSecretsInjected(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	dapi := dexAPI(t, plainDex)
	ns := providerFor(t, plainDex, nil)
	const first, second = "gh-secret-value-one-1f2e3d", "gh-secret-value-two-9a8b7c"
	g.Expect(k8s.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "github", Namespace: ns}, Data: map[string][]byte{"clientSecret": []byte(first)}})).To(Succeed())
	id := "github-" + ns
	c := newConnector(ns, "github", id, "github",
		`{"clientID":"abc","redirectURI":"`+plainDex.IssuerURL()+`/callback","orgs":[{"name":"my-org"}]}`,
		dexv1.ConnectorSecret{Path: "clientSecret", SecretRef: dexv1.SecretKeyRef{Name: "github", Key: "clientSecret"}})
	g.Expect(k8s.Create(ctx, c)).To(Succeed())
	key := client.ObjectKeyFromObject(c)
	configOf := func(g Gomega) map[string]any {
		conn := dexConnector(dapi, id)(g)
		g.Expect(conn).NotTo(BeNil())
		var m map[string]any
		g.Expect(json.Unmarshal(conn.GetConfig(), &m)).To(Succeed())
		return m
	}
	g.Eventually(configOf, waitTimeout).Should(HaveKeyWithValue("clientSecret", first))
	g.Eventually(connectorCondition(key, dexv1.ConditionConnectorHealthy), waitTimeout).Should(HaveField("Status", metav1.ConditionTrue))

	sec := &corev1.Secret{}
	g.Expect(k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: "github"}, sec)).To(Succeed())
	sec.Data["clientSecret"] = []byte(second)
	g.Expect(k8s.Update(ctx, sec)).To(Succeed())
	g.Eventually(configOf, waitTimeout).Should(HaveKeyWithValue("clientSecret", second))

	// A config changed behind Dexterity's back is restored by drift repair.
	_, err := dapi.UpdateConnector(ctx, &api.UpdateConnectorReq{Id: id, NewType: "github", NewName: "hand-edited", NewConfig: []byte(`{"clientID":"hand-edited"}`)})
	g.Expect(err).NotTo(HaveOccurred())
	g.Eventually(configOf, 2*resyncPeriod+10*time.Second).Should(And(HaveKeyWithValue("clientID", "abc"), HaveKeyWithValue("clientSecret", second)))
	g.Eventually(dexConnector(dapi, id), waitTimeout).Should(HaveField("Name", "Login with "+id))

	obj := &dexv1.DexConnector{}
	g.Expect(k8s.Get(ctx, key, obj)).To(Succeed())
	dump, _ := json.Marshal(obj)
	var events corev1.EventList
	g.Expect(k8s.List(ctx, &events, client.InNamespace(ns))).To(Succeed())
	evDump, _ := json.Marshal(events)
	for _, s := range []string{first, second} {
		g.Expect(string(dump)).NotTo(ContainSubstring(s), "object and status")
		g.Expect(string(evDump)).NotTo(ContainSubstring(s), "events")
		g.Expect(managerLog.String()).NotTo(ContainSubstring(s), "operator log")
	}
}

// Invalid configs never reach Dex, and the condition names the field.
func TestConnectorInvalidConfigs(t *testing.T) {
	ctx := context.Background()
	dapi := dexAPI(t, plainDex)
	ns := providerFor(t, plainDex, nil)
	cases := []struct {
		name, typ, config, wantMsg string
	}{
		{"unknown field", "github", `{"clientID":"a","clientSecert":"x"}`, "spec.config.clientSecert"},
		{"wrong type", "github", `{"clientID":"a","orgs":"my-org"}`, "spec.config.orgs"},
		{"literal secret", "github", `{"clientID":"a","clientSecret":"literal"}`, "spec.config.clientSecret"},
		{"literal bindPW", "ldap", `{"host":"ldap:636","bindDN":"cn=x","bindPW":"literal"}`, "spec.secrets"},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			id := fmt.Sprintf("bad%d-%s", i, ns)
			c := newConnector(ns, fmt.Sprintf("bad%d", i), id, dexv1.ConnectorType(tc.typ), tc.config)
			g.Expect(k8s.Create(ctx, c)).To(Succeed())
			g.Eventually(connectorCondition(client.ObjectKeyFromObject(c), dexv1.ConditionReady), waitTimeout).Should(And(
				reason(dexv1.ReasonInvalidConfig), HaveField("Message", ContainSubstring(tc.wantMsg))))
			g.Consistently(dexConnector(dapi, id), time.Second, 200*time.Millisecond).Should(BeNil())
			g.Expect(managerLog.String()).NotTo(ContainSubstring("literal\""))
		})
	}
	t.Run("unknown type is rejected by the API server", func(t *testing.T) {
		err := k8s.Create(ctx, newConnector(ns, "badtype", "badtype", "facebook", ""))
		NewWithT(t).Expect(err).To(MatchError(ContainSubstring("spec.type")))
	})
}

// A config Dex accepts but cannot initialise shows ConnectorHealthy=False.
func TestConnectorUnhealthy(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ns := providerFor(t, plainDex, nil)
	g.Expect(k8s.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "oidc", Namespace: ns}, Data: map[string][]byte{"s": []byte("x")}})).To(Succeed())
	// The oidc connector runs discovery when Dex opens it: an issuer nobody serves fails.
	c := newConnector(ns, "broken", "broken-"+ns, "oidc",
		`{"issuer":"http://127.0.0.1:1/nowhere","clientID":"x","redirectURI":"`+plainDex.IssuerURL()+`/callback"}`,
		dexv1.ConnectorSecret{Path: "clientSecret", SecretRef: dexv1.SecretKeyRef{Name: "oidc", Key: "s"}})
	g.Expect(k8s.Create(ctx, c)).To(Succeed())
	key := client.ObjectKeyFromObject(c)
	g.Eventually(connectorCondition(key, dexv1.ConditionConnectorHealthy), waitTimeout).Should(reason(dexv1.ReasonConnectorFailed))
	g.Expect(connectorCondition(key, dexv1.ConditionRegistered)(g)).To(HaveField("Status", metav1.ConditionTrue))
	g.Expect(connectorCondition(key, dexv1.ConditionReady)(g)).To(reason(dexv1.ReasonConnectorFailed))
}

// Dex restarted on memory storage: connectors restored within a resync. Dex without the feature
// flag: a clear condition, no crash loop.
func TestConnectorDexRestartAndFeatureFlag(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	d, err := harness.StartDex(harness.DexOptions{Dir: filepath.Join(t.TempDir(), "dex")})
	g.Expect(err).NotTo(HaveOccurred())
	t.Cleanup(func() { _ = d.Stop() })
	ns := providerFor(t, d, nil)
	id := "mock"
	c := newConnector(ns, "mock", id, "mockCallback", "")
	g.Expect(k8s.Create(ctx, c)).To(Succeed())
	key := client.ObjectKeyFromObject(c)
	g.Eventually(connectorCondition(key, dexv1.ConditionReady), waitTimeout).Should(readyTrue())

	g.Expect(d.Restart()).To(Succeed())
	dapi := dexAPI(t, d)
	g.Eventually(dexConnector(dapi, id), 2*resyncPeriod+10*time.Second).ShouldNot(BeNil())

	off, err := harness.StartDex(harness.DexOptions{Dir: filepath.Join(t.TempDir(), "off"), DisableConnectorsCRUD: true})
	g.Expect(err).NotTo(HaveOccurred())
	t.Cleanup(func() { _ = off.Stop() })
	nsOff := providerFor(t, off, nil)
	c2 := newConnector(nsOff, "mock", "mock", "mockCallback", "")
	g.Expect(k8s.Create(ctx, c2)).To(Succeed())
	g.Eventually(connectorCondition(client.ObjectKeyFromObject(c2), dexv1.ConditionReady), waitTimeout).Should(And(
		reason(dexv1.ReasonConnectorsCRUDDisabled), HaveField("Message", ContainSubstring("DEX_API_CONNECTORS_CRUD=true"))))
}

func getBody(t *testing.T, u string) string {
	t.Helper()
	resp, err := http.Get(u)
	NewWithT(t).Expect(err).NotTo(HaveOccurred())
	defer func() { _ = resp.Body.Close() }()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

// authCodeLogin plays the browser through Dex with connector id and exchanges the code.
func authCodeLogin(t *testing.T, d *harness.Dex, connectorID string) map[string]any {
	t.Helper()
	g := NewWithT(t)
	jar, _ := cookiejar.New(nil)
	var code string
	hc := &http.Client{Jar: jar, Timeout: 10 * time.Second, CheckRedirect: func(req *http.Request, _ []*http.Request) error {
		if strings.HasPrefix(req.URL.String(), harness.HarnessRedirectURI) {
			code = req.URL.Query().Get("code")
			return http.ErrUseLastResponse
		}
		return nil
	}}
	q := url.Values{"client_id": {harness.HarnessClientID}, "redirect_uri": {harness.HarnessRedirectURI}, "response_type": {"code"},
		"scope": {"openid email profile"}, "state": {"s1"}, "connector_id": {connectorID}}
	resp, err := hc.Get(d.IssuerURL() + "/auth?" + q.Encode())
	g.Expect(err).NotTo(HaveOccurred())
	_ = resp.Body.Close()
	g.Expect(code).NotTo(BeEmpty(), "Dex redirected back with a code")

	form := url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {harness.HarnessRedirectURI}}
	req, _ := http.NewRequest(http.MethodPost, d.IssuerURL()+"/token", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(harness.HarnessClientID, harness.HarnessClientSecret)
	tr, err := http.DefaultClient.Do(req)
	g.Expect(err).NotTo(HaveOccurred())
	defer func() { _ = tr.Body.Close() }()
	g.Expect(tr.StatusCode).To(Equal(http.StatusOK))
	var out map[string]any
	g.Expect(json.NewDecoder(tr.Body).Decode(&out)).To(Succeed())
	return out
}
