package ratelimit

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// fakeClock is a clock the test moves by hand.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newFakeClock() *fakeClock {
	return &fakeClock{t: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// call is one step of a scripted scenario: move the clock, then Allow.
type call struct {
	advance time.Duration
	key     string
	rule    Rule
	want    Decision
}

func runScript(t *testing.T, l Limiter, clock *fakeClock, calls []call) {
	t.Helper()
	for i, c := range calls {
		clock.Advance(c.advance)
		got, err := l.Allow(context.Background(), c.key, c.rule)
		if err != nil {
			t.Fatalf("call %d: Allow(%q, %+v) error: %v", i, c.key, c.rule, err)
		}
		if got != c.want {
			t.Fatalf("call %d: Allow(%q, %+v) = %+v, want %+v", i, c.key, c.rule, got, c.want)
		}
	}
}

const ms = time.Millisecond

// testLimiter is the suite every Limiter backend must pass; newLimiter
// returns a fresh, empty limiter reading time from now.
func testLimiter(t *testing.T, newLimiter func(t *testing.T, now func() time.Time) Limiter) {
	ten := Rule{Rate: 10, Per: time.Second, Burst: 3}
	allow := func(rem int, reset time.Duration) Decision {
		return Decision{Allowed: true, Limit: 3, Remaining: rem, Reset: reset}
	}
	deny := func(retry, reset time.Duration) Decision {
		return Decision{Limit: 3, RetryAfter: retry, Reset: reset}
	}

	t.Run("burst, deny, refill", func(t *testing.T) {
		clock := newFakeClock()
		runScript(t, newLimiter(t, clock.Now), clock, []call{
			{0, "a", ten, allow(2, 100*ms)},
			{0, "a", ten, allow(1, 200*ms)},
			{0, "a", ten, allow(0, 300*ms)},
			{0, "a", ten, deny(100*ms, 300*ms)},
			// A denial takes nothing: half a token later, half the wait.
			{50 * ms, "a", ten, deny(50*ms, 250*ms)},
			{50 * ms, "a", ten, allow(0, 300*ms)},
			// 2.5 tokens refill; the half token is kept.
			{250 * ms, "a", ten, allow(1, 150*ms)},
			{50 * ms, "a", ten, allow(1, 200*ms)},
			// Long idle: full, never more than Burst.
			{time.Hour, "a", ten, allow(2, 100*ms)},
		})
	})

	t.Run("rates that do not divide Per are exact", func(t *testing.T) {
		clock := newFakeClock()
		three := Rule{Rate: 3, Per: time.Second, Burst: 1}
		third := 333334 * time.Microsecond // ⌈1s/3⌉
		runScript(t, newLimiter(t, clock.Now), clock, []call{
			{0, "k", three, Decision{Allowed: true, Limit: 1, Reset: third}},
			{0, "k", three, Decision{Limit: 1, RetryAfter: third, Reset: third}},
			{333333 * time.Microsecond, "k", three, Decision{Limit: 1, RetryAfter: time.Microsecond, Reset: time.Microsecond}},
			{time.Microsecond, "k", three, Decision{Allowed: true, Limit: 1, Reset: third}},
		})
	})

	t.Run("keys are independent", func(t *testing.T) {
		clock := newFakeClock()
		one := Rule{Rate: 1, Per: time.Minute, Burst: 1}
		runScript(t, newLimiter(t, clock.Now), clock, []call{
			{0, "client-1", one, Decision{Allowed: true, Limit: 1, Reset: time.Minute}},
			{0, "client-1", one, Decision{Limit: 1, RetryAfter: time.Minute, Reset: time.Minute}},
			{0, "client-2", one, Decision{Allowed: true, Limit: 1, Reset: time.Minute}},
			{0, "203.0.113.7", one, Decision{Allowed: true, Limit: 1, Reset: time.Minute}},
		})
	})

	t.Run("a clock going backwards refills nothing", func(t *testing.T) {
		clock := newFakeClock()
		r := Rule{Rate: 1, Per: time.Second, Burst: 2}
		runScript(t, newLimiter(t, clock.Now), clock, []call{
			{0, "k", r, Decision{Allowed: true, Limit: 2, Remaining: 1, Reset: time.Second}},
			{0, "k", r, Decision{Allowed: true, Limit: 2, Reset: 2 * time.Second}},
			{-10 * time.Second, "k", r, Decision{Limit: 2, RetryAfter: time.Second, Reset: 2 * time.Second}},
			// Back at the bucket's own time plus half a second.
			{10*time.Second + 500*ms, "k", r, Decision{Limit: 2, RetryAfter: 500 * ms, Reset: 1500 * ms}},
		})
	})

	t.Run("a changed rule carries whole tokens over", func(t *testing.T) {
		clock := newFakeClock()
		perMinute := Rule{Rate: 1, Per: time.Minute, Burst: 5}
		perSecond := Rule{Rate: 10, Per: time.Second, Burst: 4}
		smaller := Rule{Rate: 10, Per: time.Second, Burst: 1}
		runScript(t, newLimiter(t, clock.Now), clock, []call{
			{0, "k", perMinute, Decision{Allowed: true, Limit: 5, Remaining: 4, Reset: time.Minute}},
			{0, "k", perMinute, Decision{Allowed: true, Limit: 5, Remaining: 3, Reset: 2 * time.Minute}},
			{0, "k", perSecond, Decision{Allowed: true, Limit: 4, Remaining: 2, Reset: 200 * ms}},
			{0, "k", smaller, Decision{Allowed: true, Limit: 1, Reset: 100 * ms}},
			{0, "k", smaller, Decision{Limit: 1, RetryAfter: 100 * ms, Reset: 100 * ms}},
		})
	})

	t.Run("large rules stay exact", func(t *testing.T) {
		clock := newFakeClock()
		daily := Rule{Rate: 1, Per: 24 * time.Hour, Burst: 50_000}
		fast := Rule{Rate: 1_000_000, Per: time.Millisecond, Burst: 1000}
		runScript(t, newLimiter(t, clock.Now), clock, []call{
			{0, "d", daily, Decision{Allowed: true, Limit: 50_000, Remaining: 49_999, Reset: 24 * time.Hour}},
			{0, "d", daily, Decision{Allowed: true, Limit: 50_000, Remaining: 49_998, Reset: 48 * time.Hour}},
			{12 * time.Hour, "d", daily, Decision{Allowed: true, Limit: 50_000, Remaining: 49_997, Reset: 60 * time.Hour}},
			{0, "f", fast, Decision{Allowed: true, Limit: 1000, Remaining: 999, Reset: time.Microsecond}},
		})
	})

	t.Run("invalid rules are errors, not decisions", func(t *testing.T) {
		clock := newFakeClock()
		l := newLimiter(t, clock.Now)
		for _, r := range []Rule{
			{Rate: 0, Per: time.Second, Burst: 1},
			{Rate: -1, Per: time.Second, Burst: 1},
			{Rate: 1, Per: 0, Burst: 1},
			{Rate: 1, Per: 999 * time.Nanosecond, Burst: 1},
			{Rate: 1, Per: time.Second, Burst: 0},
			{Rate: 1, Per: 24 * time.Hour, Burst: 1_000_000},
			{Rate: 1 << 62, Per: time.Second, Burst: 1},
		} {
			d, err := l.Allow(context.Background(), "k", r)
			if !errors.Is(err, ErrInvalidRule) {
				t.Errorf("Allow(%+v) error = %v, want ErrInvalidRule", r, err)
			}
			if d.Allowed {
				t.Errorf("Allow(%+v) allowed with an invalid rule", r)
			}
		}
	})

	t.Run("concurrent callers share one bucket", func(t *testing.T) {
		clock := newFakeClock()
		l := newLimiter(t, clock.Now)
		r := Rule{Rate: 1, Per: time.Hour, Burst: 50}
		var allowed, denied atomic.Int64
		var wg sync.WaitGroup
		errs := make(chan error, 8)
		for range 8 {
			wg.Go(func() {
				for range 20 {
					d, err := l.Allow(context.Background(), "shared", r)
					if err != nil {
						errs <- err
						return
					}
					if d.Allowed {
						allowed.Add(1)
					} else {
						denied.Add(1)
					}
				}
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatalf("Allow: %v", err)
		}
		if allowed.Load() != 50 || denied.Load() != 110 {
			t.Errorf("160 concurrent calls on a bucket of 50: %d allowed, %d denied; want 50, 110", allowed.Load(), denied.Load())
		}
	})
}

func TestMemoryLimiter(t *testing.T) {
	testLimiter(t, func(t *testing.T, now func() time.Time) Limiter {
		return NewMemory(MemoryOptions{Now: now})
	})
}
