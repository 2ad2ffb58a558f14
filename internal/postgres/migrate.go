package postgres

import (
	"context"
	"embed"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/thauth/thauth"
)

//go:embed migrations/*.sql
var migrationFiles embed.FS

// migrations returns the embedded migrations in order (see thauth.ReadMigrations).
func migrations() ([]thauth.Migration, error) {
	return thauth.ReadMigrations(migrationFiles, "migrations")
}

// migrateLockKey is the key of the advisory lock that serializes Migrate across nodes
// (an arbitrary constant: "thauth" in ASCII, then 1).
const migrateLockKey int64 = 0x7468617574680001

const createMigrationsTable = `CREATE TABLE IF NOT EXISTS schema_migrations (
    version    INTEGER     NOT NULL PRIMARY KEY,
    applied_at TIMESTAMPTZ NOT NULL
)`

// Migrate applies every embedded migration not yet recorded in schema_migrations, in order,
// each in its own transaction together with its record. Each transaction first takes a
// transaction-level advisory lock, so concurrent callers (other nodes included) run one at a
// time: the one that comes second finds the migration recorded and skips it. Migrations run
// without the statement timeout (ctx bounds them). A database whose schema is newer than
// this binary is left alone, with a warning.
func (s *Store) Migrate(ctx context.Context) error {
	ms, err := migrations()
	if err != nil {
		return thauth.Internal(err, "invalid embedded migrations")
	}
	for _, m := range ms {
		applied := false
		err := s.write(ctx, func(d *data) error {
			tx := d.q.(pgx.Tx)
			// A migration may take long, and so may waiting for another node's: the
			// statement timeout is for ordinary calls.
			if _, err := tx.Exec(ctx, `SET LOCAL statement_timeout = 0`); err != nil {
				return mapErr(err, "cannot prepare migration")
			}
			if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, migrateLockKey); err != nil {
				return mapErr(err, "cannot lock schema_migrations")
			}
			if _, err := tx.Exec(ctx, createMigrationsTable); err != nil {
				return mapErr(err, "cannot create schema_migrations")
			}
			var done bool
			if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM schema_migrations WHERE version = $1)`, m.Version).Scan(&done); err != nil {
				return mapErr(err, "cannot read schema_migrations")
			}
			if done {
				return nil
			}
			// The simple protocol runs the file's several statements in one go.
			if _, err := tx.Conn().PgConn().Exec(ctx, m.SQL).ReadAll(); err != nil {
				return mapErr(err, "cannot apply migration "+m.Name)
			}
			if _, err := tx.Exec(ctx, `INSERT INTO schema_migrations (version, applied_at) VALUES ($1, $2)`,
				m.Version, normTime(time.Now())); err != nil {
				return mapErr(err, "cannot record migration "+m.Name)
			}
			applied = true
			return nil
		})
		if err != nil {
			return err
		}
		if applied {
			s.log.InfoContext(ctx, "applied database migration", "version", m.Version, "name", m.Name)
		}
	}
	cur, latest, err := s.SchemaVersion(ctx)
	if err != nil {
		return err
	}
	if cur > latest {
		s.log.WarnContext(ctx, "database schema is newer than this program", "applied", cur, "known", latest)
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
	var exists bool
	if err := s.pool.QueryRow(ctx, `SELECT to_regclass('schema_migrations') IS NOT NULL`).Scan(&exists); err != nil {
		return 0, latest, mapErr(err, "cannot read schema")
	}
	if !exists {
		return 0, latest, nil
	}
	if err := s.pool.QueryRow(ctx, `SELECT coalesce(max(version), 0) FROM schema_migrations`).Scan(&current); err != nil {
		return 0, latest, mapErr(err, "cannot read schema_migrations")
	}
	return current, latest, nil
}
