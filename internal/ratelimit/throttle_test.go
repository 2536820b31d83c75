package ratelimit

import (
	"fmt"
	"hash/maphash"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestThrottle(t *testing.T) {
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	th := NewThrottle(time.Minute, 100)
	steps := []struct {
		key  string
		at   time.Duration
		want bool
	}{
		{"a", 0, true},
		{"a", time.Second, false},
		{"b", time.Second, true},
		{"a", 59 * time.Second, false},
		{"a", -time.Second, false}, // a caller whose clock read was a little earlier
		{"a", time.Minute, true},   // a new window
		{"a", time.Minute + 30*time.Second, false},
		{"b", time.Minute + time.Second, true},
		{"a", 2*time.Minute + 59*time.Second, true},
	}
	for i, s := range steps {
		if got := th.First(s.key, t0.Add(s.at)); got != s.want {
			t.Errorf("step %d: First(%q, t0+%v) = %v, want %v", i, s.key, s.at, got, s.want)
		}
	}
}

func TestThrottleBoundsMemory(t *testing.T) {
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	th := NewThrottle(time.Hour, 160)
	for i := range 10_000 {
		if !th.First(fmt.Sprintf("client-%d", i), t0) {
			t.Fatalf("First for new client %d = false, want true", i)
		}
	}
	if n := th.len(); n > 160 {
		t.Errorf("len = %d after 10000 keys, want at most 160", n)
	}
	// Expired entries make room, all those sampled, before live ones go.
	th = NewThrottle(time.Minute, 3*throttleShards) // three keys per shard
	k := sameShard(th, 4)
	th.First(k[0], t0)
	th.First(k[1], t0.Add(time.Second))
	th.First(k[2], t0.Add(50*time.Second))
	th.First(k[3], t0.Add(70*time.Second)) // k[0] and k[1] have expired
	if n := th.len(); n != 2 {
		t.Errorf("len = %d after inserting into a full shard holding two expired keys, want 2", n)
	}
	if th.First(k[2], t0.Add(75*time.Second)) {
		t.Errorf("First(%q) within its window = true after an eviction, want false (a live key was evicted)", k[2])
	}
}

// sameShard returns n keys that th puts in one shard.
func sameShard(th *Throttle, n int) []string {
	var keys []string
	for i := 0; len(keys) < n; i++ {
		k := fmt.Sprintf("client-%d", i)
		if maphash.String(th.seed, k)%throttleShards == 0 {
			keys = append(keys, k)
		}
	}
	return keys
}

func TestThrottleConcurrent(t *testing.T) {
	th := NewThrottle(time.Minute, 0)
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	var firsts atomic.Int64
	var wg sync.WaitGroup
	for range 16 {
		wg.Go(func() {
			for range 100 {
				if th.First("flood", now) {
					firsts.Add(1)
				}
			}
		})
	}
	wg.Wait()
	if firsts.Load() != 1 {
		t.Errorf("1600 concurrent calls in one window: %d returned true, want 1", firsts.Load())
	}
}
