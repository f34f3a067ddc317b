package main

import (
	"bytes"
	"strings"
	"testing"

	. "github.com/onsi/gomega"
)

// TestRunImport: manifests on stdout only (for kubectl), warnings and steps on stderr, exit 1
// with the line and field on bad input, 2 on bad usage.
func TestRunImport(t *testing.T) {
	for _, tc := range []struct {
		name      string
		args      []string
		stdin     string
		code      int
		stdout    []string
		stderr    []string
		notStdout []string
	}{
		{"a config", []string{"-f", "../../internal/importer/testdata/shared-dex.yaml", "--namespace", "platform", "--provider", "dex/shared"}, "", 0,
			[]string{"kind: DexStaticClient", "namespace: platform", "- 10000\n    - 10010", "name: shared\n    namespace: dex"},
			[]string{"staticClients[2].secretEnv", "left EMPTY", "kubectl apply -n platform -f -"}, []string{"warning"}},
		{"stdin", []string{"-f", "-"}, "staticClients:\n- id: a\n  public: true\n", 0, []string{"clientId: a"}, []string{"Imported 1 static clients"}, nil},
		{"bad input", []string{"-f", "-"}, "staticClients:\n- name: A\n", 1, nil, []string{"-: line 2: staticClients[0].id: Required"}, []string{"kind"}},
		{"no file", []string{}, "", 2, nil, []string{"-f is required"}, nil},
		{"a bad provider", []string{"-f", "-", "--provider", "a/b/c"}, "", 2, nil, []string{"--provider"}, nil},
		{"a missing file", []string{"-f", "/nonexistent.yaml"}, "", 1, nil, []string{"failed to open the config file"}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			var stdout, stderr bytes.Buffer
			code := runImport(tc.args, strings.NewReader(tc.stdin), &stdout, &stderr)
			g.Expect(code).To(Equal(tc.code), stderr.String())
			for _, s := range tc.stdout {
				g.Expect(stdout.String()).To(ContainSubstring(s))
			}
			for _, s := range tc.notStdout {
				g.Expect(stdout.String()).NotTo(ContainSubstring(s))
			}
			for _, s := range tc.stderr {
				g.Expect(stderr.String()).To(ContainSubstring(s))
			}
		})
	}
}
