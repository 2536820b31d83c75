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
	// When a new key would exceed it, a full bucket (one whose loss changes
	// nothing) is forgotten, else the least recently refilled of a small
	// sample, which gives that key a full bucket again.
	MaxKeys int
}

// Memory is a Limiter keeping buckets in this process: the single-node
// default, and the local side of a [Fallback].
//
// # Notes
//
//   - Safe for concurrent use. Buckets are spread over sharded mutexes; a
//     call holds one shard's lock for a map lookup and a few integer
//     operations, never while calling out.
//   - Refill is lazy, computed at each call: no goroutine, no timer.
//   - It never errors except [ErrInvalidRule]; ctx is ignored since Allow
//     never waits.
type Memory struct {
	now    func() time.Time
	seed   maphash.Seed
	mask   uint64
	shards []memShard
}

type memShard struct {
	mu      sync.Mutex
	max     int
	buckets map[string]*memBucket
	_       [64]byte // keep shards' locks on separate cache lines
}

type memBucket struct {
	s bucketState
	p params
}

// evictSample is how many buckets an insertion into a full shard inspects.
const evictSample = 8

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
	m := &Memory{now: opt.Now, seed: maphash.MakeSeed(), mask: uint64(n - 1), shards: make([]memShard, n)}
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
			b = sh.evict(now)
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

// evict makes room for one bucket: it forgets every full bucket in a small
// sample (map iteration starts at a random place), or else the one of the
// sample refilled least recently. It returns one forgotten bucket for reuse
// (or nil). Called with sh.mu held.
func (sh *memShard) evict(now int64) (reuse *memBucket) {
	var (
		victim     string
		victimB    *memBucket
		oldest     int64
		haveVictim bool
		freed      bool
		seen       int
	)
	for k, b := range sh.buckets {
		if b.s.full(now, b.p) {
			delete(sh.buckets, k)
			freed, reuse = true, b
		} else if !haveVictim || b.s.last < oldest {
			victim, victimB, oldest, haveVictim = k, b, b.s.last, true
		}
		if seen++; seen >= evictSample {
			break
		}
	}
	if !freed && haveVictim {
		delete(sh.buckets, victim)
		reuse = victimB
	}
	return reuse
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
