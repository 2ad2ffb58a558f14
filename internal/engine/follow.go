package engine

import (
	"context"
	"time"

	"github.com/thauth/thauth"
)

// syncLogEvery is how often Follow repeats its warning while the store keeps failing.
const syncLogEvery = 10 * time.Second

// followSyncTimeout bounds one SyncAll of the follow loop, so that a database that stops
// answering without closing its connections (a frozen host) cannot stall the loop, and the
// project locks it holds, forever. It is generous: a full load of a large project runs
// under it.
const followSyncTimeout = 2 * time.Minute

// Follow calls SyncAll every interval until ctx is done, so that writes made by other
// processes or nodes reach this engine. It is FollowWith without wake-ups.
func (e *Engine) Follow(ctx context.Context, interval time.Duration) {
	e.FollowWith(ctx, interval, nil)
}

// FollowWith calls SyncAll every interval, and at once whenever wake receives a value,
// until ctx is done; it returns when ctx is done. wake carries change notifications (on
// PostgreSQL, LISTEN/NOTIFY): a sender should send without blocking into a channel with a
// buffer of one, so that a burst of notifications costs one SyncAll, and polling at interval
// remains the fallback for notifications that were missed. wake may be nil.
//
// While SyncAll fails (typically: the store is unreachable), checks keep being answered from
// the last snapshots; FollowWith logs a warning with the staleness of the snapshots (see
// LastSynced) when the failures begin and every 10 seconds after, and one line when it
// recovers.
func (e *Engine) FollowWith(ctx context.Context, interval time.Duration, wake <-chan struct{}) {
	t := time.NewTicker(interval)
	defer t.Stop()
	var failingSince, lastLog time.Time
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-wake:
		}
		sctx, cancel := context.WithTimeout(ctx, followSyncTimeout)
		err := e.SyncAll(sctx)
		cancel()
		now := e.now()
		switch {
		case ctx.Err() != nil:
			return
		case err != nil:
			if failingSince.IsZero() {
				failingSince = now
			}
			if lastLog.IsZero() || now.Sub(lastLog) >= syncLogEvery {
				e.log.Warn("engine: sync with the store failed; decisions use the last loaded snapshots",
					"err", err, "failing_for", now.Sub(failingSince).Round(time.Millisecond),
					"snapshot_staleness", e.Staleness().Round(time.Millisecond))
				lastLog = now
			}
		case !failingSince.IsZero():
			e.log.Info("engine: sync with the store recovered; snapshots are current",
				"failed_for", now.Sub(failingSince).Round(time.Millisecond))
			failingSince, lastLog = time.Time{}, time.Time{}
		}
	}
}

// markSynced records that a SyncAll that began at t succeeded.
func (e *Engine) markSynced(t time.Time) {
	n := t.UnixNano()
	for {
		old := e.lastSync.Load()
		if old >= n || e.lastSync.CompareAndSwap(old, n) {
			return
		}
	}
}

// LastSynced returns when the last successful SyncAll (or LoadAll) began, by the engine's
// clock: every write committed to the store before that moment is reflected in the
// snapshots. It is the zero time before the first success.
func (e *Engine) LastSynced() time.Time {
	n := e.lastSync.Load()
	if n == 0 {
		return time.Time{}
	}
	return time.Unix(0, n)
}

// Staleness returns how long ago the last successful SyncAll began (by the engine's clock):
// an upper bound on how old the snapshots may be. While the follow loop runs and the store
// answers, it stays below the follow interval; while the store is unreachable it grows.
// It is 0 before the first success.
func (e *Engine) Staleness() time.Duration {
	last := e.LastSynced()
	if last.IsZero() {
		return 0
	}
	return max(e.now().Sub(last), 0)
}

// ErrNotCaughtUp is the error of SnapshotAtLeast when the engine could not reach the wanted
// revision in time.
var ErrNotCaughtUp = thauth.Errorf(thauth.EUnavailable, "this node has not caught up to the requested revision yet")

// Back-off of SnapshotAtLeast between attempts to catch up.
const (
	catchUpMinWait = 10 * time.Millisecond
	catchUpMaxWait = 200 * time.Millisecond
)

// SnapshotAtLeast returns the project's snapshot once its revision is at least rev. When the
// current snapshot is that new it returns it at once, without I/O. Otherwise it catches the
// project up from the store (Sync; concurrent callers share one catch-up) and tries again
// with a growing pause (10ms doubling up to 200ms) until ctx is done, then returns
// ErrNotCaughtUp (EUnavailable). The caller bounds the wait with ctx's deadline. The
// store's errors while catching up are not returned — the store may come back within the
// wait — except ENotFound (the project does not exist).
//
// A revision the store has committed is reached on the first attempt unless the store is
// unreachable; a revision the store has not reached (a token from the future, or from
// another installation) waits until ctx is done.
func (e *Engine) SnapshotAtLeast(ctx context.Context, projectID string, rev int64) (*Snapshot, error) {
	if s := e.Snapshot(projectID); s != nil && s.revision >= rev {
		return s, nil
	}
	pause := catchUpMinWait
	for {
		_, err := e.sync(ctx, projectID, -1, rev)
		if thauth.IsNotFound(err) {
			return nil, err
		}
		if s := e.Snapshot(projectID); s != nil && s.revision >= rev {
			return s, nil
		}
		if err != nil && ctx.Err() == nil {
			e.log.Debug("engine: catching up for a freshness token failed; retrying",
				"project", projectID, "revision", rev, "err", err)
		}
		t := time.NewTimer(pause)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, ErrNotCaughtUp
		case <-t.C:
		}
		pause = min(2*pause, catchUpMaxWait)
	}
}
