package engine

import (
	"context"
	"os"
	"runtime"
	"strconv"
	"testing"
	"time"

	"github.com/thauth/thauth"
	"github.com/thauth/thauth/internal/engine/enginetest"
	"github.com/thauth/thauth/internal/sqlite"
)

// BenchmarkRestartToReady measures what a restart costs: opening the SQLite store and loading
// every project into snapshots (LoadAll) until the engine is ready, with about 1M grants
// (150k subjects × 7 grants; THAUTH_BENCH_SUBJECTS overrides). Target: ≤ 10 s. The store is
// written once, before the timer starts (that takes a while: it is a 1M-row bulk insert).
//
//	go test -run '^$' -bench RestartToReady -benchtime 1x ./internal/engine/
func BenchmarkRestartToReady(b *testing.B) {
	ctx := context.Background()
	w := enginetest.Default()
	w.Subjects = 150_000
	if n, err := strconv.Atoi(os.Getenv("THAUTH_BENCH_SUBJECTS")); err == nil && n > 0 {
		w.Subjects = n
	}
	dir := b.TempDir()
	st, err := sqlite.Open(ctx, dir, sqlite.Options{})
	if err != nil {
		b.Fatal(err)
	}
	if err := st.Migrate(ctx); err != nil {
		b.Fatal(err)
	}
	p := w.Project()
	grants := 0
	err = st.Tx(ctx, func(ctx context.Context, tx thauth.Data) error {
		org := thauth.Organization{ID: p.OrganizationID, Name: "bench", CreatedAt: w.Now()}
		if err := tx.CreateOrganization(ctx, &org); err != nil {
			return err
		}
		if err := tx.CreateProject(ctx, org.ID, &p); err != nil {
			return err
		}
		if err := tx.ReplaceConfig(ctx, p.ID, w.Config()); err != nil {
			return err
		}
		err := w.EachSubject(func(sg *thauth.SubjectGrants) error {
			s := sg.Subject
			if _, err := tx.UpsertSubject(ctx, p.ID, &s, w.Now()); err != nil {
				return err
			}
			if err := tx.ReplaceAssignments(ctx, p.ID, s.SubjectID, thauth.Scope{All: true}, sg.Assignments); err != nil {
				return err
			}
			grants += len(sg.Assignments) + len(sg.Overrides)
			return tx.ReplaceOverrides(ctx, p.ID, s.SubjectID, thauth.Scope{All: true}, sg.Overrides)
		})
		if err != nil {
			return err
		}
		_, err = tx.AppendChanges(ctx, p.ID, []thauth.Change{{Kind: thauth.ChangeSubjects}}, w.Now())
		return err
	})
	if err != nil {
		b.Fatal(err)
	}
	st.Close()
	runtime.GC()
	b.ResetTimer()
	for b.Loop() {
		start := time.Now()
		st, err := sqlite.Open(ctx, dir, sqlite.Options{})
		if err != nil {
			b.Fatal(err)
		}
		e := New(st, Options{})
		if err := e.LoadAll(ctx); err != nil || !e.Ready() {
			b.Fatalf("LoadAll: %v (ready %v)", err, e.Ready())
		}
		b.ReportMetric(time.Since(start).Seconds(), "s-to-ready")
		if snap := e.Snapshot(p.ID); snap == nil || snap.Subjects() != w.Subjects {
			b.Fatalf("snapshot incomplete")
		}
		st.Close()
	}
	b.ReportMetric(float64(grants), "grants")
}
