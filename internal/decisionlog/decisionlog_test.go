package decisionlog

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/uuid"

	"github.com/thauth/thauth"
)

// clock is an injectable clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = t
}

// faultyStore wraps a real store: AppendDecisions can be made to wait on a gate (a slow
// writer) or to fail.
type faultyStore struct {
	thauth.DecisionLogStore

	mu      sync.Mutex
	gate    chan struct{} // when not nil, AppendDecisions waits for it to be closed
	entered chan struct{} // receives once per AppendDecisions call that reached the gate
	fail    int           // the next fail calls fail
	calls   int
}

var errStoreDown = errors.New("store down")

func (s *faultyStore) AppendDecisions(ctx context.Context, recs []thauth.DecisionRecord) error {
	s.mu.Lock()
	s.calls++
	gate, entered := s.gate, s.entered
	fail := s.fail > 0
	if fail {
		s.fail--
	}
	s.mu.Unlock()
	if gate != nil {
		if entered != nil {
			entered <- struct{}{}
		}
		select {
		case <-gate:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	if fail {
		return errStoreDown
	}
	return s.DecisionLogStore.AppendDecisions(ctx, recs)
}

// rec returns a decision record of project p at t with id.
func rec(p, id string, t time.Time, subject string, allowed bool) thauth.DecisionRecord {
	reason := "default_deny"
	if allowed {
		reason = "role:admin"
	}
	return thauth.DecisionRecord{
		ID: id, ProjectID: p, At: t, KeyID: "key-1", Subject: subject, Feature: "billing", Action: "refund",
		Tenant: "acme", Resource: "invoices/42", Allowed: allowed, Reason: reason, Latency: 1500 * time.Microsecond,
	}
}

// all returns every record of project p in the store, newest first.
func all(t *testing.T, st thauth.DecisionLogStore, p string) []thauth.DecisionRecord {
	t.Helper()
	var out []thauth.DecisionRecord
	var before *thauth.DecisionCursor
	for {
		page, err := st.ListDecisions(t.Context(), p, thauth.DecisionFilter{Before: before, Limit: 1000})
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, page...)
		if len(page) < 1000 {
			return out
		}
		last := page[len(page)-1]
		before = &thauth.DecisionCursor{At: last.At, ID: last.ID}
	}
}

// split separates records from gap markers.
func split(recs []thauth.DecisionRecord) (records, gaps []thauth.DecisionRecord) {
	for _, r := range recs {
		if r.Gap > 0 {
			gaps = append(gaps, r)
		} else {
			records = append(records, r)
		}
	}
	return records, gaps
}

func gapTotal(gaps []thauth.DecisionRecord) int64 {
	var n int64
	for _, g := range gaps {
		n += g.Gap
	}
	return n
}

// byID sorts records by id (for comparisons that do not care about order).
func byID(recs []thauth.DecisionRecord) []thauth.DecisionRecord {
	out := append([]thauth.DecisionRecord(nil), recs...)
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// stored is what a store gives back for r: times in UTC microseconds.
func stored(r thauth.DecisionRecord) thauth.DecisionRecord {
	r.At = r.At.UTC().Truncate(time.Microsecond)
	r.Latency = r.Latency.Truncate(time.Microsecond)
	return r
}

// start runs w in the background until the test ends.
func start(t *testing.T, w *Writer) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
}

// TestRoundTrip: records handed to Record come back from the store unchanged, with Run in
// the background and Flush as the barrier.
func TestRoundTrip(t *testing.T) {
	st, projects := openStore(t)
	w := New(st, Options{FlushInterval: time.Hour}) // only Flush and BatchSize write
	start(t, w)
	base := time.Date(2026, 11, 28, 10, 42, 0, 123456789, time.UTC)
	var want []thauth.DecisionRecord
	for i := range 2500 { // several batches
		r := rec(projects[i%2], fmt.Sprintf("0197000-%05d", i), base.Add(time.Duration(i)*time.Millisecond),
			fmt.Sprintf("user_%d", i%7), i%3 == 0)
		want = append(want, r)
		w.Record(r)
	}
	if err := w.Flush(t.Context()); err != nil {
		t.Fatal(err)
	}
	var got []thauth.DecisionRecord
	for _, p := range projects {
		got = append(got, all(t, st, p)...)
	}
	for i := range want {
		want[i] = stored(want[i])
	}
	if diff := cmp.Diff(byID(want), byID(got)); diff != "" {
		t.Errorf("stored records (-want +got):\n%s", diff)
	}
	one, err := st.GetDecision(t.Context(), projects[1], want[7].ID)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want[7], *one); diff != "" {
		t.Errorf("GetDecision (-want +got):\n%s", diff)
	}
	s := w.Stats()
	if diff := cmp.Diff(Stats{Recorded: 2500, Written: 2500}, s); diff != "" {
		t.Errorf("stats (-want +got):\n%s", diff)
	}
}

// TestSlowWriterDrops: while the store is stuck, Record never blocks, keeps at most
// BufferSize records in memory and counts every other record as dropped, per project; once
// the store answers again, the buffered records are written and one gap marker per project
// carries the exact count of its records that were not, at the time of the first of them.
// With one shard the buffer keeps exactly the first BufferSize records; with several, which
// records find room depends on the shards picked, and the accounting is checked against
// what was written.
func TestSlowWriterDrops(t *testing.T) {
	for _, shards := range []int{1, 8} {
		t.Run(fmt.Sprintf("shards=%d", shards), func(t *testing.T) { testSlowWriterDrops(t, shards) })
	}
}

func testSlowWriterDrops(t *testing.T, shards int) {
	base, projects := openStore(t)
	st := &faultyStore{DecisionLogStore: base, gate: make(chan struct{}), entered: make(chan struct{}, 1)}
	const buffer, total = 64, 4000
	clk := &clock{t: time.Date(2026, 11, 28, 10, 0, 0, 0, time.UTC)}
	w := New(st, Options{BufferSize: buffer, BatchSize: 1, Shards: shards, FlushInterval: time.Hour, Now: clk.Now})
	start(t, w)

	t0 := clk.Now()
	all0 := []thauth.DecisionRecord{rec(projects[0], "first", t0, "user_0", true)}
	w.Record(all0[0])
	flushed := make(chan error, 1)
	go func() { flushed <- w.Flush(context.Background()) }()
	<-st.entered // the writer took the first record and is stuck in the store
	st.mu.Lock()
	st.entered = nil
	st.mu.Unlock()

	// Fill the buffer, then overflow it: 3000 records of project 0, 1000 of project 1.
	for i := range total {
		p := projects[0]
		if i%4 == 3 {
			p = projects[1]
		}
		r := rec(p, fmt.Sprintf("r%05d", i), t0.Add(time.Duration(i+1)*time.Millisecond), "user_1", false)
		all0 = append(all0, r)
		w.Record(r) // would hang the test if it blocked
	}
	s := w.Stats()
	capacity := 0
	for _, ch := range w.shards {
		capacity += cap(ch)
	}
	if capacity != buffer || s.Buffered > buffer || (shards == 1 && s.Buffered != buffer) {
		t.Fatalf("buffered %d in %d shards of total capacity %d, want at most %d: memory must stay bounded",
			s.Buffered, len(w.shards), capacity, buffer)
	}
	if s.Dropped != total-s.Buffered || s.Written != 0 || s.Recorded != 1+s.Buffered {
		t.Fatalf("stats while stuck: %+v", s)
	}

	// The store answers again; the stuck Flush writes the buffer and the gap markers.
	close(st.gate)
	if err := <-flushed; err != nil {
		t.Fatal(err)
	}
	if err := w.Close(t.Context()); err != nil {
		t.Fatal(err)
	}
	wantStats := Stats{Recorded: 1 + s.Buffered, Dropped: s.Dropped, Written: 1 + s.Buffered, Gaps: 2}
	if diff := cmp.Diff(wantStats, w.Stats()); diff != "" {
		t.Errorf("stats (-want +got):\n%s", diff)
	}
	var got []thauth.DecisionRecord
	written := map[string]bool{}
	for _, p := range projects {
		recs, gaps := split(all(t, base, p))
		got = append(got, recs...)
		for _, r := range recs {
			written[r.ID] = true
		}
		// The records of p that were not written are exactly what its gap marker counts.
		var missing int64
		var first time.Time
		for _, r := range all0 {
			if r.ProjectID == p && !written[r.ID] {
				if missing == 0 {
					first = r.At
				}
				missing++
			}
		}
		if len(gaps) != 1 {
			t.Fatalf("project %s: %d gap markers, want 1: %+v", p, len(gaps), gaps)
		}
		g := gaps[0]
		wantGap := thauth.DecisionRecord{ID: g.ID, ProjectID: p, At: first, Gap: missing}
		if diff := cmp.Diff(wantGap, g); diff != "" {
			t.Errorf("project %s gap marker (-want +got):\n%s", p, diff)
		}
		if len(g.ID) != 36 {
			t.Errorf("gap marker id %q is not a UUID", g.ID)
		}
	}
	// What was written is what was recorded, field for field; with one shard, the first
	// record and the next BufferSize ones.
	var want []thauth.DecisionRecord
	for i, r := range all0 {
		if written[r.ID] {
			want = append(want, stored(r))
		} else if shards == 1 && i <= buffer {
			t.Errorf("record %d was dropped although the buffer had room", i)
		}
	}
	if diff := cmp.Diff(byID(want), byID(got)); diff != "" {
		t.Errorf("records written (-want +got):\n%s", diff)
	}
}

// TestFailedBatches: a batch the store refuses is dropped and counted (WriteErrors, Dropped)
// and becomes a gap marker; a gap marker that cannot be written is retried, with later
// drops merged in, until it is written.
func TestFailedBatches(t *testing.T) {
	base, projects := openStore(t)
	st := &faultyStore{DecisionLogStore: base}
	clk := &clock{t: time.Date(2026, 11, 28, 10, 0, 0, 0, time.UTC)}
	w := New(st, Options{BatchSize: 10, FlushInterval: time.Hour, Now: clk.Now})
	t0 := clk.Now()
	p := projects[0]

	// Batch 1 fails, and so does the gap marker of its 10 records that Flush then tries.
	st.fail = 2
	for i := range 10 {
		w.Record(rec(p, fmt.Sprintf("a%02d", i), t0.Add(time.Duration(i)*time.Second), "u", true))
	}
	if err := w.Flush(t.Context()); !errors.Is(err, errStoreDown) {
		t.Fatalf("Flush: %v, want the store's error", err)
	}
	// The next batch, 5 records written with the pending gap marker, fails too; the marker
	// is then written with the 5 new drops merged in.
	st.fail = 1
	for i := range 5 {
		w.Record(rec(p, fmt.Sprintf("b%02d", i), t0.Add(time.Minute+time.Duration(i)*time.Second), "u", true))
	}
	if err := w.Flush(t.Context()); !errors.Is(err, errStoreDown) {
		t.Fatalf("Flush: %v, want the store's error", err)
	}
	// Records are written again; the one gap marker carries 10 + 5 drops, at the first
	// drop's time.
	for i := range 3 {
		w.Record(rec(p, fmt.Sprintf("c%02d", i), t0.Add(2*time.Minute+time.Duration(i)*time.Second), "u", true))
	}
	if err := w.Flush(t.Context()); err != nil {
		t.Fatal(err)
	}
	recs, gaps := split(all(t, base, p))
	if len(recs) != 3 {
		t.Errorf("%d records written, want 3", len(recs))
	}
	if len(gaps) != 1 || gaps[0].Gap != 15 || !gaps[0].At.Equal(t0) {
		t.Errorf("gap markers %+v, want one of 15 at %v", gaps, t0)
	}
	want := Stats{Recorded: 18, Dropped: 15, Written: 3, Gaps: 1, WriteErrors: 3}
	if diff := cmp.Diff(want, w.Stats()); diff != "" {
		t.Errorf("stats (-want +got):\n%s", diff)
	}
}

// TestRetention: Prune deletes exactly the records older than the retention by the
// injected clock, in batches, and nothing when records are kept forever.
func TestRetention(t *testing.T) {
	st, projects := openStore(t)
	clk := &clock{t: time.Date(2026, 11, 28, 0, 0, 0, 0, time.UTC)}
	day := 24 * time.Hour
	w := New(st, Options{Retention: 30 * day, Now: clk.Now})
	// 2500 records 40 days old (more than one prune batch), 10 exactly 30 days old, 10 of
	// yesterday.
	old := clk.Now().Add(-40 * day)
	for i := range 2500 {
		w.Record(rec(projects[i%2], fmt.Sprintf("old%05d", i), old.Add(time.Duration(i)*time.Millisecond), "u", false))
	}
	edge := clk.Now().Add(-30 * day)
	for i := range 10 {
		w.Record(rec(projects[0], fmt.Sprintf("edge%02d", i), edge, "u", false))
		w.Record(rec(projects[1], fmt.Sprintf("new%02d", i), clk.Now().Add(-day), "u", true))
	}
	if err := w.Flush(t.Context()); err != nil {
		t.Fatal(err)
	}

	forever := New(st, Options{Retention: -1, Now: clk.Now})
	if n, err := forever.Prune(t.Context()); err != nil || n != 0 {
		t.Fatalf("keep forever: pruned %d, %v", n, err)
	}
	n, err := w.Prune(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if n != 2500 {
		t.Errorf("pruned %d, want 2500", n)
	}
	if got := len(all(t, st, projects[0])) + len(all(t, st, projects[1])); got != 20 {
		t.Errorf("%d records left, want 20", got)
	}
	// A day later the edge records are past the retention.
	clk.Set(clk.Now().Add(day))
	if n, err := w.Prune(t.Context()); err != nil || n != 10 {
		t.Errorf("second prune: %d, %v; want 10", n, err)
	}
}

// TestCloseFlushes: Close writes what is buffered, whether Run runs or not, and counts
// records handed over after it as dropped.
func TestCloseFlushes(t *testing.T) {
	for _, running := range []bool{false, true} {
		t.Run(fmt.Sprintf("running=%v", running), func(t *testing.T) {
			st, projects := openStore(t)
			w := New(st, Options{FlushInterval: time.Hour})
			if running {
				start(t, w)
			}
			t0 := time.Date(2026, 11, 28, 10, 0, 0, 0, time.UTC)
			for i := range 1500 {
				w.Record(rec(projects[0], fmt.Sprintf("r%05d", i), t0.Add(time.Duration(i)*time.Microsecond), "u", true))
			}
			if err := w.Close(t.Context()); err != nil {
				t.Fatal(err)
			}
			if got := len(all(t, st, projects[0])); got != 1500 {
				t.Errorf("%d records written, want 1500", got)
			}
			// Too late: dropped and counted; a second Close still writes its gap marker.
			w.Record(rec(projects[0], "late", t0, "u", true))
			if err := w.Close(t.Context()); err != nil {
				t.Fatal(err)
			}
			if _, gaps := split(all(t, st, projects[0])); len(gaps) != 1 || gaps[0].Gap != 1 {
				t.Errorf("gap markers %+v, want one of 1", gaps)
			}
			want := Stats{Recorded: 1500, Written: 1500, Dropped: 1, Gaps: 1}
			if diff := cmp.Diff(want, w.Stats()); diff != "" {
				t.Errorf("stats (-want +got):\n%s", diff)
			}
			if err := w.Flush(t.Context()); err == nil {
				t.Error("Flush after Close succeeded")
			}
		})
	}
}

// TestConcurrentRecord: many goroutines record while the writer writes in batches and a
// small buffer overflows; afterwards every record is accounted for exactly once, written or
// counted in a gap marker of its project.
func TestConcurrentRecord(t *testing.T) {
	st, projects := openStore(t)
	w := New(st, Options{BufferSize: 256, BatchSize: 100, FlushInterval: time.Millisecond})
	start(t, w)
	const goroutines, each = 8, 2000
	t0 := time.Date(2026, 11, 28, 10, 0, 0, 0, time.UTC)
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Go(func() {
			for i := range each {
				w.Record(rec(projects[(g+i)%2], fmt.Sprintf("g%d-%05d", g, i), t0.Add(time.Duration(i)*time.Microsecond), "u", true))
			}
		})
	}
	wg.Wait()
	if err := w.Close(t.Context()); err != nil {
		t.Fatal(err)
	}
	s := w.Stats()
	if s.Recorded+s.Dropped != goroutines*each || s.Written != s.Recorded || s.WriteErrors != 0 {
		t.Errorf("stats %+v: recorded + dropped must be %d, all recorded written", s, goroutines*each)
	}
	var records, missing int64
	for _, p := range projects {
		recs, gaps := split(all(t, st, p))
		records += int64(len(recs))
		missing += gapTotal(gaps)
	}
	if records != int64(s.Written) || missing != int64(s.Dropped) || records+missing != goroutines*each {
		t.Errorf("store holds %d records and gaps of %d; stats %+v", records, missing, s)
	}
}

// TestThrottle: while goroutines wait for a CPU 1 ms on average (until they wait less than
// 200 µs), a write is followed by a pause that keeps writing to BusyShare of the time; with
// CPUs to spare, or with BusyShare 1, the writer never pauses.
func TestThrottle(t *testing.T) {
	st, _ := openStore(t)
	var samples uint64
	var total time.Duration
	waits := func() (uint64, time.Duration) { return samples, total }
	var cpuBusy, cpuTotal float64 // the machine's CPU times; 0 = unknown until the CPU steps below
	cpuTimes := func() (float64, float64) { return cpuBusy, cpuTotal }
	now := time.Date(2026, 11, 28, 10, 0, 0, 0, time.UTC)
	newWriter := func(share float64) *Writer {
		w := New(st, Options{BusyShare: share, SchedWaits: waits, CPUTimes: cpuTimes})
		w.wall = func() time.Time { return now }
		w.sampleAt, w.sampleN, w.sampleTotal = now, samples, total
		return w
	}
	// window advances the clock by one window in which n goroutines waited mean each.
	window := func(n uint64, mean time.Duration) {
		now = now.Add(ContentionWindow)
		samples += n
		total += time.Duration(n) * mean
	}
	const write = 10 * time.Millisecond
	w := newWriter(0.1)
	steps := []struct {
		n         uint64
		mean      time.Duration
		advance   bool // a new window (else a write within the same window)
		wantPause time.Duration
	}{
		{1000, 20 * time.Microsecond, true, 0},
		{1000, 999 * time.Microsecond, true, 0},
		{1000, 15 * time.Millisecond, true, 90 * time.Millisecond},  // 10 ms of writing, 90 ms of pause
		{0, 0, false, 90 * time.Millisecond},                        // same window: still contended
		{1000, 500 * time.Microsecond, true, 90 * time.Millisecond}, // under 1 ms, not under 200 µs
		{5, time.Microsecond, true, 90 * time.Millisecond},          // too few samples to tell
		{1000, 100 * time.Microsecond, true, 0},                     // calm again
		{1000, 2 * time.Millisecond, true, 90 * time.Millisecond},
	}
	for i, s := range steps {
		if s.advance {
			window(s.n, s.mean)
		}
		w.resumeAt = time.Time{}
		w.throttle(write)
		if got := w.resumeAt.Sub(now); (s.wantPause == 0 && !w.resumeAt.IsZero()) || (s.wantPause != 0 && got != s.wantPause) {
			t.Errorf("step %d (%d waits of %v): resume at %v, want a pause of %v", i, s.n, s.mean, w.resumeAt, s.wantPause)
		}
	}
	if got := w.Stats().Throttled; got != 5 {
		t.Errorf("Throttled = %d, want 5", got)
	}

	// An HTTP server's goroutines mostly wait on the network: scheduling waits can stay
	// short while every CPU of the machine is taken. The machine's busy share counts too.
	cpuBusy, cpuTotal = 1e6, 2e6
	cw := newWriter(0.1)
	cw.sampleBusy, cw.sampleCPU = cpuBusy, cpuTotal
	for i, c := range []struct {
		share     float64 // busy share of the machine's CPUs during the window
		wantPause time.Duration
	}{
		{0.5, 0}, {0.84, 0}, {0.86, 90 * time.Millisecond}, {0.7, 90 * time.Millisecond}, {0.59, 0},
	} {
		window(1000, 20*time.Microsecond)
		cpuBusy += c.share * 1000
		cpuTotal += 1000
		cw.resumeAt = time.Time{}
		cw.throttle(write)
		if got := cw.resumeAt.Sub(now); (c.wantPause == 0 && !cw.resumeAt.IsZero()) || (c.wantPause != 0 && got != c.wantPause) {
			t.Errorf("CPU step %d (%.0f%% busy): resume at %v, want a pause of %v", i, 100*c.share, cw.resumeAt, c.wantPause)
		}
	}
	cpuBusy, cpuTotal = 0, 0

	never := newWriter(1)
	window(1000, 20*time.Millisecond)
	never.throttle(write)
	if !never.resumeAt.IsZero() || never.Stats().Throttled != 0 {
		t.Error("BusyShare 1 paused")
	}
}

// TestSchedWaits: the runtime's scheduling latency histogram is readable and monotonic.
func TestSchedWaits(t *testing.T) {
	read := newSchedWaits()
	n0, t0 := read()
	var wg sync.WaitGroup
	for range 4 * runtime.GOMAXPROCS(0) {
		wg.Go(func() {
			for range 100 {
				runtime.Gosched()
			}
		})
	}
	wg.Wait()
	n1, t1 := read()
	if n1 <= n0 || t1 < t0 {
		t.Errorf("scheduling waits went from %d (%v) to %d (%v)", n0, t0, n1, t1)
	}
}

// TestRecordFields: a record without an id gets a fresh UUIDv7 of its time; RecordWithID
// takes the id given; over-long fields are cut at a character boundary.
func TestRecordFields(t *testing.T) {
	st, projects := openStore(t)
	w := New(st, Options{})
	at := time.Date(2026, 11, 28, 10, 42, 0, 0, time.UTC)
	noID := rec(projects[0], "", at, "user_123", false)
	w.Record(noID)
	var id [36]byte
	copy(id[:], "01970c2e-8a3b-7c1d-9e2f-3a4b5c6d7e8f")
	withID := rec(projects[0], "ignored", at.Add(time.Second), "user_456", true)
	w.RecordWithID(id, withID)
	long := rec(projects[0], "long", at.Add(2*time.Second), strings.Repeat("a", 255)+"é"+strings.Repeat("b", 100), true)
	long.Resource = strings.Repeat("r", 600)
	w.Record(long)
	if err := w.Close(t.Context()); err != nil {
		t.Fatal(err)
	}
	got := all(t, st, projects[0]) // newest first
	if len(got) != 3 {
		t.Fatalf("%d records, want 3", len(got))
	}
	if g := got[0]; g.Subject != strings.Repeat("a", 255) || g.Resource != strings.Repeat("r", 512) {
		t.Errorf("long record stored with subject of %d bytes, resource of %d", len(g.Subject), len(g.Resource))
	}
	if g := got[1]; g.ID != string(id[:]) || g.Subject != "user_456" {
		t.Errorf("RecordWithID stored %+v", g)
	}
	g := got[2]
	u, err := uuid.Parse(g.ID)
	if err != nil || u.Version() != 7 || g.Subject != "user_123" {
		t.Fatalf("record without id stored as %+v (%v)", g, err)
	}
	if sec, nsec := u.Time().UnixTime(); time.Unix(sec, nsec).UnixMilli() != at.UnixMilli() {
		t.Errorf("fresh id %s is not of the record's time %v", g.ID, at)
	}
}
