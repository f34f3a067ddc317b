package controllers

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	"sigs.k8s.io/controller-runtime/pkg/log"

	dexv1 "dexterity.dev/dexterity/api/v1alpha1"
	"dexterity.dev/dexterity/internal/clientspec"
	"dexterity.dev/dexterity/internal/dex"
	"dexterity.dev/dexterity/internal/outcome"
	"dexterity.dev/dexterity/internal/ownership"
	"dexterity.dev/dexterity/internal/tenancy"
)

const (
	// ClientFinalizer keeps a DexStaticClient until its client is deleted from Dex. The defaulting
	// webhook sets it at creation; the controller adds it before its first write to Dex when it
	// is missing (webhooks off, or removed by hand), and drops it from an object that lost the
	// race for its id.
	ClientFinalizer = dexv1.ClientFinalizer
	// LegacyAnnotationRegisteredClientID is where versions before DexEntryClaims recorded the
	// client id an object owned. It is never trusted on its own (a tenant can write it): an object
	// whose status confirms it is carried over to a claim, and the annotation is dropped.
	LegacyAnnotationRegisteredClientID = ownership.LegacyAnnotationClient

	indexClientID       = tenancy.IndexClientID
	indexClientSecret   = "dexterity.dev/client-secret"
	indexClientProvider = "dexterity.dev/client-provider"
)

// DexStaticClientReconciler registers DexStaticClients in Dex.
type DexStaticClientReconciler struct {
	DexEntryDeps
	// MaxConcurrentReconciles (default 48). Reconciles mostly wait on the API server and Dex, and
	// each new client takes two writes of its own (the claim, the status) besides Dex: with as
	// many workers as a burst has writers, the controller gets too small a share of the API
	// server and falls behind the applies (5,000 clients by 16 writers: 9.6 s behind the last
	// create with 16 workers, 2.1 s with 48; docs/benchmarks.md).
	MaxConcurrentReconciles int
}

// +kubebuilder:rbac:groups=dexterity.dev,resources=dexstaticclients,verbs=get;list;watch;update;patch
// +kubebuilder:rbac:groups=dexterity.dev,resources=dexstaticclients/status,verbs=get;update;patch
// +kubebuilder:rbac:groups=dexterity.dev,resources=dexstaticclients/finalizers,verbs=update
// +kubebuilder:rbac:groups=dexterity.dev,resources=oidcproviders,verbs=get;list;watch
// +kubebuilder:rbac:groups="",resources=secrets,verbs=get;list;watch;create;patch
// +kubebuilder:rbac:groups="",resources=namespaces,verbs=get;list;watch

// clientEntries is how DexStaticClients keep their clients in Dex (the flow: dexentry.go).
var clientEntries = dexEntryKind[*dexv1.DexStaticClient]{
	controllerName: "dexstaticclient", use: tenancy.Clients,
	secretIndex: indexClientSecret, providerIndex: indexClientProvider,
	defaultWorkers: 48, // see MaxConcurrentReconciles
	newObject:      func() *dexv1.DexStaticClient { return &dexv1.DexStaticClient{} },
	checkID:        checkClientID,
	summarize:      summarizeClient,
	deleteEntry:    func(ctx context.Context, dc dex.Client, id string) error { return dc.DeleteClient(ctx, id) },
}

// Reconcile makes Dex hold exactly the client a DexStaticClient describes.
func (r *DexStaticClientReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	return clientEntries.reconcile(ctx, &r.DexEntryDeps, req, r.syncClient)
}

// checkClientID refuses client ids that are reserved (the operator's own, or another
// namespace's registry audience), or outside the prefix the provider gives the namespace. An
// object that already holds its claim keeps an id that became another namespace's audience
// later (a provider created afterwards): the provider reports AudienceHeldElsewhere and its
// registry refuses such tokens, and nothing registered is taken away.
func checkClientID(ctx context.Context, c client.Reader, p *dexv1.OIDCProvider, namespace, id string, holds bool) error {
	if err := tenancy.CheckReservedClientID(id); err != nil {
		return err
	}
	if !holds {
		if err := tenancy.CheckReservedAudience(ctx, c, p, namespace, id); err != nil {
			return err
		}
	}
	return tenancy.CheckClientIDPrefix(ctx, c, p, namespace, id)
}

// syncClient checks the redirect URIs, reads (or generates) the client secret, then makes the
// client in Dex match. The redirect URIs are checked again here, whatever admission did (an
// object stored before a bound, or written with the webhooks off, reaches the controller all the
// same), and before anything is built from them: a refused spec costs a few small allocations,
// never its expansion.
func (r *DexStaticClientReconciler) syncClient(ctx context.Context, c *dexv1.DexStaticClient, own *ownership.Scope) (string, error) {
	if err := clientspec.Check(&c.Spec); err != nil {
		return dexv1.ConditionRegistered, outcome.Stall(dexv1.ReasonInvalidSpec, err.Error()+". The client in Dex is left as it is")
	}
	secret, err := r.reconcileSecret(ctx, c)
	if err != nil {
		return dexv1.ConditionSecretReady, err
	}
	id := c.EffectiveClientID()
	if err := r.reconcileDexClient(ctx, c, own, secret); err != nil {
		if dex.IsReadOnly(err) {
			err = outcome.Stall(dexv1.ReasonClientExistsInDex, fmt.Sprintf("client id %q is defined in Dex's configuration file (staticClients), which Dex's API cannot change; remove it there, or choose another spec.clientId", id))
		}
		return dexv1.ConditionRegistered, err
	}
	if err := r.reconcileCredentials(ctx, c, own.Provider, id, secret); err != nil {
		return dexv1.ConditionSecretReady, err
	}
	return "", nil
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
		return "", outcome.Stall(dexv1.ReasonInvalidSpec, "spec.secretRef: Required value: a confidential client needs spec.secretRef, or set spec.public=true")
	}
	var s corev1.Secret
	err := readSecret(ctx, r.Client, types.NamespacedName{Namespace: c.Namespace, Name: ref.Name}, &s)
	switch {
	case apierrors.IsNotFound(err) && c.Spec.GenerateSecret:
		return r.generateSecret(ctx, c)
	case apierrors.IsNotFound(err):
		return "", outcome.StallPolling(dexv1.ReasonSecretNotFound, fmt.Sprintf("spec.secretRef: Secret %s/%s not found; create it with key %q, or set spec.generateSecret=true. The client in Dex is left as it is", c.Namespace, ref.Name, ref.Key))
	case err != nil:
		return "", fmt.Errorf("failed to get Secret %s/%s: %w", c.Namespace, ref.Name, err)
	}
	v := string(s.Data[ref.Key])
	if v == "" {
		return "", outcome.Stall(dexv1.ReasonSecretNotFound, fmt.Sprintf("spec.secretRef: Secret %s/%s has no (or an empty) key %q; add it. The client in Dex is left as it is", c.Namespace, ref.Name, ref.Key))
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
			Labels:    watchedSecretLabels(map[string]string{"app.kubernetes.io/managed-by": "dexterity"}),
		},
		Type: corev1.SecretTypeOpaque,
		Data: map[string][]byte{c.Spec.SecretRef.Key: []byte(v)},
	}
	if err := controllerutil.SetControllerReference(c, s, r.Scheme()); err != nil {
		return "", fmt.Errorf("failed to own Secret: %w", err)
	}
	if err := r.Create(ctx, s); err != nil {
		if apierrors.IsInvalid(err) || apierrors.IsForbidden(err) {
			// Waits for the user (a name or key the API server refuses, a quota): retrying
			// would only repeat the refusal.
			return "", outcome.Stall(dexv1.ReasonInvalidSpec, fmt.Sprintf("spec.secretRef: the Secret %s/%s could not be created: %v; fix spec.secretRef, or create the Secret yourself", s.Namespace, s.Name, err))
		}
		return "", fmt.Errorf("failed to create Secret %s/%s: %w", s.Namespace, s.Name, err)
	}
	r.Recorder.Eventf(c, corev1.EventTypeNormal, dexv1.ReasonSecretGenerated, "Created Secret %s with a random client secret", s.Name)
	setCondition(c, dexv1.ConditionSecretReady, metav1.ConditionTrue, dexv1.ReasonSecretGenerated, fmt.Sprintf("secret generated into Secret %s key %s", s.Name, c.Spec.SecretRef.Key))
	return v, nil
}

// reconcileDexClient compares the client in Dex with the desired one and writes only what
// differs, holding the claim on its id (own) before any write.
func (r *DexStaticClientReconciler) reconcileDexClient(ctx context.Context, c *dexv1.DexStaticClient, own *ownership.Scope, secret string) error {
	dc, err := dexClientForReconcile(ctx, r.Client, r.Pool, own.Provider)
	if err != nil {
		return err
	}
	id := c.EffectiveClientID()
	actual, err := dc.GetClient(ctx, id)
	if err != nil && !dex.IsNotFound(err) {
		return err
	}
	foreign := outcome.Stall(dexv1.ReasonClientExistsInDex, fmt.Sprintf("client id %q already exists in Dex and was not registered by Dexterity; it is left untouched. Set spec.adoptExisting=true to take it over, or choose another spec.clientId", id))
	if err := r.holdForWrite(ctx, own, actual != nil, foreign); err != nil {
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

// SetupWithManager registers the controller and its watches (dexEntryKind.setupWithManager).
func (r *DexStaticClientReconciler) SetupWithManager(mgr ctrl.Manager) error {
	return clientEntries.setupWithManager(mgr, r, &r.DexEntryDeps, r.MaxConcurrentReconciles)
}
