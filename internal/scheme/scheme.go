// Package scheme holds the one runtime.Scheme of the operator: Kubernetes' built-in types,
// Dexterity's kinds, the ownership claims, and CustomResourceDefinitions (the claims CRD's
// creation time decides which objects of older versions are carried over). The manager binary,
// the test harness and the unit tests all use it.
package scheme

import (
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"

	claimsv1 "dexterity.dev/dexterity/api/claims/v1alpha1"
	dexv1 "dexterity.dev/dexterity/api/v1alpha1"
)

// Scheme is the operator's scheme.
var Scheme = runtime.NewScheme()

func init() {
	utilruntime.Must(clientgoscheme.AddToScheme(Scheme))
	utilruntime.Must(dexv1.AddToScheme(Scheme))
	utilruntime.Must(claimsv1.AddToScheme(Scheme))
	utilruntime.Must(apiextensionsv1.AddToScheme(Scheme))
}
