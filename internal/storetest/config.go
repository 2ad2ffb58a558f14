package storetest

import (
	"context"
	"slices"
	"testing"

	"github.com/thauth/thauth"
)

// clone deep-copies a configuration.
func clone(c *thauth.Config) *thauth.Config {
	out := &thauth.Config{}
	for _, f := range c.Features {
		f.Actions = slices.Clone(f.Actions)
		out.Features = append(out.Features, f)
	}
	for _, r := range c.Roles {
		r.Permissions = slices.Clone(r.Permissions)
		out.Roles = append(out.Roles, r)
	}
	return out
}

// scrambled returns c in reverse order at every level, with names of permissions cleared
// (stores must not rely on them when writing).
func scrambled(c *thauth.Config) *thauth.Config {
	out := clone(c)
	slices.Reverse(out.Features)
	for i := range out.Features {
		slices.Reverse(out.Features[i].Actions)
	}
	slices.Reverse(out.Roles)
	for i := range out.Roles {
		slices.Reverse(out.Roles[i].Permissions)
		for j := range out.Roles[i].Permissions {
			out.Roles[i].Permissions[j].FeatureName = ""
			out.Roles[i].Permissions[j].ActionName = ""
		}
	}
	return out
}

func loadConfig(t *testing.T, s thauth.Store, projectID string) *thauth.Config {
	t.Helper()
	cfg, err := s.LoadConfig(context.Background(), projectID)
	must(t, err)
	return cfg
}

func testConfig(t *testing.T, open func(t *testing.T) thauth.Store) {
	ctx := context.Background()

	t.Run("Empty", func(t *testing.T) {
		s := open(t)
		org := thauth.Organization{ID: newID(), Name: "Acme", CreatedAt: base}
		must(t, s.CreateOrganization(ctx, &org))
		p := thauth.Project{ID: newID(), Name: "Shop", CreatedAt: base}
		must(t, s.CreateProject(ctx, org.ID, &p))
		diff(t, "config", &thauth.Config{}, loadConfig(t, s, p.ID))
	})

	t.Run("UnknownProject", func(t *testing.T) {
		s := open(t)
		f := newFixture(t, s)
		_, err := s.LoadConfig(ctx, newID())
		wantCode(t, err, thauth.ENotFound)
		wantCode(t, s.ReplaceConfig(ctx, newID(), &thauth.Config{}), thauth.ENotFound)
		// The fixture's ids under an unknown project id must not reach the fixture's rows.
		wantCode(t, s.ReplaceConfig(ctx, newID(), f.config()), thauth.ENotFound)
		diff(t, "config", f.cfg, loadConfig(t, s, f.pid))
	})

	t.Run("CanonicalOrderNamesFilled", func(t *testing.T) {
		s := open(t)
		f := newFixture(t, s)
		diff(t, "config after create", f.cfg, loadConfig(t, s, f.pid))
		// Writing the same configuration in another order changes nothing.
		must(t, s.ReplaceConfig(ctx, f.pid, scrambled(f.cfg)))
		got := loadConfig(t, s, f.pid)
		diff(t, "config after scrambled replace", f.cfg, got)
		if got.Version() != f.cfg.Version() {
			t.Errorf("version %s, want %s", got.Version(), f.cfg.Version())
		}
	})

	t.Run("UpdateDescriptions", func(t *testing.T) {
		s := open(t)
		f := newFixture(t, s)
		want := clone(f.cfg)
		want.Features[0].Description = ""
		want.Features[1].Description = "Reports"
		want.Roles[0].Description = "Changed"
		want.Roles[1].Description = "Read-only"
		must(t, s.ReplaceConfig(ctx, f.pid, clone(want)))
		diff(t, "config", want, loadConfig(t, s, f.pid))
	})

	t.Run("RenameKeepsIDs", func(t *testing.T) {
		s := open(t)
		f := newFixture(t, s)
		sub := f.subject(t, s, "user:alice")
		must(t, s.ReplaceAssignments(ctx, f.pid, sub.SubjectID, thauth.Scope{All: true}, []thauth.Assignment{f.assignment(f.admin, "")}))
		must(t, s.ReplaceOverrides(ctx, f.pid, sub.SubjectID, thauth.Scope{All: true}, []thauth.Override{f.override(f.billingRefund, thauth.Deny, "", "")}))

		// Swap the two feature names, the two role names and two action names of billing.
		want := &thauth.Config{
			Features: []thauth.Feature{
				{ID: f.reports, Name: "billing", Actions: []thauth.Action{
					{ID: f.reportsExport, Name: "export"}, {ID: f.reportsRead, Name: "read"},
				}},
				{ID: f.billing, Name: "reports", Description: "Billing and invoices", Actions: []thauth.Action{
					{ID: f.billingRead, Name: "read"}, {ID: f.billingWr, Name: "refund"}, {ID: f.billingRefund, Name: "write"},
				}},
			},
			Roles: []thauth.Role{
				{ID: f.viewer, Name: "billing-admin", Permissions: []thauth.Permission{
					{FeatureID: f.reports, FeatureName: "billing", ActionID: f.reportsRead, ActionName: "read", Resource: "*"},
					{FeatureID: f.billing, FeatureName: "reports", ActionID: f.billingRead, ActionName: "read"},
				}},
				{ID: f.admin, Name: "viewer", Description: "Can manage billing", Permissions: []thauth.Permission{
					{FeatureID: f.billing, FeatureName: "reports", ActionID: f.billingRead, ActionName: "read"},
					{FeatureID: f.billing, FeatureName: "reports", ActionID: f.billingRefund, ActionName: "write"},
					{FeatureID: f.billing, FeatureName: "reports", ActionID: f.billingRefund, ActionName: "write", Resource: "invoices/*"},
				}},
			},
		}
		must(t, s.ReplaceConfig(ctx, f.pid, scrambled(want)))
		diff(t, "config", want, loadConfig(t, s, f.pid))

		// Grants follow the ids, and show the new names.
		g, err := s.LoadSubjectGrants(ctx, f.pid, sub.SubjectID)
		must(t, err)
		diff(t, "assignments", []thauth.Assignment{{RoleID: f.admin, RoleName: "viewer"}}, g.Assignments)
		diff(t, "overrides", []thauth.Override{{FeatureID: f.billing, FeatureName: "reports", ActionID: f.billingRefund, ActionName: "write", Effect: thauth.Deny}}, g.Overrides)
	})

	t.Run("DeleteActionCascades", func(t *testing.T) {
		s := open(t)
		f := newFixture(t, s)
		sub := f.subject(t, s, "user:alice")
		must(t, s.ReplaceOverrides(ctx, f.pid, sub.SubjectID, thauth.Scope{All: true}, []thauth.Override{
			f.override(f.billingRefund, thauth.Deny, "", ""),
			f.override(f.billingRead, thauth.Allow, "", ""),
		}))
		want := clone(f.cfg)
		want.Features[0].Actions = slices.DeleteFunc(want.Features[0].Actions, func(a thauth.Action) bool { return a.ID == f.billingRefund })
		want.Roles[0].Permissions = want.Roles[0].Permissions[:1] // the refund permissions go
		must(t, s.ReplaceConfig(ctx, f.pid, clone(want)))
		diff(t, "config", want, loadConfig(t, s, f.pid))
		g, err := s.LoadSubjectGrants(ctx, f.pid, sub.SubjectID)
		must(t, err)
		diff(t, "overrides", []thauth.Override{f.override(f.billingRead, thauth.Allow, "", "")}, g.Overrides)
	})

	t.Run("DeleteFeatureCascades", func(t *testing.T) {
		s := open(t)
		f := newFixture(t, s)
		sub := f.subject(t, s, "user:alice")
		must(t, s.ReplaceOverrides(ctx, f.pid, sub.SubjectID, thauth.Scope{All: true}, []thauth.Override{
			f.override(f.billingRefund, thauth.Deny, "", ""),
			f.override(f.reportsExport, thauth.Allow, "", "t1"),
		}))
		want := clone(f.cfg)
		want.Features = want.Features[1:]                         // billing goes
		want.Roles[0].Permissions = nil                           // billing-admin had only billing
		want.Roles[1].Permissions = want.Roles[1].Permissions[1:] // viewer keeps reports.read
		must(t, s.ReplaceConfig(ctx, f.pid, clone(want)))
		diff(t, "config", want, loadConfig(t, s, f.pid))
		g, err := s.LoadSubjectGrants(ctx, f.pid, sub.SubjectID)
		must(t, err)
		diff(t, "overrides", []thauth.Override{f.override(f.reportsExport, thauth.Allow, "", "t1")}, g.Overrides)

		// The feature can come back under its old name with a new id.
		again := clone(want)
		again.Features = append(again.Features, thauth.Feature{ID: newID(), Name: "billing", Actions: []thauth.Action{{ID: newID(), Name: "read"}}})
		must(t, s.ReplaceConfig(ctx, f.pid, again))
	})

	t.Run("DeleteRoleCascades", func(t *testing.T) {
		s := open(t)
		f := newFixture(t, s)
		sub := f.subject(t, s, "user:alice")
		must(t, s.ReplaceAssignments(ctx, f.pid, sub.SubjectID, thauth.Scope{All: true}, []thauth.Assignment{
			f.assignment(f.admin, ""), f.assignment(f.viewer, ""), f.assignment(f.admin, "t1"),
		}))
		want := clone(f.cfg)
		want.Roles = want.Roles[1:] // billing-admin goes
		must(t, s.ReplaceConfig(ctx, f.pid, clone(want)))
		diff(t, "config", want, loadConfig(t, s, f.pid))
		g, err := s.LoadSubjectGrants(ctx, f.pid, sub.SubjectID)
		must(t, err)
		diff(t, "assignments", []thauth.Assignment{f.assignment(f.viewer, "")}, g.Assignments)
	})

	t.Run("DeleteEverything", func(t *testing.T) {
		s := open(t)
		f := newFixture(t, s)
		f.populate(t, s)
		must(t, s.ReplaceConfig(ctx, f.pid, &thauth.Config{}))
		diff(t, "config", &thauth.Config{}, loadConfig(t, s, f.pid))
		for _, g := range scanAll(t, s, f.pid) {
			if len(g.Assignments)+len(g.Overrides) != 0 {
				t.Errorf("subject %s still has grants: %+v", g.Subject.SubjectID, g)
			}
		}
	})

	t.Run("SameNamesInOtherScopes", func(t *testing.T) {
		// Action names repeat across features; every name may repeat across projects.
		s := open(t)
		f1, f2 := newFixture(t, s), newFixture(t, s)
		diff(t, "config 1", f1.cfg, loadConfig(t, s, f1.pid))
		diff(t, "config 2", f2.cfg, loadConfig(t, s, f2.pid))
	})

	t.Run("Conflicts", func(t *testing.T) {
		type tc struct {
			name   string
			mutate func(f *fixture, c *thauth.Config)
			code   thauth.ErrorCode
		}
		for _, c := range []tc{
			{"DuplicateFeatureName", func(f *fixture, c *thauth.Config) {
				c.Features = append(c.Features, thauth.Feature{ID: newID(), Name: "billing"})
			}, thauth.EConflict},
			{"RenameOntoExistingFeature", func(f *fixture, c *thauth.Config) {
				c.Features[1].Name = "billing"
			}, thauth.EConflict},
			{"DuplicateActionName", func(f *fixture, c *thauth.Config) {
				c.Features[0].Actions = append(c.Features[0].Actions, thauth.Action{ID: newID(), Name: "read"})
			}, thauth.EConflict},
			{"DuplicateRoleName", func(f *fixture, c *thauth.Config) {
				c.Roles = append(c.Roles, thauth.Role{ID: newID(), Name: "viewer"})
			}, thauth.EConflict},
			{"DuplicatePermission", func(f *fixture, c *thauth.Config) {
				c.Roles[1].Permissions = append(c.Roles[1].Permissions, c.Roles[1].Permissions[0])
			}, thauth.EConflict},
			{"DuplicateFeatureID", func(f *fixture, c *thauth.Config) {
				c.Features = append(c.Features, thauth.Feature{ID: f.billing, Name: "other"})
			}, thauth.EConflict},
		} {
			t.Run(c.name, func(t *testing.T) {
				s := open(t)
				f := newFixture(t, s)
				cfg := clone(f.cfg)
				cfg.Features[0].Description = "changed" // a change that must not stick
				c.mutate(f, cfg)
				err := s.ReplaceConfig(ctx, f.pid, cfg)
				wantCode(t, err, c.code)
				if thauth.ErrorMessage(err) == "internal error" || thauth.ErrorMessage(err) == "" {
					t.Errorf("conflict message %q does not say what conflicts", thauth.ErrorMessage(err))
				}
				diff(t, "config after failed replace", f.cfg, loadConfig(t, s, f.pid))
			})
		}
	})

	t.Run("PermissionOfUnknownAction", func(t *testing.T) {
		s := open(t)
		f := newFixture(t, s)
		cfg := clone(f.cfg)
		cfg.Roles[0].Permissions = append(cfg.Roles[0].Permissions, thauth.Permission{FeatureID: f.billing, ActionID: newID()})
		if err := s.ReplaceConfig(ctx, f.pid, cfg); err == nil {
			t.Fatal("ReplaceConfig with a permission naming an unknown action succeeded")
		}
		diff(t, "config after failed replace", f.cfg, loadConfig(t, s, f.pid))
	})

	t.Run("OtherProjectUntouched", func(t *testing.T) {
		s := open(t)
		f1, f2 := newFixture(t, s), newFixture(t, s)
		f2.populate(t, s)
		before := snapshot(t, s, f2.pid)
		cfg := clone(f1.cfg)
		cfg.Features = cfg.Features[:1]
		cfg.Features[0].Name = "payments"
		cfg.Roles = nil
		must(t, s.ReplaceConfig(ctx, f1.pid, cfg))
		must(t, s.ReplaceConfig(ctx, f1.pid, &thauth.Config{}))
		diff(t, "other project", before, snapshot(t, s, f2.pid))
	})

	t.Run("VersionChangesOnlyWithContent", func(t *testing.T) {
		s := open(t)
		f := newFixture(t, s)
		v1 := loadConfig(t, s, f.pid).Version()
		if v := loadConfig(t, s, f.pid).Version(); v != v1 {
			t.Fatalf("version changed between two loads: %s, %s", v1, v)
		}
		// Subjects and keys are not configuration.
		f.populate(t, s)
		if v := loadConfig(t, s, f.pid).Version(); v != v1 {
			t.Fatalf("version changed by subjects and keys: %s, %s", v1, v)
		}
		cfg := clone(f.cfg)
		cfg.Roles[1].Permissions[1].Resource = "dev/*"
		must(t, s.ReplaceConfig(ctx, f.pid, cfg))
		if v := loadConfig(t, s, f.pid).Version(); v == v1 {
			t.Fatalf("version unchanged after a permission changed")
		}
	})
}
