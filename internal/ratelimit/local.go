package ratelimit

import (
	"context"
	"hash/maphash"
	"math/bits"
	"strings"
	"sync"
	"time"
)

// Local is an in-memory GCRA limiter. It is safe for concurrent use.
//
// It is its own GCRA rather than golang.org/x/time/rate because GCRA needs one int64 per key
// and integer nanosecond arithmetic, which gives exact answers at the thresholds (the Burst-th
// request in an instant is allowed, the next is denied with RetryAfter exactly Period/Rate),
// is the same algorithm as the Redis limiter (so the two report the same headers), and makes
// idle keys recognisable (a TAT in the past) so they can be dropped without changing answers.
// rate.Limiter keeps float64 tokens, a mutex and a limit per key, about ten times the memory.
//
// The keys are spread over Options.Shards shards, each with its own lock, map and
// least-recently-used list. Each Allow also drops up to two idle keys from its shard's LRU end,
// and a shard that reaches its share of Options.MaxKeys forgets its least recently used key.
type Local struct {
	now    func() time.Time
	epoch  time.Time
	seed   maphash.Seed
	mask   uint64
	shards []shard
}

type shard struct {
	mu  sync.Mutex
	m   map[string]*entry
	lru entry // sentinel of a ring: lru.next is the most recently used entry, lru.prev the least
	max int
	_   [64]byte // keeps neighbouring shards' locks off one cache line
}

type entry struct {
	key        string
	tat        int64 // theoretical arrival time, nanoseconds since Local.epoch
	prev, next *entry
}

// NewLocal returns an in-memory limiter configured by o (see Options for the defaults).
func NewLocal(o Options) *Local {
	o = o.withDefaults()
	n := 1 << bits.Len(uint(min(o.Shards, 1<<12)-1)) // round up to a power of two
	l := &Local{
		now:    o.Now,
		epoch:  o.Now(),
		seed:   maphash.MakeSeed(),
		mask:   uint64(n - 1),
		shards: make([]shard, n),
	}
	per := max((o.MaxKeys+n-1)/n, 1)
	for i := range l.shards {
		s := &l.shards[i]
		s.m = make(map[string]*entry)
		s.max = per
		s.lru.next, s.lru.prev = &s.lru, &s.lru
	}
	return l
}

// clock returns the current time in nanoseconds since the limiter's epoch. Subtracting two
// time.Time values uses the monotonic clock when both carry one, so wall-clock steps do not
// refill or drain buckets.
func (l *Local) clock() int64 { return int64(l.now().Sub(l.epoch)) }

// Allow implements Limiter. ctx is unused: Allow only takes a shard lock.
func (l *Local) Allow(_ context.Context, key string, lim Limit) Result {
	if lim.IsZero() {
		return Result{Allowed: true, Limit: lim}
	}
	lim = lim.normalize()
	return l.allowAt(l.clock(), key, lim)
}

func (l *Local) allowAt(now int64, key string, lim Limit) Result {
	t, tau := lim.gcra()
	s := &l.shards[maphash.String(l.seed, key)&l.mask]
	s.mu.Lock()
	defer s.mu.Unlock()

	e := s.m[key]
	tat := now
	if e != nil && e.tat > now {
		tat = e.tat
	}
	newTAT := tat + t
	allowAt := newTAT - tau
	var r Result
	if now < allowAt {
		r = Result{Limit: lim, RetryAfter: time.Duration(allowAt - now), ResetAfter: time.Duration(tat - now)}
		if e != nil {
			s.touch(e)
		}
	} else {
		if e == nil {
			e = s.insert(key)
		} else {
			s.touch(e)
		}
		e.tat = newTAT
		r = Result{Allowed: true, Limit: lim, Remaining: int((now - allowAt) / t), ResetAfter: time.Duration(newTAT - now)}
	}
	s.dropIdle(now, 2)
	return r
}

// touch moves e to the most recently used end.
func (s *shard) touch(e *entry) {
	if s.lru.next == e {
		return
	}
	e.prev.next, e.next.prev = e.next, e.prev
	s.pushFront(e)
}

func (s *shard) pushFront(e *entry) {
	e.prev, e.next = &s.lru, s.lru.next
	s.lru.next.prev = e
	s.lru.next = e
}

func (s *shard) remove(e *entry) {
	e.prev.next, e.next.prev = e.next, e.prev
	e.prev, e.next = nil, nil
	delete(s.m, e.key)
}

// insert adds key, forgetting the least recently used key first if the shard is full. The key
// is cloned so that the map does not pin a larger string the caller sliced it from.
func (s *shard) insert(key string) *entry {
	if len(s.m) >= s.max {
		s.remove(s.lru.prev)
	}
	e := &entry{key: strings.Clone(key)}
	s.m[key] = e
	s.pushFront(e)
	return e
}

// dropIdle removes up to n entries from the least recently used end whose bucket is full
// again. Dropping them changes no answer: a missing key and a key whose TAT has passed are the
// same to GCRA.
func (s *shard) dropIdle(now int64, n int) int {
	dropped := 0
	for ; dropped < n; dropped++ {
		e := s.lru.prev
		if e == &s.lru || e.tat > now {
			break
		}
		s.remove(e)
	}
	return dropped
}

// Sweep drops every key whose bucket is full again and returns how many it dropped. Allow
// already drops idle keys a few at a time, and MaxKeys bounds memory regardless, so calling
// Sweep (say, every minute) is optional: it returns memory sooner after a burst of distinct
// keys. It locks one shard at a time.
func (l *Local) Sweep() int {
	now := l.clock()
	n := 0
	for i := range l.shards {
		s := &l.shards[i]
		s.mu.Lock()
		for e := s.lru.prev; e != &s.lru; {
			prev := e.prev
			if e.tat <= now {
				s.remove(e)
				n++
			}
			e = prev
		}
		s.mu.Unlock()
	}
	return n
}

// Len returns the number of keys the limiter currently remembers, for metrics and tests.
func (l *Local) Len() int {
	n := 0
	for i := range l.shards {
		s := &l.shards[i]
		s.mu.Lock()
		n += len(s.m)
		s.mu.Unlock()
	}
	return n
}

var _ Limiter = (*Local)(nil)
