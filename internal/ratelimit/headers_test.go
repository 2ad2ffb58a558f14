package ratelimit

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestSetHeaders(t *testing.T) {
	tests := []struct {
		name   string
		policy string
		r      Result
		want   http.Header
	}{
		{
			name:   "allowed",
			policy: "default",
			r:      Result{Allowed: true, Limit: PerSecond(100), Remaining: 42, ResetAfter: 580 * time.Millisecond},
			want: http.Header{
				"Ratelimit-Policy": {`"default";q=100;w=1`},
				"Ratelimit":        {`"default";r=42;t=1`},
			},
		},
		{
			name:   "denied",
			policy: "api-key",
			r:      Result{Limit: PerMinute(60), RetryAfter: 1500 * time.Millisecond, ResetAfter: 60 * time.Second},
			want: http.Header{
				"Ratelimit-Policy": {`"api-key";q=60;w=60`},
				"Ratelimit":        {`"api-key";r=0;t=2`},
				"Retry-After":      {"2"},
			},
		},
		{
			name:   "burst larger than rate: w is the time to refill from empty",
			policy: "signin",
			r:      Result{Allowed: true, Limit: Limit{Rate: 5, Period: time.Minute, Burst: 10}, Remaining: 9, ResetAfter: 12 * time.Second},
			want: http.Header{
				"Ratelimit-Policy": {`"signin";q=10;w=120`},
				"Ratelimit":        {`"signin";r=9;t=12`},
			},
		},
		{
			name:   "sub-second retry rounds up to one second",
			policy: "ip",
			r:      Result{Limit: PerSecond(100), RetryAfter: 10 * time.Millisecond, ResetAfter: time.Second},
			want: http.Header{
				"Ratelimit-Policy": {`"ip";q=100;w=1`},
				"Ratelimit":        {`"ip";r=0;t=1`},
				"Retry-After":      {"1"},
			},
		},
		{
			name:   "policy name is a quoted sf-string",
			policy: "a\"b\\c\né",
			r:      Result{Allowed: true, Limit: PerHour(3600), Remaining: 1, ResetAfter: 3599 * time.Second},
			want: http.Header{
				"Ratelimit-Policy": {`"a\"b\\c___";q=3600;w=3600`},
				"Ratelimit":        {`"a\"b\\c___";r=1;t=3599`},
			},
		},
		{
			name:   "zero limit writes nothing",
			policy: "default",
			r:      Result{Allowed: true},
			want:   http.Header{},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := http.Header{}
			SetHeaders(h, tt.policy, tt.r)
			if diff := cmp.Diff(tt.want, h); diff != "" {
				t.Errorf("headers (-want +got):\n%s", diff)
			}
		})
	}
}

func TestSetHeadersFromLimiter(t *testing.T) {
	// The Burst-th request in an instant leaves r=0; the next one is denied and told to come
	// back after exactly one interval (rounded up to whole seconds).
	clock := newFakeClock()
	l := NewLocal(Options{Now: clock.Now})
	lim := PerMinute(5)
	var r Result
	for range 5 {
		r = l.Allow(context.Background(), "k", lim)
	}
	h := http.Header{}
	SetHeaders(h, "default", r)
	want := http.Header{
		"Ratelimit-Policy": {`"default";q=5;w=60`},
		"Ratelimit":        {`"default";r=0;t=60`},
	}
	if diff := cmp.Diff(want, h); diff != "" {
		t.Errorf("5th request (-want +got):\n%s", diff)
	}

	r = l.Allow(context.Background(), "k", lim)
	h = http.Header{}
	SetHeaders(h, "default", r)
	want = http.Header{
		"Ratelimit-Policy": {`"default";q=5;w=60`},
		"Ratelimit":        {`"default";r=0;t=12`},
		"Retry-After":      {"12"},
	}
	if diff := cmp.Diff(want, h); diff != "" {
		t.Errorf("6th request (-want +got):\n%s", diff)
	}
}

// TestHeadersReuse: one Headers, made once and set on many responses (as the per-key limit
// of the decision path does), writes for each result exactly what a fresh SetHeaders writes,
// and the responses share nothing a later Set changes.
func TestHeadersReuse(t *testing.T) {
	for _, l := range []Limit{
		{Rate: 1000, Period: time.Second, Burst: 2000}, PerMinute(5), PerHour(20),
		{Rate: 3, Period: 10 * time.Second}, {Rate: 1e8, Period: time.Second, Burst: 1e8},
	} {
		hs := NewHeaders("api-key", l)
		lim := NewLocal(Options{})
		var firsts []http.Header
		for _, res := range []Result{
			{Allowed: true, Limit: l, Remaining: 0, ResetAfter: 0},
			{Allowed: true, Limit: l, Remaining: 7, ResetAfter: time.Nanosecond},
			{Allowed: true, Limit: l, Remaining: 1999, ResetAfter: time.Second},
			{Allowed: true, Limit: l, Remaining: 4, ResetAfter: 12*time.Second + 1},
			{Allowed: true, Limit: l, Remaining: -1, ResetAfter: -time.Second},
			{Allowed: false, Limit: l, RetryAfter: 1500 * time.Millisecond},
			lim.Allow(t.Context(), "k", l),
			lim.Allow(t.Context(), "k", l),
		} {
			got, want := http.Header{}, http.Header{}
			hs.Set(got, res)
			SetHeaders(want, "api-key", res)
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("%v, %+v: headers (-SetHeaders +reused Headers):\n%s", l, res, diff)
			}
			firsts = append(firsts, got)
		}
		if firsts[1].Get("RateLimit") == firsts[2].Get("RateLimit") {
			t.Errorf("%v: two results share one RateLimit value %q", l, firsts[1].Get("RateLimit"))
		}
	}
	h := http.Header{}
	NewHeaders("api-key", Limit{}).Set(h, Result{Allowed: true})
	Headers{}.Set(h, Result{Allowed: false})
	if len(h) != 0 {
		t.Errorf("no limit: %v", h)
	}
}
