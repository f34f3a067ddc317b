package importer

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"regexp"
	"slices"
	"strings"

	yaml "go.yaml.in/yaml/v3"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	dexv1 "dexterity.dev/dexterity/api/v1alpha1"
	"dexterity.dev/dexterity/internal/connector"
	"dexterity.dev/dexterity/webhooks"
)

// Bounds of DexConnector fields the webhook's single-object check leaves to the CRD schema.
const (
	maxConnectorID = 128
	maxSecrets     = 64
)

// secretPathSegment is one segment of a spec.secrets path.
var secretPathSegment = regexp.MustCompile(`^[A-Za-z0-9_-]+$`)

// connector imports one entry of connectors (Dex's Connector: type, id, name, config).
func (im *importer) connector(field string, n *yaml.Node) {
	errsBefore := len(im.errs)
	ps, ok := im.pairs(n, field)
	if !ok {
		return
	}
	at := map[string]*yaml.Node{}
	var id, typ, name string
	for _, p := range ps {
		f := join(field, p.key)
		var known string
		for _, k := range []string{"id", "type", "name", "config"} {
			if strings.EqualFold(p.key, k) {
				known = k
			}
		}
		if known == "" {
			im.warn(p.keyAt, f, "not a field of a Dex connector (Dex ignores it); not imported")
			continue
		}
		if at[known] != nil {
			im.fail(p.keyAt, f, "%s is given twice (keys match without case, as in Dex); keep one", known)
			continue
		}
		at[known] = p.value
		switch known {
		case "id":
			id, _ = im.str(p.value, f)
		case "type":
			typ, _ = im.str(p.value, f)
		case "name":
			name, _ = im.str(p.value, f)
		}
	}
	node := func(k string) *yaml.Node {
		if v := at[k]; v != nil {
			return v
		}
		return n
	}
	switch {
	case id == "":
		im.fail(node("id"), field+".id", "Required: every connector needs an id (the <id> of <issuer>/auth/<id>)")
	case len(id) > maxConnectorID || !connectorIDPattern.MatchString(id):
		im.fail(node("id"), field+".id", "%q cannot be a DexConnector spec.connectorId: at most %d characters, letters, digits, '_' and '-', starting with a letter or digit; connectors with other ids stay in Dex's config", shorten(id), maxConnectorID)
	case id == "local":
		im.fail(node("id"), field+".id", "the id 'local' is Dex's password database (enablePasswordDB), not a connector to import; remove it from the list")
	}
	switch {
	case typ == "":
		im.fail(node("type"), field+".type", "Required: one of %s", strings.Join(connector.Types, ", "))
	case !slices.Contains(connector.Types, typ):
		im.fail(node("type"), field+".type", "unknown connector type %q: DexConnector supports %s", shorten(typ), strings.Join(connector.Types, ", "))
	}
	if len(name) > maxDisplayName {
		im.fail(node("name"), field+".name", "at most %d characters (spec.displayName); shorten it", maxDisplayName)
	}
	var cw *configWalk
	var config map[string]any
	if cfg := at["config"]; cfg != nil && (cfg.Kind != yaml.ScalarNode || cfg.Tag != "!!null") {
		if cfg.Kind != yaml.MappingNode {
			im.fail(cfg, field+".config", "must be a mapping (the connector's settings), not %s", kindName(cfg))
		} else {
			cw = im.newConfigWalk(field+".config", typ)
			v, _ := cw.value(cfg, field+".config", []string{}, true, true)
			config, _ = v.(map[string]any)
		}
	}
	if cw != nil && len(cw.moved) > maxSecrets {
		im.fail(node("config"), field+".config", "%d values to move into a Secret; a DexConnector takes at most %d (spec.secrets)", len(cw.moved), maxSecrets)
	}
	if len(im.errs) > errsBefore {
		return
	}

	objName := im.names.take(id, "connector")
	obj := &dexv1.DexConnector{
		TypeMeta:   metav1.TypeMeta{APIVersion: dexv1.GroupVersion.String(), Kind: "DexConnector"},
		ObjectMeta: im.meta(objName),
		Spec: dexv1.DexConnectorSpec{
			ProviderRef: im.opts.Provider,
			ConnectorID: id,
			Type:        dexv1.ConnectorType(typ),
			DisplayName: name,
		},
	}
	if config != nil {
		var buf bytes.Buffer
		enc := json.NewEncoder(&buf)
		enc.SetEscapeHTML(false)
		if err := enc.Encode(config); err != nil {
			im.fail(node("config"), field+".config", "cannot be written as JSON: %v", err)
			return
		}
		obj.Spec.Config = &apiextensionsv1.JSON{Raw: bytes.TrimSpace(buf.Bytes())}
	}
	entry := Entry{Field: field, Line: n.Line, ID: id, Connector: obj}
	if cw != nil && len(cw.moved) > 0 {
		entry.Secret = im.secret(objName, cw.moved)
		for _, path := range sortedKeys(cw.moved) {
			obj.Spec.Secrets = append(obj.Spec.Secrets, dexv1.ConnectorSecret{Path: path, SecretRef: dexv1.SecretKeyRef{Name: entry.Secret.Name, Key: path}})
		}
		for _, m := range cw.notes {
			im.warn(m.node, m.field, m.format, append(m.args, entry.Secret.Name)...)
		}
	}

	// The single-object rules of admission: the config as Dex's own types read it, no literal
	// secrets, injectable secret paths.
	for _, e := range webhooks.ValidateDexConnector(obj) {
		nd, src := n, field
		switch {
		case strings.HasPrefix(e.Field, "spec.config."):
			path := strings.TrimPrefix(e.Field, "spec.config.")
			nd, src = node("config"), field+".config"
			if cw != nil {
				for p := path; p != ""; p = parentPath(p) {
					if l, ok := cw.lines[p]; ok {
						nd, src = l, field+".config."+p
						break
					}
				}
			}
		case e.Field == "spec.type":
			nd, src = node("type"), field+".type"
		case e.Field == "spec.connectorId":
			nd, src = node("id"), field+".id"
		}
		im.fail(nd, src, "%s (Dexterity refuses %s: %s)", e.Detail, e.Field, e.Type)
	}
	if len(im.errs) == errsBefore {
		im.res.Entries = append(im.res.Entries, entry)
	}
}

func parentPath(p string) string {
	if i := strings.LastIndexAny(p, ".["); i > 0 {
		return p[:i]
	}
	return ""
}

// note is a warning about a moved value, finished with the Secret's name once it is known.
type note struct {
	node   *yaml.Node
	field  string
	format string // its last verb is the Secret's name
	args   []any
}

// configWalk turns a connector's config into JSON as Dex reads it, taking out into moved the
// values that belong in a Secret: the secret-bearing fields of the type (connector.SecretFields)
// and every string holding an environment reference.
type configWalk struct {
	*importer
	root    string     // the field of the config, e.g. connectors[1].config
	secrets [][]string // secret-bearing paths of the type, lower-cased segments
	moved   map[string]string
	lines   map[string]*yaml.Node // dotted path (lists as [i]) -> value node, for errors
	notes   []note
}

func (im *importer) newConfigWalk(field, typ string) *configWalk {
	w := &configWalk{importer: im, root: field, moved: map[string]string{}, lines: map[string]*yaml.Node{}}
	for _, p := range connector.SecretFields(typ) {
		w.secrets = append(w.secrets, strings.Split(strings.ToLower(p), "."))
	}
	return w
}

func (w *configWalk) isSecret(path []string) bool {
	for _, s := range w.secrets {
		if len(s) == len(path) && slices.EqualFunc(s, path, strings.EqualFold) {
			return true
		}
	}
	return false
}

// value converts node n at field. path is its place as a spec.secrets path (empty for the config
// itself, nil inside a list, where spec.secrets cannot reach), addressable says whether every segment of path is a valid
// spec.secrets segment, and live whether Dex expands environment references there (Dex expands
// strings in mappings, and in lists directly inside mappings, not deeper lists). keep is false
// when the value moved to the Secret.
func (w *configWalk) value(n *yaml.Node, field string, path []string, addressable, live bool) (v any, keep bool) {
	if n = w.deref(n); n == nil {
		w.overBudget(nil, field)
		return nil, true
	}
	if rel := strings.TrimPrefix(strings.TrimPrefix(field, w.root), "."); rel != "" {
		w.lines[rel] = n
	}
	switch n.Kind {
	case yaml.MappingNode:
		ps, ok := w.pairs(n, field)
		if !ok {
			return nil, true
		}
		m := make(map[string]any, len(ps))
		for _, p := range ps {
			var childPath []string
			if path != nil {
				childPath = append(slices.Clone(path), p.key)
			}
			v, keep := w.value(p.value, join(field, p.key), childPath, addressable && secretPathSegment.MatchString(p.key), live)
			if keep {
				m[p.key] = v
			}
		}
		return m, true
	case yaml.SequenceNode:
		l := make([]any, 0, len(n.Content))
		for i, item := range n.Content {
			item := w.deref(item)
			if item == nil {
				w.overBudget(n, field)
				return nil, true
			}
			v, _ := w.value(item, fmt.Sprintf("%s[%d]", field, i), nil, false, live && item.Kind != yaml.SequenceNode)
			l = append(l, v)
		}
		return l, true
	}
	return w.scalarValue(n, field, path, addressable, live)
}

func (w *configWalk) scalarValue(n *yaml.Node, field string, path []string, addressable, live bool) (any, bool) {
	v := scalar(n)
	secret := path != nil && w.isSecret(path)
	s, isString := v.(string)
	if !isString {
		if secret && v != nil {
			w.fail(n, field, "a secret must be a string, not %s; quote it", kindName(n))
		}
		return v, true
	}
	value, refs, unresolved := s, []string(nil), false
	if live && !w.opts.LiteralDollars {
		value = os.Expand(s, func(name string) string {
			refs = append(refs, name)
			v, looked := w.lookup(n, field, name)
			unresolved = unresolved || !looked
			return v
		})
		if len(refs) == 0 && value != s {
			w.warn(n, field, "Dex's $-expansion changes this value (a '$' that starts no variable name); imported as Dex reads it. Write $$ for a literal $")
		}
	}
	if len(refs) == 0 && (!secret || value == "") {
		return value, true
	}
	vars := "$" + strings.Join(refs, ", $")
	if path == nil || !addressable {
		where := "inside a list"
		if path != nil {
			where = "under a key that is not a letters-digits-'_'-'-' name"
		}
		if unresolved {
			w.fail(n, field, "Dex fills this value from %s at start; %s, spec.secrets cannot inject it: run the import with --expand-env where the variables are set (the value is then written into spec.config), or write the value here", vars, where)
			return nil, true
		}
		w.warn(n, field, "%s were read from this environment and written into spec.config (%s, spec.secrets cannot inject it): do not import this way if they are secret", vars, where)
		return value, true
	}
	key := strings.Join(path, ".")
	w.moved[key] = value
	switch {
	case len(refs) == 0:
		w.notes = append(w.notes, note{n, field, "the secret moved to Secret %s, key " + key + " (spec.secrets)", nil})
	case unresolved:
		w.notes = append(w.notes, note{n, field, "Dex fills this value from " + vars + " at start: Secret %s, key " + key + ", is left EMPTY; fill it in before applying (or run the import with --expand-env where the variables are set)", nil})
	default:
		w.notes = append(w.notes, note{n, field, "the value Dex builds from " + vars + " was read from this environment into Secret %s, key " + key + " (spec.secrets)", nil})
	}
	return nil, false
}
