// Package sqlite is Thauth's embedded store: a thauth.Store kept in one SQLite file,
// <dataDir>/thauth.db, through the pure-Go driver modernc.org/sqlite. It is what a single
// node runs on when no PostgreSQL is configured.
//
// Durability: the database runs in WAL mode with synchronous=FULL, so the WAL is synced on
// every commit and a write that returned success survives a process crash or a power loss.
// Foreign keys are enforced on every connection; the schema's cascades keep a project's data
// consistent when features, roles, subjects or the project itself are deleted.
//
// Concurrency: a Store is safe for concurrent use. Writes go through one dedicated connection
// and every write transaction starts with BEGIN IMMEDIATE, so writers of this process queue in
// Go and writers of other processes (say `thauth init` while a server runs on the same data
// directory) wait for the file's write lock, up to a busy timeout of 10 seconds, instead of
// failing midway or deadlocking on a lock upgrade. Reads outside Tx use a separate pool of
// read-only connections and each runs in its own read transaction, so it sees one consistent
// committed state and never waits for writers (WAL readers are not blocked). Reads inside Tx
// use the transaction and see its uncommitted writes.
//
// Because there is one write connection, a Tx closure must use the Data it is given: calling
// a write method of the Store itself from inside the closure would wait for the connection the
// closure holds (until ctx ends).
//
// Open does not change the schema; Migrate applies the embedded migrations in migrations/,
// each in its own IMMEDIATE transaction, so several processes may call it at once.
package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"time"

	"github.com/thauth/thauth"
	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

// FileName is the name of the database file inside the data directory.
const FileName = "thauth.db"

// busyTimeout is how long a statement waits for a lock held by another connection or
// process before failing with EUnavailable.
const busyTimeout = 10 * time.Second

// Options configures Open.
type Options struct {
	// Logger receives migration progress and warnings; nil discards them.
	Logger *slog.Logger
}

// Store is the SQLite implementation of thauth.Store. It is safe for concurrent use; Close
// releases it.
type Store struct {
	path string
	log  *slog.Logger
	w    *sql.DB // one connection: every write transaction
	r    *sql.DB // read-only connections: reads outside Tx
}

var _ thauth.Store = (*Store)(nil)

// Open opens (creating if needed) the database dataDir/thauth.db, creating dataDir with mode
// 0700 if it does not exist. It does not migrate: call Migrate before using a new database.
// Errors are EInternal (or EUnavailable if the file stays locked by another process).
func Open(ctx context.Context, dataDir string, o Options) (*Store, error) {
	log := o.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return nil, thauth.Internal(err, "cannot create data directory")
	}
	path, err := filepath.Abs(filepath.Join(dataDir, FileName))
	if err != nil {
		return nil, thauth.Internal(err, "cannot resolve database path")
	}
	// The path goes in as a URI path (escaped) so that characters such as '?' or '#' in the
	// directory name cannot be mistaken for parameters.
	name := "file:" + (&url.URL{Path: filepath.ToSlash(path)}).EscapedPath()
	common := url.Values{}
	common.Set("_busy_timeout", fmt.Sprint(busyTimeout.Milliseconds()))
	common.Set("_foreign_keys", "1")
	common.Set("_synchronous", "FULL")

	wq := cloneValues(common)
	wq.Set("_journal_mode", "WAL")
	wq.Set("_txlock", "immediate")
	wq.Add("_pragma", "cache_size(-65536)") // 64 MiB: bulk applies touch many index pages
	wdb, err := sql.Open("sqlite", name+"?"+wq.Encode())
	if err != nil {
		return nil, thauth.Internal(err, "cannot open database")
	}
	wdb.SetMaxOpenConns(1)
	wdb.SetMaxIdleConns(1)
	wdb.SetConnMaxIdleTime(0)
	wdb.SetConnMaxLifetime(0)
	// The first connection creates the file and switches it to WAL (a persistent setting)
	// before any reader opens it.
	if err := wdb.PingContext(ctx); err != nil {
		wdb.Close()
		return nil, mapErr(err, "cannot open database")
	}

	rq := cloneValues(common)
	rq.Set("_query_only", "1")
	rq.Add("_pragma", "cache_size(-16384)")
	rdb, err := sql.Open("sqlite", name+"?"+rq.Encode())
	if err != nil {
		wdb.Close()
		return nil, thauth.Internal(err, "cannot open database")
	}
	n := max(4, runtime.GOMAXPROCS(0))
	rdb.SetMaxOpenConns(n)
	rdb.SetMaxIdleConns(n)
	rdb.SetConnMaxIdleTime(0)
	rdb.SetConnMaxLifetime(0)
	if err := rdb.PingContext(ctx); err != nil {
		rdb.Close()
		wdb.Close()
		return nil, mapErr(err, "cannot open database")
	}
	return &Store{path: path, log: log, w: wdb, r: rdb}, nil
}

func cloneValues(v url.Values) url.Values {
	c := url.Values{}
	for k, vs := range v {
		c[k] = append([]string(nil), vs...)
	}
	return c
}

// Path returns the database file's absolute path.
func (s *Store) Path() string { return s.path }

// Close closes every connection. The Store must not be used afterwards.
func (s *Store) Close() error {
	err := errors.Join(s.r.Close(), s.w.Close())
	if err != nil {
		return thauth.Internal(err, "cannot close database")
	}
	return nil
}

// Ping checks that the database answers a query; it returns EUnavailable otherwise.
func (s *Store) Ping(ctx context.Context) error {
	var one int
	if err := s.r.QueryRowContext(ctx, "SELECT 1").Scan(&one); err != nil {
		return thauth.Errorf(thauth.EUnavailable, "database unavailable")
	}
	return nil
}

// Tx runs fn in one write transaction (BEGIN IMMEDIATE): fn's error or panic rolls it back
// (a panic is re-raised after the rollback), nil commits it. With synchronous=FULL the commit
// is on stable storage when Tx returns nil. fn's error is returned as is.
func (s *Store) Tx(ctx context.Context, fn func(ctx context.Context, tx thauth.Data) error) error {
	return s.write(ctx, func(d *data) error { return fn(ctx, d) })
}

// write runs fn in a write transaction on the write connection.
func (s *Store) write(ctx context.Context, fn func(d *data) error) error {
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return mapErr(err, "cannot begin transaction")
	}
	d := &data{tx: tx}
	done := false
	defer func() {
		if !done { // fn failed or panicked (the panic continues after the rollback)
			_ = tx.Rollback()
		}
	}()
	if err := fn(d); err != nil {
		return err
	}
	done = true
	if err := tx.Commit(); err != nil {
		return mapErr(err, "cannot commit transaction")
	}
	return nil
}

// read runs fn in a read transaction on the read pool, so that the several queries of one
// method see the same committed state.
func (s *Store) read(ctx context.Context, fn func(d *data) error) error {
	tx, err := s.r.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return mapErr(err, "cannot begin transaction")
	}
	defer tx.Rollback() //nolint:errcheck // read-only: nothing to keep
	return fn(&data{tx: tx})
}

// readValue is read for a method returning a value.
func readValue[T any](ctx context.Context, s *Store, fn func(d *data) (T, error)) (T, error) {
	var v T
	err := s.read(ctx, func(d *data) error {
		var err error
		v, err = fn(d)
		return err
	})
	return v, err
}

// SQLite extended result codes used in error mapping.
const (
	codeConstraintUnique     = sqlite3.SQLITE_CONSTRAINT_UNIQUE
	codeConstraintPrimaryKey = sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY
	codeConstraintForeignKey = sqlite3.SQLITE_CONSTRAINT_FOREIGNKEY
)

// sqliteCode returns the extended SQLite result code of err, or 0.
func sqliteCode(err error) int {
	var e *sqlite.Error
	if errors.As(err, &e) {
		return e.Code()
	}
	return 0
}

func isUniqueViolation(err error) bool {
	c := sqliteCode(err)
	return c == codeConstraintUnique || c == codeConstraintPrimaryKey
}

func isForeignKeyViolation(err error) bool { return sqliteCode(err) == codeConstraintForeignKey }

// mapErr turns a driver error into a *thauth.Error: an *thauth.Error passes through, a busy
// or locked database is EUnavailable, anything else EInternal with msg. Callers handle
// sql.ErrNoRows and constraint violations themselves, where they know what was meant.
func mapErr(err error, msg string) error {
	if err == nil {
		return nil
	}
	var te *thauth.Error
	if errors.As(err, &te) {
		return err
	}
	switch sqliteCode(err) & 0xff {
	case sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED:
		return &thauth.Error{Code: thauth.EUnavailable, Message: "database is busy", Err: err}
	case sqlite3.SQLITE_CANTOPEN:
		return &thauth.Error{Code: thauth.EUnavailable, Message: "cannot open database", Err: err}
	}
	return thauth.Internal(err, "%s", msg)
}

// notFound maps sql.ErrNoRows to ENotFound "<what> not found" and anything else via mapErr.
func notFound(err error, what string) error {
	if errors.Is(err, sql.ErrNoRows) {
		return thauth.Errorf(thauth.ENotFound, "%s not found", what)
	}
	return mapErr(err, "cannot read "+what)
}
