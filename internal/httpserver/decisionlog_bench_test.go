//go:build unix

package httpserver

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/thauth/thauth/internal/decisionlog"
)

// BenchmarkCheckDecisionLog measures POST /v1/check in process (as BenchmarkCheckHandler,
// without the access log) with the decision log off and on. On, every check is handed to a
// real decisionlog.Writer that writes to the env's real SQLite store in the background, on
// the same CPUs. Target: "on" within 10 % of "off". "on" also reports what became of the
// records while the checks ran — written/op, dropped/op (the writer drops, and counts,
// what it cannot keep up with rather than slow the checks down) — and how many times the
// writer paused to leave the CPUs to the checks.
//
// Both report cpu-ns/op, the CPU time of the whole process (checks, writer, garbage
// collector) per check besides ns/op: it does not move when other processes share the
// machine, and at saturation throughput is GOMAXPROCS / cpu-ns/op.
//
// BenchmarkCheckBatchDecisionLog is the same for POST /v1/check/batch with 100 checks (each
// item is a decision of the log).
//
//	go test -run '^$' -bench 'Check(Batch)?DecisionLog' -benchtime 2s ./internal/httpserver/
func BenchmarkCheckDecisionLog(b *testing.B) {
	benchDecisionLog(b, "/v1/check", benchBody)
}

func BenchmarkCheckBatchDecisionLog(b *testing.B) {
	items := make([]string, 100)
	for i := range items {
		items[i] = []string{`{"feature":"billing","action":"read"}`, `{"feature":"billing","action":"refund","resource":"invoices/42"}`,
			`{"feature":"reports","action":"read"}`, `{"feature":"reports","action":"export"}`}[i%4]
	}
	benchDecisionLog(b, "/v1/check/batch", `{"subject":"user:alice","checks":[`+strings.Join(items, ",")+`]}`)
}

func benchDecisionLog(b *testing.B, path, body string) {
	b.Run("off", func(b *testing.B) {
		e := newEnv(b)
		h := New(Deps{Engine: e.eng, Manage: e.mg, Ping: e.store.Ping})
		b.ResetTimer()
		cpu := processCPU()
		runLogBench(b, h, e.decisions, path, body)
		b.ReportMetric(float64(processCPU()-cpu)/float64(b.N), "cpu-ns/op")
	})
	b.Run("on", func(b *testing.B) {
		e := newEnv(b)
		w := decisionlog.New(e.store, decisionlog.Options{})
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { defer close(done); _ = w.Run(ctx) }()
		h := New(Deps{Engine: e.eng, Manage: e.mg, Ping: e.store.Ping, DecisionLog: w, DecisionLogStore: e.store})
		before := w.Stats()
		b.ResetTimer()
		cpu := processCPU()
		runLogBench(b, h, e.decisions, path, body)
		b.StopTimer()
		b.ReportMetric(float64(processCPU()-cpu)/float64(b.N), "cpu-ns/op")
		s := w.Stats() // what was written while the checks ran (Close writes the rest)
		cancel()
		<-done
		if err := w.Close(context.Background()); err != nil {
			b.Fatal(err)
		}
		n := float64(b.N)
		b.ReportMetric(float64(s.Written-before.Written)/n, "written/op")
		b.ReportMetric(float64(s.Dropped-before.Dropped)/n, "dropped/op")
		b.ReportMetric(float64(s.Throttled-before.Throttled), "pauses")
	})
}

// runLogBench is runInProcess (bench_test.go) for any path and body.
func runLogBench(b *testing.B, h http.Handler, token, path, body string) {
	data := []byte(body)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		r := httptest.NewRequest("POST", path, nil)
		r.Header.Set("Content-Type", "application/json")
		r.Header.Set("Authorization", "Bearer "+token)
		rd := bytes.NewReader(data)
		rc := io.NopCloser(rd)
		w := &discardWriter{h: http.Header{}}
		for pb.Next() {
			rd.Reset(data)
			r.Body = rc
			r.ContentLength = int64(len(data))
			delete(r.Header, "X-Request-Id")
			clear(w.h)
			w.status = 0
			h.ServeHTTP(w, r)
			if w.status != 0 && w.status != 200 {
				b.Fatalf("status %d", w.status)
			}
		}
	})
}

// processCPU returns the CPU time the process has used so far.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
