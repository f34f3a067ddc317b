package controllers

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/record"
	"k8s.io/client-go/util/workqueue"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/source"

	claimsv1 "dexterity.dev/dexterity/api/claims/v1alpha1"
	dexv1 "dexterity.dev/dexterity/api/v1alpha1"
	"dexterity.dev/dexterity/internal/dex"
	"dexterity.dev/dexterity/internal/oidc"
	"dexterity.dev/dexterity/internal/outcome"
	"dexterity.dev/dexterity/internal/ownership"
	"dexterity.dev/dexterity/internal/tenancy"
)

const (
	// Index of OIDCProviders by the name of their Dex TLS Secret.
	indexProviderTLSSecret = "spec.dex.tls.secretRef.name"

	// ProviderFinalizer keeps an OIDCProvider that administers a Dex until no DexStaticClient or
	// DexConnector registered through it is left: their finalizers need the provider to delete
	// their entries from Dex, so deleting the provider first must not orphan them there.
	ProviderFinalizer = "dexterity.dev/provider-in-use"
)

// OIDCProviderReconciler reconciles OIDCProviders: Dex reachability, and the state of the
// issuer's discovery and keys, reported in status from the same key cache the registry verifies
// with (KeyCacheSync writes that cache on every replica; this reconciler only reads it).
type OIDCProviderReconciler struct {
	client.Client
	Recorder record.EventRecorder
	Pool     dex.Connections
	// Keys is the shared signing-key cache the registry server verifies with, read here for the
	// status (KeyCacheSync is its writer).
	Keys *oidc.Cache
	// APIReader reads from the API server, bypassing the cache: a deleted provider checks there
	// that no dependent registered just now before it lets go.
	APIReader client.Reader

	// ServiceAccountFallback, when set, says how the registry checks ServiceAccount tokens
	// (Options.ServiceAccountFallback).
	ServiceAccountFallback func() (published bool, message string)

	// HealthInterval is how often a reachable Dex is checked again (default 30s).
	HealthInterval time.Duration
	// MaxRetryDelay caps the backoff of failed reconciles (default 30s).
	MaxRetryDelay time.Duration
}

// +kubebuilder:rbac:groups=dexterity.dev,resources=oidcproviders,verbs=get;list;watch;update;patch
// +kubebuilder:rbac:groups=dexterity.dev,resources=oidcproviders/status,verbs=get;update;patch
// +kubebuilder:rbac:groups=dexterity.dev,resources=oidcproviders/finalizers,verbs=update
// +kubebuilder:rbac:groups="",resources=secrets,verbs=get;list;watch
// Events: controller-runtime's recorder writes core/v1 Events (not events.k8s.io).
// +kubebuilder:rbac:groups="",resources=events,verbs=create;patch

// Reconcile brings an OIDCProvider's status in line with the Dex and issuer it names.
func (r *OIDCProviderReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	p := &dexv1.OIDCProvider{}
	if err := r.Get(ctx, req.NamespacedName, p); err != nil {
		if apierrors.IsNotFound(err) {
			r.Pool.Forget(req.String())
			return ctrl.Result{}, r.releaseHostnamesOfGone(ctx, req.NamespacedName)
		}
		return ctrl.Result{}, err
	}
	if !p.DeletionTimestamp.IsZero() {
		// A provider being deleted serves nothing (it may wait for its clients): its hosts go
		// to the next provider listing them at once.
		if err := r.releaseHostnames(ctx, p.Namespace, p.Name, func(*claimsv1.HostnameClaim) bool { return true }); err != nil {
			return ctrl.Result{}, err
		}
		return r.finalize(ctx, p)
	}
	if err := r.reconcileFinalizer(ctx, p); err != nil {
		return ctrl.Result{}, err
	}

	before := p.DeepCopy()
	hostConflict, err := r.reconcileHostnames(ctx, p)
	if err != nil {
		return ctrl.Result{}, err
	}
	audienceConflict, err := r.audiencesHeldElsewhere(ctx, p)
	if err != nil {
		return ctrl.Result{}, err
	}
	r.reportKeys(p)
	r.reconcileServiceAccountFallback(p)
	err = r.reconcileDexReachable(ctx, p)
	return r.statusKind(func(p *dexv1.OIDCProvider) {
		summarizeProvider(p)
		// A conflict waits for the user whatever the other conditions say.
		for _, c := range []struct{ reason, msg string }{{dexv1.ReasonAudienceHeldElsewhere, audienceConflict}, {dexv1.ReasonHostnameConflict, hostConflict}} {
			if c.msg != "" {
				stallOn(p, dexv1.ConditionReady, outcome.Stall(c.reason, c.msg))
				p.Status.Phase, p.Status.Message = dexv1.PhaseFailed, c.msg
			}
		}
	}).finish(ctx, p, before, ctrl.Result{RequeueAfter: r.healthInterval()}, err)
}

// statusKind is how a provider's reconciles end, with the Ready summary summarize; a provider
// that waits is looked at again at the health interval.
func (r *OIDCProviderReconciler) statusKind(summarize func(*dexv1.OIDCProvider)) statusKind[*dexv1.OIDCProvider] {
	return statusKind[*dexv1.OIDCProvider]{client: r.Client, recorder: r.Recorder, summarize: summarize, resync: r.healthInterval}
}

// reconcileFinalizer keeps ProviderFinalizer on exactly the providers that administer a Dex.
func (r *OIDCProviderReconciler) reconcileFinalizer(ctx context.Context, p *dexv1.OIDCProvider) error {
	want := p.Spec.Dex != nil
	if want == controllerutil.ContainsFinalizer(p, ProviderFinalizer) {
		return nil
	}
	orig := p.DeepCopy()
	if want {
		controllerutil.AddFinalizer(p, ProviderFinalizer)
	} else {
		controllerutil.RemoveFinalizer(p, ProviderFinalizer)
	}
	if err := ownership.PatchMetadata(ctx, r.Client, p, client.MergeFromWithOptions(orig, client.MergeFromWithOptimisticLock{})); err != nil {
		return fmt.Errorf("failed to update the finalizer of OIDCProvider %s: %w", providerKey(p), err)
	}
	return nil
}

// reconcileServiceAccountFallback makes the ServiceAccountFallback condition say how the
// registry checks ServiceAccount tokens for a provider with allowServiceAccountFallback: verified
// against the keys the API server publishes, or rate-limited where it publishes none.
func (r *OIDCProviderReconciler) reconcileServiceAccountFallback(p *dexv1.OIDCProvider) {
	if r.ServiceAccountFallback == nil || !p.OIDCEnabled() || !p.Spec.AllowServiceAccountFallback {
		removeCondition(p, dexv1.ConditionServiceAccountFallback)
		return
	}
	published, msg := r.ServiceAccountFallback()
	if published {
		setCondition(p, dexv1.ConditionServiceAccountFallback, metav1.ConditionTrue, dexv1.ReasonKeysPublished, msg)
		return
	}
	setCondition(p, dexv1.ConditionServiceAccountFallback, metav1.ConditionFalse, dexv1.ReasonRateLimited, msg)
}

// audiencesHeldElsewhere says which of p's audiences (spec.clientId, spec.audiences) a
// DexStaticClient of another namespace has registered in p's Dex (its claim says so), or "" when
// none: a token issued through such a client is no proof of anything to p's registry, which
// refuses p's tokens meanwhile. The Dex is p's own (spec.dex) and that of every provider with
// spec.dex and the same issuer (a registry provider without spec.dex trusts that Dex's tokens).
func (r *OIDCProviderReconciler) audiencesHeldElsewhere(ctx context.Context, p *dexv1.OIDCProvider) (string, error) {
	addrs, err := tenancy.DexAddresses(ctx, r.Client, p)
	if err != nil {
		return "", err
	}
	var parts []string
	for _, aud := range tenancy.Audiences(p) {
		for _, addr := range addrs {
			cl := &claimsv1.DexEntryClaim{}
			err := r.Get(ctx, types.NamespacedName{Name: claimsv1.EntryClaimName(claimsv1.EntryClient, addr, aud)}, cl)
			if apierrors.IsNotFound(err) {
				continue
			}
			if err != nil {
				return "", fmt.Errorf("failed to get the claim on client id %s: %w", aud, err)
			}
			if o := cl.Spec.Owner; o.Namespace != p.Namespace {
				parts = append(parts, fmt.Sprintf("%q is registered by DexStaticClient %s/%s", aud, o.Namespace, o.Name))
				break
			}
		}
	}
	if len(parts) == 0 {
		return "", nil
	}
	return fmt.Sprintf("spec.clientId/spec.audiences: audience %s, another namespace; the registry refuses this provider's tokens (401) until it is resolved: delete that DexStaticClient (or have its owner do so), or choose another audience for this provider", strings.Join(parts, ", ")), nil
}

// providersWithAudience maps a claim on a client id to the providers whose audience it is.
func (r *OIDCProviderReconciler) providersWithAudience(ctx context.Context, o client.Object) []reconcile.Request {
	cl, ok := o.(*claimsv1.DexEntryClaim)
	if !ok || cl.Spec.EntryKind != claimsv1.EntryClient {
		return nil
	}
	var all dexv1.OIDCProviderList
	if err := r.List(ctx, &all, client.UnsafeDisableDeepCopy); err != nil {
		return nil
	}
	var out []reconcile.Request
	for i := range all.Items {
		if q := &all.Items[i]; tenancy.HasAudience(q, cl.Spec.EntryID) {
			out = append(out, reconcile.Request{NamespacedName: client.ObjectKeyFromObject(q)})
		}
	}
	return out
}

// providerTakesNewEntries refuses a first registration through a provider that is being deleted
// (it would hold the deletion up), or whose finalizer is not in place yet (it could be deleted
// without waiting for the new entry, which would then be orphaned in Dex).
func providerTakesNewEntries(p *dexv1.OIDCProvider) error {
	if !p.DeletionTimestamp.IsZero() {
		return outcome.Stall(dexv1.ReasonProviderDeleting, fmt.Sprintf("spec.providerRef: OIDCProvider %s is being deleted and takes no new clients or connectors; refer to another provider", providerKey(p)))
	}
	if !controllerutil.ContainsFinalizer(p, ProviderFinalizer) {
		// An ordinary start-up order (the provider's first reconcile has not run yet): a short
		// wait, not an error or a warning.
		return outcome.Wait(dexv1.ReasonProgressing, fmt.Sprintf("OIDCProvider %s is not set up yet (its finalizer %s is missing); waiting for it", providerKey(p), ProviderFinalizer), time.Second)
	}
	return nil
}

// finalize releases a deleted provider once no client or connector registered through it is
// left (like Kubernetes' PVC protection); until then it says what it waits for. A provider
// without spec.dex has nothing to wait for. When the provider's namespace is being deleted, only
// the dependents in that namespace are waited for: the namespace must go away, and the others
// are named in a Warning event (their entries stay in Dex when they are deleted later).
func (r *OIDCProviderReconciler) finalize(ctx context.Context, p *dexv1.OIDCProvider) (ctrl.Result, error) {
	if !controllerutil.ContainsFinalizer(p, ProviderFinalizer) {
		r.Pool.Forget(providerKey(p))
		return ctrl.Result{}, nil
	}
	nsGoing, err := namespaceTerminating(ctx, r.Client, p.Namespace)
	if err != nil {
		return ctrl.Result{}, err
	}
	var waiting, abandoned []string
	if p.Spec.Dex != nil {
		all, err := r.registeredDependents(ctx, r.Client, true, p)
		if err != nil {
			return ctrl.Result{}, err
		}
		if len(all) == 0 && r.APIReader != nil {
			// The cache may not have seen a claim made just now: ask the API server before letting go.
			if all, err = r.registeredDependents(ctx, r.APIReader, false, p); err != nil {
				return ctrl.Result{}, err
			}
		}
		for _, d := range all {
			if !nsGoing || d.Namespace == p.Namespace {
				waiting = append(waiting, d.String())
			} else {
				abandoned = append(abandoned, d.String())
			}
		}
	}
	if len(waiting) > 0 {
		before := p.DeepCopy()
		msg := fmt.Sprintf("waiting for %d DexStaticClients and DexConnectors registered in this Dex to be deleted first (%s): their finalizers remove them from Dex through this provider", len(waiting), firstFew(waiting))
		// finish emits the Normal Deleting event when Ready turns to Deleting. The deletion of
		// each dependent wakes this provider; the requeue is a safety net.
		return r.statusKind(func(p *dexv1.OIDCProvider) {
			setCondition(p, dexv1.ConditionReady, metav1.ConditionFalse, dexv1.ReasonDeleting, msg)
			p.Status.Phase, p.Status.Message = dexv1.PhasePending, msg
		}).finish(ctx, p, before, ctrl.Result{RequeueAfter: r.healthInterval()}, nil)
	}
	if len(abandoned) > 0 {
		r.Recorder.Eventf(p, corev1.EventTypeWarning, dexv1.ReasonDeleting, "namespace %s is being deleted: releasing the provider although %d objects in other namespaces still refer to it (%s); their entries stay in Dex when they are deleted", p.Namespace, len(abandoned), firstFew(abandoned))
	}
	orig := p.DeepCopy()
	controllerutil.RemoveFinalizer(p, ProviderFinalizer)
	if err := ownership.PatchMetadata(ctx, r.Client, p, client.MergeFromWithOptions(orig, client.MergeFromWithOptimisticLock{})); err != nil && !apierrors.IsNotFound(err) {
		return ctrl.Result{}, fmt.Errorf("failed to release the finalizer of OIDCProvider %s: %w", providerKey(p), err)
	}
	r.Pool.Forget(providerKey(p))
	return ctrl.Result{}, nil
}

// firstFew joins up to five names, then says how many more there are.
func firstFew(names []string) string {
	if len(names) <= 5 {
		return strings.Join(names, ", ")
	}
	return strings.Join(names[:5], ", ") + fmt.Sprintf(" and %d more", len(names)-5)
}

// dependent is a client or connector that refers to a provider.
type dependent struct{ Kind, Namespace, Name string }

func (d dependent) String() string { return d.Kind + " " + d.Namespace + "/" + d.Name }

// registeredDependents lists the clients and connectors that may have an entry in p's Dex: those
// holding a claim made through p, and those whose finalizer and status say they registered one
// before claims existed. (A finalizer alone says nothing: admission sets it on every new object.)
// From the cache (cached) it uses the provider indexes; from the API server (no field index
// there) it filters a full list.
func (r *OIDCProviderReconciler) registeredDependents(ctx context.Context, reader client.Reader, cached bool, p *dexv1.OIDCProvider) ([]dependent, error) {
	key := providerKey(p)
	var opts []client.ListOption
	if cached {
		opts = []client.ListOption{client.MatchingFields{indexClientProvider: key}}
	}
	var out []dependent
	var clients dexv1.DexStaticClientList
	if err := reader.List(ctx, &clients, opts...); err != nil {
		return nil, fmt.Errorf("failed to list DexStaticClients of OIDCProvider %s: %w", key, err)
	}
	for i := range clients.Items {
		c := &clients.Items[i]
		if tenancy.RefKey(c.Namespace, c.Spec.ProviderRef).String() == key && controllerutil.ContainsFinalizer(c, ClientFinalizer) && c.Registered() {
			out = append(out, dependent{"DexStaticClient", c.Namespace, c.Name})
		}
	}
	if cached {
		opts = []client.ListOption{client.MatchingFields{indexConnectorProvider: key}}
	}
	var connectors dexv1.DexConnectorList
	if err := reader.List(ctx, &connectors, opts...); err != nil {
		return nil, fmt.Errorf("failed to list DexConnectors of OIDCProvider %s: %w", key, err)
	}
	for i := range connectors.Items {
		c := &connectors.Items[i]
		if tenancy.RefKey(c.Namespace, c.Spec.ProviderRef).String() == key && controllerutil.ContainsFinalizer(c, ConnectorFinalizer) && c.Registered() {
			out = append(out, dependent{"DexConnector", c.Namespace, c.Name})
		}
	}
	// Claims whose owner is gone without its finalizer (the DexEntryClaim controller deletes
	// their entries through this provider).
	seen := map[string]bool{}
	for _, d := range out {
		seen[d.String()] = true
	}
	if cached {
		opts = []client.ListOption{client.MatchingFields{indexClaimProvider: key}}
	}
	var claims claimsv1.DexEntryClaimList
	if err := reader.List(ctx, &claims, opts...); err != nil {
		return nil, fmt.Errorf("failed to list the claims of OIDCProvider %s: %w", key, err)
	}
	for _, cl := range claims.Items {
		d := dependent{cl.Spec.Owner.Kind, cl.Spec.Owner.Namespace, cl.Spec.Owner.Name}
		if tenancy.ProviderKey(cl.Spec.Provider.Namespace, cl.Spec.Provider.Name) == key && !seen[d.String()] {
			seen[d.String()] = true
			out = append(out, d)
		}
	}
	slices.SortFunc(out, func(a, b dependent) int { return strings.Compare(a.String(), b.String()) })
	return out, nil
}

// reconcileDexReachable makes DexReachable say whether Dex's gRPC API answers: a spec.dex or
// TLS Secret to fix stalls, an unreachable Dex is retried with backoff.
func (r *OIDCProviderReconciler) reconcileDexReachable(ctx context.Context, p *dexv1.OIDCProvider) error {
	if p.Spec.Dex == nil {
		removeCondition(p, dexv1.ConditionDexReachable)
		p.Status.Dex = nil
		r.Pool.Forget(providerKey(p))
		return nil
	}
	dc, err := dexClientFor(ctx, r.Client, r.Pool, p)
	switch {
	case outcome.IsStalled(err): // an invalid spec.dex
		return failedOn(dexv1.ConditionDexReachable, err)
	case errors.Is(err, errTLSSecret):
		// Until the Secret changes: the Secret's watch brings us back once the Secret exists
		// (readSecret labels it), and the health interval's requeue until then.
		return failedOn(dexv1.ConditionDexReachable, outcome.Stall(dexv1.ReasonDexTLSSecretInvalid, err.Error()))
	case err != nil:
		return err
	}
	v, err := dc.GetVersion(ctx)
	if err != nil {
		reason, msg := dexErrorCondition(p, err)
		log.FromContext(ctx).Info("Dex is not reachable", "address", p.Spec.Dex.GRPCAddress, "reason", reason, "error", err.Error())
		return failedOn(dexv1.ConditionDexReachable, outcome.RetryAs(reason, msg, err))
	}
	p.Status.Dex = &dexv1.DexVersionStatus{Version: v.GetServer(), API: v.GetApi()}
	setCondition(p, dexv1.ConditionDexReachable, metav1.ConditionTrue, dexv1.ReasonDexReachable,
		fmt.Sprintf("Dex %s (API v%d) answers at %s", v.GetServer(), v.GetApi(), p.Spec.Dex.GRPCAddress))
	return nil
}

// dexErrorCondition turns a failed Dex call into a condition reason and a message that says
// what to check.
func dexErrorCondition(p *dexv1.OIDCProvider, err error) (string, string) {
	addr := p.Spec.Dex.GRPCAddress
	switch {
	case dex.IsTLS(err):
		return dexv1.ReasonDexTLSError, fmt.Sprintf("TLS handshake with Dex at %s failed: %v; check Secret %q: ca.crt must hold the CA of Dex's grpc.tlsCert, and the client certificate (tls.crt, tls.key) must be signed by Dex's grpc.tlsClientCA", addr, err, tlsSecretName(p))
	case dex.IsUnavailable(err) && p.Spec.Dex.TLS != nil:
		return dexv1.ReasonDexUnavailable, fmt.Sprintf("cannot reach Dex's gRPC API at %s: %v; check that Dex is running, and that the client certificate in Secret %q is signed by Dex's grpc.tlsClientCA (Dex drops connections with untrusted client certificates)", addr, err, tlsSecretName(p))
	case dex.IsUnavailable(err):
		return dexv1.ReasonDexUnavailable, fmt.Sprintf("cannot reach Dex's gRPC API at %s: %v; check that Dex is running and spec.dex.grpcAddress", addr, err)
	}
	return dexv1.ReasonDexUnavailable, fmt.Sprintf("Dex's gRPC API at %s failed: %v", addr, err)
}

func tlsSecretName(p *dexv1.OIDCProvider) string {
	if p.Spec.Dex == nil || p.Spec.Dex.TLS == nil {
		return ""
	}
	return p.Spec.Dex.TLS.SecretRef.Name
}

// summarizeProvider sets Ready and phase from the specific conditions.
func summarizeProvider(p *dexv1.OIDCProvider) {
	var types []string
	if p.OIDCEnabled() {
		types = append(types, dexv1.ConditionDiscoveryReady, dexv1.ConditionKeysReady)
	}
	if p.Spec.Dex != nil {
		types = append(types, dexv1.ConditionDexReachable)
	}
	summarizeReady(p, types...)
	ready := findCondition(p.Status.Conditions, dexv1.ConditionReady)
	switch ready.Status {
	case metav1.ConditionTrue:
		p.Status.Phase, p.Status.Message = dexv1.PhaseReady, ""
		if k := findCondition(p.Status.Conditions, dexv1.ConditionKeysReady); k.Reason == dexv1.ReasonKeysRefreshFailed {
			p.Status.Message = k.Message
		}
	case metav1.ConditionFalse:
		p.Status.Phase, p.Status.Message = dexv1.PhaseFailed, ready.Message
	default:
		p.Status.Phase, p.Status.Message = dexv1.PhasePending, ready.Message
	}
}

func (r *OIDCProviderReconciler) healthInterval() time.Duration {
	if r.HealthInterval > 0 {
		return r.HealthInterval
	}
	return 30 * time.Second
}

// SetupWithManager registers the controller and its watches.
func (r *OIDCProviderReconciler) SetupWithManager(mgr ctrl.Manager) error {
	maxDelay := r.MaxRetryDelay
	if maxDelay <= 0 {
		maxDelay = 30 * time.Second
	}
	// Every change of the key cache's entry for a provider (KeyCacheSync built, replaced, refused
	// or removed it; a refresh succeeded or failed) re-reconciles the provider so that its status
	// reflects the cache.
	keysChanged := make(chan event.TypedGenericEvent[*dexv1.OIDCProvider], 64)
	r.Keys.OnChange(func(key string) {
		ns, name, _ := strings.Cut(key, "/")
		select {
		case keysChanged <- event.TypedGenericEvent[*dexv1.OIDCProvider]{Object: &dexv1.OIDCProvider{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}}}:
		default: // a full queue already holds work for the providers; the periodic check catches up
		}
	})
	// A deleted client or connector wakes its provider, which may be waiting for it to go.
	dependentGone := handler.Funcs{DeleteFunc: func(_ context.Context, e event.TypedDeleteEvent[client.Object], q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
		switch o := e.Object.(type) {
		case *dexv1.DexStaticClient:
			q.Add(reconcile.Request{NamespacedName: tenancy.RefKey(o.Namespace, o.Spec.ProviderRef)})
		case *dexv1.DexConnector:
			q.Add(reconcile.Request{NamespacedName: tenancy.RefKey(o.Namespace, o.Spec.ProviderRef)})
		case *claimsv1.DexEntryClaim:
			q.Add(reconcile.Request{NamespacedName: types.NamespacedName{Namespace: o.Spec.Provider.Namespace, Name: o.Spec.Provider.Name}})
		}
	}}
	return ctrl.NewControllerManagedBy(mgr).
		For(&dexv1.OIDCProvider{}, builder.WithPredicates(predicate.Or(predicate.GenerationChangedPredicate{}, deletionStarted{}))).
		Watches(&corev1.Secret{}, handler.EnqueueRequestsFromMapFunc(r.providersForSecret), builder.OnlyMetadata).
		Watches(&claimsv1.HostnameClaim{}, handler.EnqueueRequestsFromMapFunc(r.providersOfHostClaim)).
		Watches(&dexv1.DexStaticClient{}, dependentGone).
		Watches(&dexv1.DexConnector{}, dependentGone).
		Watches(&claimsv1.DexEntryClaim{}, dependentGone).
		Watches(&claimsv1.DexEntryClaim{}, handler.EnqueueRequestsFromMapFunc(r.providersWithAudience)).
		WatchesRawSource(source.Channel(keysChanged, &handler.TypedEnqueueRequestForObject[*dexv1.OIDCProvider]{})).
		WithOptions(controller.Options{
			RateLimiter: workqueue.NewTypedItemExponentialFailureRateLimiter[reconcile.Request](100*time.Millisecond, maxDelay),
		}).
		Named("oidcprovider").
		Complete(r)
}

func (r *OIDCProviderReconciler) providersForSecret(ctx context.Context, o client.Object) []reconcile.Request {
	return requestsFromList(ctx, r, &dexv1.OIDCProviderList{}, client.InNamespace(o.GetNamespace()), client.MatchingFields{indexProviderTLSSecret: o.GetName()})
}
