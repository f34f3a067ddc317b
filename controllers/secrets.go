package controllers

import (
	"context"
	"sync"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// Secrets are not cached (ClientOptions): the manager watches them metadata only and reads the
// ones it needs from the API server. A Dex TLS Secret is read on every reconcile of every client
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
func (sm *secretMemo) get(ctx context.Context, c client.Reader, key types.NamespacedName, s *corev1.Secret) error {
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
	if err := c.Get(ctx, key, s); err != nil {
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
