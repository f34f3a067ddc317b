package main

import (
	"encoding/json"
	"sort"

	operatorsv1alpha1 "github.com/operator-framework/api/pkg/operators/v1alpha1"
	"sigs.k8s.io/yaml"

	"dexterity.dev/dexterity/hack/internal/gendir"
)

// generatedDirs are owned entirely by bundlegen: files in them that it does not generate are
// removed by Write.
var generatedDirs = []string{"manifests", "metadata"}

// Write makes dir hold files: manifests/ and metadata/ exactly, anything else in dir left alone.
func Write(dir string, files map[string][]byte) error {
	return gendir.Write(dir, files, generatedDirs...)
}

// marshalClean renders the CSV as YAML without what its Go types add but a bundle does not
// carry: status, creationTimestamp: null, apiservicedefinitions: {} and cleanup: {enabled: false}.
// sigs.k8s.io/yaml sorts map keys, so the output is deterministic.
func marshalClean(csv *operatorsv1alpha1.ClusterServiceVersion) ([]byte, error) {
	js, err := json.Marshal(csv)
	if err != nil {
		return nil, err
	}
	m, err := decodeMap(js)
	if err != nil {
		return nil, err
	}
	delete(m, "status")
	dropNullCreationTimestamps(m)
	if spec, ok := m["spec"].(map[string]any); ok {
		if a, ok := spec["apiservicedefinitions"].(map[string]any); ok && len(a) == 0 {
			delete(spec, "apiservicedefinitions")
		}
		if !csv.Spec.Cleanup.Enabled {
			delete(spec, "cleanup")
		}
	}
	return yaml.Marshal(m)
}

func dropNullCreationTimestamps(v any) {
	switch t := v.(type) {
	case map[string]any:
		for k, x := range t {
			if k == "creationTimestamp" && x == nil {
				delete(t, k)
				continue
			}
			dropNullCreationTimestamps(x)
		}
	case []any:
		for _, x := range t {
			dropNullCreationTimestamps(x)
		}
	}
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func sortedKeysFunc[K comparable, V any](m map[K]V, str func(K) string) []K {
	keys := make([]K, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool { return str(keys[i]) < str(keys[j]) })
	return keys
}
