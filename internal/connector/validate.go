package connector

import (
	"bytes"
	"encoding"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"reflect"
	"slices"
	"strconv"
	"strings"
)

// Validate decodes config (a JSON object; nil/empty means {}) strictly into
// the Dex config type of typ, as Dex v2.45.1 would load it (after secrets have
// been injected). It reports every unknown field (with a suggestion when a
// known field name is close) and every value of the wrong JSON type, each
// with its path. An unknown typ is one FieldError with an empty Path listing
// Types. Validate returns nil when the config is valid.
//
// Like Dex (encoding/json), field names match case-insensitively and null is
// accepted for any field. Only the shape is checked, not whether values make
// sense or servers are reachable.
func Validate(typ string, config []byte) []FieldError {
	ct, ok := lookupType(typ)
	if !ok {
		return []FieldError{unknownTypeError(typ)}
	}
	doc, errs := parseConfig(config)
	if errs != nil {
		return errs
	}

	target := ct.newConfig()
	c := &checker{}
	c.check("", doc, reflect.TypeOf(target).Elem())
	if len(c.errs) > 0 {
		return c.errs
	}

	// The walk above mirrors encoding/json; decoding into the real type with
	// the same strictness makes sure nothing slips through should the two
	// ever disagree.
	if len(bytes.TrimSpace(config)) == 0 {
		return nil
	}
	dec := json.NewDecoder(bytes.NewReader(config))
	dec.DisallowUnknownFields()
	if err := dec.Decode(target); err != nil {
		return []FieldError{decodeError(err)}
	}
	return nil
}

// parseConfig parses config generically; nil, empty and null mean {}.
func parseConfig(config []byte) (any, []FieldError) {
	if len(bytes.TrimSpace(config)) == 0 {
		return map[string]any{}, nil
	}
	doc, err := decodeGeneric(config)
	if err != nil {
		return nil, []FieldError{{Path: "", Message: "the config is not valid JSON: " + strings.TrimPrefix(err.Error(), "json: ")}}
	}
	switch doc.(type) {
	case nil:
		return map[string]any{}, nil
	case map[string]any:
		return doc, nil
	default:
		return nil, []FieldError{{Path: "", Message: "the config must be a JSON object, got " + jsonKind(doc)}}
	}
}

// decodeGeneric parses exactly one JSON value, keeping numbers as json.Number.
func decodeGeneric(data []byte) (any, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		if errors.Is(err, io.ErrUnexpectedEOF) {
			return nil, errors.New("unexpected end of JSON input")
		}
		return nil, err
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, errors.New("unexpected data after the top-level value")
	}
	return v, nil
}

var (
	jsonUnmarshalerType = reflect.TypeFor[json.Unmarshaler]()
	textUnmarshalerType = reflect.TypeFor[encoding.TextUnmarshaler]()
)

// checker walks a generically parsed JSON value alongside a Go type the way
// encoding/json would decode it, collecting every mismatch.
type checker struct {
	errs []FieldError
}

func (c *checker) fail(path, format string, args ...any) {
	c.errs = append(c.errs, FieldError{Path: path, Message: fmt.Sprintf(format, args...)})
}

func (c *checker) wrongType(path string, t reflect.Type, v any) {
	msg := fmt.Sprintf("expected %s, got %s", describe(t), jsonKind(v))
	if s, ok := v.(string); ok {
		switch kind := deref(t).Kind(); {
		case kind == reflect.Bool && isBoolWord(s):
			msg += "; write true or false without quotes"
		case isNumberKind(kind) && isNumeric(s):
			msg += "; write the number without quotes"
		case kind == reflect.Slice || kind == reflect.Array:
			msg += "; wrap the value in a list: [...]"
		}
	}
	c.fail(path, "%s", msg)
}

func (c *checker) check(path string, v any, t reflect.Type) {
	if v == nil {
		// encoding/json accepts null for every type (it leaves the value alone).
		return
	}
	if t.Kind() == reflect.Pointer {
		c.check(path, v, t.Elem())
		return
	}
	pt := reflect.PointerTo(t)
	if t.Implements(jsonUnmarshalerType) || pt.Implements(jsonUnmarshalerType) {
		// Custom decoding: left to the strict decode in Validate.
		return
	}
	if t.Implements(textUnmarshalerType) || pt.Implements(textUnmarshalerType) {
		if _, ok := v.(string); !ok {
			c.wrongType(path, t, v)
		}
		return
	}

	switch t.Kind() {
	case reflect.Interface:
		// Any JSON value fits an empty interface; nothing else appears in Dex's
		// connector configs.
	case reflect.String:
		if _, ok := v.(string); !ok {
			c.wrongType(path, t, v)
		}
	case reflect.Bool:
		if _, ok := v.(bool); !ok {
			c.wrongType(path, t, v)
		}
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		n, ok := v.(json.Number)
		if !ok {
			c.wrongType(path, t, v)
			return
		}
		if _, err := strconv.ParseInt(string(n), 10, t.Bits()); err != nil {
			c.fail(path, "expected %s, got %s", describe(t), n)
		}
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		n, ok := v.(json.Number)
		if !ok {
			c.wrongType(path, t, v)
			return
		}
		if _, err := strconv.ParseUint(string(n), 10, t.Bits()); err != nil {
			c.fail(path, "expected %s, got %s", describe(t), n)
		}
	case reflect.Float32, reflect.Float64:
		n, ok := v.(json.Number)
		if !ok {
			c.wrongType(path, t, v)
			return
		}
		if _, err := strconv.ParseFloat(string(n), t.Bits()); err != nil {
			c.fail(path, "expected %s, got %s", describe(t), n)
		}
	case reflect.Slice:
		if isBytes(t) {
			if s, ok := v.(string); ok {
				if _, err := base64.StdEncoding.DecodeString(stripNewlines(s)); err != nil {
					msg := fmt.Sprintf("expected a base64-encoded string (standard alphabet, with padding), but the value is not valid base64 (%v)", err)
					if strings.Contains(s, "-----BEGIN") {
						msg += "; the value looks like PEM: base64-encode the whole PEM text"
					}
					c.fail(path, "%s", msg)
				}
				return
			}
		}
		c.checkList(path, v, t)
	case reflect.Array:
		c.checkList(path, v, t)
	case reflect.Map:
		obj, ok := v.(map[string]any)
		if !ok {
			c.wrongType(path, t, v)
			return
		}
		for _, k := range sortedKeys(obj) {
			c.check(joinPath(path, k), obj[k], t.Elem())
		}
	case reflect.Struct:
		obj, ok := v.(map[string]any)
		if !ok {
			c.wrongType(path, t, v)
			return
		}
		fields := structFields(t)
		for _, k := range sortedKeys(obj) {
			f, ok := matchField(fields, k)
			if !ok {
				c.unknownField(path, k, fields)
				continue
			}
			c.check(joinPath(path, k), obj[k], f.typ)
		}
	default:
		// Channels, funcs and the like cannot be decoded at all; Dex's configs
		// have none. Let the strict decode report it.
	}
}

func (c *checker) checkList(path string, v any, t reflect.Type) {
	list, ok := v.([]any)
	if !ok {
		c.wrongType(path, t, v)
		return
	}
	if t.Kind() == reflect.Array && len(list) > t.Len() {
		c.fail(path, "expected at most %d elements, got %d", t.Len(), len(list))
	}
	for i, e := range list {
		c.check(fmt.Sprintf("%s[%d]", path, i), e, t.Elem())
	}
}

func (c *checker) unknownField(path, key string, fields []field) {
	where := "the config"
	if path != "" {
		where = fmt.Sprintf("%q", path)
	}
	names := make([]string, len(fields))
	for i, f := range fields {
		names[i] = f.name
	}
	msg := fmt.Sprintf("unknown field %q in %s", key, where)
	if s := suggest(key, names); s != "" {
		msg += fmt.Sprintf("; did you mean %q?", s)
	} else if len(names) == 0 {
		msg += "; this connector type takes no configuration, remove the field"
	} else {
		msg += "; known fields are: " + strings.Join(names, ", ")
	}
	c.fail(joinPath(path, key), "%s", msg)
}

// field is one JSON-visible field of a struct.
type field struct {
	name string
	typ  reflect.Type
}

// structFields lists the fields encoding/json decodes into, by JSON name:
// exported fields named by their json tag (or Go name), skipping "-", with
// the fields of untagged embedded structs promoted.
func structFields(t reflect.Type) []field {
	var fields []field
	for i := range t.NumField() {
		sf := t.Field(i)
		tag := sf.Tag.Get("json")
		if tag == "-" {
			continue
		}
		name, _, _ := strings.Cut(tag, ",")
		if sf.Anonymous && name == "" {
			ft := sf.Type
			if ft.Kind() == reflect.Pointer {
				ft = ft.Elem()
			}
			if ft.Kind() == reflect.Struct {
				fields = append(fields, structFields(ft)...)
				continue
			}
		}
		if !sf.IsExported() {
			continue
		}
		if name == "" {
			name = sf.Name
		}
		fields = append(fields, field{name: name, typ: sf.Type})
	}
	return fields
}

// matchField finds the field for a JSON key like encoding/json does: an exact
// match first, then a case-insensitive one.
func matchField(fields []field, key string) (field, bool) {
	for _, f := range fields {
		if f.name == key {
			return f, true
		}
	}
	for _, f := range fields {
		if strings.EqualFold(f.name, key) {
			return f, true
		}
	}
	return field{}, false
}

// decodeError turns an error of the strict decode into a FieldError. It is
// only reached if the walk and encoding/json disagree.
func decodeError(err error) FieldError {
	var typeErr *json.UnmarshalTypeError
	if errors.As(err, &typeErr) {
		return FieldError{Path: typeErr.Field, Message: fmt.Sprintf("expected %s, got %s", describe(typeErr.Type), typeErr.Value)}
	}
	msg := err.Error()
	if rest, ok := strings.CutPrefix(msg, "json: unknown field "); ok {
		if name, err := strconv.Unquote(rest); err == nil {
			return FieldError{Path: name, Message: fmt.Sprintf("unknown field %q", name)}
		}
	}
	return FieldError{Path: "", Message: "the config cannot be decoded: " + strings.TrimPrefix(msg, "json: ")}
}

// describe names the JSON shape a Go type expects, for messages.
func describe(t reflect.Type) string {
	t = deref(t)
	if t.Implements(textUnmarshalerType) || reflect.PointerTo(t).Implements(textUnmarshalerType) {
		return "a string"
	}
	switch t.Kind() {
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "a boolean (true or false)"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return fmt.Sprintf("an integer (%d-bit)", t.Bits())
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		return fmt.Sprintf("a non-negative integer (%d-bit)", t.Bits())
	case reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.Slice, reflect.Array:
		if isBytes(t) {
			return "a base64-encoded string"
		}
		return "a list of " + plural(t.Elem())
	case reflect.Map:
		return "an object with " + plural(t.Elem()) + " as values"
	case reflect.Struct:
		return "an object"
	case reflect.Interface:
		return "any JSON value"
	default:
		return t.String()
	}
}

func plural(t reflect.Type) string {
	d := describe(t)
	switch {
	case d == "a boolean (true or false)":
		return "booleans"
	case d == "a number":
		return "numbers"
	case strings.HasPrefix(d, "a list"):
		return "lists"
	case strings.HasPrefix(d, "an integer"), strings.HasPrefix(d, "a non-negative integer"):
		return "integers"
	case strings.HasPrefix(d, "a base64"):
		return "base64-encoded strings"
	case d == "a string":
		return "strings"
	case strings.HasPrefix(d, "an object"):
		return "objects"
	default:
		return "values of type " + d
	}
}

// jsonKind names the kind of a generically parsed JSON value, for messages.
// It deliberately never includes the value: it may be an injected secret.
func jsonKind(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case bool:
		return "a boolean"
	case json.Number, float64:
		return "a number"
	case string:
		return "a string"
	case []any:
		return "a list"
	case map[string]any:
		return "an object"
	default:
		return fmt.Sprintf("%T", v)
	}
}

func deref(t reflect.Type) reflect.Type {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	return t
}

// isBytes reports whether encoding/json treats t as []byte (base64 string).
func isBytes(t reflect.Type) bool {
	if t.Kind() != reflect.Slice || t.Elem().Kind() != reflect.Uint8 {
		return false
	}
	pe := reflect.PointerTo(t.Elem())
	return !pe.Implements(jsonUnmarshalerType) && !pe.Implements(textUnmarshalerType)
}

func isNumberKind(k reflect.Kind) bool {
	switch k {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr,
		reflect.Float32, reflect.Float64:
		return true
	}
	return false
}

func isNumeric(s string) bool {
	_, err := strconv.ParseFloat(strings.TrimSpace(s), 64)
	return err == nil
}

func isBoolWord(s string) bool {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "true", "false", "yes", "no", "on", "off", "y", "n", "1", "0":
		return true
	}
	return false
}

// stripNewlines drops \r and \n, which Go's base64 decoder ignores as well.
func stripNewlines(s string) string {
	return strings.NewReplacer("\r", "", "\n", "").Replace(s)
}

func sortedKeys(m map[string]any) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

func joinPath(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}
