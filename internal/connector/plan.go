package connector

import (
	"bytes"
	"encoding/json"
	"reflect"
	"strings"

	api "github.com/dexidp/dex/api/v2"
)

// Rendered is the outcome of Render: the config to send to Dex, or why there is none. At most one
// of the problem fields is set; the caller turns it into its own error shape (a field.ErrorList
// in the webhook, a blocked condition in the controller).
type Rendered struct {
	// Config is the connector config with the values injected (nil when a problem is set).
	Config []byte
	// LiteralSecrets are the config paths that hold a secret value written literally.
	LiteralSecrets []string
	// InjectErr says why a value could not be put at its spec.secrets path.
	InjectErr error
	// Invalid lists what Dex's own config type would refuse (Path "" means the type is unknown).
	Invalid []FieldError
}

// OK reports whether the config rendered.
func (r Rendered) OK() bool {
	return len(r.LiteralSecrets) == 0 && r.InjectErr == nil && len(r.Invalid) == 0
}

// Render is the one rendering of a DexConnector's config, shared by admission and the controller:
// literal secrets in raw are refused, values (spec.secrets path → value: the Secrets' values in
// the controller, placeholders in the webhook) are injected, and the result is checked against
// the Dex type typ. An empty config is {}.
func Render(typ string, raw []byte, values map[string]string) Rendered {
	if lit := LiteralSecrets(typ, raw); len(lit) > 0 {
		return Rendered{LiteralSecrets: lit}
	}
	cfg := raw
	if len(cfg) == 0 {
		cfg = []byte("{}")
	}
	cfg, err := Inject(cfg, values)
	if err != nil {
		return Rendered{InjectErr: err}
	}
	if errs := Validate(typ, cfg); len(errs) > 0 {
		return Rendered{Invalid: errs}
	}
	return Rendered{Config: cfg}
}

// Desired is the connector Dex should hold: the display name defaults to the id.
func Desired(id, typ, displayName string, config []byte) *api.Connector {
	if displayName == "" {
		displayName = id
	}
	return &api.Connector{Id: id, Type: typ, Name: displayName, Config: config}
}

// Action is what must be done in Dex to make the actual connector the desired one.
type Action int

const (
	// None: Dex already holds the desired connector.
	None Action = iota
	// Create: the connector is missing.
	Create
	// Update: UpdateConnector with the whole type, name and config (Dex needs all three).
	Update
)

func (a Action) String() string { return [...]string{"None", "Create", "Update"}[a] }

// Plan compares the actual connector in Dex (nil when missing) with the desired one; configs are
// compared as JSON values, not bytes. The reason names what differs (never the config's values).
func Plan(actual, desired *api.Connector) (Action, string) {
	if actual == nil {
		return Create, "connector missing in Dex"
	}
	var differ []string
	if actual.GetType() != desired.GetType() {
		differ = append(differ, "type")
	}
	if actual.GetName() != desired.GetName() {
		differ = append(differ, "name")
	}
	if !sameJSON(actual.GetConfig(), desired.GetConfig()) {
		differ = append(differ, "config")
	}
	if len(differ) > 0 {
		return Update, strings.Join(differ, ", ") + " differ"
	}
	return None, ""
}

// UpdateRequest is the UpdateConnector request that makes Dex hold desired.
func UpdateRequest(desired *api.Connector) *api.UpdateConnectorReq {
	return &api.UpdateConnectorReq{Id: desired.GetId(), NewType: desired.GetType(), NewName: desired.GetName(), NewConfig: desired.GetConfig()}
}

func sameJSON(a, b []byte) bool {
	var x, y any
	if json.Unmarshal(a, &x) != nil || json.Unmarshal(b, &y) != nil {
		return bytes.Equal(a, b)
	}
	return reflect.DeepEqual(x, y)
}
