package manage

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/thauth/thauth"
)

// specExample is the example of the spec (config-document.md), completed so that every
// reference resolves.
const specExample = `version: 1
features:
  - name: billing
    description: Billing and invoices      # optional
    actions: [read, write, refund]
  - name: reports
    actions: [export]
roles:
  - name: billing-admin
    description: Can manage billing        # optional
    permissions:
      - {feature: billing, action: read}
      - {feature: billing, action: refund, resource: "invoices/*"}
  - name: analyst
    permissions: [{feature: reports, action: export}]
subjects:
  - id: "user:alice"
    type: user
    roles:
      - {role: billing-admin}
      - {role: analyst, tenant: tenant_acme, valid_until: "2027-01-01T00:00:00Z"}
    overrides:
      - {feature: reports, action: export, effect: deny, tenant: tenant_acme, resource: "prod/*"}
      - {feature: billing, action: refund, effect: allow, valid_from: "2026-12-01T00:00:00Z", valid_until: "2026-12-08T00:00:00Z"}
`

const specExampleJSON = `{
  "version": 1,
  "features": [
    {"name": "billing", "description": "Billing and invoices", "actions": ["read", "write", "refund"]},
    {"name": "reports", "actions": ["export"]}
  ],
  "roles": [
    {"name": "billing-admin", "description": "Can manage billing", "permissions": [
      {"feature": "billing", "action": "read"},
      {"feature": "billing", "action": "refund", "resource": "invoices/*"}]},
    {"name": "analyst", "permissions": [{"feature": "reports", "action": "export"}]}
  ],
  "subjects": [
    {"id": "user:alice", "type": "user",
     "roles": [{"role": "billing-admin"},
               {"role": "analyst", "tenant": "tenant_acme", "valid_until": "2027-01-01T00:00:00Z"}],
     "overrides": [
       {"feature": "reports", "action": "export", "effect": "deny", "tenant": "tenant_acme", "resource": "prod/*"},
       {"feature": "billing", "action": "refund", "effect": "allow", "valid_from": "2026-12-01T00:00:00Z", "valid_until": "2026-12-08T00:00:00Z"}]}
  ]
}`

func tp(s string) *time.Time {
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		panic(err)
	}
	return &t
}

func TestParseDocumentSpecExample(t *testing.T) {
	want := &document{
		Features: []docFeature{
			{Name: "billing", Description: "Billing and invoices", Actions: []string{"read", "write", "refund"}},
			{Name: "reports", Actions: []string{"export"}},
		},
		Roles: []docRole{
			{Name: "billing-admin", Description: "Can manage billing", Permissions: []docPermission{
				{Feature: "billing", Action: "read"},
				{Feature: "billing", Action: "refund", Resource: "invoices/*"},
			}},
			{Name: "analyst", Permissions: []docPermission{{Feature: "reports", Action: "export"}}},
		},
		Subjects: []docSubject{{
			ID: "user:alice", Type: "user",
			Roles: []docAssignment{
				{Role: "billing-admin"},
				{Role: "analyst", Tenant: "tenant_acme", ValidUntil: tp("2027-01-01T00:00:00Z")},
			},
			Overrides: []docOverride{
				{Feature: "reports", Action: "export", Effect: thauth.Deny, Tenant: "tenant_acme", Resource: "prod/*"},
				{Feature: "billing", Action: "refund", Effect: thauth.Allow, ValidFrom: tp("2026-12-01T00:00:00Z"), ValidUntil: tp("2026-12-08T00:00:00Z")},
			},
		}},
		HasSubjects: true,
	}
	for _, tc := range []struct {
		name string
		f    Format
		body string
	}{
		{"yaml", FormatYAML, specExample},
		{"json", FormatJSON, specExampleJSON},
		{"json read as yaml", FormatYAML, specExampleJSON},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseDocument([]byte(tc.body), tc.f)
			if err != nil {
				t.Fatalf("parseDocument: %v (%+v)", err, problemsOf(err))
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("document (-want +got):\n%s", diff)
			}
		})
	}
}

// TestRenderRoundTrip checks that both renderings parse back to the same document.
func TestRenderRoundTrip(t *testing.T) {
	doc, err := parseDocument([]byte(specExample), FormatYAML)
	if err != nil {
		t.Fatal(err)
	}
	// Values that YAML could mistake for other types must survive rendering.
	doc.Features = append(doc.Features, docFeature{Name: "yes", Description: "multi\nline: text # not a comment", Actions: []string{"1", "true", "null", "no", "1e3", "0x10"}})
	doc.Subjects = append(doc.Subjects, docSubject{ID: "123", Type: "null", Roles: []docAssignment{{Role: "analyst", Tenant: "~"}}})
	for _, f := range []Format{FormatJSON, FormatYAML} {
		t.Run(string(f), func(t *testing.T) {
			out, err := render(doc, f)
			if err != nil {
				t.Fatal(err)
			}
			back, err := parseDocument(out, f)
			if err != nil {
				t.Fatalf("parse rendered: %v %+v\n%s", err, problemsOf(err), out)
			}
			if diff := cmp.Diff(doc, back); diff != "" {
				t.Errorf("round trip (-want +got):\n%s\n%s", diff, out)
			}
		})
	}
}

func TestRenderYAMLStyle(t *testing.T) {
	doc, err := parseDocument([]byte(specExample), FormatYAML)
	if err != nil {
		t.Fatal(err)
	}
	out, err := render(doc, FormatYAML)
	if err != nil {
		t.Fatal(err)
	}
	want := `version: 1
features:
  - name: billing
    description: Billing and invoices
    actions: [read, write, refund]
  - name: reports
    actions: [export]
roles:
  - name: billing-admin
    description: Can manage billing
    permissions:
      - {feature: billing, action: read}
      - {feature: billing, action: refund, resource: invoices/*}
  - name: analyst
    permissions:
      - {feature: reports, action: export}
subjects:
  - id: user:alice
    type: user
    roles:
      - {role: billing-admin}
      - {role: analyst, tenant: tenant_acme, valid_until: "2027-01-01T00:00:00Z"}
    overrides:
      - {feature: reports, action: export, effect: deny, tenant: tenant_acme, resource: prod/*}
      - {feature: billing, action: refund, effect: allow, valid_from: "2026-12-01T00:00:00Z", valid_until: "2026-12-08T00:00:00Z"}
`
	if diff := cmp.Diff(want, string(out)); diff != "" {
		t.Errorf("YAML (-want +got):\n%s", diff)
	}
}

func problemsOf(err error) []thauth.Problem {
	var te *thauth.Error
	if errors.As(err, &te) {
		return te.Problems
	}
	return nil
}

// base is a valid document the problem cases extend; its features are billing (read,
// write) and reports (export), its role is admin.
const base = `version: 1
features:
  - {name: billing, actions: [read, write]}
  - {name: reports, actions: [export]}
roles:
  - name: admin
    permissions: [{feature: billing, action: read}]
`

// P is a problem in the tables (a local type, so its literals may be unkeyed).
type P struct{ Path, Message string }

func asP(ps []thauth.Problem) []P {
	out := make([]P, len(ps))
	for i, p := range ps {
		out[i] = P(p)
	}
	return out
}

func TestParseDocumentProblems(t *testing.T) {
	tests := []struct {
		name string
		f    Format
		body string
		want []P
	}{
		// Structure.
		{"empty document", FormatYAML, "", []P{{"", "the document is empty"}}},
		{"comment only", FormatYAML, "# nothing\n", []P{{"", "the document is empty"}}},
		{"root is a list", FormatYAML, "- a\n", []P{{"", "must be a mapping, not a list"}}},
		{"root is a string (JSON)", FormatJSON, `"x"`, []P{{"", "must be a mapping, not a string"}}},
		{"malformed YAML", FormatYAML, "version: 1\nfeatures: [a\n", []P{{"", "malformed YAML: line 1: did not find expected ',' or ']'"}}},
		{"malformed YAML indentation", FormatYAML, "version: 1\nfeatures:\n  - name: a\n actions: [read]\n", []P{{"", "malformed YAML: line 3: did not find expected key"}}},
		{"malformed JSON", FormatJSON, "{\n  \"version\": 1,\n  \"features\": [}\n}", []P{{"", "malformed JSON at line 3, column 16: invalid character '}' looking for beginning of value"}}},
		{"JSON trailing data", FormatJSON, `{"version": 1} {}`, []P{{"", "malformed JSON at line 1, column 16: invalid character '{' after top-level value"}}},
		{"two YAML documents", FormatYAML, "version: 1\n---\nversion: 1\n", []P{{"", "malformed YAML: the input holds more than one document"}}},

		// Unknown keys.
		{"unknown root key", FormatYAML, base + "colour: red\n", []P{{"colour", "unknown key (expected version, features, roles, subjects)"}}},
		{"unknown feature key", FormatYAML, "version: 1\nfeatures:\n  - {name: a}\n  - {name: b, actoins: [read]}\n",
			[]P{{"features[1].actoins", "unknown key (expected name, description, actions)"}}},
		{"unknown permission key", FormatYAML, base + "  - {name: r, permissions: [{feature: billing, action: read, effect: allow}]}\n",
			[]P{{"roles[1].permissions[0].effect", "unknown key (expected feature, action, resource)"}}},
		{"unknown subject key", FormatJSON, `{"version": 1, "subjects": [{"id": "u", "type": "user", "name": "x"}]}`,
			[]P{{"subjects[0].name", "unknown key (expected id, type, roles, overrides)"}}},

		// Duplicate keys.
		{"duplicate key YAML", FormatYAML, "version: 1\nversion: 1\n", []P{{"version", "duplicate key"}}},
		{"duplicate key JSON", FormatJSON, `{"version": 1, "features": [{"name": "a", "name": "b"}]}`, []P{{"features[0].name", "duplicate key"}}},

		// Types.
		{"features not a list", FormatYAML, "version: 1\nfeatures: billing\n", []P{{"features", "must be a list, not a string"}}},
		{"feature not a mapping", FormatYAML, "version: 1\nfeatures: [billing]\n", []P{{"features[0]", "must be a mapping, not a string"}}},
		{"action a number", FormatYAML, "version: 1\nfeatures:\n  - {name: a, actions: [read]}\n  - {name: b, actions: [1, read]}\n",
			[]P{{"features[1].actions[0]", "must be a string, not a number (quote it)"}}},
		{"action a boolean", FormatYAML, "version: 1\nfeatures: [{name: a, actions: [read, true]}]\n",
			[]P{{"features[0].actions[1]", "must be a string, not a boolean (quote it)"}}},
		{"action a JSON number", FormatJSON, `{"version": 1, "features": [{"name": "a", "actions": [2]}]}`,
			[]P{{"features[0].actions[0]", "must be a string, not a number (quote it)"}}},
		{"name a mapping", FormatYAML, "version: 1\nroles: [{name: {a: b}}]\n", []P{{"roles[0].name", "must be a string, not a mapping"}}},
		{"name null", FormatYAML, "version: 1\nroles: [{name: null}]\n", []P{{"roles[0].name", "must be a string, not null"}}},
		{"subjects null", FormatYAML, "version: 1\nsubjects:\n",
			[]P{{"subjects", "must be a list: use [] to delete every subject, or leave the key out to keep subjects as they are"}}},
		{"custom tag", FormatYAML, "version: 1\nroles: [{name: !foo bar}]\n", []P{{"roles[0].name", "must be a string, not a value tagged !foo"}}},
		{"complex key", FormatYAML, "version: 1\n? [a]\n: b\n", []P{{"", "has a key that is a complex key; keys must be strings"}}},

		// Required keys.
		{"version missing", FormatYAML, "features: []\n", []P{{"version", "is required (version: 1)"}}},
		{"feature name missing", FormatYAML, "version: 1\nfeatures: [{actions: [read]}]\n", []P{{"features[0].name", "is required"}}},
		{"permission action missing", FormatYAML, base + "  - {name: r, permissions: [{feature: billing}]}\n",
			[]P{{"roles[1].permissions[0].action", "is required"}}},
		{"subject id and type missing", FormatYAML, base + "subjects: [{roles: []}]\n",
			[]P{{"subjects[0].id", "is required"}, {"subjects[0].type", "is required"}}},
		{"assignment role missing", FormatYAML, base + "subjects: [{id: u, type: user, roles: [{tenant: t}]}]\n",
			[]P{{"subjects[0].roles[0].role", "is required"}}},
		{"override effect missing", FormatYAML, base + "subjects: [{id: u, type: user, overrides: [{feature: billing, action: read}]}]\n",
			[]P{{"subjects[0].overrides[0].effect", "is required"}}},

		// Version.
		{"version 2", FormatYAML, "version: 2\n", []P{{"version", "unsupported version 2 (this server reads version 1)"}}},
		{"version 1.0", FormatJSON, `{"version": 1.0}`, []P{{"version", "unsupported version 1.0 (this server reads version 1)"}}},
		{"version a string", FormatYAML, "version: \"1\"\n", []P{{"version", "must be the number 1, not a string"}}},

		// Names.
		{"bad feature name", FormatYAML, "version: 1\nfeatures: [{name: bill ing}]\n",
			[]P{{"features[0].name", `invalid name "bill ing": may only contain letters, digits and _ - . :`}}},
		{"bad action name", FormatYAML, "version: 1\nfeatures: [{name: a, actions: [read]}, {name: b, actions: [-x]}]\n",
			[]P{{"features[1].actions[0]", `invalid name "-x": must start with a letter or digit`}}},
		{"empty role name", FormatYAML, "version: 1\nroles: [{name: \"\"}]\n", []P{{"roles[0].name", `invalid name "": must not be empty`}}},
		{"long role name", FormatYAML, "version: 1\nroles: [{name: " + strings.Repeat("r", 65) + "}]\n",
			[]P{{"roles[0].name", `invalid name "` + strings.Repeat("r", 65) + `": must be at most 64 characters`}}},
		{"bad description", FormatJSON, `{"version": 1, "roles": [{"name": "r", "description": "a\u0007b"}]}`,
			[]P{{"roles[0].description", "must not contain control characters other than newline and tab"}}},

		// Subject ids, types, tenants.
		{"empty subject id", FormatYAML, base + "subjects: [{id: \"\", type: user}]\n", []P{{"subjects[0].id", "must not be empty"}}},
		{"control character in type", FormatJSON, `{"version": 1, "subjects": [{"id": "u", "type": "us\u0001er"}]}`,
			[]P{{"subjects[0].type", "must not contain control characters"}}},
		{"invalid UTF-8 in id", FormatJSON, "{\"version\": 1, \"subjects\": [{\"id\": \"u\xff\", \"type\": \"user\"}]}",
			[]P{{"subjects[0].id", "must be valid UTF-8"}}},
		{"empty tenant", FormatYAML, base + "subjects: [{id: u, type: user, roles: [{role: admin, tenant: \"\"}]}]\n",
			[]P{{"subjects[0].roles[0].tenant", "must not be empty"}}},

		// Resources and effects.
		{"bad permission resource", FormatYAML, base + "  - {name: r, permissions: [{feature: billing, action: read, resource: \"a//b\"}]}\n",
			[]P{{"roles[1].permissions[0].resource", `invalid resource pattern "a//b": must not contain an empty path segment`}}},
		{"star not final", FormatYAML, base + "subjects: [{id: u, type: user, overrides: [{feature: billing, action: read, effect: deny, resource: \"a/*/b\"}]}]\n",
			[]P{{"subjects[0].overrides[0].resource", `invalid resource pattern "a/*/b": may contain "*" only as the whole final segment`}}},
		{"bad effect", FormatYAML, base + "subjects: [{id: u, type: user, overrides: [{feature: billing, action: read, effect: maybe}]}]\n",
			[]P{{"subjects[0].overrides[0].effect", `must be allow or deny, not "maybe"`}}},

		// Timestamps.
		{"date only", FormatYAML, base + "subjects: [{id: u, type: user, roles: [{role: admin, valid_from: 2027-01-01}]}]\n",
			[]P{{"subjects[0].roles[0].valid_from", `invalid timestamp "2027-01-01": must be RFC 3339, like 2026-12-01T00:00:00Z`}}},
		{"not a time", FormatYAML, base + "subjects: [{id: u, type: user, overrides: [{feature: billing, action: read, effect: allow, valid_until: tomorrow}]}]\n",
			[]P{{"subjects[0].overrides[0].valid_until", `invalid timestamp "tomorrow": must be RFC 3339, like 2026-12-01T00:00:00Z`}}},
		{"empty window", FormatYAML, base + "subjects: [{id: u, type: user, roles: [{role: admin, valid_from: \"2027-01-01T00:00:00Z\", valid_until: \"2027-01-01T01:00:00+01:00\"}]}]\n",
			[]P{{"subjects[0].roles[0].valid_until", "must be later than valid_from"}}},

		// Duplicates.
		{"unknown key close to a known one", FormatYAML, base + "features2: x\n", []P{{"features2", "unknown key (expected version, features, roles, subjects)"}}},
		{"duplicate feature name", FormatYAML, "version: 1\nfeatures: [{name: a}, {name: b}, {name: a}]\n",
			[]P{{"features[2].name", `duplicate feature "a" (also features[0])`}}},
		{"duplicate action", FormatYAML, "version: 1\nfeatures: [{name: a, actions: [read, write, read]}]\n",
			[]P{{"features[0].actions[2]", `duplicate action "read" (also actions[0])`}}},
		{"duplicate role", FormatYAML, base + "  - {name: admin}\n", []P{{"roles[1].name", `duplicate role "admin" (also roles[0])`}}},
		{"duplicate permission", FormatYAML, base + "  - {name: r, permissions: [{feature: billing, action: read}, {feature: billing, action: write}, {action: read, feature: billing}]}\n",
			[]P{{"roles[1].permissions[2]", "duplicate permission (same as permissions[0])"}}},
		{"duplicate subject", FormatYAML, base + "subjects: [{id: u, type: user}, {id: v, type: user}, {id: u, type: service}]\n",
			[]P{{"subjects[2].id", `duplicate subject "u" (also subjects[0])`}}},
		{"duplicate assignment", FormatYAML, base + "subjects: [{id: u, type: user, roles: [{role: admin, tenant: t}, {role: admin}, {tenant: t, role: admin}]}]\n",
			[]P{{"subjects[0].roles[2]", "duplicate assignment (same as roles[0])"}}},
		{"duplicate override", FormatYAML, base + "subjects: [{id: u, type: user, overrides: [{feature: billing, action: read, effect: deny}, {feature: billing, action: read, effect: allow}, {feature: billing, action: read, effect: deny}]}]\n",
			[]P{{"subjects[0].overrides[2]", "duplicate override (same as overrides[0])"}}},

		// Unknown references.
		{"permission names a missing feature", FormatYAML, base + "  - {name: r, permissions: [{feature: billing, action: read}, {feature: invoices, action: read}]}\n",
			[]P{{"roles[1].permissions[1].feature", `unknown feature "invoices"`}}},
		{"permission names a missing action", FormatYAML, base + "  - {name: r, permissions: [{feature: billing, action: read}, {feature: billing, action: refund}, {feature: reports, action: read}]}\n",
			[]P{
				{"roles[1].permissions[1].action", `unknown action "refund": feature "billing" has no such action`},
				{"roles[1].permissions[2].action", `unknown action "read": feature "reports" has no such action`},
			}},
		{"assignment names a missing role", FormatYAML, base + "subjects: [{id: u, type: user, roles: [{role: admin}, {role: root}]}]\n",
			[]P{{"subjects[0].roles[1].role", `unknown role "root"`}}},
		{"override names a missing feature and action", FormatYAML, base + "subjects: [{id: u, type: user, overrides: [{feature: x, action: read, effect: deny}, {feature: reports, action: read, effect: deny}]}]\n",
			[]P{
				{"subjects[0].overrides[0].feature", `unknown feature "x"`},
				{"subjects[0].overrides[1].action", `unknown action "read": feature "reports" has no such action`},
			}},

		// YAML specifics.
		{"alias", FormatYAML, "version: 1\nfeatures:\n  - &f {name: a}\n  - *f\n", []P{{"features[1]", "must be a mapping, not a YAML alias (aliases are not allowed)"}}},
		{"merge key", FormatYAML, "version: 1\nfeatures:\n  - &f {name: a}\n  - {<<: *f, name: b}\n",
			[]P{{"features[1].<<", "unknown key (expected name, description, actions)"}}},

		// Several problems at once: all of them, in document order by section.
		{"several problems", FormatYAML, `version: 3
features:
  - {name: billing, actions: [read, read]}
  - {name: "bad name"}
roles:
  - {name: admin, permissions: [{feature: nope, action: read}], extra: 1}
subjects:
  - {id: u, type: user, roles: [{role: ghost}], overrides: [{feature: billing, action: read, effect: perhaps}]}
  - {id: u, type: ""}
`, []P{
			{"version", "unsupported version 3 (this server reads version 1)"},
			{"features[0].actions[1]", `duplicate action "read" (also actions[0])`},
			{"features[1].name", `invalid name "bad name": may only contain letters, digits and _ - . :`},
			{"roles[0].extra", "unknown key (expected name, description, permissions)"},
			{"roles[0].permissions[0].feature", `unknown feature "nope"`},
			{"subjects[0].roles[0].role", `unknown role "ghost"`},
			{"subjects[0].overrides[0].effect", `must be allow or deny, not "perhaps"`},
			{"subjects[1].id", `duplicate subject "u" (also subjects[0])`},
			{"subjects[1].type", "must not be empty"},
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			doc, err := parseDocument([]byte(tc.body), tc.f)
			if err == nil {
				t.Fatalf("parseDocument accepted the document: %+v", doc)
			}
			var te *thauth.Error
			if !errors.As(err, &te) || te.Code != thauth.EInvalid {
				t.Fatalf("error = %v, want an EInvalid *thauth.Error", err)
			}
			if diff := cmp.Diff(tc.want, asP(te.Problems)); diff != "" {
				t.Errorf("problems (-want +got):\n%s", diff)
			}
			wantMsg := "the configuration document has 1 problem"
			if len(tc.want) > 1 {
				wantMsg = "the configuration document has " + itoa(len(tc.want)) + " problems"
			}
			if te.Message != wantMsg {
				t.Errorf("message = %q, want %q", te.Message, wantMsg)
			}
		})
	}
}

func TestParseDocumentAccepts(t *testing.T) {
	tests := []struct {
		name string
		f    Format
		body string
		want *document
	}{
		{"minimal", FormatYAML, "version: 1\n", &document{Features: []docFeature{}, Roles: []docRole{}}},
		{"null lists", FormatYAML, "version: 1\nfeatures:\nroles: ~\n", &document{Features: []docFeature{}, Roles: []docRole{}}},
		{"empty subjects", FormatJSON, `{"version": 1, "subjects": []}`,
			&document{Features: []docFeature{}, Roles: []docRole{}, Subjects: []docSubject{}, HasSubjects: true}},
		// yaml.v3 reads YAML 1.2: yes, no, on, off are strings.
		{"yes stays a string", FormatYAML, "version: 1\nfeatures: [{name: f, actions: [read, yes, no, on, off, y]}]\n",
			&document{Features: []docFeature{{Name: "f", Actions: []string{"read", "yes", "no", "on", "off", "y"}}}, Roles: []docRole{}}},
		{"quoted numbers are names", FormatYAML, "version: 1\nfeatures: [{name: \"404\", actions: [\"1\", !!str 2]}]\n",
			&document{Features: []docFeature{{Name: "404", Actions: []string{"1", "2"}}}, Roles: []docRole{}}},
		{"null optional scalars", FormatYAML, "version: 1\nfeatures: [{name: f, description: null, actions: [a]}]\nroles: [{name: r, permissions: [{feature: f, action: a, resource: ~}]}]\n",
			&document{Features: []docFeature{{Name: "f", Actions: []string{"a"}}}, Roles: []docRole{{Name: "r", Permissions: []docPermission{{Feature: "f", Action: "a"}}}}}},
		{"unquoted timestamps, offsets and nanoseconds", FormatYAML, "version: 1\nroles: [{name: r}]\nsubjects: [{id: u, type: user, roles: [{role: r, valid_from: 2027-01-01T01:00:00.1234567+01:00}]}]\n",
			&document{Features: []docFeature{}, Roles: []docRole{{Name: "r"}}, HasSubjects: true,
				Subjects: []docSubject{{ID: "u", Type: "user", Roles: []docAssignment{{Role: "r", ValidFrom: tp("2027-01-01T00:00:00.123456Z")}}}}}},
		{"same grant in two tenants", FormatYAML, "version: 1\nroles: [{name: r}]\nsubjects: [{id: u, type: user, roles: [{role: r}, {role: r, tenant: t}]}]\n",
			&document{Features: []docFeature{}, Roles: []docRole{{Name: "r"}}, HasSubjects: true,
				Subjects: []docSubject{{ID: "u", Type: "user", Roles: []docAssignment{{Role: "r"}, {Role: "r", Tenant: "t"}}}}}},
		{"escaped JSON strings", FormatJSON, `{"version": 1, "features": [{"name": "f\u0031", "description": "caf\u00e9 \"x\"\n"}]}`,
			&document{Features: []docFeature{{Name: "f1", Description: "café \"x\"\n"}}, Roles: []docRole{}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseDocument([]byte(tc.body), tc.f)
			if err != nil {
				t.Fatalf("parseDocument: %v %+v", err, problemsOf(err))
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("document (-want +got):\n%s", diff)
			}
		})
	}
}

func TestParseDocumentLimits(t *testing.T) {
	t.Run("too large", func(t *testing.T) {
		_, err := parseDocument(make([]byte, maxDocumentBytes+1), FormatJSON)
		if thauth.ErrorCodeOf(err) != thauth.ETooLarge {
			t.Fatalf("error = %v, want ETooLarge", err)
		}
	})
	t.Run("unknown format", func(t *testing.T) {
		_, err := parseDocument([]byte("{}"), "xml")
		if thauth.ErrorCodeOf(err) != thauth.EUnsupported {
			t.Fatalf("error = %v, want EUnsupported", err)
		}
	})
	deep := []struct {
		name string
		f    Format
		body string
	}{
		{"deep JSON", FormatJSON, `{"version": 1, "x": ` + strings.Repeat("[", 5000) + strings.Repeat("]", 5000) + "}"},
		{"deep YAML", FormatYAML, "version: 1\nx: " + strings.Repeat("[", 5000) + strings.Repeat("]", 5000) + "\n"},
	}
	for _, tc := range deep {
		t.Run(tc.name, func(t *testing.T) {
			_, err := parseDocument([]byte(tc.body), tc.f)
			want := []thauth.Problem{{Path: "", Message: "the document is nested too deeply (at most 32 levels)"}}
			if diff := cmp.Diff(want, problemsOf(err)); diff != "" {
				t.Errorf("problems (-want +got):\n%s", diff)
			}
		})
	}
	t.Run("alias bomb", func(t *testing.T) {
		// Aliases are never expanded: this parses instantly and is refused.
		body := "version: 1\na: &a [x, x, x, x, x, x, x, x, x]\n"
		for i := 'b'; i <= 'j'; i++ {
			prev := string(i - 1)
			body += string(i) + ": &" + string(i) + " [*" + prev + ", *" + prev + ", *" + prev + ", *" + prev + ", *" + prev + ", *" + prev + ", *" + prev + ", *" + prev + ", *" + prev + "]\n"
		}
		_, err := parseDocument([]byte(body), FormatYAML)
		if thauth.ErrorCodeOf(err) != thauth.EInvalid {
			t.Fatalf("error = %v, want EInvalid", err)
		}
	})
	t.Run("many problems are capped", func(t *testing.T) {
		body := `{"version": 1, "features": [` + strings.Repeat(`{"name": "-"},`, 1500) + `{"name": "-"}]}`
		_, err := parseDocument([]byte(body), FormatJSON)
		var te *thauth.Error
		if !errors.As(err, &te) {
			t.Fatalf("error = %v", err)
		}
		if len(te.Problems) != maxProblems || te.Message != "the configuration document has 1501 problems (the first 1000 are listed)" {
			t.Errorf("got %d problems, message %q", len(te.Problems), te.Message)
		}
	})
}

// FuzzParseDocument checks that parsing never panics, that every rejection is an EInvalid
// *thauth.Error with at least one problem, and that an accepted document renders, in both
// formats, to text that parses back to the same document.
func FuzzParseDocument(f *testing.F) {
	seeds := []string{
		specExample, specExampleJSON, base, "", "{}", "[]", "null", "version: 1\n",
		`{"version": 1, "features": [{"name": "a", "name": "b"}]}`,
		"version: 1\nfeatures:\n  - &f {name: a}\n  - *f\n",
		"version: 1\nx: " + strings.Repeat("[", 40) + "\n",
		"a: &a [x]\nb: [*a, *a]\n",
		"version: 1\nfeatures: [{name: f, actions: [read, yes, 1, true, ~]}]\n",
		"{\"version\": 1, \"features\": [{\"name\": \"\\ud800\"}]}",
		"version: 1\n---\nversion: 1\n",
		"version: !!binary aGVsbG8=\n",
		"? [a]\n: b\n",
	}
	for _, s := range seeds {
		f.Add([]byte(s), true)
		f.Add([]byte(s), false)
	}
	f.Fuzz(func(t *testing.T, data []byte, yamlFormat bool) {
		format := FormatJSON
		if yamlFormat {
			format = FormatYAML
		}
		doc, err := parseDocument(data, format)
		if err != nil {
			var te *thauth.Error
			if !errors.As(err, &te) || te.Code != thauth.EInvalid || len(te.Problems) == 0 {
				t.Fatalf("rejection is not an EInvalid *thauth.Error with problems: %#v", err)
			}
			return
		}
		for _, out := range []Format{FormatJSON, FormatYAML} {
			text, err := render(doc, out)
			if err != nil {
				t.Fatalf("render %s: %v", out, err)
			}
			back, err := parseDocument(text, out)
			if err != nil {
				t.Fatalf("rendered %s does not parse: %v %+v\n%s", out, err, problemsOf(err), text)
			}
			if diff := cmp.Diff(normalize(doc), normalize(back)); diff != "" {
				t.Fatalf("rendered %s parses differently (-want +got):\n%s\n%s", out, diff, text)
			}
		}
	})
}

// normalize maps empty lists to nil: rendering omits empty optional lists.
func normalize(d *document) *document {
	c := *d
	if len(c.Features) == 0 {
		c.Features = nil
	}
	if len(c.Roles) == 0 {
		c.Roles = nil
	}
	if len(c.Subjects) == 0 {
		c.Subjects = nil
	}
	return &c
}
