// Package postgres is Thauth's PostgreSQL store: a thauth.Store kept in one PostgreSQL
// database through github.com/jackc/pgx/v5 (pgxpool), so that several Thauth nodes can share
// one database. It behaves like the embedded SQLite store down to error codes, orderings and
// time precision; both pass internal/storetest.
//
// # Options
//
// Open takes a connection string (a postgres:// URL or a keyword/value DSN, as accepted by
// pgx) and Options. Every option has a default; a zero value means "the default", and for
// the pool options also "whatever the connection string says" when it sets the matching
// pool_* parameter:
//
//   - Logger: receives migration progress, warnings and Listen's reconnects. nil discards.
//   - MaxConns: the most connections the pool opens (default 20; URL: pool_max_conns). Each
//     node holds at most this many; size PostgreSQL's max_connections for every node plus
//     one listening connection per node (see Listen).
//   - MinConns: connections kept open even when idle (default 0; URL: pool_min_conns).
//   - MaxConnLifetime: a connection is closed and replaced after this long (default 1h; URL:
//     pool_max_conn_lifetime), so that load spreads after a failover or a pooler restart.
//   - MaxConnIdleTime: an idle connection is closed after this long (default 30m; URL:
//     pool_max_conn_idle_time).
//   - ConnectTimeout: the bound on opening one connection, including TLS and
//     authentication (default 5s; URL: connect_timeout). It is what makes calls fail fast
//     with EUnavailable when the server cannot be reached, and it also bounds the liveness
//     ping of a connection that sat idle for more than a second. Established connections
//     use TCP keepalives (after 10s of silence) and, on Linux, a TCP user timeout of twice
//     ConnectTimeout (at least 10s), so that a server host that vanishes without closing
//     its connections is noticed within seconds, not after the kernel's 15 minutes.
//   - StatementTimeout: PostgreSQL's statement_timeout, set as a run-time parameter on every
//     connection (default 5s; URL: statement_timeout; negative disables it). A statement
//     that runs longer — typically one waiting for a lock held by a stuck writer — is
//     cancelled by the server and reported as EUnavailable. The calls of this package are
//     short statements (ScanSubjectGrants fetches in batches), so it does not limit how big
//     a project may be.
//   - IdleInTransactionTimeout: PostgreSQL's idle_in_transaction_session_timeout (default
//     30s; negative disables it). A node that dies or hangs in the middle of a transaction
//     would otherwise hold its project's lock (see Concurrency) until TCP notices; with it
//     the server ends such a session and every other node can write again. A Tx closure
//     must therefore not sit between two statements for longer than this.
//
// The connection also gets application_name=thauth unless the string sets one.
//
// # Errors
//
// Errors are *thauth.Error. A missing row is ENotFound and a uniqueness violation
// EConflict (both with a message naming what), as thauth.Store documents. A server that
// cannot be reached, refuses connections, is shutting down (57P01..57P03), drops the
// connection (SQLSTATE class 08), times a statement out (57014) or detects a deadlock or
// serialization failure (40P01, 40001), and a context that ends while waiting for it, are
// EUnavailable ("database unavailable" or "database busy"), which the HTTP layer turns into
// 503. Anything else is EInternal, with the driver's error kept for the logs only.
//
// # Concurrency
//
// A Store is safe for concurrent use. Reads outside Tx that need more than one query run in
// a REPEATABLE READ, READ ONLY transaction, so they see one committed state; single queries
// run on their own.
//
// Writers of one project run one after the other, on every node, as SQLite's writers do:
//   - A write transaction — a Tx closure, or a Store write method of several statements on
//     its own (ReplaceConfig, DeleteSubject, ReplaceAssignments, ReplaceOverrides,
//     TouchAPIKeys) — locks the project's row (SELECT … FOR NO KEY UPDATE) before it first
//     touches the project, reads included, and holds the lock until it ends.
//   - AppendChanges' revision bump (UPDATE projects …) takes the same lock, so revisions
//     are gap-free and commit in order.
//   - Store writes that are a single statement on their own (CreateOrganization,
//     CreateProject, UpsertSubject, CreateAPIKey, RevokeAPIKey, AppendChanges) are atomic
//     by themselves and lock no more than their own row.
//
// So a replace never interleaves with another (two nodes replacing one subject's grants
// at once cannot leave the union of both), a Tx sees a state no other writer changes under
// it, and writers of one project do not deadlock with each other. Writers of different
// projects do not wait for each other.
//
// Inside Tx a failed statement aborts the transaction (PostgreSQL's rule): after a Data
// method returned an error, the closure should return an error too.
//
// # Change feed
//
// AppendChanges also sends pg_notify('thauth_changes', '<project id>:<revision>'), which
// PostgreSQL delivers when (and only if) the transaction commits. Listen turns these into
// calls of a function, so that a node learns of another node's write at once and polling
// is only the fallback.
//
// # Durability
//
// A commit is durable when Tx returns nil as long as the server runs with
// synchronous_commit=on (the default) and fsync=on.
//
// # Schema
//
// Open does not change the schema. Migrate applies the numbered files of migrations/
// (in lockstep with internal/sqlite's) in order, each in its own transaction together with
// its row in schema_migrations, holding a transaction-level advisory lock, so several
// nodes may run it at once.
package postgres

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/thauth/thauth"
)

// Defaults of Options.
const (
	DefaultMaxConns                 = 20
	DefaultConnectTimeout           = 5 * time.Second
	DefaultStatementTimeout         = 5 * time.Second
	DefaultIdleInTransactionTimeout = 30 * time.Second
	DefaultMaxConnLifetime          = time.Hour
	DefaultMaxConnIdleTime          = 30 * time.Minute
)

// Options configures Open; the package comment describes each field and its default.
type Options struct {
	Logger                   *slog.Logger
	MaxConns                 int32
	MinConns                 int32
	MaxConnLifetime          time.Duration
	MaxConnIdleTime          time.Duration
	ConnectTimeout           time.Duration
	StatementTimeout         time.Duration
	IdleInTransactionTimeout time.Duration
}

// Store is the PostgreSQL implementation of thauth.Store. It is safe for concurrent use;
// Close releases it.
type Store struct {
	pool   *pgxpool.Pool
	log    *slog.Logger
	listen *pgx.ConnConfig // for Listen's dedicated connections

	listenIdle time.Duration // listenIdleCheck, changed by tests
}

var _ thauth.Store = (*Store)(nil)

// Open connects to the database named by databaseURL and checks that it answers. It does
// not migrate: call Migrate (or check SchemaVersion) before using a new database.
//
// A connection string that cannot be parsed is EInvalid (its text is never included in the
// error, since it may hold a password); a server that cannot be reached within
// ConnectTimeout (or before ctx ends) is EUnavailable.
func Open(ctx context.Context, databaseURL string, o Options) (*Store, error) {
	cfg, err := poolConfig(databaseURL, o)
	if err != nil {
		return nil, err
	}
	log := o.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, mapErr(err, "cannot open database")
	}
	s := &Store{pool: pool, log: log, listen: cfg.ConnConfig.Copy(), listenIdle: listenIdleCheck}
	if err := s.Ping(ctx); err != nil {
		pool.Close()
		return nil, err
	}
	return s, nil
}

// poolConfig parses databaseURL and applies o on top of it.
func poolConfig(databaseURL string, o Options) (*pgxpool.Config, error) {
	// The pool_* parameters are removed by pgxpool.ParseConfig; look for them first so that
	// an explicit value in the string wins over our defaults (but not over Options).
	given := map[string]bool{}
	if pc, err := pgconn.ParseConfig(databaseURL); err == nil {
		for k := range pc.RuntimeParams {
			given[k] = true
		}
	}
	cfg, err := pgxpool.ParseConfig(databaseURL)
	if err != nil {
		// The error's text, and its cause's, may quote the connection string and its
		// password: drop them.
		return nil, thauth.Errorf(thauth.EInvalid, "invalid database URL (want postgres://user:password@host:port/database?param=value...)")
	}
	pick := func(opt, def time.Duration, param string, cur time.Duration) time.Duration {
		switch {
		case opt != 0:
			return opt
		case given[param]:
			return cur
		}
		return def
	}
	switch {
	case o.MaxConns > 0:
		cfg.MaxConns = o.MaxConns
	case !given["pool_max_conns"]:
		cfg.MaxConns = DefaultMaxConns
	}
	if o.MinConns > 0 {
		cfg.MinConns = o.MinConns
	}
	if cfg.MinConns > cfg.MaxConns {
		return nil, thauth.Errorf(thauth.EInvalid, "database MinConns (%d) exceeds MaxConns (%d)", cfg.MinConns, cfg.MaxConns)
	}
	cfg.MaxConnLifetime = pick(o.MaxConnLifetime, DefaultMaxConnLifetime, "pool_max_conn_lifetime", cfg.MaxConnLifetime)
	cfg.MaxConnIdleTime = pick(o.MaxConnIdleTime, DefaultMaxConnIdleTime, "pool_max_conn_idle_time", cfg.MaxConnIdleTime)
	cc := cfg.ConnConfig
	if o.ConnectTimeout > 0 {
		cc.ConnectTimeout = o.ConnectTimeout
	} else if cc.ConnectTimeout <= 0 {
		cc.ConnectTimeout = DefaultConnectTimeout
	}
	cc.DialFunc = dialFunc(cc.ConnectTimeout)
	// A connection idle for more than a second is pinged before use; a dead server must
	// not make that ping hang.
	cfg.PingTimeout = cc.ConnectTimeout

	setMillis := func(param string, opt, def time.Duration) {
		switch {
		case opt < 0:
			cc.RuntimeParams[param] = "0"
		case opt > 0:
			cc.RuntimeParams[param] = strconv.FormatInt(max(opt.Milliseconds(), 1), 10)
		case !given[param]:
			cc.RuntimeParams[param] = strconv.FormatInt(def.Milliseconds(), 10)
		}
	}
	if cc.RuntimeParams == nil {
		cc.RuntimeParams = map[string]string{}
	}
	setMillis("statement_timeout", o.StatementTimeout, DefaultStatementTimeout)
	setMillis("idle_in_transaction_session_timeout", o.IdleInTransactionTimeout, DefaultIdleInTransactionTimeout)
	if _, ok := cc.RuntimeParams["application_name"]; !ok {
		cc.RuntimeParams["application_name"] = "thauth"
	}
	return cfg, nil
}

// Close closes every connection of the pool, waiting for connections in use to be
// released. The Store must not be used afterwards. It always returns nil.
func (s *Store) Close() error {
	s.pool.Close()
	return nil
}

// Ping checks that the database answers a query; it returns EUnavailable otherwise.
func (s *Store) Ping(ctx context.Context) error {
	var one int
	if err := s.pool.QueryRow(ctx, "SELECT 1").Scan(&one); err != nil {
		return &thauth.Error{Code: thauth.EUnavailable, Message: "database unavailable", Err: err}
	}
	return nil
}

// Tx runs fn in one READ COMMITTED transaction, in which every project fn touches is
// locked on first use (see the package comment): fn's error or panic rolls it back (a panic
// is re-raised after the rollback), nil commits it. fn's error is returned as is; a failed
// commit is mapped like any other error (a lost connection at commit is EUnavailable, and
// the write may or may not have been applied).
func (s *Store) Tx(ctx context.Context, fn func(ctx context.Context, tx thauth.Data) error) error {
	return s.write(ctx, func(d *data) error { return fn(ctx, d) })
}

// rollbackTimeout bounds a rollback, which runs even when ctx has ended.
const rollbackTimeout = 5 * time.Second

// write runs fn in a write transaction whose data locks projects on first use.
func (s *Store) write(ctx context.Context, fn func(d *data) error) error {
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return mapErr(err, "cannot begin transaction")
	}
	d := &data{q: tx, lock: true}
	done := false
	defer func() {
		if !done { // fn failed or panicked (the panic continues after the rollback)
			rollback(ctx, tx)
		}
	}()
	if err := fn(d); err != nil {
		return err
	}
	done = true
	if err := tx.Commit(ctx); err != nil {
		if errors.Is(err, pgx.ErrTxCommitRollback) {
			return thauth.Internal(err, "transaction was rolled back after a failed statement")
		}
		return mapErr(err, "cannot commit transaction")
	}
	return nil
}

// read runs fn in a REPEATABLE READ, READ ONLY transaction, so that the several queries of
// one method see the same committed state.
func (s *Store) read(ctx context.Context, fn func(d *data) error) error {
	tx, err := s.pool.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	if err != nil {
		return mapErr(err, "cannot begin transaction")
	}
	defer rollback(ctx, tx) // read only: nothing to keep
	return fn(&data{q: tx})
}

func rollback(ctx context.Context, tx pgx.Tx) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), rollbackTimeout)
	defer cancel()
	_ = tx.Rollback(ctx) // on failure pgx closes the connection, which rolls back too
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

// direct returns data that runs each statement on its own (autocommit), for methods that
// are one statement.
func (s *Store) direct() *data { return &data{q: s.pool} }

// SQLSTATE codes used in error mapping.
const (
	codeUniqueViolation     = "23505"
	codeForeignKeyViolation = "23503"
)

// pgCode returns the SQLSTATE of err, or "".
func pgCode(err error) string {
	var e *pgconn.PgError
	if errors.As(err, &e) {
		return e.Code
	}
	return ""
}

// pgConstraint returns the constraint named by err, or "".
func pgConstraint(err error) string {
	var e *pgconn.PgError
	if errors.As(err, &e) {
		return e.ConstraintName
	}
	return ""
}

func isUniqueViolation(err error) bool { return pgCode(err) == codeUniqueViolation }

func isForeignKeyViolation(err error) bool { return pgCode(err) == codeForeignKeyViolation }

// unavailable reports whether err means the database cannot be reached or did not answer in
// time, as opposed to a query it rejected.
func unavailable(err error) bool {
	if code := pgCode(err); code != "" {
		switch {
		case len(code) == 5 && code[:2] == "08": // connection exception
			return true
		case code == "57P01", code == "57P02", code == "57P03": // shutting down, cannot connect now
			return true
		case code == "53300": // too many connections
			return true
		}
		return false
	}
	var ce *pgconn.ConnectError
	var ne net.Error
	switch {
	case errors.As(err, &ce), errors.As(err, &ne), pgconn.Timeout(err), pgconn.SafeToRetry(err):
		return true
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled):
		return true
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, net.ErrClosed),
		errors.Is(err, pgconn.ErrConnClosed):
		return true
	}
	return false
}

// mapErr turns a driver error into a *thauth.Error: a *thauth.Error passes through, an
// unreachable or overloaded database is EUnavailable, a missing row ENotFound, a uniqueness
// violation EConflict, anything else EInternal with msg. Callers handle pgx.ErrNoRows and
// constraint violations themselves where they can say what was meant.
func mapErr(err error, msg string) error {
	if err == nil {
		return nil
	}
	var te *thauth.Error
	if errors.As(err, &te) {
		return err
	}
	switch code := pgCode(err); {
	case errors.Is(err, context.Canceled):
		return &thauth.Error{Code: thauth.EUnavailable, Message: "database call canceled", Err: err}
	case unavailable(err):
		return &thauth.Error{Code: thauth.EUnavailable, Message: "database unavailable", Err: err}
	case code == "57014": // statement timeout (or cancelled)
		return &thauth.Error{Code: thauth.EUnavailable, Message: "database busy: statement timed out", Err: err}
	case code == "40001", code == "40P01": // serialization failure, deadlock
		return &thauth.Error{Code: thauth.EUnavailable, Message: "database busy: try again", Err: err}
	case code == codeUniqueViolation:
		return &thauth.Error{Code: thauth.EConflict, Message: msg + ": already exists", Err: err}
	case errors.Is(err, pgx.ErrNoRows):
		return &thauth.Error{Code: thauth.ENotFound, Message: "not found", Err: err}
	}
	return thauth.Internal(err, "%s", msg)
}

// notFound maps pgx.ErrNoRows to ENotFound "<what> not found" and anything else via mapErr.
func notFound(err error, what string) error {
	if errors.Is(err, pgx.ErrNoRows) {
		return thauth.Errorf(thauth.ENotFound, "%s not found", what)
	}
	return mapErr(err, "cannot read "+what)
}
