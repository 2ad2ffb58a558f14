package decisionlog

import (
	"testing"
	"time"
)

// BenchmarkRecord measures Record from parallel goroutines, the cost the decision path
// pays: "accept" with room in the buffer (copy and send; a goroutine empties the buffer),
// "full" with a full buffer (count the drop).
//
//	go test -run '^$' -bench Record -benchmem ./internal/decisionlog/
func BenchmarkRecord(b *testing.B) {
	r := rec("0197a000-0000-7000-8000-0000000000a1", "01970c2e-8a3b-7c1d-9e2f-3a4b5c6d7e8f", time.Now(), "user:alice", true)
	b.Run("accept", func(b *testing.B) {
		w := New(nil, Options{})
		stop := make(chan struct{})
		done := make(chan struct{})
		go func() { // a consumer that only empties the buffer, every millisecond
			defer close(done)
			for {
				select {
				case <-stop:
					return
				case <-time.After(time.Millisecond):
				}
				for _, ch := range w.shards {
					for len(ch) > 0 {
						<-ch
					}
				}
			}
		}()
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				w.Record(r)
			}
		})
		close(stop)
		<-done
		b.ReportMetric(float64(w.Stats().Dropped)/float64(b.N), "dropped/op")
	})
	b.Run("full", func(b *testing.B) {
		w := New(nil, Options{BufferSize: 1, Shards: 1})
		w.Record(r)
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				w.Record(r)
			}
		})
	})
}
