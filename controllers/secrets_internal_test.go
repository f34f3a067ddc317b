package controllers

import (
	"context"
	"fmt"
	"testing"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"

	dexv1 "dexterity.dev/dexterity/api/v1alpha1"
	"dexterity.dev/dexterity/internal/scheme"
)

// secretSource serves Secrets' metadata (as the metadata-only cache does) and counts the full
// reads (which go to the API server). Its Secrets carry the watch label already (readSecret
// would patch others: the embedded nil client panics on any other call).
type secretSource struct {
	client.Client
	rv    map[types.NamespacedName]string
	uid   types.UID
	reads int
}

func (s *secretSource) Get(_ context.Context, key client.ObjectKey, obj client.Object, _ ...client.GetOption) error {
	switch o := obj.(type) {
	case *metav1.PartialObjectMetadata:
		o.UID, o.ResourceVersion = s.uid, s.rv[key]
	case *corev1.Secret:
		s.reads++
		o.UID, o.ResourceVersion = s.uid, s.rv[key]
		o.Data = map[string][]byte{"ca.crt": []byte("ca of " + s.rv[key])}
		o.Labels = map[string]string{dexv1.LabelWatchedSecret: "true"}
	default:
		return fmt.Errorf("unexpected %T", obj)
	}
	return nil
}

func (s *secretSource) List(context.Context, client.ObjectList, ...client.ListOption) error {
	return fmt.Errorf("not implemented")
}

// A Dex TLS Secret is read from the API server again only when the metadata cache shows another
// resourceVersion; the memo stays bounded.
func TestSecretMemoReadsOnlyChangedSecrets(t *testing.T) {
	ctx := context.Background()
	key := types.NamespacedName{Namespace: "platform", Name: "dex-grpc"}
	src := &secretSource{rv: map[types.NamespacedName]string{key: "1"}}
	memo := &secretMemo{m: map[types.NamespacedName]*corev1.Secret{}}
	var s corev1.Secret
	for range 3 {
		if err := memo.get(ctx, src, key, &s); err != nil {
			t.Fatal(err)
		}
	}
	if src.reads != 1 || string(s.Data["ca.crt"]) != "ca of 1" {
		t.Fatalf("3 gets of an unchanged Secret: %d reads, data %q; want 1 read", src.reads, s.Data["ca.crt"])
	}
	src.rv[key] = "2"
	if err := memo.get(ctx, src, key, &s); err != nil {
		t.Fatal(err)
	}
	if src.reads != 2 || string(s.Data["ca.crt"]) != "ca of 2" {
		t.Fatalf("after a change: %d reads, data %q; want 2 reads and the new data", src.reads, s.Data["ca.crt"])
	}
	// Another cluster (another API server in the same process) may hold a Secret of the same
	// name at the same resourceVersion: its UID differs, so it is read.
	src.uid = "other-cluster"
	if err := memo.get(ctx, src, key, &s); err != nil {
		t.Fatal(err)
	}
	if src.reads != 3 {
		t.Fatalf("the same name and resourceVersion with another UID: %d reads, want 3", src.reads)
	}
	s.Data["ca.crt"] = []byte("changed by the caller")
	if err := memo.get(ctx, src, key, &s); err != nil || string(s.Data["ca.crt"]) != "ca of 2" {
		t.Fatalf("the memo handed out its own copy: %q, %v", s.Data["ca.crt"], err)
	}
	for i := range 2 * maxMemoSecrets {
		k := types.NamespacedName{Namespace: "ns", Name: fmt.Sprint(i)}
		src.rv[k] = "1"
		if err := memo.get(ctx, src, k, &s); err != nil {
			t.Fatal(err)
		}
	}
	if n := len(memo.m); n > maxMemoSecrets {
		t.Fatalf("memo holds %d Secrets, more than %d", n, maxMemoSecrets)
	}
}

// A Secret whose label patch is refused (a policy, a webhook) is still used as read: the watch
// label is an optimisation, not a condition.
func TestReadSecretUsesTheSecretWhenTheLabelIsRefused(t *testing.T) {
	s := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "s", Namespace: "ns"}, Data: map[string][]byte{"k": []byte("v")}}
	c := fake.NewClientBuilder().WithScheme(scheme.Scheme).WithObjects(s).WithInterceptorFuncs(interceptor.Funcs{
		Patch: func(context.Context, client.WithWatch, client.Object, client.Patch, ...client.PatchOption) error {
			return apierrors.NewForbidden(schema.GroupResource{Resource: "secrets"}, "s", nil)
		}}).Build()
	var got corev1.Secret
	if err := readSecret(context.Background(), c, types.NamespacedName{Namespace: "ns", Name: "s"}, &got); err != nil || string(got.Data["k"]) != "v" {
		t.Fatalf("readSecret with a refused label patch: %v, data %q; want the Secret as read", err, got.Data["k"])
	}
}

// A rotation that lands between readSecret's read and its label patch is not hidden by the memo:
// the memo keeps the version it read, so the next read sees another version and reads again.
func TestSecretMemoSeesARotationDuringTheLabelPatch(t *testing.T) {
	s := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "tls", Namespace: "ns"}, Data: map[string][]byte{"ca.crt": []byte("old")}}
	raced := false
	c := fake.NewClientBuilder().WithScheme(scheme.Scheme).WithObjects(s).WithInterceptorFuncs(interceptor.Funcs{
		Patch: func(ctx context.Context, c client.WithWatch, obj client.Object, patch client.Patch, opts ...client.PatchOption) error {
			if !raced {
				raced = true
				cur := &corev1.Secret{}
				if err := c.Get(ctx, client.ObjectKeyFromObject(obj), cur); err != nil {
					return err
				}
				cur.Data["ca.crt"] = []byte("new")
				if err := c.Update(ctx, cur); err != nil {
					return err
				}
			}
			return c.Patch(ctx, obj, patch, opts...)
		}}).Build()
	memo := &secretMemo{m: map[types.NamespacedName]*corev1.Secret{}}
	key := types.NamespacedName{Namespace: "ns", Name: "tls"}
	var got corev1.Secret
	for range 2 {
		if err := memo.get(context.Background(), c, key, &got); err != nil {
			t.Fatal(err)
		}
	}
	if string(got.Data["ca.crt"]) != "new" {
		t.Fatalf("after a rotation during the label patch the memo still returns %q", got.Data["ca.crt"])
	}
}

// A Secret whose owner set the watch label to anything but "true" has opted out: the operator
// does not write the label back (no label fight with the Secret's owner).
func TestReadSecretRespectsAnOptOut(t *testing.T) {
	s := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "s", Namespace: "ns", Labels: map[string]string{dexv1.LabelWatchedSecret: "false"}},
		Data: map[string][]byte{"k": []byte("v")}}
	c := fake.NewClientBuilder().WithScheme(scheme.Scheme).WithObjects(s).WithInterceptorFuncs(interceptor.Funcs{
		Patch: func(context.Context, client.WithWatch, client.Object, client.Patch, ...client.PatchOption) error {
			t.Error("readSecret patched a Secret that opted out of the watch label")
			return nil
		}}).Build()
	var got corev1.Secret
	if err := readSecret(context.Background(), c, types.NamespacedName{Namespace: "ns", Name: "s"}, &got); err != nil || string(got.Data["k"]) != "v" {
		t.Fatalf("readSecret: %v, data %q", err, got.Data["k"])
	}
}
