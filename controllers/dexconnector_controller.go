package controllers

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	api "github.com/dexidp/dex/api/v2"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/log"

	dexv1 "dexterity.dev/dexterity/api/v1alpha1"
	"dexterity.dev/dexterity/internal/connector"
	"dexterity.dev/dexterity/internal/dex"
	"dexterity.dev/dexterity/internal/outcome"
	"dexterity.dev/dexterity/internal/ownership"
	"dexterity.dev/dexterity/internal/tenancy"
)

const (
	// ConnectorFinalizer keeps a DexConnector until its connector is deleted from Dex (set at
	// admission, or by the controller before its first write to Dex).
	ConnectorFinalizer = dexv1.ConnectorFinalizer
	// LegacyAnnotationRegisteredConnectorID is where versions before DexEntryClaims recorded the
	// connector id an object owned; see LegacyAnnotationRegisteredClientID.
	LegacyAnnotationRegisteredConnectorID = ownership.LegacyAnnotationConnector
	// ProbeClientID is the public client Dexterity registers in each Dex it administers to probe
	// connectors (GET <issuer>/auth/<connector> needs a valid authorization request).
	ProbeClientID = tenancy.ProbeClientID
	// ProbeRedirectURI is the probe client's only redirect URI; it is never followed.
	ProbeRedirectURI = "http://127.0.0.1/dexterity-connector-probe"

	indexConnectorID       = tenancy.IndexConnectorID
	indexConnectorSecret   = "dexterity.dev/connector-secret"
	indexConnectorProvider = "dexterity.dev/connector-provider"
)

// DexConnectorReconciler manages upstream identity-provider connectors in Dex.
type DexConnectorReconciler struct {
	DexEntryDeps

	// probeReady holds the Dex addresses whose probe client is registered.
	probeReady sync.Map
}

// +kubebuilder:rbac:groups=dexterity.dev,resources=dexconnectors,verbs=get;list;watch;update;patch
// +kubebuilder:rbac:groups=dexterity.dev,resources=dexconnectors/status,verbs=get;update;patch
// +kubebuilder:rbac:groups=dexterity.dev,resources=dexconnectors/finalizers,verbs=update

// connectorEntries is how DexConnectors keep their connectors in Dex (the flow: dexentry.go).
var connectorEntries = dexEntryKind[*dexv1.DexConnector]{
	controllerName: "dexconnector", use: tenancy.Connectors,
	secretIndex: indexConnectorSecret, providerIndex: indexConnectorProvider,
	newObject:   func() *dexv1.DexConnector { return &dexv1.DexConnector{} },
	summarize:   summarizeConnector,
	deleteEntry: func(ctx context.Context, dc dex.Client, id string) error { return dc.DeleteConnector(ctx, id) },
}

// Reconcile makes Dex hold exactly the connector a DexConnector describes.
func (r *DexConnectorReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	return connectorEntries.reconcile(ctx, &r.DexEntryDeps, req, r.syncConnector)
}

// syncConnector renders the config, makes the connector in Dex match, then probes its health.
func (r *DexConnectorReconciler) syncConnector(ctx context.Context, c *dexv1.DexConnector, own *ownership.Scope) (string, error) {
	p := own.Provider
	cfg, err := r.renderConfig(ctx, c)
	if err == nil {
		err = r.reconcileDexConnector(ctx, c, own, cfg)
		if dex.IsReadOnly(err) {
			err = outcome.Stall(dexv1.ReasonConnectorExistsInDex, fmt.Sprintf("connector id %q is defined in Dex's configuration file, which Dex's API cannot change; choose another spec.connectorId", c.Spec.ConnectorID))
		}
		if dex.IsConnectorsCRUDDisabled(err) {
			err = connectorsCRUDDisabled
		}
		if dex.IsUnimplemented(err) {
			err = outcome.Stall(dexv1.ReasonDexVersionUnsupported, fmt.Sprintf("%s has no connector API (connector CRUD came with Dex %s): DexConnectors need Dex %s or newer; upgrade the Dex at %s. Nothing was written to Dex; clients keep working",
				dexRelease(p), MinDexForConnectors, MinDexForConnectors, p.Spec.Dex.GRPCAddress))
		}
	}
	if err != nil {
		return dexv1.ConditionRegistered, err
	}
	r.reconcileHealth(ctx, c, p)
	return "", nil
}

// MinDexForConnectors is the first Dex release with connector CRUD in its gRPC API.
const MinDexForConnectors = "v2.41.0"

// dexRelease names the Dex of p as its status knows it ("Dex v2.39.1", or "this Dex" before the
// provider read it).
func dexRelease(p *dexv1.OIDCProvider) string {
	if p.Status.Dex != nil && p.Status.Dex.Version != "" {
		return fmt.Sprintf("Dex %s (API v%d)", p.Status.Dex.Version, p.Status.Dex.API)
	}
	return "this Dex"
}

// connectorsCRUDDisabled is the problem of a Dex that refuses connector changes for lack of its
// feature flag: a setting of Dex waits for its administrator, not for Dex.
var connectorsCRUDDisabled = outcome.Stall(dexv1.ReasonConnectorsCRUDDisabled,
	"Dex refuses connector changes through its API: start Dex with the environment variable DEX_API_CONNECTORS_CRUD=true (e.g. in the Dex Deployment's env), then this object converges on its own")

// renderConfig reads the Secret values of spec.secrets and renders the config with
// connector.Render (the same rendering admission checks with placeholders). The rendered config
// lives only in memory.
func (r *DexConnectorReconciler) renderConfig(ctx context.Context, c *dexv1.DexConnector) ([]byte, error) {
	var raw []byte
	if c.Spec.Config != nil {
		raw = c.Spec.Config.Raw
	}
	typ := string(c.Spec.Type)
	values := map[string]string{}
	for i, s := range c.Spec.Secrets {
		var sec corev1.Secret
		err := readSecret(ctx, r.Client, types.NamespacedName{Namespace: c.Namespace, Name: s.SecretRef.Name}, &sec)
		if apierrors.IsNotFound(err) || (err == nil && len(sec.Data[s.SecretRef.Key]) == 0) {
			return nil, outcome.StallPolling(dexv1.ReasonSecretNotFound, fmt.Sprintf("spec.secrets[%d].secretRef: Secret %s/%s with key %q not found or empty; create it. The connector in Dex is left as it is", i, c.Namespace, s.SecretRef.Name, s.SecretRef.Key))
		}
		if err != nil {
			return nil, fmt.Errorf("failed to get Secret %s/%s: %w", c.Namespace, s.SecretRef.Name, err)
		}
		values[s.Path] = string(sec.Data[s.SecretRef.Key])
	}
	out := connector.Render(typ, raw, values)
	switch {
	case len(out.LiteralSecrets) > 0:
		paths := make([]string, len(out.LiteralSecrets))
		for i, l := range out.LiteralSecrets {
			paths[i] = "spec.config." + l
		}
		return nil, outcome.Stall(dexv1.ReasonInvalidConfig, fmt.Sprintf("%s: secret values must not be written in spec.config; remove them and add spec.secrets entries, e.g. {path: %s, secretRef: {name: <secret>, key: <key>}}", strings.Join(paths, ", "), out.LiteralSecrets[0]))
	case out.InjectErr != nil:
		return nil, outcome.Stall(dexv1.ReasonInvalidConfig, "spec.secrets: "+out.InjectErr.Error())
	case len(out.Invalid) > 0:
		msgs := make([]string, 0, len(out.Invalid))
		for _, e := range out.Invalid {
			if e.Path == "" {
				msgs = append(msgs, "spec.type: "+e.Message)
				continue
			}
			msgs = append(msgs, "spec.config."+e.Path+": "+e.Message)
		}
		return nil, outcome.Stall(dexv1.ReasonInvalidConfig, "Dex would not load this "+typ+" connector: "+strings.Join(msgs, "; "))
	}
	return out.Config, nil
}

// reconcileDexConnector compares the connector in Dex with the desired one and writes only what
// differs, holding the claim on its id (own) before any write. UpdateConnector always gets the
// full type, name and config (Dex requires it).
func (r *DexConnectorReconciler) reconcileDexConnector(ctx context.Context, c *dexv1.DexConnector, own *ownership.Scope, cfg []byte) error {
	dc, err := dexClientForReconcile(ctx, r.Client, r.Pool, own.Provider)
	if err != nil {
		return err
	}
	id := c.Spec.ConnectorID
	all, err := dc.ListConnectors(ctx)
	if err != nil {
		return err
	}
	var actual *api.Connector
	for _, a := range all {
		if a.GetId() == id {
			actual = a
		}
	}
	foreign := outcome.Stall(dexv1.ReasonConnectorExistsInDex, fmt.Sprintf("connector id %q already exists in Dex (from Dex's config file or created by hand) and is left untouched; choose another spec.connectorId", id))
	if err := r.holdForWrite(ctx, own, actual != nil, foreign); err != nil {
		return err
	}
	desired := connector.Desired(id, string(c.Spec.Type), c.Spec.DisplayName, cfg)
	logger := log.FromContext(ctx).WithValues("connectorId", id)
	switch action, why := connector.Plan(actual, desired); action {
	case connector.Create:
		if err := dc.CreateConnector(ctx, desired); err != nil {
			return fmt.Errorf("failed to create connector %s in Dex: %w", id, err)
		}
		logger.Info("Created connector in Dex")
		r.Recorder.Eventf(c, corev1.EventTypeNormal, "Created", "Created connector %s in Dex", id)
	case connector.Update:
		if err := dc.UpdateConnector(ctx, connector.UpdateRequest(desired)); err != nil {
			return fmt.Errorf("failed to update connector %s in Dex: %w", id, err)
		}
		logger.Info("Updated connector in Dex", "reason", why)
		r.Recorder.Eventf(c, corev1.EventTypeNormal, "Updated", "Updated connector %s in Dex (%s)", id, why)
	}
	setCondition(c, dexv1.ConditionRegistered, metav1.ConditionTrue, dexv1.ReasonReconciled, "connector registered in Dex")
	return nil
}

// reconcileHealth probes GET <issuer>/auth/<id> without following redirects: a redirect means
// Dex initialised the connector, 400 means it failed to.
func (r *DexConnectorReconciler) reconcileHealth(ctx context.Context, c *dexv1.DexConnector, p *dexv1.OIDCProvider) {
	dc, err := dexClientFor(ctx, r.Client, r.Pool, p)
	if err == nil {
		err = r.ensureProbeClient(ctx, dc, p, false)
	}
	if err != nil {
		setCondition(c, dexv1.ConditionConnectorHealthy, metav1.ConditionUnknown, dexv1.ReasonDexUnavailable, fmt.Sprintf("cannot prepare the health probe: %v", err))
		return
	}
	code, err := probeConnector(ctx, p, c.Spec.ConnectorID)
	if err == nil && code == http.StatusBadRequest {
		// Maybe the probe client is gone (Dex restarted on memory storage): make sure, and ask again.
		if err = r.ensureProbeClient(ctx, dc, p, true); err == nil {
			code, err = probeConnector(ctx, p, c.Spec.ConnectorID)
		}
	}
	switch {
	case err != nil:
		setCondition(c, dexv1.ConditionConnectorHealthy, metav1.ConditionUnknown, dexv1.ReasonDexUnavailable, fmt.Sprintf("health probe failed: %v", err))
	case code >= 300 && code < 400:
		setCondition(c, dexv1.ConditionConnectorHealthy, metav1.ConditionTrue, dexv1.ReasonReconciled, "Dex initialised the connector")
	case code == http.StatusBadRequest:
		stallOn(c, dexv1.ConditionConnectorHealthy, outcome.Stall(dexv1.ReasonConnectorFailed, "Dex failed to initialise the connector (GET /auth/"+c.Spec.ConnectorID+" answered 400); check the config values and Dex's log"))
	default:
		setCondition(c, dexv1.ConditionConnectorHealthy, metav1.ConditionUnknown, dexv1.ReasonProgressing, fmt.Sprintf("health probe answered HTTP %d", code))
	}
}

// ensureProbeClient registers the probe client in p's Dex once per Dex address (again when force
// is set), so that a steady-state resync writes nothing to Dex.
func (r *DexConnectorReconciler) ensureProbeClient(ctx context.Context, dc dex.Client, p *dexv1.OIDCProvider, force bool) error {
	key := tenancy.DexAddress(p)
	if _, done := r.probeReady.Load(key); done && !force {
		return nil
	}
	err := dc.CreateClient(ctx, &api.Client{Id: ProbeClientID, Name: "Dexterity connector probe", Public: true, RedirectUris: []string{ProbeRedirectURI}})
	if err != nil && !dex.IsAlreadyExists(err) {
		r.probeReady.Delete(key)
		return err
	}
	r.probeReady.Store(key, true)
	return nil
}

func probeConnector(ctx context.Context, p *dexv1.OIDCProvider, id string) (int, error) {
	base := strings.TrimSuffix(p.Spec.IssuerURL, "/")
	if p.Spec.DiscoveryURL != "" {
		base = strings.TrimSuffix(strings.TrimSuffix(p.Spec.DiscoveryURL, "/.well-known/openid-configuration"), "/")
	}
	q := url.Values{"client_id": {ProbeClientID}, "redirect_uri": {ProbeRedirectURI}, "response_type": {"code"}, "scope": {"openid"}, "state": {"dexterity-probe"}}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/auth/"+url.PathEscape(id)+"?"+q.Encode(), nil)
	if err != nil {
		return 0, err
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	if p.Spec.CABundle != "" {
		pool := x509.NewCertPool()
		pool.AppendCertsFromPEM([]byte(p.Spec.CABundle))
		tr.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	}
	hc := &http.Client{Transport: tr, Timeout: 10 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := hc.Do(req)
	if err != nil {
		return 0, err
	}
	_ = resp.Body.Close()
	return resp.StatusCode, nil
}

// summarizeConnector sets Ready from Registered and ConnectorHealthy (dropped while the connector
// is not registered); a deleted connector keeps the Ready its finalizer sets.
func summarizeConnector(c *dexv1.DexConnector) {
	if !c.DeletionTimestamp.IsZero() {
		return
	}
	if r := meta.FindStatusCondition(c.Status.Conditions, dexv1.ConditionRegistered); r != nil && r.Status != metav1.ConditionTrue {
		removeCondition(c, dexv1.ConditionConnectorHealthy)
	}
	summarizeReady(c, dexv1.ConditionRegistered, dexv1.ConditionConnectorHealthy)
}

// SetupWithManager registers the controller and its watches (dexEntryKind.setupWithManager).
func (r *DexConnectorReconciler) SetupWithManager(mgr ctrl.Manager) error {
	return connectorEntries.setupWithManager(mgr, r, &r.DexEntryDeps, 0)
}
