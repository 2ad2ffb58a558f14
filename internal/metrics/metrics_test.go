package metrics

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/thauth/thauth"
	"github.com/thauth/thauth/internal/metrics/metricstest"
)

// pick returns the samples of the metric name.
func pick(samples map[string]float64, name string) map[string]float64 {
	out := map[string]float64{}
	for _, k := range metricstest.Series(samples, name) {
		out[k] = samples[k]
	}
	return out
}

func TestDecisions(t *testing.T) {
	m := New()
	for range 3 {
		m.Decision(true, "role:billing-admin")
	}
	m.Decision(true, "role:analyst")
	m.Decision(true, thauth.ReasonOverrideAllow)
	m.Decision(false, thauth.ReasonOverrideDeny)
	m.Decision(false, thauth.ReasonDefaultDeny)
	m.Decision(false, thauth.ReasonDefaultDeny)
	m.Decision(false, thauth.ReasonError)
	m.Decision(false, "something new") // unknown reasons count as errors: never dropped
	got := pick(metricstest.Scrape(t, m.Handler()), "thauth_decisions_total")
	want := map[string]float64{
		`thauth_decisions_total{reason_kind="role",result="allow"}`:           4,
		`thauth_decisions_total{reason_kind="override_allow",result="allow"}`: 1,
		`thauth_decisions_total{reason_kind="override_deny",result="allow"}`:  0,
		`thauth_decisions_total{reason_kind="default_deny",result="allow"}`:   0,
		`thauth_decisions_total{reason_kind="error",result="allow"}`:          0,
		`thauth_decisions_total{reason_kind="role",result="deny"}`:            0,
		`thauth_decisions_total{reason_kind="override_allow",result="deny"}`:  0,
		`thauth_decisions_total{reason_kind="override_deny",result="deny"}`:   1,
		`thauth_decisions_total{reason_kind="default_deny",result="deny"}`:    2,
		`thauth_decisions_total{reason_kind="error",result="deny"}`:           2,
	}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("decisions (-want +got):\n%s", d)
	}
}

func TestReasonKind(t *testing.T) {
	for reason, want := range map[string]string{
		"role:admin":               KindRole,
		"role:":                    KindRole,
		thauth.ReasonOverrideAllow: KindOverrideAllow,
		thauth.ReasonOverrideDeny:  KindOverrideDeny,
		thauth.ReasonDefaultDeny:   KindDefaultDeny,
		thauth.ReasonError:         KindError,
		"":                         KindError,
		"Role:admin":               KindError,
	} {
		if got := ReasonKind(reason); got != want {
			t.Errorf("ReasonKind(%q) = %q, want %q", reason, got, want)
		}
	}
}

func TestAuthFailuresAndRateLimited(t *testing.T) {
	m := New()
	m.AuthFailure("unknown_key")
	m.AuthFailure("unknown_key")
	m.AuthFailure("revoked_key")
	m.RateLimited("api-key")
	m.RateLimited("signin-ip")
	m.RateLimited("signin-ip")
	s := metricstest.Scrape(t, m.Handler())
	want := map[string]float64{
		`thauth_auth_failures_total{kind="unknown_key"}`: 2,
		`thauth_auth_failures_total{kind="revoked_key"}`: 1,
	}
	if d := cmp.Diff(want, pick(s, "thauth_auth_failures_total")); d != "" {
		t.Errorf("auth failures (-want +got):\n%s", d)
	}
	want = map[string]float64{
		`thauth_rate_limited_total{policy="api-key"}`:   1,
		`thauth_rate_limited_total{policy="signin-ip"}`: 2,
	}
	if d := cmp.Diff(want, pick(s, "thauth_rate_limited_total")); d != "" {
		t.Errorf("rate limited (-want +got):\n%s", d)
	}
}

// A caller passing ever new kinds cannot grow the label set without bound.
func TestDynamicLabelsBounded(t *testing.T) {
	m := New()
	for i := range 1000 {
		m.AuthFailure(fmt.Sprintf("kind%d", i))
	}
	m.AuthFailure("")
	s := pick(metricstest.Scrape(t, m.Handler()), "thauth_auth_failures_total")
	if len(s) != maxDynamicLabels+1 {
		t.Errorf("%d series, want %d (the first %d kinds and \"other\")", len(s), maxDynamicLabels+1, maxDynamicLabels)
	}
	if got, want := s[`thauth_auth_failures_total{kind="other"}`], float64(1000-maxDynamicLabels+1); got != want {
		t.Errorf("other = %v, want %v", got, want)
	}
	if got := s[`thauth_auth_failures_total{kind="kind0"}`]; got != 1 {
		t.Errorf("kind0 = %v, want 1", got)
	}
}

func TestRoutes(t *testing.T) {
	m := New()
	check := m.Route("/v1/check", "POST")
	if m.Route("/v1/check", "POST") != check {
		t.Error("Route does not share handles")
	}
	check.Observe(200, 300*time.Microsecond)
	check.Observe(200, 2*time.Millisecond)
	check.Observe(401, 100*time.Microsecond)
	check.Observe(418, time.Millisecond) // not a common code: looked up per call
	check.Observe(42, time.Millisecond)  // not a status code at all
	m.Route(Unmatched, "BREW").Observe(404, time.Millisecond)
	s := metricstest.Scrape(t, m.Handler())
	want := map[string]float64{
		`http_requests_total{code="200",method="POST",route="/v1/check"}`:  2,
		`http_requests_total{code="401",method="POST",route="/v1/check"}`:  1,
		`http_requests_total{code="418",method="POST",route="/v1/check"}`:  1,
		`http_requests_total{code="0",method="POST",route="/v1/check"}`:    1,
		`http_requests_total{code="404",method="OTHER",route="unmatched"}`: 1,
	}
	if d := cmp.Diff(want, pick(s, "http_requests_total")); d != "" {
		t.Errorf("requests (-want +got):\n%s", d)
	}
	if got := s[`http_request_duration_seconds_count{method="POST",route="/v1/check"}`]; got != 5 {
		t.Errorf("duration count = %v, want 5", got)
	}
	if got := s[`http_request_duration_seconds_bucket{le="0.0005",method="POST",route="/v1/check"}`]; got != 2 {
		t.Errorf("requests under 500µs = %v, want 2", got)
	}
	if got, want := s[`http_request_duration_seconds_sum{method="POST",route="/v1/check"}`], 0.0044; math.Abs(got-want) > 1e-9 {
		t.Errorf("duration sum = %v, want %v", got, want)
	}
}

func TestMethod(t *testing.T) {
	for in, want := range map[string]string{"GET": "GET", "DELETE": "DELETE", "get": "OTHER", "BREW": "OTHER", "": "OTHER"} {
		if got := Method(in); got != want {
			t.Errorf("Method(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestFuncMetrics(t *testing.T) {
	m := New()
	s := metricstest.Scrape(t, m.Handler())
	for _, name := range []string{"thauth_snapshot_staleness_seconds", "thauth_mail_outbox_pending",
		"thauth_decision_log_written_total", "thauth_decision_log_dropped_total", "thauth_ratelimit_redis_fallbacks_total"} {
		if _, ok := s[name]; ok {
			t.Errorf("%s is exposed before its source is set", name)
		}
	}
	stale := 1500 * time.Millisecond
	m.SetSnapshotStaleness(func() time.Duration { return stale })
	m.SetMailOutboxPending(func() float64 { return 7 })
	m.SetDecisionLogStats(func() (uint64, uint64) { return 1000, 3 })
	var falls uint64 = 2
	m.SetRedisFallbacks(func() uint64 { return falls })
	s = metricstest.Scrape(t, m.Handler())
	want := map[string]float64{
		"thauth_snapshot_staleness_seconds":      1.5,
		"thauth_mail_outbox_pending":             7,
		"thauth_decision_log_written_total":      1000,
		"thauth_decision_log_dropped_total":      3,
		"thauth_ratelimit_redis_fallbacks_total": 2,
	}
	for name, v := range want {
		if got, ok := s[name]; !ok || got != v {
			t.Errorf("%s = %v (present %v), want %v", name, got, ok, v)
		}
	}
	// Values are read at scrape time; setting again replaces the source.
	stale, falls = 4*time.Second, 5
	m.SetMailOutboxPending(func() float64 { return 9 })
	s = metricstest.Scrape(t, m.Handler())
	for name, v := range map[string]float64{"thauth_snapshot_staleness_seconds": 4, "thauth_ratelimit_redis_fallbacks_total": 5, "thauth_mail_outbox_pending": 9} {
		if s[name] != v {
			t.Errorf("%s = %v, want %v", name, s[name], v)
		}
	}
}

func TestRuntimeCollectors(t *testing.T) {
	s := metricstest.Scrape(t, New().Handler())
	for _, name := range []string{"go_goroutines", "go_memstats_heap_alloc_bytes", "process_open_fds"} {
		if _, ok := s[name]; !ok {
			t.Errorf("%s missing", name)
		}
	}
}

// Two nodes' Metrics (or two tests) do not share a registry.
func TestOwnRegistry(t *testing.T) {
	a, b := New(), New()
	a.AuthFailure("x")
	if got := pick(metricstest.Scrape(t, b.Handler()), "thauth_auth_failures_total"); len(got) != 0 {
		t.Errorf("b sees a's metrics: %v", got)
	}
}

// The methods called on the request path do not allocate.
func TestHotPathAllocations(t *testing.T) {
	m := New()
	rt := m.Route("/v1/check", "POST")
	m.AuthFailure("unknown_key")
	m.RateLimited("api-key")
	rt.Observe(200, time.Millisecond)
	for name, f := range map[string]func(){
		"Decision":    func() { m.Decision(true, "role:billing-admin") },
		"DecisionErr": func() { m.Decision(false, thauth.ReasonError) },
		"AuthFailure": func() { m.AuthFailure("unknown_key") },
		"RateLimited": func() { m.RateLimited("api-key") },
		"Observe":     func() { rt.Observe(200, time.Millisecond) },
	} {
		if n := testing.AllocsPerRun(1000, f); n != 0 {
			t.Errorf("%s: %v allocations per call, want 0", name, n)
		}
	}
}

func TestCachedCount(t *testing.T) {
	ctx := context.Background()
	var n int
	var fail error
	c := NewCachedCount(func(context.Context) (int, error) { return n, fail }, time.Hour, nil)
	if v := c.Value(); !math.IsNaN(v) {
		t.Errorf("before a refresh: %v, want NaN", v)
	}
	n = 4
	if err := c.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	if v := c.Value(); v != 4 {
		t.Errorf("after a refresh: %v, want 4", v)
	}
	n, fail = 9, errors.New("database unreachable")
	if err := c.Refresh(ctx); err == nil {
		t.Error("Refresh hid the error")
	}
	if v := c.Value(); v != 4 {
		t.Errorf("after a failed refresh: %v, want the last value 4", v)
	}
	// Run refreshes at once, then stops with its context.
	fail = nil
	rctx, cancel := context.WithCancel(ctx)
	calls := make(chan struct{}, 1)
	c2 := NewCachedCount(func(context.Context) (int, error) {
		select {
		case calls <- struct{}{}:
		default:
		}
		return 12, nil
	}, time.Hour, nil)
	done := make(chan struct{})
	go func() { c2.Run(rctx); close(done) }()
	<-calls
	cancel()
	<-done
	if v := c2.Value(); v != 12 {
		t.Errorf("after Run: %v, want 12", v)
	}
}

func TestHandlerIsExpositionFormat(t *testing.T) {
	m := New()
	m.Decision(true, "role:a")
	s := metricstest.Scrape(t, m.Handler())
	for k := range s {
		if strings.ContainsAny(k, "\n") {
			t.Fatalf("bad key %q", k)
		}
	}
	if len(s) < 50 {
		t.Errorf("only %d samples", len(s))
	}
}
