package connector

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
)

// Inject returns config with each value set as a JSON string at its
// dot-separated path (e.g. "clientSecret", "userSearch.bindPW"), creating
// intermediate objects where they are missing or null. A path that runs
// through an existing value that is not an object is an error naming the
// path. Paths are applied in sorted order and keys are matched exactly. The
// input is not modified; nil or empty config means {}.
func Inject(config []byte, values map[string]string) ([]byte, error) {
	var doc map[string]any
	if len(bytes.TrimSpace(config)) > 0 {
		v, err := decodeGeneric(config)
		if err != nil {
			return nil, fmt.Errorf("the config is not valid JSON: %s", strings.TrimPrefix(err.Error(), "json: "))
		}
		switch x := v.(type) {
		case nil:
		case map[string]any:
			doc = x
		default:
			return nil, fmt.Errorf("the config must be a JSON object, got %s", jsonKind(v))
		}
	}
	if doc == nil {
		doc = map[string]any{}
	}

	paths := make([]string, 0, len(values))
	for p := range values {
		paths = append(paths, p)
	}
	slices.Sort(paths)
	for _, p := range paths {
		if err := setPath(doc, p, values[p]); err != nil {
			return nil, err
		}
	}

	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(doc); err != nil {
		return nil, fmt.Errorf("encoding the config: %w", err)
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}

func setPath(doc map[string]any, path, value string) error {
	segs := strings.Split(path, ".")
	if slices.Contains(segs, "") {
		return fmt.Errorf("invalid path %q: it must be dot-separated field names, none of them empty", path)
	}
	obj := doc
	for i, seg := range segs[:len(segs)-1] {
		switch next := obj[seg].(type) {
		case map[string]any:
			obj = next
		case nil:
			created := map[string]any{}
			obj[seg] = created
			obj = created
		default:
			return fmt.Errorf("cannot set %q: %q is %s in the config, not an object", path, strings.Join(segs[:i+1], "."), jsonKind(next))
		}
	}
	obj[segs[len(segs)-1]] = value
	return nil
}
