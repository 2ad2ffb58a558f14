package postgres_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/thauth/thauth"
	"github.com/thauth/thauth/internal/postgres"
	"github.com/thauth/thauth/internal/postgres/pgtest"
	"github.com/thauth/thauth/internal/storetest"
)

// dataTables are every table of the schema but schema_migrations (and the installation's
// data keys), from thauth.BackupTables so that new tables are emptied too.
var dataTables = func() string {
	var names []string
	for _, t := range thauth.BackupTables() {
		if t.Name != "seal_data_keys" {
			names = append(names, t.Name)
		}
	}
	return strings.Join(names, ", ")
}()

// TestConformance runs the storage conformance suite. The suite opens a store per subtest:
// they share one migrated database, emptied before each, which is much faster than a
// database each and just as private (the suite runs its subtests one at a time).
func TestConformance(t *testing.T) {
	url := pgtest.New(t)
	admin := pgtest.Open(t, url, postgres.Options{})
	if err := admin.Migrate(context.Background()); err != nil {
		t.Fatal(err)
	}
	storetest.Run(t, func(t *testing.T) thauth.Store {
		if err := postgres.Exec(context.Background(), admin, "TRUNCATE "+dataTables); err != nil {
			t.Fatal(err)
		}
		return pgtest.Open(t, url, postgres.Options{})
	})
}

func newID() string { return uuid.Must(uuid.NewV7()).String() }

// project creates an organization and a project in s and returns the project id.
func project(t testing.TB, s thauth.Store) string {
	t.Helper()
	ctx := context.Background()
	org := thauth.Organization{ID: newID(), Name: "Acme", CreatedAt: time.Now()}
	if err := s.CreateOrganization(ctx, &org); err != nil {
		t.Fatal(err)
	}
	p := thauth.Project{ID: newID(), Name: "Shop", CreatedAt: time.Now()}
	if err := s.CreateProject(ctx, org.ID, &p); err != nil {
		t.Fatal(err)
	}
	return p.ID
}

func wantCode(t *testing.T, err error, code thauth.ErrorCode) {
	t.Helper()
	if got := thauth.ErrorCodeOf(err); got != code {
		t.Fatalf("error = %v (code %q), want code %q", err, got, code)
	}
}

func TestOpenDoesNotMigrate(t *testing.T) {
	s := pgtest.Open(t, pgtest.New(t), postgres.Options{})
	cur, latest, err := s.SchemaVersion(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if cur != 0 || latest < 1 {
		t.Errorf("SchemaVersion of a new database = (%d, %d), want (0, >=1)", cur, latest)
	}
}

func TestMigrateIdempotent(t *testing.T) {
	ctx := context.Background()
	url := pgtest.New(t)
	s := pgtest.Open(t, url, postgres.Options{})
	for range 3 {
		if err := s.Migrate(ctx); err != nil {
			t.Fatal(err)
		}
	}
	cur, latest, err := s.SchemaVersion(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if cur != latest || latest < 1 {
		t.Errorf("SchemaVersion = (%d, %d), want equal and >= 1", cur, latest)
	}
	n, err := postgres.QueryString(ctx, s, `SELECT count(*)::text FROM schema_migrations`)
	if err != nil || n != fmt.Sprint(latest) {
		t.Errorf("schema_migrations has %s rows (%v), want %d", n, err, latest)
	}
	// Another node on the migrated database has nothing to do.
	s2 := pgtest.Open(t, url, postgres.Options{})
	if err := s2.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	if cur2, _, err := s2.SchemaVersion(ctx); err != nil || cur2 != cur {
		t.Errorf("second node: SchemaVersion = %d, %v; want %d", cur2, err, cur)
	}
}

// TestConcurrentMigrate plays five nodes starting at once on an empty database.
func TestConcurrentMigrate(t *testing.T) {
	ctx := context.Background()
	url := pgtest.New(t)
	var stores []*postgres.Store
	for range 5 {
		stores = append(stores, pgtest.Open(t, url, postgres.Options{}))
	}
	var wg sync.WaitGroup
	errs := make([]error, len(stores))
	start := make(chan struct{})
	for i, s := range stores {
		wg.Go(func() {
			<-start
			errs[i] = s.Migrate(ctx)
		})
	}
	close(start)
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("Migrate #%d: %v", i, err)
		}
	}
	for _, s := range stores {
		cur, latest, err := s.SchemaVersion(ctx)
		if err != nil || cur != latest {
			t.Errorf("SchemaVersion = (%d, %d), %v", cur, latest, err)
		}
	}
	// The schema works.
	project(t, stores[0])
}

func TestPing(t *testing.T) {
	s := pgtest.Migrated(t)
	if err := s.Ping(context.Background()); err != nil {
		t.Fatal(err)
	}
}

// TestTwoNodesRevisionsGapFree has two stores (two nodes) write one project at once:
// revisions stay gap-free and in commit order.
func TestTwoNodesRevisionsGapFree(t *testing.T) {
	ctx := context.Background()
	a, url := migrated(t)
	b := pgtest.Open(t, url, postgres.Options{})
	pid := project(t, a)

	const workers, each = 8, 15
	var wg sync.WaitGroup
	errs := make(chan error, workers*each)
	for w := range workers {
		s := a
		if w%2 == 1 {
			s = b
		}
		wg.Go(func() {
			for i := range each {
				errs <- s.Tx(ctx, func(ctx context.Context, tx thauth.Data) error {
					sub := thauth.Subject{SubjectID: fmt.Sprintf("user:%d-%d", w, i), SubjectType: "user"}
					if _, err := tx.UpsertSubject(ctx, pid, &sub, time.Now()); err != nil {
						return err
					}
					_, err := tx.AppendChanges(ctx, pid, []thauth.Change{{Kind: thauth.ChangeSubject, Ref: sub.SubjectID}}, time.Now())
					return err
				})
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	cs, err := b.ChangesSince(ctx, pid, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(cs) != workers*each {
		t.Fatalf("%d changes, want %d", len(cs), workers*each)
	}
	for i, c := range cs {
		if c.Revision != int64(i+1) {
			t.Fatalf("change %d has revision %d: not gap-free", i, c.Revision)
		}
	}
}

// TestConcurrentReplacesDoNotMerge replaces one subject's assignments from two nodes at
// once, many times: every replace sees the one before it, so the subject ends with exactly
// one replace's assignments, never a union of two.
func TestConcurrentReplacesDoNotMerge(t *testing.T) {
	ctx := context.Background()
	a, url := migrated(t)
	b := pgtest.Open(t, url, postgres.Options{})
	pid := project(t, a)
	var roles []thauth.Role
	for i := range 4 {
		roles = append(roles, thauth.Role{ID: newID(), Name: fmt.Sprintf("role-%d", i)})
	}
	if err := a.ReplaceConfig(ctx, pid, &thauth.Config{Roles: roles}); err != nil {
		t.Fatal(err)
	}
	sub := thauth.Subject{SubjectID: "user:alice", SubjectType: "user"}
	if _, err := a.UpsertSubject(ctx, pid, &sub, time.Now()); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 200)
	for w := range 4 {
		s := a
		if w%2 == 1 {
			s = b
		}
		wg.Go(func() {
			for i := range 25 {
				r := roles[(w+i)%len(roles)]
				errs <- s.ReplaceAssignments(ctx, pid, sub.SubjectID, thauth.Scope{All: true},
					[]thauth.Assignment{{RoleID: r.ID}, {RoleID: r.ID, Tenant: "t1"}})
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	g, err := a.LoadSubjectGrants(ctx, pid, sub.SubjectID)
	if err != nil {
		t.Fatal(err)
	}
	if len(g.Assignments) != 2 || g.Assignments[0].RoleID != g.Assignments[1].RoleID {
		t.Errorf("assignments after concurrent replaces: %+v, want one role in two scopes", g.Assignments)
	}
}

// TestReplaceGrantsWritesOnlyDifferences checks that re-applying unchanged grants leaves
// the stored rows alone (same physical rows), and that a change touches only what changed.
func TestReplaceGrantsWritesOnlyDifferences(t *testing.T) {
	ctx := context.Background()
	s := pgtest.Migrated(t)
	pid := project(t, s)
	roleA, roleB := newID(), newID()
	if err := s.ReplaceConfig(ctx, pid, &thauth.Config{Roles: []thauth.Role{{ID: roleA, Name: "a"}, {ID: roleB, Name: "b"}}}); err != nil {
		t.Fatal(err)
	}
	sub := thauth.Subject{SubjectID: "user:alice", SubjectType: "user"}
	if _, err := s.UpsertSubject(ctx, pid, &sub, time.Now()); err != nil {
		t.Fatal(err)
	}
	until := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	as := []thauth.Assignment{{RoleID: roleA}, {RoleID: roleA}, {RoleID: roleB, Tenant: "t1", Window: thauth.Window{Until: &until}}}
	ctids := func() string {
		t.Helper()
		v, err := postgres.QueryString(ctx, s, `SELECT string_agg(ctid::text, ',' ORDER BY ctid) FROM assignments`)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	if err := s.ReplaceAssignments(ctx, pid, sub.SubjectID, thauth.Scope{All: true}, as); err != nil {
		t.Fatal(err)
	}
	before := ctids()
	if err := s.ReplaceAssignments(ctx, pid, sub.SubjectID, thauth.Scope{All: true}, as); err != nil {
		t.Fatal(err)
	}
	if after := ctids(); after != before {
		t.Errorf("unchanged replace rewrote rows: %s -> %s", before, after)
	}
	// Dropping one of two identical rows keeps the other.
	if err := s.ReplaceAssignments(ctx, pid, sub.SubjectID, thauth.Scope{}, []thauth.Assignment{{RoleID: roleA}}); err != nil {
		t.Fatal(err)
	}
	g, err := s.LoadSubjectGrants(ctx, pid, sub.SubjectID)
	if err != nil {
		t.Fatal(err)
	}
	if len(g.Assignments) != 2 {
		t.Errorf("assignments = %+v, want role a globally and role b in t1", g.Assignments)
	}
}

// migrated returns a migrated store on a fresh database, and the database's URL (for more
// stores: more nodes).
func migrated(t *testing.T) (*postgres.Store, string) {
	t.Helper()
	url := pgtest.New(t)
	s := pgtest.Open(t, url, postgres.Options{})
	if err := s.Migrate(context.Background()); err != nil {
		t.Fatal(err)
	}
	return s, url
}

// TestSchemaNewerThanBinary plays an old node on a database a newer release migrated:
// SchemaVersion says so, and Migrate leaves the schema alone.
func TestSchemaNewerThanBinary(t *testing.T) {
	ctx := context.Background()
	s, _ := migrated(t)
	_, latest, err := s.SchemaVersion(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := postgres.Exec(ctx, s, `INSERT INTO schema_migrations (version, applied_at) VALUES ($1, now())`, latest+1); err != nil {
		t.Fatal(err)
	}
	if err := s.Migrate(ctx); err != nil {
		t.Fatalf("Migrate on a newer schema: %v", err)
	}
	cur, got, err := s.SchemaVersion(ctx)
	if err != nil || cur != latest+1 || got != latest {
		t.Errorf("SchemaVersion = (%d, %d), %v; want (%d, %d)", cur, got, err, latest+1, latest)
	}
}
