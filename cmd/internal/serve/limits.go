package serve

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/thauth/thauth/internal/ratelimit"
)

// newLimiter returns the rate limiter of the node: shared through Redis when redisURL is
// set, else in this node's memory. A Redis that does not answer at start is only a warning:
// limits fall back to local ones until it does (and say so in the log each time).
func newLimiter(ctx context.Context, redisURL string, log *slog.Logger) (ratelimit.Limiter, error) {
	if redisURL == "" {
		return ratelimit.NewLocal(ratelimit.Options{}), nil
	}
	r, err := ratelimit.NewRedis(redisURL, ratelimit.Options{
		OnFallback: func(err error) {
			log.Warn("rate limits: Redis did not answer; this node applies its own limits until it does", "err", err)
		},
		OnRecover: func() { log.Info("rate limits: Redis answers again; limits are shared") },
	})
	if err != nil {
		return nil, fmt.Errorf("--redis-url: %w", err)
	}
	pctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	if err := r.Ping(pctx); err != nil {
		log.Warn("rate limits: Redis does not answer at start; limits stay local until it does", "err", err)
	} else {
		log.Info("rate limits shared through Redis")
	}
	return r, nil
}
