// Package pgtest gives tests a real PostgreSQL database of their own.
//
// The server comes from the environment: THAUTH_TEST_DATABASE_URL names a database on it
// (scripts/pg.sh start exports it, and `make test` runs the script), and New creates a
// fresh, empty database next to it for each test, dropped when the test ends. Tests that
// need PostgreSQL are skipped when the variable is unset — unless THAUTH_REQUIRE_POSTGRES=1,
// as the test command sets, in which case they fail, so that nothing is skipped silently.
package pgtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/url"
	"os"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/thauth/thauth/internal/postgres"
)

// The environment variables read by this package.
const (
	EnvURL     = "THAUTH_TEST_DATABASE_URL" // postgres:// URL of a database on the test server
	EnvRequire = "THAUTH_REQUIRE_POSTGRES"  // "1": fail instead of skipping when EnvURL is unset
)

// ServerURL returns THAUTH_TEST_DATABASE_URL, or skips t (fails it when
// THAUTH_REQUIRE_POSTGRES=1) when it is unset.
func ServerURL(t testing.TB) string {
	t.Helper()
	base := os.Getenv(EnvURL)
	if base == "" {
		const msg = "PostgreSQL is required (make test starts one): " + EnvURL + " is not set"
		if os.Getenv(EnvRequire) == "1" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	return base
}

// New creates a fresh, empty database (no schema) on the test server and returns its URL.
// The database is dropped, with any connections still open to it, when t ends. Databases of
// different tests are independent, so tests using New may run in parallel.
func New(t testing.TB) string {
	t.Helper()
	base := ServerURL(t)
	u, err := url.Parse(base)
	if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
		t.Fatalf("pgtest: %s must be a postgres:// URL", EnvURL)
	}
	var b [8]byte
	_, _ = rand.Read(b[:])
	name := "thauth_t_" + hex.EncodeToString(b[:])

	admin(t, base, "CREATE DATABASE "+name)
	t.Cleanup(func() { admin(t, base, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)") })
	u.Path = "/" + name
	return u.String()
}

// admin runs one statement on the server's database named by base.
func admin(t testing.TB, base, sql string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, base)
	if err != nil {
		t.Fatalf("pgtest: cannot connect to the test server (%s): %v", EnvURL, err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, sql); err != nil {
		t.Fatalf("pgtest: %s: %v", sql, err)
	}
}

// Open opens a Store on the database at databaseURL (typically from New), closed when t
// ends. It does not migrate.
func Open(t testing.TB, databaseURL string, o postgres.Options) *postgres.Store {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := postgres.Open(ctx, databaseURL, o)
	if err != nil {
		t.Fatalf("pgtest: open store: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// Migrated returns a Store on a fresh database (see New) with the schema applied, closed
// and dropped when t ends.
func Migrated(t testing.TB) *postgres.Store {
	t.Helper()
	s := Open(t, New(t), postgres.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := s.Migrate(ctx); err != nil {
		t.Fatalf("pgtest: migrate: %v", err)
	}
	return s
}
