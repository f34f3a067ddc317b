package registry

import (
	"fmt"
	"testing"

	. "github.com/onsi/gomega"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	dexv1 "dexterity.dev/dexterity/api/v1alpha1"
)

// The registry keeps only the DexStaticClients that may be client identities (confidential, not
// being deleted, Registered for their generation): public clients, which never are, cost it
// nothing (design.md §7: memory per client). A client that stops being one is dropped and the
// cached answers are checked again.
func TestClientsKeepOnlyPossibleIdentities(t *testing.T) {
	g := NewWithT(t)
	x := newClients()
	newClient := func(name string, public bool) *dexv1.DexStaticClient {
		return &dexv1.DexStaticClient{
			ObjectMeta: metav1.ObjectMeta{Namespace: "team-a", Name: name, UID: types.UID("uid-" + name), Generation: 1},
			Spec:       dexv1.DexStaticClientSpec{Public: public},
			Status: dexv1.DexStaticClientStatus{Conditions: []metav1.Condition{
				{Type: dexv1.ConditionRegistered, Status: metav1.ConditionTrue, ObservedGeneration: 1}}},
		}
	}
	for i := range 100 {
		x.upsert(newClient(fmt.Sprintf("cli-%d", i), true))
	}
	g.Expect(x.identities).To(BeEmpty(), "public clients are never identities")

	ci := newClient("ci", false)
	x.upsert(ci)
	g.Expect(x.identities).To(HaveLen(1))

	before := x.clientsChanged()
	ci = ci.DeepCopy()
	ci.Generation = 2 // a spec change not yet Registered
	x.upsert(ci)
	g.Expect(x.identities).To(BeEmpty())
	g.Expect(x.clientsChanged()).NotTo(Equal(before), "cached answers are checked again")

	before = x.clientsChanged()
	x.upsert(newClient("cli-0", true))
	g.Expect(x.clientsChanged()).To(Equal(before), "a public client's update changes no answer")
}
