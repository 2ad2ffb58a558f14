package postgres_test

import (
	"bytes"
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/thauth/thauth"
	"github.com/thauth/thauth/internal/postgres"
	"github.com/thauth/thauth/internal/postgres/pgtest"
)

// The identity methods whose atomicity rests on PostgreSQL's row locks, exercised the way
// several nodes would: concurrent callers on separate Stores (pools) sharing one database,
// some inside Store.Tx. storetest's Identity suite covers their behaviour on one Store.

// nodes returns n Stores on one migrated database.
func nodes(t *testing.T, n int) []*postgres.Store {
	t.Helper()
	url := pgtest.New(t)
	ss := []*postgres.Store{pgtest.Open(t, url, postgres.Options{})}
	if err := ss[0].Migrate(context.Background()); err != nil {
		t.Fatal(err)
	}
	for len(ss) < n {
		ss = append(ss, pgtest.Open(t, url, postgres.Options{}))
	}
	return ss
}

// parallel runs fn(i) for i in [0, n) at once and fails t on the first error.
func parallel(t *testing.T, n int, fn func(i int) error) {
	t.Helper()
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Go(func() {
			if err := fn(i); err != nil {
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}

// TestAppendAuditConcurrent appends to two chains from 8 goroutines on 4 nodes, half of the
// appends inside Store.Tx, and checks that each chain is gap-free and hash-linked.
func TestAppendAuditConcurrent(t *testing.T) {
	ctx := context.Background()
	ss := nodes(t, 4)
	const workers, each = 8, 50
	chains := []string{"", newID()}
	parallel(t, workers, func(w int) error {
		s := ss[w%len(ss)]
		for i := range each {
			e := &thauth.AuditEntry{ID: newID(), Chain: chains[i%2], At: time.Now(), ActorType: thauth.ActorSystem,
				Action: "test.append", Target: fmt.Sprintf("%d/%d", w, i)}
			var err error
			if i%4 < 2 {
				err = s.AppendAudit(ctx, e)
			} else {
				err = s.Tx(ctx, func(ctx context.Context, tx thauth.Data) error { return tx.AppendAudit(ctx, e) })
			}
			if err != nil {
				return err
			}
			if e.Seq < 1 || !bytes.Equal(e.Hash, thauth.AuditHash(e)) {
				return fmt.Errorf("append set Seq %d, Hash %x", e.Seq, e.Hash)
			}
		}
		return nil
	})
	for _, chain := range chains {
		prev := make([]byte, 32)
		var n int64
		err := ss[0].ScanAudit(ctx, chain, func(e *thauth.AuditEntry) error {
			n++
			if e.Seq != n {
				return fmt.Errorf("chain %q: entry %d has seq %d", chain, n, e.Seq)
			}
			if !bytes.Equal(e.PrevHash, prev) || !bytes.Equal(e.Hash, thauth.AuditHash(e)) {
				return fmt.Errorf("chain %q: entry %d is not linked", chain, n)
			}
			prev = e.Hash
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if want := int64(workers * each / 2); n != want {
			t.Errorf("chain %q has %d entries, want %d", chain, n, want)
		}
	}
	got, err := ss[1].AuditChains(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(chains, got); diff != "" {
		t.Errorf("AuditChains (-want +got):\n%s", diff)
	}
}

// TestClaimMailConcurrent claims a queue from 8 goroutines on 4 nodes: every message is
// claimed exactly once, and each claim comes back in due order.
func TestClaimMailConcurrent(t *testing.T) {
	ctx := context.Background()
	ss := nodes(t, 4)
	const total = 300
	now := time.Now().UTC().Truncate(time.Microsecond)
	for i := range total {
		due := now.Add(-time.Duration(total-i) * time.Second)
		m := &thauth.OutboxMail{ID: newID(), To: "a@example.com", Template: "t", Status: thauth.MailPending,
			NextAttemptAt: due, CreatedAt: due}
		if err := ss[0].EnqueueMail(ctx, m); err != nil {
			t.Fatal(err)
		}
	}
	var mu sync.Mutex
	claims := map[string]int{}
	parallel(t, 8, func(w int) error {
		s := ss[w%len(ss)]
		for {
			ms, err := s.ClaimMail(ctx, now, time.Minute, 7)
			if err != nil {
				return err
			}
			if len(ms) == 0 {
				return nil
			}
			for i, m := range ms {
				if !m.NextAttemptAt.Equal(now.Add(time.Minute)) {
					return fmt.Errorf("claimed message has NextAttemptAt %v, want now+lease", m.NextAttemptAt)
				}
				if i > 0 && !ms[i-1].CreatedAt.Before(m.CreatedAt) {
					return fmt.Errorf("claim not in due order")
				}
			}
			mu.Lock()
			for _, m := range ms {
				claims[m.ID]++
			}
			mu.Unlock()
		}
	})
	if len(claims) != total {
		t.Errorf("%d messages claimed, want %d", len(claims), total)
	}
	for id, n := range claims {
		if n != 1 {
			t.Errorf("message %s claimed %d times", id, n)
		}
	}
	// Leased: nothing is due again until the lease ends.
	if ms, err := ss[0].ClaimMail(ctx, now.Add(time.Minute-time.Microsecond), time.Minute, 10); err != nil || len(ms) != 0 {
		t.Errorf("ClaimMail during the lease = %d messages, %v; want none", len(ms), err)
	}
	if ms, err := ss[0].ClaimMail(ctx, now.Add(time.Minute), time.Minute, 10); err != nil || len(ms) != 10 {
		t.Errorf("ClaimMail after the lease = %d messages, %v; want 10", len(ms), err)
	}
}
