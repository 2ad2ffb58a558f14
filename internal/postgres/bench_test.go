package postgres_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/thauth/thauth"
	"github.com/thauth/thauth/internal/postgres"
	"github.com/thauth/thauth/internal/postgres/pgtest"
)

// Benchmarks at production scale, on the same workloads as internal/sqlite's. They only
// run with -bench and need THAUTH_TEST_DATABASE_URL (scripts/pg.sh start), e.g.
//
//	go test -run '^$' -bench . -benchtime 1x ./internal/postgres/
//
// -short shrinks the big ones tenfold. The throwaway server of scripts/pg.sh runs with
// fsync off, so commits cost no disk flush: figures for writes are an upper bound.

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

// benchStore opens a migrated store on a fresh database with a project and benchConfig.
func benchStore(b *testing.B, o postgres.Options) (*postgres.Store, string, *thauth.Config) {
	b.Helper()
	ctx := context.Background()
	s := pgtest.Open(b, pgtest.New(b), o)
	if err := s.Migrate(ctx); err != nil {
		b.Fatal(err)
	}
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
	return s, p.ID, cfg
}

// writeSubjects writes n subjects with 3 assignments and 4 overrides each (7 grants) in one
// transaction, the way a config apply with a subjects section does.
func writeSubjects(ctx context.Context, s thauth.Store, projectID string, cfg *thauth.Config, n, round int) error {
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

func benchSize(n int) int {
	if testing.Short() {
		return n / 10
	}
	return n
}

// BenchmarkBulkReplace writes 100k subjects with 700k grants in one transaction (the first
// iteration inserts, later ones replace every grant).
func BenchmarkBulkReplace(b *testing.B) {
	ctx := context.Background()
	s, pid, cfg := benchStore(b, postgres.Options{StatementTimeout: -1})
	n := benchSize(100_000)
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
	s, pid, cfg := benchStore(b, postgres.Options{})
	n := benchSize(150_000)
	if err := writeSubjects(ctx, s, pid, cfg, n, 0); err != nil {
		b.Fatal(err)
	}
	if err := postgres.Exec(ctx, s, "VACUUM ANALYZE"); err != nil {
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
	s, pid, cfg := benchStore(b, postgres.Options{})
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

// BenchmarkAppendChanges bumps a project's revision with one change (one statement, its
// own transaction), sequentially and from 8 goroutines at once (who queue on the project's
// row lock).
func BenchmarkAppendChanges(b *testing.B) {
	ctx := context.Background()
	s, pid, _ := benchStore(b, postgres.Options{})
	change := []thauth.Change{{Kind: thauth.ChangeSubject, Ref: "user:1"}}
	b.Run("Serial", func(b *testing.B) {
		for b.Loop() {
			if _, err := s.AppendChanges(ctx, pid, change, time.Now()); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("Parallel8", func(b *testing.B) {
		b.SetParallelism(8)
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if _, err := s.AppendChanges(ctx, pid, change, time.Now()); err != nil {
					b.Fatal(err)
				}
			}
		})
	})
}

// BenchmarkSubjectUpsertTx is one subject upsert as the API does it: upsert, replace global
// assignments, append the change, commit. Serial is one writer; Parallel8 is 8 writers on
// one project (serialized by its lock, as every node's would be); Projects8 is 8 writers on
// 8 projects, which do not wait for each other.
func BenchmarkSubjectUpsertTx(b *testing.B) {
	ctx := context.Background()
	s, pid, cfg := benchStore(b, postgres.Options{})
	upsert := func(projectID string, i int) error {
		return s.Tx(ctx, func(ctx context.Context, tx thauth.Data) error {
			id := fmt.Sprintf("user:%d", i%1000)
			sub := thauth.Subject{SubjectID: id, SubjectType: "user"}
			if _, err := tx.UpsertSubject(ctx, projectID, &sub, time.Now()); err != nil {
				return err
			}
			if err := tx.ReplaceAssignments(ctx, projectID, id, thauth.Scope{}, []thauth.Assignment{{RoleID: cfg.Roles[i%30].ID}}); err != nil {
				return err
			}
			_, err := tx.AppendChanges(ctx, projectID, []thauth.Change{{Kind: thauth.ChangeSubject, Ref: id}}, time.Now())
			return err
		})
	}
	b.Run("Serial", func(b *testing.B) {
		i := 0
		for b.Loop() {
			if err := upsert(pid, i); err != nil {
				b.Fatal(err)
			}
			i++
		}
	})
	b.Run("Parallel8", func(b *testing.B) {
		var n atomic.Int64
		b.SetParallelism(8)
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if err := upsert(pid, int(n.Add(1))); err != nil {
					b.Fatal(err)
				}
			}
		})
	})
	b.Run("Projects8", func(b *testing.B) {
		var pids []string
		for range 8 {
			p := thauth.Project{ID: uuid.NewString(), Name: "more", CreatedAt: time.Now()}
			org, err := s.GetProject(ctx, pid)
			if err != nil {
				b.Fatal(err)
			}
			if err := s.CreateProject(ctx, org.OrganizationID, &p); err != nil {
				b.Fatal(err)
			}
			if err := s.ReplaceConfig(ctx, p.ID, &thauth.Config{Roles: cfg.Roles[:0:0]}); err != nil {
				b.Fatal(err)
			}
			pids = append(pids, p.ID)
		}
		var worker, n atomic.Int64
		b.SetParallelism(8)
		b.RunParallel(func(pb *testing.PB) {
			p := pids[int(worker.Add(1)-1)%len(pids)]
			for pb.Next() {
				if err := upsertNoRoles(ctx, s, p, int(n.Add(1))); err != nil {
					b.Fatal(err)
				}
			}
		})
	})
}

// upsertNoRoles is BenchmarkSubjectUpsertTx's write on a project without roles (an empty
// replace of the global assignments).
func upsertNoRoles(ctx context.Context, s thauth.Store, projectID string, i int) error {
	return s.Tx(ctx, func(ctx context.Context, tx thauth.Data) error {
		id := fmt.Sprintf("user:%d", i%1000)
		sub := thauth.Subject{SubjectID: id, SubjectType: "user"}
		if _, err := tx.UpsertSubject(ctx, projectID, &sub, time.Now()); err != nil {
			return err
		}
		if err := tx.ReplaceAssignments(ctx, projectID, id, thauth.Scope{}, nil); err != nil {
			return err
		}
		_, err := tx.AppendChanges(ctx, projectID, []thauth.Change{{Kind: thauth.ChangeSubject, Ref: id}}, time.Now())
		return err
	})
}

// BenchmarkRoundTrip is one trivial query, to calibrate the others (a round trip to the
// server and back).
func BenchmarkRoundTrip(b *testing.B) {
	ctx := context.Background()
	s := pgtest.Open(b, pgtest.New(b), postgres.Options{})
	for b.Loop() {
		if err := s.Ping(ctx); err != nil {
			b.Fatal(err)
		}
	}
}
