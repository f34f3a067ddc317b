// Package unit_test holds fast unit tests of the reconcilers: controller-runtime's fake client
// instead of envtest and the in-memory Dex of internal/dex/dexfake instead of a Dex process. They
// run in a second or so; the real-component suites (controllers, test/...) prove the same
// behaviours against the real kube-apiserver and Dex.
package unit_test
