package serve

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/thauth/thauth"
	"github.com/thauth/thauth/internal/engine"
	"github.com/thauth/thauth/internal/httpserver"
	"github.com/thauth/thauth/internal/mail"
	"github.com/thauth/thauth/internal/manage"
	"github.com/thauth/thauth/internal/seal"
)

// engineDecider answers the console's authorization questions from eng's snapshots; a
// project without a snapshot (or any failure inside Check) denies with reason "error".
func engineDecider(eng *engine.Engine) manage.Decider {
	return func(projectID string, req *thauth.CheckRequest, now time.Time) thauth.Decision {
		snap := eng.Snapshot(projectID)
		if snap == nil {
			return thauth.ErrorDecision
		}
		return snap.Check(req, now)
	}
}

// devMasterKeyFile is the name of the development master key in the data directory.
const devMasterKeyFile = "dev-master-key"

// devMasterKey returns the development master key kept in dataDir, creating it (mode 0600)
// on first use. It exists so that `make run` gives a working console (TOTP seeds and mail
// are sealed) without set-up; a key stored beside the data protects nothing, which the log
// says every start, and production mode never uses it.
func devMasterKey(dataDir string, log *slog.Logger) (seal.MasterKeys, error) {
	path := filepath.Join(dataDir, devMasterKeyFile)
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		entry, gerr := seal.GenerateMasterKey("dev")
		if gerr != nil {
			return seal.MasterKeys{}, gerr
		}
		if err := os.MkdirAll(dataDir, 0o700); err != nil {
			return seal.MasterKeys{}, fmt.Errorf("creating the data directory: %w", err)
		}
		f, ferr := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if ferr != nil {
			return seal.MasterKeys{}, fmt.Errorf("creating the development master key: %w", ferr)
		}
		_, werr := f.WriteString(entry + "\n")
		if cerr := f.Close(); werr == nil {
			werr = cerr
		}
		if werr != nil {
			return seal.MasterKeys{}, fmt.Errorf("writing the development master key: %w", werr)
		}
		b, err = []byte(entry), nil
	}
	if err != nil {
		return seal.MasterKeys{}, fmt.Errorf("reading the development master key: %w", err)
	}
	keys, err := seal.ParseMasterKeys(strings.TrimSpace(string(b)))
	if err != nil {
		return seal.MasterKeys{}, fmt.Errorf("the development master key %s is damaged: %w", path, err)
	}
	log.Warn("development mode: secrets are sealed under a master key stored in the data directory, which "+
		"protects nothing; production needs --master-key-file or THAUTH_MASTER_KEY (and --production)", "file", path)
	return keys, nil
}

// devOutbox lists the outbox for the development-only endpoint GET /api/v1/dev/outbox.
func devOutbox(store thauth.Store, sealer *seal.Sealer) func(ctx context.Context, limit int) ([]httpserver.DevMessage, error) {
	return func(ctx context.Context, limit int) ([]httpserver.DevMessage, error) {
		rs, err := mail.ListRendered(ctx, store, sealer, limit)
		if err != nil {
			return nil, err
		}
		out := make([]httpserver.DevMessage, len(rs))
		for i, r := range rs {
			out[i] = httpserver.DevMessage{ID: r.ID, To: r.To, Template: r.Template, Subject: r.Subject, Text: r.Text,
				HTML: r.HTML, Status: r.Status, Attempts: r.Attempts, LastError: r.LastError, CreatedAt: r.CreatedAt, SentAt: r.SentAt}
		}
		return out, nil
	}
}

// pruneAuditLoop deletes audit entries older than retention, once at start and then every
// hour, until ctx ends. Every node runs it; deletions of the same rows are harmless.
func (s *Server) pruneAuditLoop(ctx context.Context, retention time.Duration) {
	t := time.NewTicker(time.Hour)
	defer t.Stop()
	for {
		n, err := s.manage.PruneAuditLog(ctx, time.Now().Add(-retention))
		switch {
		case err != nil && ctx.Err() == nil:
			s.log.Warn("audit retention: pruning failed; retrying in an hour", "err", err)
		case n > 0:
			s.log.Info("audit retention: deleted old entries", "entries", n, "retention", retention)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// MetricsAddr returns the address the metrics listener serves on ("" when metrics are off).
func (s *Server) MetricsAddr() string { return s.obs.MetricsAddr() }
