package controllers

import (
	"slices"
	"sync"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	claimsv1 "dexterity.dev/dexterity/api/claims/v1alpha1"
	dexv1 "dexterity.dev/dexterity/api/v1alpha1"
)

// The cache decodes every object into strings of its own, although most strings of the operator's
// objects repeat from one object to the next: condition types, reasons and messages, finalizers,
// namespaces, provider references, the redirect URIs of a loopback range, a claim's Dex address.
// The cache's transform (stripUnread) makes objects share one copy of those (interned): with
// thousands of DexStaticClients, this is a good part of what each one costs (design.md §7:
// 4 KiB per client). Names, UIDs and ids, unique to each object, are left alone.
//
// The table is bounded (maxInterned strings of at most maxInternedLen bytes; cleared when full),
// so that what tenants write cannot grow it past a few MiB.
const (
	maxInterned    = 16384
	maxInternedLen = 256
)

type internTable struct {
	mu sync.Mutex
	m  map[string]string
}

var interned = &internTable{m: map[string]string{}}

// intern returns the table's copy of s (adding s when there is room).
func (t *internTable) intern(s string) string {
	if s == "" || len(s) > maxInternedLen {
		return s
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if v, ok := t.m[s]; ok {
		return v
	}
	if len(t.m) >= maxInterned {
		// Full (strings unique to objects, or a tenant filling it on purpose): start again, so
		// that what repeats is shared again. Strings handed out stay valid.
		clear(t.m)
	}
	t.m[s] = s
	return s
}

func (t *internTable) strings(ss []string) {
	for i := range ss {
		ss[i] = t.intern(ss[i])
	}
}

func (t *internTable) meta(o metav1.Object) {
	o.SetNamespace(t.intern(o.GetNamespace()))
	t.strings(o.GetFinalizers())
	for i := range o.GetOwnerReferences() {
		r := &o.GetOwnerReferences()[i]
		r.APIVersion, r.Kind = t.intern(r.APIVersion), t.intern(r.Kind)
	}
}

func (t *internTable) conditions(cs []metav1.Condition) {
	for i := range cs {
		c := &cs[i]
		c.Type, c.Reason, c.Message = t.intern(c.Type), t.intern(c.Reason), t.intern(c.Message)
		c.Status = metav1.ConditionStatus(t.intern(string(c.Status)))
	}
}

func (t *internTable) ref(r *dexv1.ObjectRef) {
	r.Name, r.Namespace = t.intern(r.Name), t.intern(r.Namespace)
}

// internObject makes the repeating strings of a cached object the table's copies.
func internObject(obj any) {
	t := interned
	switch o := obj.(type) {
	case *dexv1.DexStaticClient:
		t.meta(o)
		t.ref(&o.Spec.ProviderRef)
		t.strings(o.Spec.RedirectURIs)
		if o.Spec.LoopbackRedirect != nil {
			o.Spec.LoopbackRedirect.Path = t.intern(o.Spec.LoopbackRedirect.Path)
		}
		// The decoder grows slices by doubling: 11 redirect URIs sit in room for 16.
		o.Status.RedirectURIs = trimmed(o.Status.RedirectURIs)
		t.strings(o.Status.RedirectURIs)
		o.Status.Conditions = trimmed(o.Status.Conditions)
		t.conditions(o.Status.Conditions)
	case *dexv1.DexConnector:
		t.meta(o)
		t.ref(&o.Spec.ProviderRef)
		t.conditions(o.Status.Conditions)
	case *dexv1.GroupBinding:
		t.meta(o)
		t.conditions(o.Status.Conditions)
	case *claimsv1.DexEntryClaim:
		t.meta(o)
		s := &o.Spec
		s.EntryKind = claimsv1.EntryKind(t.intern(string(s.EntryKind)))
		s.DexAddress = t.intern(s.DexAddress)
		s.Owner.Kind, s.Owner.Namespace = t.intern(s.Owner.Kind), t.intern(s.Owner.Namespace)
		s.Provider.Namespace, s.Provider.Name = t.intern(s.Provider.Namespace), t.intern(s.Provider.Name)
	}
}

// trimmed returns s in a backing array of its length when the decoder left room to spare (the
// spare room of a cached object is never used: objects are replaced, not appended to).
func trimmed[T any](s []T) []T {
	if cap(s) == len(s) || len(s) == 0 {
		return s
	}
	return slices.Clone(s)
}
