// Package decisionlog is the asynchronous writer of the decision log: every decision the
// HTTP layer answers is handed to Writer.Record, which only puts it in a bounded in-memory
// buffer; Writer.Run takes records from that buffer and writes them to the store in batches,
// and prunes what is older than the retention.
//
// # Cost on the decision path
//
// Record does no I/O and never waits: it copies the record's strings into one allocation
// (the caller's strings may point into buffers it reuses) and makes one non-blocking send on
// one of several buffered channels of compact entries (Options.Shards, picked at random, a
// second one tried when the first is full), so that concurrent decisions seldom meet on a
// channel's lock. Run empties them every FlushInterval.
//
// # Drops and gap markers
//
// When the buffer is full — the store is slow or down, or decisions arrive faster than it
// can write them — Record drops the record and counts it, per project, with an atomic
// counter (no lock, no allocation once the project has dropped before). Nothing waits and
// memory does not grow: the buffer holds at most Options.BufferSize entries of 80 bytes plus
// their strings (one allocation, one pointer for the garbage collector to follow). String
// fields are cut to MaxFieldBytes (MaxResourceBytes for the resource) at a character
// boundary, so an entry holds at most ~2.2 KB of strings; with typical ids and names
// (~150–250 bytes) the default 65536 entries take 15–22 MB, and at worst ~150 MB. A batch
// the store refuses is dropped and counted the same way. Drops are never silent: at every
// flush, the writer turns each
// project's count into a gap marker, a record with Gap = the number of decisions missing and
// At = the time of the first of them, which the log's readers see where the records are
// missing; Stats reports the totals for metrics. Gap markers that cannot be written are kept
// (one per project, later counts merged in) and retried at the next flush.
//
// Exactness: the counts are exact (every dropped record is counted once, in exactly one gap
// marker). A marker's At is the earliest drop it counts, except when a drop races with the
// collection of its project's counter, in which case the next marker's At may be the time of
// the collection instead.
//
// # Yielding the CPU to decisions
//
// Writing a record costs far more CPU than deciding (SQLite: ~10–15 µs per record, against
// ~1–3 µs per check), and Go has no thread priorities: a writer that writes as fast as it
// can on CPUs that are all busy takes them from the decisions, which then wait. So the
// writer watches how long runnable goroutines wait for a CPU (the runtime's
// /sched/latencies:seconds, averaged over windows of at least ContentionWindow): when the
// mean wait reaches 1 ms (it stays in the microseconds while a CPU is free), it pauses after
// each write so that writing takes at most BusyShare of the time (default 10 %), until the
// mean falls under 200 µs. What does not fit in the buffer meanwhile is dropped and counted
// as above. With CPU to spare, it writes as fast as the store allows. Stats.Throttled counts
// the pauses.
//
// # Lifecycle
//
// New, then Run in its own goroutine; Record from any goroutine; Close at shutdown (after
// the HTTP server has stopped) writes what is still buffered. Flush writes what was recorded
// before it was called (tests, and a clean hand-over).
package decisionlog

import (
	"context"
	"errors"
	"log/slog"
	"math"
	"math/rand/v2"
	"runtime"
	"runtime/metrics"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/thauth/thauth"
)

// Defaults of Options.
const (
	DefaultBufferSize    = 65536
	DefaultBatchSize     = 1000
	DefaultFlushInterval = 200 * time.Millisecond
	DefaultRetention     = 30 * 24 * time.Hour
	DefaultPruneInterval = time.Minute
	DefaultBusyShare     = 0.1
)

// CPU contention: the writer starts pausing when goroutines waited contendedHigh for a CPU
// on average over the last window, and stops when they waited less than contendedLow.
const (
	contendedHigh    = time.Millisecond
	contendedLow     = 200 * time.Microsecond
	ContentionWindow = 250 * time.Millisecond
	// The machine's busy CPU share above which the CPUs count as contended, and below which
	// (with short scheduling waits) they count as free again.
	cpuBusyHigh    = 0.85
	cpuBusyLow     = 0.6
	minWaitSamples = 16 // a window with fewer scheduling samples keeps the current state
)

// pruneBatch is how many records one PruneDecisions call deletes.
const pruneBatch = 1000

// The longest string fields a record keeps (longer ones are cut at a character boundary):
// identifiers are valid up to 256 bytes and resources up to 512 (see thauth.Validate*), so
// only checks that cannot match anything lose text.
const (
	MaxFieldBytes    = 256
	MaxResourceBytes = 512
)

// Options configure a Writer. Zero values mean the defaults.
type Options struct {
	// BufferSize is how many records wait in memory for the writer; when it is full, new
	// records are dropped and counted.
	BufferSize int
	// BatchSize is the largest number of records written in one AppendDecisions call.
	BatchSize int
	// Shards is the number of channels the buffer is split into; 0 means 4 × GOMAXPROCS.
	Shards int
	// FlushInterval is how long a record waits at most before a partial batch is written.
	FlushInterval time.Duration
	// Retention is how long records are kept: 0 means DefaultRetention, a negative value
	// keeps them forever.
	Retention time.Duration
	// PruneInterval is how often records older than Retention are deleted.
	PruneInterval time.Duration
	// Now is the clock of retention and of gap markers; nil means time.Now.
	Now func() time.Time
	// Logger receives write failures and recoveries; nil discards them.
	Logger *slog.Logger
	// BusyShare is the largest share of the time the writer spends writing while
	// goroutines wait for CPUs (see the package comment): 0 means DefaultBusyShare; 1 or
	// more never pauses.
	BusyShare float64
	// SchedWaits returns how many goroutine scheduling waits were sampled so far and their
	// total; nil means the Go runtime's (/sched/latencies:seconds). For tests.
	SchedWaits func() (samples uint64, total time.Duration)
	// CPUTimes returns cumulative busy and total CPU time (any one unit) of the machine: the
	// writer also counts the CPUs as contended while more than cpuBusyHigh of them is busy
	// over a window. nil means the operating system's account (/proc/stat on Linux; the
	// process's own CPU time against GOMAXPROCS elsewhere on Unix). An HTTP server's
	// goroutines mostly wait on the network, so scheduling waits alone can stay short while
	// every CPU is taken (by the server, its clients or the database).
	CPUTimes func() (busy, total float64)
}

// Stats are the writer's counters since New, for metrics.
type Stats struct {
	Recorded    uint64 // records accepted into the buffer
	Dropped     uint64 // records not written: buffer full, refused batch, or after Close
	Written     uint64 // records the store accepted
	Gaps        uint64 // gap markers written
	WriteErrors uint64 // failed AppendDecisions calls
	Buffered    uint64 // records waiting in the buffer now
	Throttled   uint64 // pauses made to leave busy CPUs to decisions
}

// Writer is the decision log's asynchronous writer. Record is safe for concurrent use; Run,
// Flush and Close coordinate among themselves.
type Writer struct {
	store thauth.DecisionLogStore
	o     Options
	log   *slog.Logger

	shards []chan entry // the buffer
	closed atomic.Bool

	// drops maps each project that ever dropped a record to its counters (the drops not
	// yet turned into gap markers). It is copied on write (a project's first drop, under
	// dropsMu), so that a drop reads it without a lock. Entries are never removed (a removal
	// would race with a concurrent drop); there is one per project, and project ids come
	// from authenticated keys.
	drops   atomic.Pointer[map[string]*projectDrops]
	dropsMu sync.Mutex

	received    atomic.Uint64 // records taken from the buffer (Recorded = received + buffered)
	collected   atomic.Uint64 // drops turned into gap markers (Dropped = collected + the counters in drops)
	written     atomic.Uint64
	gaps        atomic.Uint64
	writeErrors atomic.Uint64
	throttled   atomic.Uint64

	// sem is held by whoever owns the consumer state below: Run while it runs, else Flush
	// or Close.
	sem      chan struct{}
	flushReq chan chan error
	stop     chan struct{}
	stopOnce sync.Once

	// Consumer state (owned by the holder of sem).
	batch   []thauth.DecisionRecord
	pending map[string]*gapMarker // gap markers not yet written, by project
	failing bool                  // the last write failed (log the recovery)

	// CPU contention (owned by Run). wall is time.Now (tests replace it).
	wall        func() time.Time
	sampleAt    time.Time     // wall clock of the last sample of SchedWaits
	sampleN     uint64        // SchedWaits then
	sampleTotal time.Duration //
	sampleBusy  float64       // CPUTimes then
	sampleCPU   float64       //
	contended   bool
	resumeAt    time.Time // no write before this (a pause)
}

// dropStripes is the number of counters a project's drops are spread over, so that
// concurrent drops seldom write the same cache line.
const dropStripes = 8

// projectDrops counts one project's dropped records since its last gap marker: the sum of
// the stripes of n (each on its own cache line), the earliest at first (mostly read).
type projectDrops struct {
	n [dropStripes]struct {
		atomic.Uint64
		_ [56]byte
	}
	first atomic.Int64 // Unix nanoseconds of the earliest drop counted in n; 0 = none
	_     [56]byte
}

// pending returns the drops counted now.
func (pd *projectDrops) pending() uint64 {
	var n uint64
	for i := range pd.n {
		n += pd.n[i].Load()
	}
	return n
}

// take returns the drops counted and resets the count.
func (pd *projectDrops) take() uint64 {
	var n uint64
	for i := range pd.n {
		if pd.n[i].Load() != 0 {
			n += pd.n[i].Swap(0)
		}
	}
	return n
}

// entry is a record in the buffer: its strings in one allocation (one pointer for the
// garbage collector), their lengths, and the scalar fields.
type entry struct {
	s       string    // ID, ProjectID, KeyID, Subject, Feature, Action, Tenant, Resource, Reason
	lens    [9]uint32 // the lengths of those fields in s
	at      int64     // Unix nanoseconds
	latency int64     // nanoseconds
	allowed bool
}

// pack copies r into an entry, cutting over-long fields; id, when not nil, is its ID, and a
// record without one gets a fresh one.
func pack(id []byte, r *thauth.DecisionRecord) entry {
	var fresh [36]byte
	if id == nil && r.ID == "" {
		id = putID(fresh[:], r.At)
	}
	f := [9]string{r.ID, r.ProjectID, r.KeyID, cut(r.Subject, MaxFieldBytes), cut(r.Feature, MaxFieldBytes),
		cut(r.Action, MaxFieldBytes), cut(r.Tenant, MaxFieldBytes), cut(r.Resource, MaxResourceBytes), cut(r.Reason, MaxFieldBytes)}
	if id != nil {
		f[0] = ""
	}
	n := len(id)
	for _, v := range f {
		n += len(v)
	}
	var b strings.Builder
	b.Grow(n)
	e := entry{at: r.At.UnixNano(), latency: int64(r.Latency), allowed: r.Allowed}
	for i, v := range f {
		if i == 0 && id != nil {
			b.Write(id)
			e.lens[0] = uint32(len(id))
			continue
		}
		b.WriteString(v)
		e.lens[i] = uint32(len(v))
	}
	e.s = b.String()
	return e
}

// unpack returns the record of e (its strings share e's allocation).
func (e *entry) unpack() thauth.DecisionRecord {
	var f [9]string
	s := e.s
	for i, n := range e.lens {
		f[i], s = s[:n], s[n:]
	}
	return thauth.DecisionRecord{
		ID: f[0], ProjectID: f[1], KeyID: f[2], Subject: f[3], Feature: f[4], Action: f[5], Tenant: f[6],
		Resource: f[7], Reason: f[8], At: time.Unix(0, e.at).UTC(), Latency: time.Duration(e.latency), Allowed: e.allowed,
	}
}

// cut returns s cut to at most max bytes, at a character boundary.
func cut(s string, max int) string {
	if len(s) <= max {
		return s
	}
	i := max
	for i > 0 && !utf8.RuneStart(s[i]) {
		i--
	}
	return s[:i]
}

// gapMarker is a gap marker waiting to be written.
type gapMarker struct {
	rec       thauth.DecisionRecord
	attempted bool // a write was tried: its id may be stored already
}

// New returns a Writer for store. Nothing is written until Run runs (or Flush or Close is
// called).
func New(store thauth.DecisionLogStore, o Options) *Writer {
	if o.BufferSize <= 0 {
		o.BufferSize = DefaultBufferSize
	}
	if o.BatchSize <= 0 {
		o.BatchSize = DefaultBatchSize
	}
	if o.Shards <= 0 {
		o.Shards = 4 * runtime.GOMAXPROCS(0)
	}
	o.Shards = min(o.Shards, o.BufferSize)
	if o.FlushInterval <= 0 {
		o.FlushInterval = DefaultFlushInterval
	}
	if o.Retention == 0 {
		o.Retention = DefaultRetention
	}
	if o.PruneInterval <= 0 {
		o.PruneInterval = DefaultPruneInterval
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.BusyShare <= 0 {
		o.BusyShare = DefaultBusyShare
	}
	if o.CPUTimes == nil {
		o.CPUTimes = cpuTimes
	}
	if o.SchedWaits == nil {
		o.SchedWaits = newSchedWaits()
	}
	w := &Writer{
		store:    store,
		o:        o,
		log:      o.Logger,
		sem:      make(chan struct{}, 1),
		flushReq: make(chan chan error),
		stop:     make(chan struct{}),
		shards:   make([]chan entry, o.Shards),
		batch:    make([]thauth.DecisionRecord, 0, o.BatchSize),
		pending:  map[string]*gapMarker{},
		wall:     time.Now,
	}
	w.drops.Store(&map[string]*projectDrops{})
	if w.log == nil {
		w.log = slog.New(slog.DiscardHandler)
	}
	per := (o.BufferSize + o.Shards - 1) / o.Shards
	for i := range w.shards {
		w.shards[i] = make(chan entry, per)
	}
	return w
}

// Record hands one decision to the log. It never blocks and does no I/O: when the buffer is
// full (or the writer is closed) the record is dropped and counted for its project. A
// record without an ID is given a fresh one (a UUIDv7 of its time).
// Record copies what it keeps: rec's strings may point into memory the caller reuses once
// Record returns. Safe for concurrent use.
func (w *Writer) Record(rec thauth.DecisionRecord) {
	w.record(nil, &rec)
}

// RecordWithID is Record for a record whose ID is id (rec.ID is ignored). It spares the
// caller the allocation of the id's string for a record that may well be dropped: an array
// passed by value does not escape, a string built from it would.
func (w *Writer) RecordWithID(id [36]byte, rec thauth.DecisionRecord) {
	w.record(id[:], &rec)
}

// record is Record with the id in bytes, when id is not nil.
func (w *Writer) record(id []byte, rec *thauth.DecisionRecord) {
	r := rand.Uint64() // picks the shards and the drop counter's stripe
	if w.closed.Load() {
		w.drop(rec.ProjectID, rec.At.UnixNano(), 1, r)
		return
	}
	n := uint64(len(w.shards))
	ch := w.shards[r%n]
	if len(ch) == cap(ch) {
		ch = w.shards[(r>>32)%n]
	}
	if len(ch) == cap(ch) { // full: do not copy for nothing
		w.drop(rec.ProjectID, rec.At.UnixNano(), 1, r)
		return
	}
	select {
	case ch <- pack(id, rec):
	default:
		w.drop(rec.ProjectID, rec.At.UnixNano(), 1, r)
	}
}

// buffered returns the number of entries in the buffer.
func (w *Writer) buffered() int {
	n := 0
	for _, ch := range w.shards {
		n += len(ch)
	}
	return n
}

// drop counts n dropped records of projectID, the earliest at Unix nanoseconds at; r is a
// random number (the counter's stripe).
func (w *Writer) drop(projectID string, at int64, n, r uint64) {
	pd := (*w.drops.Load())[projectID]
	if pd == nil {
		pd = w.addProject(projectID)
	}
	if at == 0 {
		at = 1 // 0 means "none"
	}
	for {
		old := pd.first.Load()
		if old != 0 && old <= at {
			break
		}
		if pd.first.CompareAndSwap(old, at) {
			break
		}
	}
	pd.n[(r>>56)%dropStripes].Add(n)
}

// addProject returns the drop counters of projectID, adding them to w.drops.
func (w *Writer) addProject(projectID string) *projectDrops {
	w.dropsMu.Lock()
	defer w.dropsMu.Unlock()
	old := *w.drops.Load()
	if pd := old[projectID]; pd != nil {
		return pd
	}
	m := make(map[string]*projectDrops, len(old)+1)
	for k, v := range old {
		m[k] = v
	}
	pd := new(projectDrops)
	m[strings.Clone(projectID)] = pd
	w.drops.Store(&m)
	return pd
}

// Stats returns the counters. Safe for concurrent use.
func (w *Writer) Stats() Stats {
	buffered := uint64(w.buffered())
	dropped := w.collected.Load()
	for _, pd := range *w.drops.Load() {
		dropped += pd.pending()
	}
	return Stats{
		Recorded:    w.received.Load() + buffered,
		Dropped:     dropped,
		Written:     w.written.Load(),
		Gaps:        w.gaps.Load(),
		WriteErrors: w.writeErrors.Load(),
		Buffered:    buffered,
		Throttled:   w.throttled.Load(),
	}
}

// errClosed answers Flush after Close.
var errClosed = errors.New("decisionlog: writer closed")

// Run writes buffered records in batches (BatchSize records, or whatever is buffered every
// FlushInterval), writes gap markers for dropped records, and prunes records older than
// Retention every PruneInterval. It returns nil when ctx is done or Close is called; what
// is still buffered then is written by Close. Only one Run runs at a time; Run after Close
// returns at once.
func (w *Writer) Run(ctx context.Context) error {
	select {
	case w.sem <- struct{}{}:
	case <-ctx.Done():
		return nil
	case <-w.stop:
		return nil
	}
	defer func() { <-w.sem }()
	if w.closed.Load() {
		return nil
	}

	pruneCtx, cancelPrune := context.WithCancel(ctx)
	var pruneDone sync.WaitGroup
	if w.o.Retention > 0 {
		pruneDone.Go(func() { w.pruneLoop(pruneCtx) })
	}
	defer func() {
		cancelPrune()
		pruneDone.Wait()
	}()

	tick := time.NewTicker(w.o.FlushInterval)
	defer tick.Stop()
	pause := time.NewTimer(time.Hour)
	pause.Stop()
	defer pause.Stop()
	w.sampleAt = w.wall()
	w.sampleN, w.sampleTotal = w.o.SchedWaits()
	w.sampleBusy, w.sampleCPU = w.o.CPUTimes()
	for {
		// During a pause the buffer is not read: what does not fit is dropped and counted.
		var resume <-chan time.Time
		paused := false
		if wait := w.resumeAt.Sub(w.wall()); wait > 0 {
			paused = true
			pause.Reset(wait)
			resume = pause.C
		}
		select {
		case <-ctx.Done():
			return nil
		case <-w.stop:
			return nil
		case reply := <-w.flushReq:
			reply <- w.flushAll(ctx)
		case <-tick.C:
			if !paused {
				w.drain(ctx)
			}
		case <-resume:
			w.drain(ctx)
		}
	}
}

// drain writes what the buffer holds in batches, and the gap markers, until that is written
// or the writer pauses. It writes no more batches than the buffer held when it started, so
// that Run gets back to Close and Flush under a steady flow of records.
func (w *Writer) drain(ctx context.Context) {
	for rounds := w.buffered()/w.o.BatchSize + 1; rounds > 0; rounds-- {
		w.fill()
		empty := len(w.batch) == 0
		w.throttle(w.timedWrite(ctx)) // the batch and the gap markers
		if empty || w.buffered() == 0 || w.resumeAt.After(w.wall()) || ctx.Err() != nil {
			return
		}
	}
}

// timedWrite is writeBatch, returning how long it took (0 when there was nothing to write).
func (w *Writer) timedWrite(ctx context.Context) time.Duration {
	w.collectDrops()
	if len(w.batch) == 0 && len(w.pending) == 0 {
		return 0
	}
	start := w.wall()
	w.writeBatch(ctx)
	return w.wall().Sub(start)
}

// throttle updates the CPU contention estimate and, while goroutines wait for CPUs, pauses
// the writer after a write that took d long enough for writing to take BusyShare of the time.
func (w *Writer) throttle(d time.Duration) {
	if w.o.BusyShare >= 1 {
		return
	}
	now := w.wall()
	if elapsed := now.Sub(w.sampleAt); elapsed >= ContentionWindow {
		n, total := w.o.SchedWaits()
		cpuBusy, cpu := w.o.CPUTimes()
		busy := -1.0 // unknown
		if cpu > w.sampleCPU {
			busy = (cpuBusy - w.sampleBusy) / (cpu - w.sampleCPU)
		}
		if dn := n - w.sampleN; dn >= minWaitSamples || busy >= 0 {
			mean := time.Duration(0)
			if dn > 0 {
				mean = (total - w.sampleTotal) / time.Duration(dn)
			}
			switch {
			case mean >= contendedHigh || busy >= cpuBusyHigh:
				w.contended = true
			case mean < contendedLow && busy < cpuBusyLow:
				w.contended = false
			}
			w.sampleAt, w.sampleN, w.sampleTotal, w.sampleBusy, w.sampleCPU = now, n, total, cpuBusy, cpu
		}
	}
	if w.contended && d > 0 {
		w.resumeAt = now.Add(time.Duration(float64(d) * (1/w.o.BusyShare - 1)))
		w.throttled.Add(1)
	}
}

// add appends one entry taken from the buffer to the batch.
func (w *Writer) add(e *entry) {
	w.batch = append(w.batch, e.unpack())
	w.received.Add(1)
}

// fill moves buffered records into the batch, up to BatchSize. Only the holder of sem
// receives from the shards, so a non-empty shard cannot block it.
func (w *Writer) fill() {
	for _, ch := range w.shards {
		for len(ch) > 0 && len(w.batch) < w.o.BatchSize {
			e := <-ch
			w.add(&e)
		}
	}
}

// writeBatch writes the batch with the pending gap markers in one AppendDecisions call (the
// markers alone when the batch is empty). On failure the batch's records are counted as
// dropped (they become gap markers) and the markers are kept for the next attempt.
func (w *Writer) writeBatch(ctx context.Context) error {
	w.collectDrops()
	if len(w.batch) == 0 && len(w.pending) == 0 {
		return nil
	}
	n := len(w.batch)
	recs := w.batch
	for _, g := range w.pending {
		recs = append(recs, g.rec)
		g.attempted = true
	}
	err := w.store.AppendDecisions(ctx, recs)
	if err != nil {
		w.writeErrors.Add(1)
		if !w.failing {
			w.failing = true
			w.log.LogAttrs(ctx, slog.LevelWarn, "decision log: cannot write records; dropping and counting them",
				slog.Int("records", n), slog.String("error", err.Error()))
		}
		for i := range n {
			r := &w.batch[i]
			w.drop(r.ProjectID, r.At.UnixNano(), 1, uint64(i))
		}
	} else {
		if w.failing {
			w.failing = false
			w.log.LogAttrs(ctx, slog.LevelInfo, "decision log: writing again")
		}
		w.written.Add(uint64(n))
		w.gaps.Add(uint64(len(w.pending)))
		clear(w.pending)
	}
	clear(recs) // drop the references to the records' strings
	w.batch = recs[:0]
	return err
}

// collectDrops turns the projects' drop counts into pending gap markers.
func (w *Writer) collectDrops() {
	for project, pd := range *w.drops.Load() {
		n := pd.take()
		if n == 0 {
			continue
		}
		first := pd.first.Swap(0)
		w.collected.Add(n)
		at := w.o.Now()
		if first != 0 {
			at = time.Unix(0, first)
		}
		g := w.pending[project]
		if g == nil {
			w.pending[project] = &gapMarker{rec: thauth.DecisionRecord{
				ID: newID(at), ProjectID: project, At: at, Gap: int64(n),
			}}
			continue
		}
		g.rec.Gap += int64(n)
		if at.Before(g.rec.At) {
			g.rec.At = at
		}
		if g.attempted {
			// The earlier attempt may have been stored after all (an error after the
			// commit): a new id makes sure the larger count is not skipped as a duplicate
			// (at worst it overstates the gap, never understates it).
			g.rec.ID = newID(g.rec.At)
			g.attempted = false
		}
	}
}

// flushAll writes every buffered record and the gap markers; it returns the first error.
func (w *Writer) flushAll(ctx context.Context) error {
	var first error
	for {
		w.fill()
		if len(w.batch) == 0 {
			break
		}
		if err := w.writeBatch(ctx); err != nil && first == nil {
			first = err
		}
	}
	// The gap markers, including those of batches that just failed.
	if err := w.writeBatch(ctx); err != nil && first == nil {
		first = err
	}
	return first
}

// Flush writes every record recorded before it was called, and the gap markers, and
// returns the first write error. It waits for Run's current write when Run is running.
func (w *Writer) Flush(ctx context.Context) error {
	if w.closed.Load() {
		return errClosed
	}
	reply := make(chan error, 1)
	select {
	case w.flushReq <- reply: // Run is running: it flushes
		select {
		case err := <-reply:
			return err
		case <-ctx.Done():
			return ctx.Err()
		}
	case w.sem <- struct{}{}: // Run is not running: flush here
		defer func() { <-w.sem }()
		return w.flushAll(ctx)
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Close stops Run, writes what is still buffered and the gap markers, and returns the first
// write error, or ctx's error if ctx ends before Run has finished its current write. Records
// handed to Record after Close are dropped and counted. Close is idempotent.
func (w *Writer) Close(ctx context.Context) error {
	w.closed.Store(true)
	w.stopOnce.Do(func() { close(w.stop) })
	select {
	case w.sem <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	}
	defer func() { <-w.sem }()
	err := w.flushAll(ctx)
	// A Record that passed the closed check just before Close may have sent after the
	// flush drained the buffer: count those as dropped rather than lose them silently.
	for _, ch := range w.shards {
		for len(ch) > 0 {
			e := <-ch // only Close receives now: it cannot block
			w.received.Add(1)
			w.drop(e.unpack().ProjectID, e.at, 1, 0)
		}
	}
	return err
}

// pruneLoop runs Prune every PruneInterval until ctx is done.
func (w *Writer) pruneLoop(ctx context.Context) {
	tick := time.NewTicker(w.o.PruneInterval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			if _, err := w.Prune(ctx); err != nil && ctx.Err() == nil {
				w.log.LogAttrs(ctx, slog.LevelWarn, "decision log: cannot prune old records", slog.String("error", err.Error()))
			}
		}
	}
}

// Prune deletes the records older than Retention (by the writer's clock), in batches, and
// returns how many it deleted. It does nothing when records are kept forever. Run calls it
// every PruneInterval; it is safe to call concurrently with Run.
func (w *Writer) Prune(ctx context.Context) (int, error) {
	if w.o.Retention < 0 {
		return 0, nil
	}
	before := w.o.Now().Add(-w.o.Retention)
	total := 0
	for {
		n, err := w.store.PruneDecisions(ctx, before, pruneBatch)
		total += n
		if err != nil {
			return total, err
		}
		if n < pruneBatch {
			return total, nil
		}
		if err := ctx.Err(); err != nil {
			return total, err
		}
	}
}

// newID returns a UUIDv7 (RFC 9562) for time t: the form of decision ids, so that gap
// markers and records given an id here sort among the others by time.
func newID(t time.Time) string {
	var b [36]byte
	return string(putID(b[:], t))
}

// putID writes a UUIDv7 for time t into b (36 bytes) and returns b.
func putID(b []byte, t time.Time) []byte {
	const hexDigits = "0123456789abcdef"
	ms := uint64(t.UnixMilli())
	hi := ms<<16 | 0x7000 | rand.Uint64()&0x0fff
	lo := rand.Uint64()&0x3fffffffffffffff | 0x8000000000000000
	put := func(dst []byte, v uint64) {
		for k := len(dst) - 1; k >= 0; k-- {
			dst[k] = hexDigits[v&0xf]
			v >>= 4
		}
	}
	put(b[0:8], hi>>32)
	b[8] = '-'
	put(b[9:13], hi>>16)
	b[13] = '-'
	put(b[14:18], hi)
	b[18] = '-'
	put(b[19:23], lo>>48)
	b[23] = '-'
	put(b[24:36], lo)
	return b[:36]
}

// newSchedWaits returns a reader of the runtime's scheduling latency histogram: how many
// waits of runnable goroutines it sampled, and their total (by bucket midpoints).
func newSchedWaits() func() (uint64, time.Duration) {
	sample := []metrics.Sample{{Name: "/sched/latencies:seconds"}}
	return func() (uint64, time.Duration) {
		metrics.Read(sample)
		if sample[0].Value.Kind() != metrics.KindFloat64Histogram {
			return 0, 0
		}
		h := sample[0].Value.Float64Histogram()
		var n uint64
		var sum float64
		for i, c := range h.Counts {
			if c == 0 {
				continue
			}
			lo, hi := h.Buckets[i], h.Buckets[i+1]
			if math.IsInf(lo, -1) {
				lo = 0
			}
			if math.IsInf(hi, 1) {
				hi = lo
			}
			n += c
			sum += float64(c) * (lo + hi) / 2
		}
		return n, time.Duration(sum * float64(time.Second))
	}
}
