//go:build unix

package manage

import (
	"context"
	"fmt"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/thauth/thauth"
	"github.com/thauth/thauth/internal/engine"
	"github.com/thauth/thauth/internal/postgres/pgtest"
)

// pgService returns a Service on a fresh migrated PostgreSQL store (skipped or failed per
// pgtest's convention when none is configured) and the id of the project Init created.
func pgService(t testing.TB) (*Service, thauth.Store, string) {
	t.Helper()
	st := pgtest.Migrated(t)
	c := &clock{t: testStart}
	svc := New(st, engine.New(st, engine.Options{Now: c.Now}), Options{Now: c.Now})
	res, err := svc.Init(context.Background(), "Acme", "Shop")
	if err != nil {
		t.Fatalf("Init: %v", err)
	}
	return svc, st, res.Project.ID
}

// TestApplyManySubjectsPostgres applies documents with more than bulkWriteThreshold changed
// subjects on PostgreSQL, where they go through thauth.SubjectBulkWriter, and on SQLite,
// where they do not: results, change logs and exports must be the same (the versions differ, since ids do), and re-applying an
// export must change nothing.
func TestApplyManySubjectsPostgres(t *testing.T) {
	ctx := context.Background()
	pg, pgStore, pgProject := pgService(t)
	if _, ok := any(pgStore).(thauth.SubjectBulkWriter); !ok {
		t.Fatal("the PostgreSQL store is not a SubjectBulkWriter")
	}
	lite := newEnv(t)

	const n = 300
	first := bigDocument(t, n, 0)
	doc, err := parseDocument(first, FormatJSON)
	if err != nil {
		t.Fatal(err)
	}
	// The second document: a third of the subjects change type, every other one loses its
	// overrides, every fifth changes roles, 10 are deleted and 70 are new.
	for i := range doc.Subjects {
		s := &doc.Subjects[i]
		if i%3 == 0 {
			s.Type = "service"
		}
		if i%2 == 0 {
			s.Overrides = nil
		}
		if i%5 == 0 {
			s.Roles = s.Roles[:1]
		}
	}
	doc.Subjects = doc.Subjects[10:]
	for i := range 70 {
		doc.Subjects = append(doc.Subjects, docSubject{ID: fmt.Sprintf("zz:%03d", i), Type: "user",
			Roles: []docAssignment{{Role: doc.Roles[i%len(doc.Roles)].Name, Tenant: "t"}}})
	}
	second, err := renderJSON(doc)
	if err != nil {
		t.Fatal(err)
	}

	for step, body := range [][]byte{first, second, first} {
		pres, err := pg.ApplyConfig(ctx, pgProject, body, FormatJSON, false)
		if err != nil {
			t.Fatalf("step %d: postgres apply: %v %+v", step, err, problemsOf(err))
		}
		lres, err := lite.svc.ApplyConfig(ctx, lite.project, body, FormatJSON, false)
		if err != nil {
			t.Fatalf("step %d: sqlite apply: %v %+v", step, err, problemsOf(err))
		}
		if len(pres.Changes.Created)+len(pres.Changes.Updated) <= bulkWriteThreshold {
			t.Fatalf("step %d: only %d subjects written", step, len(pres.Changes.Created)+len(pres.Changes.Updated))
		}
		if diff := cmp.Diff(lres.Changes, pres.Changes); diff != "" {
			t.Errorf("step %d: changes (-sqlite +postgres):\n%s", step, diff)
		}
		pch, err := pgStore.ChangesSince(ctx, pgProject, pres.Revision-1, 2000)
		if err != nil {
			t.Fatal(err)
		}
		lch, err := lite.store.ChangesSince(ctx, lite.project, lres.Revision-1, 2000)
		if err != nil {
			t.Fatal(err)
		}
		kinds := func(cs []thauth.Change) (out []string) {
			for _, c := range cs {
				out = append(out, string(c.Kind)+" "+c.Ref)
			}
			return out
		}
		if diff := cmp.Diff(kinds(lch), kinds(pch)); diff != "" {
			t.Errorf("step %d: change log (-sqlite +postgres):\n%s", step, diff)
		}

		pexp, err := pg.ExportConfig(ctx, pgProject, FormatJSON)
		if err != nil {
			t.Fatal(err)
		}
		lexp, err := lite.svc.ExportConfig(ctx, lite.project, FormatJSON)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(string(lexp), string(pexp)); diff != "" {
			t.Errorf("step %d: export (-sqlite +postgres):\n%s", step, diff)
		}
		res, err := pg.ApplyConfig(ctx, pgProject, pexp, FormatJSON, false)
		if err != nil {
			t.Fatal(err)
		}
		if !res.Changes.empty() || res.Revision != pres.Revision {
			t.Errorf("step %d: re-applying the export changed %+v (revision %d → %d)", step, res.Changes, pres.Revision, res.Revision)
		}
	}
}

// BenchmarkApplyPostgres20kSubjects applies a document of 20 000 subjects with 7 grants
// each (see bigDocument) to a new project on PostgreSQL, then re-applies it unchanged.
// Run with: go test -run XXX -bench ApplyPostgres -benchtime 1x ./internal/manage/
func BenchmarkApplyPostgres20kSubjects(b *testing.B) {
	const n = 20_000
	body := bigDocument(b, n, 0)
	ctx := context.Background()
	b.Run("create", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			b.StopTimer()
			svc, _, project := pgService(b)
			b.StartTimer()
			res, err := svc.ApplyConfig(ctx, project, body, FormatJSON, false)
			if err != nil {
				b.Fatalf("apply: %v %+v", err, problemsOf(err))
			}
			if len(res.Changes.Created) != n+50 {
				b.Fatalf("%d created", len(res.Changes.Created))
			}
		}
		b.ReportMetric(float64(7*n*b.N)/b.Elapsed().Seconds(), "grants/s")
	})
}
