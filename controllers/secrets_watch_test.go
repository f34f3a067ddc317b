package controllers_test

import (
	"context"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	claimsv1 "dexterity.dev/dexterity/api/claims/v1alpha1"
	dexv1 "dexterity.dev/dexterity/api/v1alpha1"
	"dexterity.dev/dexterity/internal/ownership"
)

// cachedSecret reads Secret ns/name's metadata from the manager's cache.
func cachedSecret(ns, name string) error {
	m := &metav1.PartialObjectMetadata{}
	m.SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind("Secret"))
	return managerCache.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: name}, m)
}

// The manager holds only the Secrets it uses (design.md §7: 0.1 KiB per Secret it neither owns
// nor references): a Secret nothing names never enters its cache; a Secret a client names gets
// dexv1.LabelWatchedSecret and is watched from then on; one created after the client that names
// it, without the label, is still found (the client looks again with a backoff).
func TestManagerWatchesOnlyTheSecretsItUses(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ns := providerFor(t, plainDex, nil)
	noise := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "noise", Namespace: ns,
		Labels: map[string]string{"owner": "helm"}}, Data: map[string][]byte{"release": []byte("x")}}
	used := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "app-oidc", Namespace: ns},
		Data: map[string][]byte{"clientSecret": []byte("a-client-secret-of-reasonable-length")}}
	g.Expect(k8s.Create(ctx, noise)).To(Succeed())
	g.Expect(k8s.Create(ctx, used)).To(Succeed())
	c := &dexv1.DexStaticClient{
		ObjectMeta: metav1.ObjectMeta{Name: "app", Namespace: ns},
		Spec: dexv1.DexStaticClientSpec{ProviderRef: dexv1.ObjectRef{Name: "dex"},
			RedirectURIs: []string{"https://app.example.com/cb"},
			SecretRef:    &dexv1.SecretKeyRef{Name: "app-oidc", Key: "clientSecret"}},
	}
	g.Expect(k8s.Create(ctx, c)).To(Succeed())
	g.Eventually(clientCondition(client.ObjectKeyFromObject(c), dexv1.ConditionReady), waitTimeout).Should(readyTrue())

	// The Secret the client reads is labelled and cached (metadata only).
	g.Eventually(func(g Gomega) {
		s := &corev1.Secret{}
		g.Expect(k8s.Get(ctx, client.ObjectKeyFromObject(used), s)).To(Succeed())
		g.Expect(s.Labels).To(HaveKeyWithValue(dexv1.LabelWatchedSecret, "true"))
		g.Expect(cachedSecret(ns, "app-oidc")).To(Succeed())
	}, waitTimeout).Should(Succeed())
	// The other one is not: not labelled, never in the cache.
	g.Consistently(func() bool { return apierrors.IsNotFound(cachedSecret(ns, "noise")) }, 2*time.Second).Should(BeTrue())
	s := &corev1.Secret{}
	g.Expect(k8s.Get(ctx, client.ObjectKeyFromObject(noise), s)).To(Succeed())
	g.Expect(s.Labels).NotTo(HaveKey(dexv1.LabelWatchedSecret))

	// A client whose Secret comes later, without the label, finds it when it looks again.
	late := &dexv1.DexStaticClient{
		ObjectMeta: metav1.ObjectMeta{Name: "late", Namespace: ns},
		Spec: dexv1.DexStaticClientSpec{ProviderRef: dexv1.ObjectRef{Name: "dex"},
			RedirectURIs: []string{"https://late.example.com/cb"},
			SecretRef:    &dexv1.SecretKeyRef{Name: "late-oidc", Key: "clientSecret"}},
	}
	g.Expect(k8s.Create(ctx, late)).To(Succeed())
	g.Eventually(clientCondition(client.ObjectKeyFromObject(late), dexv1.ConditionSecretReady), waitTimeout).Should(reason(dexv1.ReasonSecretNotFound))
	g.Expect(k8s.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "late-oidc", Namespace: ns},
		Data: map[string][]byte{"clientSecret": []byte("another-client-secret-of-reasonable-length")}})).To(Succeed())
	g.Eventually(clientCondition(client.ObjectKeyFromObject(late), dexv1.ConditionReady), waitTimeout).Should(readyTrue())
}

// The id indexes are registered without per-namespace keys (indexAllNamespaces, under the names
// controller-runtime's List looks up): a list by id across all namespaces still finds every
// object with that id. If the names drifted from controller-runtime's, the list would find
// nothing and every id would look free.
func TestIDIndexesListAcrossNamespaces(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	id := "shared-" + newNamespace(t)
	for range 2 {
		ns := newNamespace(t)
		g.Expect(k8s.Create(ctx, &dexv1.DexStaticClient{
			ObjectMeta: metav1.ObjectMeta{Name: "c", Namespace: ns},
			Spec: dexv1.DexStaticClientSpec{ProviderRef: dexv1.ObjectRef{Name: "absent"}, ClientID: id, Public: true,
				RedirectURIs: []string{"https://app.example.com/cb"}},
		})).To(Succeed())
	}
	g.Eventually(func(g Gomega) {
		withID, err := ownership.ListByID(ctx, managerCache, claimsv1.EntryClient, id)
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(withID).To(HaveLen(2))
	}, waitTimeout).Should(Succeed())
}

// A client whose credentials Secret name is taken by a Secret it does not own waits without
// churn: SecretReady (set True by the secret step, False by the credentials step in the same
// reconcile) keeps its lastTransitionTime, so the object backs off instead of looking again every
// 5 seconds, and its status is not rewritten each time.
func TestWaitingOnAForeignCredentialsSecretBacksOff(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ns := providerFor(t, plainDex, nil)
	g.Expect(k8s.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "taken", Namespace: ns},
		Data: map[string][]byte{"x": []byte("y")}})).To(Succeed())
	c := &dexv1.DexStaticClient{
		ObjectMeta: metav1.ObjectMeta{Name: "app", Namespace: ns},
		Spec: dexv1.DexStaticClientSpec{ProviderRef: dexv1.ObjectRef{Name: "dex"}, Public: true,
			RedirectURIs: []string{"https://app.example.com/cb"},
			Credentials:  &dexv1.ClientCredentials{SecretName: "taken"}},
	}
	g.Expect(k8s.Create(ctx, c)).To(Succeed())
	key := client.ObjectKeyFromObject(c)
	g.Eventually(clientCondition(key, dexv1.ConditionSecretReady), waitTimeout).Should(reason(dexv1.ReasonOwnedByOther))
	// Its second reconcile (5 s after the first) finds the client in Dex as it is meant to be.
	g.Eventually(clientCondition(key, dexv1.ConditionRegistered), waitTimeout).Should(HaveField("Message", "client in Dex matches the spec"))
	g.Eventually(clientCondition(key, dexv1.ConditionReady), waitTimeout).Should(reason(dexv1.ReasonOwnedByOther))
	first := mustGet(t, key)
	g.Consistently(func(g Gomega) {
		now := mustGet(t, key)
		g.Expect(now.ResourceVersion).To(Equal(first.ResourceVersion), "the status was rewritten: %+v\nwas %+v", now.Status, first.Status)
	}, 12*time.Second, 500*time.Millisecond).Should(Succeed())
}
