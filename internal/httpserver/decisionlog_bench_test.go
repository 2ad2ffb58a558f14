package httpserver

import (
	"context"
	"testing"

	"github.com/thauth/thauth/internal/decisionlog"
)

// BenchmarkCheckDecisionLog measures POST /v1/check in process (as BenchmarkCheckHandler,
// without the access log) with the decision log off and on. On, every check is handed to a
// real decisionlog.Writer that writes to the env's real SQLite store in the background, on
// the same CPUs. Target: "on" within 10 % of "off" in ns/op. "on" also reports what became
// of the records while the checks ran — written/op, dropped/op (the writer drops, and
// counts, what it cannot keep up with rather than slow the checks down) — and how many
// times the writer paused to leave the CPUs to the checks.
//
//	go test -run '^$' -bench CheckDecisionLog -benchtime 2s ./internal/httpserver/
func BenchmarkCheckDecisionLog(b *testing.B) {
	b.Run("off", func(b *testing.B) {
		e := newEnv(b)
		h := New(Deps{Engine: e.eng, Manage: e.mg, Ping: e.store.Ping})
		b.ResetTimer()
		runInProcess(b, h, e.decisions)
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
		runInProcess(b, h, e.decisions)
		b.StopTimer()
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
