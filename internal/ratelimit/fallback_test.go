package ratelimit

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// changes records onChange calls.
type changes struct {
	mu    sync.Mutex
	calls []change
}

type change struct {
	degraded bool
	err      error
}

func (c *changes) record(degraded bool, err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.calls = append(c.calls, change{degraded, err})
}

func (c *changes) get() []change {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]change(nil), c.calls...)
}

// switchable is a primary the test can swap.
type switchable struct{ l atomic.Pointer[Limiter] }

func (s *switchable) set(l Limiter) { s.l.Store(&l) }

func (s *switchable) Allow(ctx context.Context, key string, rule Rule) (Decision, error) {
	return (*s.l.Load()).Allow(ctx, key, rule)
}

// TestFallbackRedisDown points the primary at a closed port, then at the
// real Redis.
func TestFallbackRedisDown(t *testing.T) {
	good := redisClient(t)
	clock := newFakeClock()
	var primary switchable
	primary.set(NewRedis(deadRedis(t), RedisOptions{Now: clock.Now}))
	var ch changes
	l := NewFallback(&primary, NewMemory(MemoryOptions{Now: clock.Now}), ch.record)
	l.(*fallback).now = clock.Now

	r := Rule{Rate: 1, Per: time.Hour, Burst: 2}
	ctx := context.Background()
	for i, want := range []bool{true, true, false, false} {
		d, err := l.Allow(ctx, "client", r)
		if err != nil {
			t.Fatalf("call %d with Redis down: error %v, want a local decision", i, err)
		}
		if d.Allowed != want {
			t.Fatalf("call %d with Redis down: %+v, want Allowed=%v (the local bucket)", i, d, want)
		}
	}
	if d, err := l.Allow(ctx, "other-client", r); err != nil || !d.Allowed {
		t.Fatalf("a fresh client with Redis down: %+v, %v; want allowed", d, err)
	}
	got := ch.get()
	if len(got) != 1 || !got[0].degraded || got[0].err == nil {
		t.Fatalf("onChange calls = %+v, want exactly one (true, <error>)", got)
	}

	// Redis is back; the next probe uses it and says so.
	primary.set(NewRedis(good, RedisOptions{Prefix: testPrefix(t, good), Now: clock.Now}))
	clock.Advance(probeInterval)
	d, err := l.Allow(ctx, "client", r)
	if err != nil {
		t.Fatal(err)
	}
	// The local bucket of "client" is empty; Redis's is full.
	if !d.Allowed || d.Remaining != 1 {
		t.Errorf("first call after Redis returned = %+v, want allowed by Redis with Remaining 1", d)
	}
	got = ch.get()
	if len(got) != 2 || got[1].degraded || got[1].err != nil {
		t.Fatalf("onChange calls = %+v, want (true, <error>) then (false, <nil>)", got)
	}
}

// scripted is a primary that fails on demand and counts its calls.
type scripted struct {
	fail  atomic.Bool
	calls atomic.Int64
	mem   *Memory
}

var errDown = errors.New("primary down")

func (s *scripted) Allow(ctx context.Context, key string, rule Rule) (Decision, error) {
	s.calls.Add(1)
	if s.fail.Load() {
		return Decision{}, fmt.Errorf("redis limiter: %w", errDown)
	}
	return s.mem.Allow(ctx, key, rule)
}

func TestFallbackTransitions(t *testing.T) {
	clock := newFakeClock()
	primary := &scripted{mem: NewMemory(MemoryOptions{Now: clock.Now})}
	local := NewMemory(MemoryOptions{Now: clock.Now})
	var ch changes
	l := NewFallback(primary, local, ch.record)
	l.(*fallback).now = clock.Now
	r := Rule{Rate: 1, Per: time.Hour, Burst: 1000}
	ctx := context.Background()

	if d, err := l.Allow(ctx, "k", r); err != nil || !d.Allowed || d.Remaining != 999 {
		t.Fatalf("healthy: %+v, %v", d, err)
	}
	if n := len(ch.get()); n != 0 {
		t.Fatalf("healthy: %d onChange calls, want 0", n)
	}

	// Many concurrent failures: one transition.
	primary.fail.Store(true)
	var wg sync.WaitGroup
	var errs atomic.Int64
	for range 16 {
		wg.Go(func() {
			for range 10 {
				if _, err := l.Allow(ctx, "k", r); err != nil {
					errs.Add(1)
				}
			}
		})
	}
	wg.Wait()
	if errs.Load() != 0 {
		t.Fatalf("%d calls returned errors while degraded, want local decisions", errs.Load())
	}
	got := ch.get()
	if len(got) != 1 || !got[0].degraded || !errors.Is(got[0].err, errDown) {
		t.Fatalf("onChange calls = %+v, want exactly one (true, errDown)", got)
	}

	// Degraded: primary is left alone until the probe interval passes.
	before := primary.calls.Load()
	for range 100 {
		if _, err := l.Allow(ctx, "k", r); err != nil {
			t.Fatal(err)
		}
	}
	if n := primary.calls.Load() - before; n != 0 {
		t.Errorf("primary called %d times within the probe interval, want 0", n)
	}

	// A failing probe: one primary call, no new transition.
	clock.Advance(probeInterval)
	before = primary.calls.Load()
	for range 10 {
		if _, err := l.Allow(ctx, "k", r); err != nil {
			t.Fatal(err)
		}
	}
	if n := primary.calls.Load() - before; n != 1 {
		t.Errorf("primary called %d times after one probe interval, want 1", n)
	}
	if n := len(ch.get()); n != 1 {
		t.Errorf("%d onChange calls after a failed probe, want still 1", n)
	}

	// Invalid rules are reported, not decided.
	if _, err := l.Allow(ctx, "k", Rule{}); !errors.Is(err, ErrInvalidRule) {
		t.Errorf("Allow(Rule{}) error = %v, want ErrInvalidRule", err)
	}

	// Recovery, seen by the next probe only.
	primary.fail.Store(false)
	clock.Advance(probeInterval)
	d, err := l.Allow(ctx, "k", r)
	if err != nil || !d.Allowed || d.Remaining != 998 {
		t.Fatalf("after recovery: %+v, %v; want primary's bucket (Remaining 998)", d, err)
	}
	got = ch.get()
	if len(got) != 2 || got[1] != (change{false, nil}) {
		t.Fatalf("onChange calls = %+v, want a second (false, <nil>)", got)
	}

	// A caller that gave up is no outage.
	primary.fail.Store(true)
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if d, err := l.Allow(cctx, "k", r); err != nil || !d.Allowed {
		t.Errorf("cancelled caller: %+v, %v; want a local decision", d, err)
	}
	if n := len(ch.get()); n != 2 {
		t.Errorf("%d onChange calls after a cancelled call, want still 2", n)
	}
}

func TestFallbackNeverAllowsAll(t *testing.T) {
	clock := newFakeClock()
	primary := &scripted{mem: NewMemory(MemoryOptions{Now: clock.Now})}
	primary.fail.Store(true)
	l := NewFallback(primary, NewMemory(MemoryOptions{Now: clock.Now}), nil)
	l.(*fallback).now = clock.Now
	r := Rule{Rate: 1, Per: time.Minute, Burst: 5}
	allowed := 0
	for range 50 {
		d, err := l.Allow(context.Background(), "flood", r)
		if err != nil {
			t.Fatal(err)
		}
		if d.Allowed {
			allowed++
		}
	}
	if allowed != 5 {
		t.Errorf("degraded: %d of 50 calls allowed, want 5 (the local bucket)", allowed)
	}
}
