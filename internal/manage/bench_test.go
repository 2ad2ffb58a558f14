//go:build unix

package manage

import (
	"fmt"
	"syscall"
	"testing"
	"time"

	"github.com/thauth/thauth"
)

// bigDocument builds a JSON document with n subjects of 7 grants each (4 role assignments,
// some in tenants and time-bounded, and 3 overrides) over 20 features of 5 actions and 30
// roles of 5 permissions. variant changes the grants of every 100th subject.
func bigDocument(tb testing.TB, n, variant int) []byte {
	tb.Helper()
	doc := &document{HasSubjects: true}
	for f := range 20 {
		doc.Features = append(doc.Features, docFeature{Name: fmt.Sprintf("feature-%02d", f), Actions: []string{"create", "delete", "read", "update", "export"}})
	}
	actions := doc.Features[0].Actions
	for r := range 30 {
		role := docRole{Name: fmt.Sprintf("role-%02d", r)}
		for p := range 5 {
			role.Permissions = append(role.Permissions, docPermission{Feature: doc.Features[(r+p)%20].Name, Action: actions[p], Resource: "projects/*"})
		}
		doc.Roles = append(doc.Roles, role)
	}
	until := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	for i := range n {
		k := i
		if i%100 == 0 {
			k += variant
		}
		s := docSubject{ID: fmt.Sprintf("user:%07d", i), Type: "user"}
		for a := range 4 {
			as := docAssignment{Role: doc.Roles[(k+a*7)%30].Name}
			if a >= 2 {
				as.Tenant = fmt.Sprintf("tenant_%d", k%50)
			}
			if a == 3 {
				as.ValidUntil = &until
			}
			s.Roles = append(s.Roles, as)
		}
		for o := range 3 {
			s.Overrides = append(s.Overrides, docOverride{Feature: doc.Features[(k+o)%20].Name, Action: actions[(k+o)%5],
				Effect: []thauth.Effect{thauth.Allow, thauth.Deny}[o%2], Resource: fmt.Sprintf("projects/p%d/*", o)})
		}
		doc.Subjects = append(doc.Subjects, s)
	}
	out, err := renderJSON(doc)
	if err != nil {
		tb.Fatal(err)
	}
	return out
}

// cpuTime returns the CPU time (user and system) the process has used so far. The benchmark
// reports it besides wall time, which on a shared machine depends on the other load.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkApply100kSubjects measures applying a document of 100 000 subjects with 7
// grants each on the real SQLite store with the real engine syncing after the commit:
// creating everything, re-applying it unchanged, changing 1% of the subjects, and exporting.
// Run with: go test -run XXX -bench Apply100k -benchtime 1x ./internal/manage/
func BenchmarkApply100kSubjects(b *testing.B) {
	const n = 100_000
	body := bigDocument(b, n, 0)
	changed := bigDocument(b, n, 1)
	apply := func(b *testing.B, e *env, body []byte) *ApplyResult {
		cpu := cpuTime()
		res, err := e.svc.ApplyConfig(e.ctx, e.project, body, FormatJSON, false)
		if err != nil {
			b.Fatalf("apply: %v %+v", err, problemsOf(err))
		}
		b.ReportMetric((cpuTime()-cpu).Seconds()/float64(b.N), "cpu-s/op")
		return res
	}
	b.Run("create", func(b *testing.B) {
		b.ReportMetric(float64(len(body))/1e6, "MB")
		for i := 0; i < b.N; i++ {
			b.StopTimer()
			e := newEnv(b)
			b.StartTimer()
			if res := apply(b, e, body); len(res.Changes.Created) != n+50 {
				b.Fatalf("%d created", len(res.Changes.Created))
			}
		}
	})
	e := newEnv(b)
	apply(b, e, body)
	b.Run("reapply-unchanged", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			if res := apply(b, e, body); !res.Changes.empty() {
				b.Fatal("changes on re-apply")
			}
		}
	})
	b.Run("change-1pct", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			doc := changed
			if i%2 == 1 {
				doc = body
			}
			if res := apply(b, e, doc); len(res.Changes.Updated) != n/100 {
				b.Fatalf("%d updated", len(res.Changes.Updated))
			}
		}
	})
	b.Run("export", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			if _, err := e.svc.ExportConfig(e.ctx, e.project, FormatJSON); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("parse", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			if _, err := parseDocument(body, FormatJSON); err != nil {
				b.Fatal(err)
			}
		}
	})
}
