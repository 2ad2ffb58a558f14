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
	"time"

	"github.com/google/uuid"

	"github.com/thauth/thauth"
)

// Syncer brings the in-memory decision state of this process up to date with the store for
// one project. *engine.Engine implements it.
type Syncer interface {
	Sync(ctx context.Context, projectID string) (int64, error)
}

// Options configures a Service. The zero value is usable.
type Options struct {
	// Now is the clock; it defaults to time.Now.
	Now func() time.Time
	// Logger receives operational messages; it defaults to discarding them. Tokens and
	// request bodies are never logged.
	Logger *slog.Logger
}

// Service performs management operations on a store. It is safe for concurrent use; writes
// to the same project are serialized by the store's transactions.
type Service struct {
	store  thauth.Store
	syncer Syncer
	now    func() time.Time
	log    *slog.Logger
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
