// Package ratelimit limits how often a key (an API key, a client IP, an account and IP) may make
// requests, and reports the outcome in the IETF RateLimit header fields.
//
// The algorithm is GCRA (the generic cell rate algorithm), a token bucket expressed as one
// timestamp per key: the theoretical arrival time (TAT) of the next request. A Limit of Rate
// requests per Period with a burst of Burst means that a key with a full bucket may make Burst
// requests at the same instant, after which one more request becomes possible every
// Period/Rate. Two implementations share these semantics exactly:
//
//   - Local keeps the state in memory, per process. It is the default.
//   - Redis keeps the state in Redis (github.com/go-redis/redis_rate, the same GCRA, computed by
//     a Lua script against the Redis clock), so that every node of a deployment shares one limit.
//     It falls back to a Local limiter, per call, when Redis is slow or unreachable.
//
// Both implement Limiter, whose Allow never returns an error and never waits longer than a small
// bound: it sits on the request path, in front of every decision.
//
// Threat model. Rate limits slow down key guessing, credential stuffing and floods; they do not
// stop a distributed attacker, and they must not become a way to deny service to others or to
// exhaust memory:
//   - Memory is bounded: Local holds at most Options.MaxKeys keys. When a shard is full the least
//     recently used key is forgotten, which forgives that key (its next request starts with a
//     full bucket). An attacker able to present more distinct keys than MaxKeys within a refill
//     period can therefore wash out other keys' state; callers keep the key space small (key
//     IPv6 clients by their /64, say) and MaxKeys large.
//   - A key whose bucket is full again carries no information (GCRA: a TAT in the past is the
//     same as no TAT), so idle keys are dropped without changing any answer.
//   - Shards are chosen by a hash with a per-limiter random seed, so a client cannot aim its keys
//     at one shard's lock.
//   - While Redis is unreachable each node enforces the full limit on its own, so a deployment of
//     N nodes admits up to N times the limit until Redis answers again. That is preferred to
//     failing closed (every request denied) or hanging on the network.
//   - The Redis URL may carry a password: it never appears in an error or a log line from this
//     package.
package ratelimit

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Limit is a rate limit policy: Rate requests per Period, with bursts of up to Burst requests.
//
// The zero Limit (or any Limit with a Rate or Period that is not positive) means "no limit":
// Allow always allows it and SetHeaders writes nothing for it. A Burst that is not positive
// means Burst = Rate. Validate reports limits that make no sense, for configuration checks.
type Limit struct {
	Rate   int
	Period time.Duration
	Burst  int
}

// PerSecond returns a Limit of n requests per second with a burst of n.
func PerSecond(n int) Limit { return Limit{Rate: n, Period: time.Second, Burst: n} }

// PerMinute returns a Limit of n requests per minute with a burst of n.
func PerMinute(n int) Limit { return Limit{Rate: n, Period: time.Minute, Burst: n} }

// PerHour returns a Limit of n requests per hour with a burst of n.
func PerHour(n int) Limit { return Limit{Rate: n, Period: time.Hour, Burst: n} }

// maxBurstWindow bounds Burst × Period/Rate (the time a full bucket takes to refill from
// empty), which keeps the arithmetic far from overflowing int64 nanoseconds.
const maxBurstWindow = 366 * 24 * time.Hour

// IsZero reports whether l is "no limit".
func (l Limit) IsZero() bool { return l.Rate <= 0 || l.Period <= 0 }

// Validate reports whether l is a usable limit: the zero Limit, or a positive Rate and Period
// with a Burst that is zero (meaning Rate) or positive, and a refill time of at most a year.
func (l Limit) Validate() error {
	if l == (Limit{}) {
		return nil
	}
	if l.Rate <= 0 || l.Period <= 0 || l.Burst < 0 {
		return fmt.Errorf("ratelimit: invalid limit %v: rate and period must be positive, burst must not be negative", l)
	}
	if l.Period/time.Duration(l.Rate) == 0 {
		return fmt.Errorf("ratelimit: invalid limit %v: more than one request per nanosecond", l)
	}
	n := l.normalize()
	if float64(n.Burst)*float64(n.Period)/float64(n.Rate) > float64(maxBurstWindow) {
		return fmt.Errorf("ratelimit: invalid limit %v: a full burst would take more than a year to refill", l)
	}
	return nil
}

// String returns the limit in the form "100/1s burst 100".
func (l Limit) String() string {
	if l.IsZero() {
		return "unlimited"
	}
	return fmt.Sprintf("%d/%s burst %d", l.Rate, l.Period, l.normalize().Burst)
}

// normalize fills in the default Burst.
func (l Limit) normalize() Limit {
	if l.Burst <= 0 {
		l.Burst = l.Rate
	}
	return l
}

// gcra returns the emission interval T = Period/Rate (truncated to whole nanoseconds, at least
// 1ns) and the burst tolerance tau = T × Burst, both in nanoseconds, for a limit that is not
// zero. Truncating T errs, by less than a nanosecond per request, on the side of the client.
func (l Limit) gcra() (t, tau int64) {
	t = int64(l.Period) / int64(l.Rate)
	if t < 1 {
		t = 1
	}
	burst := int64(l.Burst)
	if burst > int64(maxBurstWindow)/t {
		burst = max(int64(maxBurstWindow)/t, 1)
	}
	return t, t * burst
}

// Result is the answer to one Allow call.
type Result struct {
	// Allowed reports whether the request may proceed. A denied request consumed nothing.
	Allowed bool
	// Limit is the limit that was applied, with Burst filled in.
	Limit Limit
	// Remaining is how many more requests the key could make at this instant.
	Remaining int
	// RetryAfter is, when the request was denied, how long until one request is allowed
	// again; it is 0 when the request was allowed.
	RetryAfter time.Duration
	// ResetAfter is how long until the key's bucket is full again (Remaining = Burst), if the
	// key makes no further requests.
	ResetAfter time.Duration
}

// Limiter decides whether a key may make one more request under a limit.
//
// Allow consumes one request from key's bucket when it allows it. It never returns an error and
// never blocks longer than a small bound (Options.Timeout for a Redis limiter). Keys are
// opaque strings; use one key per policy (e.g. "key:"+keyID, "ip:"+addr), since a key's
// state is shared by every limit applied to it. Implementations are safe for concurrent use.
type Limiter interface {
	Allow(ctx context.Context, key string, l Limit) Result
}

// Options configures a Local or a Redis limiter. The zero Options is valid: every field has a
// documented default.
type Options struct {
	// Now is the clock. Default time.Now. Local uses it for every decision; Redis uses it only
	// to time its backoff after a failure (Redis decides with its own clock).
	Now func() time.Time

	// MaxKeys caps the number of keys a Local limiter (or a Redis limiter's local fallback)
	// remembers. Default 262144 (about 30 MB with short keys).
	MaxKeys int
	// Shards is the number of independently locked parts of a Local limiter, rounded up to a
	// power of two. Default 64.
	Shards int

	// Timeout bounds each Redis call. Default 50ms.
	Timeout time.Duration
	// Backoff is how long a Redis limiter answers locally, without trying Redis, after a Redis
	// call failed. Then one call tries Redis again. Default 1s.
	Backoff time.Duration
	// OnFallback, if set, is called (synchronously, so it must be quick) each time a Redis call
	// fails and the limiter falls back to its local limiter; calls skipped during the backoff do
	// not call it. err never contains the Redis password. Use it to log; Stats counts for metrics.
	OnFallback func(err error)
	// OnRecover, if set, is called when Redis answers again after a failure.
	OnRecover func()
}

const (
	defaultMaxKeys = 1 << 18
	defaultShards  = 64
	defaultTimeout = 50 * time.Millisecond
	defaultBackoff = time.Second
)

func (o Options) withDefaults() Options {
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.MaxKeys <= 0 {
		o.MaxKeys = defaultMaxKeys
	}
	if o.Shards <= 0 {
		o.Shards = defaultShards
	}
	if o.Timeout <= 0 {
		o.Timeout = defaultTimeout
	}
	if o.Backoff <= 0 {
		o.Backoff = defaultBackoff
	}
	return o
}

// errUnparsableURL is returned for a URL that cannot even be parsed, whose text (and so whose
// password) therefore cannot be safely quoted.
var errUnparsableURL = errors.New("ratelimit: the Redis URL cannot be parsed (it is not shown, since it may contain a password)")

// ceilSeconds rounds d up to whole seconds, for header fields; negative durations give 0.
func ceilSeconds(d time.Duration) int64 {
	if d <= 0 {
		return 0
	}
	return int64((d + time.Second - 1) / time.Second)
}
