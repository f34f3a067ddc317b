package registry

import (
	"fmt"
	"path"
	"strings"

	"dexterity.dev/dexterity/internal/authz"
)

// resourceKind is what a request asks for.
type resourceKind int

const (
	kindModule resourceKind = iota
	kindProvider
)

func (k resourceKind) String() string {
	if k == kindProvider {
		return "provider"
	}
	return "module"
}

// resource is the registry object a request names: a module <namespace>/<name>/<system> or a
// provider <namespace>/<type>.
type resource struct {
	kind    resourceKind
	address string // namespace/name/system or namespace/type
	name    string // the module name or the provider type
}

// decision is the outcome of GroupBinding evaluation.
type decision struct {
	allowed bool
	binding string // the binding that decided, "" when none did
	reason  string // stable label: granted, not_granted, no_match, expression_error
	message string // for the client
}

// authorize evaluates the namespace's bindings, sorted by name, for groups: the first binding
// whose expression is true decides (allowed when one of its patterns matches the resource); a
// binding that failed to compile or fails to evaluate denies; no true expression denies.
func authorize(bindings []*binding, groups []string, res resource) decision {
	for _, b := range bindings {
		if b.compileErr != nil {
			return decision{binding: b.name, reason: "expression_error",
				message: fmt.Sprintf("GroupBinding %s has an invalid expression; access is denied until it is fixed", b.name)}
		}
		ok, err := authz.Evaluate(b.program, groups)
		if err != nil {
			return decision{binding: b.name, reason: "expression_error",
				message: fmt.Sprintf("GroupBinding %s failed to evaluate; access is denied until it is fixed", b.name)}
		}
		if !ok {
			continue
		}
		patterns := b.modules
		if res.kind == kindProvider {
			patterns = b.providers
		}
		if matchesAny(patterns, res) {
			return decision{allowed: true, binding: b.name, reason: "granted"}
		}
		return decision{binding: b.name, reason: "not_granted",
			message: fmt.Sprintf("GroupBinding %s matches your groups but does not grant %s %s", b.name, res.kind, res.address)}
	}
	return decision{reason: "no_match", message: "no GroupBinding of this registry matches your groups"}
}

// matchesAny reports whether one of patterns matches res. Patterns are path.Match globs
// ("*", "?", "[...]"; "*" does not cross "/"):
//   - without "/", a pattern matches the module name (or the provider type);
//   - with "/", it matches the address segment by segment, and a pattern of fewer segments
//     matches every address it is a prefix of: "team-a/*" grants every module and provider of
//     registry namespace team-a, "team-a/network" every system of module team-a/network.
func matchesAny(patterns []string, res resource) bool {
	for _, p := range patterns {
		if matchPattern(p, res) {
			return true
		}
	}
	return false
}

func matchPattern(p string, res resource) bool {
	if !strings.Contains(p, "/") {
		ok, err := path.Match(p, res.name)
		return err == nil && ok
	}
	ps, as := strings.Split(p, "/"), strings.Split(res.address, "/")
	if len(ps) > len(as) {
		return false
	}
	for i, seg := range ps {
		if ok, err := path.Match(seg, as[i]); err != nil || !ok {
			return false
		}
	}
	return true
}
