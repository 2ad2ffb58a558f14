package sqlite_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"testing"
	"time"

	"github.com/thauth/thauth"
	"github.com/thauth/thauth/internal/sqlite"
)

const (
	helperDirEnv   = "THAUTH_SQLITE_HELPER_DIR"
	helperWrites   = 40
	sharedProject  = "0198c000-0000-7000-8000-00000000aaaa"
	sharedOrg      = "0198c000-0000-7000-8000-00000000bbbb"
	helperDeadline = 20 * time.Second
)

// TestHelperProcess is the second process of TestTwoProcesses; it does nothing on its own.
func TestHelperProcess(t *testing.T) {
	dir := os.Getenv(helperDirEnv)
	if dir == "" {
		t.Skip("runs only as the helper of TestTwoProcesses")
	}
	ctx, cancel := context.WithTimeout(context.Background(), helperDeadline)
	defer cancel()
	if err := appendFromProcess(ctx, dir); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

// appendFromProcess migrates the store in dir, waits for the shared project and appends
// helperWrites changes to it, one transaction each.
func appendFromProcess(ctx context.Context, dir string) error {
	s, err := sqlite.Open(ctx, dir, sqlite.Options{})
	if err != nil {
		return err
	}
	defer s.Close()
	if err := s.Migrate(ctx); err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	for {
		_, err := s.GetProject(ctx, sharedProject)
		if err == nil {
			break
		}
		if !thauth.IsNotFound(err) {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(5 * time.Millisecond):
		}
	}
	for i := range helperWrites {
		err := s.Tx(ctx, func(ctx context.Context, tx thauth.Data) error {
			ref := strconv.Itoa(os.Getpid()) + "/" + strconv.Itoa(i)
			_, err := tx.AppendChanges(ctx, sharedProject, []thauth.Change{{Kind: thauth.ChangeKey, Ref: ref}}, time.Now())
			return err
		})
		if err != nil {
			return fmt.Errorf("write %d: %w", i, err)
		}
	}
	return nil
}

// TestTwoProcesses runs a real second process against the same data directory: both
// migrate the new database at once, then both write concurrently. Every write must land,
// with gap-free revisions.
func TestTwoProcesses(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a process")
	}
	dir := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperProcess$", "-test.count=1")
	cmd.Env = append(os.Environ(), helperDirEnv+"="+dir)
	cmd.Stderr = os.Stderr // its errors; stdout only says PASS
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}

	ctx, cancel := context.WithTimeout(context.Background(), helperDeadline)
	defer cancel()
	s, err := sqlite.Open(ctx, dir, sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	org := thauth.Organization{ID: sharedOrg, Name: "Acme", CreatedAt: time.Now()}
	p := thauth.Project{ID: sharedProject, Name: "Shop", CreatedAt: time.Now()}
	if err := s.CreateOrganization(ctx, &org); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateProject(ctx, org.ID, &p); err != nil {
		t.Fatal(err)
	}
	for i := range helperWrites {
		err := s.Tx(ctx, func(ctx context.Context, tx thauth.Data) error {
			_, err := tx.AppendChanges(ctx, p.ID, []thauth.Change{{Kind: thauth.ChangeConfig, Ref: strconv.Itoa(i)}}, time.Now())
			return err
		})
		if err != nil {
			t.Fatalf("write %d: %v", i, err)
		}
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("helper process: %v", err)
	}
	got, err := s.GetProject(ctx, p.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.Revision != 2*helperWrites {
		t.Errorf("revision = %d, want %d", got.Revision, 2*helperWrites)
	}
	cs, err := s.ChangesSince(ctx, p.ID, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	helper := 0
	for i, c := range cs {
		if c.Revision != int64(i+1) {
			t.Fatalf("change %d has revision %d: not gap-free", i, c.Revision)
		}
		if c.Kind == thauth.ChangeKey {
			helper++
		}
	}
	if helper != helperWrites {
		t.Errorf("%d changes from the helper process, want %d", helper, helperWrites)
	}
	cur, latest, err := s.SchemaVersion(ctx)
	if err != nil || cur != latest {
		t.Errorf("SchemaVersion = (%d, %d), %v", cur, latest, err)
	}
}
