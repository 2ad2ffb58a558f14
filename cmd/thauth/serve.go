package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/thauth/thauth/cmd/internal/serve"
	"github.com/thauth/thauth/internal/httpserver"
	"github.com/thauth/thauth/internal/ratelimit"
	"github.com/thauth/thauth/internal/seal"
)

// serveConfig is the whole configuration of `thauth serve`. Every field has a flag and a
// THAUTH_* environment variable; the defaults are those of serve.Defaults plus text logs at
// level info.
type serveConfig struct {
	serve.Config            // listen address, data directory, sync interval, timeouts, TLS, master keys
	LogFormat    string     // "text" (default) or "json"
	LogLevel     slog.Level // debug, info (default), warn or error
	// MasterKeyFile is --master-key-file (THAUTH_MASTER_KEY_FILE); the keys themselves are in
	// Config.MasterKeys, read from it or from THAUTH_MASTER_KEY.
	MasterKeyFile string
	// Warnings are found while loading (a master key file readable by others); runServe logs them.
	Warnings []string
}

// serveSetting binds one flag and its environment variable to a field of serveConfig.
type serveSetting struct {
	flag, env, usage string
	field            string // the serve.Config field it sets, to attribute Validate's problems
	boolean          bool   // a boolean flag (--name alone means true)
	list             bool   // a repeatable flag, also taking comma-separated values
	def              func(c *serveConfig) string
	set              func(c *serveConfig, v string) string // "" when v is acceptable, else why not
}

func serveSettings() []serveSetting {
	duration := func(dst func(c *serveConfig) *time.Duration) func(c *serveConfig, v string) string {
		return func(c *serveConfig, v string) string {
			d, err := time.ParseDuration(v)
			if err != nil {
				return fmt.Sprintf("%q is not a duration (for example 500ms, 2s, 1m)", v)
			}
			*dst(c) = d
			return ""
		}
	}
	return []serveSetting{
		{flag: "addr", env: "THAUTH_ADDR", field: "Addr",
			usage: "`address` to listen on, host:port (port 0: any free port)",
			def:   func(c *serveConfig) string { return c.Addr },
			set:   func(c *serveConfig, v string) string { c.Addr = v; return "" }},
		{flag: "data-dir", env: "THAUTH_DATA_DIR", field: "DataDir",
			usage: "`directory` of the SQLite database (created if missing)",
			def:   func(c *serveConfig) string { return c.DataDir },
			set:   func(c *serveConfig, v string) string { c.DataDir = v; return "" }},
		{flag: "database-url", env: "THAUTH_DATABASE_URL", field: "DatabaseURL",
			usage: "PostgreSQL `URL` (postgres://user:password@host:port/db?param=...); when set, replaces the\nSQLite database of --data-dir, and several nodes may share it. Never logged",
			def:   func(c *serveConfig) string { return c.DatabaseURL },
			set:   func(c *serveConfig, v string) string { c.DatabaseURL = v; return "" }},
		{flag: "db-max-conns", env: "THAUTH_DB_MAX_CONNS", field: "DBMaxConns",
			usage: "most PostgreSQL `connections` of this node (0: the URL's pool_max_conns, else 20)",
			def:   func(c *serveConfig) string { return strconv.Itoa(int(c.DBMaxConns)) },
			set: func(c *serveConfig, v string) string {
				n, err := strconv.ParseInt(v, 10, 32)
				if err != nil {
					return fmt.Sprintf("%q is not a whole number", v)
				}
				c.DBMaxConns = int32(n)
				return ""
			}},
		{flag: "db-statement-timeout", env: "THAUTH_DB_STATEMENT_TIMEOUT", field: "DBStatementTimeout",
			usage: "PostgreSQL statement_timeout: `duration` after which a statement is cancelled and the\nrequest fails with 503 (0: the URL's statement_timeout, else 5s; negative: none)",
			def:   func(c *serveConfig) string { return c.DBStatementTimeout.String() },
			set:   duration(func(c *serveConfig) *time.Duration { return &c.DBStatementTimeout })},
		{flag: "auto-migrate", env: "THAUTH_AUTO_MIGRATE", field: "AutoMigrate", boolean: true,
			usage: "apply pending PostgreSQL migrations at start-up instead of refusing to start\n(SQLite is always migrated)",
			def:   func(c *serveConfig) string { return strconv.FormatBool(c.AutoMigrate) },
			set: func(c *serveConfig, v string) string {
				b, err := strconv.ParseBool(v)
				if err != nil {
					return fmt.Sprintf("%q is not a boolean (true or false)", v)
				}
				c.AutoMigrate = b
				return ""
			}},
		{flag: "tls-cert", env: "THAUTH_TLS_CERT", field: "TLSCertFile",
			usage: "PEM `file` of the TLS certificate chain, leaf first: serve HTTPS only (HTTP/2, HSTS).\nA renewed certificate written over the file is picked up on SIGHUP and within 10s",
			def:   func(c *serveConfig) string { return c.TLSCertFile },
			set:   func(c *serveConfig, v string) string { c.TLSCertFile = v; return "" }},
		{flag: "tls-key", env: "THAUTH_TLS_KEY", field: "TLSKeyFile",
			usage: "PEM `file` of the TLS certificate's private key (keep it mode 0600)",
			def:   func(c *serveConfig) string { return c.TLSKeyFile },
			set:   func(c *serveConfig, v string) string { c.TLSKeyFile = v; return "" }},
		{flag: "http-redirect-addr", env: "THAUTH_HTTP_REDIRECT_ADDR", field: "HTTPRedirectAddr",
			usage: "`address` of an optional plain-HTTP listener that redirects to HTTPS (308) and answers\nACME http-01 challenges, e.g. :80 (TLS only)",
			def:   func(c *serveConfig) string { return c.HTTPRedirectAddr },
			set:   func(c *serveConfig, v string) string { c.HTTPRedirectAddr = v; return "" }},
		{flag: "acme-domain", env: "THAUTH_ACME_DOMAINS", field: "ACMEDomains", list: true,
			usage: "`domain` to obtain a certificate for automatically over ACME (repeatable or comma-separated;\nnot with --tls-cert). Port 443 (tls-alpn-01) or --http-redirect-addr on port 80 must be\nreachable from the CA",
			def:   func(c *serveConfig) string { return strings.Join(c.ACMEDomains, ",") },
			set: func(c *serveConfig, v string) string {
				var l stringList
				_ = l.Set(v)
				c.ACMEDomains = l
				return ""
			}},
		{flag: "acme-cache-dir", env: "THAUTH_ACME_CACHE_DIR", field: "ACMECacheDir",
			usage: "`directory` keeping the ACME account key and certificates; keep it across restarts\n(default <data-dir>/acme)",
			def:   func(c *serveConfig) string { return c.ACMECacheDir },
			set:   func(c *serveConfig, v string) string { c.ACMECacheDir = v; return "" }},
		{flag: "acme-email", env: "THAUTH_ACME_EMAIL", field: "ACMEEmail",
			usage: "contact `address` given to the ACME CA for expiry notices (optional)",
			def:   func(c *serveConfig) string { return c.ACMEEmail },
			set:   func(c *serveConfig, v string) string { c.ACMEEmail = v; return "" }},
		{flag: "acme-directory", env: "THAUTH_ACME_DIRECTORY", field: "ACMEDirectory",
			usage: "ACME directory `URL` (default: Let's Encrypt production; use its staging directory to try)",
			def:   func(c *serveConfig) string { return c.ACMEDirectory },
			set:   func(c *serveConfig, v string) string { c.ACMEDirectory = v; return "" }},
		{flag: "master-key-file", env: "THAUTH_MASTER_KEY_FILE",
			usage: "`file` of master keys, one '<id>:<base64>' per line, the active one first (or put them in\n$THAUTH_MASTER_KEY, comma-separated; not both). Never logged; keep the file mode 0600",
			def:   func(c *serveConfig) string { return c.MasterKeyFile },
			set:   func(c *serveConfig, v string) string { c.MasterKeyFile = v; return "" }},
		{flag: "production", env: "THAUTH_PRODUCTION", field: "Production", boolean: true,
			usage: "production mode: refuse to start without a master key",
			def:   func(c *serveConfig) string { return strconv.FormatBool(c.Production) },
			set: func(c *serveConfig, v string) string {
				b, err := strconv.ParseBool(v)
				if err != nil {
					return fmt.Sprintf("%q is not a boolean (true or false)", v)
				}
				c.Production = b
				return ""
			}},
		{flag: "log-format", env: "THAUTH_LOG_FORMAT",
			usage: "log `format`: text or json",
			def:   func(c *serveConfig) string { return c.LogFormat },
			set: func(c *serveConfig, v string) string {
				if v != "text" && v != "json" {
					return fmt.Sprintf("%q is not a log format (text or json)", v)
				}
				c.LogFormat = v
				return ""
			}},
		{flag: "log-level", env: "THAUTH_LOG_LEVEL",
			usage: "minimum log `level`: debug, info, warn or error",
			def:   func(c *serveConfig) string { return strings.ToLower(c.LogLevel.String()) },
			set: func(c *serveConfig, v string) string {
				switch strings.ToLower(v) {
				case "debug", "info", "warn", "error":
					return errString(c.LogLevel.UnmarshalText([]byte(v)))
				}
				return fmt.Sprintf("%q is not a log level (debug, info, warn or error)", v)
			}},
		{flag: "sync-interval", env: "THAUTH_SYNC_INTERVAL", field: "SyncInterval",
			usage: "`interval` at which to pick up writes made by other processes",
			def:   func(c *serveConfig) string { return c.SyncInterval.String() },
			set:   duration(func(c *serveConfig) *time.Duration { return &c.SyncInterval })},
		{flag: "freshness-wait", env: "THAUTH_FRESHNESS_WAIT", field: "FreshnessWait",
			usage: "longest `duration` a check with at_least_as_fresh waits for this node to catch up\nbefore answering 503 (0: the default)",
			def:   func(c *serveConfig) string { return c.FreshnessWait.String() },
			set:   duration(func(c *serveConfig) *time.Duration { return &c.FreshnessWait })},
		{flag: "shutdown-timeout", env: "THAUTH_SHUTDOWN_TIMEOUT", field: "ShutdownTimeout",
			usage: "longest `duration` shutdown waits for in-flight requests",
			def:   func(c *serveConfig) string { return c.ShutdownTimeout.String() },
			set:   duration(func(c *serveConfig) *time.Duration { return &c.ShutdownTimeout })},
		{flag: "public-url", env: "THAUTH_PUBLIC_URL", field: "PublicURL",
			usage: "`URL` people reach the console at; links in emails point to it (default: this node's address)",
			def:   func(c *serveConfig) string { return c.PublicURL },
			set:   func(c *serveConfig, v string) string { c.PublicURL = v; return "" }},
		{flag: "session-idle-timeout", env: "THAUTH_SESSION_IDLE_TIMEOUT", field: "SessionIdleTimeout",
			usage: "console sessions unused for this `duration` end",
			def:   func(c *serveConfig) string { return c.SessionIdleTimeout.String() },
			set:   duration(func(c *serveConfig) *time.Duration { return &c.SessionIdleTimeout })},
		{flag: "session-lifetime", env: "THAUTH_SESSION_LIFETIME", field: "SessionLifetime",
			usage: "console sessions end this `duration` after sign-in",
			def:   func(c *serveConfig) string { return c.SessionLifetime.String() },
			set:   duration(func(c *serveConfig) *time.Duration { return &c.SessionLifetime })},
		{flag: "mailer", env: "THAUTH_MAILER", field: "Mail.Mailer",
			usage: "how email is sent: dev (log it; the default), resend (THAUTH_RESEND_API_KEY) or smtp",
			def:   func(c *serveConfig) string { return c.Mail.Mailer },
			set: func(c *serveConfig, v string) string {
				if v != "dev" && v != "resend" && v != "smtp" {
					return fmt.Sprintf("%q is not a mailer (dev, resend or smtp)", v)
				}
				c.Mail.Mailer = v
				return ""
			}},
		{flag: "mail-from", env: "THAUTH_MAIL_FROM", field: "Mail.From",
			usage: "sender `address` of email, for example \"Thauth <no-reply@example.com>\"",
			def:   func(c *serveConfig) string { return c.Mail.From },
			set:   func(c *serveConfig, v string) string { c.Mail.From = v; return "" }},
		{flag: "resend-base-url", env: "THAUTH_RESEND_BASE_URL",
			usage: "base `URL` of Resend's API (default https://api.resend.com)",
			def:   func(c *serveConfig) string { return c.Mail.ResendBaseURL },
			set:   func(c *serveConfig, v string) string { c.Mail.ResendBaseURL = v; return "" }},
		{flag: "smtp-addr", env: "THAUTH_SMTP_ADDR", field: "Mail.SMTPAddr",
			usage: "SMTP server `host:port` (STARTTLS required; implicit TLS on port 465); the password comes from\nTHAUTH_SMTP_PASSWORD",
			def:   func(c *serveConfig) string { return c.Mail.SMTPAddr },
			set:   func(c *serveConfig, v string) string { c.Mail.SMTPAddr = v; return "" }},
		{flag: "metrics-addr", env: "THAUTH_METRICS_ADDR", field: "Observe.MetricsAddr",
			usage: "`address` of the Prometheus metrics listener (GET /metrics); \"\" turns metrics off",
			def:   func(c *serveConfig) string { return c.Observe.MetricsAddr },
			set:   func(c *serveConfig, v string) string { c.Observe.MetricsAddr = v; return "" }},
		{flag: "otlp-endpoint", env: "THAUTH_OTLP_ENDPOINT", field: "Observe.OTLPEndpoint",
			usage: "export traces over OTLP/HTTP to this collector `URL` (e.g. http://127.0.0.1:4318); headers from\nTHAUTH_OTLP_HEADERS (name=value,…). Default: tracing off",
			def:   func(c *serveConfig) string { return c.Observe.OTLPEndpoint },
			set:   func(c *serveConfig, v string) string { c.Observe.OTLPEndpoint = v; return "" }},
		{flag: "trace-sample-ratio", env: "THAUTH_TRACE_SAMPLE_RATIO", field: "Observe.TraceSampleRatio",
			usage: "fraction of traces recorded when tracing is on (0 to 1)",
			def:   func(c *serveConfig) string { return strconv.FormatFloat(c.Observe.TraceSampleRatio, 'g', -1, 64) },
			set: func(c *serveConfig, v string) string {
				f, err := strconv.ParseFloat(v, 64)
				if err != nil {
					return fmt.Sprintf("%q is not a number between 0 and 1", v)
				}
				c.Observe.TraceSampleRatio = f
				return ""
			}},
		{flag: "decision-log", env: "THAUTH_DECISION_LOG", field: "DecisionLog", boolean: true,
			usage: "record every decision asynchronously (queried at /api/v1/projects/{project}/decisions)",
			def:   func(c *serveConfig) string { return strconv.FormatBool(c.DecisionLog) },
			set: func(c *serveConfig, v string) string {
				b, err := strconv.ParseBool(v)
				if err != nil {
					return fmt.Sprintf("%q is not a boolean (true or false)", v)
				}
				c.DecisionLog = b
				return ""
			}},
		{flag: "decision-log-retention", env: "THAUTH_DECISION_LOG_RETENTION", field: "DecisionLogRetention",
			usage: "how long decision records are kept (`duration`; 0 keeps them forever)",
			def:   func(c *serveConfig) string { return c.DecisionLogRetention.String() },
			set:   duration(func(c *serveConfig) *time.Duration { return &c.DecisionLogRetention })},
		{flag: "decision-log-buffer", env: "THAUTH_DECISION_LOG_BUFFER", field: "DecisionLogBuffer",
			usage: "decision records waiting in memory at most (`n`); beyond, they are dropped and counted",
			def:   func(c *serveConfig) string { return strconv.Itoa(c.DecisionLogBuffer) },
			set: func(c *serveConfig, v string) string {
				n, err := strconv.Atoi(v)
				if err != nil {
					return fmt.Sprintf("%q is not an integer", v)
				}
				c.DecisionLogBuffer = n
				return ""
			}},
		{flag: "block-invalid-keys", env: "THAUTH_BLOCK_INVALID_KEYS", field: "BlockInvalidKeys",
			usage: "block a client IP for 15 minutes after this many invalid API keys in a minute (`n`; 0: the default 20,\nnegative: never block)",
			def:   func(c *serveConfig) string { return strconv.Itoa(c.BlockInvalidKeys) },
			set: func(c *serveConfig, v string) string {
				n, err := strconv.Atoi(v)
				if err != nil {
					return fmt.Sprintf("%q is not an integer", v)
				}
				c.BlockInvalidKeys = n
				return ""
			}},
		{flag: "trusted-proxies", env: "THAUTH_TRUSTED_PROXIES", field: "TrustedProxies",
			usage: "comma-separated `addresses` or CIDR prefixes of the load balancers in front of the node; from\nthem X-Forwarded-For names the client (rate limits, IP blocks, audit)",
			def: func(c *serveConfig) string {
				var out []string
				for _, p := range c.TrustedProxies {
					out = append(out, p.String())
				}
				return strings.Join(out, ",")
			},
			set: func(c *serveConfig, v string) string {
				ps, err := httpserver.ParseTrustedProxies(v)
				if err != nil {
					return fmt.Sprintf("%q is not a list of addresses and CIDR prefixes: %v", v, err)
				}
				c.TrustedProxies = ps
				return ""
			}},
		{flag: "redis-url", env: "THAUTH_REDIS_URL", field: "RedisURL",
			usage: "share rate limits among nodes through this Redis `URL` (redis://[:password@]host:port/db; prefer the variable: it holds a password)",
			def:   func(c *serveConfig) string { return c.RedisURL },
			set:   func(c *serveConfig, v string) string { c.RedisURL = v; return "" }},
		{flag: "rate-limit-key", env: "THAUTH_RATE_LIMIT_KEY", field: "Limits.PerKey",
			usage: "requests per API key, e.g. \"1000/s burst 2000\" (or \"off\") (default: see docs/rate-limits.md)",
			def:   func(c *serveConfig) string { return limitString(c.Limits.PerKey) },
			set:   limitSetter(func(c *serveConfig) *ratelimit.Limit { return &c.Limits.PerKey })},
		{flag: "rate-limit-auth-failures", env: "THAUTH_RATE_LIMIT_AUTH_FAILURES", field: "Limits.AuthFailPerIP",
			usage: "failed API authentications per client IP before 429, e.g. \"30/min\" (default: see docs/rate-limits.md)",
			def:   func(c *serveConfig) string { return limitString(c.Limits.AuthFailPerIP) },
			set:   limitSetter(func(c *serveConfig) *ratelimit.Limit { return &c.Limits.AuthFailPerIP })},
		{flag: "rate-limit-signin-ip", env: "THAUTH_RATE_LIMIT_SIGNIN_IP", field: "Limits.SignInPerIP",
			usage: "console sign-in attempts per client IP (default: see docs/rate-limits.md)",
			def:   func(c *serveConfig) string { return limitString(c.Limits.SignInPerIP) },
			set:   limitSetter(func(c *serveConfig) *ratelimit.Limit { return &c.Limits.SignInPerIP })},
		{flag: "rate-limit-signin-account", env: "THAUTH_RATE_LIMIT_SIGNIN_ACCOUNT", field: "Limits.SignInPerAccount",
			usage: "console sign-in attempts per email address and client IP (default: see docs/rate-limits.md)",
			def:   func(c *serveConfig) string { return limitString(c.Limits.SignInPerAccount) },
			set:   limitSetter(func(c *serveConfig) *ratelimit.Limit { return &c.Limits.SignInPerAccount })},
		{flag: "rate-limit-signup", env: "THAUTH_RATE_LIMIT_SIGNUP", field: "Limits.SignUpPerIP",
			usage: "console sign-ups (and verification resends) per client IP (default: see docs/rate-limits.md)",
			def:   func(c *serveConfig) string { return limitString(c.Limits.SignUpPerIP) },
			set:   limitSetter(func(c *serveConfig) *ratelimit.Limit { return &c.Limits.SignUpPerIP })},
		{flag: "rate-limit-password-reset", env: "THAUTH_RATE_LIMIT_PASSWORD_RESET", field: "Limits.ResetPerIP",
			usage: "password-reset requests per client IP (default: see docs/rate-limits.md)",
			def:   func(c *serveConfig) string { return limitString(c.Limits.ResetPerIP) },
			set:   limitSetter(func(c *serveConfig) *ratelimit.Limit { return &c.Limits.ResetPerIP })},
		{flag: "audit-retention", env: "THAUTH_AUDIT_RETENTION", field: "AuditRetention",
			usage: "how long audit entries are kept (`duration`, e.g. 8760h; 0 keeps them forever)",
			def:   func(c *serveConfig) string { return c.AuditRetention.String() },
			set:   duration(func(c *serveConfig) *time.Duration { return &c.AuditRetention })},
		{flag: "webhook-allow-insecure", env: "THAUTH_WEBHOOK_ALLOW_INSECURE", field: "WebhookAllowInsecure", boolean: true,
			usage: "development only: accept http:// webhook URLs and private or loopback addresses",
			def:   func(c *serveConfig) string { return strconv.FormatBool(c.WebhookAllowInsecure) },
			set: func(c *serveConfig, v string) string {
				b, err := strconv.ParseBool(v)
				if err != nil {
					return fmt.Sprintf("%q is not a boolean (true or false)", v)
				}
				c.WebhookAllowInsecure = b
				return ""
			}},
		{flag: "smtp-username", env: "THAUTH_SMTP_USERNAME", field: "Mail.SMTPUsername",
			usage: "SMTP user `name`",
			def:   func(c *serveConfig) string { return c.Mail.SMTPUsername },
			set:   func(c *serveConfig, v string) string { c.Mail.SMTPUsername = v; return "" }},
	}
}

// limitSetter parses a rate-limit policy ("1000/s burst 2000", "30/min", "off") into a
// Limits field; "" keeps the default.
func limitSetter(dst func(c *serveConfig) *ratelimit.Limit) func(c *serveConfig, v string) string {
	return func(c *serveConfig, v string) string {
		l, err := httpserver.ParseLimit(v)
		if err != nil {
			return err.Error()
		}
		*dst(c) = l
		return ""
	}
}

// limitString shows a Limits field in flag syntax ("" for the default).
func limitString(l ratelimit.Limit) string {
	switch {
	case l == ratelimit.Limit{}:
		return ""
	case l == httpserver.LimitOff:
		return "off"
	}
	return fmt.Sprintf("%d/%s burst %d", l.Rate, l.Period, l.Burst)
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

func defaultServeConfig() serveConfig {
	return serveConfig{Config: serve.Defaults(), LogFormat: "text", LogLevel: slog.LevelInfo}
}

// loadServeConfig fills the configuration from the parsed flags, then the environment, then
// the defaults, and validates it once. It returns every problem found, each naming the flag
// or variable it came from.
func loadServeConfig(fs *flagSet, settings []serveSetting) (serveConfig, []string) {
	cfg := defaultServeConfig()
	var problems []string
	byField := map[string]string{}
	for _, s := range settings {
		if msg := s.set(&cfg, fs.value(s.flag)); msg != "" {
			problems = append(problems, fs.source(s.flag)+": "+msg)
		}
		if s.field != "" {
			byField[s.field] = s.flag
		}
	}
	keys, warnings, problem := loadMasterKeys(fs.e, cfg.MasterKeyFile, fs.source("master-key-file"))
	if problem != "" {
		problems = append(problems, problem)
	}
	cfg.MasterKeys, cfg.Warnings = keys, warnings
	// Mail provider secrets come from the environment only: flags show in process listings.
	cfg.Mail.ResendAPIKey = fs.e.getenv("THAUTH_RESEND_API_KEY")
	cfg.Mail.SMTPPassword = fs.e.getenv("THAUTH_SMTP_PASSWORD")
	if h := fs.e.getenv("THAUTH_OTLP_HEADERS"); h != "" {
		cfg.Observe.OTLPHeaders = map[string]string{}
		for _, kv := range strings.Split(h, ",") {
			k, v, ok := strings.Cut(kv, "=")
			if !ok || strings.TrimSpace(k) == "" {
				problems = append(problems, "THAUTH_OTLP_HEADERS: each entry must be name=value")
				break
			}
			cfg.Observe.OTLPHeaders[strings.TrimSpace(k)] = strings.TrimSpace(v)
		}
	}
	// The mail settings' problems name their flag, or the variable of an environment-only
	// secret.
	byField["Mail.Mailer"], byField["Mail.From"] = "mailer", "mail-from"
	byField["Mail.SMTPAddr"], byField["Mail.SMTPUsername"] = "smtp-addr", "smtp-username"
	envOnly := map[string]string{"Mail.ResendAPIKey": "THAUTH_RESEND_API_KEY", "Mail.SMTPPassword": "THAUTH_SMTP_PASSWORD"}
	for _, p := range cfg.Validate() {
		src := p.Field
		if f, ok := byField[p.Field]; ok {
			src = fs.source(f)
		} else if v, ok := envOnly[p.Field]; ok {
			src = v
		}
		problems = append(problems, src+": "+p.Message)
	}
	return cfg, problems
}

// listenHookKey is the context key of an optional func(addr string) that runServe calls
// once the server listens (tests start it on port 0 and need the real address).
type listenHookKey struct{}

// startHookKey is the context key of an optional func(*serve.Server) that runServe calls
// once the server runs (tests reload its certificate and look at its sealer through it).
type startHookKey struct{}

func runServe(ctx context.Context, e *env, args []string) int {
	cfg, code, done := parseServeConfig(e, args)
	if done {
		return code
	}
	log := newLogger(e.stderr, cfg.LogFormat, cfg.LogLevel)

	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	onListen, _ := ctx.Value(listenHookKey{}).(func(addr string))
	onStart, _ := ctx.Value(startHookKey{}).(func(*serve.Server))
	// SIGHUP re-reads the certificate files (after a renewal); the server also looks at them
	// by itself every few seconds.
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	if cfg.DatabaseURL != "" {
		log.Info("starting thauth", "version", version, "addr", cfg.Addr, "store", "postgresql", "production", cfg.Production)
	} else {
		log.Info("starting thauth", "version", version, "addr", cfg.Addr, "store", "sqlite", "data_dir", cfg.DataDir, "production", cfg.Production)
	}
	for _, w := range cfg.Warnings {
		log.Warn(w)
	}
	err := serve.RunWith(ctx, cfg.Config, log, serve.RunOptions{OnListen: onListen, OnStart: onStart, Reload: hup})
	if err != nil {
		log.Error("thauth serve failed", "err", err)
		if errors.Is(err, seal.ErrWrongKey) {
			log.Error("the configured master keys do not unwrap the stored data keys: configure the master key they " +
				"are wrapped under (the old key stays in the list until 'thauth keys rotate' has run)")
		}
		return exitError
	}
	return exitOK
}

// parseServeConfig parses the flags of serve and builds its configuration. When done is
// true, the command must return code: help was printed, or the command line or the
// configuration was wrong (every problem printed).
func parseServeConfig(e *env, args []string) (cfg serveConfig, code int, done bool) {
	fs := newFlagSet("serve", "thauth serve [flags]",
		`Runs the Thauth server: the decision API (/v1) and the management API (/api/v1) over
HTTP or HTTPS, on an embedded SQLite database in the data directory (migrated at start-up),
or on PostgreSQL with --database-url, which several nodes may share. On PostgreSQL the
schema is not changed implicitly: run 'thauth migrate --database-url ...' first (or
pass --auto-migrate); serve refuses to start while the schema is behind.
The server stops gracefully on SIGINT or SIGTERM: it stops accepting connections,
finishes in-flight requests, saves API key last-use times and closes the database.
With --tls-cert/--tls-key (try 'thauth dev-cert') or --acme-domain it serves HTTPS only
(TLS 1.2+, HTTP/2, Strict-Transport-Security); SIGHUP re-reads the certificate files.
Without TLS it warns when listening on anything but loopback.
Secrets are sealed under the master keys of --master-key-file or THAUTH_MASTER_KEY
('thauth keys generate'); --production refuses to start without one.
See docs/security.md.`, e)
	settings := serveSettings()
	def := defaultServeConfig()
	for _, s := range settings {
		switch {
		case s.boolean:
			fs.Bool(s.flag, s.def(&def) == "true", s.usage)
		case s.list:
			fs.Var(&stringList{}, s.flag, s.usage)
		default:
			fs.String(s.flag, s.def(&def), s.usage)
		}
		fs.env(s.flag, s.env)
	}
	if _, code, done := parse(fs, args, 0, 0); done {
		return cfg, code, true
	}
	cfg, problems := loadServeConfig(fs, settings)
	if len(problems) > 0 {
		fmt.Fprintln(e.stderr, "thauth serve: invalid configuration:")
		for _, p := range problems {
			fmt.Fprintln(e.stderr, "  "+p)
		}
		return cfg, exitUsage, true
	}
	return cfg, exitOK, false
}

func newLogger(w io.Writer, format string, level slog.Level) *slog.Logger {
	opts := &slog.HandlerOptions{Level: level}
	if format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}
