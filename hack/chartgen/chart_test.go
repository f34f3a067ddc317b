package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The repository root, seen from this package's directory.
const root = "../.."

// TestChartUpToDate regenerates the chart and fails when the committed charts/dexterity differs:
// the chart is never stale against config/.
func TestChartUpToDate(t *testing.T) {
	if _, err := os.Stat(filepath.Join(root, "bin", "kustomize")); err != nil {
		t.Fatalf("bin/kustomize is missing (%v): run `make tools`", err)
	}
	o := DefaultOptions()
	o.Root = root
	want, err := Generate(o)
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(root, "charts", "dexterity")
	got := map[string][]byte{}
	err = filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		got[filepath.ToSlash(rel)], err = os.ReadFile(p)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range sortedKeys(want) {
		switch g, ok := got[name]; {
		case !ok:
			t.Errorf("charts/dexterity/%s is missing: run `make chart`", name)
		case !bytes.Equal(g, want[name]):
			t.Errorf("charts/dexterity/%s is stale: run `make chart`", name)
		}
	}
	for _, name := range sortedKeys(got) {
		if _, ok := want[name]; !ok {
			t.Errorf("charts/dexterity/%s is not generated any more: run `make chart`", name)
		}
	}
}

// Placeholders become their template text, whole lines or in place, and the inputs' own "{{"
// are escaped.
func TestTemplate(t *testing.T) {
	tp := &templ{}
	m := map[string]any{
		"a": tp.scalar("{{ .Values.a }}"),
		"b": map[string]any{tp.lines(mapEntries(".Values.b")): ""},
		"c": []any{"x", tp.lines(func(n int) string { return ind(n) + "- {{ .Values.c }}" })},
		"d": "{{ $labels.x }}",
	}
	out, err := tp.render(m)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"a: {{ .Values.a }}\n",
		"b:\n{{- with .Values.b }}\n  {{- toYaml . | nindent 2 }}\n{{- end }}\n",
		"c:\n- x\n- {{ .Values.c }}\n",
		`d: '{{ "{{" }} $labels.x {{ "}}" }}'`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("want %q in:\n%s", want, out)
		}
	}
	if _, err := (&templ{frags: []fragment{{scalar: "unused"}}}).render(map[string]any{}); err == nil {
		t.Error("an unused placeholder is an error")
	}
}
