package connector

import (
	"testing"

	api "github.com/dexidp/dex/api/v2"
)

func TestPlan(t *testing.T) {
	desired := Desired("gh", "github", "", []byte(`{"clientID":"a","orgs":[{"name":"x"}]}`))
	if desired.GetName() != "gh" {
		t.Fatalf("display name defaults to the id, got %q", desired.GetName())
	}
	for _, c := range []struct {
		name   string
		actual *api.Connector
		want   Action
		why    string
	}{
		{"missing", nil, Create, "connector missing in Dex"},
		{"same, keys in another order and spaced", &api.Connector{Id: "gh", Type: "github", Name: "gh", Config: []byte(`{ "orgs": [{"name": "x"}], "clientID": "a" }`)}, None, ""},
		{"config differs", &api.Connector{Id: "gh", Type: "github", Name: "gh", Config: []byte(`{"clientID":"b"}`)}, Update, "config differ"},
		{"type and name differ", &api.Connector{Id: "gh", Type: "gitlab", Name: "GitHub", Config: desired.Config}, Update, "type, name differ"},
	} {
		t.Run(c.name, func(t *testing.T) {
			got, why := Plan(c.actual, desired)
			if got != c.want || why != c.why {
				t.Fatalf("Plan = %s (%q), want %s (%q)", got, why, c.want, c.why)
			}
		})
	}
	req := UpdateRequest(desired)
	if req.GetNewType() != "github" || req.GetNewName() != "gh" || string(req.GetNewConfig()) != string(desired.Config) {
		t.Fatalf("UpdateRequest must carry the whole connector (Dex needs it): %+v", req)
	}
}

func TestRenderSharedByAdmissionAndController(t *testing.T) {
	if r := Render("github", []byte(`{"clientID":"a","clientSecret":"s3cret"}`), nil); len(r.LiteralSecrets) != 1 || r.OK() {
		t.Fatalf("literal secret not refused: %+v", r)
	}
	r := Render("github", []byte(`{"clientID":"a"}`), map[string]string{"clientSecret": "from-a-secret"})
	if !r.OK() || string(r.Config) == "" {
		t.Fatalf("render failed: %+v", r)
	}
	if r := Render("github", []byte(`{"clientID":"a","orgz":[]}`), nil); len(r.Invalid) == 0 {
		t.Fatalf("unknown field accepted: %+v", r)
	}
	if r := Render("github", nil, nil); !r.OK() || string(r.Config) != "{}" {
		t.Fatalf("empty config renders as {}: %+v", r)
	}
}
