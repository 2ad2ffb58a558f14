package manage

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/thauth/thauth"
)

func TestCreateOrganization(t *testing.T) {
	e := newConsoleEnv(t)
	owner := orgNewAccount(t, e, "owner@example.com", false)
	owner.Client = ClientInfo{IP: "198.51.100.7", UserAgent: "browser"}

	for _, tc := range []struct{ name, want string }{
		{"", "organization name must not be empty"},
		{"   ", "organization name must not be empty"},
		{strings.Repeat("é", 201), "organization name must be at most 200 characters"},
		{"bad\x07name", "organization name must not contain control characters"},
	} {
		_, err := e.svc.CreateOrganization(e.ctx, owner, tc.name)
		orgWantErr(t, err, thauth.EInvalid, tc.want)
	}
	_, err := e.svc.CreateOrganization(e.ctx, Actor{}, "Acme")
	orgWantErr(t, err, thauth.EUnauthenticated)

	org, err := e.svc.CreateOrganization(e.ctx, owner, strings.Repeat("é", 200))
	if err != nil {
		t.Fatal(err)
	}
	if !org.CreatedAt.Equal(testStart) || org.RequireMFA {
		t.Errorf("organization: %+v", org)
	}
	m, err := e.store.GetMembership(e.ctx, org.ID, owner.AccountID)
	if err != nil || m.Role != thauth.OrgRoleOwner {
		t.Fatalf("creator membership: %+v %v", m, err)
	}
	audit := orgAudit(t, e, org.ID)
	if len(audit) != 1 || audit[0].Action != "org.created" || audit[0].ActorType != thauth.ActorAccount ||
		audit[0].ActorID != owner.AccountID || audit[0].OrganizationID != org.ID || audit[0].IP != "198.51.100.7" {
		t.Errorf("audit: %+v", audit)
	}
	orgEngineAgrees(t, e, owner)

	second := orgNewOrg(t, e, owner, "Another")
	list, err := e.svc.ListOrganizations(e.ctx, owner)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, om := range list {
		got = append(got, om.Organization.ID+"/"+om.Role)
	}
	want := []string{second.ID + "/owner", org.ID + "/owner"} // by name: "Another" < "éé…"
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("ListOrganizations (-want +got):\n%s", diff)
	}
	stranger := orgNewAccount(t, e, "stranger@example.com", false)
	if list, err := e.svc.ListOrganizations(e.ctx, stranger); err != nil || len(list) != 0 {
		t.Errorf("stranger's organizations: %+v %v", list, err)
	}
	orgEngineAgrees(t, e, owner, stranger)
}

func TestGetAndUpdateOrganization(t *testing.T) {
	e := newConsoleEnv(t)
	owner := orgNewAccount(t, e, "owner@example.com", false)
	dev := orgNewAccount(t, e, "dev@example.com", false)
	org := orgNewOrg(t, e, owner, "Acme")
	orgAddMember(t, e, owner, org.ID, dev, thauth.OrgRoleDeveloper)

	got, acc, err := e.svc.GetOrganization(e.ctx, dev, org.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.Name != "Acme" || *acc != (Access{Role: "developer", Reason: "role:developer"}) {
		t.Errorf("GetOrganization: %+v %+v", got, acc)
	}
	name := "Acme Corp"
	_, err = e.svc.UpdateOrganization(e.ctx, dev, org.ID, &name, nil)
	orgWantErr(t, err, thauth.EForbidden, `role "developer" does not allow organization:update`)

	bad := ""
	_, err = e.svc.UpdateOrganization(e.ctx, owner, org.ID, &bad, nil)
	orgWantErr(t, err, thauth.EInvalid, "organization name must not be empty")

	updated, err := e.svc.UpdateOrganization(e.ctx, owner, org.ID, &name, nil)
	if err != nil || updated.Name != name {
		t.Fatalf("UpdateOrganization: %+v %v", updated, err)
	}
	stored, err := e.store.GetOrganization(e.ctx, org.ID)
	if err != nil || stored.Name != name {
		t.Fatalf("stored: %+v %v", stored, err)
	}
	// The same values again change nothing and record nothing.
	n := len(orgAudit(t, e, org.ID))
	off := false
	if _, err := e.svc.UpdateOrganization(e.ctx, owner, org.ID, &name, &off); err != nil {
		t.Fatal(err)
	}
	audit := orgAudit(t, e, org.ID)
	if len(audit) != n {
		t.Errorf("a no-op update was audited: %v", orgActions(audit[n:]))
	}
	var upd *thauth.AuditEntry
	for i := range audit {
		if audit[i].Action == "org.updated" {
			upd = &audit[i]
		}
	}
	if upd == nil || upd.Data != `{"name":"Acme Corp","previous_name":"Acme"}` {
		t.Errorf("org.updated: %+v", upd)
	}
}

func TestCreateAndListProjects(t *testing.T) {
	e := newConsoleEnv(t)
	owner := orgNewAccount(t, e, "owner@example.com", false)
	viewer := orgNewAccount(t, e, "viewer@example.com", false)
	org := orgNewOrg(t, e, owner, "Acme")
	orgAddMember(t, e, owner, org.ID, viewer, thauth.OrgRoleViewer)

	_, err := e.svc.CreateProject(e.ctx, owner, org.ID, "")
	orgWantErr(t, err, thauth.EInvalid, "project name must not be empty")
	p, err := e.svc.CreateProject(e.ctx, owner, org.ID, "Shop")
	if err != nil {
		t.Fatal(err)
	}
	if p.OrganizationID != org.ID || p.Name != "Shop" || p.Revision != 1 {
		t.Errorf("project: %+v", p)
	}
	// The engine knows the project as soon as CreateProject returns.
	if snap := e.engine.Snapshot(p.ID); snap == nil || snap.Revision() != 1 {
		t.Errorf("engine snapshot of the new project: %v", snap)
	}
	list, err := e.svc.ListProjects(e.ctx, viewer, org.ID)
	if err != nil || len(list) != 1 || list[0].ID != p.ID {
		t.Errorf("ListProjects: %+v %v", list, err)
	}
	got, err := e.svc.AuthorizeProject(e.ctx, viewer, p.ID, "config", "read")
	if err != nil || got.ID != p.ID {
		t.Errorf("AuthorizeProject(viewer, config:read): %+v %v", got, err)
	}
	_, err = e.svc.AuthorizeProject(e.ctx, viewer, p.ID, "config", "write")
	orgWantErr(t, err, thauth.EForbidden, `role "viewer" does not allow config:write`)

	audit := orgAudit(t, e, org.ID)
	last := audit[len(audit)-1]
	if last.Action != "project.created" || last.Target != p.ID || last.Data != `{"name":"Shop"}` {
		t.Errorf("audit: %+v", last)
	}
}
