package ratelimit

import (
	"context"
	"fmt"
	"hash/maphash"
	"sync"
	"time"
)

// DefaultMaxKeys is MemoryOptions.MaxKeys when it is zero.
const DefaultMaxKeys = 100_000

// MemoryOptions configure [NewMemory]. The zero value is usable.
type MemoryOptions struct {
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// MaxKeys bounds the number of buckets kept; 0 means DefaultMaxKeys.
	// See [Memory] for what happens to a new key when they are all in use.
	MaxKeys int
}

// Memory is a Limiter keeping buckets in this process: the single-node
// default, and the local side of a [Fallback].
//
// # Eviction
//
// Memory forgets only full buckets. An absent bucket is a full one, so
// forgetting a full bucket changes no decision; forgetting any other would
// hand its client a fresh burst, and a flood of new keys (addresses of one
// IPv6 /64, say) could then reset the bucket of a client being limited. So:
//
//   - A new key in a shard at its bound takes the place of the full buckets
//     found in a small sample of the shard (all of them are dropped). When
//     the sample holds none, a sampled bucket that holds a token and lacks
//     at most one is dropped instead: its client gains at most one request,
//     and a client being limited holds no token, so it keeps its bucket.
//     Failing that, the whole shard is swept the same way (full buckets,
//     else one a token short); a sweep that finds nothing to drop holds off
//     the next one of that shard for sweepGap (of the limiter's clock).
//   - When neither frees a place, every bucket held has state worth keeping,
//     and the new key is not given one: it is decided by the overflow bucket
//     of its Rule, one shared by every key that found no place. Keys that
//     cannot be tracked are thus limited together, as one client: a flood of
//     new keys gains at most one Rule's worth of requests, and other clients'
//     buckets are untouched. A key in overflow gets its own bucket at its
//     first call after a place frees up.
//   - At most maxOverflowRules Rules have an overflow bucket at once (full
//     ones are dropped to make room); a call under yet another Rule while
//     they are all in use is denied (fail closed).
//
// # Notes
//
//   - Safe for concurrent use. Buckets are spread over sharded mutexes; a
//     call holds one shard's lock for a map lookup and a few integer
//     operations, never while calling out. The overflow buckets have their
//     own mutex, never taken while a shard's is held.
//   - Refill is lazy, computed at each call: no goroutine, no timer.
//   - It never errors except [ErrInvalidRule]; ctx is ignored since Allow
//     never waits.
type Memory struct {
	now    func() time.Time
	seed   maphash.Seed
	mask   uint64
	shards []memShard

	ovMu     sync.Mutex
	overflow map[params]*bucketState // guarded by ovMu
}

type memShard struct {
	mu        sync.Mutex
	max       int
	buckets   map[string]*memBucket
	lastSweep int64    // µs: when makeRoom last scanned the whole shard
	swept     bool     // whether lastSweep is set
	_         [64]byte // keep shards' locks on separate cache lines
}

type memBucket struct {
	s bucketState
	p params
}

const (
	// evictSample is how many buckets an insertion into a full shard
	// inspects before it considers sweeping the whole shard.
	evictSample = 8
	// sweepGap is the least time between two sweeps of one shard.
	sweepGap = int64(time.Second / time.Microsecond)
	// maxOverflowRules bounds the overflow buckets (one per Rule).
	maxOverflowRules = 256
)

var _ Limiter = (*Memory)(nil)

// NewMemory returns an in-memory Limiter.
func NewMemory(opt MemoryOptions) *Memory {
	if opt.Now == nil {
		opt.Now = time.Now
	}
	if opt.MaxKeys <= 0 {
		opt.MaxKeys = DefaultMaxKeys
	}
	// Power-of-two shards, at most 64, each holding at least 256 buckets so
	// that eviction samples are meaningful; the total never exceeds MaxKeys.
	n := 1
	for n < 64 && n*2*256 <= opt.MaxKeys {
		n *= 2
	}
	m := &Memory{now: opt.Now, seed: maphash.MakeSeed(), mask: uint64(n - 1), shards: make([]memShard, n),
		overflow: make(map[params]*bucketState)}
	for i := range m.shards {
		m.shards[i].max = max(opt.MaxKeys/n, 1)
		m.shards[i].buckets = make(map[string]*memBucket)
	}
	return m
}

// Allow implements [Limiter].
func (m *Memory) Allow(_ context.Context, key string, rule Rule) (Decision, error) {
	p, err := rule.params()
	if err != nil {
		return Decision{}, fmt.Errorf("memory limiter: %w: %+v", err, rule)
	}
	now := m.now().UnixMicro()
	sh := &m.shards[maphash.String(m.seed, key)&m.mask]
	sh.mu.Lock()
	b, ok := sh.buckets[key]
	if !ok {
		if len(sh.buckets) >= sh.max {
			var room bool
			if b, room = sh.makeRoom(now); !room {
				sh.mu.Unlock()
				return m.allowOverflow(now, p), nil
			}
		}
		if b == nil {
			b = &memBucket{}
		}
		sh.buckets[key] = b
	}
	var d Decision
	d, b.s = step(b.s, ok, now, p)
	b.p = p
	sh.mu.Unlock()
	return d, nil
}

// makeRoom frees places in a shard at its bound by forgetting full buckets
// only: those of a small sample (map iteration starts at a random place),
// else, at most once per sweepGap, those of the whole shard. It reports
// whether a place is free, and returns one forgotten bucket for reuse (or
// nil). Called with sh.mu held.
func (sh *memShard) makeRoom(now int64) (reuse *memBucket, room bool) {
	seen := 0
	near := ""
	for k, b := range sh.buckets {
		if b.s.full(now, b.p) {
			delete(sh.buckets, k)
			reuse = b
		} else if near == "" && b.s.nearlyFull(now, b.p) {
			near = k
		}
		if seen++; seen >= evictSample {
			break
		}
	}
	if reuse == nil && near != "" {
		// No full bucket in the sample: one a token short of full costs
		// its client at most one request, and keeps newcomers out of the
		// shared overflow bucket.
		reuse = sh.buckets[near]
		delete(sh.buckets, near)
	}
	if reuse == nil && (!sh.swept || now-sh.lastSweep >= sweepGap) {
		// The sample (a random part of the shard) held nothing to drop:
		// look at the whole shard, full buckets first, else one a token
		// short of full. Only a sweep that finds nothing to drop holds off
		// the next one for sweepGap: then every bucket has state worth
		// keeping and sweeping again at once would find nothing either.
		near = ""
		for k, b := range sh.buckets {
			if b.s.full(now, b.p) {
				delete(sh.buckets, k)
				reuse = b
			} else if near == "" && b.s.nearlyFull(now, b.p) {
				near = k
			}
		}
		if reuse == nil && near != "" {
			reuse = sh.buckets[near]
			delete(sh.buckets, near)
		}
		if reuse == nil {
			sh.lastSweep, sh.swept = now, true
		}
	}
	return reuse, len(sh.buckets) < sh.max
}

// allowOverflow decides for a key that found no place, with the overflow
// bucket of its rule (see [Memory]).
func (m *Memory) allowOverflow(now int64, p params) Decision {
	m.ovMu.Lock()
	defer m.ovMu.Unlock()
	s, ok := m.overflow[p]
	if !ok {
		if len(m.overflow) >= maxOverflowRules {
			for q, o := range m.overflow {
				if o.full(now, q) {
					delete(m.overflow, q)
				}
			}
		}
		if len(m.overflow) >= maxOverflowRules {
			// Fail closed: deny as an empty bucket would.
			return Decision{Limit: int(p.burst), RetryAfter: time.Duration(ceilDiv(p.per, p.rate)) * time.Microsecond,
				Reset: time.Duration(ceilDiv(p.cap, p.rate)) * time.Microsecond}
		}
		s = &bucketState{}
		m.overflow[p] = s
	}
	var d Decision
	d, *s = step(*s, ok, now, p)
	return d
}

// len reports the number of buckets held (for tests).
func (m *Memory) len() int {
	n := 0
	for i := range m.shards {
		sh := &m.shards[i]
		sh.mu.Lock()
		n += len(sh.buckets)
		sh.mu.Unlock()
	}
	return n
}
