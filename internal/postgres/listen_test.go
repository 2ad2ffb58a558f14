package postgres_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/thauth/thauth"
	"github.com/thauth/thauth/internal/postgres"
	"github.com/thauth/thauth/internal/postgres/pgtest"
)

type note struct {
	projectID string
	revision  int64
}

// listen starts s.Listen and returns its notifications; it stops when the test ends.
func listen(t *testing.T, s *postgres.Store) <-chan note {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	ch := make(chan note, 100)
	done := make(chan error, 1)
	go func() {
		done <- s.Listen(ctx, func(projectID string, revision int64) { ch <- note{projectID, revision} })
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Listen returned %v after its context ended, want nil", err)
		}
	})
	return ch
}

// next returns the next notification; it fails the test if none comes within a generous
// bound (the bound only guards against hanging, it is not a latency check).
func next(t *testing.T, ch <-chan note) note {
	t.Helper()
	select {
	case n := <-ch:
		return n
	case <-time.After(30 * time.Second):
		t.Fatal("no notification")
	}
	return note{}
}

func appendIn(t *testing.T, s thauth.Store, pid string, fail bool) {
	t.Helper()
	errFail := errors.New("roll back")
	err := s.Tx(context.Background(), func(ctx context.Context, tx thauth.Data) error {
		if _, err := tx.AppendChanges(ctx, pid, []thauth.Change{{Kind: thauth.ChangeConfig}}, time.Now()); err != nil {
			return err
		}
		if fail {
			return errFail
		}
		return nil
	})
	if fail && !errors.Is(err, errFail) || !fail && err != nil {
		t.Fatalf("Tx: %v", err)
	}
}

func TestListenCommittedOnly(t *testing.T) {
	a, url := migrated(t)
	b := pgtest.Open(t, url, postgres.Options{}) // another node writes
	p, q := project(t, a), project(t, a)
	ch := listen(t, a)
	if n := next(t, ch); n != (note{}) {
		t.Fatalf("first call = %+v, want the catch-up signal (\"\", 0)", n)
	}

	appendIn(t, b, p, false)
	if n := next(t, ch); n != (note{p, 1}) {
		t.Fatalf("after a committed write: %+v, want {%s 1}", n, p)
	}
	// A rolled-back write announces nothing: the next notification is the write after it
	// (notifications arrive in commit order).
	appendIn(t, b, p, true)
	appendIn(t, b, q, false)
	if n := next(t, ch); n != (note{q, 1}) {
		t.Fatalf("after a rolled-back write and a committed one: %+v, want {%s 1}", n, q)
	}
	// Outside Tx, AppendChanges is its own transaction.
	if _, err := b.AppendChanges(context.Background(), p, nil, time.Now()); err != nil {
		t.Fatal(err)
	}
	if n := next(t, ch); n != (note{p, 2}) {
		t.Fatalf("after AppendChanges outside Tx: %+v, want {%s 2}", n, p)
	}
}

// TestListenReconnects kills the listening connection's backend: Listen reconnects, says
// so with ("", 0), and later notifications still arrive.
func TestListenReconnects(t *testing.T) {
	ctx := context.Background()
	s, _ := migrated(t)
	p := project(t, s)
	ch := listen(t, s)
	if n := next(t, ch); n != (note{}) {
		t.Fatalf("first call = %+v, want (\"\", 0)", n)
	}
	for round := 1; round <= 2; round++ {
		n, err := postgres.QueryString(ctx, s, `SELECT count(pg_terminate_backend(pid))::text FROM pg_stat_activity
			WHERE datname = current_database() AND query = 'LISTEN `+postgres.NotifyChannel+`'`)
		if err != nil || n != "1" {
			t.Fatalf("terminated %s listening backends (%v), want 1", n, err)
		}
		if n := next(t, ch); n != (note{}) {
			t.Fatalf("after the connection was killed: %+v, want (\"\", 0)", n)
		}
		appendIn(t, s, p, false)
		if n := next(t, ch); n != (note{p, int64(round)}) {
			t.Fatalf("after reconnecting: %+v, want {%s %d}", n, p, round)
		}
	}
}

func TestParseNotification(t *testing.T) {
	for _, c := range []struct {
		in   string
		pid  string
		rev  int64
		okay bool
	}{
		{"0198c000-0000-7000-8000-000000000001:42", "0198c000-0000-7000-8000-000000000001", 42, true},
		{"a:b:7", "a:b", 7, true},
		{":7", "", 0, false},
		{"p:", "", 0, false},
		{"p:x", "", 0, false},
		{"p:0", "", 0, false},
		{"", "", 0, false},
	} {
		pid, rev, ok := postgres.ParseNotification(c.in)
		if pid != c.pid || rev != c.rev || ok != c.okay {
			t.Errorf("parse %q = (%q, %d, %v), want (%q, %d, %v)", c.in, pid, rev, ok, c.pid, c.rev, c.okay)
		}
	}
}

// TestListenIdleChecks lets the listening connection sit idle through several liveness
// checks: they must not disturb it (no reconnect, notifications still arrive).
func TestListenIdleChecks(t *testing.T) {
	s, _ := migrated(t)
	postgres.SetListenIdleCheck(s, 20*time.Millisecond)
	p := project(t, s)
	ch := listen(t, s)
	if n := next(t, ch); n != (note{}) {
		t.Fatalf("first call = %+v, want (\"\", 0)", n)
	}
	time.Sleep(200 * time.Millisecond) // idle: about ten checks
	for i := 1; i <= 3; i++ {
		appendIn(t, s, p, false)
		if n := next(t, ch); n != (note{p, int64(i)}) {
			t.Fatalf("notification %d: %+v, want {%s %d} (no reconnect in between)", i, n, p, i)
		}
		time.Sleep(50 * time.Millisecond) // idle checks in between
	}
}
