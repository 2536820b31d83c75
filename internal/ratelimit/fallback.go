package ratelimit

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"
)

// probeInterval is how often, while degraded, one call tries the primary
// again; every other call goes straight to the local limiter, so a dead
// Redis costs at most one failed round trip (or dial timeout) per interval.
const probeInterval = time.Second

// NewFallback returns a Limiter that decides with primary (a shared [Redis])
// and, while primary fails, with local (a [Memory]) — never "allow all" and
// never "deny all" because of an outage.
//
// onChange, if not nil, is called with (true, err) when primary first fails
// and with (false, nil) when it answers again: once per transition, never
// concurrently, synchronously on the goroutine of the Allow that saw the
// change. It must not call the returned Limiter.
//
// # Notes
//
//   - While degraded, one call per second probes primary; the others use
//     local without touching primary. Only a successful probe ends the
//     degraded state.
//   - Local buckets are not fed while primary works, so they start full at
//     failover; and with N nodes, local limits allow up to N times the rule.
//   - Errors that are not outages are returned as they are: an invalid rule
//     ([ErrInvalidRule]). A call whose ctx the caller cancelled is decided
//     locally without changing state. A deadline exceeded while calling
//     primary counts as an outage (Redis too slow).
//   - Safe for concurrent use if primary and local are.
func NewFallback(primary, local Limiter, onChange func(degraded bool, err error)) Limiter {
	return &fallback{primary: primary, local: local, onChange: onChange, now: time.Now}
}

type fallback struct {
	primary, local Limiter
	onChange       func(degraded bool, err error)
	now            func() time.Time // tests replace it before first use

	degraded  atomic.Bool
	nextProbe atomic.Int64 // Unix ns; while degraded, the first call at or after it probes
	mu        sync.Mutex   // serializes transitions and onChange calls
}

func (f *fallback) Allow(ctx context.Context, key string, rule Rule) (Decision, error) {
	probing := false
	if f.degraded.Load() {
		next := f.nextProbe.Load()
		now := f.now().UnixNano()
		if now < next || !f.nextProbe.CompareAndSwap(next, now+int64(probeInterval)) {
			return f.local.Allow(ctx, key, rule)
		}
		probing = true
	}
	d, err := f.primary.Allow(ctx, key, rule)
	switch {
	case err == nil:
		if probing {
			f.transition(false, nil)
		}
		return d, nil
	case errors.Is(err, ErrInvalidRule):
		return Decision{}, err
	case errors.Is(ctx.Err(), context.Canceled):
		return f.local.Allow(ctx, key, rule)
	}
	f.transition(true, err)
	return f.local.Allow(ctx, key, rule)
}

func (f *fallback) transition(degraded bool, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.degraded.Load() == degraded {
		return
	}
	if degraded {
		f.nextProbe.Store(f.now().UnixNano() + int64(probeInterval))
	}
	f.degraded.Store(degraded)
	if f.onChange != nil {
		f.onChange(degraded, err)
	}
}
