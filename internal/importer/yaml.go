package importer

import (
	"fmt"
	"strings"

	yaml "go.yaml.in/yaml/v3"
)

// maxNodes bounds the YAML nodes one import visits, aliases counted at every use: a small file of
// nested aliases ("billion laughs") is refused instead of expanded.
const maxNodes = 1 << 20

// pair is one key and value of a YAML mapping.
type pair struct {
	key   string
	keyAt *yaml.Node
	value *yaml.Node
}

// reader walks YAML nodes the way Dex reads its config (YAML 1.1 through ghodss/yaml, then
// encoding/json), counting the nodes it visits.
type reader struct {
	visited int
	errs    Errors
}

func (r *reader) fail(n *yaml.Node, field, format string, args ...any) {
	line := 0
	if n != nil {
		line = n.Line
	}
	r.errs = append(r.errs, &Error{Line: line, Field: field, Message: fmt.Sprintf(format, args...)})
}

// deref follows aliases and counts the node against maxNodes; nil when the budget is spent.
func (r *reader) deref(n *yaml.Node) *yaml.Node {
	for n != nil && n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	r.visited++
	if r.visited > maxNodes {
		return nil
	}
	return n
}

// overBudget reports the spent node budget once, at n.
func (r *reader) overBudget(n *yaml.Node, field string) {
	for _, e := range r.errs {
		if strings.Contains(e.Message, "too many YAML nodes") {
			return
		}
	}
	r.fail(n, field, "too many YAML nodes (more than %d, aliases counted at every use); split the file or expand its aliases", maxNodes)
}

// pairs returns the entries of a mapping in file order, merge keys (<<) expanded as YAML 1.1 does
// (keys of the mapping itself win over merged ones). A key given twice is an error: Dex would
// silently keep one of them.
func (r *reader) pairs(n *yaml.Node, field string) ([]pair, bool) {
	var out []pair
	seen := map[string]bool{}
	var merged []pair
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := r.deref(n.Content[i]), r.deref(n.Content[i+1])
		if k == nil || v == nil {
			r.overBudget(n, field)
			return nil, false
		}
		if k.Kind == yaml.ScalarNode && k.Tag == "!!merge" {
			sources := []*yaml.Node{v}
			if v.Kind == yaml.SequenceNode {
				sources = v.Content
			}
			for _, s := range sources {
				if s = r.deref(s); s == nil {
					r.overBudget(n, field)
					return nil, false
				}
				if s.Kind != yaml.MappingNode {
					r.fail(s, field, "a merge key (<<) must name a mapping")
					return nil, false
				}
				ps, ok := r.pairs(s, field)
				if !ok {
					return nil, false
				}
				merged = append(merged, ps...)
			}
			continue
		}
		if k.Kind != yaml.ScalarNode {
			r.fail(k, field, "a key must be a plain value, not a list or a mapping")
			return nil, false
		}
		if seen[k.Value] {
			r.fail(k, join(field, k.Value), "the key is given twice; keep one")
			return nil, false
		}
		seen[k.Value] = true
		out = append(out, pair{key: k.Value, keyAt: k, value: v})
	}
	for _, p := range merged {
		if !seen[p.key] {
			seen[p.key] = true
			out = append(out, p)
		}
	}
	return out, true
}

// yaml11Bools are the plain scalars YAML 1.1 (and so Dex, through ghodss/yaml) reads as booleans;
// YAML 1.2 reads only true and false so.
var yaml11Bools = map[string]bool{
	"y": true, "Y": true, "yes": true, "Yes": true, "YES": true, "on": true, "On": true, "ON": true,
	"true": true, "True": true, "TRUE": true,
	"n": false, "N": false, "no": false, "No": false, "NO": false, "off": false, "Off": false, "OFF": false,
	"false": false, "False": false, "FALSE": false,
}

// scalar is the JSON value Dex reads for a scalar node: a string, bool, number or nil.
func scalar(n *yaml.Node) any {
	if n.Style == 0 {
		if b, ok := yaml11Bools[n.Value]; ok {
			return b
		}
	}
	switch n.Tag {
	case "!!null":
		return nil
	case "!!bool", "!!int", "!!float":
		var v any
		if err := n.Decode(&v); err == nil {
			switch v.(type) {
			case bool, int, int64, uint64, float64:
				return v
			}
		}
	}
	return n.Value
}

// str reads a string-valued field as ghodss/yaml does for a string target: any scalar's text.
func (r *reader) str(n *yaml.Node, field string) (string, bool) {
	if n.Kind != yaml.ScalarNode {
		r.fail(n, field, "must be a string, not %s", kindName(n))
		return "", false
	}
	if n.Tag == "!!null" {
		return "", true
	}
	return n.Value, true
}

// boolean reads a boolean field (YAML 1.1 spellings included, as Dex reads them).
func (r *reader) boolean(n *yaml.Node, field string) (bool, bool) {
	if n.Kind == yaml.ScalarNode {
		switch v := scalar(n).(type) {
		case bool:
			return v, true
		case nil:
			return false, true
		}
	}
	r.fail(n, field, "must be true or false, not %s", describe(n))
	return false, false
}

// strings reads a list of strings, with the node of every entry.
func (r *reader) strings(n *yaml.Node, field string) ([]string, []*yaml.Node, bool) {
	if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
		return nil, nil, true
	}
	if n.Kind != yaml.SequenceNode {
		r.fail(n, field, "must be a list of strings, not %s", kindName(n))
		return nil, nil, false
	}
	vals := make([]string, 0, len(n.Content))
	nodes := make([]*yaml.Node, 0, len(n.Content))
	ok := true
	for i, item := range n.Content {
		if item = r.deref(item); item == nil {
			r.overBudget(n, field)
			return nil, nil, false
		}
		s, good := r.str(item, fmt.Sprintf("%s[%d]", field, i))
		ok = ok && good
		vals = append(vals, s)
		nodes = append(nodes, item)
	}
	return vals, nodes, ok
}

func kindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.SequenceNode:
		return "a list"
	case yaml.MappingNode:
		return "a mapping"
	case yaml.ScalarNode:
		return "a " + strings.TrimPrefix(n.Tag, "!!")
	}
	return "an unsupported YAML node"
}

// describe names a node's kind and, for short non-secret scalars, its text.
func describe(n *yaml.Node) string {
	if n.Kind == yaml.ScalarNode && len(n.Value) <= 32 {
		return fmt.Sprintf("%q", n.Value)
	}
	return kindName(n)
}

// join appends a mapping key to a field path, quoting keys that are not plain names.
func join(field, key string) string {
	plain := key != ""
	for _, c := range key {
		if !nameChar(c) {
			plain = false
			break
		}
	}
	if !plain {
		key = fmt.Sprintf("[%q]", key)
		if field == "" {
			return key
		}
		return field + key
	}
	if field == "" {
		return key
	}
	return field + "." + key
}

func nameChar(c rune) bool {
	return c == '_' || c == '-' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
}
