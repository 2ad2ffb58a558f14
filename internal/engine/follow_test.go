package engine

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/thauth/thauth"
)

// flakyLoader is a Loader that fails every call while down is set, as a store does while
// its database is unreachable, and counts the calls.
type flakyLoader struct {
	Loader
	down  atomic.Bool
	calls atomic.Int64
}

var errDown = thauth.Errorf(thauth.EUnavailable, "database unavailable")

func (l *flakyLoader) fail() error {
	l.calls.Add(1)
	if l.down.Load() {
		return errDown
	}
	return nil
}

func (l *flakyLoader) ProjectRevisions(ctx context.Context) ([]thauth.Project, error) {
	if err := l.fail(); err != nil {
		return nil, err
	}
	return l.Loader.ProjectRevisions(ctx)
}

func (l *flakyLoader) GetProject(ctx context.Context, id string) (*thauth.Project, error) {
	if err := l.fail(); err != nil {
		return nil, err
	}
	return l.Loader.GetProject(ctx, id)
}

func (l *flakyLoader) ChangesSince(ctx context.Context, id string, after int64, limit int) ([]thauth.Change, error) {
	if err := l.fail(); err != nil {
		return nil, err
	}
	return l.Loader.ChangesSince(ctx, id, after, limit)
}

func (l *flakyLoader) LoadSubjectGrants(ctx context.Context, id, subject string) (*thauth.SubjectGrants, error) {
	if err := l.fail(); err != nil {
		return nil, err
	}
	return l.Loader.LoadSubjectGrants(ctx, id, subject)
}

// fakeClock is a settable clock, safe for concurrent use.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// syncBuffer is a bytes.Buffer safe for concurrent writers.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// eventually polls cond every few milliseconds for up to 10 seconds.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for: %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// TestFollowWithWake: a wake-up syncs at once, long before the polling interval.
func TestFollowWithWake(t *testing.T) {
	f := newStoreFixture(t)
	m := newTestModel()
	p := f.createProject("one")
	f.applyConfig(p.ID, m.config(true))
	e := New(f.st, Options{})
	if err := e.LoadAll(f.ctx); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(f.ctx)
	defer cancel()
	wake := make(chan struct{}, 1)
	done := make(chan struct{})
	go func() { e.FollowWith(ctx, time.Hour, wake); close(done) }()

	f.setSubject(p.ID, "y", []thauth.Assignment{{RoleID: m.editor}}, nil)
	wake <- struct{}{}
	eventually(t, "the woken follow loop to catch up", func() bool { return e.Snapshot(p.ID).Revision() == 3 })
	check(t, e, p.ID, f.now, docsWrite("y"), true, "role:editor")

	// A project created elsewhere is discovered on the next wake-up too.
	p2 := f.createProject("two")
	wake <- struct{}{}
	eventually(t, "the new project to be loaded", func() bool { return e.Snapshot(p2.ID) != nil })
	cancel()
	<-done
}

// TestStaleness: LastSynced and Staleness follow successful SyncAlls by the engine's clock;
// while the store fails, the follow loop keeps the old snapshots, warns with the staleness
// (rate-limited) and says when it recovers.
func TestStaleness(t *testing.T) {
	f := newStoreFixture(t)
	m := newTestModel()
	p := f.createProject("one")
	f.applyConfig(p.ID, m.config(true))
	clk := &fakeClock{t: time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)}
	logs := &syncBuffer{}
	l := &flakyLoader{Loader: f.st}
	e := New(l, Options{Now: clk.Now, Logger: slog.New(slog.NewTextHandler(logs, nil))})
	if !e.LastSynced().IsZero() || e.Staleness() != 0 {
		t.Errorf("before any sync: LastSynced %v, Staleness %v", e.LastSynced(), e.Staleness())
	}
	if err := e.LoadAll(f.ctx); err != nil {
		t.Fatal(err)
	}
	if !e.LastSynced().Equal(clk.Now()) || e.Staleness() != 0 {
		t.Errorf("after LoadAll: LastSynced %v, Staleness %v", e.LastSynced(), e.Staleness())
	}
	clk.Advance(3 * time.Second)
	if e.Staleness() != 3*time.Second {
		t.Errorf("Staleness %v, want 3s", e.Staleness())
	}

	l.down.Store(true)
	if err := e.SyncAll(f.ctx); !errors.Is(err, errDown) {
		t.Fatalf("SyncAll with the store down: %v", err)
	}
	if e.Staleness() != 3*time.Second {
		t.Errorf("a failed SyncAll moved LastSynced: staleness %v", e.Staleness())
	}

	ctx, cancel := context.WithCancel(f.ctx)
	defer cancel()
	done := make(chan struct{})
	go func() { e.FollowWith(ctx, time.Millisecond, nil); close(done) }()
	const warn = "sync with the store failed"
	eventually(t, "a warning", func() bool { return strings.Contains(logs.String(), warn) })
	if !strings.Contains(logs.String(), "snapshot_staleness=3s") {
		t.Errorf("warning without the staleness:\n%s", logs)
	}
	// Decisions go on from the last snapshot.
	check(t, e, p.ID, f.now, docsRead("alice"), false, "default:deny")
	calls := l.calls.Load()
	eventually(t, "more failing ticks", func() bool { return l.calls.Load() > calls+20 })
	if n := strings.Count(logs.String(), warn); n != 1 {
		t.Errorf("%d warnings within 10s of engine time, want 1:\n%s", n, logs)
	}
	clk.Advance(11 * time.Second)
	eventually(t, "the second warning", func() bool { return strings.Count(logs.String(), warn) == 2 })

	l.down.Store(false)
	eventually(t, "the recovery line", func() bool { return strings.Contains(logs.String(), "sync with the store recovered") })
	if e.Staleness() > time.Second {
		t.Errorf("staleness after recovery: %v", e.Staleness())
	}
	cancel()
	<-done
}

func TestSnapshotAtLeast(t *testing.T) {
	f := newStoreFixture(t)
	m := newTestModel()
	p := f.createProject("one")
	f.applyConfig(p.ID, m.config(true))
	l := &flakyLoader{Loader: f.st}
	e := New(l, Options{})
	if err := e.LoadAll(f.ctx); err != nil {
		t.Fatal(err)
	}
	ctx := f.ctx

	t.Run("fresh enough: no I/O", func(t *testing.T) {
		calls := l.calls.Load()
		s, err := e.SnapshotAtLeast(ctx, p.ID, 2)
		if err != nil || s.Revision() != 2 {
			t.Fatalf("SnapshotAtLeast(2) = %v, %v", s, err)
		}
		if l.calls.Load() != calls {
			t.Error("the store was read for a revision already reached")
		}
	})

	t.Run("behind: catches up from the store", func(t *testing.T) {
		f.setSubject(p.ID, "y", []thauth.Assignment{{RoleID: m.editor}}, nil)
		s, err := e.SnapshotAtLeast(ctx, p.ID, 3)
		if err != nil || s.Revision() != 3 {
			t.Fatalf("SnapshotAtLeast(3) = %v, %v", s, err)
		}
		check(t, e, p.ID, f.now, docsWrite("y"), true, "role:editor")
	})

	t.Run("a revision the store has not reached: ErrNotCaughtUp when ctx ends", func(t *testing.T) {
		wctx, cancel := context.WithTimeout(ctx, 60*time.Millisecond)
		defer cancel()
		s, err := e.SnapshotAtLeast(wctx, p.ID, 1000)
		if s != nil || !errors.Is(err, ErrNotCaughtUp) || thauth.ErrorCodeOf(err) != thauth.EUnavailable {
			t.Fatalf("SnapshotAtLeast(1000) = %v, %v", s, err)
		}
	})

	t.Run("the store comes back within the wait", func(t *testing.T) {
		f.setSubject(p.ID, "z", []thauth.Assignment{{RoleID: m.viewer}}, nil)
		l.down.Store(true)
		go func() { time.Sleep(50 * time.Millisecond); l.down.Store(false) }()
		wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		s, err := e.SnapshotAtLeast(wctx, p.ID, 4)
		if err != nil || s.Revision() != 4 {
			t.Fatalf("SnapshotAtLeast(4) = %v, %v", s, err)
		}
	})

	t.Run("concurrent callers", func(t *testing.T) {
		f.setSubject(p.ID, "w", []thauth.Assignment{{RoleID: m.viewer}}, nil)
		var wg sync.WaitGroup
		for range 20 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				s, err := e.SnapshotAtLeast(ctx, p.ID, 5)
				if err != nil || s.Revision() < 5 {
					t.Errorf("SnapshotAtLeast(5) = %v, %v", s, err)
				}
			}()
		}
		wg.Wait()
	})

	t.Run("unknown project", func(t *testing.T) {
		if _, err := e.SnapshotAtLeast(ctx, newID(), 1); !thauth.IsNotFound(err) {
			t.Errorf("err = %v, want not found", err)
		}
	})
}
