package ratelimit

import (
	"hash/maphash"
	"sync"
	"time"
)

// Throttle answers "is this the first time in the current window for this
// key?", so that a flood of denied requests produces one event per window per
// client rather than one per request.
//
// # Notes
//
//   - A key's window starts at the call that returned true and lasts Window.
//   - Memory is bounded by maxKeys. When full, expired entries are forgotten
//     first, else the oldest of a small sample; a forgotten key can be
//     reported again before its window ends, so under a churn of more than
//     maxKeys distinct keys per window the guarantee weakens to "about one".
//   - Safe for concurrent use: of concurrent calls for one key in one window,
//     exactly one returns true.
type Throttle struct {
	window time.Duration
	seed   maphash.Seed
	shards [throttleShards]throttleShard
}

const throttleShards = 16

type throttleShard struct {
	mu    sync.Mutex
	max   int
	start map[string]int64 // key → window start, Unix ns
	_     [64]byte
}

// DefaultThrottleKeys is NewThrottle's maxKeys when it is zero or less.
const DefaultThrottleKeys = 100_000

// NewThrottle returns a Throttle with the given window (at least 1ns) that
// remembers at most maxKeys keys (DefaultThrottleKeys if maxKeys <= 0).
func NewThrottle(window time.Duration, maxKeys int) *Throttle {
	if window <= 0 {
		window = 1
	}
	if maxKeys <= 0 {
		maxKeys = DefaultThrottleKeys
	}
	t := &Throttle{window: window, seed: maphash.MakeSeed()}
	for i := range t.shards {
		t.shards[i].max = max(maxKeys/throttleShards, 1)
		t.shards[i].start = make(map[string]int64)
	}
	return t
}

// First reports whether this is the first call for key in the window that
// contains now, starting a new window when it is.
func (t *Throttle) First(key string, now time.Time) bool {
	ns := now.UnixNano()
	sh := &t.shards[maphash.String(t.seed, key)%throttleShards]
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if start, ok := sh.start[key]; ok {
		// A call slightly behind the window start (callers read their clocks
		// at different moments) is inside the window, not a new one.
		if d := ns - start; d < int64(t.window) && d > -int64(t.window) {
			return false
		}
	} else if len(sh.start) >= sh.max {
		sh.evict(ns, int64(t.window))
	}
	sh.start[key] = ns
	return true
}

// evict forgets the expired entries of a small sample, or else its oldest.
// Called with sh.mu held.
func (sh *throttleShard) evict(now, window int64) {
	var (
		victim     string
		oldest     int64
		haveVictim bool
		freed      bool
		seen       int
	)
	for k, start := range sh.start {
		if now-start >= window {
			delete(sh.start, k)
			freed = true
		} else if !haveVictim || start < oldest {
			victim, oldest, haveVictim = k, start, true
		}
		if seen++; seen >= evictSample {
			break
		}
	}
	if !freed && haveVictim {
		delete(sh.start, victim)
	}
}

// len reports the number of keys held (for tests).
func (t *Throttle) len() int {
	n := 0
	for i := range t.shards {
		sh := &t.shards[i]
		sh.mu.Lock()
		n += len(sh.start)
		sh.mu.Unlock()
	}
	return n
}
