// Package importer turns the staticClients and connectors of a Dex config file into the
// DexStaticClient, DexConnector and Secret objects that make the operator register the same
// clients and connectors through Dex's gRPC API (`dexterity import`, docs/migration.md).
//
// It is pure: config bytes in, objects and warnings out. It reads the file the way Dex does (YAML
// 1.1 through ghodss/yaml, keys matched without case as encoding/json does, $VAR expansion in
// connector configs), moves every secret value and every environment reference into a Secret,
// and checks each object with the same single-object rules as admission, so that what it prints
// is accepted as printed. Problems are errors naming the line and the field.
package importer

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"

	yaml "go.yaml.in/yaml/v3"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	sigsyaml "sigs.k8s.io/yaml"

	dexv1 "dexterity.dev/dexterity/api/v1alpha1"
)

// SecretSuffix ends the name of the Secret of every imported object: <name>-dex-import.
const SecretSuffix = "-dex-import"

// ClientSecretKey is the key of a client secret in its Secret.
const ClientSecretKey = "clientSecret"

// maxErrors is how many problems one import reports.
const maxErrors = 50

// Options of an import.
type Options struct {
	// Namespace of the objects; empty leaves metadata.namespace out (kubectl's namespace applies).
	Namespace string
	// Provider is every object's providerRef; the zero value means {name: dex}, the provider named
	// dex in the objects' namespace.
	Provider dexv1.ObjectRef
	// HelmValues reads the file as values of Dex's Helm chart: the Dex config is its `config`.
	HelmValues bool
	// LookupEnv resolves the environment references Dex resolves at start ($VAR in connector
	// configs, idEnv, secretEnv); run it where Dex's environment is set. Nil leaves them
	// unresolved: their Secret values are left empty (with a warning) and an idEnv is an error.
	LookupEnv func(name string) (string, bool)
	// LiteralDollars reads connector configs as Dex does with DEX_EXPAND_ENV=false: a $ is a $.
	LiteralDollars bool
}

// Error is one problem of the input: the line of the file, the field (e.g.
// "staticClients[2].id") and what to do.
type Error struct {
	Line    int
	Field   string
	Message string
}

func (e *Error) Error() string {
	if e.Field == "" {
		return fmt.Sprintf("line %d: %s", e.Line, e.Message)
	}
	return fmt.Sprintf("line %d: %s: %s", e.Line, e.Field, e.Message)
}

// Errors are all the problems an import found, in the order of the file.
type Errors []*Error

func (l Errors) Error() string {
	msgs := make([]string, len(l))
	for i, e := range l {
		msgs[i] = e.Error()
	}
	return strings.Join(msgs, "\n")
}

// Warning is something the user must know or do: a secret that moved, a value left to fill in, a
// field that is not imported. It never holds a secret value.
type Warning struct {
	Line    int
	Field   string
	Message string
}

func (w Warning) String() string { return (&Error{w.Line, w.Field, w.Message}).Error() }

// Entry is one static client or connector of the file and what it becomes.
type Entry struct {
	// Field is where it is in the file, e.g. "staticClients[0]", and Line its first line.
	Field string
	Line  int
	// ID is its id in Dex.
	ID string
	// Secret holds the values moved out of it; nil when there were none.
	Secret *corev1.Secret
	// Exactly one of Client and Connector is set.
	Client    *dexv1.DexStaticClient
	Connector *dexv1.DexConnector
}

// Result of an import: the entries in file order, static clients first.
type Result struct {
	Entries  []Entry
	Warnings []Warning
}

// Import reads a Dex config file (or Helm values, with opts.HelmValues). The error, when not nil,
// is Errors.
func Import(data []byte, opts Options) (*Result, error) {
	if opts.Provider.Name == "" {
		opts.Provider.Name = "dex"
	}
	im := &importer{opts: opts, res: &Result{}}
	root, err := parse(data)
	if err != nil {
		return nil, err
	}
	im.file(root)
	if len(im.errs) > 0 {
		if len(im.errs) > maxErrors {
			rest := len(im.errs) - maxErrors
			im.errs = append(im.errs[:maxErrors], &Error{Line: im.errs[maxErrors].Line, Message: fmt.Sprintf("and %d more problems", rest)})
		}
		return nil, im.errs
	}
	return im.res, nil
}

var (
	yamlLine   = regexp.MustCompile(`line (\d+)`)
	yamlPrefix = regexp.MustCompile(`^yaml: (line \d+: )?`)
)

// parse returns the root node of the file's one YAML document.
func parse(data []byte) (*yaml.Node, error) {
	// Dex reads its config through sigs.k8s.io/yaml, which refuses an alias that contains
	// itself: no Dex loads such a file, and walking it would not end (the node budget below
	// bounds the other aliasing, counted as it is walked).
	if _, err := sigsyaml.YAMLToJSON(data); err != nil && strings.Contains(err.Error(), "contains itself") {
		return nil, Errors{{Line: errorLine(err), Message: "the file is not a YAML document Dex would load: " + yamlPrefix.ReplaceAllString(err.Error(), "")}}
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, Errors{{Line: 1, Message: "the file is empty; give the Dex config file (the one with staticClients and connectors)"}}
		}
		return nil, Errors{{Line: errorLine(err), Message: "the file is not valid YAML: " + yamlPrefix.ReplaceAllString(err.Error(), "")}}
	}
	var next yaml.Node
	switch err := dec.Decode(&next); {
	case err == nil:
		return nil, Errors{{Line: next.Line, Message: "the file holds more than one YAML document; Dex reads one: give the config alone"}}
	case !errors.Is(err, io.EOF):
		return nil, Errors{{Line: errorLine(err), Message: "the file is not valid YAML: " + yamlPrefix.ReplaceAllString(err.Error(), "")}}
	}
	if len(doc.Content) == 0 {
		return nil, Errors{{Line: 1, Message: "the file is empty; give the Dex config file (the one with staticClients and connectors)"}}
	}
	return doc.Content[0], nil
}

func errorLine(err error) int {
	if m := yamlLine.FindStringSubmatch(err.Error()); m != nil {
		if n, err := strconv.Atoi(m[1]); err == nil {
			return n
		}
	}
	return 1
}

type importer struct {
	reader
	opts  Options
	res   *Result
	names names
}

func (im *importer) warn(n *yaml.Node, field, format string, args ...any) {
	im.res.Warnings = append(im.res.Warnings, Warning{Line: n.Line, Field: field, Message: fmt.Sprintf(format, args...)})
}

// file reads the top level: staticClients and connectors (or config.staticClients and
// config.connectors of Helm values). Everything else stays in Dex's config.
func (im *importer) file(root *yaml.Node) {
	root = im.deref(root)
	prefix := ""
	if im.opts.HelmValues {
		if root.Kind != yaml.MappingNode {
			im.fail(root, "", "Helm values must be a mapping with a `config` key, not %s", kindName(root))
			return
		}
		ps, ok := im.pairs(root, "")
		if !ok {
			return
		}
		var cfg *yaml.Node
		for _, p := range ps {
			if p.key == "config" {
				cfg = p.value
			}
		}
		if cfg == nil {
			im.fail(root, "config", "Required: Dex's Helm chart takes the Dex config under `config`; this file has none (without --helm-values the file is read as a Dex config)")
			return
		}
		root, prefix = cfg, "config"
	}
	if root.Kind != yaml.MappingNode {
		im.fail(root, prefix, "a Dex config must be a mapping (issuer, storage, staticClients, connectors, ...), not %s", kindName(root))
		return
	}
	ps, ok := im.pairs(root, prefix)
	if !ok {
		return
	}
	var clients, connectors *pair
	for i, p := range ps {
		switch {
		case strings.EqualFold(p.key, "staticClients"):
			clients = &ps[i]
		case strings.EqualFold(p.key, "connectors"):
			connectors = &ps[i]
		}
	}
	if clients == nil && connectors == nil {
		im.warn(root, prefix, "no staticClients and no connectors: nothing to import")
		return
	}
	if clients != nil {
		im.list(clients, prefix, im.client)
	}
	if connectors != nil {
		im.list(connectors, prefix, im.connector)
	}
}

// list reads a list of mappings, each with one.
func (im *importer) list(p *pair, prefix string, one func(field string, n *yaml.Node)) {
	field := join(prefix, p.key)
	n := p.value
	if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
		return
	}
	if n.Kind != yaml.SequenceNode {
		im.fail(n, field, "must be a list (entries starting with `- `), not %s", kindName(n))
		return
	}
	for i, item := range n.Content {
		f := fmt.Sprintf("%s[%d]", field, i)
		if item = im.deref(item); item == nil {
			im.overBudget(n, f)
			return
		}
		if item.Kind != yaml.MappingNode {
			im.fail(item, f, "must be a mapping (id: ..., ...), not %s", kindName(item))
			continue
		}
		one(f, item)
	}
}

// meta is the metadata of an imported object.
func (im *importer) meta(name string) metav1.ObjectMeta {
	return metav1.ObjectMeta{Name: name, Namespace: im.opts.Namespace}
}

// secret is the Secret of the object name holding data.
func (im *importer) secret(name string, data map[string]string) *corev1.Secret {
	return &corev1.Secret{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Secret"},
		ObjectMeta: im.meta(name + SecretSuffix),
		Type:       corev1.SecretTypeOpaque,
		StringData: data,
	}
}

// lookup resolves an environment variable for a field; ok is false when lookups are off.
func (im *importer) lookup(n *yaml.Node, field, name string) (string, bool) {
	if im.opts.LookupEnv == nil {
		return "", false
	}
	v, set := im.opts.LookupEnv(name)
	if !set {
		im.warn(n, field, "$%s is not set in this environment: taken as empty, as Dex would", name)
	}
	return v, true
}

// idPattern and connectorIDPattern are the patterns of spec.clientId and spec.connectorId.
var (
	idPattern          = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._:-]*$`)
	connectorIDPattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_-]*$`)
)

// dedupe drops repeated values (keeping the first), with a warning for each.
func (im *importer) dedupe(vals []string, nodes []*yaml.Node, field string) ([]string, []*yaml.Node) {
	seen := map[string]bool{}
	var outV []string
	var outN []*yaml.Node
	for i, v := range vals {
		if seen[v] {
			im.warn(nodes[i], fmt.Sprintf("%s[%d]", field, i), "listed twice; imported once")
			continue
		}
		seen[v] = true
		outV, outN = append(outV, v), append(outN, nodes[i])
	}
	return outV, outN
}

func checkURL(s string) bool {
	u, err := url.ParseRequestURI(s)
	return err == nil && (u.Scheme == "http" || u.Scheme == "https")
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
