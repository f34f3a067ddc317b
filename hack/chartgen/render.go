package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"

	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"
)

// object is one rendered Kubernetes object, as a map (numbers as json.Number, written back as is).
type object struct {
	Kind, Name string
	Map        map[string]any
}

func (o object) String() string { return o.Kind + " " + o.Name }

func kustomizeBuild(kustomize, dir string) ([]object, error) {
	if _, err := exec.LookPath(kustomize); err != nil {
		return nil, fmt.Errorf("kustomize not found (%v): run `make tools`", err)
	}
	cmd := exec.Command(kustomize, "build", dir)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("%s build %s: %v\n%s", kustomize, dir, err, stderr.String())
	}
	var objs []object
	r := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(out)))
	for {
		doc, err := r.Read()
		if err == io.EOF {
			return objs, nil
		}
		if err != nil {
			return nil, fmt.Errorf("kustomize build %s: %w", dir, err)
		}
		js, err := yaml.YAMLToJSON(doc)
		if err != nil {
			return nil, err
		}
		if bytes.Equal(bytes.TrimSpace(js), []byte("null")) {
			continue
		}
		d := json.NewDecoder(bytes.NewReader(js))
		d.UseNumber()
		var m map[string]any
		if err := d.Decode(&m); err != nil {
			return nil, err
		}
		o := object{Map: m}
		o.Kind, _ = m["kind"].(string)
		o.Name, _ = get(m, "metadata", "name").(string)
		if o.Kind == "" || o.Name == "" {
			return nil, fmt.Errorf("kustomize build %s: object without kind or metadata.name: %s", dir, js)
		}
		objs = append(objs, o)
	}
}

// csvVersion is spec.version of the CSV base: the chart's version and appVersion, as the
// bundle's.
func csvVersion(root string) (string, error) {
	data, err := os.ReadFile(filepath.Join(root, "config", "manifests", "bases", "dexterity.clusterserviceversion.yaml"))
	if err != nil {
		return "", err
	}
	var csv struct {
		Spec struct {
			Version string `json:"version"`
		} `json:"spec"`
	}
	if err := yaml.Unmarshal(data, &csv); err != nil {
		return "", fmt.Errorf("CSV base: %w", err)
	}
	if csv.Spec.Version == "" {
		return "", fmt.Errorf("CSV base: no spec.version")
	}
	return csv.Spec.Version, nil
}

// get walks nested maps; nil when a step is missing.
func get(m map[string]any, path ...string) any {
	var cur any = m
	for _, p := range path {
		mm, ok := cur.(map[string]any)
		if !ok {
			return nil
		}
		cur = mm[p]
	}
	return cur
}

// child returns the map at m[key], creating it when missing.
func child(m map[string]any, key string) map[string]any {
	c, ok := m[key].(map[string]any)
	if !ok {
		c = map[string]any{}
		m[key] = c
	}
	return c
}

// A template is built by putting placeholders into an object's map, marshalling it to YAML,
// escaping Helm's delimiters in what the inputs hold, and replacing each placeholder's line with
// its template text.
type templ struct {
	frags []fragment
}

// fragment is what one placeholder becomes.
type fragment struct {
	// scalar replaces the quoted placeholder within its line ("replicas: '@@0@@'").
	scalar string
	// lines replaces the whole line; indent is the line's indentation (of "- " for a list item,
	// of the key for a map entry).
	lines func(indent int) string
}

// scalar returns a placeholder that becomes the template text s in place.
func (t *templ) scalar(s string) string {
	t.frags = append(t.frags, fragment{scalar: s})
	return fmt.Sprintf("@@%d@@", len(t.frags)-1)
}

// lines returns a placeholder whose whole line becomes what f returns.
func (t *templ) lines(f func(indent int) string) string {
	t.frags = append(t.frags, fragment{lines: f})
	// "zzz" sorts after every key, so that a placeholder key is never the first key of a list
	// item (the line that carries the item's "- ").
	return fmt.Sprintf("zzz@@%d@@", len(t.frags)-1)
}

var (
	placeholderRe = regexp.MustCompile(`'?(?:zzz)?@@(\d+)@@'?`)
	delimitersRe  = regexp.MustCompile(`\{\{|\}\}`)
)

// render marshals m and applies the placeholders; every placeholder must be used.
func (t *templ) render(m map[string]any) (string, error) {
	data, err := yaml.Marshal(m)
	if err != nil {
		return "", err
	}
	text := delimitersRe.ReplaceAllStringFunc(string(data), func(s string) string { return `{{ "` + s + `" }}` })
	used := map[int]bool{}
	var out strings.Builder
	for _, line := range strings.SplitAfter(text, "\n") {
		loc := placeholderRe.FindStringSubmatchIndex(line)
		if loc == nil {
			out.WriteString(line)
			continue
		}
		n, _ := strconv.Atoi(line[loc[2]:loc[3]])
		if n >= len(t.frags) {
			return "", fmt.Errorf("unknown placeholder %d", n)
		}
		used[n] = true
		f := t.frags[n]
		if f.lines == nil {
			out.WriteString(line[:loc[0]] + f.scalar + line[loc[1]:])
			continue
		}
		indent := len(line) - len(strings.TrimLeft(line, " "))
		out.WriteString(f.lines(indent))
		if !strings.HasSuffix(f.lines(indent), "\n") {
			out.WriteString("\n")
		}
	}
	if len(used) != len(t.frags) {
		return "", fmt.Errorf("%d of %d placeholders not rendered", len(t.frags)-len(used), len(t.frags))
	}
	return out.String(), nil
}

// ind is n spaces.
func ind(n int) string { return strings.Repeat(" ", n) }

// withBlock is a key whose block is a value, present only when the value is set:
//
//	{{- with .Values.x }}
//	key:
//	  {{- toYaml . | nindent n+2 }}
//	{{- end }}
func withBlock(key, value string) func(int) string {
	return func(n int) string {
		return fmt.Sprintf("{{- with %s }}\n%s%s:\n%s{{- toYaml . | nindent %d }}\n{{- end }}", value, ind(n), key, ind(n+2), n+2)
	}
}

// mapEntries inserts the entries of a map value into the enclosing map.
func mapEntries(value string) func(int) string {
	return func(n int) string {
		return fmt.Sprintf("{{- with %s }}\n%s{{- toYaml . | nindent %d }}\n{{- end }}", value, ind(n), n)
	}
}

// yamlAt marshals v indented by n (a list item when item is set).
func yamlAt(v any, n int, item bool) (string, error) {
	data, err := yaml.Marshal(v)
	if err != nil {
		return "", err
	}
	var out strings.Builder
	for i, l := range strings.Split(strings.TrimRight(string(data), "\n"), "\n") {
		switch {
		case item && i == 0:
			out.WriteString(ind(n) + "- " + l + "\n")
		case item:
			out.WriteString(ind(n+2) + l + "\n")
		default:
			out.WriteString(ind(n) + l + "\n")
		}
	}
	return strings.TrimRight(out.String(), "\n"), nil
}

// replaceStrings calls f on every string of v (nested maps and lists) and stores its result.
func replaceStrings(v any, f func(string) any) any {
	switch x := v.(type) {
	case map[string]any:
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			x[k] = replaceStrings(x[k], f)
		}
		return x
	case []any:
		for i := range x {
			x[i] = replaceStrings(x[i], f)
		}
		return x
	case string:
		return f(x)
	}
	return v
}
