package storetest

import (
	"context"
	"testing"
	"time"

	"github.com/thauth/thauth"
)

// testIsolation calls every method with project A's id and ids of project B's rows, and
// checks that nothing of B is found or changed.
func testIsolation(t *testing.T, open func(t *testing.T) thauth.Store) {
	ctx := context.Background()

	type env struct {
		s       thauth.Store
		a, b    *fixture
		bKey    thauth.APIKey
		bBefore state
	}
	setup := func(t *testing.T) *env {
		t.Helper()
		e := &env{s: open(t)}
		e.a, e.b = newFixture(t, e.s), newFixture(t, e.s)
		e.a.populate(t, e.s)
		e.b.populate(t, e.s)
		e.b.subject(t, e.s, "user:only-b")
		must(t, e.s.ReplaceAssignments(ctx, e.b.pid, "user:only-b", thauth.Scope{}, []thauth.Assignment{e.b.assignment(e.b.admin, "")}))
		keys, err := e.s.ListAPIKeys(ctx, e.b.pid)
		must(t, err)
		e.bKey = keys[0]
		e.bBefore = snapshot(t, e.s, e.b.pid)
		return e
	}
	check := func(t *testing.T, e *env) {
		t.Helper()
		diff(t, "project B", e.bBefore, snapshot(t, e.s, e.b.pid))
	}

	type tc struct {
		name string
		// run calls the method under test and fails t if it returned anything of B's.
		run func(t *testing.T, e *env)
	}
	cases := []tc{
		{"GetSubjectOfB", func(t *testing.T, e *env) {
			_, err := e.s.GetSubject(ctx, e.a.pid, "user:only-b")
			wantCode(t, err, thauth.ENotFound)
		}},
		{"LoadSubjectGrantsOfB", func(t *testing.T, e *env) {
			_, err := e.s.LoadSubjectGrants(ctx, e.a.pid, "user:only-b")
			wantCode(t, err, thauth.ENotFound)
		}},
		{"DeleteSubjectOfB", func(t *testing.T, e *env) {
			wantCode(t, e.s.DeleteSubject(ctx, e.a.pid, "user:only-b"), thauth.ENotFound)
		}},
		{"ReplaceGrantsOfSubjectOfB", func(t *testing.T, e *env) {
			wantCode(t, e.s.ReplaceAssignments(ctx, e.a.pid, "user:only-b", thauth.Scope{All: true}, nil), thauth.ENotFound)
			wantCode(t, e.s.ReplaceOverrides(ctx, e.a.pid, "user:only-b", thauth.Scope{All: true}, nil), thauth.ENotFound)
		}},
		{"AssignRoleOfB", func(t *testing.T, e *env) {
			err := e.s.ReplaceAssignments(ctx, e.a.pid, "user:alice", thauth.Scope{}, []thauth.Assignment{{RoleID: e.b.admin}})
			wantCode(t, err, thauth.ENotFound)
		}},
		{"OverrideActionOfB", func(t *testing.T, e *env) {
			o := e.b.override(e.b.billingRead, thauth.Allow, "", "")
			err := e.s.ReplaceOverrides(ctx, e.a.pid, "user:alice", thauth.Scope{}, []thauth.Override{o})
			wantCode(t, err, thauth.ENotFound)
		}},
		{"SameSubjectIDIsAnotherSubject", func(t *testing.T, e *env) {
			// Both projects have user:shared; writing A's must leave B's alone.
			sub := thauth.Subject{SubjectID: "user:shared", SubjectType: "service"}
			created, err := e.s.UpsertSubject(ctx, e.a.pid, &sub, at(time.Hour))
			must(t, err)
			if created {
				t.Error("upsert in A created user:shared, which exists in A")
			}
			if sub.ProjectID != e.a.pid {
				t.Errorf("upsert returned project %s, want A", sub.ProjectID)
			}
			must(t, e.s.ReplaceAssignments(ctx, e.a.pid, "user:shared", thauth.Scope{All: true}, nil))
			must(t, e.s.ReplaceOverrides(ctx, e.a.pid, "user:shared", thauth.Scope{All: true}, nil))
			must(t, e.s.DeleteSubject(ctx, e.a.pid, "user:shared"))
			got, err := e.s.GetSubject(ctx, e.b.pid, "user:shared")
			must(t, err)
			if got.SubjectType != "user" {
				t.Errorf("B's subject type changed to %q", got.SubjectType)
			}
		}},
		{"GetAPIKeyOfB", func(t *testing.T, e *env) {
			_, err := e.s.GetAPIKey(ctx, e.a.pid, e.bKey.ID)
			wantCode(t, err, thauth.ENotFound)
		}},
		{"RevokeAPIKeyOfB", func(t *testing.T, e *env) {
			wantCode(t, e.s.RevokeAPIKey(ctx, e.a.pid, e.bKey.ID, base), thauth.ENotFound)
		}},
		{"TouchAPIKeyOfB", func(t *testing.T, e *env) {
			must(t, e.s.TouchAPIKeys(ctx, e.a.pid, map[string]time.Time{e.bKey.ID: at(time.Hour)}))
		}},
		{"CreateAPIKeyWithIDOfB", func(t *testing.T, e *env) {
			k := newKey(e.a.pid, "copy", base)
			k.ID = e.bKey.ID
			wantCode(t, e.s.CreateAPIKey(ctx, e.a.pid, &k), thauth.EConflict)
		}},
		{"ListAPIKeys", func(t *testing.T, e *env) {
			ks, err := e.s.ListAPIKeys(ctx, e.a.pid)
			must(t, err)
			for _, k := range ks {
				if k.ProjectID != e.a.pid {
					t.Errorf("A's list has key %s of project %s", k.ID, k.ProjectID)
				}
			}
			if len(ks) != 2 {
				t.Errorf("A has %d keys, want 2", len(ks))
			}
		}},
		{"Scan", func(t *testing.T, e *env) {
			got := scanAll(t, e.s, e.a.pid)
			diff(t, "A's subjects", []string{"user:alice", "user:bob", "user:shared"}, subjectIDs(got))
			for _, g := range got {
				if g.Subject.ProjectID != e.a.pid {
					t.Errorf("A's scan has subject of project %s", g.Subject.ProjectID)
				}
			}
		}},
		{"ChangesAndRevisions", func(t *testing.T, e *env) {
			rev, err := e.s.AppendChanges(ctx, e.a.pid, []thauth.Change{{Kind: thauth.ChangeConfig}}, base)
			must(t, err)
			if rev != 3 {
				t.Errorf("A's revision = %d, want 3", rev)
			}
			cs, err := e.s.ChangesSince(ctx, e.a.pid, 0, 0)
			must(t, err)
			for _, c := range cs {
				if c.ProjectID != e.a.pid {
					t.Errorf("A's changes include one of project %s", c.ProjectID)
				}
			}
			if len(cs) != 3 {
				t.Errorf("A has %d changes, want 3", len(cs))
			}
		}},
		{"ReplaceConfigWithFeatureIDOfB", func(t *testing.T, e *env) {
			cfg := clone(e.a.cfg)
			cfg.Features = append(cfg.Features, thauth.Feature{ID: e.b.billing, Name: "stolen", Actions: []thauth.Action{{ID: newID(), Name: "x"}}})
			if err := e.s.ReplaceConfig(ctx, e.a.pid, cfg); err == nil {
				t.Error("ReplaceConfig of A accepted a feature id of B")
			}
		}},
		{"ReplaceConfigWithActionIDOfB", func(t *testing.T, e *env) {
			cfg := clone(e.a.cfg)
			cfg.Features[0].Actions = append(cfg.Features[0].Actions, thauth.Action{ID: e.b.billingRead, Name: "stolen"})
			if err := e.s.ReplaceConfig(ctx, e.a.pid, cfg); err == nil {
				t.Error("ReplaceConfig of A accepted an action id of B")
			}
		}},
		{"ReplaceConfigWithRoleIDOfB", func(t *testing.T, e *env) {
			cfg := clone(e.a.cfg)
			cfg.Roles = append(cfg.Roles, thauth.Role{ID: e.b.viewer, Name: "stolen"})
			if err := e.s.ReplaceConfig(ctx, e.a.pid, cfg); err == nil {
				t.Error("ReplaceConfig of A accepted a role id of B")
			}
		}},
		{"PermissionOnActionOfB", func(t *testing.T, e *env) {
			cfg := clone(e.a.cfg)
			cfg.Roles[0].Permissions = append(cfg.Roles[0].Permissions, thauth.Permission{FeatureID: e.b.billing, ActionID: e.b.billingWr})
			if err := e.s.ReplaceConfig(ctx, e.a.pid, cfg); err == nil {
				t.Error("ReplaceConfig of A accepted a permission on an action of B")
			}
		}},
		{"ReplaceConfigOfAWithConfigOfB", func(t *testing.T, e *env) {
			// B's configuration, ids and all, written to A: the ids are B's, so it must fail.
			if err := e.s.ReplaceConfig(ctx, e.a.pid, clone(e.b.cfg)); err == nil {
				t.Error("ReplaceConfig of A accepted B's configuration with B's ids")
			}
		}},
		{"DeleteConfigOfA", func(t *testing.T, e *env) {
			must(t, e.s.ReplaceConfig(ctx, e.a.pid, &thauth.Config{}))
		}},
		{"ListProjects", func(t *testing.T, e *env) {
			ps, err := e.s.ListProjects(ctx, e.a.org.ID)
			must(t, err)
			if len(ps) != 1 || ps[0].ID != e.a.pid {
				t.Errorf("projects of A's organization: %+v", ps)
			}
		}},
		{"CreateProjectWithIDOfB", func(t *testing.T, e *env) {
			p := thauth.Project{ID: e.b.pid, Name: "stolen", CreatedAt: base}
			wantCode(t, e.s.CreateProject(ctx, e.a.org.ID, &p), thauth.EConflict)
		}},
		{"InsideTx", func(t *testing.T, e *env) {
			err := e.s.Tx(ctx, func(ctx context.Context, tx thauth.Data) error {
				if _, err := tx.GetSubject(ctx, e.a.pid, "user:only-b"); thauth.ErrorCodeOf(err) != thauth.ENotFound {
					t.Errorf("GetSubject in tx: %v, want ENotFound", err)
				}
				if _, err := tx.GetAPIKey(ctx, e.a.pid, e.bKey.ID); thauth.ErrorCodeOf(err) != thauth.ENotFound {
					t.Errorf("GetAPIKey in tx: %v, want ENotFound", err)
				}
				// A failed statement may abort the transaction (PostgreSQL), so it comes last.
				err := tx.ReplaceAssignments(ctx, e.a.pid, "user:alice", thauth.Scope{}, []thauth.Assignment{{RoleID: e.b.viewer}})
				wantCode(t, err, thauth.ENotFound)
				return err
			})
			wantCode(t, err, thauth.ENotFound)
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e := setup(t)
			c.run(t, e)
			check(t, e)
		})
	}
}
