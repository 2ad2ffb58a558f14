package sqlite

import (
	"context"
	"embed"
	"time"

	"github.com/thauth/thauth"
)

//go:embed migrations/*.sql
var migrationFiles embed.FS

// migrations returns the embedded migrations in order (see thauth.ReadMigrations).
func migrations() ([]thauth.Migration, error) {
	return thauth.ReadMigrations(migrationFiles, "migrations")
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
			if err := d.tx.QueryRowContext(ctx, `SELECT count(*) FROM schema_migrations WHERE version = ?`, m.Version).Scan(&n); err != nil {
				return mapErr(err, "cannot read schema_migrations")
			}
			if n > 0 {
				return nil
			}
			if _, err := d.tx.ExecContext(ctx, m.SQL); err != nil {
				return mapErr(err, "cannot apply migration "+m.Name)
			}
			if _, err := d.tx.ExecContext(ctx, `INSERT INTO schema_migrations (version, applied_at) VALUES (?, ?)`,
				m.Version, time.Now().UnixMicro()); err != nil {
				return mapErr(err, "cannot record migration "+m.Name)
			}
			applied = true
			return nil
		})
		if err != nil {
			return err
		}
		if applied {
			s.log.InfoContext(ctx, "applied database migration", "version", m.Version, "name", m.Name, "path", s.path)
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
