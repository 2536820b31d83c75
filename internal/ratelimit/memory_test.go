package ratelimit

import (
	"context"
	"fmt"
	"testing"
	"time"
)

func TestMemoryEvictsFullBucketsFirst(t *testing.T) {
	clock := newFakeClock()
	m := NewMemory(MemoryOptions{Now: clock.Now, MaxKeys: 3})
	ctx := context.Background()
	slow := Rule{Rate: 1, Per: time.Hour, Burst: 1}
	fast := Rule{Rate: 1, Per: time.Millisecond, Burst: 1}
	for _, k := range []string{"slow-1", "slow-2"} {
		if d, _ := m.Allow(ctx, k, slow); !d.Allowed {
			t.Fatalf("Allow(%q) = %+v, want allowed", k, d)
		}
	}
	clock.Advance(time.Millisecond) // "fast" is the most recently used
	if _, err := m.Allow(ctx, "fast", fast); err != nil {
		t.Fatal(err)
	}
	clock.Advance(time.Second) // "fast" is full again, the others are not
	if _, err := m.Allow(ctx, "new", slow); err != nil {
		t.Fatal(err)
	}
	if n := m.len(); n != 3 {
		t.Errorf("len = %d, want 3 (MaxKeys)", n)
	}
	for _, k := range []string{"slow-1", "slow-2"} {
		if d, _ := m.Allow(ctx, k, slow); d.Allowed {
			t.Errorf("Allow(%q) = %+v after an insertion; its empty bucket was evicted instead of the full one", k, d)
		}
	}
}

func TestMemoryBoundsKeys(t *testing.T) {
	for _, maxKeys := range []int{1, 3, 1000, 20_000} {
		t.Run(fmt.Sprint(maxKeys), func(t *testing.T) {
			clock := newFakeClock()
			m := NewMemory(MemoryOptions{Now: clock.Now, MaxKeys: maxKeys})
			r := Rule{Rate: 1, Per: time.Hour, Burst: 2} // nothing refills: every eviction is forced
			for i := range 3 * maxKeys {
				d, err := m.Allow(context.Background(), fmt.Sprintf("ip-%d", i), r)
				if err != nil || !d.Allowed {
					t.Fatalf("new key %d: %+v, %v; want allowed", i, d, err)
				}
			}
			if n := m.len(); n > maxKeys || n < maxKeys/2 {
				t.Errorf("len = %d after %d keys, want at most MaxKeys %d and not far below", n, 3*maxKeys, maxKeys)
			}
		})
	}
}

func TestMemoryDefaults(t *testing.T) {
	m := NewMemory(MemoryOptions{})
	if len(m.shards) != 64 || m.shards[0].max*len(m.shards) > DefaultMaxKeys {
		t.Errorf("default: %d shards of %d buckets, want 64 shards within %d", len(m.shards), m.shards[0].max, DefaultMaxKeys)
	}
	r := Rule{Rate: 1, Per: time.Hour, Burst: 1}
	if d, err := m.Allow(context.Background(), "k", r); err != nil || !d.Allowed {
		t.Fatalf("first Allow on the real clock = %+v, %v; want allowed", d, err)
	}
	if d, err := m.Allow(context.Background(), "k", r); err != nil || d.Allowed || d.RetryAfter <= 59*time.Minute {
		t.Fatalf("second Allow on the real clock = %+v, %v; want denied for about an hour", d, err)
	}
}
