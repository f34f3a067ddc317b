package main

import (
	"strings"
	"testing"

	operatorsv1alpha1 "github.com/operator-framework/api/pkg/operators/v1alpha1"
)

// TestUnsupported checks that what config/ does not render, and bundlegen does not handle, fails
// the generation with an error naming the object.
func TestUnsupported(t *testing.T) {
	for name, tc := range map[string]struct {
		yaml, want string
	}{
		"Secret": {
			"apiVersion: v1\nkind: Secret\nmetadata: {name: certs, namespace: ns}\n",
			"Secret ns/certs: Secrets are not supported",
		},
		"Certificate": {
			"apiVersion: cert-manager.io/v1\nkind: Certificate\nmetadata: {name: serving, namespace: ns}\n",
			"Certificate ns/serving: cert-manager objects are not supported",
		},
		"Issuer": {
			"apiVersion: cert-manager.io/v1\nkind: Issuer\nmetadata: {name: selfsigned, namespace: ns}\n",
			"Issuer ns/selfsigned: cert-manager objects are not supported",
		},
		"two Deployments": {
			"apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: a, namespace: ns}\n---\n" +
				"apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: b, namespace: ns}\n",
			"2 Deployments (Deployment ns/a, Deployment ns/b): more than one Deployment is not supported",
		},
		"CA injection": {
			"apiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\n" +
				"metadata: {name: xs.example.com, annotations: {cert-manager.io/inject-ca-from: ns/serving}}\n",
			"CustomResourceDefinition xs.example.com: the annotation cert-manager.io/inject-ca-from is not supported",
		},
	} {
		t.Run(name, func(t *testing.T) {
			objs, err := decodeObjects([]byte(tc.yaml))
			if err != nil {
				t.Fatal(err)
			}
			b := &builder{csv: &operatorsv1alpha1.ClusterServiceVersion{}, image: "dexterity:dev", files: map[string][]byte{}}
			err = b.build(objs, nil)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("build: %v, want an error containing %q", err, tc.want)
			}
		})
	}
}
