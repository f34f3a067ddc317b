package controllers

import (
	"fmt"
	"strings"
	"testing"
	"unsafe"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	dexv1 "dexterity.dev/dexterity/api/v1alpha1"
)

// Cached objects share one copy of their repeating strings, and the table stays bounded whatever
// tenants write.
func TestInternSharesStringsAndStaysBounded(t *testing.T) {
	obj := func() *dexv1.DexStaticClient {
		return &dexv1.DexStaticClient{
			ObjectMeta: metav1.ObjectMeta{Namespace: strings.Clone("team-a"), Finalizers: []string{strings.Clone(dexv1.ClientFinalizer)}},
			Status: dexv1.DexStaticClientStatus{
				RedirectURIs: []string{strings.Clone("http://localhost:10000/login")},
				Conditions:   []metav1.Condition{{Type: strings.Clone("Ready"), Status: "True", Reason: strings.Clone("Reconciled"), Message: strings.Clone("client registered in Dex")}},
			},
		}
	}
	a, b := obj(), obj()
	internObject(a)
	internObject(b)
	same := func(x, y string) bool { return unsafe.StringData(x) == unsafe.StringData(y) }
	if !same(a.Namespace, b.Namespace) || !same(a.Finalizers[0], b.Finalizers[0]) || !same(a.Status.RedirectURIs[0], b.Status.RedirectURIs[0]) ||
		!same(a.Status.Conditions[0].Message, b.Status.Conditions[0].Message) {
		t.Fatal("two objects with the same strings do not share them after interning")
	}

	for i := range 2 * maxInterned {
		c := obj()
		c.Status.Conditions[0].Message = fmt.Sprintf("message %d", i)
		c.Namespace = strings.Repeat("n", maxInternedLen+1)
		internObject(c)
	}
	if n := len(interned.m); n > maxInterned {
		t.Fatalf("the intern table holds %d strings, more than %d", n, maxInterned)
	}
	if _, ok := interned.m[strings.Repeat("n", maxInternedLen+1)]; ok {
		t.Fatal("a string longer than maxInternedLen was interned")
	}
}
