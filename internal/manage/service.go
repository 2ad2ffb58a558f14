// Package manage implements Thauth's management operations: the project configuration
// document (parse, validate, export, diff and atomic apply), subject upserts, API keys and
// the initial organization/project set-up.
//
// Every operation validates its input completely before writing, writes in one store
// transaction that records exactly one change-log entry (thauth.Store.AppendChanges), and,
// after the commit, asks the Syncer (the decision engine of this process) to catch up, so
// that a check sent after a successful write sees it. Business rules live here; the store
// only keeps data consistent.
//
// Threat model: configuration documents and upsert requests come from authenticated
// management callers, but their content is untrusted. Parsing is bounded (document size,
// element count, nesting depth; YAML aliases are refused) and never panics; every rejection
// is an *thauth.Error with code EInvalid that lists what is wrong. API key tokens are
// returned once and never logged or stored (only their SHA-256 hash is).
package manage

import (
	"context"
	"log/slog"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/thauth/thauth"
)

// Syncer brings the in-memory decision state of this process up to date with the store for
// one project. *engine.Engine implements it.
type Syncer interface {
	Sync(ctx context.Context, projectID string) (int64, error)
}

// Options configures a Service. The zero value is usable for project management; the
// console (accounts, sessions, organizations) needs Sealer, TOTP and Decide.
type Options struct {
	// Now is the clock; it defaults to time.Now.
	Now func() time.Time
	// Logger receives operational messages; it defaults to discarding them. Tokens and
	// request bodies are never logged.
	Logger *slog.Logger

	// Sealer encrypts the secrets the console must read back (TOTP seeds, outbox payloads).
	// Without it, operations that store such secrets fail with EUnavailable.
	Sealer Sealer
	// TOTP generates and checks second-factor codes (internal/totp).
	TOTP TOTP
	// Decide answers the console's authorization questions from the decision engine
	// (checks against thauth.SystemProjectID). Without it every console permission is
	// denied with reason "error" (fail closed).
	Decide Decider
	// Passwords are the argon2id parameters for new hashes; the zero value means
	// DefaultPasswordParams. Stored hashes with other parameters are upgraded on sign-in.
	Passwords PasswordParams
	// SessionIdleTimeout ends a session not used for this long; 0 means
	// DefaultSessionIdleTimeout.
	SessionIdleTimeout time.Duration
	// SessionLifetime ends a session this long after sign-in, used or not; 0 means
	// DefaultSessionLifetime.
	SessionLifetime time.Duration
	// PublicURL is the base of the links sent by email (for example
	// "https://thauth.example.com"); "" means "http://127.0.0.1:8080".
	PublicURL string
	// KeepMailPayload keeps outbox payloads after sending (the development mailer shows
	// them); otherwise they are erased once sent.
	KeepMailPayload bool
	// MailQueued is called after a transaction that queued mail commits, to wake the
	// outbox worker; nil means the worker finds it on its next poll.
	MailQueued func()

	// Security events and webhooks (security.go, webhooks.go).
	//
	// AllowInsecureWebhooks accepts http:// webhook endpoint URLs (development and tests);
	// otherwise only https:// is. CheckWebhookURL, when set, is a further check of a URL
	// being registered (the node passes its webhook sender's policy, which refuses
	// non-public IP addresses); its error message is shown to the caller.
	AllowInsecureWebhooks bool
	CheckWebhookURL       func(rawURL string) error
}

// Sealer encrypts and decrypts stored secrets, bound to a purpose and a row id.
// *seal.Sealer implements it.
type Sealer interface {
	Seal(purpose, rowID string, plaintext []byte) (string, error)
	Open(ctx context.Context, purpose, rowID, sealed string) ([]byte, error)
}

// TOTP generates and checks RFC 6238 codes. internal/totp implements it.
type TOTP interface {
	// Generate returns a new secret for the account, its otpauth:// URI and a QR code of
	// the URI as PNG.
	Generate(accountEmail string) (secret, uri string, png []byte, err error)
	// Validate checks code against secret at now (allowing one step of clock skew either
	// way) and returns the time step it matched.
	Validate(secret, code string, now time.Time) (step int64, ok bool)
}

// Decider answers a check against a project's current snapshot; a missing snapshot or any
// failure must answer thauth.ErrorDecision.
type Decider func(projectID string, req *thauth.CheckRequest, now time.Time) thauth.Decision

// Service performs management operations on a store. It is safe for concurrent use; writes
// to the same project are serialized by the store's transactions.
type Service struct {
	store  thauth.Store
	syncer Syncer
	now    func() time.Time
	log    *slog.Logger
	opts   Options // the console options, defaults applied
}

// New returns a Service writing to store and notifying sync after every committed write.
// sync may be nil when no decision engine runs in this process (for example a CLI command
// run next to a server, which picks the change up from the change log).
func New(store thauth.Store, sync Syncer, o Options) *Service {
	s := &Service{store: store, syncer: sync, now: o.Now, log: o.Logger}
	if s.now == nil {
		s.now = time.Now
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if o.Passwords == (PasswordParams{}) {
		o.Passwords = DefaultPasswordParams
	}
	if o.SessionIdleTimeout <= 0 {
		o.SessionIdleTimeout = DefaultSessionIdleTimeout
	}
	if o.SessionLifetime <= 0 {
		o.SessionLifetime = DefaultSessionLifetime
	}
	if o.PublicURL == "" {
		o.PublicURL = "http://127.0.0.1:8080"
	}
	o.PublicURL = strings.TrimRight(o.PublicURL, "/")
	s.opts = o
	return s
}

// Format is the serialization of a configuration document.
type Format string

// The document formats.
const (
	FormatJSON Format = "json"
	FormatYAML Format = "yaml"
)

// clock returns the current time in the stored form: UTC, truncated to microseconds.
func (s *Service) clock() time.Time { return storedTime(s.now()) }

func storedTime(t time.Time) time.Time { return t.UTC().Truncate(time.Microsecond) }

// sync catches the engine up after a committed write. A failure is logged, not returned: the
// write is durable and reporting it as failed would be false (and would lose a key token
// shown only once); the engine's follow loop picks the change up shortly after.
func (s *Service) sync(ctx context.Context, projectID string) {
	if s.syncer == nil {
		return
	}
	if _, err := s.syncer.Sync(ctx, projectID); err != nil {
		s.log.ErrorContext(ctx, "sync after write failed; the engine will catch up on its next follow tick",
			"project_id", projectID, "error", err)
	}
}

// newID returns a fresh time-ordered UUID (version 7).
func newID() (string, error) {
	id, err := uuid.NewV7()
	if err != nil {
		return "", thauth.Internal(err, "could not generate an id")
	}
	return id.String(), nil
}
