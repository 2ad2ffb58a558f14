package storetest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/thauth/thauth"
)

func testChanges(t *testing.T, open func(t *testing.T) thauth.Store) {
	ctx := context.Background()

	t.Run("AppendAndRead", func(t *testing.T) {
		s := open(t)
		f := newFixture(t, s)
		batches := [][]thauth.Change{
			{{Kind: thauth.ChangeProject}},
			{{Kind: thauth.ChangeConfig}, {Kind: thauth.ChangeSubject, Ref: "user:b"}, {Kind: thauth.ChangeSubject, Ref: "user:a"}},
			{{Kind: thauth.ChangeKey, Ref: "k1"}},
			{{Kind: thauth.ChangeSubjects}},
		}
		var want []thauth.Change
		for i, b := range batches {
			when := at(time.Duration(i) * time.Second)
			rev, err := s.AppendChanges(ctx, f.pid, b, when.In(time.FixedZone("X", -3600)))
			must(t, err)
			if rev != int64(i+1) {
				t.Fatalf("AppendChanges #%d returned revision %d, want %d", i, rev, i+1)
			}
			for _, c := range b {
				want = append(want, thauth.Change{ProjectID: f.pid, Revision: rev, Kind: c.Kind, Ref: c.Ref, At: when})
			}
		}
		p, err := s.GetProject(ctx, f.pid)
		must(t, err)
		if p.Revision != int64(len(batches)) {
			t.Errorf("project revision = %d, want %d", p.Revision, len(batches))
		}
		got, err := s.ChangesSince(ctx, f.pid, 0, 100)
		must(t, err)
		diff(t, "all changes", want, got)
		if len(got) > 0 {
			wantUTC(t, "At", got[0].At)
		}
		got, err = s.ChangesSince(ctx, f.pid, 2, 100)
		must(t, err)
		diff(t, "changes after 2", want[4:], got)
		got, err = s.ChangesSince(ctx, f.pid, 4, 100)
		must(t, err)
		diff(t, "changes after 4", []thauth.Change(nil), got)
	})

	t.Run("Limit", func(t *testing.T) {
		s := open(t)
		f := newFixture(t, s)
		// Revisions 1..6 with 1, 3, 1, 2, 1, 1 changes.
		sizes := []int{1, 3, 1, 2, 1, 1}
		total := 0
		for _, n := range sizes {
			var cs []thauth.Change
			for i := range n {
				cs = append(cs, thauth.Change{Kind: thauth.ChangeSubject, Ref: fmt.Sprint(i)})
			}
			_, err := s.AppendChanges(ctx, f.pid, cs, base)
			must(t, err)
			total += n
		}
		for after := int64(0); after <= int64(len(sizes)); after++ {
			avail := 0
			for r := after + 1; r <= int64(len(sizes)); r++ {
				avail += sizes[r-1]
			}
			for limit := 1; limit <= total+1; limit++ {
				got, err := s.ChangesSince(ctx, f.pid, after, limit)
				must(t, err)
				name := fmt.Sprintf("after %d limit %d", after, limit)
				if len(got) < min(limit, avail) {
					t.Errorf("%s: %d changes, want at least %d", name, len(got), min(limit, avail))
				}
				// Whole revisions only, in order, starting right after `after`.
				next := after + 1
				for i := 0; i < len(got); {
					r := got[i].Revision
					if r != next {
						t.Fatalf("%s: revision %d where %d was due: %+v", name, r, next, got)
					}
					n := 0
					for i < len(got) && got[i].Revision == r {
						if got[i].Ref != fmt.Sprint(n) {
							t.Fatalf("%s: revision %d out of order: %+v", name, r, got)
						}
						i++
						n++
					}
					if n != sizes[r-1] {
						t.Fatalf("%s: revision %d split (%d of %d changes)", name, r, n, sizes[r-1])
					}
					if n > 0 && i > limit && i-n >= limit {
						t.Fatalf("%s: revision %d begins beyond the limit", name, r)
					}
					next++
				}
			}
		}
	})

	t.Run("UnknownProject", func(t *testing.T) {
		s := open(t)
		_, err := s.AppendChanges(ctx, newID(), []thauth.Change{{Kind: thauth.ChangeConfig}}, base)
		wantCode(t, err, thauth.ENotFound)
		cs, err := s.ChangesSince(ctx, newID(), 0, 10)
		wantNotFoundOrEmpty(t, err, len(cs))
	})

	t.Run("ProjectsCountSeparately", func(t *testing.T) {
		s := open(t)
		f1, f2 := newFixture(t, s), newFixture(t, s)
		for i := range 3 {
			r1, err := s.AppendChanges(ctx, f1.pid, []thauth.Change{{Kind: thauth.ChangeConfig}}, base)
			must(t, err)
			r2, err := s.AppendChanges(ctx, f2.pid, []thauth.Change{{Kind: thauth.ChangeConfig}}, base)
			must(t, err)
			if r1 != int64(i+1) || r2 != int64(i+1) {
				t.Fatalf("round %d: revisions %d and %d, want %d each", i, r1, r2, i+1)
			}
		}
	})
}

func testTx(t *testing.T, open func(t *testing.T) thauth.Store) {
	ctx := context.Background()

	t.Run("CommitAndReadOwnWrites", func(t *testing.T) {
		s := open(t)
		f := newFixture(t, s)
		var rev int64
		err := s.Tx(ctx, func(ctx context.Context, tx thauth.Data) error {
			cfg := clone(f.cfg)
			cfg.Roles[1].Description = "in tx"
			if err := tx.ReplaceConfig(ctx, f.pid, cfg); err != nil {
				return err
			}
			got, err := tx.LoadConfig(ctx, f.pid)
			if err != nil {
				return err
			}
			diff(t, "config read inside tx", cfg, got)
			sub := thauth.Subject{SubjectID: "user:alice", SubjectType: "user"}
			if _, err := tx.UpsertSubject(ctx, f.pid, &sub, base); err != nil {
				return err
			}
			if err := tx.ReplaceAssignments(ctx, f.pid, "user:alice", thauth.Scope{}, []thauth.Assignment{f.assignment(f.admin, "")}); err != nil {
				return err
			}
			g, err := tx.LoadSubjectGrants(ctx, f.pid, "user:alice")
			if err != nil {
				return err
			}
			diff(t, "grants read inside tx", []thauth.Assignment{f.assignment(f.admin, "")}, g.Assignments)
			rev, err = tx.AppendChanges(ctx, f.pid, []thauth.Change{{Kind: thauth.ChangeConfig}, {Kind: thauth.ChangeSubject, Ref: "user:alice"}}, base)
			if err != nil {
				return err
			}
			p, err := tx.GetProject(ctx, f.pid)
			if err != nil {
				return err
			}
			if p.Revision != rev {
				t.Errorf("revision read inside tx = %d, want %d", p.Revision, rev)
			}
			cs, err := tx.ChangesSince(ctx, f.pid, 0, 0)
			if err != nil {
				return err
			}
			if len(cs) != 2 {
				t.Errorf("changes read inside tx: %d, want 2", len(cs))
			}
			return nil
		})
		must(t, err)
		if rev != 1 {
			t.Errorf("revision = %d, want 1", rev)
		}
		st := snapshot(t, s, f.pid)
		if st.Project.Revision != 1 || len(st.Changes) != 2 || len(st.Subjects) != 1 || st.Config.Roles[1].Description != "in tx" {
			t.Errorf("committed state incomplete: %+v", st)
		}
	})

	// write does every kind of write inside tx.
	write := func(ctx context.Context, tx thauth.Data, f *fixture) error {
		org := thauth.Organization{ID: newID(), Name: "new", CreatedAt: base}
		if err := tx.CreateOrganization(ctx, &org); err != nil {
			return err
		}
		p := thauth.Project{ID: newID(), Name: "new", CreatedAt: base}
		if err := tx.CreateProject(ctx, org.ID, &p); err != nil {
			return err
		}
		if err := tx.ReplaceConfig(ctx, f.pid, &thauth.Config{}); err != nil {
			return err
		}
		sub := thauth.Subject{SubjectID: "user:new", SubjectType: "user"}
		if _, err := tx.UpsertSubject(ctx, f.pid, &sub, base); err != nil {
			return err
		}
		if err := tx.DeleteSubject(ctx, f.pid, "user:alice"); err != nil {
			return err
		}
		if err := tx.ReplaceAssignments(ctx, f.pid, "user:bob", thauth.Scope{All: true}, nil); err != nil {
			return err
		}
		k := newKey(f.pid, "new", base)
		if err := tx.CreateAPIKey(ctx, f.pid, &k); err != nil {
			return err
		}
		keys, err := tx.ListAPIKeys(ctx, f.pid)
		if err != nil {
			return err
		}
		if err := tx.RevokeAPIKey(ctx, f.pid, keys[len(keys)-1].ID, base); err != nil {
			return err
		}
		if err := tx.TouchAPIKeys(ctx, f.pid, map[string]time.Time{keys[len(keys)-1].ID: at(time.Hour)}); err != nil {
			return err
		}
		_, err = tx.AppendChanges(ctx, f.pid, []thauth.Change{{Kind: thauth.ChangeSubjects}}, base)
		return err
	}

	t.Run("RollbackOnError", func(t *testing.T) {
		s := open(t)
		f := newFixture(t, s)
		f.populate(t, s)
		before := snapshot(t, s, f.pid)
		projects, err := s.ProjectRevisions(ctx)
		must(t, err)
		errFail := errors.New("fail")
		err = s.Tx(ctx, func(ctx context.Context, tx thauth.Data) error {
			if err := write(ctx, tx, f); err != nil {
				return err
			}
			return errFail
		})
		if !errors.Is(err, errFail) {
			t.Fatalf("Tx returned %v, want the closure's error", err)
		}
		diff(t, "state after rollback", before, snapshot(t, s, f.pid))
		after, err := s.ProjectRevisions(ctx)
		must(t, err)
		diff(t, "projects after rollback", sortedProjects(projects), sortedProjects(after))
	})

	t.Run("RollbackOnPanic", func(t *testing.T) {
		s := open(t)
		f := newFixture(t, s)
		f.populate(t, s)
		before := snapshot(t, s, f.pid)
		var recovered any
		func() {
			defer func() { recovered = recover() }()
			_ = s.Tx(ctx, func(ctx context.Context, tx thauth.Data) error {
				if err := write(ctx, tx, f); err != nil {
					return err
				}
				panic("boom")
			})
		}()
		if recovered != "boom" {
			t.Fatalf("recovered %v, want the closure's panic", recovered)
		}
		diff(t, "state after panic", before, snapshot(t, s, f.pid))
		// The store is usable afterwards.
		must(t, s.Tx(ctx, func(ctx context.Context, tx thauth.Data) error {
			_, err := tx.AppendChanges(ctx, f.pid, nil, base)
			return err
		}))
	})

	t.Run("StoreErrorInsideTxRollsBack", func(t *testing.T) {
		s := open(t)
		f := newFixture(t, s)
		before := snapshot(t, s, f.pid)
		err := s.Tx(ctx, func(ctx context.Context, tx thauth.Data) error {
			if _, err := tx.AppendChanges(ctx, f.pid, []thauth.Change{{Kind: thauth.ChangeConfig}}, base); err != nil {
				return err
			}
			cfg := clone(f.cfg)
			cfg.Roles[0].Name = cfg.Roles[1].Name
			return tx.ReplaceConfig(ctx, f.pid, cfg)
		})
		wantCode(t, err, thauth.EConflict)
		diff(t, "state", before, snapshot(t, s, f.pid))
	})

	t.Run("ConcurrentRevisionsGapFree", func(t *testing.T) {
		s := open(t)
		f := newFixture(t, s)
		const workers, each = 6, 8
		var wg sync.WaitGroup
		revs := make(chan int64, workers*each)
		errs := make(chan error, workers*each)
		for w := range workers {
			wg.Go(func() {
				for i := range each {
					err := s.Tx(ctx, func(ctx context.Context, tx thauth.Data) error {
						id := fmt.Sprintf("user:%d-%d", w, i)
						sub := thauth.Subject{SubjectID: id, SubjectType: "user"}
						if _, err := tx.UpsertSubject(ctx, f.pid, &sub, base); err != nil {
							return err
						}
						rev, err := tx.AppendChanges(ctx, f.pid, []thauth.Change{{Kind: thauth.ChangeSubject, Ref: id}}, base)
						if err != nil {
							return err
						}
						revs <- rev
						return nil
					})
					if err != nil {
						errs <- err
					}
				}
			})
		}
		wg.Wait()
		close(revs)
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
		seen := map[int64]bool{}
		for r := range revs {
			if seen[r] {
				t.Fatalf("revision %d handed out twice", r)
			}
			seen[r] = true
		}
		cs, err := s.ChangesSince(ctx, f.pid, 0, 0)
		must(t, err)
		if len(cs) != workers*each {
			t.Fatalf("%d changes, want %d", len(cs), workers*each)
		}
		for i, c := range cs {
			if c.Revision != int64(i+1) || !seen[c.Revision] {
				t.Fatalf("change %d has revision %d: revisions not gap-free", i, c.Revision)
			}
		}
		p, err := s.GetProject(ctx, f.pid)
		must(t, err)
		if p.Revision != workers*each {
			t.Errorf("project revision %d, want %d", p.Revision, workers*each)
		}
	})
}
