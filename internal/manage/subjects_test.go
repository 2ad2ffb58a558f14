package manage

import (
	"fmt"
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/thauth/thauth"
)

const upsertConfig = `version: 1
features:
  - {name: f, actions: [read, write]}
  - {name: g, actions: [run]}
roles:
  - {name: r1, permissions: [{feature: f, action: read}]}
  - {name: r2, permissions: [{feature: f, action: write}]}
`

// ids returns the ids of the configuration: "role r1", "feature f" → id.
func ids(t *testing.T, e *env) map[string]string {
	t.Helper()
	m := map[string]string{}
	cfg := e.config(t)
	for _, f := range cfg.Features {
		m["feature "+f.Name] = f.ID
	}
	for _, r := range cfg.Roles {
		m["role "+r.Name] = r.ID
	}
	return m
}

// grantList describes a subject's stored grants as sorted short strings.
func grantList(t *testing.T, e *env, subject string) []string {
	t.Helper()
	sg := e.grants(t, subject)
	out := []string{}
	for _, a := range sg.Assignments {
		out = append(out, fmt.Sprintf("role %s @%s", a.RoleName, a.Tenant))
	}
	for _, o := range sg.Overrides {
		out = append(out, fmt.Sprintf("%s %s.%s %s @%s", o.Effect, o.FeatureName, o.ActionName, o.Resource, o.Tenant))
	}
	slices.Sort(out)
	return out
}

func ptr[T any](v T) *T { return &v }

func TestUpsertSubjectScopes(t *testing.T) {
	e := newEnv(t)
	e.apply(t, upsertConfig)
	id := ids(t, e)
	tenant := ptr("t")
	steps := []struct {
		name        string
		req         UpsertRequest
		wantCreated bool
		wantGrants  []string
	}{
		{"create with a global role", UpsertRequest{SubjectID: "u", SubjectType: "user", RoleIDs: &[]string{id["role r1"]}},
			true, []string{"role r1 @"}},
		{"tenant roles are a separate scope", UpsertRequest{SubjectID: "u", SubjectType: "user", TenantID: tenant, RoleIDs: &[]string{id["role r2"]}},
			false, []string{"role r1 @", "role r2 @t"}},
		{"absent role_ids leave roles, permissions replace overrides", UpsertRequest{SubjectID: "u", SubjectType: "user", TenantID: tenant,
			Permissions: &[]UpsertPermission{{FeatureID: id["feature f"], Action: "read", Effect: "deny", Resource: "prod/*"}}},
			false, []string{"deny f.read prod/* @t", "role r1 @", "role r2 @t"}},
		{"global overrides do not touch the tenant's", UpsertRequest{SubjectID: "u", SubjectType: "user",
			Permissions: &[]UpsertPermission{{FeatureID: id["feature g"], Action: "run", Effect: "allow"}}},
			false, []string{"allow g.run  @", "deny f.read prod/* @t", "role r1 @", "role r2 @t"}},
		{"an empty list removes the scope's roles only", UpsertRequest{SubjectID: "u", SubjectType: "user", RoleIDs: &[]string{}},
			false, []string{"allow g.run  @", "deny f.read prod/* @t", "role r2 @t"}},
		{"an empty permission list removes the scope's overrides only", UpsertRequest{SubjectID: "u", SubjectType: "user", TenantID: tenant, Permissions: &[]UpsertPermission{}},
			false, []string{"allow g.run  @", "role r2 @t"}},
		{"replacing with new roles", UpsertRequest{SubjectID: "u", SubjectType: "service", TenantID: tenant, RoleIDs: &[]string{id["role r1"], id["role r2"]}},
			false, []string{"allow g.run  @", "role r1 @t", "role r2 @t"}},
	}
	for _, st := range steps {
		rev := e.revision(t)
		res, err := e.svc.UpsertSubject(e.ctx, e.project, st.req)
		if err != nil {
			t.Fatalf("%s: %v", st.name, err)
		}
		if res.Created != st.wantCreated || res.Subject.SubjectID != "u" || res.Subject.SubjectType != st.req.SubjectType ||
			res.Subject.ProjectID != e.project || res.Subject.ID == "" || res.Revision != rev+1 {
			t.Errorf("%s: result %+v (revision before %d)", st.name, res, rev)
		}
		if diff := cmp.Diff(st.wantGrants, grantList(t, e, "u")); diff != "" {
			t.Errorf("%s: grants (-want +got):\n%s", st.name, diff)
		}
	}
	// The engine saw every write: u may write f in tenant t, not globally; g.run globally.
	for _, c := range []struct {
		feature, action, tenant string
		allowed                 bool
	}{{"f", "write", "t", true}, {"f", "write", "", false}, {"f", "read", "t", true}, {"g", "run", "", true}, {"g", "run", "t", true}} {
		if d := e.check(t, "u", c.feature, c.action, c.tenant, ""); d.Allowed != c.allowed {
			t.Errorf("u %s.%s in %q = %+v, want allowed=%v", c.feature, c.action, c.tenant, d, c.allowed)
		}
	}
	changes, err := e.store.ChangesSince(e.ctx, e.project, e.revision(t)-1, 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(changes) != 1 || changes[0].Kind != thauth.ChangeSubject || changes[0].Ref != "u" {
		t.Errorf("change log of the last upsert: %+v", changes)
	}
}

func TestUpsertSubjectCollapsesDuplicates(t *testing.T) {
	e := newEnv(t)
	e.apply(t, upsertConfig)
	id := ids(t, e)
	p := UpsertPermission{FeatureID: id["feature f"], Action: "read", Effect: "allow"}
	_, err := e.svc.UpsertSubject(e.ctx, e.project, UpsertRequest{SubjectID: "u", SubjectType: "user",
		RoleIDs: &[]string{id["role r1"], id["role r1"]}, Permissions: &[]UpsertPermission{p, p}})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"allow f.read  @", "role r1 @"}, grantList(t, e, "u")); diff != "" {
		t.Errorf("grants (-want +got):\n%s", diff)
	}
}

func TestUpsertSubjectInvalid(t *testing.T) {
	e := newEnv(t)
	e.apply(t, upsertConfig)
	id := ids(t, e)
	// u exists with a grant; no failed upsert may change it.
	if _, err := e.svc.UpsertSubject(e.ctx, e.project, UpsertRequest{SubjectID: "u", SubjectType: "user", RoleIDs: &[]string{id["role r1"]}}); err != nil {
		t.Fatal(err)
	}
	f := id["feature f"]
	tests := []struct {
		name string
		req  UpsertRequest
		want string
	}{
		{"empty subject id", UpsertRequest{SubjectType: "user"}, "subject_id: must not be empty"},
		{"control character in type", UpsertRequest{SubjectID: "v", SubjectType: "us\x00er"}, "subject_type: must not contain control characters"},
		{"empty tenant", UpsertRequest{SubjectID: "v", SubjectType: "user", TenantID: ptr("")}, "tenant_id: must not be empty"},
		{"unknown role ids", UpsertRequest{SubjectID: "v", SubjectType: "user", RoleIDs: &[]string{"nope-1", id["role r1"], "nope-2"}},
			`role_ids: unknown role ids "nope-1", "nope-2"`},
		{"unknown role id on an existing subject", UpsertRequest{SubjectID: "u", SubjectType: "service", RoleIDs: &[]string{"nope"}},
			`role_ids: unknown role ids "nope"`},
		{"unknown feature id", UpsertRequest{SubjectID: "v", SubjectType: "user", Permissions: &[]UpsertPermission{{FeatureID: "nope", Action: "read", Effect: "allow"}}},
			`permissions[0].feature_id: unknown feature id "nope"`},
		{"unknown action", UpsertRequest{SubjectID: "v", SubjectType: "user", Permissions: &[]UpsertPermission{
			{FeatureID: f, Action: "read", Effect: "allow"}, {FeatureID: f, Action: "run", Effect: "allow"}}},
			`permissions[1].action: unknown action "run": feature "f" has no such action`},
		{"bad effect and resource", UpsertRequest{SubjectID: "v", SubjectType: "user", Permissions: &[]UpsertPermission{
			{FeatureID: f, Action: "read", Effect: "permit", Resource: "/x"}}},
			`permissions[0].effect: must be allow or deny, not "permit"; permissions[0].resource: invalid resource pattern "/x": must not contain an empty path segment`},
		{"empty feature id and action", UpsertRequest{SubjectID: "v", SubjectType: "user", Permissions: &[]UpsertPermission{{Effect: "deny"}}},
			"permissions[0].feature_id: must not be empty; permissions[0].action: must not be empty"},
		{"unknown roles and features together", UpsertRequest{SubjectID: "u", SubjectType: "user", RoleIDs: &[]string{"x"},
			Permissions: &[]UpsertPermission{{FeatureID: "y", Action: "read", Effect: "deny"}}},
			`role_ids: unknown role ids "x"; permissions[0].feature_id: unknown feature id "y"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rev := e.revision(t)
			_, err := e.svc.UpsertSubject(e.ctx, e.project, tc.req)
			te := wantCode(t, err, thauth.EInvalid)
			if te.Message != tc.want {
				t.Errorf("message %q\nwant    %q", te.Message, tc.want)
			}
			if e.revision(t) != rev {
				t.Errorf("revision moved from %d to %d", rev, e.revision(t))
			}
			if _, err := e.store.GetSubject(e.ctx, e.project, "v"); !thauth.IsNotFound(err) {
				t.Errorf("subject v exists after a failed upsert (%v)", err)
			}
			s, err := e.store.GetSubject(e.ctx, e.project, "u")
			if err != nil || s.SubjectType != "user" {
				t.Errorf("subject u = %+v, %v; want type user", s, err)
			}
			if diff := cmp.Diff([]string{"role r1 @"}, grantList(t, e, "u")); diff != "" {
				t.Errorf("u's grants changed (-want +got):\n%s", diff)
			}
		})
	}
	t.Run("unknown project", func(t *testing.T) {
		_, err := e.svc.UpsertSubject(e.ctx, "0190d3a4-0000-7000-8000-000000000000", UpsertRequest{SubjectID: "v", SubjectType: "user"})
		wantCode(t, err, thauth.ENotFound)
	})
	t.Run("ids of another project", func(t *testing.T) {
		other, err := e.svc.Init(e.ctx, "Other", "Other")
		if err != nil {
			t.Fatal(err)
		}
		_, err = e.svc.UpsertSubject(e.ctx, other.Project.ID, UpsertRequest{SubjectID: "v", SubjectType: "user", RoleIDs: &[]string{id["role r1"]}})
		wantCode(t, err, thauth.EInvalid)
	})
}
