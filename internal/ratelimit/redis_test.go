package ratelimit

import (
	"context"
	"errors"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/redis/go-redis/v9"
)

// patient is for the tests about sharing and recovery, whose exact counts a spurious timeout
// on a loaded machine would upset; TestRedisTimeoutFallsBack tests the timeout itself.
var patient = Options{Timeout: 10 * time.Second}

func newRedisLimiter(t testing.TB, url string, o Options) *Redis {
	t.Helper()
	r, err := NewRedis(url, o)
	if err != nil {
		t.Fatalf("NewRedis: %v", err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

// rawClient is a plain client, to look at what the limiter wrote.
func rawClient(t testing.TB, url string) *redis.Client {
	t.Helper()
	o, err := redis.ParseURL(url)
	if err != nil {
		t.Fatal(err)
	}
	c := redis.NewClient(o)
	t.Cleanup(func() { c.Close() })
	return c
}

func TestRedisSharedLimitAcrossNodes(t *testing.T) {
	srv := startRedis(t, "s3cr3t-pw")
	ctx := context.Background()
	// Two limiters on one Redis stand for two nodes of a deployment.
	nodes := []*Redis{newRedisLimiter(t, srv.URL(), patient), newRedisLimiter(t, srv.URL(), patient)}
	lim := Limit{Rate: 10, Period: time.Hour, Burst: 10} // one refill every 6 minutes: none during the test

	allowed := 0
	for i := range 40 {
		r := nodes[i%2].Allow(ctx, "key:shared", lim)
		if r.Allowed {
			allowed++
			if r.Remaining != 10-allowed {
				t.Errorf("request %d: Remaining %d, want %d", i, r.Remaining, 10-allowed)
			}
		} else if r.RetryAfter <= 0 || r.RetryAfter > 6*time.Minute {
			t.Errorf("request %d denied with RetryAfter %v, want in (0, 6m]", i, r.RetryAfter)
		}
	}
	if allowed != 10 {
		t.Fatalf("the two nodes allowed %d requests together, want exactly the burst, 10", allowed)
	}
	for i, n := range nodes {
		if s := n.Stats(); s.RedisErrors != 0 || s.Fallbacks != 0 || s.RedisCalls != 20 {
			t.Errorf("node %d stats = %+v, want 20 Redis calls and no errors or fallbacks", i, s)
		}
	}

	// The state is in Redis under thauth's prefix, with an expiry.
	rdb := rawClient(t, srv.URL())
	ttl, err := rdb.TTL(ctx, KeyPrefix+"key:shared").Result()
	if err != nil || ttl <= 0 {
		t.Errorf("TTL of %q = %v, %v; want a positive expiry", KeyPrefix+"key:shared", ttl, err)
	}
	if n, _ := rdb.Exists(ctx, "rate:key:shared").Result(); n != 0 {
		t.Errorf("redis_rate's default key prefix was used")
	}
}

func TestRedisConcurrentNodes(t *testing.T) {
	srv := startRedis(t, "")
	nodes := []*Redis{newRedisLimiter(t, srv.URL(), patient), newRedisLimiter(t, srv.URL(), patient)}
	lim := Limit{Rate: 1, Period: time.Hour, Burst: 25}
	var allowed atomic.Int64
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Go(func() {
			for range 20 {
				if nodes[w%2].Allow(context.Background(), "ip:198.51.100.1", lim).Allowed {
					allowed.Add(1)
				}
			}
		})
	}
	wg.Wait()
	if got := allowed.Load(); got != 25 {
		t.Fatalf("160 concurrent requests from two nodes: %d allowed, want exactly the burst, 25", got)
	}
	for i, n := range nodes {
		if s := n.Stats(); s.RedisErrors != 0 {
			t.Errorf("node %d: %+v", i, s)
		}
	}
}

func TestRedisMatchesLocal(t *testing.T) {
	// The same sequence of requests gets the same answers, and the first the same headers, from
	// Redis and from Local.
	srv := startRedis(t, "")
	rl := newRedisLimiter(t, srv.URL(), patient)
	local := NewLocal(Options{Now: newFakeClock().Now})
	ctx := context.Background()
	for _, lim := range []Limit{PerHour(3), {Rate: 10, Period: time.Minute, Burst: 4}, PerMinute(1)} {
		key := "match:" + lim.String()
		for i := range lim.normalize().Burst + 2 {
			fromRedis, fromLocal := rl.Allow(ctx, key, lim), local.Allow(ctx, key, lim)
			if fromRedis.Allowed != fromLocal.Allowed || fromRedis.Remaining != fromLocal.Remaining {
				t.Errorf("%v request %d: Redis %+v, Local %+v", lim, i, fromRedis, fromLocal)
			}
			if i == 0 {
				if diff := cmp.Diff(fromLocal, fromRedis); diff != "" {
					t.Errorf("%v first request (-local +redis):\n%s", lim, diff)
				}
				hr, hl := http.Header{}, http.Header{}
				SetHeaders(hr, "p", fromRedis)
				SetHeaders(hl, "p", fromLocal)
				if diff := cmp.Diff(hl, hr); diff != "" {
					t.Errorf("%v first request headers (-local +redis):\n%s", lim, diff)
				}
			}
		}
	}
}

func TestRedisFallbackAndRecovery(t *testing.T) {
	srv := startRedis(t, "")
	clock := newFakeClock() // times the backoff; Redis decides with its own clock
	var fallbackErrs []error
	recovered := 0
	rl := newRedisLimiter(t, srv.URL(), Options{
		Now:        clock.Now,
		Timeout:    patient.Timeout,
		Backoff:    time.Second,
		OnFallback: func(err error) { fallbackErrs = append(fallbackErrs, err) },
		OnRecover:  func() { recovered++ },
	})
	ctx := context.Background()
	lim := PerHour(100)
	wantStats := func(step string, want RedisStats) {
		t.Helper()
		if got := rl.Stats(); got != want {
			t.Fatalf("%s: stats %+v, want %+v", step, got, want)
		}
	}

	if r := rl.Allow(ctx, "k", lim); !r.Allowed || r.Remaining != 99 {
		t.Fatalf("with Redis up: %+v", r)
	}
	wantStats("Redis up", RedisStats{RedisCalls: 1})

	srv.kill()
	start := time.Now()
	r := rl.Allow(ctx, "k", lim)
	t.Logf("the call that found Redis gone took %v", time.Since(start))
	if !r.Allowed || r.Remaining != 99 { // the local limiter has its own, fresh, bucket
		t.Fatalf("after Redis died: %+v, want the local limiter's answer", r)
	}
	wantStats("Redis killed", RedisStats{RedisCalls: 2, RedisErrors: 1, Fallbacks: 1})
	if len(fallbackErrs) != 1 || fallbackErrs[0] == nil {
		t.Fatalf("OnFallback calls: %v, want one error", fallbackErrs)
	}

	// During the backoff Redis is not even tried.
	for range 5 {
		rl.Allow(ctx, "k", lim)
	}
	wantStats("during the backoff", RedisStats{RedisCalls: 2, RedisErrors: 1, Fallbacks: 6})

	srv.restart()
	rl.Allow(ctx, "k", lim)
	wantStats("Redis back, backoff not over", RedisStats{RedisCalls: 2, RedisErrors: 1, Fallbacks: 7})

	clock.Advance(time.Second)
	if r := rl.Allow(ctx, "k", lim); !r.Allowed || r.Remaining != 99 { // the restarted Redis is empty
		t.Fatalf("after the backoff: %+v", r)
	}
	wantStats("after the backoff", RedisStats{RedisCalls: 3, RedisErrors: 1, Fallbacks: 7})
	if recovered != 1 {
		t.Errorf("OnRecover called %d times, want 1", recovered)
	}
	if n, err := rawClient(t, srv.URL()).Exists(ctx, KeyPrefix+"k").Result(); err != nil || n != 1 {
		t.Errorf("the key is not in the restarted Redis: %v, %v", n, err)
	}
	rl.Allow(ctx, "k", lim)
	wantStats("Redis in use again", RedisStats{RedisCalls: 4, RedisErrors: 1, Fallbacks: 7})
	if len(fallbackErrs) != 1 {
		t.Errorf("OnFallback called %d times, want 1", len(fallbackErrs))
	}
}

func TestRedisTimeoutFallsBack(t *testing.T) {
	// A server that accepts connections and never answers: the call must give up at the
	// timeout and answer locally, and during the backoff not even connect.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var accepted atomic.Int32
	var conns sync.WaitGroup
	done := make(chan struct{})
	t.Cleanup(func() { close(done); ln.Close(); conns.Wait() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			accepted.Add(1)
			conns.Go(func() { <-done; c.Close() })
		}
	}()

	clock := newFakeClock()
	var fallbackErr error
	rl := newRedisLimiter(t, "redis://"+ln.Addr().String(), Options{
		Now:        clock.Now,
		Timeout:    50 * time.Millisecond,
		OnFallback: func(err error) { fallbackErr = err },
	})
	ctx := context.Background()
	start := time.Now()
	r := rl.Allow(ctx, "k", PerSecond(10))
	t.Logf("the call to the silent server took %v (timeout 50ms)", time.Since(start))
	if !r.Allowed || r.Remaining != 9 {
		t.Fatalf("got %+v, want the local limiter's answer", r)
	}
	var nerr net.Error
	if !errors.Is(fallbackErr, context.DeadlineExceeded) && !(errors.As(fallbackErr, &nerr) && nerr.Timeout()) {
		t.Fatalf("OnFallback got %v, want a timeout", fallbackErr)
	}
	if s := rl.Stats(); s != (RedisStats{RedisCalls: 1, RedisErrors: 1, Fallbacks: 1}) {
		t.Fatalf("stats %+v", s)
	}

	before := accepted.Load()
	for range 20 {
		rl.Allow(ctx, "k", PerSecond(10))
	}
	if s := rl.Stats(); s.RedisCalls != 1 || s.Fallbacks != 21 {
		t.Fatalf("during the backoff: stats %+v, want no new Redis call and 21 fallbacks", s)
	}
	if after := accepted.Load(); after != before {
		t.Fatalf("the limiter connected %d more times during the backoff", after-before)
	}

	// Once the backoff is over, exactly one call probes Redis again.
	clock.Advance(defaultBackoff)
	rl.Allow(ctx, "k", PerSecond(10))
	rl.Allow(ctx, "k", PerSecond(10))
	if s := rl.Stats(); s != (RedisStats{RedisCalls: 2, RedisErrors: 2, Fallbacks: 23}) {
		t.Fatalf("after the backoff: stats %+v, want one more Redis call, which failed", s)
	}
}

func TestRedisCallerCancellationIsNotARedisError(t *testing.T) {
	srv := startRedis(t, "")
	rl := newRedisLimiter(t, srv.URL(), patient)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if r := rl.Allow(ctx, "k", PerSecond(1)); !r.Allowed {
		t.Fatalf("got %+v, want the local answer", r)
	}
	if s := rl.Stats(); s.RedisErrors != 0 || s.Fallbacks != 1 {
		t.Fatalf("stats %+v, want a fallback but no Redis error", s)
	}
	if r := rl.Allow(context.Background(), "k", PerSecond(1)); !r.Allowed {
		t.Fatalf("got %+v", r)
	}
	if s := rl.Stats(); s.RedisCalls != 2 || s.Fallbacks != 1 {
		t.Fatalf("stats %+v, want Redis used again at once", s)
	}
}

func TestNewRedisNeverShowsPassword(t *testing.T) {
	const pw = "hunter2-very-secret"
	bad := []string{
		"redis://:" + pw + "@127.0.0.1:notaport/0",
		"http://:" + pw + "@127.0.0.1:6379/0",
		"redis://user:" + pw + "@127.0.0.1:6379/notadb",
		"redis://user:" + pw + "@127.0.0.1:6379/0?dial_timeout=" + pw,
		"redis://:" + pw + "@[::1/0",
		":" + pw + "@",
	}
	for _, u := range bad {
		_, err := NewRedis(u, Options{})
		if err == nil {
			t.Errorf("NewRedis accepted a bad URL")
			continue
		}
		if strings.Contains(err.Error(), pw) {
			t.Errorf("error shows the password: %v", err)
		}
	}

	// A good URL whose server is not there: no error at construction, and errors from the
	// connection attempt do not show the password either.
	port, err := freePort()
	if err != nil {
		t.Fatal(err)
	}
	var fallbackErr error
	rl := newRedisLimiter(t, "redis://:"+pw+"@127.0.0.1:"+itoa(port)+"/0", Options{OnFallback: func(err error) { fallbackErr = err }})
	if err := rl.Ping(context.Background()); err == nil || strings.Contains(err.Error(), pw) {
		t.Errorf("Ping to a closed port: %v", err)
	}
	rl.Allow(context.Background(), "k", PerSecond(1))
	if fallbackErr == nil || strings.Contains(fallbackErr.Error(), pw) {
		t.Errorf("OnFallback: %v", fallbackErr)
	}
}

func TestRedisWrongPassword(t *testing.T) {
	srv := startRedis(t, "right-password")
	var fallbackErr error
	url := strings.Replace(srv.URL(), "right-password", "wrong-password", 1)
	rl := newRedisLimiter(t, url, Options{Timeout: patient.Timeout, OnFallback: func(err error) { fallbackErr = err }})
	if r := rl.Allow(context.Background(), "k", PerSecond(1)); !r.Allowed {
		t.Fatalf("got %+v", r)
	}
	if fallbackErr == nil || strings.Contains(fallbackErr.Error(), "wrong-password") {
		t.Fatalf("OnFallback: %v", fallbackErr)
	}
	t.Logf("wrong password reported as: %v", fallbackErr)
}

func itoa(n int) string { return sfInt(int64(n)) }

func BenchmarkRedisAllow(b *testing.B) {
	if _, ok := os.LookupEnv("THAUTH_BENCH_REDIS"); !ok {
		b.Skip("set THAUTH_BENCH_REDIS=1 to benchmark against a local redis-server")
	}
	srv := startRedis(b, "")
	rl := newRedisLimiter(b, srv.URL(), Options{OnFallback: func(err error) { b.Logf("fallback: %v", err) }})
	ctx := context.Background()
	lim := PerSecond(1_000_000_000)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			rl.Allow(ctx, "bench", lim)
		}
	})
	if s := rl.Stats(); s.RedisErrors != 0 {
		b.Logf("stats: %+v", s)
	}
}
