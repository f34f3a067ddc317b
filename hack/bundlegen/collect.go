package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os/exec"
	"path"
	"path/filepath"
	"strings"

	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"
)

// collect renders config/manifests (what the bundle installs) and config/samples (the
// alm-examples) with kustomize.
func collect(o Options) (rendered, samples []object, err error) {
	kustomize := o.Kustomize
	if !filepath.IsAbs(kustomize) && strings.ContainsRune(kustomize, filepath.Separator) {
		kustomize = filepath.Join(o.Root, kustomize)
	}
	if _, err := exec.LookPath(kustomize); err != nil {
		return nil, nil, fmt.Errorf("kustomize not found (%v): run `make tools`", err)
	}
	if rendered, err = kustomizeBuild(kustomize, filepath.Join(o.Root, "config", "manifests")); err != nil {
		return nil, nil, err
	}
	if samples, err = kustomizeBuild(kustomize, filepath.Join(o.Root, "config", "samples")); err != nil {
		return nil, nil, err
	}
	return rendered, samples, nil
}

func kustomizeBuild(kustomize, dir string) ([]object, error) {
	cmd := exec.Command(kustomize, "build", dir)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("%s build %s: %v\n%s", kustomize, dir, err, stderr.String())
	}
	objs, err := decodeObjects(out)
	if err != nil {
		return nil, fmt.Errorf("kustomize build %s: %w", dir, err)
	}
	return objs, nil
}

// object is one rendered Kubernetes object.
type object struct {
	APIVersion, Kind, Name, Namespace string
	JSON                              []byte         // for typed decoding
	Map                               map[string]any // numbers as json.Number, for output as is
}

func (o object) group() string {
	if g, _, ok := strings.Cut(o.APIVersion, "/"); ok {
		return g
	}
	return ""
}

func (o object) String() string { return o.Kind + " " + path.Join(o.Namespace, o.Name) }

func (o object) decode(into any) error {
	if err := json.Unmarshal(o.JSON, into); err != nil {
		return fmt.Errorf("%s: %w", o, err)
	}
	return nil
}

// decodeObjects splits a multi-document YAML stream into objects; empty documents are skipped.
func decodeObjects(data []byte) ([]object, error) {
	var objs []object
	r := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(data)))
	for {
		doc, err := r.Read()
		if err == io.EOF {
			return objs, nil
		}
		if err != nil {
			return nil, err
		}
		js, err := yaml.YAMLToJSON(doc)
		if err != nil {
			return nil, err
		}
		if bytes.Equal(bytes.TrimSpace(js), []byte("null")) {
			continue
		}
		m, err := decodeMap(js)
		if err != nil {
			return nil, err
		}
		o := object{JSON: js, Map: m}
		o.APIVersion, _ = m["apiVersion"].(string)
		o.Kind, _ = m["kind"].(string)
		if meta, ok := m["metadata"].(map[string]any); ok {
			o.Name, _ = meta["name"].(string)
			o.Namespace, _ = meta["namespace"].(string)
		}
		if o.APIVersion == "" || o.Kind == "" || o.Name == "" {
			return nil, fmt.Errorf("object without apiVersion, kind or metadata.name: %s", js)
		}
		objs = append(objs, o)
	}
}

// decodeMap decodes a JSON object, keeping numbers as json.Number so they are written back as is.
func decodeMap(js []byte) (map[string]any, error) {
	d := json.NewDecoder(bytes.NewReader(js))
	d.UseNumber()
	var m map[string]any
	if err := d.Decode(&m); err != nil {
		return nil, err
	}
	return m, nil
}
