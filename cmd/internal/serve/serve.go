// Package serve wires a Thauth node together: the SQLite store, the decision engine and its
// follow loop, the management service, the HTTP handler and the http.Server around them,
// plus the background flush of API key last-use times. `thauth serve` and the load
// generator's -self mode both start a node through it, so they run exactly the same code.
//
// Flags and environment variables are not read here: callers fill in a Config.
package serve

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/thauth/thauth/internal/engine"
	"github.com/thauth/thauth/internal/httpserver"
	"github.com/thauth/thauth/internal/manage"
	"github.com/thauth/thauth/internal/sqlite"
)

// Config is everything a node needs. The zero value is not valid; start from Defaults.
type Config struct {
	// Addr is the TCP address to listen on; port 0 picks a free port (see Server.Addr).
	// Default "127.0.0.1:8080": loopback only, since TLS is not served yet.
	Addr string
	// DataDir holds the SQLite database (created with mode 0700). Default "./thauth-data".
	DataDir string
	// SyncInterval is how often the engine looks for writes made by other processes (such as
	// `thauth init` on the same data directory). Default 500ms.
	SyncInterval time.Duration
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
	if strings.TrimSpace(c.DataDir) == "" {
		add("DataDir", "must not be empty")
	}
	positive := func(field string, d, lo, hi time.Duration) {
		if d < lo || d > hi {
			add(field, "must be between %v and %v, got %v", lo, hi, d)
		}
	}
	positive("SyncInterval", c.SyncInterval, 10*time.Millisecond, time.Hour)
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
	store  *sqlite.Store
	engine *engine.Engine
	manage *manage.Service
	http   *http.Server
	ln     net.Listener

	stopBG context.CancelFunc // ends the follow loop and the key-usage flusher
	bg     sync.WaitGroup
	served chan error // receives Serve's result once

	flushMu sync.Mutex                      // serializes flushes
	pending map[string]map[string]time.Time // key uses whose write failed, retried next flush

	shutdownOnce sync.Once
	shutdownErr  error
}

// Start opens the store in cfg.DataDir, migrates it, loads every project into the engine,
// starts listening on cfg.Addr and serves in the background until Shutdown. ctx bounds the
// start-up only. On error nothing is left running.
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
	store, err := sqlite.Open(ctx, cfg.DataDir, sqlite.Options{Logger: log})
	if err != nil {
		return nil, fmt.Errorf("opening the store in %s: %w", cfg.DataDir, err)
	}
	defer func() {
		if err != nil {
			store.Close()
		}
	}()
	if err := store.Migrate(ctx); err != nil {
		return nil, fmt.Errorf("migrating the store: %w", err)
	}
	eng := engine.New(store, engine.Options{Logger: log})
	if err := eng.LoadAll(ctx); err != nil {
		return nil, fmt.Errorf("loading projects: %w", err)
	}
	mgr := manage.New(store, eng, manage.Options{Logger: log})
	handler := httpserver.New(httpserver.Deps{
		Engine: eng,
		Manage: mgr,
		Ping:   store.Ping,
		Logger: log,
		Now:    time.Now,
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
	s.bg.Add(2)
	go func() { defer s.bg.Done(); eng.Follow(bgCtx, cfg.SyncInterval) }()
	go func() { defer s.bg.Done(); s.flushLoop(bgCtx) }()
	go func() { s.served <- s.http.Serve(ln) }()

	s.warnIfExposed()
	log.Info("listening", "addr", s.Addr(), "data_dir", cfg.DataDir)
	return s, nil
}

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
