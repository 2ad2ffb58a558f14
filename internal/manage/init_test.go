package manage

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/thauth/thauth"
)

func TestInit(t *testing.T) {
	e := newEnv(t)
	res := e.init
	if res.Organization.Name != "Acme" || res.Project.Name != "Shop" || res.Project.OrganizationID != res.Organization.ID ||
		res.Project.Revision != 1 || !res.Project.CreatedAt.Equal(testStart) {
		t.Errorf("result = %+v", res)
	}
	p, err := e.store.GetProject(e.ctx, e.project)
	if err != nil || p.Name != "Shop" || p.Revision != 1 {
		t.Errorf("stored project = %+v, %v", p, err)
	}
	org, err := e.store.GetOrganization(e.ctx, res.Organization.ID)
	if err != nil || org.Name != "Acme" {
		t.Errorf("stored organization = %+v, %v", org, err)
	}
	for _, k := range []struct {
		token  string
		scopes []string
	}{
		{res.AdminKey, []string{thauth.ScopeAdmin}},
		{res.DecisionsKey, []string{thauth.ScopeDecisionsRead, thauth.ScopeSubjectsWrite}},
	} {
		pr, ok := e.engine.Authenticate(k.token)
		if !ok || pr.ProjectID != e.project || pr.OrganizationID != res.Organization.ID {
			t.Fatalf("Authenticate = %+v, %v", pr, ok)
		}
		if diff := cmp.Diff(k.scopes, pr.Scopes); diff != "" {
			t.Errorf("scopes (-want +got):\n%s", diff)
		}
	}
	changes, err := e.store.ChangesSince(e.ctx, e.project, 0, 10)
	if err != nil {
		t.Fatal(err)
	}
	var kinds []thauth.ChangeKind
	for _, c := range changes {
		if c.Revision != 1 {
			t.Errorf("change %+v not at revision 1", c)
		}
		kinds = append(kinds, c.Kind)
	}
	if diff := cmp.Diff([]thauth.ChangeKind{thauth.ChangeProject, thauth.ChangeKey, thauth.ChangeKey}, kinds); diff != "" {
		t.Errorf("changes (-want +got):\n%s", diff)
	}
	keys, err := e.svc.ListKeys(e.ctx, e.project)
	if err != nil || len(keys) != 2 {
		t.Fatalf("ListKeys = %+v, %v", keys, err)
	}
}

func TestInitInvalid(t *testing.T) {
	e := newEnv(t)
	tests := []struct {
		name, org, project, want string
	}{
		{"empty organization", "", "p", "organization name must not be empty"},
		{"blank project", "o", " \t", "project name must not be empty"},
		{"long project", "o", strings.Repeat("p", 201), "project name must be at most 200 characters"},
		{"control character", "o\x1b[31m", "p", "organization name must not contain control characters"},
		{"invalid UTF-8", "o", "p\xff", "project name must be valid UTF-8"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before, err := e.store.ProjectRevisions(e.ctx)
			if err != nil {
				t.Fatal(err)
			}
			_, err = e.svc.Init(e.ctx, tc.org, tc.project)
			if te := wantCode(t, err, thauth.EInvalid); te.Message != tc.want {
				t.Errorf("message %q, want %q", te.Message, tc.want)
			}
			after, _ := e.store.ProjectRevisions(e.ctx)
			if len(after) != len(before) {
				t.Errorf("a project was created")
			}
		})
	}
	if _, err := e.svc.Init(e.ctx, strings.Repeat("é", 200), "p"); err != nil {
		t.Errorf("200 characters: %v", err)
	}
}
