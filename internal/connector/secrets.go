package connector

import "strings"

// LiteralSecrets returns the paths (as listed by SecretFields) of the
// secret-bearing fields of typ that are written literally in config with a
// non-empty value. Such values must come from Kubernetes Secrets via
// spec.secrets instead. Keys are matched case-insensitively, as Dex does.
// It returns nil for unknown types and for configs that are not JSON objects
// (Validate reports those).
func LiteralSecrets(typ string, config []byte) []string {
	ct, ok := lookupType(typ)
	if !ok || len(ct.secrets) == 0 {
		return nil
	}
	doc, errs := parseConfig(config)
	if errs != nil {
		return nil
	}
	var found []string
	for _, path := range ct.secrets {
		if hasLiteral(doc, strings.Split(path, ".")) {
			found = append(found, path)
		}
	}
	return found
}

// hasLiteral reports whether a non-empty value sits at path in v. Like
// encoding/json, every key equal to a path segment under case folding
// counts.
func hasLiteral(v any, path []string) bool {
	if len(path) == 0 {
		switch x := v.(type) {
		case nil:
			return false
		case string:
			return x != ""
		default:
			// A number, list or object in a secret field is wrong in itself
			// (Validate says so), but it is still a literal value.
			return true
		}
	}
	obj, ok := v.(map[string]any)
	if !ok {
		return false
	}
	for k, child := range obj {
		if strings.EqualFold(k, path[0]) && hasLiteral(child, path[1:]) {
			return true
		}
	}
	return false
}
