package manage

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/thauth/thauth"
)

// canonicalExport is specExample as exported: everything sorted, empty fields omitted.
const canonicalExport = `version: 1
features:
  - name: billing
    description: Billing and invoices
    actions: [read, refund, write]
  - name: reports
    actions: [export]
roles:
  - name: analyst
    permissions:
      - {feature: reports, action: export}
  - name: billing-admin
    description: Can manage billing
    permissions:
      - {feature: billing, action: read}
      - {feature: billing, action: refund, resource: invoices/*}
subjects:
  - id: user:alice
    type: user
    roles:
      - {role: analyst, tenant: tenant_acme, valid_until: "2027-01-01T00:00:00Z"}
      - {role: billing-admin}
    overrides:
      - {feature: billing, action: refund, effect: allow, valid_from: "2026-12-01T00:00:00Z", valid_until: "2026-12-08T00:00:00Z"}
      - {feature: reports, action: export, effect: deny, tenant: tenant_acme, resource: prod/*}
`

// canonicalExportJSON is the same export in JSON: configuration indented, one line per
// subject.
const canonicalExportJSON = `{
  "version": 1,
  "features": [
    {
      "name": "billing",
      "description": "Billing and invoices",
      "actions": [
        "read",
        "refund",
        "write"
      ]
    },
    {
      "name": "reports",
      "actions": [
        "export"
      ]
    }
  ],
  "roles": [
    {
      "name": "analyst",
      "permissions": [
        {
          "feature": "reports",
          "action": "export"
        }
      ]
    },
    {
      "name": "billing-admin",
      "description": "Can manage billing",
      "permissions": [
        {
          "feature": "billing",
          "action": "read"
        },
        {
          "feature": "billing",
          "action": "refund",
          "resource": "invoices/*"
        }
      ]
    }
  ],
  "subjects": [
    {"id":"user:alice","type":"user","roles":[{"role":"analyst","tenant":"tenant_acme","valid_until":"2027-01-01T00:00:00Z"},{"role":"billing-admin"}],"overrides":[{"feature":"billing","action":"refund","effect":"allow","valid_from":"2026-12-01T00:00:00Z","valid_until":"2026-12-08T00:00:00Z"},{"feature":"reports","action":"export","effect":"deny","tenant":"tenant_acme","resource":"prod/*"}]}
  ]
}
`

func noChanges() Changes {
	return Changes{Created: []string{}, Updated: []string{}, Deleted: []string{}}
}

func TestApplyExportRoundTrip(t *testing.T) {
	e := newEnv(t)
	first := e.apply(t, specExample)
	want := Changes{
		Created: []string{"feature billing", "feature reports", "role analyst", "role billing-admin", "subject user:alice"},
		Updated: []string{}, Deleted: []string{},
	}
	if diff := cmp.Diff(want, first.Changes); diff != "" {
		t.Errorf("changes (-want +got):\n%s", diff)
	}
	if first.Revision != e.revision(t) || first.Revision != e.init.Project.Revision+1 {
		t.Errorf("revision = %d, store has %d, init had %d", first.Revision, e.revision(t), e.init.Project.Revision)
	}
	if got := e.engine.Snapshot(e.project).Version(); got != first.Version {
		t.Errorf("engine version = %s, apply reported %s", got, first.Version)
	}
	if got := e.config(t).Version(); got != first.Version {
		t.Errorf("stored version = %s, apply reported %s", got, first.Version)
	}
	yamlDoc := e.export(t, FormatYAML)
	if diff := cmp.Diff(canonicalExport, yamlDoc); diff != "" {
		t.Errorf("YAML export (-want +got):\n%s", diff)
	}
	jsonDoc := e.export(t, FormatJSON)
	if diff := cmp.Diff(canonicalExportJSON, jsonDoc); diff != "" {
		t.Errorf("JSON export (-want +got):\n%s", diff)
	}
	for _, tc := range []struct {
		f    Format
		body string
	}{{FormatYAML, yamlDoc}, {FormatJSON, jsonDoc}, {FormatYAML, specExample}} {
		res, err := e.svc.ApplyConfig(e.ctx, e.project, []byte(tc.body), tc.f, false)
		if err != nil {
			t.Fatalf("re-apply %s: %v %+v", tc.f, err, problemsOf(err))
		}
		if diff := cmp.Diff(noChanges(), res.Changes); diff != "" {
			t.Errorf("re-apply %s changes (-want +got):\n%s", tc.f, diff)
		}
		if res.Version != first.Version || res.Revision != first.Revision || e.revision(t) != first.Revision {
			t.Errorf("re-apply %s: version %s revision %d (store %d), want %s and %d", tc.f, res.Version, res.Revision, e.revision(t), first.Version, first.Revision)
		}
	}
	// The JSON export says the same as the YAML one.
	a, _ := parseDocument([]byte(yamlDoc), FormatYAML)
	b, _ := parseDocument([]byte(jsonDoc), FormatJSON)
	if diff := cmp.Diff(a, b); diff != "" {
		t.Errorf("YAML and JSON exports differ (-yaml +json):\n%s", diff)
	}
	// Decisions follow the document.
	if d := e.check(t, "user:alice", "billing", "read", "", ""); !d.Allowed || d.Reason != "role:billing-admin" {
		t.Errorf("alice billing.read = %+v", d)
	}
	if d := e.check(t, "user:alice", "reports", "export", "tenant_acme", "prod/x"); d.Allowed || d.Reason != thauth.ReasonOverrideDeny {
		t.Errorf("alice reports.export on prod/x = %+v", d)
	}
}

// doc2 changes specExample in every way the diff distinguishes.
const doc2 = `version: 1
features:
  - name: billing
    description: Invoices
    actions: [read, refund, void]
  - name: analytics
    actions: [view]
roles:
  - name: billing-admin
    description: Can manage billing
    permissions:
      - {feature: billing, action: read}
      - {feature: billing, action: refund, resource: "invoices/eu/*"}
  - name: viewer
    permissions: [{feature: analytics, action: view}]
subjects:
  - id: "user:alice"
    type: user
    roles: [{role: billing-admin}, {role: viewer}]
  - id: "user:bob"
    type: user
    roles: [{role: viewer, tenant: t1}]
`

func TestApplyChangesAndStableIDs(t *testing.T) {
	e := newEnv(t)
	e.apply(t, specExample)
	before := e.config(t)
	res := e.apply(t, doc2)
	want := Changes{
		Created: []string{"feature analytics", "action billing.void", "role viewer", "subject user:bob"},
		Updated: []string{"feature billing", "role billing-admin", "subject user:alice"},
		Deleted: []string{"feature reports", "action billing.write", "role analyst"},
	}
	if diff := cmp.Diff(want, res.Changes); diff != "" {
		t.Errorf("changes (-want +got):\n%s", diff)
	}
	after := e.config(t)
	ids := func(cfg *thauth.Config) map[string]string {
		m := map[string]string{}
		for _, f := range cfg.Features {
			m["feature "+f.Name] = f.ID
			for _, a := range f.Actions {
				m["action "+f.Name+"."+a.Name] = a.ID
			}
		}
		for _, r := range cfg.Roles {
			m["role "+r.Name] = r.ID
		}
		return m
	}
	b, a := ids(before), ids(after)
	// Kept names keep their ids, even when the description or permissions changed.
	for _, k := range []string{"feature billing", "action billing.read", "action billing.refund", "role billing-admin"} {
		if b[k] == "" || b[k] != a[k] {
			t.Errorf("%s: id %q before, %q after; want the same", k, b[k], a[k])
		}
	}
	// A rename is a delete and a create: the new entity has a fresh id.
	if a["role viewer"] == "" || a["role viewer"] == b["role analyst"] {
		t.Errorf("role viewer id %q, old analyst id %q", a["role viewer"], b["role analyst"])
	}
	if diff := cmp.Diff(strings.TrimSpace(mustCanonical(t, doc2)), strings.TrimSpace(e.export(t, FormatYAML))); diff != "" {
		t.Errorf("stored state differs from the document (-doc +stored):\n%s", diff)
	}
	// Re-applying the same document changes nothing and keeps the ids.
	again := e.apply(t, doc2)
	if diff := cmp.Diff(noChanges(), again.Changes); diff != "" || again.Revision != res.Revision {
		t.Errorf("re-apply: changes %s, revision %d want %d", diff, again.Revision, res.Revision)
	}
	if diff := cmp.Diff(a, ids(e.config(t))); diff != "" {
		t.Errorf("ids changed by a no-op apply:\n%s", diff)
	}
}

// mustCanonical renders a document the way an export would.
func mustCanonical(t *testing.T, body string) string {
	t.Helper()
	doc, err := parseDocument([]byte(body), FormatYAML)
	if err != nil {
		t.Fatal(err)
	}
	doc.sort()
	out, err := render(doc, FormatYAML)
	if err != nil {
		t.Fatal(err)
	}
	return string(out)
}

func TestApplyKeepsRoleIDsForClients(t *testing.T) {
	e := newEnv(t)
	e.apply(t, "version: 1\nfeatures: [{name: f, actions: [read]}]\nroles: [{name: r, permissions: [{feature: f, action: read}]}]\n")
	roleID := e.config(t).Roles[0].ID
	if _, err := e.svc.UpsertSubject(e.ctx, e.project, UpsertRequest{SubjectID: "u", SubjectType: "user", RoleIDs: &[]string{roleID}}); err != nil {
		t.Fatal(err)
	}
	// A description change keeps the id: the client's assignment still works.
	res := e.apply(t, "version: 1\nfeatures: [{name: f, description: F, actions: [read]}]\nroles: [{name: r, description: R, permissions: [{feature: f, action: read}]}]\n")
	if diff := cmp.Diff(Changes{Created: []string{}, Updated: []string{"feature f", "role r"}, Deleted: []string{}}, res.Changes); diff != "" {
		t.Errorf("changes (-want +got):\n%s", diff)
	}
	if got := e.config(t).Roles[0].ID; got != roleID {
		t.Errorf("role id %s, want %s", got, roleID)
	}
	if d := e.check(t, "u", "f", "read", "", ""); !d.Allowed {
		t.Errorf("u f.read = %+v, want allowed through the kept role", d)
	}
}

func TestApplyDeletingRoleRemovesAssignments(t *testing.T) {
	const withRoles = `version: 1
features: [{name: f, actions: [read, write]}]
roles:
  - {name: keep, permissions: [{feature: f, action: read}]}
  - {name: gone, permissions: [{feature: f, action: write}]}
`
	for _, withSubjects := range []bool{false, true} {
		t.Run(fmt.Sprintf("subjects key %v", withSubjects), func(t *testing.T) {
			e := newEnv(t)
			e.apply(t, withRoles)
			cfg := e.config(t)
			ids := map[string]string{}
			for _, r := range cfg.Roles {
				ids[r.Name] = r.ID
			}
			for _, u := range []string{"u1", "u2"} {
				if _, err := e.svc.UpsertSubject(e.ctx, e.project, UpsertRequest{SubjectID: u, SubjectType: "user",
					RoleIDs: &[]string{ids["keep"], ids["gone"]}}); err != nil {
					t.Fatal(err)
				}
			}
			if _, err := e.svc.UpsertSubject(e.ctx, e.project, UpsertRequest{SubjectID: "u3", SubjectType: "user", RoleIDs: &[]string{ids["keep"]}}); err != nil {
				t.Fatal(err)
			}
			if d := e.check(t, "u1", "f", "write", "", ""); !d.Allowed {
				t.Fatalf("before: u1 f.write = %+v", d)
			}
			doc := "version: 1\nfeatures: [{name: f, actions: [read, write]}]\nroles: [{name: keep, permissions: [{feature: f, action: read}]}]\n"
			if withSubjects {
				doc += "subjects:\n  - {id: u1, type: user, roles: [{role: keep}]}\n  - {id: u2, type: user, roles: [{role: keep}]}\n  - {id: u3, type: user, roles: [{role: keep}]}\n"
			}
			res := e.apply(t, doc)
			want := Changes{Created: []string{}, Updated: []string{"subject u1", "subject u2"}, Deleted: []string{"role gone"}}
			if diff := cmp.Diff(want, res.Changes); diff != "" {
				t.Errorf("changes (-want +got):\n%s", diff)
			}
			for _, u := range []string{"u1", "u2"} {
				if d := e.check(t, u, "f", "write", "", ""); d.Allowed || d.Reason != thauth.ReasonDefaultDeny {
					t.Errorf("after: %s f.write = %+v, want default deny", u, d)
				}
				if d := e.check(t, u, "f", "read", "", ""); !d.Allowed {
					t.Errorf("after: %s f.read = %+v, want allowed", u, d)
				}
				sg := e.grants(t, u)
				if len(sg.Assignments) != 1 || sg.Assignments[0].RoleID != ids["keep"] {
					t.Errorf("%s assignments in the store: %+v, want only keep", u, sg.Assignments)
				}
			}
			changes, err := e.store.ChangesSince(e.ctx, e.project, res.Revision-1, 100)
			if err != nil {
				t.Fatal(err)
			}
			var kinds []string
			for _, c := range changes {
				kinds = append(kinds, string(c.Kind)+" "+c.Ref)
			}
			if diff := cmp.Diff([]string{"config ", "subject u1", "subject u2"}, kinds); diff != "" {
				t.Errorf("change log (-want +got):\n%s", diff)
			}
		})
	}
}

func TestApplySubjectsKey(t *testing.T) {
	e := newEnv(t)
	e.apply(t, specExample)
	if _, err := e.svc.UpsertSubject(e.ctx, e.project, UpsertRequest{SubjectID: "user:bob", SubjectType: "user"}); err != nil {
		t.Fatal(err)
	}
	rev := e.revision(t)
	// Without a subjects key, subjects are left alone.
	noSubjects := specExample[:strings.Index(specExample, "subjects:")]
	res := e.apply(t, noSubjects)
	if diff := cmp.Diff(noChanges(), res.Changes); diff != "" || e.revision(t) != rev {
		t.Errorf("apply without subjects: %s, revision %d want %d", diff, e.revision(t), rev)
	}
	for _, id := range []string{"user:alice", "user:bob"} {
		e.grants(t, id) // still there
	}
	// subjects: [] deletes every subject.
	res = e.apply(t, noSubjects+"subjects: []\n")
	want := Changes{Created: []string{}, Updated: []string{}, Deleted: []string{"subject user:alice", "subject user:bob"}}
	if diff := cmp.Diff(want, res.Changes); diff != "" {
		t.Errorf("changes (-want +got):\n%s", diff)
	}
	for _, id := range []string{"user:alice", "user:bob"} {
		if _, err := e.store.GetSubject(e.ctx, e.project, id); !thauth.IsNotFound(err) {
			t.Errorf("GetSubject(%s) = %v, want not found", id, err)
		}
	}
	if d := e.check(t, "user:alice", "billing", "read", "", ""); d.Allowed {
		t.Errorf("deleted alice billing.read = %+v", d)
	}
	// A subject whose type alone changes is updated, and only it.
	e.apply(t, noSubjects+"subjects: [{id: a, type: user}, {id: b, type: user}]\n")
	res = e.apply(t, noSubjects+"subjects: [{id: a, type: service}, {id: b, type: user}]\n")
	if diff := cmp.Diff(Changes{Created: []string{}, Updated: []string{"subject a"}, Deleted: []string{}}, res.Changes); diff != "" {
		t.Errorf("changes (-want +got):\n%s", diff)
	}
	if s, err := e.store.GetSubject(e.ctx, e.project, "a"); err != nil || s.SubjectType != "service" {
		t.Errorf("subject a = %+v, %v", s, err)
	}
}

func TestApplyInvalidDocumentWritesNothing(t *testing.T) {
	e := newEnv(t)
	e.apply(t, specExample)
	rev, before := e.revision(t), e.export(t, FormatYAML)
	bad := strings.Replace(doc2, "{role: viewer, tenant: t1}", "{role: ghost, tenant: t1}", 1)
	_, err := e.svc.ApplyConfig(e.ctx, e.project, []byte(bad), FormatYAML, false)
	te := wantCode(t, err, thauth.EInvalid)
	if diff := cmp.Diff([]thauth.Problem{{Path: "subjects[1].roles[0].role", Message: `unknown role "ghost"`}}, te.Problems); diff != "" {
		t.Errorf("problems (-want +got):\n%s", diff)
	}
	if e.revision(t) != rev || e.export(t, FormatYAML) != before {
		t.Errorf("an invalid document changed the state")
	}
	for _, dry := range []bool{false, true} {
		if _, err := e.svc.ApplyConfig(e.ctx, e.project, []byte("{"), FormatJSON, dry); thauth.ErrorCodeOf(err) != thauth.EInvalid {
			t.Errorf("malformed JSON (dry run %v): %v", dry, err)
		}
	}
}

func TestApplyFailureWritesNothing(t *testing.T) {
	for _, failOn := range []string{"ReplaceConfig", "ReplaceOverrides", "AppendChanges"} {
		t.Run(failOn, func(t *testing.T) {
			e := newEnv(t)
			e.apply(t, specExample)
			rev, before := e.revision(t), e.export(t, FormatYAML)
			svc := New(&failingStore{Store: e.store, failOn: failOn}, e.engine, Options{Now: e.clock.Now})
			// doc2 plus an override, so that every write step runs.
			body := doc2 + "    overrides: [{feature: billing, action: void, effect: deny}]\n"
			_, err := svc.ApplyConfig(e.ctx, e.project, []byte(body), FormatYAML, false)
			if !errors.Is(err, errInjected) || thauth.ErrorCodeOf(err) != thauth.EInternal {
				t.Fatalf("ApplyConfig error = %v, want the injected failure as EInternal", err)
			}
			if e.revision(t) != rev {
				t.Errorf("revision %d, want %d", e.revision(t), rev)
			}
			if diff := cmp.Diff(before, e.export(t, FormatYAML)); diff != "" {
				t.Errorf("state changed (-before +after):\n%s", diff)
			}
			if d := e.check(t, "user:alice", "billing", "read", "", ""); !d.Allowed {
				t.Errorf("alice billing.read = %+v", d)
			}
			// The real service applies the same document afterwards.
			if res := e.apply(t, body); len(res.Changes.Created) == 0 {
				t.Errorf("apply after failure reported no change")
			}
		})
	}
}

func TestApplyDryRun(t *testing.T) {
	e := newEnv(t)
	e.apply(t, specExample)
	rev, before := e.revision(t), e.export(t, FormatYAML)
	dry, err := e.svc.ApplyConfig(e.ctx, e.project, []byte(doc2), FormatYAML, true)
	if err != nil {
		t.Fatal(err)
	}
	if dry.Revision != rev || e.revision(t) != rev {
		t.Errorf("dry run revision %d (store %d), want %d", dry.Revision, e.revision(t), rev)
	}
	if diff := cmp.Diff(before, e.export(t, FormatYAML)); diff != "" {
		t.Errorf("dry run changed the state:\n%s", diff)
	}
	real := e.apply(t, doc2)
	if diff := cmp.Diff(real.Changes, dry.Changes); diff != "" {
		t.Errorf("dry run changes differ from the real apply (-real +dry):\n%s", diff)
	}
	// Without new entities the dry-run version is exactly the version after the apply.
	described := strings.Replace(doc2, "description: Invoices", "description: All invoices", 1)
	dry, err = e.svc.ApplyConfig(e.ctx, e.project, []byte(described), FormatYAML, true)
	if err != nil {
		t.Fatal(err)
	}
	if dry.Version == real.Version {
		t.Errorf("dry run version did not change")
	}
	if got := e.apply(t, described); got.Version != dry.Version {
		t.Errorf("version after apply %s, dry run said %s", got.Version, dry.Version)
	}
}

func TestApplyErrors(t *testing.T) {
	e := newEnv(t)
	if _, err := e.svc.ApplyConfig(e.ctx, "0190d3a4-0000-7000-8000-000000000000", []byte(specExample), FormatYAML, false); !thauth.IsNotFound(err) {
		t.Errorf("unknown project: %v", err)
	}
	if _, err := e.svc.ExportConfig(e.ctx, "0190d3a4-0000-7000-8000-000000000000", FormatJSON); !thauth.IsNotFound(err) {
		t.Errorf("export unknown project: %v", err)
	}
	if _, err := e.svc.ExportConfig(e.ctx, e.project, "toml"); thauth.ErrorCodeOf(err) != thauth.EUnsupported {
		t.Errorf("export toml: %v", err)
	}
	if got := e.export(t, FormatJSON); got != "{\n  \"version\": 1,\n  \"features\": [],\n  \"roles\": [],\n  \"subjects\": []\n}\n" {
		t.Errorf("empty export = %q", got)
	}
}

func TestApplyManySubjectsChangeLog(t *testing.T) {
	e := newEnv(t)
	var b strings.Builder
	b.WriteString("version: 1\nroles: [{name: r}]\nsubjects:\n")
	for i := range maxSubjectChanges + 1 {
		fmt.Fprintf(&b, "  - {id: u%04d, type: user, roles: [{role: r}]}\n", i)
	}
	res := e.apply(t, b.String())
	if len(res.Changes.Created) != maxSubjectChanges+2 {
		t.Errorf("%d created", len(res.Changes.Created))
	}
	changes, err := e.store.ChangesSince(e.ctx, e.project, res.Revision-1, 10)
	if err != nil {
		t.Fatal(err)
	}
	var kinds []thauth.ChangeKind
	for _, c := range changes {
		kinds = append(kinds, c.Kind)
	}
	if diff := cmp.Diff([]thauth.ChangeKind{thauth.ChangeConfig, thauth.ChangeSubjects}, kinds); diff != "" {
		t.Errorf("change log (-want +got):\n%s", diff)
	}
	if n := e.engine.Snapshot(e.project).Subjects(); n != maxSubjectChanges+1 {
		t.Errorf("engine has %d subjects", n)
	}
}
