package engine

import (
	"fmt"
	"runtime"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/thauth/thauth"
	"github.com/thauth/thauth/internal/engine/enginetest"
)

// Benchmarks of the decision path on generated workloads (enginetest.Default: 100 features × 5
// actions, 200 roles, 100k subjects, 1k tenants, 5 assignments and 2 overrides per subject, a
// quarter of grants with patterns), varying the number of subjects and roles. The cost of a
// check must depend on the subject's own grants only, so every row should be about equal.
//
//	go test -run '^$' -bench . -benchtime 200000x ./internal/engine/

// compileStreaming builds a snapshot of w without holding all of w's subjects in memory.
func compileStreaming(tb testing.TB, w enginetest.Workload) *Snapshot {
	tb.Helper()
	cc, err := compileConfig(w.Config())
	if err != nil {
		tb.Fatal(err)
	}
	b := newIndexBuilder()
	w.EachSubject(func(sg *thauth.SubjectGrants) error {
		b.add(sg)
		return nil
	})
	idx, err := b.done()
	if err != nil {
		tb.Fatal(err)
	}
	return &Snapshot{project: w.Project(), revision: 1, cfg: cc, subjects: idx}
}

var (
	snapMu    sync.Mutex
	snapCache = map[enginetest.Workload]*Snapshot{}
)

// workloadSnapshot returns a snapshot of w, compiled once per test binary. Only one large
// snapshot is kept at a time, to bound memory.
func workloadSnapshot(tb testing.TB, w enginetest.Workload) *Snapshot {
	snapMu.Lock()
	defer snapMu.Unlock()
	if s := snapCache[w]; s != nil {
		return s
	}
	clear(snapCache)
	runtime.GC()
	s := compileStreaming(tb, w)
	snapCache[w] = s
	runtime.GC() // no collection left running under the measurements
	return s
}

func sized(subjects, roles int) enginetest.Workload {
	w := enginetest.Default()
	w.Subjects, w.Roles = subjects, roles
	return w
}

var benchSizes = []struct {
	name            string
	subjects, roles int
}{
	{"subjects=1k/roles=10", 1_000, 10},
	{"subjects=1k/roles=200", 1_000, 200},
	{"subjects=100k/roles=10", 100_000, 10},
	{"subjects=100k/roles=200", 100_000, 200},
	{"subjects=100k/roles=10k", 100_000, 10_000},
	{"subjects=1M/roles=200", 1_000_000, 200},
}

var sink thauth.Decision

// cpuMeter reports CPU time per operation (see threadCPU) as the metric cpu-ns/op.
type cpuMeter struct {
	b     *testing.B
	start time.Duration
	ok    bool
}

func startCPU(b *testing.B) *cpuMeter {
	runtime.LockOSThread()
	m := &cpuMeter{b: b}
	m.start, m.ok = threadCPU()
	return m
}

func (m *cpuMeter) stop() {
	end, ok := threadCPU()
	runtime.UnlockOSThread()
	if m.ok && ok && m.b.N > 0 {
		m.b.ReportMetric(float64(end-m.start)/float64(m.b.N), "cpu-ns/op")
	}
}

func BenchmarkCheck(b *testing.B) {
	for _, sz := range benchSizes {
		b.Run(sz.name, func(b *testing.B) {
			w := sized(sz.subjects, sz.roles)
			s := workloadSnapshot(b, w)
			reqs := w.Requests(4096, 7)
			now := w.Now()
			b.ReportAllocs()
			b.ResetTimer()
			cpu := startCPU(b)
			for i := 0; b.Loop(); i++ {
				sink = s.Check(&reqs[i&4095], now)
			}
			cpu.stop()
		})
	}
}

// BenchmarkCheckHot checks a fixed set of 1024 subjects spread over the project: the cost of
// the evaluation itself once their grants are cached, which is what "depends on the subject's
// own grants only" means; BenchmarkCheck draws subjects uniformly from the whole project, so
// its large rows are dominated by cache and TLB misses.
func BenchmarkCheckHot(b *testing.B) {
	for _, sz := range benchSizes {
		b.Run(sz.name, func(b *testing.B) {
			w := sized(sz.subjects, sz.roles)
			s := workloadSnapshot(b, w)
			var reqs []thauth.CheckRequest
			for i := range 1024 {
				reqs = append(reqs, w.SubjectRequests(i*(sz.subjects/1024), 4, uint64(i))...)
			}
			now := w.Now()
			b.ReportAllocs()
			b.ResetTimer()
			cpu := startCPU(b)
			for i := 0; b.Loop(); i++ {
				sink = s.Check(&reqs[i&4095], now)
			}
			cpu.stop()
		})
	}
}

// BenchmarkCheckLatency times every check on its own and reports the median and the 99th
// percentile (minus the cost of reading the clock).
func BenchmarkCheckLatency(b *testing.B) {
	for _, sz := range benchSizes {
		b.Run(sz.name, func(b *testing.B) {
			w := sized(sz.subjects, sz.roles)
			s := workloadSnapshot(b, w)
			reqs := w.Requests(4096, 9)
			now := w.Now()
			var clock []time.Duration
			for range 10000 {
				t0 := time.Now()
				clock = append(clock, time.Since(t0))
			}
			slices.Sort(clock)
			overhead := clock[len(clock)/2]
			lat := make([]time.Duration, 0, 1<<16)
			b.ResetTimer()
			for i := 0; b.Loop(); i++ {
				t0 := time.Now()
				sink = s.Check(&reqs[i&4095], now)
				d := time.Since(t0)
				if len(lat) < cap(lat) {
					lat = append(lat, d)
				}
			}
			slices.Sort(lat)
			b.ReportMetric(float64(lat[len(lat)/2]-overhead), "p50-ns")
			b.ReportMetric(float64(lat[len(lat)*99/100]-overhead), "p99-ns")
		})
	}
}

func BenchmarkCheckParallel(b *testing.B) {
	w := enginetest.Default()
	s := workloadSnapshot(b, w)
	reqs := w.Requests(4096, 11)
	now := w.Now()
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		var d thauth.Decision
		for i := 0; pb.Next(); i++ {
			d = s.Check(&reqs[i&4095], now)
		}
		_ = d
	})
}

// BenchmarkBatch100 is a batch request: 100 checks of one subject.
func BenchmarkBatch100(b *testing.B) {
	w := enginetest.Default()
	s := workloadSnapshot(b, w)
	batches := make([][]thauth.CheckRequest, 64)
	for i := range batches {
		batches[i] = w.SubjectRequests(i*1013%w.Subjects, 100, uint64(i))
	}
	now := w.Now()
	b.ReportAllocs()
	cpu := startCPU(b)
	for i := 0; b.Loop(); i++ {
		batch := batches[i&63]
		for j := range batch {
			sink = s.Check(&batch[j], now)
		}
	}
	cpu.stop()
}

func BenchmarkCheckExplain(b *testing.B) {
	w := enginetest.Default()
	s := workloadSnapshot(b, w)
	reqs := w.Requests(4096, 13)
	for i := range reqs {
		reqs[i].Explain = true
	}
	now := w.Now()
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		sink = s.Check(&reqs[i&4095], now)
	}
}

// BenchmarkSubjectUpdate replaces one subject of a large snapshot the way Sync does (copying
// only the touched nodes) and reports the bytes copied per update.
func BenchmarkSubjectUpdate(b *testing.B) {
	for _, n := range []int{1_000, 100_000, 1_000_000} {
		b.Run(fmt.Sprintf("subjects=%d", n), func(b *testing.B) {
			w := sized(n, 200)
			s := workloadSnapshot(b, w)
			updates := make([]subjectC, 256)
			for i := range updates {
				updates[i] = compileSubject(w.Subject(i*7919%n), nil)
			}
			b.ReportAllocs()
			idx := s.subjects
			for i := 0; b.Loop(); i++ {
				ed := newEditor(idx)
				ed.put(updates[i&255])
				idx = ed.done()
			}
		})
	}
}

// BenchmarkMemoryPerGrant compiles 1M grants (about 143k subjects of 7 grants) and reports
// the live heap the snapshot holds per grant.
func BenchmarkMemoryPerGrant(b *testing.B) {
	w := enginetest.Default()
	w.Subjects = 1_000_000 / (w.AssignmentsPerSubject + w.OverridesPerSubject)
	for b.Loop() {
		per := heapPerGrant(b, w)
		b.ReportMetric(per, "bytes/grant")
	}
}

// heapPerGrant measures the heap held by a snapshot of w, per grant. The input is generated
// first and kept alive, so only what Compile retains is counted.
func heapPerGrant(tb testing.TB, w enginetest.Workload) float64 {
	snapMu.Lock()
	clear(snapCache)
	snapMu.Unlock()
	subjects := w.AllSubjects()
	cfg := w.Config()
	var before, after runtime.MemStats
	runtime.GC()
	runtime.GC()
	runtime.ReadMemStats(&before)
	s, err := Compile(w.Project(), cfg, subjects)
	if err != nil {
		tb.Fatal(err)
	}
	runtime.GC()
	runtime.GC()
	runtime.ReadMemStats(&after)
	runtime.KeepAlive(subjects)
	runtime.KeepAlive(s)
	return float64(int64(after.HeapAlloc)-int64(before.HeapAlloc)) / float64(w.Grants())
}

// TestMemoryPerGrant holds the snapshot to the memory budget of 300 bytes per grant (on 200k
// grants, to keep the test fast).
func TestMemoryPerGrant(t *testing.T) {
	if testing.Short() {
		t.Skip("slow")
	}
	w := enginetest.Default()
	w.Subjects = 200_000 / (w.AssignmentsPerSubject + w.OverridesPerSubject)
	per := heapPerGrant(t, w)
	t.Logf("%.1f bytes per grant", per)
	if per > 300 {
		t.Fatalf("snapshot holds %.1f bytes per grant, budget 300", per)
	}
}

func BenchmarkAuthenticate(b *testing.B) {
	e := New(nil, Options{})
	token, lookup, hash := thauth.NewToken()
	e.setKeys(e.projectFor("p"), "o", []thauth.APIKey{{ID: "k", ProjectID: "p", LookupID: lookup, Hash: hash, Scopes: []string{thauth.ScopeDecisionsRead}}})
	b.ReportAllocs()
	for b.Loop() {
		if _, ok := e.Authenticate(token); !ok {
			b.Fatal("refused")
		}
	}
}
