package storetest

import (
	"context"
	"testing"
	"time"

	"github.com/thauth/thauth"
)

func testOrganizations(t *testing.T, open func(t *testing.T) thauth.Store) {
	ctx := context.Background()

	t.Run("CreateGet", func(t *testing.T) {
		s := open(t)
		loc := time.FixedZone("UTC+2", 2*3600)
		org := thauth.Organization{ID: newID(), Name: "Acme", CreatedAt: base.In(loc)}
		must(t, s.CreateOrganization(ctx, &org))
		got, err := s.GetOrganization(ctx, org.ID)
		must(t, err)
		diff(t, "organization", &thauth.Organization{ID: org.ID, Name: "Acme", CreatedAt: base}, got)
		wantUTC(t, "CreatedAt", got.CreatedAt)
	})

	t.Run("GetUnknown", func(t *testing.T) {
		s := open(t)
		_, err := s.GetOrganization(ctx, newID())
		wantCode(t, err, thauth.ENotFound)
	})

	t.Run("DuplicateID", func(t *testing.T) {
		s := open(t)
		org := thauth.Organization{ID: newID(), Name: "Acme", CreatedAt: base}
		must(t, s.CreateOrganization(ctx, &org))
		dup := thauth.Organization{ID: org.ID, Name: "Other", CreatedAt: base}
		wantCode(t, s.CreateOrganization(ctx, &dup), thauth.EConflict)
		got, err := s.GetOrganization(ctx, org.ID)
		must(t, err)
		if got.Name != "Acme" {
			t.Errorf("name = %q after conflicting create, want Acme", got.Name)
		}
	})
}

func testProjects(t *testing.T, open func(t *testing.T) thauth.Store) {
	ctx := context.Background()

	newOrg := func(t *testing.T, s thauth.Store) string {
		t.Helper()
		org := thauth.Organization{ID: newID(), Name: "Acme", CreatedAt: base}
		must(t, s.CreateOrganization(ctx, &org))
		return org.ID
	}

	t.Run("CreateGet", func(t *testing.T) {
		s := open(t)
		orgID := newOrg(t, s)
		p := thauth.Project{ID: newID(), Name: "Shop", CreatedAt: at(time.Second), Revision: 42}
		must(t, s.CreateProject(ctx, orgID, &p))
		want := &thauth.Project{ID: p.ID, OrganizationID: orgID, Name: "Shop", CreatedAt: at(time.Second), Revision: 0}
		got, err := s.GetProject(ctx, p.ID)
		must(t, err)
		diff(t, "project", want, got)
		wantUTC(t, "CreatedAt", got.CreatedAt)
	})

	t.Run("CreateInUnknownOrganization", func(t *testing.T) {
		s := open(t)
		p := thauth.Project{ID: newID(), Name: "Shop", CreatedAt: base}
		wantCode(t, s.CreateProject(ctx, newID(), &p), thauth.ENotFound)
		_, err := s.GetProject(ctx, p.ID)
		wantCode(t, err, thauth.ENotFound)
	})

	t.Run("DuplicateID", func(t *testing.T) {
		s := open(t)
		orgID := newOrg(t, s)
		p := thauth.Project{ID: newID(), Name: "Shop", CreatedAt: base}
		must(t, s.CreateProject(ctx, orgID, &p))
		dup := thauth.Project{ID: p.ID, Name: "Other", CreatedAt: base}
		wantCode(t, s.CreateProject(ctx, orgID, &dup), thauth.EConflict)
	})

	t.Run("GetUnknown", func(t *testing.T) {
		s := open(t)
		_, err := s.GetProject(ctx, newID())
		wantCode(t, err, thauth.ENotFound)
	})

	t.Run("ListByOrganization", func(t *testing.T) {
		s := open(t)
		org1, org2 := newOrg(t, s), newOrg(t, s)
		var want []thauth.Project
		for i, name := range []string{"b", "a", "c"} {
			p := thauth.Project{ID: newID(), Name: name, CreatedAt: at(time.Duration(i) * time.Second)}
			must(t, s.CreateProject(ctx, org1, &p))
			want = append(want, p)
		}
		other := thauth.Project{ID: newID(), Name: "other", CreatedAt: base}
		must(t, s.CreateProject(ctx, org2, &other))

		got, err := s.ListProjects(ctx, org1)
		must(t, err)
		diff(t, "projects of org1", sortedProjects(want), sortedProjects(got))
		got, err = s.ListProjects(ctx, org2)
		must(t, err)
		diff(t, "projects of org2", []thauth.Project{other}, got)

		got, err = s.ListProjects(ctx, newID())
		wantNotFoundOrEmpty(t, err, len(got))
	})

	t.Run("ProjectRevisions", func(t *testing.T) {
		s := open(t)
		got, err := s.ProjectRevisions(ctx)
		must(t, err)
		if len(got) != 0 {
			t.Fatalf("empty store: ProjectRevisions = %v", got)
		}
		org1, org2 := newOrg(t, s), newOrg(t, s)
		p1 := thauth.Project{ID: newID(), Name: "one", CreatedAt: base}
		p2 := thauth.Project{ID: newID(), Name: "two", CreatedAt: base}
		must(t, s.CreateProject(ctx, org1, &p1))
		must(t, s.CreateProject(ctx, org2, &p2))
		for range 3 {
			_, err := s.AppendChanges(ctx, p2.ID, []thauth.Change{{Kind: thauth.ChangeConfig}}, base)
			must(t, err)
		}
		got, err = s.ProjectRevisions(ctx)
		must(t, err)
		want := []thauth.Project{
			{ID: p1.ID, OrganizationID: org1, Name: "one", CreatedAt: base, Revision: 0},
			{ID: p2.ID, OrganizationID: org2, Name: "two", CreatedAt: base, Revision: 3},
		}
		// Only ids, organizations and revisions are promised.
		type rev struct {
			ID, Org  string
			Revision int64
		}
		revs := func(ps []thauth.Project) []rev {
			var out []rev
			for _, p := range sortedProjects(ps) {
				out = append(out, rev{p.ID, p.OrganizationID, p.Revision})
			}
			return out
		}
		diff(t, "revisions", revs(want), revs(got))
	})
}
