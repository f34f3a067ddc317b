package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"sort"

	operatorsv1alpha1 "github.com/operator-framework/api/pkg/operators/v1alpha1"
	"sigs.k8s.io/yaml"
)

// generatedDirs are owned entirely by bundlegen: files in them that it does not generate are
// removed by Write.
var generatedDirs = []string{"manifests", "metadata"}

// Write makes dir hold files (slash-separated paths relative to dir): changed files are
// rewritten, files of manifests/ and metadata/ that are no longer generated are removed, and
// anything else in dir is left alone.
func Write(dir string, files map[string][]byte) error {
	for _, sub := range generatedDirs {
		err := filepath.WalkDir(filepath.Join(dir, sub), func(p string, d fs.DirEntry, err error) error {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			if err != nil || d.IsDir() {
				return err
			}
			rel, err := filepath.Rel(dir, p)
			if err != nil {
				return err
			}
			if _, ok := files[filepath.ToSlash(rel)]; !ok {
				return os.Remove(p)
			}
			return nil
		})
		if err != nil {
			return err
		}
	}
	for _, name := range sortedKeys(files) {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if old, err := os.ReadFile(p); err == nil && bytes.Equal(old, files[name]) {
			continue
		}
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(p, files[name], 0o644); err != nil {
			return err
		}
	}
	return nil
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
