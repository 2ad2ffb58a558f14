package ratelimit

import (
	"context"
	"fmt"
	"net/url"
	"strings"
	"sync/atomic"
	"time"

	"github.com/go-redis/redis_rate/v10"
	"github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/maintnotifications"
)

// KeyPrefix starts the name of every Redis key the Redis limiter writes.
const KeyPrefix = "thauth:rl:"

// Redis is a limiter whose state lives in Redis, so that all nodes using the same Redis share
// each key's limit. It uses redis_rate's GCRA Lua script, which decides with the Redis server's
// clock; its answers match Local's (to the microsecond, Redis's clock resolution).
//
// Each call is bounded by Options.Timeout. When Redis fails or times out, the call is answered
// by a Local limiter instead, counted in Stats, reported to Options.OnFallback, and for
// Options.Backoff afterwards calls go straight to the local limiter without trying Redis; then
// a single call probes Redis again, and the limiter uses Redis once it answers. Redis is safe
// for concurrent use; Close releases its connections.
type Redis struct {
	rdb     *redis.Client
	lim     *redis_rate.Limiter
	local   *Local
	timeout time.Duration
	backoff time.Duration
	now     func() time.Time
	epoch   time.Time

	// downUntil is 0 while Redis is healthy; otherwise the time (ns since epoch) until which
	// calls skip Redis. Whoever moves it forward with a compare-and-swap is the one probe.
	downUntil atomic.Int64

	calls, errs, fallbacks atomic.Uint64

	onFallback func(error)
	onRecover  func()
}

// NewRedis returns a limiter using the Redis server at rawURL, in the form
// redis://[[user]:password@]host[:port][/db] (rediss:// for TLS; see redis.ParseURL for the
// query options). It does not connect: the first Allow (or Ping) does. The error, if any,
// never contains the password.
func NewRedis(rawURL string, o Options) (*Redis, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, errUnparsableURL
	}
	ro, err := redis.ParseURL(rawURL)
	if err != nil {
		msg := err.Error()
		if p, ok := u.User.Password(); ok && p != "" {
			msg = strings.ReplaceAll(msg, p, "xxxxx")
		}
		// Only the host is quoted: the user info and the query may hold secrets.
		return nil, fmt.Errorf("ratelimit: invalid Redis URL (host %q): %s", u.Host, msg)
	}
	o = o.withDefaults()

	// Every wait is bounded by the call's context (Timeout): no retries, no dial retries, no
	// pool wait longer than the timeout, and socket deadlines taken from the context.
	ro.ContextTimeoutEnabled = true
	ro.DialTimeout = o.Timeout
	ro.ReadTimeout = o.Timeout
	ro.WriteTimeout = o.Timeout
	ro.PoolTimeout = o.Timeout
	ro.MaxRetries = -1
	ro.DialerRetries = 1
	ro.DisableIdentity = true // no CLIENT SETINFO round trip on connect
	ro.MaintNotificationsConfig = &maintnotifications.Config{Mode: maintnotifications.ModeDisabled}

	rdb := redis.NewClient(ro)
	return &Redis{
		rdb:        rdb,
		lim:        redis_rate.NewLimiter(prefixed{rdb}),
		local:      NewLocal(o),
		timeout:    o.Timeout,
		backoff:    o.Backoff,
		now:        o.Now,
		epoch:      o.Now(),
		onFallback: o.OnFallback,
		onRecover:  o.OnRecover,
	}, nil
}

// Allow implements Limiter: see the type's comment for what happens when Redis fails.
func (r *Redis) Allow(ctx context.Context, key string, lim Limit) Result {
	if lim.IsZero() {
		return Result{Allowed: true, Limit: lim}
	}
	lim = lim.normalize()

	now := int64(r.now().Sub(r.epoch))
	down := r.downUntil.Load()
	probing := false
	if down != 0 {
		if now < down || !r.downUntil.CompareAndSwap(down, now+int64(r.backoff)) {
			r.fallbacks.Add(1)
			return r.local.Allow(ctx, key, lim)
		}
		probing = true
	}

	r.calls.Add(1)
	cctx, cancel := context.WithTimeout(ctx, r.timeout)
	res, err := r.lim.Allow(cctx, key, redis_rate.Limit{Rate: lim.Rate, Period: lim.Period, Burst: lim.Burst})
	cancel()
	if err != nil {
		r.fallbacks.Add(1)
		if ctx.Err() == nil { // the caller's own cancellation is not Redis's fault
			r.errs.Add(1)
			r.downUntil.Store(now + int64(r.backoff))
			if r.onFallback != nil {
				r.onFallback(fmt.Errorf("ratelimit: redis: %w", err))
			}
		}
		return r.local.Allow(ctx, key, lim)
	}
	if probing && r.downUntil.CompareAndSwap(now+int64(r.backoff), 0) && r.onRecover != nil {
		r.onRecover()
	}
	return fromRedis(lim, res)
}

// fromRedis converts redis_rate's answer, whose durations come from float seconds, rounding
// them to Redis's microsecond clock so that float noise (9.999999ms for 10ms) disappears.
func fromRedis(lim Limit, res *redis_rate.Result) Result {
	out := Result{Limit: lim, ResetAfter: max(res.ResetAfter.Round(time.Microsecond), 0)}
	if res.Allowed > 0 {
		out.Allowed = true
		out.Remaining = res.Remaining
	} else {
		out.RetryAfter = max(res.RetryAfter.Round(time.Microsecond), time.Microsecond)
	}
	return out
}

// RedisStats counts what a Redis limiter did since it was created.
type RedisStats struct {
	// RedisCalls is the number of calls that asked Redis.
	RedisCalls uint64
	// RedisErrors is the number of those that failed or timed out (and fell back).
	RedisErrors uint64
	// Fallbacks is the number of calls answered by the local limiter: failed Redis calls and
	// calls made during the backoff after a failure.
	Fallbacks uint64
}

// Stats returns the limiter's counters. It is safe to call concurrently with Allow.
func (r *Redis) Stats() RedisStats {
	return RedisStats{RedisCalls: r.calls.Load(), RedisErrors: r.errs.Load(), Fallbacks: r.fallbacks.Load()}
}

// Ping checks that Redis answers within the timeout, for start-up checks and health probes.
// It does not change the limiter's fallback state.
func (r *Redis) Ping(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, r.timeout)
	defer cancel()
	if err := r.rdb.Ping(ctx).Err(); err != nil {
		return fmt.Errorf("ratelimit: redis: %w", err)
	}
	return nil
}

// Close closes the connections to Redis. Allow must not be called after Close.
func (r *Redis) Close() error { return r.rdb.Close() }

// prefixed puts KeyPrefix, instead of redis_rate's fixed "rate:", in front of the keys of the
// scripts redis_rate runs (EVALSHA, then EVAL when the script is not loaded yet), so that
// thauth's keys are recognisable in a shared Redis.
type prefixed struct{ *redis.Client }

func (p prefixed) EvalSha(ctx context.Context, sha string, keys []string, args ...any) *redis.Cmd {
	return p.Client.EvalSha(ctx, sha, rekey(keys), args...)
}

func (p prefixed) Eval(ctx context.Context, script string, keys []string, args ...any) *redis.Cmd {
	return p.Client.Eval(ctx, script, rekey(keys), args...)
}

func rekey(keys []string) []string {
	out := make([]string, len(keys))
	for i, k := range keys {
		out[i] = KeyPrefix + strings.TrimPrefix(k, "rate:")
	}
	return out
}

var _ Limiter = (*Redis)(nil)
