package sqlite

import (
	"context"
	"testing"
	"time"

	"github.com/thauth/thauth"
)

// TestDeleteProjectCascades checks the schema's cascades: deleting a project (which no
// Store method does yet) removes every row of it from every table and nothing else.
func TestDeleteProjectCascades(t *testing.T) {
	ctx := context.Background()
	s, err := Open(ctx, t.TempDir(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	org := thauth.Organization{ID: "org", Name: "Acme", CreatedAt: now}
	must(t, s.CreateOrganization(ctx, &org))
	for _, pid := range []string{"p1", "p2"} {
		p := thauth.Project{ID: pid, Name: pid, CreatedAt: now}
		must(t, s.CreateProject(ctx, org.ID, &p))
		cfg := &thauth.Config{
			Features: []thauth.Feature{{ID: pid + "-f", Name: "f", Actions: []thauth.Action{{ID: pid + "-a", Name: "a"}}}},
			Roles: []thauth.Role{{ID: pid + "-r", Name: "r", Permissions: []thauth.Permission{
				{FeatureID: pid + "-f", ActionID: pid + "-a"},
			}}},
		}
		must(t, s.ReplaceConfig(ctx, pid, cfg))
		sub := thauth.Subject{SubjectID: "user:x", SubjectType: "user"}
		_, err := s.UpsertSubject(ctx, pid, &sub, now)
		must(t, err)
		must(t, s.ReplaceAssignments(ctx, pid, "user:x", thauth.Scope{All: true}, []thauth.Assignment{{RoleID: pid + "-r"}}))
		must(t, s.ReplaceOverrides(ctx, pid, "user:x", thauth.Scope{All: true}, []thauth.Override{{FeatureID: pid + "-f", ActionID: pid + "-a", Effect: thauth.Deny}}))
		k := thauth.APIKey{ID: pid + "-k", Name: "k", LookupID: pid + "-lookup", Hash: []byte{1}, Scopes: []string{"admin"}, CreatedAt: now}
		must(t, s.CreateAPIKey(ctx, pid, &k))
		_, err = s.AppendChanges(ctx, pid, []thauth.Change{{Kind: thauth.ChangeProject}}, now)
		must(t, err)
	}
	tables := []string{"projects", "features", "actions", "roles", "permissions", "subjects", "assignments", "overrides", "api_keys", "changes"}
	count := func(table, pid string) int {
		t.Helper()
		col := "project_id"
		if table == "projects" {
			col = "id"
		}
		var n int
		if err := s.r.QueryRowContext(ctx, `SELECT count(*) FROM `+table+` WHERE `+col+` = ?`, pid).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	for _, table := range tables {
		if count(table, "p1") == 0 {
			t.Fatalf("setup wrote no rows to %s", table)
		}
	}
	must(t, s.write(ctx, func(d *data) error {
		_, err := d.exec(ctx, `DELETE FROM projects WHERE id = ?`, "p1")
		return err
	}))
	for _, table := range tables {
		if n := count(table, "p1"); n != 0 {
			t.Errorf("%s: %d rows of the deleted project left", table, n)
		}
		if count(table, "p2") == 0 {
			t.Errorf("%s: the other project's rows were deleted too", table)
		}
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
