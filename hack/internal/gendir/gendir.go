// Package gendir writes the output of the project's generators (hack/bundlegen, hack/chartgen)
// into a directory, so that `make verify-generated` sees a clean tree when nothing changed.
package gendir

import (
	"bytes"
	"errors"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
)

// Write makes dir hold files (slash-separated paths relative to dir): changed files are
// rewritten, unchanged ones left untouched, and files under the generated subdirectories (all of
// dir when none are named) that are no longer generated are removed. Anything else in dir is left
// alone.
func Write(dir string, files map[string][]byte, generated ...string) error {
	if len(generated) == 0 {
		generated = []string{"."}
	}
	for _, sub := range generated {
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
	for _, name := range slices.Sorted(maps.Keys(files)) {
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
