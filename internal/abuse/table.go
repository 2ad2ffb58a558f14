package abuse

import (
	"hash/maphash"
	"strings"
	"sync"
	"time"
)

// numShards splits each table so that request goroutines observing different keys rarely
// wait for one another.
const numShards = 64

// maxKeyLen bounds the bytes of a key that are kept: keys come from requests (an IP, a project
// id taken from a key prefix) and must not let a caller make us store megabytes per entry.
const maxKeyLen = 128

// sweepEvery is how often, in the injected clock's nanoseconds, a shard drops its expired
// entries, on the first access after that much time.
const sweepEvery = int64(60e9)

// evictSample is how many entries a full shard looks at to choose one to evict.
const evictSample = 8

// table is a bounded map from string keys to per-key state, in shards each guarded by a
// mutex. Every entry says until when it matters (expires); expired entries are swept once a
// minute, and when a shard is full the entry expiring soonest among a small sample is evicted
// to make room. Lookups of existing keys do not allocate.
type table[V any] struct {
	seed     maphash.Seed
	perShard int
	shards   [numShards]shard[V]
}

type shard[V any] struct {
	mu        sync.Mutex
	m         map[string]*entry[V]
	nextSweep int64
	_         [40]byte // keep shards on separate cache lines
}

type entry[V any] struct {
	expires int64 // unix nanoseconds after which the state holds nothing worth keeping
	v       V
}

// init sizes the table for about limit entries (rounded up to a multiple of numShards).
func (t *table[V]) init(limit int) {
	t.seed = maphash.MakeSeed()
	t.perShard = max(1, (limit+numShards-1)/numShards)
	for i := range t.shards {
		t.shards[i].m = make(map[string]*entry[V])
	}
}

func clampKey(key string) string {
	if len(key) > maxKeyLen {
		return key[:maxKeyLen]
	}
	return key
}

// shard returns the shard of key, which must already be clamped.
func (t *table[V]) shard(key string) *shard[V] {
	return &t.shards[maphash.String(t.seed, key)%numShards]
}

// get returns key's entry, creating it when create is set (created reports that), or nil.
// The caller holds s.mu.
func (s *shard[V]) get(key string, now int64, create bool, perShard int) (e *entry[V], created bool) {
	if now >= s.nextSweep {
		s.sweep(now)
	}
	if e = s.m[key]; e != nil || !create {
		return e, false
	}
	if len(s.m) >= perShard {
		s.evict()
	}
	e = new(entry[V])
	s.m[strings.Clone(key)] = e
	return e, true
}

func (s *shard[V]) sweep(now int64) {
	for k, e := range s.m {
		if e.expires <= now {
			delete(s.m, k)
		}
	}
	s.nextSweep = now + sweepEvery
}

// evict removes the entry expiring soonest among a few (map iteration starts at a random
// place, so this is a random sample), keeping long-lived state such as IP blocks longest.
func (s *shard[V]) evict() {
	var victim string
	var soonest int64
	n := 0
	for k, e := range s.m {
		if n == 0 || e.expires < soonest {
			victim, soonest = k, e.expires
		}
		if n++; n == evictSample {
			break
		}
	}
	if n > 0 {
		delete(s.m, victim)
	}
}

// len returns the number of entries, for tests.
func (t *table[V]) len() int {
	n := 0
	for i := range t.shards {
		s := &t.shards[i]
		s.mu.Lock()
		n += len(s.m)
		s.mu.Unlock()
	}
	return n
}

// ring keeps the times of the last len(t) observations of a key, so that "at least N in the
// last W" is exact: it holds when N observations are stored and the oldest is younger than W.
type ring struct {
	t    []int64 // unix nanoseconds
	head int     // next slot to write, which holds the oldest time once the ring is full
	n    int
}

// add records an observation at unix nanoseconds now and reports whether the ring now holds
// len(t) observations all younger than window.
func (r *ring) add(now int64, window time.Duration) bool {
	r.t[r.head] = now
	r.head++
	if r.head == len(r.t) {
		r.head = 0
	}
	if r.n < len(r.t) {
		r.n++
	}
	return r.n == len(r.t) && now-r.t[r.head] < int64(window)
}

func (r *ring) reset() { r.head, r.n = 0, 0 }
