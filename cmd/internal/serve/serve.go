// Package serve wires a Thauth node together: the store (embedded SQLite in a data
// directory, or PostgreSQL shared by several nodes), the decision engine and its follow loop
// (woken by PostgreSQL's change notifications, polling as the fallback), the management
// service, the HTTP handler and the http.Server around them, plus the background flush of API
// key last-use times. `thauth serve` (which the multi-node tests in test/cluster run as
// processes) and the load generator's -self mode start nodes through it, so they run exactly
// the same code.
//
// Flags and environment variables are not read here: callers fill in a Config.
//
// With TLSCertFile/TLSKeyFile or ACMEDomains the node serves HTTPS only (HTTP/2, HSTS; see
// internal/tlsconf), optionally with a plain-HTTP listener that redirects to it. With
// MasterKeys the node opens a seal.Sealer over its store for the secrets it must read back;
// without them secret storage is disabled (and a Production node refuses to start).
//
// The database URL may hold a password: it is never logged, and errors returned by Start do
// not contain it. Master keys are never logged either (seal.MasterKeys prints ids only).
package serve

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/thauth/thauth"
	"github.com/thauth/thauth/internal/abuse"
	"github.com/thauth/thauth/internal/decisionlog"
	"github.com/thauth/thauth/internal/engine"
	"github.com/thauth/thauth/internal/httpserver"
	"github.com/thauth/thauth/internal/mail"
	"github.com/thauth/thauth/internal/manage"
	"github.com/thauth/thauth/internal/postgres"
	"github.com/thauth/thauth/internal/ratelimit"
	"github.com/thauth/thauth/internal/seal"
	"github.com/thauth/thauth/internal/sqlite"
	"github.com/thauth/thauth/internal/tlsconf"
	"github.com/thauth/thauth/internal/totp"
	"github.com/thauth/thauth/internal/webhook"
)

// Config is everything a node needs. The zero value is not valid; start from Defaults.
type Config struct {
	// Addr is the TCP address to listen on; port 0 picks a free port (see Server.Addr).
	// Default "127.0.0.1:8080": loopback only. Without TLS, a non-loopback address is
	// served with a warning in the log.
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

	// TLSCertFile and TLSKeyFile are PEM files of the certificate chain (leaf first) and its
	// private key. When set, Addr serves HTTPS only (TLS 1.2+, HTTP/2, HSTS), and a renewed
	// certificate written over the files is picked up without a restart: on ReloadTLS
	// (SIGHUP) and by a look at the files at most every TLSCheckInterval. Both or neither;
	// not with ACMEDomains. Default "" (plain HTTP).
	TLSCertFile string
	TLSKeyFile  string
	// TLSCheckInterval is the least time between two looks at the certificate files during
	// handshakes. Default 0: tlsconf.DefaultCheckInterval (10s).
	TLSCheckInterval time.Duration
	// ACMEDomains, when set, obtains and renews certificates for these exact names over ACME
	// (tls-alpn-01 on Addr, http-01 on HTTPRedirectAddr). Not with TLSCertFile.
	ACMEDomains []string
	// ACMECacheDir keeps the ACME account key and certificates. Default "" means
	// DataDir/acme.
	ACMECacheDir string
	// ACMEEmail is the optional contact address given to the CA.
	ACMEEmail string
	// ACMEDirectory is the ACME directory URL. Default "": Let's Encrypt production.
	ACMEDirectory string
	// HTTPRedirectAddr, when set (TLS only), is a second listener serving plain HTTP that
	// redirects GET and HEAD to HTTPS on Addr's port (308) and answers ACME http-01
	// challenges. Default "" (none).
	HTTPRedirectAddr string

	// MasterKeys are the operator's master keys, the active one first (seal.ParseMasterKeys).
	// When there is at least one, Start opens a seal.Sealer over the store (Server.Sealer);
	// it fails when the store holds data keys none of them unwraps. Default: none (secret
	// storage disabled).
	MasterKeys seal.MasterKeys
	// Production requires MasterKeys: without one, Validate reports a problem, so the node
	// never runs without the ability to store secrets. It also requires a real mailer
	// (Mail.Mailer "resend" or "smtp"). Default false (development).
	Production bool

	// PublicURL is the address people reach the console at, the base of the links sent by
	// email (verification, password reset, invitations). Default "": the scheme and Addr of
	// this node, which only suits a local installation.
	PublicURL string
	// SessionIdleTimeout ends a console session unused for this long; SessionLifetime ends
	// it this long after sign-in. Defaults 2h and 24h (manage.DefaultSession*).
	SessionIdleTimeout time.Duration
	SessionLifetime    time.Duration
	// Mail selects and configures the mailer (MailConfig). Default: the development outbox,
	// which logs messages and shows them at GET /api/v1/dev/outbox.
	Mail MailConfig

	// AuditRetention is how long audit entries are kept; older ones are deleted every hour.
	// Default 365 days; 0 keeps them forever.
	AuditRetention time.Duration
	// TrustedProxies are the reverse proxies and load balancers in front of the node: from
	// them, X-Forwarded-For names the client (for rate limits, IP blocks, sessions and the
	// audit log). Default none: the TCP peer is the client.
	TrustedProxies []netip.Prefix

	// RedisURL, when set (redis://[:password@]host:port/db), shares rate limits among every
	// node through Redis; when Redis does not answer, each node falls back to its own limits
	// (logged and counted). Default "": limits in this node's memory. Never logged.
	RedisURL string
	// Limits are the rate-limit policies (docs/rate-limits.md); zero fields take
	// httpserver.DefaultLimits, httpserver.LimitOff turns one off.
	Limits httpserver.Limits

	// DecisionLog records every decision asynchronously (docs/decision-log.md): never
	// slowing decisions, dropping (and counting, with gap markers) what it cannot keep up
	// with. Default true. DecisionLogRetention is how long records are kept (default 30
	// days; 0 keeps them forever); DecisionLogBuffer bounds the records waiting in memory
	// (default 65536).
	DecisionLog          bool
	DecisionLogRetention time.Duration
	DecisionLogBuffer    int

	// BlockInvalidKeys is how many invalid API keys one client IP may send within a minute
	// before it is blocked for 15 minutes (the abuse rule invalid_keys_from_ip, which also
	// raises a security event). Default 20 (abuse.DefaultInvalidKeyThreshold); negative
	// turns the block off (the event and the auth-failure rate limit remain).
	BlockInvalidKeys int

	// Observe configures metrics (a Prometheus listener of its own, default
	// 127.0.0.1:9464) and tracing (OTLP, off by default); see ObserveConfig.
	Observe ObserveConfig

	// WebhookAllowInsecure lets organizations register http:// webhook URLs and URLs that
	// resolve to private or loopback addresses (development and tests only: refused with
	// Production). Default false: https:// to public addresses only.
	WebhookAllowInsecure bool
}

// TLS reports whether c serves HTTPS (certificate files or ACME).
func (c Config) TLS() bool {
	return c.TLSCertFile != "" || c.TLSKeyFile != "" || len(c.ACMEDomains) > 0
}

// ACMECache returns the ACME cache directory: ACMECacheDir, else DataDir/acme, else "".
func (c Config) ACMECache() string {
	if c.ACMECacheDir != "" {
		return c.ACMECacheDir
	}
	if strings.TrimSpace(c.DataDir) == "" {
		return ""
	}
	return filepath.Join(c.DataDir, "acme")
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
		SessionIdleTimeout:    manage.DefaultSessionIdleTimeout,
		SessionLifetime:       manage.DefaultSessionLifetime,
		Mail:                  MailConfig{Mailer: "dev"},
		AuditRetention:        365 * 24 * time.Hour,
		Observe:               DefaultObserve(),
		DecisionLog:           true,
		DecisionLogRetention:  30 * 24 * time.Hour,
		DecisionLogBuffer:     65536,
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
	ps = append(ps, c.validateTLS()...)
	if c.Production && c.MasterKeys.Len() == 0 {
		add("Production", "production mode requires a master key to store secrets: set THAUTH_MASTER_KEY or "+
			"--master-key-file (create one with 'thauth keys generate')")
	}
	positive("SessionIdleTimeout", c.SessionIdleTimeout, time.Minute, 30*24*time.Hour)
	positive("SessionLifetime", c.SessionLifetime, 5*time.Minute, 90*24*time.Hour)
	if c.SessionIdleTimeout > c.SessionLifetime {
		add("SessionIdleTimeout", "must not be longer than the session lifetime (%v), got %v", c.SessionLifetime, c.SessionIdleTimeout)
	}
	if c.PublicURL != "" {
		if u, err := url.Parse(c.PublicURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" ||
			u.RawQuery != "" || u.Fragment != "" || u.User != nil {
			add("PublicURL", "must be an absolute http(s) URL without query, fragment or credentials, for example https://thauth.example.com")
		}
	}
	ps = append(ps, c.Mail.Validate()...)
	if c.Production && (c.Mail.Mailer == "" || c.Mail.Mailer == "dev") {
		add("Mail.Mailer", "production mode needs a real mailer: --mailer resend or --mailer smtp (the development outbox only logs mail)")
	}
	ps = append(ps, c.Observe.Validate()...)
	if c.DecisionLogRetention < 0 {
		add("DecisionLogRetention", "must not be negative (0 keeps records forever), got %v", c.DecisionLogRetention)
	}
	if c.DecisionLogBuffer < 0 || c.DecisionLogBuffer > 1<<24 {
		add("DecisionLogBuffer", "must be between 0 (the default) and %d records, got %d", 1<<24, c.DecisionLogBuffer)
	}
	if err := c.Limits.Validate(); err != nil {
		add("Limits", "%v", err)
	}
	if c.AuditRetention < 0 {
		add("AuditRetention", "must not be negative (0 keeps entries forever), got %v", c.AuditRetention)
	} else if c.AuditRetention > 0 && c.AuditRetention < 24*time.Hour {
		add("AuditRetention", "must be at least 24h (or 0 to keep entries forever), got %v", c.AuditRetention)
	}
	if c.Production && c.WebhookAllowInsecure {
		add("WebhookAllowInsecure", "is for development only: production webhooks must be https:// to public addresses")
	}
	if c.Production && c.PublicURL == "" {
		add("PublicURL", "production mode needs --public-url (THAUTH_PUBLIC_URL): the links sent by email point to it")
	}
	return ps
}

// validateTLS returns the problems of the TLS settings, including certificate files that
// cannot be read.
func (c Config) validateTLS() []Problem {
	var ps []Problem
	add := func(field, format string, args ...any) {
		ps = append(ps, Problem{Field: field, Message: fmt.Sprintf(format, args...)})
	}
	readable := func(field, path string) {
		f, err := os.Open(path)
		if err != nil {
			add(field, "cannot read %s: %v", path, unwrapPathErr(err))
			return
		}
		f.Close()
	}
	switch {
	case c.TLSCertFile != "" && c.TLSKeyFile == "":
		add("TLSCertFile", "is set but the key is not: give --tls-key (THAUTH_TLS_KEY) too")
	case c.TLSCertFile == "" && c.TLSKeyFile != "":
		add("TLSKeyFile", "is set but the certificate is not: give --tls-cert (THAUTH_TLS_CERT) too")
	}
	if c.TLSCertFile != "" {
		readable("TLSCertFile", c.TLSCertFile)
	}
	if c.TLSKeyFile != "" {
		readable("TLSKeyFile", c.TLSKeyFile)
	}
	if len(c.ACMEDomains) > 0 {
		if c.TLSCertFile != "" || c.TLSKeyFile != "" {
			add("ACMEDomains", "cannot be combined with --tls-cert/--tls-key: the certificate comes either from files or from ACME")
		}
		if c.ACMECache() == "" {
			add("ACMECacheDir", "must not be empty with ACME (it keeps the account key and certificates)")
		}
	}
	if c.TLSCheckInterval < 0 {
		add("TLSCheckInterval", "must not be negative, got %v", c.TLSCheckInterval)
	}
	if c.HTTPRedirectAddr != "" {
		if !c.TLS() {
			add("HTTPRedirectAddr", "needs TLS (--tls-cert and --tls-key, or --acme-domain): it redirects to HTTPS")
		}
		if _, _, err := net.SplitHostPort(c.HTTPRedirectAddr); err != nil {
			add("HTTPRedirectAddr", "must be host:port (for example :80): %v", unwrapAddrErr(err))
		}
	}
	return ps
}

func unwrapPathErr(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
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
	tls    bool
	certs  *tlsconf.Reloader // nil unless serving certificate files
	sealer *seal.Sealer      // nil unless master keys are configured
	// limiter applies the rate limits; a Redis one is closed at shutdown.
	limiter ratelimit.Limiter
	obs     *Observability      // metrics listener and tracing; shut down last
	dlog    *decisionlog.Writer // nil when the decision log is off; flushed at shutdown

	redirect   *http.Server // nil without HTTPRedirectAddr
	redirectLn net.Listener

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
	var sealer *seal.Sealer
	if cfg.MasterKeys.Len() == 0 && !cfg.Production && cfg.DatabaseURL == "" {
		// Development on SQLite: the console needs secret storage (TOTP seeds, mail), so keep
		// a master key beside the data, loudly. Production refuses to start without a real one.
		cfg.MasterKeys, err = devMasterKey(cfg.DataDir, log)
		if err != nil {
			return nil, err
		}
	}
	if cfg.MasterKeys.Len() > 0 {
		ks, ok := store.(seal.KeyStore)
		if !ok {
			return nil, fmt.Errorf("the store cannot hold data keys")
		}
		sealer, err = seal.New(ctx, ks, cfg.MasterKeys, seal.Options{Logger: log, Production: cfg.Production})
		if err != nil {
			return nil, redact(fmt.Errorf("opening the secret store with master keys %v: %w", cfg.MasterKeys, err), cfg.DatabaseURL)
		}
		log.Info("secret storage enabled", "master_keys", cfg.MasterKeys, "data_key", sealer.ActiveDataKeyID())
	} else {
		log.Info("secret storage is disabled until a master key is configured (THAUTH_MASTER_KEY or --master-key-file; " +
			"'thauth keys generate' creates one)")
	}
	// Observability: metrics on their own listener, tracing when configured. The store is
	// decorated from here on (timing every call); the sealer above keeps the raw store,
	// which is the key store.
	obs, err := StartObservability(ctx, cfg.Observe, log)
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			_ = obs.Shutdown(context.WithoutCancel(ctx))
		}
	}()
	store = obs.WrapStore(store)
	eo := engine.Options{Logger: log}
	obs.EngineOptions(&eo)
	eng := engine.New(store, eo)
	if err := eng.LoadAll(ctx); err != nil {
		return nil, redact(fmt.Errorf("loading projects: %w", err), cfg.DatabaseURL)
	}
	mailer, err := newMailer(cfg.Mail, log)
	if err != nil {
		return nil, err
	}
	publicURL := cfg.PublicURL
	if publicURL == "" {
		publicURL = "http://" + cfg.Addr
		if cfg.TLS() {
			publicURL = "https://" + cfg.Addr
		}
	}
	devMail := cfg.Mail.Mailer == "" || cfg.Mail.Mailer == "dev"
	var worker *mail.Worker
	mopts := manage.Options{
		Logger:             log,
		TOTP:               totp.New("Thauth"),
		Decide:             engineDecider(eng),
		SessionIdleTimeout: cfg.SessionIdleTimeout,
		SessionLifetime:    cfg.SessionLifetime,
		PublicURL:          publicURL,
		KeepMailPayload:    devMail,
	}
	if sealer != nil {
		mopts.Sealer = sealer
		worker = mail.NewWorker(store, sealer, mailer, mail.WorkerOptions{From: cfg.Mail.From, Logger: log, KeepPayload: devMail})
		mopts.MailQueued = worker.Wake
	}
	// Webhooks: the sender's address policy also checks URLs when they are registered.
	sender := webhook.NewSender(webhook.SenderOptions{URLPolicy: webhook.URLPolicy{
		AllowInsecure: cfg.WebhookAllowInsecure, AllowPrivate: cfg.WebhookAllowInsecure}})
	mopts.AllowInsecureWebhooks = cfg.WebhookAllowInsecure
	mopts.CheckWebhookURL = sender.Policy().Check
	mgr := manage.New(store, eng, mopts)
	if err := mgr.EnsureConsole(ctx); err != nil {
		return nil, redact(fmt.Errorf("setting up the console's system project: %w", err), cfg.DatabaseURL)
	}
	// Rate limits (shared through Redis when configured) and abuse detection; the detector's
	// events become security events (stored, mailed, sent to webhooks).
	limiter, err := newLimiter(ctx, cfg.RedisURL, log)
	if err != nil {
		return nil, err
	}
	defer func() {
		if c, ok := limiter.(interface{ Close() error }); ok && err != nil {
			_ = c.Close() // a Redis client of a start that failed
		}
	}()
	aopts := abuse.Options{InvalidKeyThreshold: cfg.BlockInvalidKeys}
	if cfg.BlockInvalidKeys < 0 {
		aopts.InvalidKeyThreshold = math.MaxInt32 // never reached: no block
	}
	detector := abuse.New(aopts)
	deps := httpserver.Deps{
		Engine:        eng,
		Manage:        mgr,
		Ping:          store.Ping,
		Logger:        log,
		Now:           time.Now,
		FreshnessWait: cfg.FreshnessWait,
		// Browsers reach the console over HTTPS when this node serves TLS or when the public
		// URL is https:// (a TLS-terminating load balancer in front): then the session cookie
		// is __Host- and Secure.
		SecureCookies:  cfg.TLS() || strings.HasPrefix(strings.ToLower(cfg.PublicURL), "https://"),
		TrustedProxies: cfg.TrustedProxies,
		Limiter:        limiter,
		Limits:         cfg.Limits,
		Abuse:          detector,
	}
	// The development outbox shows every mail, single-use links included, to whoever asks:
	// only on a development node that listens on loopback.
	switch {
	case !devMail || sealer == nil || cfg.Production:
	case !loopbackAddr(cfg.Addr):
		log.Warn("the development outbox (GET /api/v1/dev/outbox) is off: this node listens beyond loopback, and the " +
			"outbox would show everyone's verification and password-reset links; mail is still logged")
	default:
		deps.DevOutbox = devOutbox(store, sealer)
	}
	// The decision log: its routes read old records even with recording off.
	deps.DecisionLogStore = store
	var dlog *decisionlog.Writer
	if cfg.DecisionLog {
		ret := cfg.DecisionLogRetention
		if ret == 0 {
			ret = -1 // decisionlog: negative keeps forever
		}
		dlog = decisionlog.New(store, decisionlog.Options{BufferSize: cfg.DecisionLogBuffer, Retention: ret, Logger: log})
		deps.DecisionLog = dlog
		obs.SetDecisionLogStats(func() (uint64, uint64) { st := dlog.Stats(); return st.Written, st.Dropped })
	}
	obs.HTTPDeps(&deps)
	obs.Watch(eng, store)
	if r, ok := limiter.(*ratelimit.Redis); ok {
		obs.SetRedisFallbacks(func() uint64 { return r.Stats().Fallbacks })
	}
	handler := httpserver.New(deps)

	var (
		tlsCfg    *tls.Config
		certs     *tlsconf.Reloader
		challenge http.Handler
	)
	switch {
	case cfg.TLSCertFile != "":
		tlsCfg, certs, err = tlsconf.ServerConfig(cfg.TLSCertFile, cfg.TLSKeyFile,
			tlsconf.Options{Logger: log, CheckInterval: cfg.TLSCheckInterval})
	case len(cfg.ACMEDomains) > 0:
		tlsCfg, challenge, err = tlsconf.ACMEConfig(cfg.ACMEDomains, cfg.ACMECache(), cfg.ACMEEmail, cfg.ACMEDirectory)
	}
	if err != nil {
		return nil, fmt.Errorf("configuring TLS: %w", err)
	}
	if tlsCfg != nil {
		handler = tlsconf.HSTS(handler)
	}

	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", cfg.Addr)
	if err != nil {
		return nil, fmt.Errorf("listening on %s: %w", cfg.Addr, err)
	}
	var redirectLn net.Listener
	if cfg.HTTPRedirectAddr != "" {
		redirectLn, err = lc.Listen(ctx, "tcp", cfg.HTTPRedirectAddr)
		if err != nil {
			ln.Close()
			return nil, fmt.Errorf("listening on %s (--http-redirect-addr): %w", cfg.HTTPRedirectAddr, err)
		}
	}
	s := &Server{
		cfg:     cfg,
		log:     log,
		store:   store,
		pg:      pg,
		engine:  eng,
		manage:  mgr,
		ln:      ln,
		tls:     tlsCfg != nil,
		certs:   certs,
		sealer:  sealer,
		limiter: limiter,
		obs:     obs,
		dlog:    dlog,
		served:  make(chan error, 1),
		http: &http.Server{
			Handler:           handler,
			TLSConfig:         tlsCfg,
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
	if worker != nil {
		s.bg.Add(1)
		go func() { defer s.bg.Done(); worker.Run(bgCtx) }()
		whw := webhook.NewWorker(webhook.WorkerOptions{Store: NewWebhookStore(store, sealer), Sender: sender, Logger: log})
		s.bg.Add(1)
		go func() { defer s.bg.Done(); _ = whw.Run(bgCtx) }()
	}
	s.bg.Add(1)
	go func() { defer s.bg.Done(); ConsumeAbuseEvents(bgCtx, detector, mgr, log) }()
	if dlog != nil {
		s.bg.Add(1)
		go func() { defer s.bg.Done(); _ = dlog.Run(bgCtx) }()
	}
	if cfg.AuditRetention > 0 {
		s.bg.Add(1)
		go func() { defer s.bg.Done(); s.pruneAuditLoop(bgCtx, cfg.AuditRetention) }()
	}
	s.bg.Add(2)
	go func() { defer s.bg.Done(); eng.FollowWith(bgCtx, cfg.SyncInterval, wake) }()
	go func() { defer s.bg.Done(); s.flushLoop(bgCtx) }()
	if tlsCfg != nil {
		go func() { s.served <- s.http.ServeTLS(ln, "", "") }()
	} else {
		go func() { s.served <- s.http.Serve(ln) }()
	}
	if redirectLn != nil {
		s.startRedirect(redirectLn, challenge)
	}

	s.warnIfExposed()
	scheme := "http"
	if s.tls {
		scheme = "https"
	}
	if pg != nil {
		log.Info("listening", "addr", s.Addr(), "scheme", scheme, "store", "postgresql")
	} else {
		log.Info("listening", "addr", s.Addr(), "scheme", scheme, "store", "sqlite", "data_dir", cfg.DataDir)
	}
	if certs != nil {
		leaf := certs.Leaf()
		log.Info("serving TLS certificate", "cert_file", cfg.TLSCertFile, "subject", leaf.Subject.String(),
			"dns_names", leaf.DNSNames, "not_after", leaf.NotAfter)
	}
	if len(cfg.ACMEDomains) > 0 {
		log.Info("serving ACME certificates", "domains", cfg.ACMEDomains, "cache_dir", cfg.ACMECache())
	}
	return s, nil
}

// startRedirect serves the plain-HTTP listener: ACME http-01 challenges (when challenge is
// not nil) and a redirect to HTTPS on the main listener's port for everything else. It has
// the same timeouts and header limit as the main server.
func (s *Server) startRedirect(ln net.Listener, challenge http.Handler) {
	_, port, _ := net.SplitHostPort(s.Addr())
	mux := http.NewServeMux()
	if challenge != nil {
		mux.Handle("/.well-known/acme-challenge/", challenge)
	}
	mux.Handle("/", tlsconf.RedirectHandler(port))
	s.redirectLn = ln
	s.redirect = &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: s.cfg.ReadHeaderTimeout,
		ReadTimeout:       s.cfg.ReadTimeout,
		WriteTimeout:      s.cfg.WriteTimeout,
		IdleTimeout:       s.cfg.IdleTimeout,
		MaxHeaderBytes:    s.cfg.MaxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
	}
	go func() {
		if err := s.redirect.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.log.Error("the HTTP redirect listener stopped", "addr", ln.Addr().String(), "err", err)
		}
	}()
	s.log.Info("redirecting plain HTTP to HTTPS", "addr", ln.Addr().String())
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

// warnIfExposed warns when the node serves plain HTTP on a non-loopback address: API keys
// would cross the network in clear text.
func (s *Server) warnIfExposed() {
	if s.tls || !exposed(s.ln.Addr()) {
		return
	}
	s.log.Warn("listening on a non-loopback address without TLS: API keys and decisions travel in clear text; "+
		"serve HTTPS (--tls-cert/--tls-key or --acme-domain), put a TLS-terminating proxy in front, or listen on 127.0.0.1",
		"addr", s.Addr())
}

// loopbackAddr reports whether the listen address addr (host:port) is on loopback only:
// "localhost" or a loopback IP; an empty host (every interface) is not.
func loopbackAddr(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.IsLoopback()
}

// exposed reports whether a listener address is reachable from other machines.
func exposed(a net.Addr) bool {
	ta, ok := a.(*net.TCPAddr)
	return !ok || !ta.IP.IsLoopback()
}

// Addr returns the address the node listens on, with the real port when cfg.Addr had port 0.
func (s *Server) Addr() string { return s.ln.Addr().String() }

// URL returns the base URL of the node: "https://" + Addr when it serves TLS, else
// "http://" + Addr.
func (s *Server) URL() string {
	if s.tls {
		return "https://" + s.Addr()
	}
	return "http://" + s.Addr()
}

// RedirectAddr returns the address of the plain-HTTP redirect listener, or "" without one.
func (s *Server) RedirectAddr() string {
	if s.redirectLn == nil {
		return ""
	}
	return s.redirectLn.Addr().String()
}

// ReloadTLS re-reads the certificate files now (what SIGHUP does), so that a renewed
// certificate is served to new connections; open connections keep theirs. If the new files
// are invalid the current certificate stays and the error (an EInvalid *thauth.Error) is
// returned and logged. Without certificate files (plain HTTP or ACME, which renews by
// itself) it does nothing and returns nil.
func (s *Server) ReloadTLS() error {
	if s.certs == nil {
		return nil
	}
	if err := s.certs.Reload(); err != nil {
		return err
	}
	leaf := s.certs.Leaf()
	s.log.Info("reloaded the TLS certificate", "cert_file", s.cfg.TLSCertFile, "subject", leaf.Subject.String(),
		"serial", leaf.SerialNumber.String(), "not_after", leaf.NotAfter)
	return nil
}

// Sealer returns the node's sealer for secrets, or nil when no master key is configured.
func (s *Server) Sealer() *seal.Sealer { return s.sealer }

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
		if s.redirect != nil {
			if err := s.redirect.Shutdown(ctx); err != nil {
				s.redirect.Close()
			}
		}
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
		if s.dlog != nil {
			// The API server has stopped: record what is still buffered.
			dctx, cancelD := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			if err := s.dlog.Close(dctx); err != nil {
				s.log.Warn("decision log: records still buffered at shutdown were not all written", "err", err)
			}
			cancelD()
		}
		if c, ok := s.limiter.(interface{ Close() error }); ok {
			_ = c.Close()
		}
		if err := s.store.Close(); err != nil {
			errs = append(errs, fmt.Errorf("closing the store: %w", err))
		}
		obsCtx, cancelObs := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		if err := s.obs.Shutdown(obsCtx); err != nil {
			errs = append(errs, err)
		}
		cancelObs()
		s.shutdownErr = errors.Join(errs...)
		s.log.Info("stopped")
	})
	return s.shutdownErr
}

// Run starts a node, calls onListen (if not nil) with its address, serves until ctx is done
// or serving fails, then shuts down gracefully within cfg.ShutdownTimeout.
func Run(ctx context.Context, cfg Config, log *slog.Logger, onListen func(addr string)) error {
	return RunWith(ctx, cfg, log, RunOptions{OnListen: onListen})
}

// RunOptions are the hooks of RunWith.
type RunOptions struct {
	// OnListen, if not nil, is called with the node's address once it listens.
	OnListen func(addr string)
	// OnStart, if not nil, is called with the running node (after OnListen).
	OnStart func(*Server)
	// Reload, if not nil, makes the node reload its TLS certificate (Server.ReloadTLS) on
	// every value received: `thauth serve` passes SIGHUP here.
	Reload <-chan os.Signal
}

// RunWith is Run with hooks.
func RunWith(ctx context.Context, cfg Config, log *slog.Logger, o RunOptions) error {
	s, err := Start(ctx, cfg, log)
	if err != nil {
		return err
	}
	if o.OnListen != nil {
		o.OnListen(s.Addr())
	}
	if o.OnStart != nil {
		o.OnStart(s)
	}
	var serveErr error
wait:
	for {
		select {
		case <-ctx.Done():
			s.log.Info("shutting down", "cause", context.Cause(ctx))
			break wait
		case serveErr = <-s.served:
			s.log.Error("server stopped", "err", serveErr)
			break wait
		case sig := <-o.Reload:
			if s.certs == nil {
				s.log.Info("nothing to reload: no TLS certificate files", "signal", sig.String())
				continue
			}
			if err := s.ReloadTLS(); err != nil {
				s.log.Error("reloading the TLS certificate failed; still serving the previous one", "err", err)
			}
		}
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
