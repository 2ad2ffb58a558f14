package ratelimit

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// fakeClock is an injected clock that moves only when told to.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newFakeClock() *fakeClock {
	return &fakeClock{t: time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)}
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

func TestLocalExactThresholds(t *testing.T) {
	tests := []struct {
		name string
		lim  Limit
	}{
		{"100 per second", PerSecond(100)},
		{"5 per minute", PerMinute(5)},
		{"10 per hour burst 3", Limit{Rate: 10, Period: time.Hour, Burst: 3}},
		{"10 per second burst 2", Limit{Rate: 10, Period: time.Second, Burst: 2}},
		{"3 per second (interval not a whole ns)", PerSecond(3)},
		{"1 per millisecond burst 7", Limit{Rate: 1, Period: time.Millisecond, Burst: 7}},
		{"burst defaults to rate", Limit{Rate: 4, Period: time.Second}},
	}
	ctx := context.Background()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clock := newFakeClock()
			l := NewLocal(Options{Now: clock.Now})
			lim := tt.lim.normalize()
			burst := lim.Burst
			interval := lim.Period / time.Duration(lim.Rate)

			// A full bucket: Burst requests at one instant, each leaving one fewer.
			for i := 1; i <= burst; i++ {
				got := l.Allow(ctx, "k", tt.lim)
				want := Result{Allowed: true, Limit: lim, Remaining: burst - i, ResetAfter: time.Duration(i) * interval}
				if diff := cmp.Diff(want, got); diff != "" {
					t.Fatalf("request %d of %d (-want +got):\n%s", i, burst, diff)
				}
			}
			// The next one is denied, and can retry after exactly one interval.
			denied := Result{Limit: lim, RetryAfter: interval, ResetAfter: time.Duration(burst) * interval}
			if diff := cmp.Diff(denied, l.Allow(ctx, "k", tt.lim)); diff != "" {
				t.Fatalf("request %d (-want +got):\n%s", burst+1, diff)
			}
			// Denials consume nothing: asking again changes nothing.
			if diff := cmp.Diff(denied, l.Allow(ctx, "k", tt.lim)); diff != "" {
				t.Fatalf("repeated denial (-want +got):\n%s", diff)
			}
			// One nanosecond before the interval: still denied.
			clock.Advance(interval - 1)
			got := l.Allow(ctx, "k", tt.lim)
			if got.Allowed || got.RetryAfter != 1 {
				t.Fatalf("1ns early: got %+v, want denied with RetryAfter 1ns", got)
			}
			// Exactly one interval later: one request, and none left.
			clock.Advance(1)
			got = l.Allow(ctx, "k", tt.lim)
			want := Result{Allowed: true, Limit: lim, Remaining: 0, ResetAfter: time.Duration(burst) * interval}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Fatalf("after one interval (-want +got):\n%s", diff)
			}
			if got := l.Allow(ctx, "k", tt.lim); got.Allowed || got.RetryAfter != interval {
				t.Fatalf("right after the refilled request: got %+v, want denied with RetryAfter %v", got, interval)
			}
			// After ResetAfter the bucket is full again.
			clock.Advance(time.Duration(burst) * interval)
			got = l.Allow(ctx, "k", tt.lim)
			if !got.Allowed || got.Remaining != burst-1 {
				t.Fatalf("after the reset: got %+v, want allowed with Remaining %d", got, burst-1)
			}
		})
	}
}

func TestLocalSustainedRate(t *testing.T) {
	// Over a long run at one request every interval, every request is allowed; at twice that
	// pace, the burst and then one request per interval are.
	clock := newFakeClock()
	l := NewLocal(Options{Now: clock.Now})
	lim := Limit{Rate: 10, Period: time.Second, Burst: 5}
	ctx := context.Background()
	for i := range 1000 {
		if r := l.Allow(ctx, "steady", lim); !r.Allowed {
			t.Fatalf("steady request %d denied: %+v", i, r)
		}
		clock.Advance(100 * time.Millisecond)
	}
	allowed := 0
	for range 1000 {
		if l.Allow(ctx, "fast", lim).Allowed {
			allowed++
		}
		clock.Advance(50 * time.Millisecond)
	}
	// The requests span 999 × 50ms = 49.95s, in which 499 whole intervals of 100ms refill.
	if want := 5 + 499; allowed != want {
		t.Fatalf("at twice the rate: %d of 1000 allowed, want %d (the burst, plus one per interval)", allowed, want)
	}
}

func TestLocalKeysIndependent(t *testing.T) {
	clock := newFakeClock()
	l := NewLocal(Options{Now: clock.Now})
	lim := PerMinute(3)
	ctx := context.Background()
	for range 3 {
		l.Allow(ctx, "ip:203.0.113.7", lim)
	}
	if r := l.Allow(ctx, "ip:203.0.113.7", lim); r.Allowed {
		t.Fatalf("exhausted key allowed: %+v", r)
	}
	for _, key := range []string{"ip:203.0.113.8", "key:k_1", ""} {
		if r := l.Allow(ctx, key, lim); !r.Allowed || r.Remaining != 2 {
			t.Errorf("key %q after another key was exhausted: %+v, want a full bucket", key, r)
		}
	}
}

func TestLocalZeroLimitIsUnlimited(t *testing.T) {
	l := NewLocal(Options{Now: newFakeClock().Now})
	for i := range 100 {
		if r := l.Allow(context.Background(), "k", Limit{}); !r.Allowed {
			t.Fatalf("request %d denied under the zero limit", i)
		}
	}
	if n := l.Len(); n != 0 {
		t.Fatalf("the zero limit stored %d keys, want 0", n)
	}
}

func TestLimitValidate(t *testing.T) {
	tests := []struct {
		lim Limit
		ok  bool
	}{
		{Limit{}, true},
		{PerSecond(100), true},
		{Limit{Rate: 5, Period: time.Minute, Burst: 10}, true},
		{Limit{Rate: 5, Period: time.Minute}, true},
		{Limit{Rate: -1, Period: time.Second}, false},
		{Limit{Rate: 1, Period: 0, Burst: 1}, false},
		{Limit{Rate: 1, Period: time.Second, Burst: -1}, false},
		{Limit{Rate: 2, Period: time.Nanosecond}, false},
		{Limit{Rate: 1, Period: 24 * time.Hour, Burst: 1000}, false},
	}
	for _, tt := range tests {
		if err := tt.lim.Validate(); (err == nil) != tt.ok {
			t.Errorf("%+v.Validate() = %v, want ok=%v", tt.lim, err, tt.ok)
		}
	}
}

func TestLocalEvictionBounded(t *testing.T) {
	ctx := context.Background()

	t.Run("cap on keys", func(t *testing.T) {
		clock := newFakeClock()
		l := NewLocal(Options{Now: clock.Now, MaxKeys: 64, Shards: 4})
		for i := range 10_000 {
			l.Allow(ctx, fmt.Sprintf("ip:%d", i), PerHour(10)) // never idle during the test
			if n := l.Len(); n > 64 {
				t.Fatalf("after %d keys the limiter holds %d, want at most 64", i+1, n)
			}
		}
	})

	t.Run("least recently used goes first", func(t *testing.T) {
		clock := newFakeClock()
		l := NewLocal(Options{Now: clock.Now, MaxKeys: 3, Shards: 1})
		lim := PerHour(1)
		for _, k := range []string{"a", "b", "c"} {
			l.Allow(ctx, k, lim)
		}
		l.Allow(ctx, "a", lim) // denied, but "a" is now the most recently used
		l.Allow(ctx, "d", lim) // full: forgets "b"
		if r := l.Allow(ctx, "a", lim); r.Allowed {
			t.Errorf(`"a" was forgotten; want "b" (least recently used) to go`)
		}
		if r := l.Allow(ctx, "b", lim); !r.Allowed {
			t.Errorf(`"b" was remembered after eviction: %+v`, r)
		}
	})

	t.Run("idle keys dropped by Allow", func(t *testing.T) {
		clock := newFakeClock()
		l := NewLocal(Options{Now: clock.Now, MaxKeys: 1000, Shards: 1})
		for i := range 100 {
			l.Allow(ctx, fmt.Sprintf("ip:%d", i), PerSecond(1))
		}
		if n := l.Len(); n != 100 {
			t.Fatalf("Len = %d, want 100", n)
		}
		clock.Advance(time.Second) // every bucket is full again
		for range 60 {
			l.Allow(ctx, "busy", PerSecond(1000))
		}
		if n := l.Len(); n != 1 {
			t.Fatalf("after the idle keys' buckets refilled, Len = %d, want 1", n)
		}
	})

	t.Run("Sweep drops idle keys only", func(t *testing.T) {
		clock := newFakeClock()
		l := NewLocal(Options{Now: clock.Now})
		for i := range 500 {
			l.Allow(ctx, fmt.Sprintf("short:%d", i), PerSecond(1))
			l.Allow(ctx, fmt.Sprintf("long:%d", i), PerHour(1))
		}
		clock.Advance(time.Second)
		if n := l.Sweep(); n != 500 {
			t.Fatalf("Sweep dropped %d keys, want 500", n)
		}
		if n := l.Len(); n != 500 {
			t.Fatalf("Len after Sweep = %d, want 500", n)
		}
		// Dropping idle keys changed nothing: a swept key has a full bucket, a kept one not.
		if r := l.Allow(ctx, "short:7", PerSecond(1)); !r.Allowed {
			t.Errorf("swept key denied: %+v", r)
		}
		if r := l.Allow(ctx, "long:7", PerHour(1)); r.Allowed {
			t.Errorf("kept key allowed: %+v", r)
		}
	})
}

func TestLocalConcurrent(t *testing.T) {
	// With the clock frozen nothing refills, so however the goroutines interleave exactly
	// Burst requests per key are allowed.
	clock := newFakeClock()
	l := NewLocal(Options{Now: clock.Now, Shards: 4})
	lim := Limit{Rate: 1, Period: time.Hour, Burst: 100}
	const workers, perWorker, keys = 8, 250, 5
	var allowed [keys]atomic.Int64
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := range perWorker {
				k := (w + i) % keys
				if l.Allow(context.Background(), fmt.Sprintf("k%d", k), lim).Allowed {
					allowed[k].Add(1)
				}
				if i%50 == 0 {
					l.Sweep()
					l.Len()
				}
			}
		})
	}
	wg.Wait()
	for k := range keys {
		if got := allowed[k].Load(); got != 100 {
			t.Errorf("key k%d: %d requests allowed, want exactly the burst, 100", k, got)
		}
	}
}

// BenchmarkLocalAllow measures the decision path: 4096 keys that stay in memory (a limit that
// never lets a bucket refill during the run), spread over the shards, from parallel goroutines.
func BenchmarkLocalAllow(b *testing.B) {
	l := NewLocal(Options{})
	lim := Limit{Rate: 1, Period: time.Hour, Burst: 1000}
	keys := make([]string, 4096)
	for i := range keys {
		keys[i] = fmt.Sprintf("key:%08x", i*2654435761)
	}
	ctx := context.Background()
	var seq atomic.Uint64
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		i := seq.Add(1) * 7919
		for pb.Next() {
			l.Allow(ctx, keys[i%uint64(len(keys))], lim)
			i++
		}
	})
}

// BenchmarkLocalAllowNewKeys measures the worst case for memory churn: every call is for a key
// whose state was dropped (here because its bucket refilled), so it is inserted again.
func BenchmarkLocalAllowNewKeys(b *testing.B) {
	l := NewLocal(Options{})
	lim := Limit{Rate: 1_000_000_000, Period: time.Second, Burst: 1} // refills within 1ns
	keys := make([]string, 4096)
	for i := range keys {
		keys[i] = fmt.Sprintf("ip:%08x", i*2654435761)
	}
	ctx := context.Background()
	var seq atomic.Uint64
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		i := seq.Add(1) * 7919
		for pb.Next() {
			l.Allow(ctx, keys[i%uint64(len(keys))], lim)
			i++
		}
	})
}

// BenchmarkLocalAllowOneKey measures the most contended case: every goroutine on one key.
func BenchmarkLocalAllowOneKey(b *testing.B) {
	l := NewLocal(Options{})
	lim := Limit{Rate: 1, Period: time.Hour, Burst: 1000}
	ctx := context.Background()
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			l.Allow(ctx, "key:hot", lim)
		}
	})
}
