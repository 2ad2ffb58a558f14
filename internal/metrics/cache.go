package metrics

import (
	"context"
	"log/slog"
	"math"
	"sync/atomic"
	"time"
)

// DefaultRefresh is how often a CachedCount refreshes by default.
const DefaultRefresh = 15 * time.Second

// CachedCount keeps the last value of a count that is too costly to compute at every
// scrape (a database query, such as the pending mail of the outbox): Run refreshes it
// periodically and Value returns the last value, without I/O. Before the first successful
// refresh Value is NaN ("unknown"), which Prometheus shows as such rather than as a false 0.
type CachedCount struct {
	fn      func(ctx context.Context) (int, error)
	every   time.Duration
	timeout time.Duration
	log     *slog.Logger
	val     atomic.Uint64 // math.Float64bits
}

// NewCachedCount returns a cache of fn refreshed every interval (DefaultRefresh when 0).
// Each refresh is bounded by interval; failures are logged at debug level to log (nil:
// discarded) and keep the last value.
func NewCachedCount(fn func(ctx context.Context) (int, error), interval time.Duration, log *slog.Logger) *CachedCount {
	if interval <= 0 {
		interval = DefaultRefresh
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	c := &CachedCount{fn: fn, every: interval, timeout: interval, log: log}
	c.val.Store(math.Float64bits(math.NaN()))
	return c
}

// Value returns the last value read, NaN before the first successful refresh.
func (c *CachedCount) Value() float64 { return math.Float64frombits(c.val.Load()) }

// Refresh reads the count now.
func (c *CachedCount) Refresh(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	n, err := c.fn(ctx)
	if err != nil {
		return err
	}
	c.val.Store(math.Float64bits(float64(n)))
	return nil
}

// Run refreshes at once and then every interval until ctx is done.
func (c *CachedCount) Run(ctx context.Context) {
	t := time.NewTicker(c.every)
	defer t.Stop()
	for {
		if err := c.Refresh(ctx); err != nil && ctx.Err() == nil {
			c.log.Debug("metrics: refreshing a cached count failed; keeping the last value", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
