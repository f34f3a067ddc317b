package controllers

import (
	"context"
	"fmt"
	"sync"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log"

	dexv1 "dexterity.dev/dexterity/api/v1alpha1"
)

// Secrets are not cached (ClientOptions): the manager reads the ones it needs from the API server,
// and watches metadata only, and only of the Secrets labelled dexv1.LabelWatchedSecret
// (CacheOptions): those it writes carry the label from creation, and readSecret sets it on every
// other Secret an object references. A cluster's other Secrets (Helm releases, service account
// tokens, other operators') cost the manager nothing.
//
// A Dex TLS Secret is read on every reconcile of every client
// and connector of its provider, so those reads go through tlsSecrets: a Secret is read again only
// when the metadata cache shows another UID or resourceVersion than the copy read last. UID and
// resourceVersion name one version of one object, so the memo is right for every manager of the
// process, whatever cluster it talks to (tests run several). It holds only the Secrets providers
// name (a handful), and is cleared when it grows past maxMemoSecrets.

const maxMemoSecrets = 256

type secretMemo struct {
	mu sync.Mutex
	m  map[types.NamespacedName]*corev1.Secret
}

var tlsSecrets = &secretMemo{m: map[types.NamespacedName]*corev1.Secret{}}

// get reads Secret key into s: from the memo when the metadata cache (c) shows the memoised
// UID and resourceVersion, else through c (from the API server), memoising the result. (Through a plain
// API reader the resourceVersion comes from the API server too.)
func (sm *secretMemo) get(ctx context.Context, c client.Client, key types.NamespacedName, s *corev1.Secret) error {
	m := &metav1.PartialObjectMetadata{}
	m.SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind("Secret"))
	if err := c.Get(ctx, key, m); err == nil {
		sm.mu.Lock()
		held, ok := sm.m[key]
		sm.mu.Unlock()
		if ok && held.UID == m.UID && held.ResourceVersion == m.ResourceVersion {
			held.DeepCopyInto(s)
			return nil
		}
	}
	if err := readSecret(ctx, c, key, s); err != nil {
		return err
	}
	sm.mu.Lock()
	defer sm.mu.Unlock()
	if len(sm.m) >= maxMemoSecrets {
		clear(sm.m)
	}
	sm.m[key] = s.DeepCopy()
	return nil
}

// watchedSecretLabels are the labels the operator puts on the Secrets it writes, with the label
// that makes the manager watch them.
func watchedSecretLabels(labels map[string]string) map[string]string {
	if labels == nil {
		labels = map[string]string{}
	}
	labels[dexv1.LabelWatchedSecret] = "true"
	return labels
}

// readSecret reads Secret key from the API server (Secrets are not cached) into s and makes sure
// the manager watches it from now on: a Secret without dexv1.LabelWatchedSecret gets the label (a
// merge patch of the label alone). Without it, a change of the Secret would reach the objects that
// use it only at their next resync. A Secret whose owner set the label to anything but "true" has
// opted out, and is not labelled (its changes are seen at the resync). A refused patch (a policy,
// a webhook) is logged and the Secret used as read: the label is an optimisation, not a
// condition.
func readSecret(ctx context.Context, c client.Client, key types.NamespacedName, s *corev1.Secret) error {
	if err := c.Get(ctx, key, s); err != nil {
		return err
	}
	if _, set := s.Labels[dexv1.LabelWatchedSecret]; set {
		return nil
	}
	m := &metav1.PartialObjectMetadata{ObjectMeta: metav1.ObjectMeta{Namespace: key.Namespace, Name: key.Name}}
	m.SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind("Secret"))
	patch := fmt.Appendf(nil, `{"metadata":{"labels":{%q:"true"}}}`, dexv1.LabelWatchedSecret)
	if err := c.Patch(ctx, m, client.RawPatch(types.MergePatchType, patch)); err != nil && !apierrors.IsNotFound(err) {
		log.FromContext(ctx).Info("Failed to label a Secret so that the operator watches it; its changes are seen at the next resync", "secret", key.String(), "error", err.Error())
	}
	// s keeps the resourceVersion it was read at: if the Secret changed between the read and the
	// patch, the memo (tlsSecrets) sees another version in the cache and reads it again.
	return nil
}
