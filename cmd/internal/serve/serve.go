// Package serve wires a Thauth node together: the store (embedded SQLite in a data
// directory, or PostgreSQL shared by several nodes), the decision engine and its follow loop
// (woken by PostgreSQL's change notifications, polling as the fallback), the management
// service, the HTTP handler and the http.Server around them, plus the background flush of API
// key last-use times. `thauth serve`, the load generator's -self mode and the multi-node
// tests all start nodes through it, so they run exactly the same code.
//
// Flags and environment variables are not read here: callers fill in a Config.
//
// The database URL may hold a password: it is never logged, and errors returned by Start do
// not contain it.
package serve

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/thauth/thauth"
	"github.com/thauth/thauth/internal/engine"
	"github.com/thauth/thauth/internal/httpserver"
	"github.com/thauth/thauth/internal/manage"
	"github.com/thauth/thauth/internal/postgres"
	"github.com/thauth/thauth/internal/sqlite"
)

// Config is everything a node needs. The zero value is not valid; start from Defaults.
type Config struct {
	// Addr is the TCP address to listen on; port 0 picks a free port (see Server.Addr).
	// Default "127.0.0.1:8080": loopback only, since TLS is not served yet.
	Addr string
	// DataDir holds the SQLite database (created with mode 0700). Default "./thauth-data".
	// Unused when DatabaseURL is set.
	DataDir string

	// DatabaseURL, when set, selects PostgreSQL instead of SQLite: a postgres:// URL (or a
	// keyword/value connection string) as accepted by pgx, including its pool_* and
	// statement_timeout parameters (the options below win over them). Several nodes may
	// share one database. Default "" (SQLite in DataDir).
	DatabaseURL string
	// DBMaxConns is the most connections the node opens to PostgreSQL (plus one for change
	// notifications). 0 means the URL's pool_max_conns, else 20. PostgreSQL only.
	DBMaxConns int32
	// DBStatementTimeout is PostgreSQL's statement_timeout on the node's connections: a
	// statement running longer (typically one waiting for a lock held by a stuck writer)
	// is cancelled and the request fails with 503. 0 means the URL's statement_timeout,
	// else 5s; a negative value disables it. PostgreSQL only.
	DBStatementTimeout time.Duration
	// AutoMigrate makes Start apply pending migrations to a PostgreSQL database. When false
	// (the default) Start refuses a PostgreSQL database whose schema is behind this
	// binary, with a message telling to run `thauth migrate`: schema changes of a shared
	// database are an operator's decision. The SQLite database is always migrated.
	AutoMigrate bool
	// PollOnly turns off the PostgreSQL change notifications (LISTEN on a connection of its
	// own): other nodes' writes are then picked up by polling every SyncInterval only. For
	// connection poolers that cannot pass LISTEN through (PgBouncer in transaction mode),
	// and for tests that need a node to stay behind. Default false.
	PollOnly bool

	// SyncInterval is how often the engine polls the store for writes made by other
	// processes or nodes (such as `thauth init` on the same data directory). On PostgreSQL
	// a change notification wakes it at once, and polling is the fallback for missed
	// notifications. Default 500ms.
	SyncInterval time.Duration
	// FreshnessWait bounds how long a check carrying "at_least_as_fresh" waits for this
	// node to reach the requested revision before it is answered 503 (docs/freshness.md).
	// Default 2s; 0 also means 2s.
	FreshnessWait time.Duration
	// KeyUsageFlushInterval is how often in-memory API key last-use times are written to the
	// store (they are also written at shutdown). Default 5s.
	KeyUsageFlushInterval time.Duration
	// ShutdownTimeout bounds how long a graceful shutdown waits for in-flight requests
	// before closing the remaining connections. Default 15s.
	ShutdownTimeout time.Duration

	// HTTP server limits. Defaults: ReadHeaderTimeout 5s, ReadTimeout 30s, WriteTimeout
	// 30s, IdleTimeout 120s, MaxHeaderBytes 64 KiB.
	ReadHeaderTimeout time.Duration
	ReadTimeout       time.Duration
	WriteTimeout      time.Duration
	IdleTimeout       time.Duration
	MaxHeaderBytes    int
}

// Defaults returns the default configuration.
func Defaults() Config {
	return Config{
		Addr:                  "127.0.0.1:8080",
		DataDir:               "./thauth-data",
		SyncInterval:          500 * time.Millisecond,
		FreshnessWait:         2 * time.Second,
		KeyUsageFlushInterval: 5 * time.Second,
		ShutdownTimeout:       15 * time.Second,
		ReadHeaderTimeout:     5 * time.Second,
		ReadTimeout:           30 * time.Second,
		WriteTimeout:          30 * time.Second,
		IdleTimeout:           120 * time.Second,
		MaxHeaderBytes:        64 << 10,
	}
}

// Problem is one invalid field of a Config.
type Problem struct {
	Field   string // the Config field name, e.g. "SyncInterval"
	Message string
}

// Validate returns every problem of c (nil when c is valid).
func (c Config) Validate() []Problem {
	var ps []Problem
	add := func(field, format string, args ...any) {
		ps = append(ps, Problem{Field: field, Message: fmt.Sprintf(format, args...)})
	}
	if c.Addr == "" {
		add("Addr", "must not be empty")
	} else if _, port, err := net.SplitHostPort(c.Addr); err != nil {
		add("Addr", "must be host:port (for example 127.0.0.1:8080): %v", unwrapAddrErr(err))
	} else if port == "" {
		add("Addr", "must include a port (use 0 for any free port)")
	}
	if strings.TrimSpace(c.DataDir) == "" && c.DatabaseURL == "" {
		add("DataDir", "must not be empty")
	}
	if c.DBMaxConns < 0 || c.DBMaxConns > 10000 {
		add("DBMaxConns", "must be between 0 (the default) and 10000, got %d", c.DBMaxConns)
	}
	if c.DBStatementTimeout > 24*time.Hour {
		add("DBStatementTimeout", "must be at most 24h, got %v", c.DBStatementTimeout)
	}
	if c.DBStatementTimeout > 0 && c.DBStatementTimeout < time.Millisecond {
		add("DBStatementTimeout", "must be at least 1ms (or 0 for the default, negative to disable), got %v", c.DBStatementTimeout)
	}
	positive := func(field string, d, lo, hi time.Duration) {
		if d < lo || d > hi {
			add(field, "must be between %v and %v, got %v", lo, hi, d)
		}
	}
	positive("SyncInterval", c.SyncInterval, 10*time.Millisecond, time.Hour)
	positive("FreshnessWait", c.FreshnessWait, 0, time.Minute)
	positive("KeyUsageFlushInterval", c.KeyUsageFlushInterval, 100*time.Millisecond, time.Hour)
	positive("ShutdownTimeout", c.ShutdownTimeout, 0, time.Hour)
	positive("ReadHeaderTimeout", c.ReadHeaderTimeout, time.Millisecond, time.Hour)
	positive("ReadTimeout", c.ReadTimeout, time.Millisecond, time.Hour)
	positive("WriteTimeout", c.WriteTimeout, time.Millisecond, time.Hour)
	positive("IdleTimeout", c.IdleTimeout, time.Millisecond, 24*time.Hour)
	if c.MaxHeaderBytes < 4<<10 || c.MaxHeaderBytes > 1<<20 {
		add("MaxHeaderBytes", "must be between 4 KiB and 1 MiB, got %d", c.MaxHeaderBytes)
	}
	return ps
}

func unwrapAddrErr(err error) string {
	var ae *net.AddrError
	if errors.As(err, &ae) {
		return ae.Err
	}
	return err.Error()
}

// Server is a running node. Its methods are safe for concurrent use.
type Server struct {
	cfg    Config
	log    *slog.Logger
	store  thauth.Store
	pg     *postgres.Store // the same store when on PostgreSQL, else nil
	engine *engine.Engine
	manage *manage.Service
	http   *http.Server
	ln     net.Listener

	stopBG context.CancelFunc // ends the follow loop, the listener and the key-usage flusher
	bg     sync.WaitGroup
	served chan error // receives Serve's result once

	flushMu sync.Mutex                      // serializes flushes
	pending map[string]map[string]time.Time // key uses whose write failed, retried next flush

	shutdownOnce sync.Once
	shutdownErr  error
}

// Start opens the store (PostgreSQL when cfg.DatabaseURL is set, else SQLite in
// cfg.DataDir, migrated), loads every project into the engine, starts listening on cfg.Addr
// and serves in the background until Shutdown. ctx bounds the start-up only. On error
// nothing is left running.
//
// On PostgreSQL, Start fails with a *SchemaBehindError when the database schema is behind
// this binary, unless cfg.AutoMigrate is set, and fails when the database cannot be reached
// (it does not wait for it).
func Start(ctx context.Context, cfg Config, log *slog.Logger) (_ *Server, err error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if ps := cfg.Validate(); len(ps) > 0 {
		msgs := make([]string, len(ps))
		for i, p := range ps {
			msgs[i] = p.Field + ": " + p.Message
		}
		return nil, fmt.Errorf("invalid configuration: %s", strings.Join(msgs, "; "))
	}
	store, pg, err := openStore(ctx, cfg, log)
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			store.Close()
		}
	}()
	eng := engine.New(store, engine.Options{Logger: log})
	if err := eng.LoadAll(ctx); err != nil {
		return nil, redact(fmt.Errorf("loading projects: %w", err), cfg.DatabaseURL)
	}
	mgr := manage.New(store, eng, manage.Options{Logger: log})
	handler := httpserver.New(httpserver.Deps{
		Engine:        eng,
		Manage:        mgr,
		Ping:          store.Ping,
		Logger:        log,
		Now:           time.Now,
		FreshnessWait: cfg.FreshnessWait,
	})

	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", cfg.Addr)
	if err != nil {
		return nil, fmt.Errorf("listening on %s: %w", cfg.Addr, err)
	}
	s := &Server{
		cfg:    cfg,
		log:    log,
		store:  store,
		pg:     pg,
		engine: eng,
		manage: mgr,
		ln:     ln,
		served: make(chan error, 1),
		http: &http.Server{
			Handler:           handler,
			ReadHeaderTimeout: cfg.ReadHeaderTimeout,
			ReadTimeout:       cfg.ReadTimeout,
			WriteTimeout:      cfg.WriteTimeout,
			IdleTimeout:       cfg.IdleTimeout,
			MaxHeaderBytes:    cfg.MaxHeaderBytes,
			ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
		},
	}
	bgCtx, stop := context.WithCancel(context.WithoutCancel(ctx))
	s.stopBG = stop
	// The follow loop polls every SyncInterval; on PostgreSQL, change notifications wake it
	// at once. The listener only signals (never syncs itself): a burst of notifications
	// costs one SyncAll, and a slow sync never holds up the notification connection.
	wake := make(chan struct{}, 1)
	if pg != nil && !cfg.PollOnly {
		s.bg.Add(1)
		go func() {
			defer s.bg.Done()
			_ = pg.Listen(bgCtx, func(string, int64) {
				select {
				case wake <- struct{}{}:
				default: // a wake-up is pending already
				}
			})
		}()
	}
	s.bg.Add(2)
	go func() { defer s.bg.Done(); eng.FollowWith(bgCtx, cfg.SyncInterval, wake) }()
	go func() { defer s.bg.Done(); s.flushLoop(bgCtx) }()
	go func() { s.served <- s.http.Serve(ln) }()

	s.warnIfExposed()
	if pg != nil {
		log.Info("listening", "addr", s.Addr(), "store", "postgresql")
	} else {
		log.Info("listening", "addr", s.Addr(), "store", "sqlite", "data_dir", cfg.DataDir)
	}
	return s, nil
}

// openStore opens the store cfg names and checks (SQLite: brings) its schema up to date.
// pg is the same store when it is PostgreSQL.
func openStore(ctx context.Context, cfg Config, log *slog.Logger) (store thauth.Store, pg *postgres.Store, err error) {
	if cfg.DatabaseURL == "" {
		st, err := sqlite.Open(ctx, cfg.DataDir, sqlite.Options{Logger: log})
		if err != nil {
			return nil, nil, fmt.Errorf("opening the store in %s: %w", cfg.DataDir, err)
		}
		if err := st.Migrate(ctx); err != nil {
			st.Close()
			return nil, nil, fmt.Errorf("migrating the store: %w", err)
		}
		return st, nil, nil
	}
	pg, err = OpenPostgres(ctx, cfg, log)
	if err != nil {
		return nil, nil, err
	}
	if err := checkSchema(ctx, pg, cfg, log); err != nil {
		pg.Close()
		return nil, nil, err
	}
	return pg, pg, nil
}

// OpenPostgres opens the PostgreSQL database of cfg.DatabaseURL with the pool options of
// cfg; it does not look at the schema. Errors never contain the URL's password.
func OpenPostgres(ctx context.Context, cfg Config, log *slog.Logger) (*postgres.Store, error) {
	pg, err := postgres.Open(ctx, cfg.DatabaseURL, postgres.Options{
		Logger:           log,
		MaxConns:         cfg.DBMaxConns,
		StatementTimeout: cfg.DBStatementTimeout,
	})
	if err != nil {
		return nil, redact(fmt.Errorf("opening the PostgreSQL database: %w", err), cfg.DatabaseURL)
	}
	return pg, nil
}

// checkSchema refuses a PostgreSQL schema that is behind this binary, or migrates it when
// cfg.AutoMigrate is set.
func checkSchema(ctx context.Context, pg *postgres.Store, cfg Config, log *slog.Logger) error {
	cur, latest, err := pg.SchemaVersion(ctx)
	if err != nil {
		return redact(fmt.Errorf("reading the database schema version: %w", err), cfg.DatabaseURL)
	}
	switch {
	case cur < latest && cfg.AutoMigrate:
		log.Info("migrating the database schema", "from", cur, "to", latest)
		if err := pg.Migrate(ctx); err != nil {
			return redact(fmt.Errorf("migrating the database: %w", err), cfg.DatabaseURL)
		}
	case cur < latest:
		return &SchemaBehindError{Current: cur, Latest: latest}
	case cur > latest:
		log.Warn("the database schema is newer than this binary; running anyway (migrations only add)",
			"schema_version", cur, "binary_version", latest)
	}
	return nil
}

// SchemaBehindError is Start's error for a PostgreSQL database whose schema is older than
// the binary (and AutoMigrate is off).
type SchemaBehindError struct {
	Current, Latest int
}

func (e *SchemaBehindError) Error() string {
	return fmt.Sprintf("database schema is at version %d, this binary needs %d: "+
		"run `thauth migrate --database-url …` (or THAUTH_DATABASE_URL=… thauth migrate), or start with --auto-migrate",
		e.Current, e.Latest)
}

// Redact returns err with every occurrence of databaseURL, and of its password, removed from
// its text (errors.Is and errors.As still see the original chain); nil stays nil.
func Redact(err error, databaseURL string) error { return redact(err, databaseURL) }

// redact returns err with every occurrence of the database URL, and of its password, in
// its text replaced; errors.Is and errors.As still see the original chain.
func redact(err error, databaseURL string) error {
	if err == nil || databaseURL == "" {
		return err
	}
	secrets := []string{databaseURL}
	if pc, perr := pgconn.ParseConfig(databaseURL); perr == nil && len(pc.Password) >= 3 {
		secrets = append(secrets, pc.Password, url.QueryEscape(pc.Password), url.PathEscape(pc.Password))
	}
	return &redactedError{err: err, secrets: secrets}
}

type redactedError struct {
	err     error
	secrets []string
}

func (r *redactedError) Error() string {
	msg := r.err.Error()
	for _, s := range r.secrets {
		msg = strings.ReplaceAll(msg, s, "[redacted]")
	}
	return msg
}

func (r *redactedError) Unwrap() error { return r.err }

// warnIfExposed warns when the node listens on a non-loopback address: there is no TLS yet,
// so API keys would cross the network in clear text.
func (s *Server) warnIfExposed() {
	if !exposed(s.ln.Addr()) {
		return
	}
	s.log.Warn("listening on a non-loopback address without TLS: API keys and decisions travel in clear text; "+
		"put a TLS-terminating proxy in front or listen on 127.0.0.1", "addr", s.Addr())
}

// exposed reports whether a listener address is reachable from other machines.
func exposed(a net.Addr) bool {
	ta, ok := a.(*net.TCPAddr)
	return !ok || !ta.IP.IsLoopback()
}

// Addr returns the address the node listens on, with the real port when cfg.Addr had port 0.
func (s *Server) Addr() string { return s.ln.Addr().String() }

// URL returns the base URL of the node ("http://" + Addr).
func (s *Server) URL() string { return "http://" + s.Addr() }

// Manage returns the node's management service (for in-process set-up, as in the load
// generator). Writes through it are visible to checks when they return.
func (s *Server) Manage() *manage.Service { return s.manage }

// Engine returns the node's decision engine.
func (s *Server) Engine() *engine.Engine { return s.engine }

// Done receives the error that stopped serving before Shutdown was called (a listener
// failure), or http.ErrServerClosed after Shutdown. It yields one value.
func (s *Server) Done() <-chan error { return s.served }

// Shutdown stops the node gracefully: it stops accepting connections, waits for in-flight
// requests (at most until ctx ends, then closes the rest), stops the follow loop, writes the
// pending key last-use times and closes the store. Later calls return the first result.
func (s *Server) Shutdown(ctx context.Context) error {
	s.shutdownOnce.Do(func() {
		var errs []error
		if err := s.http.Shutdown(ctx); err != nil {
			s.log.Warn("graceful shutdown incomplete; closing remaining connections", "err", err)
			s.http.Close()
			errs = append(errs, err)
		}
		s.stopBG()
		s.bg.Wait()
		flushCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		if err := s.flushKeyUsage(flushCtx); err != nil {
			errs = append(errs, fmt.Errorf("writing key usage: %w", err))
		}
		cancel()
		if err := s.store.Close(); err != nil {
			errs = append(errs, fmt.Errorf("closing the store: %w", err))
		}
		s.shutdownErr = errors.Join(errs...)
		s.log.Info("stopped")
	})
	return s.shutdownErr
}

// Run starts a node, calls onListen (if not nil) with its address, serves until ctx is done
// or serving fails, then shuts down gracefully within cfg.ShutdownTimeout.
func Run(ctx context.Context, cfg Config, log *slog.Logger, onListen func(addr string)) error {
	s, err := Start(ctx, cfg, log)
	if err != nil {
		return err
	}
	if onListen != nil {
		onListen(s.Addr())
	}
	var serveErr error
	select {
	case <-ctx.Done():
		s.log.Info("shutting down", "cause", context.Cause(ctx))
	case serveErr = <-s.served:
		s.log.Error("server stopped", "err", serveErr)
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cfg.ShutdownTimeout)
	defer cancel()
	return errors.Join(serveErr, s.Shutdown(sctx))
}

func (s *Server) flushLoop(ctx context.Context) {
	t := time.NewTicker(s.cfg.KeyUsageFlushInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			fctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			if err := s.flushKeyUsage(fctx); err != nil && ctx.Err() == nil {
				s.log.Warn("writing API key last-use times failed; will retry", "err", err)
			}
			cancel()
		}
	}
}

// flushKeyUsage writes the key uses the engine collected since the last flush, per project.
// Uses whose write fails are kept and retried on the next flush.
func (s *Server) flushKeyUsage(ctx context.Context) error {
	s.flushMu.Lock()
	defer s.flushMu.Unlock()
	usage := s.engine.TakeKeyUsage()
	if usage == nil {
		usage = map[string]map[string]time.Time{}
	}
	for proj, keys := range s.pending {
		if usage[proj] == nil {
			usage[proj] = map[string]time.Time{}
		}
		for id, at := range keys {
			if at.After(usage[proj][id]) {
				usage[proj][id] = at
			}
		}
	}
	s.pending = nil
	var errs []error
	for proj, keys := range usage {
		if len(keys) == 0 {
			continue
		}
		if err := s.store.TouchAPIKeys(ctx, proj, keys); err != nil {
			errs = append(errs, fmt.Errorf("project %s: %w", proj, err))
			if s.pending == nil {
				s.pending = map[string]map[string]time.Time{}
			}
			s.pending[proj] = keys
		}
	}
	return errors.Join(errs...)
}
