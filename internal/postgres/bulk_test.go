package postgres_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/thauth/thauth"
	"github.com/thauth/thauth/internal/postgres/pgtest"
)

// bulkGrants returns the grants of test subject i in variant v (nil slices for "leave as
// is" when keep says so).
func bulkGrants(cfg *thauth.Config, i, v int) ([]thauth.Assignment, []thauth.Override) {
	until := time.Date(2030, 1, 1, 0, 0, 0, 123456789, time.UTC)
	as := []thauth.Assignment{}
	for a := range (i + v) % 4 {
		x := thauth.Assignment{RoleID: cfg.Roles[(i+a+v)%len(cfg.Roles)].ID}
		if a%2 == 1 {
			x.Tenant = fmt.Sprintf("t%d", (i+v)%3)
		}
		if a == 2 {
			x.Until = &until
		}
		as = append(as, x)
	}
	if i%7 == 0 { // a duplicated row
		as = append(as, as...)
	}
	os := []thauth.Override{}
	for o := range (i + 2*v) % 3 {
		f := cfg.Features[(i+o)%len(cfg.Features)]
		os = append(os, thauth.Override{FeatureID: f.ID, ActionID: f.Actions[(o+v)%len(f.Actions)].ID,
			Effect: []thauth.Effect{thauth.Allow, thauth.Deny}[o%2], Resource: fmt.Sprintf("r%d/*", o), Tenant: fmt.Sprintf("t%d", o%2)})
	}
	return as, os
}

func bulkConfig() *thauth.Config {
	cfg := &thauth.Config{}
	for f := range 3 {
		ft := thauth.Feature{ID: newID(), Name: fmt.Sprintf("f%d", f)}
		for a := range 3 {
			ft.Actions = append(ft.Actions, thauth.Action{ID: newID(), Name: fmt.Sprintf("a%d", a)})
		}
		cfg.Features = append(cfg.Features, ft)
	}
	for r := range 5 {
		cfg.Roles = append(cfg.Roles, thauth.Role{ID: newID(), Name: fmt.Sprintf("r%d", r)})
	}
	return cfg
}

// TestWriteSubjectsMatchesPerCall writes the same subjects, starting from the same stored
// grants, once with WriteSubjects and once with UpsertSubject and the replaces, and
// compares what is stored.
func TestWriteSubjectsMatchesPerCall(t *testing.T) {
	s := pgtest.Migrated(t)
	ctx := context.Background()
	pid := project(t, s)
	cfg := bulkConfig()
	if err := s.ReplaceConfig(ctx, pid, cfg); err != nil {
		t.Fatal(err)
	}
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	t1 := t0.Add(time.Hour + 999)
	all := thauth.Scope{All: true}
	const n = 150
	perCall := func(d thauth.Data, sg *thauth.SubjectGrants, now time.Time) error {
		sub := sg.Subject
		if _, err := d.UpsertSubject(ctx, pid, &sub, now); err != nil {
			return err
		}
		if sg.Assignments != nil {
			if err := d.ReplaceAssignments(ctx, pid, sub.SubjectID, all, sg.Assignments); err != nil {
				return err
			}
		}
		if sg.Overrides != nil {
			return d.ReplaceOverrides(ctx, pid, sub.SubjectID, all, sg.Overrides)
		}
		return nil
	}
	// Initial state: subjects 0..n-1 of both families exist (a third of them do not, to be
	// created by the second write).
	for _, fam := range []string{"b", "c"} {
		for i := range n {
			if i%3 == 0 {
				continue
			}
			as, os := bulkGrants(cfg, i, 0)
			sg := &thauth.SubjectGrants{Subject: thauth.Subject{SubjectID: fmt.Sprintf("%s:%04d", fam, i), SubjectType: "user"}, Assignments: as, Overrides: os}
			if err := perCall(s, sg, t0); err != nil {
				t.Fatal(err)
			}
		}
	}
	// The second write: new grants, some kinds left as they are (nil).
	want := func(fam string) []*thauth.SubjectGrants {
		var out []*thauth.SubjectGrants
		for i := range n {
			as, os := bulkGrants(cfg, i, 1)
			if i%5 == 1 {
				as = nil
			}
			if i%5 == 2 {
				os = nil
			}
			out = append(out, &thauth.SubjectGrants{Subject: thauth.Subject{SubjectID: fmt.Sprintf("%s:%04d", fam, i), SubjectType: fmt.Sprintf("type%d", i%2)},
				Assignments: as, Overrides: os})
		}
		return out
	}
	err := s.Tx(ctx, func(ctx context.Context, tx thauth.Data) error {
		// A per-call write of a subject just before, in the same transaction (fresh marks).
		if err := perCall(tx, &thauth.SubjectGrants{Subject: thauth.Subject{SubjectID: "b:0000", SubjectType: "x"},
			Assignments: []thauth.Assignment{{RoleID: cfg.Roles[0].ID}}}, t0); err != nil {
			return err
		}
		if err := tx.(thauth.SubjectBulkWriter).WriteSubjects(ctx, pid, want("b"), t1); err != nil {
			return err
		}
		// And one after, which must see the rows WriteSubjects wrote.
		as, os := bulkGrants(cfg, 3, 2)
		return perCall(tx, &thauth.SubjectGrants{Subject: thauth.Subject{SubjectID: "b:0003", SubjectType: "type1"}, Assignments: as, Overrides: os}, t1)
	})
	if err != nil {
		t.Fatal(err)
	}
	err = s.Tx(ctx, func(ctx context.Context, tx thauth.Data) error {
		if err := perCall(tx, &thauth.SubjectGrants{Subject: thauth.Subject{SubjectID: "c:0000", SubjectType: "x"},
			Assignments: []thauth.Assignment{{RoleID: cfg.Roles[0].ID}}}, t0); err != nil {
			return err
		}
		for _, sg := range want("c") {
			if err := perCall(tx, sg, t1); err != nil {
				return err
			}
		}
		as, os := bulkGrants(cfg, 3, 2)
		return perCall(tx, &thauth.SubjectGrants{Subject: thauth.Subject{SubjectID: "c:0003", SubjectType: "type1"}, Assignments: as, Overrides: os}, t1)
	})
	if err != nil {
		t.Fatal(err)
	}
	for i := range n {
		b, err := s.LoadSubjectGrants(ctx, pid, fmt.Sprintf("b:%04d", i))
		if err != nil {
			t.Fatal(err)
		}
		c, err := s.LoadSubjectGrants(ctx, pid, fmt.Sprintf("c:%04d", i))
		if err != nil {
			t.Fatal(err)
		}
		if b.Subject.SubjectType != c.Subject.SubjectType || !b.Subject.CreatedAt.Equal(c.Subject.CreatedAt) || !b.Subject.UpdatedAt.Equal(c.Subject.UpdatedAt) {
			t.Errorf("subject %d: bulk %+v, per call %+v", i, b.Subject, c.Subject)
		}
		if diff := cmp.Diff(c.Assignments, b.Assignments); diff != "" {
			t.Errorf("subject %d assignments (-per call +bulk):\n%s", i, diff)
		}
		if diff := cmp.Diff(c.Overrides, b.Overrides); diff != "" {
			t.Errorf("subject %d overrides (-per call +bulk):\n%s", i, diff)
		}
	}

	// The Store's own WriteSubjects, with a given id for a new subject.
	id := newID()
	if err := s.WriteSubjects(ctx, pid, []*thauth.SubjectGrants{{Subject: thauth.Subject{ID: id, SubjectID: "d:1", SubjectType: "user"},
		Assignments: []thauth.Assignment{{RoleID: cfg.Roles[1].ID, Tenant: "t"}}}}, t1); err != nil {
		t.Fatal(err)
	}
	g, err := s.LoadSubjectGrants(ctx, pid, "d:1")
	if err != nil {
		t.Fatal(err)
	}
	if g.Subject.ID != id || len(g.Assignments) != 1 || g.Assignments[0].RoleName != "r1" || len(g.Overrides) != 0 {
		t.Errorf("d:1 = %+v", g)
	}
}

// TestWriteSubjectsMissingReference checks that an unknown role or action is ENotFound and
// that the rolled-back transaction wrote nothing.
func TestWriteSubjectsMissingReference(t *testing.T) {
	s := pgtest.Migrated(t)
	ctx := context.Background()
	pid := project(t, s)
	other := project(t, s)
	cfg := bulkConfig()
	if err := s.ReplaceConfig(ctx, pid, cfg); err != nil {
		t.Fatal(err)
	}
	ocfg := bulkConfig()
	if err := s.ReplaceConfig(ctx, other, ocfg); err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	if _, err := s.UpsertSubject(ctx, pid, &thauth.Subject{SubjectID: "keep", SubjectType: "user"}, now); err != nil {
		t.Fatal(err)
	}
	if err := s.ReplaceAssignments(ctx, pid, "keep", thauth.Scope{All: true}, []thauth.Assignment{{RoleID: cfg.Roles[0].ID}}); err != nil {
		t.Fatal(err)
	}
	good := func() []*thauth.SubjectGrants {
		var out []*thauth.SubjectGrants
		for i := range 60 {
			out = append(out, &thauth.SubjectGrants{Subject: thauth.Subject{SubjectID: fmt.Sprintf("u%d", i), SubjectType: "user"},
				Assignments: []thauth.Assignment{{RoleID: cfg.Roles[i%5].ID}}})
		}
		return append(out, &thauth.SubjectGrants{Subject: thauth.Subject{SubjectID: "keep", SubjectType: "user"}, Assignments: []thauth.Assignment{}})
	}
	for name, bad := range map[string]func([]*thauth.SubjectGrants){
		"unknown role": func(sg []*thauth.SubjectGrants) {
			sg[30].Assignments = append(sg[30].Assignments, thauth.Assignment{RoleID: newID()})
		},
		"role of another project": func(sg []*thauth.SubjectGrants) {
			sg[30].Assignments = append(sg[30].Assignments, thauth.Assignment{RoleID: ocfg.Roles[0].ID})
		},
		"action of another project": func(sg []*thauth.SubjectGrants) {
			f := ocfg.Features[0]
			sg[10].Overrides = []thauth.Override{{FeatureID: f.ID, ActionID: f.Actions[0].ID, Effect: thauth.Allow}}
		},
		"action of another feature": func(sg []*thauth.SubjectGrants) {
			sg[10].Overrides = []thauth.Override{{FeatureID: cfg.Features[0].ID, ActionID: cfg.Features[1].Actions[0].ID, Effect: thauth.Allow}}
		},
	} {
		t.Run(name, func(t *testing.T) {
			sg := good()
			bad(sg)
			err := s.Tx(ctx, func(ctx context.Context, tx thauth.Data) error {
				return tx.(thauth.SubjectBulkWriter).WriteSubjects(ctx, pid, sg, now)
			})
			wantCode(t, err, thauth.ENotFound)
			if _, err := s.GetSubject(ctx, pid, "u0"); thauth.ErrorCodeOf(err) != thauth.ENotFound {
				t.Errorf("u0 written: %v", err)
			}
			g, err := s.LoadSubjectGrants(ctx, pid, "keep")
			if err != nil {
				t.Fatal(err)
			}
			if len(g.Assignments) != 1 {
				t.Errorf("keep's assignments changed: %+v", g.Assignments)
			}
		})
	}
	t.Run("duplicate subject", func(t *testing.T) {
		sg := good()
		sg = append(sg, sg[0])
		wantCode(t, s.WriteSubjects(ctx, pid, sg, now), thauth.EInvalid)
	})
	t.Run("unknown project", func(t *testing.T) {
		wantCode(t, s.WriteSubjects(ctx, newID(), good()[:1], now), thauth.ENotFound)
	})
	// The rolled-back transactions left the connection usable: a good write succeeds.
	if err := s.Tx(ctx, func(ctx context.Context, tx thauth.Data) error {
		return tx.(thauth.SubjectBulkWriter).WriteSubjects(ctx, pid, good(), now)
	}); err != nil {
		t.Fatal(err)
	}
	g, err := s.LoadSubjectGrants(ctx, pid, "keep")
	if err != nil {
		t.Fatal(err)
	}
	if len(g.Assignments) != 0 {
		t.Errorf("keep's assignments: %+v", g.Assignments)
	}
}
