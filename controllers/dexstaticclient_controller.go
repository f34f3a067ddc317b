package controllers

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
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

	claimsv1 "dexterity.dev/dexterity/api/claims/v1alpha1"
	dexv1 "dexterity.dev/dexterity/api/v1alpha1"
	"dexterity.dev/dexterity/internal/clientspec"
	"dexterity.dev/dexterity/internal/dex"
	"dexterity.dev/dexterity/internal/tenancy"
)

const (
	// ClientFinalizer keeps a DexStaticClient until its client is deleted from Dex. It is added
	// only to the object that owns the client id, right before the first write to Dex.
	ClientFinalizer = "dexterity.dev/dex-client"
	// LegacyAnnotationRegisteredClientID is where versions before DexEntryClaims recorded the
	// client id an object owned. It is never trusted on its own (a tenant can write it): an object
	// whose status confirms it is carried over to a claim, and the annotation is dropped.
	LegacyAnnotationRegisteredClientID = "dexterity.dev/registered-client-id"

	indexClientOwnerKey = "dexterity.dev/client-owner-key"
	indexClientID       = "dexterity.dev/client-id"
	indexClientSecret   = "dexterity.dev/client-secret"
	indexClientProvider = "dexterity.dev/client-provider"
)

// DexStaticClientReconciler registers DexStaticClients in Dex.
type DexStaticClientReconciler struct {
	client.Client
	Recorder record.EventRecorder
	Pool     dex.Connections
	// APIReader reads from the API server, bypassing the cache (claims made just now).
	APIReader client.Reader

	// ResyncPeriod is the (jittered) period of drift repair (default 10m).
	ResyncPeriod time.Duration
	// MaxRetryDelay caps the backoff of failed reconciles (default 30s).
	MaxRetryDelay time.Duration
	// MaxConcurrentReconciles (default 16: reconciles mostly wait on the API server and Dex).
	MaxConcurrentReconciles int
}

// +kubebuilder:rbac:groups=dexterity.dev,resources=dexstaticclients,verbs=get;list;watch;update;patch
// +kubebuilder:rbac:groups=dexterity.dev,resources=dexstaticclients/status,verbs=get;update;patch
// +kubebuilder:rbac:groups=dexterity.dev,resources=dexstaticclients/finalizers,verbs=update
// +kubebuilder:rbac:groups=dexterity.dev,resources=oidcproviders,verbs=get;list;watch
// +kubebuilder:rbac:groups="",resources=secrets,verbs=get;list;watch;create
// +kubebuilder:rbac:groups="",resources=namespaces,verbs=get;list;watch

// Reconcile makes Dex hold exactly the client a DexStaticClient describes.
func (r *DexStaticClientReconciler) Reconcile(ctx context.Context, req ctrl.Request) (res ctrl.Result, retErr error) {
	c := &dexv1.DexStaticClient{}
	if err := r.Get(ctx, req.NamespacedName, c); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	before := c.DeepCopy()
	defer func() {
		if !released(c, ClientFinalizer) {
			finishStatus(ctx, r.Client, r.Recorder, c, before, summarizeClient, &retErr)
		}
	}()

	id := c.EffectiveClientID()
	if !c.DeletionTimestamp.IsZero() {
		return clientOwnership.finalize(ctx, r.Client, r.APIReader, r.Pool, r.Recorder, c, c.Spec.ProviderRef, id,
			func(dc dex.Client, id string) error { return dc.DeleteClient(ctx, id) })
	}
	p, err := tenancy.ResolveProvider(ctx, r.Client, c.Namespace, c.Spec.ProviderRef, tenancy.Clients)
	if err == nil {
		err = tenancy.CheckReservedClientID(id)
	}
	if err == nil {
		err = tenancy.CheckClientIDPrefix(p, c.Namespace, id)
	}
	var held *claimsv1.DexEntryClaim
	if err == nil {
		held, err = clientOwnership.reconcile(ctx, r.Client, c, p, id)
	}
	if err != nil {
		return r.blockedOrError(c, dexv1.ConditionRegistered, err)
	}
	secret, err := r.reconcileSecret(ctx, c)
	if err != nil {
		return r.blockedOrError(c, dexv1.ConditionSecretReady, err)
	}
	if err := r.reconcileDexClient(ctx, c, p, id, secret, held); err != nil {
		if dex.IsReadOnly(err) {
			err = newBlocked(dexv1.ReasonClientExistsInDex, fmt.Sprintf("client id %q is defined in Dex's configuration file (staticClients), which Dex's API cannot change; remove it there, or choose another spec.clientId", id))
		}
		return r.blockedOrError(c, dexv1.ConditionRegistered, err)
	}
	return ctrl.Result{RequeueAfter: jitter(r.resyncPeriod())}, nil
}

// blockedOrError turns a sub-reconciler's error into a condition: a *blocked problem waits for
// the user (or a watched object) and is retried at the resync period; a Dex outage is returned so
// the workqueue backs off; anything else is returned as is.
func (r *DexStaticClientReconciler) blockedOrError(c *dexv1.DexStaticClient, condType string, err error) (ctrl.Result, error) {
	if res, ok := waitForProvider(c, condType, err); ok {
		return res, nil
	}
	var b *blocked
	switch {
	case errors.As(err, &b):
		setCondition(c, condType, metav1.ConditionFalse, b.Reason, b.Message)
		return ctrl.Result{RequeueAfter: jitter(r.resyncPeriod())}, nil
	case dex.IsUnavailable(err):
		setCondition(c, dexv1.ConditionRegistered, metav1.ConditionFalse, dexv1.ReasonDexUnavailable,
			fmt.Sprintf("Dex's gRPC API is unavailable (%v); retrying with backoff, nothing in Dex was changed", err))
		return ctrl.Result{}, err
	}
	setCondition(c, condType, metav1.ConditionFalse, dexv1.ReasonProgressing, err.Error())
	return ctrl.Result{}, err
}

// reconcileSecret returns the client secret ("" for public clients), generating the Secret when
// asked to. A missing Secret blocks: Dex is left untouched.
func (r *DexStaticClientReconciler) reconcileSecret(ctx context.Context, c *dexv1.DexStaticClient) (string, error) {
	if c.Spec.Public {
		setCondition(c, dexv1.ConditionSecretReady, metav1.ConditionTrue, dexv1.ReasonPublicClient, "public client: no secret")
		return "", nil
	}
	ref := c.Spec.SecretRef
	if ref == nil { // rejected by the API server; kept for objects stored before that rule
		return "", newBlocked(dexv1.ReasonInvalidSpec, "spec.secretRef: Required value: a confidential client needs spec.secretRef, or set spec.public=true")
	}
	var s corev1.Secret
	err := r.Get(ctx, types.NamespacedName{Namespace: c.Namespace, Name: ref.Name}, &s)
	switch {
	case apierrors.IsNotFound(err) && c.Spec.GenerateSecret:
		return r.generateSecret(ctx, c)
	case apierrors.IsNotFound(err):
		return "", newBlocked(dexv1.ReasonSecretNotFound, fmt.Sprintf("spec.secretRef: Secret %s/%s not found; create it with key %q, or set spec.generateSecret=true. The client in Dex is left as it is", c.Namespace, ref.Name, ref.Key))
	case err != nil:
		return "", fmt.Errorf("failed to get Secret %s/%s: %w", c.Namespace, ref.Name, err)
	}
	v := string(s.Data[ref.Key])
	if v == "" {
		return "", newBlocked(dexv1.ReasonSecretNotFound, fmt.Sprintf("spec.secretRef: Secret %s/%s has no (or an empty) key %q; add it. The client in Dex is left as it is", c.Namespace, ref.Name, ref.Key))
	}
	if metav1.IsControlledBy(&s, c) {
		setCondition(c, dexv1.ConditionSecretReady, metav1.ConditionTrue, dexv1.ReasonSecretGenerated, fmt.Sprintf("secret generated into Secret %s key %s", ref.Name, ref.Key))
	} else {
		setCondition(c, dexv1.ConditionSecretReady, metav1.ConditionTrue, dexv1.ReasonSecretAvailable, fmt.Sprintf("secret read from Secret %s key %s", ref.Name, ref.Key))
	}
	return v, nil
}

func (r *DexStaticClientReconciler) generateSecret(ctx context.Context, c *dexv1.DexStaticClient) (string, error) {
	buf := make([]byte, 32)
	if _, err := rand.Read(buf); err != nil {
		return "", fmt.Errorf("failed to generate client secret: %w", err)
	}
	v := base64.RawURLEncoding.EncodeToString(buf)
	s := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{
			Name:      c.Spec.SecretRef.Name,
			Namespace: c.Namespace,
			Labels:    map[string]string{"app.kubernetes.io/managed-by": "dexterity"},
		},
		Type: corev1.SecretTypeOpaque,
		Data: map[string][]byte{c.Spec.SecretRef.Key: []byte(v)},
	}
	if err := controllerutil.SetControllerReference(c, s, r.Scheme()); err != nil {
		return "", fmt.Errorf("failed to own Secret: %w", err)
	}
	if err := r.Create(ctx, s); err != nil {
		return "", fmt.Errorf("failed to create Secret %s/%s: %w", s.Namespace, s.Name, err)
	}
	r.Recorder.Eventf(c, corev1.EventTypeNormal, dexv1.ReasonSecretGenerated, "Created Secret %s with a random client secret", s.Name)
	setCondition(c, dexv1.ConditionSecretReady, metav1.ConditionTrue, dexv1.ReasonSecretGenerated, fmt.Sprintf("secret generated into Secret %s key %s", s.Name, c.Spec.SecretRef.Key))
	return v, nil
}

// reconcileDexClient compares the client in Dex with the desired one and writes only what differs.
func (r *DexStaticClientReconciler) reconcileDexClient(ctx context.Context, c *dexv1.DexStaticClient, p *dexv1.OIDCProvider, id, secret string, held *claimsv1.DexEntryClaim) error {
	dc, err := dexClientForReconcile(ctx, r.Client, r.Pool, p)
	if err != nil {
		return err
	}
	actual, err := dc.GetClient(ctx, id)
	if err != nil && !dex.IsNotFound(err) {
		return err
	}
	if actual != nil {
		if held, err = clientOwnership.confirm(ctx, r.APIReader, c, p, id, held); err != nil {
			return err
		}
	}
	ours := ownedBy(held, c) || clientOwnership.legacyOwned(ctx, c, id)
	if actual != nil && !ours && !c.Spec.AdoptExisting {
		return newBlocked(dexv1.ReasonClientExistsInDex, fmt.Sprintf("client id %q already exists in Dex and was not registered by Dexterity; it is left untouched. Set spec.adoptExisting=true to take it over, or choose another spec.clientId", id))
	}
	if err := clientOwnership.claim(ctx, r.Client, r.APIReader, c, p, id, held); err != nil {
		return err
	}
	desired := clientspec.Desired(c, id, secret)
	action, why := clientspec.Plan(actual, desired)
	logger := log.FromContext(ctx).WithValues("clientId", id)
	switch action {
	case clientspec.Create:
		if err := dc.CreateClient(ctx, desired); err != nil {
			return fmt.Errorf("failed to create client %s in Dex: %w", id, err)
		}
		logger.Info("Created client in Dex")
		r.Recorder.Eventf(c, corev1.EventTypeNormal, "Created", "Created client %s in Dex", id)
	case clientspec.Update:
		if err := dc.UpdateClient(ctx, clientspec.UpdateRequest(desired)); err != nil {
			return fmt.Errorf("failed to update client %s in Dex: %w", id, err)
		}
		logger.Info("Updated client in Dex", "why", why)
		r.Recorder.Eventf(c, corev1.EventTypeNormal, "Updated", "Updated client %s in Dex: %s", id, why)
	case clientspec.Recreate:
		// Dex cannot change a secret or the public flag, nor clear a field, in place: delete and
		// create back to back to keep the window without the client short.
		if err := dc.DeleteClient(ctx, id); err != nil && !dex.IsNotFound(err) {
			return fmt.Errorf("failed to delete client %s from Dex to re-register it: %w", id, err)
		}
		if err := dc.CreateClient(ctx, desired); err != nil {
			return fmt.Errorf("failed to re-create client %s in Dex: %w", id, err)
		}
		logger.Info("Re-registered client in Dex", "why", why)
		r.Recorder.Eventf(c, corev1.EventTypeNormal, "Reregistered", "Re-registered client %s in Dex (deleted and created again, because Dex cannot change this in place): %s", id, why)
	}
	now := metav1.Now()
	c.Status.ClientID = id
	c.Status.RedirectURIs = desired.RedirectUris
	c.Status.LastSyncTime = &now
	msg := "client registered in Dex"
	if actual != nil && action == clientspec.None {
		msg = "client in Dex matches the spec"
	}
	setCondition(c, dexv1.ConditionRegistered, metav1.ConditionTrue, dexv1.ReasonReconciled, msg)
	return nil
}

// summarizeClient sets Ready from SecretReady and Registered; a deleted client keeps the Ready
// its finalizer sets.
func summarizeClient(c *dexv1.DexStaticClient) {
	if c.DeletionTimestamp.IsZero() {
		summarizeReady(c, dexv1.ConditionSecretReady, dexv1.ConditionRegistered)
	}
}

func (r *DexStaticClientReconciler) resyncPeriod() time.Duration {
	if r.ResyncPeriod > 0 {
		return r.ResyncPeriod
	}
	return 10 * time.Minute
}

// jitter spreads periodic work: d ± 10%.
func jitter(d time.Duration) time.Duration {
	return time.Duration(float64(d) * (0.9 + 0.2*mrand.Float64()))
}

// SetupWithManager registers the controller and its watches (its indexes: indexes.go).
func (r *DexStaticClientReconciler) SetupWithManager(mgr ctrl.Manager) error {
	maxDelay := r.MaxRetryDelay
	if maxDelay <= 0 {
		maxDelay = 30 * time.Second
	}
	workers := r.MaxConcurrentReconciles
	if workers <= 0 {
		workers = 16
	}
	return ctrl.NewControllerManagedBy(mgr).
		For(&dexv1.DexStaticClient{}, builder.WithPredicates(predicate.Or(predicate.GenerationChangedPredicate{}, deletionStarted{}, finalizerDropped{ClientFinalizer}))).
		Watches(&dexv1.DexStaticClient{}, handler.Funcs{DeleteFunc: r.enqueuePeersOnDelete}).
		Watches(&claimsv1.DexEntryClaim{}, handler.Funcs{DeleteFunc: waitersOnClaimDelete(r, claimsv1.EntryClient, &dexv1.DexStaticClientList{}, indexClientID)}).
		Watches(&corev1.Secret{}, handler.EnqueueRequestsFromMapFunc(r.clientsForSecret)).
		Watches(&dexv1.OIDCProvider{}, handler.EnqueueRequestsFromMapFunc(r.clientsForProvider), builder.WithPredicates(providerChanged{})).
		WithOptions(controller.Options{
			MaxConcurrentReconciles: workers,
			RateLimiter:             workqueue.NewTypedItemExponentialFailureRateLimiter[reconcile.Request](100*time.Millisecond, maxDelay),
		}).
		Named("dexstaticclient").
		Complete(r)
}

// enqueuePeersOnDelete wakes the objects that claim the same client id as a deleted one, so a
// waiting loser takes the id over.
func (r *DexStaticClientReconciler) enqueuePeersOnDelete(ctx context.Context, e event.TypedDeleteEvent[client.Object], q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
	c, ok := e.Object.(*dexv1.DexStaticClient)
	if !ok {
		return
	}
	for _, key := range sameDexKeys(ctx, r.Client, tenancy.RefKey(c.Namespace, c.Spec.ProviderRef)) {
		for _, req := range requestsFromList(ctx, r, &dexv1.DexStaticClientList{}, client.MatchingFields{indexClientOwnerKey: tenancy.OwnerKey(key, c.EffectiveClientID())}) {
			q.Add(req)
		}
	}
}

func (r *DexStaticClientReconciler) clientsForSecret(ctx context.Context, o client.Object) []reconcile.Request {
	return requestsFromList(ctx, r, &dexv1.DexStaticClientList{}, client.InNamespace(o.GetNamespace()), client.MatchingFields{indexClientSecret: o.GetName()})
}

func (r *DexStaticClientReconciler) clientsForProvider(ctx context.Context, o client.Object) []reconcile.Request {
	return requestsFromList(ctx, r, &dexv1.DexStaticClientList{}, client.MatchingFields{indexClientProvider: client.ObjectKeyFromObject(o).String()})
}

// waitersOnClaimDelete wakes the objects of a kind that wait for the id of a deleted claim (they
// lost the race for it and may now claim it).
func waitersOnClaimDelete(c client.Reader, kind claimsv1.EntryKind, list client.ObjectList, idIndex string) func(context.Context, event.TypedDeleteEvent[client.Object], workqueue.TypedRateLimitingInterface[reconcile.Request]) {
	return func(ctx context.Context, e event.TypedDeleteEvent[client.Object], q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
		cl, ok := e.Object.(*claimsv1.DexEntryClaim)
		if !ok || cl.Spec.EntryKind != kind {
			return
		}
		for _, req := range requestsFromList(ctx, c, list.DeepCopyObject().(client.ObjectList), client.MatchingFields{idIndex: cl.Spec.EntryID}) {
			q.Add(req)
		}
	}
}

// finalizerDropped passes updates that remove the operator's finalizer from an object that is not
// being deleted, so that it is put back.
type finalizerDropped struct{ finalizer string }

func (f finalizerDropped) Create(event.CreateEvent) bool   { return false }
func (f finalizerDropped) Delete(event.DeleteEvent) bool   { return false }
func (f finalizerDropped) Generic(event.GenericEvent) bool { return false }
func (f finalizerDropped) Update(e event.UpdateEvent) bool {
	return e.ObjectNew.GetDeletionTimestamp().IsZero() &&
		controllerutil.ContainsFinalizer(e.ObjectOld, f.finalizer) && !controllerutil.ContainsFinalizer(e.ObjectNew, f.finalizer)
}

// deletionStarted passes updates that set the deletion timestamp.
type deletionStarted struct{ predicate.Funcs }

func (deletionStarted) Update(e event.UpdateEvent) bool {
	return e.ObjectOld.GetDeletionTimestamp().IsZero() && !e.ObjectNew.GetDeletionTimestamp().IsZero()
}

// providerChanged passes provider creations, deletions, spec changes, and DexReachable turning
// True (so that objects waiting for Dex converge as soon as it is back). Routine status updates
// do not wake every tenant object.
type providerChanged struct{ predicate.Funcs }

func (providerChanged) Create(event.CreateEvent) bool { return true }
func (providerChanged) Delete(event.DeleteEvent) bool { return true }
func (providerChanged) Update(e event.UpdateEvent) bool {
	if e.ObjectOld.GetGeneration() != e.ObjectNew.GetGeneration() {
		return true
	}
	o, ok1 := e.ObjectOld.(*dexv1.OIDCProvider)
	n, ok2 := e.ObjectNew.(*dexv1.OIDCProvider)
	if !ok1 || !ok2 {
		return false
	}
	return !meta.IsStatusConditionTrue(o.Status.Conditions, dexv1.ConditionDexReachable) &&
		meta.IsStatusConditionTrue(n.Status.Conditions, dexv1.ConditionDexReachable)
}
