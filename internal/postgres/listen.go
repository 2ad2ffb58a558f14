package postgres

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// Listen's timing.
const (
	listenMinBackoff = 100 * time.Millisecond
	listenMaxBackoff = 2 * time.Second
)

// listenIdleCheck is how long the listening connection may stay silent before Listen
// checks that it is still alive (a dead peer sends nothing, not even an error).
const listenIdleCheck = 15 * time.Second

// Listen calls fn for every committed AppendChanges of any project, with the project id and
// the new revision, as PostgreSQL announces them on NotifyChannel. It blocks until ctx is
// done and then returns nil; it never gives up before.
//
// It listens on a connection of its own (not one of the pool's), opened with the Store's
// settings. When that connection fails or cannot be opened, Listen logs it and tries again
// with a growing delay (100ms doubling up to 2s). After every successful (re)connection it
// calls fn("", 0) once, once LISTEN is in effect: notifications sent while it was not
// listening are lost, so the caller should then catch every project up from the change log
// (ProjectRevisions, ChangesSince). A notification is a wake-up, not the data: the change
// log stays the truth, and notifications of one transaction may be coalesced by the server.
//
// fn runs on Listen's goroutine, one call at a time; it should return quickly (say, signal
// a channel), since notifications wait while it runs. Listen may be called more than once
// (each call holds its own connection). Close does not stop it: cancel ctx.
func (s *Store) Listen(ctx context.Context, fn func(projectID string, revision int64)) error {
	backoff := listenMinBackoff
	for {
		connected, err := s.listenOnce(ctx, fn)
		if ctx.Err() != nil {
			return nil
		}
		if connected {
			backoff = listenMinBackoff
		}
		msg := "database change listener cannot connect; retrying"
		if connected {
			msg = "database change listener lost its connection; reconnecting"
		}
		s.log.WarnContext(ctx, msg, "err", err, "retry_in", backoff)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, listenMaxBackoff)
	}
}

// listenOnce connects, listens and dispatches notifications until the connection fails or
// ctx is done. connected reports whether LISTEN took effect.
func (s *Store) listenOnce(ctx context.Context, fn func(string, int64)) (connected bool, err error) {
	conn, err := pgx.ConnectConfig(ctx, s.listen)
	if err != nil {
		return false, err
	}
	defer func() {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Second)
		defer cancel()
		_ = conn.Close(cctx)
	}()
	if _, err := conn.Exec(ctx, "LISTEN "+NotifyChannel); err != nil {
		return false, err
	}
	s.log.DebugContext(ctx, "listening for database changes", "channel", NotifyChannel)
	fn("", 0)
	timeout := s.listen.ConnectTimeout
	for {
		wctx, cancel := context.WithTimeout(ctx, s.listenIdle)
		n, err := conn.WaitForNotification(wctx)
		cancel()
		switch {
		case err == nil:
			projectID, rev, ok := parseNotification(n.Payload)
			if !ok {
				s.log.WarnContext(ctx, "ignoring malformed change notification", "payload", n.Payload)
				continue
			}
			fn(projectID, rev)
			continue
		case ctx.Err() != nil:
			return true, ctx.Err()
		case errors.Is(err, context.DeadlineExceeded) && !conn.IsClosed():
			// Silent for a while: make sure the server is still there.
			pctx, cancel := context.WithTimeout(ctx, timeout)
			err = conn.Ping(pctx)
			cancel()
			if err == nil {
				continue
			}
		}
		return true, err
	}
}

// parseNotification splits "<project id>:<revision>".
func parseNotification(payload string) (projectID string, revision int64, ok bool) {
	i := strings.LastIndexByte(payload, ':')
	if i <= 0 {
		return "", 0, false
	}
	rev, err := strconv.ParseInt(payload[i+1:], 10, 64)
	if err != nil || rev <= 0 {
		return "", 0, false
	}
	return payload[:i], rev, true
}
