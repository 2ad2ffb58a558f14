package ratelimit_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"time"

	"github.com/thauth/thauth/internal/ratelimit"
)

// A middleware limiting each client IP to 5 requests per minute, answering 429 with the
// RateLimit header fields and Retry-After past the limit.
func ExampleSetHeaders() {
	now := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	var limiter ratelimit.Limiter = ratelimit.NewLocal(ratelimit.Options{Now: func() time.Time { return now }})
	perIP := ratelimit.PerMinute(5)

	limit := func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			res := limiter.Allow(r.Context(), "ip:"+r.RemoteAddr, perIP)
			ratelimit.SetHeaders(w.Header(), "ip", res)
			if !res.Allowed {
				http.Error(w, "rate limited", http.StatusTooManyRequests)
				return
			}
			next.ServeHTTP(w, r)
		})
	}
	h := limit(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))

	for i := 1; i <= 6; i++ {
		req := httptest.NewRequestWithContext(context.Background(), "GET", "/v1/check", nil)
		req.RemoteAddr = "203.0.113.7"
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		fmt.Printf("%d %d RateLimit-Policy: %s RateLimit: %s Retry-After: %q\n", i, rec.Code,
			rec.Header().Get("RateLimit-Policy"), rec.Header().Get("RateLimit"), rec.Header().Get("Retry-After"))
	}
	// Output:
	// 1 200 RateLimit-Policy: "ip";q=5;w=60 RateLimit: "ip";r=4;t=12 Retry-After: ""
	// 2 200 RateLimit-Policy: "ip";q=5;w=60 RateLimit: "ip";r=3;t=24 Retry-After: ""
	// 3 200 RateLimit-Policy: "ip";q=5;w=60 RateLimit: "ip";r=2;t=36 Retry-After: ""
	// 4 200 RateLimit-Policy: "ip";q=5;w=60 RateLimit: "ip";r=1;t=48 Retry-After: ""
	// 5 200 RateLimit-Policy: "ip";q=5;w=60 RateLimit: "ip";r=0;t=60 Retry-After: ""
	// 6 429 RateLimit-Policy: "ip";q=5;w=60 RateLimit: "ip";r=0;t=12 Retry-After: "12"
}
