package sqlite

import (
	"context"
	"embed"
	"fmt"
	"io/fs"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/thauth/thauth"
)

//go:embed migrations/*.sql
var migrationFiles embed.FS

// migration is one numbered SQL file of migrations/, named NNNN_description.sql.
type migration struct {
	version int
	name    string
	sql     string
}

// migrations returns the embedded migrations in order. The numbers must run 1, 2, 3, …
// without gaps; a malformed set is a build mistake and fails every call.
func migrations() ([]migration, error) {
	entries, err := fs.ReadDir(migrationFiles, "migrations")
	if err != nil {
		return nil, err
	}
	var ms []migration
	for _, e := range entries {
		num, _, ok := strings.Cut(e.Name(), "_")
		v, err := strconv.Atoi(num)
		if !ok || err != nil || !strings.HasSuffix(e.Name(), ".sql") {
			return nil, fmt.Errorf("bad migration file name %q", e.Name())
		}
		b, err := fs.ReadFile(migrationFiles, "migrations/"+e.Name())
		if err != nil {
			return nil, err
		}
		ms = append(ms, migration{version: v, name: e.Name(), sql: string(b)})
	}
	slices.SortFunc(ms, func(a, b migration) int { return a.version - b.version })
	for i, m := range ms {
		if m.version != i+1 {
			return nil, fmt.Errorf("migration %q out of sequence: want number %d", m.name, i+1)
		}
	}
	return ms, nil
}

const createMigrationsTable = `CREATE TABLE IF NOT EXISTS schema_migrations (
    version    INTEGER NOT NULL PRIMARY KEY,
    applied_at INTEGER NOT NULL
)`

// Migrate applies every embedded migration not yet recorded in schema_migrations, in order,
// each in its own IMMEDIATE transaction together with its record. Concurrent callers (other
// processes included) are serialized by the database's write lock: the one that comes second
// finds the migration recorded and skips it. A database whose schema is newer than this
// binary is left alone, with a warning.
func (s *Store) Migrate(ctx context.Context) error {
	ms, err := migrations()
	if err != nil {
		return thauth.Internal(err, "invalid embedded migrations")
	}
	for _, m := range ms {
		applied := false
		err := s.write(ctx, func(d *data) error {
			if _, err := d.tx.ExecContext(ctx, createMigrationsTable); err != nil {
				return mapErr(err, "cannot create schema_migrations")
			}
			var n int
			if err := d.tx.QueryRowContext(ctx, `SELECT count(*) FROM schema_migrations WHERE version = ?`, m.version).Scan(&n); err != nil {
				return mapErr(err, "cannot read schema_migrations")
			}
			if n > 0 {
				return nil
			}
			if _, err := d.tx.ExecContext(ctx, m.sql); err != nil {
				return mapErr(err, "cannot apply migration "+m.name)
			}
			if _, err := d.tx.ExecContext(ctx, `INSERT INTO schema_migrations (version, applied_at) VALUES (?, ?)`,
				m.version, time.Now().UnixMicro()); err != nil {
				return mapErr(err, "cannot record migration "+m.name)
			}
			applied = true
			return nil
		})
		if err != nil {
			return err
		}
		if applied {
			s.log.InfoContext(ctx, "applied database migration", "version", m.version, "name", m.name, "path", s.path)
		}
	}
	cur, latest, err := s.SchemaVersion(ctx)
	if err != nil {
		return err
	}
	if cur > latest {
		s.log.WarnContext(ctx, "database schema is newer than this program", "applied", cur, "known", latest, "path", s.path)
	}
	return nil
}

// SchemaVersion returns the highest applied migration number (0 for a database never
// migrated) and the highest one embedded in this binary.
func (s *Store) SchemaVersion(ctx context.Context) (current, latest int, err error) {
	ms, err := migrations()
	if err != nil {
		return 0, 0, thauth.Internal(err, "invalid embedded migrations")
	}
	latest = len(ms)
	err = s.read(ctx, func(d *data) error {
		var n int
		if err := d.tx.QueryRowContext(ctx, `SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'schema_migrations'`).Scan(&n); err != nil {
			return mapErr(err, "cannot read schema")
		}
		if n == 0 {
			return nil
		}
		if err := d.tx.QueryRowContext(ctx, `SELECT coalesce(max(version), 0) FROM schema_migrations`).Scan(&current); err != nil {
			return mapErr(err, "cannot read schema_migrations")
		}
		return nil
	})
	return current, latest, err
}
