package sqlite_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/thauth/thauth"
	"github.com/thauth/thauth/internal/sqlite"
)

// Benchmarks at production scale. They only run with -bench, e.g.
//
//	go test -run '^$' -bench . -benchtime 1x ./internal/sqlite/
//
// -short shrinks them tenfold.

// benchConfig is a configuration of 20 features with 5 actions each and 30 roles with 10
// permissions each.
func benchConfig() *thauth.Config {
	cfg := &thauth.Config{}
	for f := range 20 {
		feat := thauth.Feature{ID: uuid.NewString(), Name: fmt.Sprintf("feature-%02d", f)}
		for a := range 5 {
			feat.Actions = append(feat.Actions, thauth.Action{ID: uuid.NewString(), Name: fmt.Sprintf("action-%d", a)})
		}
		cfg.Features = append(cfg.Features, feat)
	}
	for r := range 30 {
		role := thauth.Role{ID: uuid.NewString(), Name: fmt.Sprintf("role-%02d", r)}
		for p := range 10 {
			f := cfg.Features[(r+p)%len(cfg.Features)]
			role.Permissions = append(role.Permissions, thauth.Permission{FeatureID: f.ID, ActionID: f.Actions[p%5].ID})
		}
		cfg.Roles = append(cfg.Roles, role)
	}
	return cfg
}

// benchProject creates an organization, a project and benchConfig.
func benchProject(b *testing.B, s *sqlite.Store) (string, *thauth.Config) {
	b.Helper()
	ctx := context.Background()
	org := thauth.Organization{ID: uuid.NewString(), Name: "bench", CreatedAt: time.Now()}
	p := thauth.Project{ID: uuid.NewString(), Name: "bench", CreatedAt: time.Now()}
	cfg := benchConfig()
	if err := s.CreateOrganization(ctx, &org); err != nil {
		b.Fatal(err)
	}
	if err := s.CreateProject(ctx, org.ID, &p); err != nil {
		b.Fatal(err)
	}
	if err := s.ReplaceConfig(ctx, p.ID, cfg); err != nil {
		b.Fatal(err)
	}
	return p.ID, cfg
}

// writeSubjects writes n subjects with 3 assignments and 4 overrides each (7 grants) in one
// transaction, the way a config apply with a subjects section does.
func writeSubjects(ctx context.Context, s *sqlite.Store, projectID string, cfg *thauth.Config, n, round int) error {
	now := time.Now()
	until := now.Add(30 * 24 * time.Hour)
	return s.Tx(ctx, func(ctx context.Context, tx thauth.Data) error {
		for i := range n {
			id := fmt.Sprintf("user:%07d", i)
			sub := thauth.Subject{SubjectID: id, SubjectType: "user"}
			if _, err := tx.UpsertSubject(ctx, projectID, &sub, now); err != nil {
				return err
			}
			as := []thauth.Assignment{
				{RoleID: cfg.Roles[(i+round)%30].ID},
				{RoleID: cfg.Roles[(i+round+1)%30].ID, Tenant: fmt.Sprintf("tenant_%d", i%50)},
				{RoleID: cfg.Roles[(i+round+2)%30].ID, Tenant: fmt.Sprintf("tenant_%d", i%50), Window: thauth.Window{Until: &until}},
			}
			if err := tx.ReplaceAssignments(ctx, projectID, id, thauth.Scope{All: true}, as); err != nil {
				return err
			}
			var os []thauth.Override
			for k := range 4 {
				f := cfg.Features[(i+k)%20]
				o := thauth.Override{FeatureID: f.ID, ActionID: f.Actions[k].ID, Effect: thauth.Allow}
				if k%2 == 1 {
					o.Effect, o.Resource = thauth.Deny, fmt.Sprintf("prod/%d/*", i%100)
				}
				os = append(os, o)
			}
			if err := tx.ReplaceOverrides(ctx, projectID, id, thauth.Scope{All: true}, os); err != nil {
				return err
			}
		}
		_, err := tx.AppendChanges(ctx, projectID, []thauth.Change{{Kind: thauth.ChangeConfig}, {Kind: thauth.ChangeSubjects}}, now)
		return err
	})
}

func benchSize(b *testing.B, n int) int {
	if testing.Short() {
		return n / 10
	}
	return n
}

// BenchmarkBulkReplace writes 100k subjects with 700k grants in one transaction (the first
// iteration inserts, later ones replace every grant).
func BenchmarkBulkReplace(b *testing.B) {
	ctx := context.Background()
	s := open(b, b.TempDir())
	pid, cfg := benchProject(b, s)
	n := benchSize(b, 100_000)
	round := 0
	for b.Loop() {
		if err := writeSubjects(ctx, s, pid, cfg, n, round); err != nil {
			b.Fatal(err)
		}
		round++
	}
	b.ReportMetric(float64(n*7*round)/b.Elapsed().Seconds(), "grants/s")
	b.ReportMetric(float64(n*round)/b.Elapsed().Seconds(), "subjects/s")
}

// BenchmarkScanSubjectGrants scans 150k subjects with 1.05M grants.
func BenchmarkScanSubjectGrants(b *testing.B) {
	ctx := context.Background()
	s := open(b, b.TempDir())
	pid, cfg := benchProject(b, s)
	n := benchSize(b, 150_000)
	if err := writeSubjects(ctx, s, pid, cfg, n, 0); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		subjects, grants := 0, 0
		err := s.ScanSubjectGrants(ctx, pid, func(g *thauth.SubjectGrants) error {
			subjects++
			grants += len(g.Assignments) + len(g.Overrides)
			return nil
		})
		if err != nil {
			b.Fatal(err)
		}
		if subjects != n || grants != 7*n {
			b.Fatalf("scanned %d subjects, %d grants; want %d, %d", subjects, grants, n, 7*n)
		}
	}
	b.ReportMetric(float64(7*n)*float64(b.N)/b.Elapsed().Seconds(), "grants/s")
}

// BenchmarkLoadSubjectGrants loads one subject (what a node does per changed subject).
func BenchmarkLoadSubjectGrants(b *testing.B) {
	ctx := context.Background()
	s := open(b, b.TempDir())
	pid, cfg := benchProject(b, s)
	if err := writeSubjects(ctx, s, pid, cfg, 1000, 0); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if _, err := s.LoadSubjectGrants(ctx, pid, fmt.Sprintf("user:%07d", i%1000)); err != nil {
			b.Fatal(err)
		}
		i++
	}
}

// BenchmarkSubjectUpsertTx is one durable subject upsert as the API does it: upsert, replace
// global assignments, append the change, commit (an fsync).
func BenchmarkSubjectUpsertTx(b *testing.B) {
	ctx := context.Background()
	s := open(b, b.TempDir())
	pid, cfg := benchProject(b, s)
	i := 0
	for b.Loop() {
		err := s.Tx(ctx, func(ctx context.Context, tx thauth.Data) error {
			id := fmt.Sprintf("user:%d", i%1000)
			sub := thauth.Subject{SubjectID: id, SubjectType: "user"}
			if _, err := tx.UpsertSubject(ctx, pid, &sub, time.Now()); err != nil {
				return err
			}
			if err := tx.ReplaceAssignments(ctx, pid, id, thauth.Scope{}, []thauth.Assignment{{RoleID: cfg.Roles[i%30].ID}}); err != nil {
				return err
			}
			_, err := tx.AppendChanges(ctx, pid, []thauth.Change{{Kind: thauth.ChangeSubject, Ref: id}}, time.Now())
			return err
		})
		if err != nil {
			b.Fatal(err)
		}
		i++
	}
}
