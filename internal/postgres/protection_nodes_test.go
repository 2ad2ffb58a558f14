package postgres_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/thauth/thauth"
	"github.com/thauth/thauth/internal/postgres"
)

// The protection methods whose atomicity rests on PostgreSQL's row locks and on COPY through
// a per-connection temporary table, exercised the way several nodes would: concurrent
// callers on separate Stores (pools) sharing one database, some inside Store.Tx.
// storetest's Protection suite covers their behaviour on one Store.

// TestClaimDeliveriesConcurrent claims a queue of webhook deliveries of two organizations
// from 8 goroutines on 4 nodes: every delivery is claimed exactly once, each claim comes back
// in due order with the lease's end, and leased deliveries are not due again until it ends.
func TestClaimDeliveriesConcurrent(t *testing.T) {
	ctx := context.Background()
	ss := nodes(t, 4)
	const total = 300
	now := time.Now().UTC().Truncate(time.Microsecond)
	lease := now.Add(time.Minute)
	var orgs, endpoints [2]string
	for i := range orgs {
		org := thauth.Organization{ID: newID(), Name: "Acme", CreatedAt: now}
		ep := thauth.WebhookEndpoint{ID: newID(), URL: "https://example.com/hook", Secret: "sealed", CreatedAt: now}
		if err := ss[0].CreateOrganization(ctx, &org); err != nil {
			t.Fatal(err)
		}
		if err := ss[0].CreateWebhookEndpoint(ctx, org.ID, &ep); err != nil {
			t.Fatal(err)
		}
		orgs[i], endpoints[i] = org.ID, ep.ID
	}
	var batch [2][]thauth.WebhookDelivery
	for i := range total {
		due := now.Add(-time.Duration(total-i) * time.Second)
		o := i % 2
		batch[o] = append(batch[o], thauth.WebhookDelivery{ID: newID(), EndpointID: endpoints[o], EventID: newID(),
			EventType: "security.test", Payload: []byte(`{}`), Status: thauth.DeliveryPending, NextAttemptAt: &due,
			CreatedAt: due})
	}
	for o := range orgs {
		if err := ss[1].EnqueueDeliveries(ctx, orgs[o], batch[o]); err != nil {
			t.Fatal(err)
		}
	}
	var mu sync.Mutex
	claims := map[string]int{}
	parallel(t, 8, func(w int) error {
		s := ss[w%len(ss)]
		for {
			ds, err := s.ClaimDeliveries(ctx, now, lease, 7)
			if err != nil {
				return err
			}
			if len(ds) == 0 {
				return nil
			}
			for i, d := range ds {
				if d.NextAttemptAt == nil || !d.NextAttemptAt.Equal(lease) {
					return fmt.Errorf("claimed delivery has NextAttemptAt %v, want the lease's end", d.NextAttemptAt)
				}
				if i > 0 && !ds[i-1].CreatedAt.Before(d.CreatedAt) {
					return fmt.Errorf("claim not in due order")
				}
			}
			mu.Lock()
			for _, d := range ds {
				claims[d.ID]++
			}
			mu.Unlock()
		}
	})
	if len(claims) != total {
		t.Errorf("%d deliveries claimed, want %d", len(claims), total)
	}
	for id, n := range claims {
		if n != 1 {
			t.Errorf("delivery %s claimed %d times", id, n)
		}
	}
	if ds, err := ss[2].ClaimDeliveries(ctx, lease.Add(-time.Microsecond), lease, 10); err != nil || len(ds) != 0 {
		t.Errorf("ClaimDeliveries during the lease = %d deliveries, %v; want none", len(ds), err)
	}
	if ds, err := ss[3].ClaimDeliveries(ctx, lease, lease.Add(time.Minute), 10); err != nil || len(ds) != 10 {
		t.Errorf("ClaimDeliveries after the lease = %d deliveries, %v; want 10", len(ds), err)
	}
}

// TestAppendIncidentEventConcurrent appends to one incident's timeline from 8 goroutines on
// 4 nodes, 25 each, half of them inside Store.Tx: the timeline is 1..200 without gaps or
// duplicates, and every append was told its own Seq.
func TestAppendIncidentEventConcurrent(t *testing.T) {
	ctx := context.Background()
	ss := nodes(t, 4)
	const workers, each = 8, 25
	inc := thauth.Incident{ID: newID(), Title: "key leak", Status: "open", CreatedAt: time.Now(), CreatedBy: "op"}
	if err := ss[0].CreateIncident(ctx, &inc); err != nil {
		t.Fatal(err)
	}
	other := thauth.Incident{ID: newID(), Title: "other", Status: "open", CreatedAt: time.Now(), CreatedBy: "op"}
	if err := ss[0].CreateIncident(ctx, &other); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	told := map[int64]string{}
	parallel(t, workers, func(w int) error {
		s := ss[w%len(ss)]
		for i := range each {
			ev := &thauth.IncidentEvent{IncidentID: inc.ID, At: time.Now(), Actor: "op", Kind: "note",
				Detail: fmt.Sprintf(`{"n":"%d/%d"}`, w, i)}
			var err error
			if i%2 == 0 {
				err = s.AppendIncidentEvent(ctx, ev)
			} else {
				err = s.Tx(ctx, func(ctx context.Context, tx thauth.Data) error {
					// Another incident's timeline in the same transaction does not wait for this one's.
					if err := tx.AppendIncidentEvent(ctx, &thauth.IncidentEvent{IncidentID: other.ID, At: time.Now(),
						Actor: "op", Kind: "note", Detail: "{}"}); err != nil {
						return err
					}
					return tx.AppendIncidentEvent(ctx, ev)
				})
			}
			if err != nil {
				return err
			}
			mu.Lock()
			prev, dup := told[ev.Seq]
			told[ev.Seq] = ev.Detail
			mu.Unlock()
			if dup {
				return fmt.Errorf("Seq %d given to both %s and %s", ev.Seq, prev, ev.Detail)
			}
		}
		return nil
	})
	evs, err := ss[1].ListIncidentEvents(ctx, inc.ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(evs) != workers*each {
		t.Fatalf("timeline has %d events, want %d", len(evs), workers*each)
	}
	for i, ev := range evs {
		if ev.Seq != int64(i+1) {
			t.Fatalf("event %d has Seq %d", i+1, ev.Seq)
		}
		if told[ev.Seq] != ev.Detail {
			t.Errorf("Seq %d holds %s, but its append was told %s", ev.Seq, ev.Detail, told[ev.Seq])
		}
	}
	if evs, err := ss[2].ListIncidentEvents(ctx, other.ID); err != nil || len(evs) != workers*(each/2) {
		t.Errorf("other timeline = %d events, %v; want %d", len(evs), err, workers*(each/2))
	}
}

// decisions returns n records of project p, one second apart from start.
func decisions(p string, start time.Time, n int) []thauth.DecisionRecord {
	recs := make([]thauth.DecisionRecord, n)
	for i := range recs {
		recs[i] = thauth.DecisionRecord{ID: newID(), ProjectID: p, At: start.Add(time.Duration(i) * time.Second),
			Subject: fmt.Sprintf("user-%d", i%7), Feature: "billing", Action: "read", Allowed: i%3 != 0,
			Reason: "role", Latency: time.Duration(i) * time.Microsecond}
	}
	return recs
}

// TestAppendDecisionsNodes writes overlapping batches from 4 nodes at once (a retried batch
// next to a new one), and two batches in one Store.Tx (the temporary table AppendDecisions
// copies through is reused on the connection): every record is stored once, records of
// projects that do not exist are skipped, and a failed transaction leaves nothing behind.
func TestAppendDecisionsNodes(t *testing.T) {
	ctx := context.Background()
	ss := nodes(t, 4)
	p := project(t, ss[0])
	start := time.Now().UTC().Truncate(time.Microsecond).Add(-time.Hour)
	recs := decisions(p, start, 1200)
	// Each worker writes one third of the records, then all of them again (a retry).
	parallel(t, 6, func(w int) error {
		s := ss[w%len(ss)]
		third := recs[(w%3)*400 : (w%3+1)*400]
		if err := s.AppendDecisions(ctx, third); err != nil {
			return err
		}
		return s.AppendDecisions(ctx, recs)
	})
	all := listAll(t, ss[1], p)
	if len(all) != len(recs) {
		t.Fatalf("%d records stored, want %d", len(all), len(recs))
	}
	for i, r := range all {
		if want := recs[len(recs)-1-i]; !cmp.Equal(want, r) {
			t.Fatalf("record %d (newest first): %s", i, cmp.Diff(want, r))
		}
	}

	// Two batches in one transaction, with records of a project that does not exist.
	more := decisions(p, start.Add(-24*time.Hour), 10)
	gone := decisions(newID(), start, 5)
	err := ss[2].Tx(ctx, func(ctx context.Context, tx thauth.Data) error {
		if err := tx.AppendDecisions(ctx, append(gone[:2:2], more[:5]...)); err != nil {
			return err
		}
		return tx.AppendDecisions(ctx, append(more[5:], gone[2:]...))
	})
	if err != nil {
		t.Fatal(err)
	}
	if got := len(listAll(t, ss[3], p)); got != len(recs)+len(more) {
		t.Errorf("after the transaction: %d records, want %d", got, len(recs)+len(more))
	}
	if got := listAll(t, ss[3], gone[0].ProjectID); len(got) != 0 {
		t.Errorf("records of a project that does not exist were stored: %v", got)
	}

	// A transaction that fails after appending leaves no record, and the connection's
	// temporary table empty for the next batch.
	lost := decisions(p, start.Add(-48*time.Hour), 3)
	boom := fmt.Errorf("boom")
	err = ss[2].Tx(ctx, func(ctx context.Context, tx thauth.Data) error {
		if err := tx.AppendDecisions(ctx, lost); err != nil {
			return err
		}
		return boom
	})
	if err != boom {
		t.Fatalf("Tx = %v, want the closure's error", err)
	}
	next := decisions(p, start.Add(-72*time.Hour), 2)
	if err := ss[2].AppendDecisions(ctx, next); err != nil {
		t.Fatal(err)
	}
	if got := len(listAll(t, ss[2], p)); got != len(recs)+len(more)+len(next) {
		t.Errorf("after a rolled back batch: %d records, want %d", got, len(recs)+len(more)+len(next))
	}
}

// listAll pages through every record of project p, newest first.
func listAll(t *testing.T, s *postgres.Store, p string) []thauth.DecisionRecord {
	t.Helper()
	var out []thauth.DecisionRecord
	f := thauth.DecisionFilter{Limit: 1000}
	for {
		page, err := s.ListDecisions(context.Background(), p, f)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, page...)
		if len(page) < f.Limit {
			return out
		}
		last := page[len(page)-1]
		f.Before = &thauth.DecisionCursor{At: last.At, ID: last.ID}
	}
}

// BenchmarkAppendDecisions measures the log writer's batches: b.N batches of 1000 records
// of one project.
//
//	go test -run '^$' -bench AppendDecisions ./internal/postgres/
func BenchmarkAppendDecisions(b *testing.B) {
	ctx := context.Background()
	s, p, _ := benchStore(b, postgres.Options{})
	const batch = 1000
	start := time.Now().Add(-24 * time.Hour)
	batches := make([][]thauth.DecisionRecord, b.N)
	for i := range batches {
		batches[i] = decisions(p, start.Add(time.Duration(i)*batch*time.Second), batch)
	}
	b.ResetTimer()
	for i := range b.N {
		if err := s.AppendDecisions(ctx, batches[i]); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*batch), "ns/record")
}

// BenchmarkListDecisions measures a page of 100 records of a project with 100,000, with and
// without a filter (a tenth of the subjects) and from a cursor.
func BenchmarkListDecisions(b *testing.B) {
	ctx := context.Background()
	s, p, _ := benchStore(b, postgres.Options{})
	n := 100_000
	if testing.Short() {
		n = 10_000
	}
	start := time.Now().Add(-48 * time.Hour)
	for i := 0; i < n; i += 5000 {
		recs := decisions(p, start.Add(time.Duration(i)*time.Second), 5000)
		for j := range recs {
			recs[j].Subject = fmt.Sprintf("user-%d", (i+j)%10)
		}
		if err := s.AppendDecisions(ctx, recs); err != nil {
			b.Fatal(err)
		}
	}
	if err := postgres.Exec(ctx, s, `ANALYZE decision_log`); err != nil {
		b.Fatal(err)
	}
	mid := &thauth.DecisionCursor{At: start.Add(time.Duration(n/2) * time.Second), ID: "~"}
	for _, bc := range []struct {
		name string
		f    thauth.DecisionFilter
	}{
		{"all", thauth.DecisionFilter{Limit: 100}},
		{"subject", thauth.DecisionFilter{Subject: "user-3", Limit: 100}},
		{"cursor", thauth.DecisionFilter{Before: mid, Limit: 100}},
		{"subject-cursor", thauth.DecisionFilter{Subject: "user-3", Before: mid, Limit: 100}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			for b.Loop() {
				recs, err := s.ListDecisions(ctx, p, bc.f)
				if err != nil || len(recs) != 100 {
					b.Fatalf("ListDecisions = %d, %v", len(recs), err)
				}
			}
		})
	}
}
