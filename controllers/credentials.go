package controllers

import (
	"context"
	"fmt"
	"maps"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	"sigs.k8s.io/controller-runtime/pkg/log"

	dexv1 "dexterity.dev/dexterity/api/v1alpha1"
	"dexterity.dev/dexterity/internal/outcome"
)

// The credentials Secret of a DexStaticClient (spec.credentials): what an application needs to log
// users in with the client (its id, its secret for a confidential client, the issuer URL), under
// the key names the application reads, in the object's namespace and owned by it (deleted with it
// by Kubernetes' garbage collector). The operator is its only writer: it is rewritten whenever it
// differs from what the client is (a rotated secret, a changed key name, a hand edit), and never
// written when it matches. Secret values reach no log, event, status or condition.

// +kubebuilder:rbac:groups="",resources=secrets,verbs=get;list;watch;create;update;delete

// Default key names of a credentials Secret.
const (
	DefaultCredentialsClientIDKey     = "clientID"
	DefaultCredentialsClientSecretKey = "clientSecret"
	DefaultCredentialsIssuerURLKey    = "issuerURL"
	// LabelCredentialsOf names, on a credentials Secret, the DexStaticClient it is for.
	LabelCredentialsOf = "dexterity.dev/credentials-of"
)

// credentialsData is the data of c's credentials Secret for client id (secret "" for a public
// client) of provider p.
func credentialsData(c *dexv1.DexStaticClient, p *dexv1.OIDCProvider, id, secret string) map[string][]byte {
	keys := dexv1.CredentialKeys{}
	if k := c.Spec.Credentials.Keys; k != nil {
		keys = *k
	}
	key := func(v, def string) string {
		if v == "" {
			return def
		}
		return v
	}
	data := map[string][]byte{
		key(keys.ClientID, DefaultCredentialsClientIDKey):   []byte(id),
		key(keys.IssuerURL, DefaultCredentialsIssuerURLKey): []byte(p.Spec.IssuerURL),
	}
	if !c.Spec.Public && secret != "" {
		data[key(keys.ClientSecret, DefaultCredentialsClientSecretKey)] = []byte(secret)
	}
	return data
}

// reconcileCredentials writes c's credentials Secret, and deletes the one it wrote before when
// spec.credentials went or names another Secret. A Secret of that name that c does not control is
// left alone and reported (OwnedByOther on SecretReady).
func (r *DexStaticClientReconciler) reconcileCredentials(ctx context.Context, c *dexv1.DexStaticClient, p *dexv1.OIDCProvider, id, secret string) error {
	want := ""
	if c.Spec.Credentials != nil {
		want = c.Spec.Credentials.SecretName
	}
	if old := c.Status.CredentialsSecret; old != "" && old != want {
		if err := r.deleteCredentials(ctx, c, old); err != nil {
			return err
		}
		c.Status.CredentialsSecret = ""
	}
	if want == "" {
		return nil
	}
	desired := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: want, Namespace: c.Namespace, Labels: map[string]string{}, Annotations: map[string]string{}},
		Type:       corev1.SecretTypeOpaque,
		Data:       credentialsData(c, p, id, secret),
	}
	for k, v := range c.Spec.Credentials.Labels {
		desired.Labels[k] = string(v)
	}
	for k, v := range c.Spec.Credentials.Annotations {
		desired.Annotations[k] = string(v)
	}
	desired.Labels["app.kubernetes.io/managed-by"] = "dexterity"
	desired.Labels = watchedSecretLabels(desired.Labels)
	desired.Labels[LabelCredentialsOf] = c.Name

	cur := &corev1.Secret{}
	err := r.Get(ctx, types.NamespacedName{Namespace: c.Namespace, Name: want}, cur)
	switch {
	case apierrors.IsNotFound(err):
		if err := controllerutil.SetControllerReference(c, desired, r.Scheme()); err != nil {
			return fmt.Errorf("failed to own the credentials Secret: %w", err)
		}
		if err := r.Create(ctx, desired); err != nil {
			if apierrors.IsInvalid(err) || apierrors.IsForbidden(err) {
				return outcome.Stall(dexv1.ReasonInvalidSpec, fmt.Sprintf("spec.credentials: the Secret %s/%s could not be created: %v; fix spec.credentials", c.Namespace, want, err))
			}
			return fmt.Errorf("failed to create the credentials Secret %s/%s: %w", c.Namespace, want, err)
		}
		r.Recorder.Eventf(c, corev1.EventTypeNormal, dexv1.ReasonCredentialsWritten, "Wrote the client's credentials into Secret %s", want)
	case err != nil:
		return fmt.Errorf("failed to get the credentials Secret %s/%s: %w", c.Namespace, want, err)
	case !metav1.IsControlledBy(cur, c):
		return outcome.StallPolling(dexv1.ReasonOwnedByOther, fmt.Sprintf("spec.credentials.secretName: Secret %s/%s exists and is not this DexStaticClient's; the operator does not overwrite it: choose another name, or delete that Secret", c.Namespace, want))
	case !credentialsMatch(cur, desired):
		log.FromContext(ctx).Info("Updating the credentials Secret", "secret", want)
		cur.Type = desired.Type
		cur.Data = desired.Data
		cur.Labels = mergeOwned(cur.Labels, desired.Labels)
		cur.Annotations = mergeOwned(cur.Annotations, desired.Annotations)
		if err := r.Update(ctx, cur); err != nil {
			return fmt.Errorf("failed to update the credentials Secret %s/%s: %w", c.Namespace, want, err)
		}
		r.Recorder.Eventf(c, corev1.EventTypeNormal, dexv1.ReasonCredentialsWritten, "Updated the client's credentials in Secret %s", want)
	}
	c.Status.CredentialsSecret = want
	return nil
}

// credentialsMatch reports whether cur holds what desired says: the same data exactly, and
// desired's labels and annotations (others, set by someone else, are kept).
func credentialsMatch(cur, desired *corev1.Secret) bool {
	if cur.Type != desired.Type || len(cur.Data) != len(desired.Data) {
		return false
	}
	for k, v := range desired.Data {
		if string(cur.Data[k]) != string(v) {
			return false
		}
	}
	return containsAll(cur.Labels, desired.Labels) && containsAll(cur.Annotations, desired.Annotations)
}

func containsAll(have, want map[string]string) bool {
	for k, v := range want {
		if got, ok := have[k]; !ok || got != v {
			return false
		}
	}
	return true
}

// mergeOwned returns have with want's entries set.
func mergeOwned(have, want map[string]string) map[string]string {
	out := maps.Clone(have)
	if out == nil {
		out = map[string]string{}
	}
	maps.Copy(out, want)
	return out
}

// deleteCredentials deletes the credentials Secret name if c controls it.
func (r *DexStaticClientReconciler) deleteCredentials(ctx context.Context, c *dexv1.DexStaticClient, name string) error {
	cur := &corev1.Secret{}
	err := r.Get(ctx, types.NamespacedName{Namespace: c.Namespace, Name: name}, cur)
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("failed to get the credentials Secret %s/%s: %w", c.Namespace, name, err)
	}
	if !metav1.IsControlledBy(cur, c) {
		return nil
	}
	if err := r.Delete(ctx, cur, client.Preconditions{UID: &cur.UID}); err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("failed to delete the credentials Secret %s/%s: %w", c.Namespace, name, err)
	}
	r.Recorder.Eventf(c, corev1.EventTypeNormal, "CredentialsDeleted", "Deleted the credentials Secret %s (spec.credentials changed)", name)
	return nil
}
