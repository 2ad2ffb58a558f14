package storetest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/thauth/thauth"
)

func testSubjects(t *testing.T, open func(t *testing.T) thauth.Store) {
	ctx := context.Background()

	t.Run("UpsertCreatesThenUpdates", func(t *testing.T) {
		s := open(t)
		f := newFixture(t, s)
		loc := time.FixedZone("UTC-5", -5*3600)
		sub := thauth.Subject{SubjectID: "user:alice", SubjectType: "user"}
		created, err := s.UpsertSubject(ctx, f.pid, &sub, base.In(loc))
		must(t, err)
		if !created {
			t.Error("first upsert: created = false")
		}
		if sub.ID == "" {
			t.Fatal("first upsert did not set ID")
		}
		want := thauth.Subject{ID: sub.ID, ProjectID: f.pid, SubjectID: "user:alice", SubjectType: "user", CreatedAt: base, UpdatedAt: base}
		diff(t, "subject after create", want, sub)
		got, err := s.GetSubject(ctx, f.pid, "user:alice")
		must(t, err)
		diff(t, "stored subject", &want, got)
		wantUTC(t, "CreatedAt", got.CreatedAt)
		wantUTC(t, "UpdatedAt", got.UpdatedAt)

		again := thauth.Subject{SubjectID: "user:alice", SubjectType: "service"}
		created, err = s.UpsertSubject(ctx, f.pid, &again, at(time.Hour))
		must(t, err)
		if created {
			t.Error("second upsert: created = true")
		}
		want.SubjectType, want.UpdatedAt = "service", at(time.Hour)
		diff(t, "subject after update", want, again)
		got, err = s.GetSubject(ctx, f.pid, "user:alice")
		must(t, err)
		diff(t, "stored subject after update", &want, got)
	})

	t.Run("UpsertKeepsGrants", func(t *testing.T) {
		s := open(t)
		f := newFixture(t, s)
		f.subject(t, s, "user:alice")
		as := []thauth.Assignment{f.assignment(f.admin, "")}
		must(t, s.ReplaceAssignments(ctx, f.pid, "user:alice", thauth.Scope{}, as))
		f.subject(t, s, "user:alice")
		g, err := s.LoadSubjectGrants(ctx, f.pid, "user:alice")
		must(t, err)
		diff(t, "assignments", as, g.Assignments)
	})

	t.Run("UnknownProject", func(t *testing.T) {
		s := open(t)
		sub := thauth.Subject{SubjectID: "user:alice", SubjectType: "user"}
		_, err := s.UpsertSubject(ctx, newID(), &sub, base)
		wantCode(t, err, thauth.ENotFound)
	})

	t.Run("GetUnknown", func(t *testing.T) {
		s := open(t)
		f := newFixture(t, s)
		_, err := s.GetSubject(ctx, f.pid, "user:nobody")
		wantCode(t, err, thauth.ENotFound)
		_, err = s.LoadSubjectGrants(ctx, f.pid, "user:nobody")
		wantCode(t, err, thauth.ENotFound)
	})

	t.Run("DeleteRemovesGrants", func(t *testing.T) {
		s := open(t)
		f := newFixture(t, s)
		f.populate(t, s)
		must(t, s.DeleteSubject(ctx, f.pid, "user:alice"))
		_, err := s.GetSubject(ctx, f.pid, "user:alice")
		wantCode(t, err, thauth.ENotFound)
		wantCode(t, s.DeleteSubject(ctx, f.pid, "user:alice"), thauth.ENotFound)
		diff(t, "remaining subjects", []string{"user:bob", "user:shared"}, subjectIDs(scanAll(t, s, f.pid)))
		// Upserting it again starts with no grants and a new id.
		sub := f.subject(t, s, "user:alice")
		g, err := s.LoadSubjectGrants(ctx, f.pid, sub.SubjectID)
		must(t, err)
		if len(g.Assignments)+len(g.Overrides) != 0 {
			t.Errorf("recreated subject has grants: %+v", g)
		}
	})
}

func testGrants(t *testing.T, open func(t *testing.T) thauth.Store) {
	ctx := context.Background()

	load := func(t *testing.T, s thauth.Store, f *fixture, subjectID string) *thauth.SubjectGrants {
		t.Helper()
		g, err := s.LoadSubjectGrants(ctx, f.pid, subjectID)
		must(t, err)
		return g
	}

	t.Run("AssignmentsByScope", func(t *testing.T) {
		s := open(t)
		f := newFixture(t, s)
		f.subject(t, s, "user:alice")
		A := f.assignment
		type step struct {
			name  string
			scope thauth.Scope
			set   []thauth.Assignment
			want  []thauth.Assignment // every assignment afterwards, in canonical order
		}
		for _, st := range []step{
			{"global", thauth.Scope{}, []thauth.Assignment{A(f.viewer, ""), A(f.admin, "")},
				[]thauth.Assignment{A(f.admin, ""), A(f.viewer, "")}},
			{"tenant t1", thauth.Scope{Tenant: "t1"}, []thauth.Assignment{A(f.viewer, "t1")},
				[]thauth.Assignment{A(f.admin, ""), A(f.viewer, ""), A(f.viewer, "t1")}},
			{"tenant t2", thauth.Scope{Tenant: "t2"}, []thauth.Assignment{A(f.admin, "t2"), A(f.viewer, "t2")},
				[]thauth.Assignment{A(f.admin, ""), A(f.viewer, ""), A(f.viewer, "t1"), A(f.admin, "t2"), A(f.viewer, "t2")}},
			{"replace t1", thauth.Scope{Tenant: "t1"}, []thauth.Assignment{A(f.admin, "t1")},
				[]thauth.Assignment{A(f.admin, ""), A(f.viewer, ""), A(f.admin, "t1"), A(f.admin, "t2"), A(f.viewer, "t2")}},
			{"replace global", thauth.Scope{}, []thauth.Assignment{A(f.viewer, "")},
				[]thauth.Assignment{A(f.viewer, ""), A(f.admin, "t1"), A(f.admin, "t2"), A(f.viewer, "t2")}},
			{"clear t2", thauth.Scope{Tenant: "t2"}, nil,
				[]thauth.Assignment{A(f.viewer, ""), A(f.admin, "t1")}},
			{"untouched tenant", thauth.Scope{Tenant: "t9"}, nil,
				[]thauth.Assignment{A(f.viewer, ""), A(f.admin, "t1")}},
			{"all", thauth.Scope{All: true}, []thauth.Assignment{A(f.admin, "t3"), A(f.admin, "")},
				[]thauth.Assignment{A(f.admin, ""), A(f.admin, "t3")}},
			{"clear all", thauth.Scope{All: true}, []thauth.Assignment{}, nil},
		} {
			must(t, s.ReplaceAssignments(ctx, f.pid, "user:alice", st.scope, st.set))
			diff(t, "assignments after "+st.name, st.want, load(t, s, f, "user:alice").Assignments)
		}
	})

	t.Run("OverridesByScope", func(t *testing.T) {
		s := open(t)
		f := newFixture(t, s)
		f.subject(t, s, "user:alice")
		O := f.override
		type step struct {
			name  string
			scope thauth.Scope
			set   []thauth.Override
			want  []thauth.Override
		}
		for _, st := range []step{
			{"global", thauth.Scope{}, []thauth.Override{O(f.reportsExport, thauth.Deny, "prod/*", ""), O(f.billingRead, thauth.Allow, "", "")},
				[]thauth.Override{O(f.billingRead, thauth.Allow, "", ""), O(f.reportsExport, thauth.Deny, "prod/*", "")}},
			{"tenant t1", thauth.Scope{Tenant: "t1"}, []thauth.Override{O(f.billingRefund, thauth.Deny, "", "t1")},
				[]thauth.Override{O(f.billingRead, thauth.Allow, "", ""), O(f.reportsExport, thauth.Deny, "prod/*", ""), O(f.billingRefund, thauth.Deny, "", "t1")}},
			{"replace global", thauth.Scope{}, []thauth.Override{},
				[]thauth.Override{O(f.billingRefund, thauth.Deny, "", "t1")}},
			{"all", thauth.Scope{All: true}, []thauth.Override{O(f.billingWr, thauth.Allow, "a/b", "t2")},
				[]thauth.Override{O(f.billingWr, thauth.Allow, "a/b", "t2")}},
		} {
			must(t, s.ReplaceOverrides(ctx, f.pid, "user:alice", st.scope, st.set))
			diff(t, "overrides after "+st.name, st.want, load(t, s, f, "user:alice").Overrides)
		}
	})

	t.Run("AssignmentsAndOverridesIndependent", func(t *testing.T) {
		s := open(t)
		f := newFixture(t, s)
		f.subject(t, s, "user:alice")
		as := []thauth.Assignment{f.assignment(f.admin, "")}
		os := []thauth.Override{f.override(f.billingRead, thauth.Deny, "", "")}
		must(t, s.ReplaceAssignments(ctx, f.pid, "user:alice", thauth.Scope{All: true}, as))
		must(t, s.ReplaceOverrides(ctx, f.pid, "user:alice", thauth.Scope{All: true}, os))
		must(t, s.ReplaceAssignments(ctx, f.pid, "user:alice", thauth.Scope{All: true}, as))
		g := load(t, s, f, "user:alice")
		diff(t, "assignments", as, g.Assignments)
		diff(t, "overrides", os, g.Overrides)
	})

	t.Run("UnknownSubject", func(t *testing.T) {
		s := open(t)
		f := newFixture(t, s)
		wantCode(t, s.ReplaceAssignments(ctx, f.pid, "user:nobody", thauth.Scope{}, []thauth.Assignment{f.assignment(f.admin, "")}), thauth.ENotFound)
		wantCode(t, s.ReplaceOverrides(ctx, f.pid, "user:nobody", thauth.Scope{}, []thauth.Override{f.override(f.billingRead, thauth.Allow, "", "")}), thauth.ENotFound)
		wantCode(t, s.ReplaceAssignments(ctx, f.pid, "user:nobody", thauth.Scope{All: true}, nil), thauth.ENotFound)
	})

	t.Run("UnknownReferencesWriteNothing", func(t *testing.T) {
		s := open(t)
		f := newFixture(t, s)
		f.subject(t, s, "user:alice")
		as := []thauth.Assignment{f.assignment(f.viewer, "")}
		os := []thauth.Override{f.override(f.billingRead, thauth.Allow, "", "")}
		must(t, s.ReplaceAssignments(ctx, f.pid, "user:alice", thauth.Scope{}, as))
		must(t, s.ReplaceOverrides(ctx, f.pid, "user:alice", thauth.Scope{}, os))

		err := s.ReplaceAssignments(ctx, f.pid, "user:alice", thauth.Scope{}, []thauth.Assignment{f.assignment(f.admin, ""), {RoleID: newID()}})
		wantCode(t, err, thauth.ENotFound)
		bad := f.override(f.billingRead, thauth.Deny, "", "")
		bad.ActionID = newID()
		err = s.ReplaceOverrides(ctx, f.pid, "user:alice", thauth.Scope{}, []thauth.Override{f.override(f.billingWr, thauth.Deny, "", ""), bad})
		wantCode(t, err, thauth.ENotFound)
		// An action of another feature is not an action of this one.
		bad = f.override(f.billingRead, thauth.Deny, "", "")
		bad.ActionID = f.reportsRead
		err = s.ReplaceOverrides(ctx, f.pid, "user:alice", thauth.Scope{}, []thauth.Override{bad})
		wantCode(t, err, thauth.ENotFound)

		g := load(t, s, f, "user:alice")
		diff(t, "assignments", as, g.Assignments)
		diff(t, "overrides", os, g.Overrides)
	})

	t.Run("GrantOutsideScopeRejected", func(t *testing.T) {
		s := open(t)
		f := newFixture(t, s)
		f.subject(t, s, "user:alice")
		if err := s.ReplaceAssignments(ctx, f.pid, "user:alice", thauth.Scope{Tenant: "t1"}, []thauth.Assignment{f.assignment(f.admin, "t2")}); err == nil {
			t.Error("ReplaceAssignments accepted an assignment outside its scope")
		}
		if err := s.ReplaceOverrides(ctx, f.pid, "user:alice", thauth.Scope{}, []thauth.Override{f.override(f.billingRead, thauth.Allow, "", "t1")}); err == nil {
			t.Error("ReplaceOverrides accepted an override outside its scope")
		}
		g := load(t, s, f, "user:alice")
		if len(g.Assignments)+len(g.Overrides) != 0 {
			t.Errorf("grants written: %+v", g)
		}
	})

	t.Run("WindowsRoundTripMicroseconds", func(t *testing.T) {
		s := open(t)
		f := newFixture(t, s)
		f.subject(t, s, "user:alice")
		loc := time.FixedZone("UTC+5:30", 5*3600+1800)
		from := time.Date(2026, 12, 1, 0, 0, 0, 1000, loc)         // 1 µs
		until := time.Date(2027, 1, 1, 23, 59, 59, 999999000, loc) // last µs of a second
		early := time.Date(1999, 12, 31, 23, 59, 59, 5000, time.UTC)
		a := func(role, tenant string, w thauth.Window) thauth.Assignment {
			x := f.assignment(role, tenant)
			x.Window = w
			return x
		}
		as := []thauth.Assignment{
			a(f.admin, "", thauth.Window{From: &from}),
			a(f.admin, "", thauth.Window{Until: &until}),
			a(f.admin, "", thauth.Window{From: &early, Until: &until}),
			a(f.viewer, "t1", thauth.Window{}),
		}
		o := f.override(f.billingRefund, thauth.Allow, "", "")
		o.Window = thauth.Window{From: &from, Until: &until}
		must(t, s.ReplaceAssignments(ctx, f.pid, "user:alice", thauth.Scope{All: true}, as))
		must(t, s.ReplaceOverrides(ctx, f.pid, "user:alice", thauth.Scope{All: true}, []thauth.Override{o}))

		want := []thauth.Assignment{
			a(f.admin, "", thauth.Window{Until: &until}),
			a(f.admin, "", thauth.Window{From: &early, Until: &until}),
			a(f.admin, "", thauth.Window{From: &from}),
			a(f.viewer, "t1", thauth.Window{}),
		}
		g := load(t, s, f, "user:alice")
		diff(t, "assignments", want, g.Assignments)
		diff(t, "overrides", []thauth.Override{o}, g.Overrides)
		for i, x := range g.Assignments {
			for _, ts := range []*time.Time{x.From, x.Until} {
				if ts != nil {
					wantUTC(t, fmt.Sprintf("assignment %d window", i), *ts)
				}
			}
		}
		if got := g.Overrides[0].From; got == nil || got.Nanosecond() != 1000 {
			t.Errorf("override From = %v, want %v (microsecond kept)", got, from)
		}
	})

	t.Run("DeterministicOrder", func(t *testing.T) {
		s := open(t)
		f := newFixture(t, s)
		f.subject(t, s, "user:alice")
		a := func(role, tenant string, from *time.Time) thauth.Assignment {
			x := f.assignment(role, tenant)
			x.From = from
			return x
		}
		o := func(action string, effect thauth.Effect, resource, tenant string, until *time.Time) thauth.Override {
			x := f.override(action, effect, resource, tenant)
			x.Until = until
			return x
		}
		t1, t2 := at(time.Hour), at(2*time.Hour)
		wantA := []thauth.Assignment{
			a(f.admin, "", nil), a(f.admin, "", &t1), a(f.admin, "", &t2), a(f.viewer, "", nil),
			a(f.viewer, "B", nil), a(f.admin, "a", nil), a(f.viewer, "a", &t1),
		}
		wantO := []thauth.Override{
			o(f.billingRead, thauth.Allow, "", "", nil),
			o(f.billingRefund, thauth.Allow, "", "", nil),
			o(f.billingRefund, thauth.Deny, "", "", nil),
			o(f.billingRefund, thauth.Deny, "", "", &t1),
			o(f.billingRefund, thauth.Allow, "x/*", "", nil),
			o(f.reportsExport, thauth.Deny, "", "", nil),
			o(f.billingRead, thauth.Deny, "", "t1", nil),
		}
		for _, perm := range [][]int{{6, 5, 4, 3, 2, 1, 0}, {3, 0, 6, 1, 5, 2, 4}} {
			var as []thauth.Assignment
			var os []thauth.Override
			for _, i := range perm {
				as = append(as, wantA[i])
				os = append(os, wantO[i])
			}
			must(t, s.ReplaceAssignments(ctx, f.pid, "user:alice", thauth.Scope{All: true}, as))
			must(t, s.ReplaceOverrides(ctx, f.pid, "user:alice", thauth.Scope{All: true}, os))
			g := load(t, s, f, "user:alice")
			diff(t, "assignments", wantA, g.Assignments)
			diff(t, "overrides", wantO, g.Overrides)
			scanned := scanAll(t, s, f.pid)
			if len(scanned) != 1 {
				t.Fatalf("scan returned %d subjects, want 1", len(scanned))
			}
			diff(t, "scanned grants", g, scanned[0])
		}
	})
}

func testScan(t *testing.T, open func(t *testing.T) thauth.Store) {
	ctx := context.Background()

	t.Run("OrderAndCompleteness", func(t *testing.T) {
		s := open(t)
		f := newFixture(t, s)
		other := newFixture(t, s)
		other.populate(t, s)
		// Byte order, not a locale's: upper case before lower case, '1' before ':' before '_'.
		ids := []string{"user_1", "a", "user:10", "B", "user:2", "Zed", "é", "user:1", "service/x"}
		for i, id := range ids {
			f.subject(t, s, id)
			if i%3 == 2 {
				continue // some subjects have no grants at all
			}
			must(t, s.ReplaceAssignments(ctx, f.pid, id, thauth.Scope{All: true}, []thauth.Assignment{
				f.assignment(f.admin, ""), f.assignment(f.viewer, fmt.Sprintf("t%d", i)),
			}))
			if i%2 == 0 {
				must(t, s.ReplaceOverrides(ctx, f.pid, id, thauth.Scope{All: true}, []thauth.Override{
					f.override(f.billingRead, thauth.Deny, fmt.Sprintf("r/%d", i), ""),
				}))
			}
		}
		want := slices.Clone(ids)
		slices.Sort(want) // Go compares strings bytewise
		got := scanAll(t, s, f.pid)
		diff(t, "subject order", want, subjectIDs(got))
		for _, g := range got {
			one, err := s.LoadSubjectGrants(ctx, f.pid, g.Subject.SubjectID)
			must(t, err)
			diff(t, "scanned "+g.Subject.SubjectID, one, g)
		}
	})

	t.Run("StopsOnError", func(t *testing.T) {
		s := open(t)
		f := newFixture(t, s)
		f.populate(t, s)
		calls := 0
		err := s.ScanSubjectGrants(ctx, f.pid, func(*thauth.SubjectGrants) error {
			calls++
			return errStop
		})
		if !errors.Is(err, errStop) {
			t.Errorf("error = %v, want fn's error", err)
		}
		if calls != 1 {
			t.Errorf("fn called %d times after returning an error, want 1", calls)
		}
		// The store is still usable (no connection or lock left behind).
		f.subject(t, s, "user:after")
	})

	t.Run("EmptyProject", func(t *testing.T) {
		s := open(t)
		f := newFixture(t, s)
		if got := scanAll(t, s, f.pid); len(got) != 0 {
			t.Errorf("scan of a project without subjects returned %d", len(got))
		}
	})

	t.Run("UnknownProject", func(t *testing.T) {
		s := open(t)
		f := newFixture(t, s)
		f.populate(t, s)
		n := 0
		err := s.ScanSubjectGrants(ctx, newID(), func(*thauth.SubjectGrants) error { n++; return nil })
		wantNotFoundOrEmpty(t, err, n)
	})

	t.Run("ManySubjects", func(t *testing.T) {
		s := open(t)
		f := newFixture(t, s)
		const n = 300
		must(t, s.Tx(ctx, func(ctx context.Context, tx thauth.Data) error {
			for i := range n {
				id := fmt.Sprintf("user:%05d", (i*7919)%n) // inserted out of order
				sub := thauth.Subject{SubjectID: id, SubjectType: "user"}
				if _, err := tx.UpsertSubject(ctx, f.pid, &sub, base); err != nil {
					return err
				}
				if err := tx.ReplaceAssignments(ctx, f.pid, id, thauth.Scope{All: true}, []thauth.Assignment{f.assignment(f.viewer, "")}); err != nil {
					return err
				}
				if i%2 == 0 {
					if err := tx.ReplaceOverrides(ctx, f.pid, id, thauth.Scope{All: true}, []thauth.Override{f.override(f.billingRead, thauth.Deny, "", "")}); err != nil {
						return err
					}
				}
			}
			return nil
		}))
		got := scanAll(t, s, f.pid)
		if len(got) != n {
			t.Fatalf("scanned %d subjects, want %d", len(got), n)
		}
		overrides := 0
		for i, g := range got {
			if want := fmt.Sprintf("user:%05d", i); g.Subject.SubjectID != want {
				t.Fatalf("subject %d = %s, want %s", i, g.Subject.SubjectID, want)
			}
			if len(g.Assignments) != 1 {
				t.Fatalf("subject %s has %d assignments, want 1", g.Subject.SubjectID, len(g.Assignments))
			}
			overrides += len(g.Overrides)
		}
		if overrides != n/2 {
			t.Errorf("%d overrides scanned, want %d", overrides, n/2)
		}
	})
}
