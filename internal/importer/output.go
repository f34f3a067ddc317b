package importer

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"

	"sigs.k8s.io/yaml"
)

// Manifests writes the objects as YAML documents for `kubectl apply -f -`, in file order, each
// Secret before the object that reads it, with a comment naming where each came from. The output
// depends on the input only.
func (r *Result) Manifests() ([]byte, error) {
	var buf bytes.Buffer
	for _, e := range r.Entries {
		var objs []any
		if e.Secret != nil {
			objs = append(objs, e.Secret)
		}
		if e.Client != nil {
			objs = append(objs, e.Client)
		} else {
			objs = append(objs, e.Connector)
		}
		for _, o := range objs {
			doc, err := manifest(o)
			if err != nil {
				return nil, fmt.Errorf("failed to write the manifest of %s: %w", e.Field, err)
			}
			fmt.Fprintf(&buf, "---\n# %s (line %d), id %s\n", e.Field, e.Line, e.ID)
			buf.Write(doc)
		}
	}
	return buf.Bytes(), nil
}

// manifest is the YAML of one object without what only the API server writes (status,
// creationTimestamp).
func manifest(o any) ([]byte, error) {
	raw, err := json.Marshal(o)
	if err != nil {
		return nil, err
	}
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil, err
	}
	delete(m, "status")
	if md, ok := m["metadata"].(map[string]any); ok {
		delete(md, "creationTimestamp")
	}
	return yaml.Marshal(m)
}

// Counts returns how many DexStaticClients, DexConnectors and Secrets the result holds.
func (r *Result) Counts() (clients, connectors, secrets int) {
	for _, e := range r.Entries {
		if e.Client != nil {
			clients++
		} else {
			connectors++
		}
		if e.Secret != nil {
			secrets++
		}
	}
	return clients, connectors, secrets
}

// Steps are the steps of the move, for the user (stderr): apply, remove the entries from Dex's
// config, restart Dex, let the operator register them. file is the config's path as given.
func (r *Result) Steps(file string, opts Options) string {
	clients, connectors, secrets := r.Counts()
	var b strings.Builder
	fmt.Fprintf(&b, "Imported %d static clients and %d connectors (%d Secrets). To move them to Dexterity:\n", clients, connectors, secrets)
	ns := ""
	if opts.Namespace != "" {
		ns = " -n " + opts.Namespace
	}
	step := 0
	next := func(format string, args ...any) {
		step++
		fmt.Fprintf(&b, "  %d. "+format+"\n", append([]any{step}, args...)...)
	}
	for _, w := range r.Warnings {
		if strings.Contains(w.Message, "left EMPTY") {
			next("Fill in the Secret values left empty (the warnings above name them): Dexterity registers nothing from an empty value.")
			break
		}
	}
	provider := opts.Provider.Name
	if provider == "" {
		provider = "dex"
	}
	if opts.Provider.Namespace != "" {
		provider = opts.Provider.Namespace + "/" + provider
	}
	next("Check that OIDCProvider %s (spec.dex pointing at this Dex) is Ready, and that Dex runs with DEX_API_CONNECTORS_CRUD=true if you import connectors.", provider)
	next("Apply the manifests: dexterity import -f %s ... | kubectl apply%s -f -\n"+
		"     Until step %d the objects say Ready=False, reason ClientExistsInDex or ConnectorExistsInDex:\n"+
		"     the ids are still in Dex's config, and Dexterity leaves them untouched.", file, ns, step+3)
	ids := make([]string, 0, len(r.Entries))
	for _, e := range r.Entries {
		ids = append(ids, e.Field+" ("+e.ID+")")
	}
	if len(ids) > 0 {
		next("Remove these entries from Dex's config (or the Helm values' config): %s.", strings.Join(ids, ", "))
	}
	next("Restart Dex (e.g. kubectl rollout restart deployment/dex, or helm upgrade). Dex then no longer holds them.")
	next("The operator registers them through Dex's API: at once when it sees Dex back, at the latest at the next resync (--dex-resync-period). Verify: kubectl get dexstaticclients,dexconnectors%s (Ready=True), then log in through each client.", ns)
	return b.String()
}
