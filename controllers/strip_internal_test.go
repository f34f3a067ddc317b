package controllers

import (
	"strings"
	"testing"

	. "github.com/onsi/gomega"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	dexv1 "dexterity.dev/dexterity/api/v1alpha1"
)

// A tenant's annotations cost the manager nothing: the cache keeps the legacy ownership
// annotation only when it names the object's own id (what the carry-over reads), not a 200 KiB
// value under the same key.
func TestCacheKeepsOnlyALegacyAnnotationNamingTheObjectsID(t *testing.T) {
	g := NewWithT(t)
	huge := strings.Repeat("x", 200<<10)
	for _, tc := range []struct {
		name string
		obj  metav1.Object
		keep bool
	}{
		{"client, its own id", &dexv1.DexStaticClient{ObjectMeta: metav1.ObjectMeta{Namespace: "team-a", Name: "app",
			Annotations: map[string]string{LegacyAnnotationRegisteredClientID: "team-a-app"}}}, true},
		{"client, 200 KiB", &dexv1.DexStaticClient{ObjectMeta: metav1.ObjectMeta{Namespace: "team-a", Name: "app",
			Annotations: map[string]string{LegacyAnnotationRegisteredClientID: huge}}}, false},
		{"client, another id", &dexv1.DexStaticClient{ObjectMeta: metav1.ObjectMeta{Namespace: "team-a", Name: "app",
			Annotations: map[string]string{LegacyAnnotationRegisteredClientID: "team-b-app"}}}, false},
		{"connector, its own id", &dexv1.DexConnector{ObjectMeta: metav1.ObjectMeta{Namespace: "platform", Name: "gh",
			Annotations: map[string]string{LegacyAnnotationRegisteredConnectorID: "github"}}, Spec: dexv1.DexConnectorSpec{ConnectorID: "github"}}, true},
		{"connector, 200 KiB", &dexv1.DexConnector{ObjectMeta: metav1.ObjectMeta{Namespace: "platform", Name: "gh",
			Annotations: map[string]string{LegacyAnnotationRegisteredConnectorID: huge}}, Spec: dexv1.DexConnectorSpec{ConnectorID: "github"}}, false},
		{"binding, a legacy key", &dexv1.GroupBinding{ObjectMeta: metav1.ObjectMeta{Namespace: "team-a", Name: "b",
			Annotations: map[string]string{LegacyAnnotationRegisteredClientID: "team-a-b"}}}, false},
	} {
		out, err := stripUnread(tc.obj)
		g.Expect(err).NotTo(HaveOccurred())
		if tc.keep {
			g.Expect(out.(metav1.Object).GetAnnotations()).To(HaveLen(1), tc.name)
		} else {
			g.Expect(out.(metav1.Object).GetAnnotations()).To(BeEmpty(), tc.name)
		}
	}
}
