package sqlite_test

import (
	"context"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/thauth/thauth"
	"github.com/thauth/thauth/internal/sqlite"
	"github.com/thauth/thauth/internal/storetest"
)

// open opens a store in a fresh directory and migrates it.
func open(t testing.TB, dir string) *sqlite.Store {
	t.Helper()
	s, err := sqlite.Open(context.Background(), dir, sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Error(err)
		}
	})
	if err := s.Migrate(context.Background()); err != nil {
		t.Fatal(err)
	}
	return s
}

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) thauth.Store { return open(t, t.TempDir()) })
}

func TestOpenCreatesPrivateDirectory(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "a", "data")
	s := open(t, dir)
	fi, err := os.Stat(dir)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o700 {
		t.Errorf("data directory mode %v, want 0700", fi.Mode().Perm())
	}
	if want := filepath.Join(dir, sqlite.FileName); s.Path() != want {
		t.Errorf("Path() = %s, want %s", s.Path(), want)
	}
	if _, err := os.Stat(s.Path()); err != nil {
		t.Errorf("database file: %v", err)
	}
}

func TestOpenOddDirectoryName(t *testing.T) {
	// Characters that mean something in a DSN or URI must not.
	dir := filepath.Join(t.TempDir(), "a?b=c#d%20e f")
	s := open(t, dir)
	if err := s.Ping(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, sqlite.FileName)); err != nil {
		t.Errorf("database not at the expected path: %v", err)
	}
}

func TestPragmas(t *testing.T) {
	s := open(t, t.TempDir())
	got, err := sqlite.Pragmas(context.Background(), s)
	if err != nil {
		t.Fatal(err)
	}
	for _, conn := range []string{"write", "read"} {
		for name, want := range map[string]string{
			"journal_mode": "wal",
			"foreign_keys": "1",
			"synchronous":  "2", // FULL
			"busy_timeout": "10000",
		} {
			if v := got[conn][name]; v != want {
				t.Errorf("%s connection: pragma %s = %q, want %q", conn, name, v, want)
			}
		}
	}
	if v := got["read"]["query_only"]; v != "1" {
		t.Errorf("read connection: query_only = %q, want 1", v)
	}
}

func TestOpenDoesNotMigrate(t *testing.T) {
	ctx := context.Background()
	s, err := sqlite.Open(ctx, t.TempDir(), sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	cur, latest, err := s.SchemaVersion(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if cur != 0 || latest < 1 {
		t.Errorf("SchemaVersion of a new database = (%d, %d), want (0, >=1)", cur, latest)
	}
}

func TestMigrateIdempotent(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s := open(t, dir)
	for range 3 {
		if err := s.Migrate(ctx); err != nil {
			t.Fatal(err)
		}
	}
	cur, latest, err := s.SchemaVersion(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if cur != latest {
		t.Errorf("SchemaVersion = (%d, %d), want equal", cur, latest)
	}
	// A second instance on the migrated file has nothing to do.
	s2 := open(t, dir)
	cur2, _, err := s2.SchemaVersion(ctx)
	if err != nil || cur2 != cur {
		t.Errorf("second instance: SchemaVersion = %d, %v; want %d", cur2, err, cur)
	}
}

func TestConcurrentMigrate(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	var stores []*sqlite.Store
	for range 4 {
		s, err := sqlite.Open(ctx, dir, sqlite.Options{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		stores = append(stores, s)
	}
	var wg sync.WaitGroup
	errs := make([]error, len(stores))
	for i, s := range stores {
		wg.Go(func() { errs[i] = s.Migrate(ctx) })
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("Migrate #%d: %v", i, err)
		}
	}
	cur, latest, err := stores[0].SchemaVersion(ctx)
	if err != nil || cur != latest {
		t.Errorf("SchemaVersion = (%d, %d), %v", cur, latest, err)
	}
}

// TestTwoInstancesShareFile plays a running server and `thauth init` on one data directory:
// two Stores on the same file (as two processes would have) both write, and each sees the
// other's commits.
func TestTwoInstancesShareFile(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	server, cli := open(t, dir), open(t, dir)

	org := thauth.Organization{ID: "0198c000-0000-7000-8000-000000000001", Name: "Acme", CreatedAt: time.Now()}
	if err := cli.CreateOrganization(ctx, &org); err != nil {
		t.Fatal(err)
	}
	p := thauth.Project{ID: "0198c000-0000-7000-8000-000000000002", Name: "Shop", CreatedAt: time.Now()}
	if err := cli.CreateProject(ctx, org.ID, &p); err != nil {
		t.Fatal(err)
	}
	if _, err := server.GetProject(ctx, p.ID); err != nil {
		t.Fatalf("server does not see the project the CLI created: %v", err)
	}

	const workers, each = 4, 10
	var wg sync.WaitGroup
	errs := make(chan error, 2*workers*each)
	for w := range 2 * workers {
		s := server
		if w%2 == 1 {
			s = cli
		}
		wg.Go(func() {
			for range each {
				errs <- s.Tx(ctx, func(ctx context.Context, tx thauth.Data) error {
					_, err := tx.AppendChanges(ctx, p.ID, []thauth.Change{{Kind: thauth.ChangeConfig}}, time.Now())
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
	for _, s := range []*sqlite.Store{server, cli} {
		got, err := s.GetProject(ctx, p.ID)
		if err != nil {
			t.Fatal(err)
		}
		if got.Revision != 2*workers*each {
			t.Errorf("revision = %d, want %d", got.Revision, 2*workers*each)
		}
		cs, err := s.ChangesSince(ctx, p.ID, 0, 0)
		if err != nil {
			t.Fatal(err)
		}
		for i, c := range cs {
			if c.Revision != int64(i+1) {
				t.Fatalf("change %d has revision %d: not gap-free", i, c.Revision)
			}
		}
	}
}

// TestReadersDoNotBlockOnWriter checks that reads outside Tx go on while a write
// transaction is open, and see the last committed state.
func TestReadersDoNotBlockOnWriter(t *testing.T) {
	ctx := context.Background()
	s := open(t, t.TempDir())
	org := thauth.Organization{ID: "0198c000-0000-7000-8000-000000000001", Name: "Acme", CreatedAt: time.Now()}
	if err := s.CreateOrganization(ctx, &org); err != nil {
		t.Fatal(err)
	}
	err := s.Tx(ctx, func(ctx context.Context, tx thauth.Data) error {
		o := org
		o.ID = "0198c000-0000-7000-8000-000000000009"
		if err := tx.CreateOrganization(ctx, &o); err != nil {
			return err
		}
		if _, err := s.GetOrganization(ctx, org.ID); err != nil {
			t.Errorf("read outside the open transaction: %v", err)
		}
		if _, err := s.GetOrganization(ctx, o.ID); thauth.ErrorCodeOf(err) != thauth.ENotFound {
			t.Errorf("uncommitted row visible outside the transaction: %v", err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestPing(t *testing.T) {
	s := open(t, t.TempDir())
	if err := s.Ping(context.Background()); err != nil {
		t.Fatal(err)
	}
}
