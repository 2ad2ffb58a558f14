package httpserver

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/thauth/thauth"
	"github.com/thauth/thauth/internal/ratelimit"
)

// testRedis is a throwaway redis-server on a free loopback port, without persistence, in a
// temporary directory, stopped when the test ends (the pattern of internal/ratelimit's
// tests). Without redis-server the test is skipped, unless THAUTH_REQUIRE_REDIS is set.
type testRedis struct {
	tb     testing.TB
	bin    string
	dir    string
	port   int
	cmd    *exec.Cmd
	exited chan error
}

func startTestRedis(tb testing.TB) *testRedis {
	tb.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		if _, serr := os.Stat("/usr/bin/redis-server"); serr == nil {
			bin, err = "/usr/bin/redis-server", nil
		}
	}
	if err != nil {
		if _, required := os.LookupEnv("THAUTH_REQUIRE_REDIS"); required {
			tb.Fatal("redis-server not found and THAUTH_REQUIRE_REDIS is set; install it with scripts/redis.sh ensure")
		}
		tb.Skip("redis-server not found (scripts/redis.sh ensure installs it; THAUTH_REQUIRE_REDIS=1 makes this a failure)")
	}
	s := &testRedis{tb: tb, bin: bin, dir: tb.TempDir()}
	for range 5 { // another process may take the free port before redis-server binds it
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			tb.Fatal(err)
		}
		s.port = ln.Addr().(*net.TCPAddr).Port
		ln.Close()
		if err = s.start(); err == nil {
			tb.Cleanup(s.kill)
			return s
		}
		tb.Logf("starting redis-server: %v", err)
	}
	tb.Fatal("could not start redis-server")
	return nil
}

func (s *testRedis) URL() string { return fmt.Sprintf("redis://127.0.0.1:%d/0", s.port) }

func (s *testRedis) start() error {
	cmd := exec.Command(s.bin, "--port", strconv.Itoa(s.port), "--bind", "127.0.0.1",
		"--save", "", "--appendonly", "no", "--dir", s.dir,
		"--logfile", filepath.Join(s.dir, "redis.log"), "--daemonize", "no")
	if err := cmd.Start(); err != nil {
		return err
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	deadline := time.Now().Add(15 * time.Second) // a bound on start-up, not an assertion
	for {
		select {
		case err := <-exited:
			return fmt.Errorf("redis-server exited: %v", err)
		default:
		}
		err := s.ping()
		if err == nil {
			s.cmd, s.exited = cmd, exited
			return nil
		}
		if time.Now().After(deadline) {
			_ = cmd.Process.Kill()
			<-exited
			return fmt.Errorf("redis-server did not answer on port %d: %v", s.port, err)
		}
		time.Sleep(10 * time.Millisecond) // polling a starting process, not timing logic
	}
}

func (s *testRedis) ping() error {
	c, err := net.DialTimeout("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(s.port)), time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(time.Second))
	fmt.Fprint(c, "*1\r\n$4\r\nPING\r\n")
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return err
	}
	if !strings.HasPrefix(line, "+PONG") {
		return errors.New("PING answered " + strings.TrimSpace(line))
	}
	return nil
}

// kill stops the server abruptly (SIGKILL), as a crash would.
func (s *testRedis) kill() {
	if s.cmd == nil {
		return
	}
	_ = s.cmd.Process.Kill()
	<-s.exited
	s.cmd = nil
}

// restart starts the server again on the same port, empty.
func (s *testRedis) restart() {
	s.tb.Helper()
	if err := s.start(); err != nil {
		s.tb.Fatalf("restarting redis-server: %v", err)
	}
}

// rateLimitT parses the t parameter of a RateLimit field value.
func rateLimitT(t *testing.T, v string) int {
	t.Helper()
	_, ts, ok := strings.Cut(v, ";t=")
	n, err := strconv.Atoi(ts)
	if !ok || err != nil {
		t.Fatalf("RateLimit %q has no t", v)
	}
	return n
}

// TestRateLimitsSharedThroughRedis runs two nodes (two handlers over one engine, each with
// its own Redis limiter on the same redis-server): their limits are shared. Then Redis dies:
// both keep answering, each on its local fallback (so each enforces the whole limit on its
// own), and the fallback hook fires. Then Redis comes back and the nodes use it again.
//
// Redis decides with its own clock, so the limits are per hour (no refill during the test)
// and the times Redis reports are checked within the second they may have moved; the local
// fallback uses the test clock and is checked exactly.
func TestRateLimitsSharedThroughRedis(t *testing.T) {
	srv := startTestRedis(t)
	limits := Limits{
		PerKey:        ratelimit.Limit{Rate: 10, Period: time.Hour, Burst: 10}, // one every 6 min
		AuthFailPerIP: ratelimit.Limit{Rate: 3, Period: time.Hour, Burst: 3},   // one every 20 min
	}
	e := newLimitsEnv(t, limits, nil)
	var fallbacks, recovers atomic.Int64
	var redisLims []*ratelimit.Redis
	var nodes []http.Handler
	for range 2 {
		r, err := ratelimit.NewRedis(srv.URL(), ratelimit.Options{
			Now: e.clock.Now,
			// Patient: a spurious timeout on a loaded machine would upset the exact counts
			// (internal/ratelimit tests the timeout itself). A killed server refuses at once.
			Timeout: 10 * time.Second,
			OnFallback: func(err error) {
				fallbacks.Add(1)
				t.Logf("fallback: %v", err)
			},
			OnRecover: func() { recovers.Add(1) },
		})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { r.Close() })
		redisLims = append(redisLims, r)
		nodes = append(nodes, New(e.deps(limits, r)))
	}
	const policy = `"api-key";q=10;w=3600`
	check := func(node int, ip, token string) *httptestResponse {
		rec := from(nodes[node], ip, "POST", "/v1/check", token, limitsCheckBody)
		return &httptestResponse{code: rec.Code, header: rec.Header(), body: rec.Body.String()}
	}

	// Shared: the two nodes together allow exactly the burst.
	for i := 1; i <= 10; i++ {
		r := check(i%2, ipA, e.decisions)
		if r.code != http.StatusOK {
			t.Fatalf("request %d (node %d): %d %s", i, i%2, r.code, r.body)
		}
		if got := r.header.Get("RateLimit-Policy"); got != policy {
			t.Errorf("request %d: RateLimit-Policy %q", i, got)
		}
		rl := r.header.Get("RateLimit")
		if !strings.HasPrefix(rl, fmt.Sprintf(`"api-key";r=%d;`, 10-i)) {
			t.Errorf("request %d: RateLimit %q, want r=%d", i, rl, 10-i)
		}
		if tt := rateLimitT(t, rl); tt > 360*i || tt < 360*i-1 {
			t.Errorf("request %d: RateLimit %q, want t within a second of %d", i, rl, 360*i)
		}
	}
	for node := range 2 {
		r := check(node, ipB, e.decisions)
		if r.code != http.StatusTooManyRequests {
			t.Fatalf("node %d past the shared limit: %d %s", node, r.code, r.body)
		}
		if ra, err := strconv.Atoi(r.header.Get("Retry-After")); err != nil || ra < 1 || ra > 360 {
			t.Errorf("node %d: Retry-After %q, want 1…360", node, r.header.Get("Retry-After"))
		}
	}
	unknown, _, _ := thauth.NewToken()
	for i := range 3 {
		if r := check(i%2, ipA, unknown); r.code != http.StatusUnauthorized {
			t.Fatalf("failure %d: %d %s", i+1, r.code, r.body)
		}
	}
	for node := range 2 {
		if r := check(node, ipA, unknown); r.code != http.StatusTooManyRequests || !strings.Contains(r.body, msgAuthFailures) {
			t.Fatalf("node %d past the shared failure budget: %d %s", node, r.code, r.body)
		}
	}
	// Node 0 answered 5 + 1 checks and 2 + 1 failures, node 1 5 + 1 and 1 + 1.
	calls := []uint64{9, 8}
	for i, r := range redisLims {
		if s := r.Stats(); s != (ratelimit.RedisStats{RedisCalls: calls[i]}) {
			t.Errorf("node %d: stats %+v, want %d Redis calls and no errors", i, s, calls[i])
		}
	}

	// Redis dies. Every request is still answered; each node falls back to its own local
	// limiter (fresh: the whole burst again, per node), saying so once through the hook, and
	// for the backoff (the test clock does not move) does not try Redis again.
	srv.kill()
	for node := range 2 {
		for i := 1; i <= 10; i++ {
			r := check(node, ipA, e.decisions)
			if r.code != http.StatusOK {
				t.Fatalf("Redis down, node %d, request %d: %d %s", node, i, r.code, r.body)
			}
			wantHeaders(t, fmt.Sprintf("Redis down, node %d, request %d", node, i), r.header, policy,
				fmt.Sprintf(`"api-key";r=%d;t=%d`, 10-i, 360*i), "")
		}
		r := check(node, ipA, e.decisions)
		if r.code != http.StatusTooManyRequests {
			t.Fatalf("Redis down, node %d, request 11: %d %s", node, r.code, r.body)
		}
		wantHeaders(t, fmt.Sprintf("Redis down, node %d, request 11", node), r.header, policy, `"api-key";r=0;t=360`, "360")
		if r := check(node, ipB, unknown); r.code != http.StatusUnauthorized {
			t.Fatalf("Redis down, node %d, a failure: %d %s", node, r.code, r.body)
		}
	}
	if n := fallbacks.Load(); n != 2 {
		t.Errorf("fallback hook fired %d times, want once per node", n)
	}
	for i, r := range redisLims {
		if s := r.Stats(); s != (ratelimit.RedisStats{RedisCalls: calls[i] + 1, RedisErrors: 1, Fallbacks: 12}) {
			t.Errorf("node %d: stats %+v, want one more Redis call, failed, and 12 fallbacks", i, s)
		}
	}

	// Redis is back (empty). After the backoff, the next call probes it and the nodes
	// share their limits through it again.
	srv.restart()
	e.clock.Advance(time.Second) // ratelimit's default backoff
	for node := range 2 {
		r := check(node, ipA, e.decisions)
		if r.code != http.StatusOK || !strings.HasPrefix(r.header.Get("RateLimit"), fmt.Sprintf(`"api-key";r=%d;`, 9-node)) {
			t.Fatalf("Redis back, node %d: %d RateLimit %q, want r=%d from the shared (fresh) bucket", node, r.code, r.header.Get("RateLimit"), 9-node)
		}
	}
	if n := recovers.Load(); n != 2 {
		t.Errorf("recover hook fired %d times, want once per node", n)
	}
}

// httptestResponse is what TestRateLimitsSharedThroughRedis keeps of an answer.
type httptestResponse struct {
	code   int
	header http.Header
	body   string
}
