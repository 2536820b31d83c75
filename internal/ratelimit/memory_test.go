package ratelimit

import (
	"context"
	"fmt"
	"testing"
	"time"
)

func TestMemoryEvictsOnlyFullBuckets(t *testing.T) {
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

// TestMemoryBoundsKeys: however many keys arrive, at most MaxKeys buckets
// are kept; keys beyond them, while no bucket is full, share one overflow
// bucket, so the flood gains at most one Burst over the buckets it holds.
func TestMemoryBoundsKeys(t *testing.T) {
	for _, maxKeys := range []int{1, 3, 1000, 20_000} {
		t.Run(fmt.Sprint(maxKeys), func(t *testing.T) {
			clock := newFakeClock()
			m := NewMemory(MemoryOptions{Now: clock.Now, MaxKeys: maxKeys})
			// Nothing refills, and one request empties a bucket: no bucket
			// becomes full or nearly full (a token short), so none may go.
			r := Rule{Rate: 1, Per: time.Hour, Burst: 1}
			allowed := 0
			for i := range 3 * maxKeys {
				d, err := m.Allow(context.Background(), fmt.Sprintf("ip-%d", i), r)
				if err != nil {
					t.Fatal(err)
				}
				if d.Allowed {
					allowed++
				}
			}
			n := m.len()
			if n > maxKeys || n < maxKeys/2 {
				t.Errorf("len = %d after %d keys, want at most MaxKeys %d and not far below", n, 3*maxKeys, maxKeys)
			}
			if allowed != n+r.Burst {
				t.Errorf("%d of %d new keys allowed, want %d (one each for the %d tracked, plus the overflow bucket's burst %d)",
					allowed, 3*maxKeys, n+r.Burst, n, r.Burst)
			}
		})
	}
}

// TestMemoryFloodCannotResetLimitedClient, from the attacker's side: a
// client at its limit sends a flood of requests under new keys (one per
// address of its IPv6 /64, say), enough to fill the limiter several times
// over, then tries again with its own key. It must still be limited, and
// so must a bystander that was limited too; the flood itself gets one
// Burst beyond the places it took.
func TestMemoryFloodCannotResetLimitedClient(t *testing.T) {
	for _, maxKeys := range []int{256, 20_000} {
		t.Run(fmt.Sprint(maxKeys), func(t *testing.T) {
			clock := newFakeClock()
			m := NewMemory(MemoryOptions{Now: clock.Now, MaxKeys: maxKeys})
			ctx := context.Background()
			r := Rule{Rate: 1, Per: time.Second, Burst: 2}
			drain := func(key string) {
				t.Helper()
				for i := range r.Burst {
					if d, _ := m.Allow(ctx, key, r); !d.Allowed {
						t.Fatalf("Allow(%q) #%d = %+v, want allowed", key, i, d)
					}
				}
				if d, _ := m.Allow(ctx, key, r); d.Allowed {
					t.Fatalf("Allow(%q) after its burst = %+v, want denied", key, d)
				}
			}
			drain("ip:attacker")
			drain("ip:bystander")
			clock.Advance(100 * time.Millisecond) // the buckets are still far from full
			flood := 0
			for i := range 5 * maxKeys {
				if d, _ := m.Allow(ctx, fmt.Sprintf("ip:2001:db8::%x", i), r); d.Allowed {
					flood++
				}
			}
			for _, k := range []string{"ip:attacker", "ip:bystander"} {
				if d, _ := m.Allow(ctx, k, r); d.Allowed {
					t.Errorf("Allow(%q) after a flood of %d new keys = %+v: its bucket was reset, want still denied", k, 5*maxKeys, d)
				}
			}
			if n := m.len(); n > maxKeys {
				t.Errorf("len = %d, want at most %d", n, maxKeys)
			}
			// Each new key gets at most what it would with unbounded
			// memory: its own burst.
			if limit := 5 * maxKeys * r.Burst; flood > limit {
				t.Errorf("the flood got %d requests through, want at most %d", flood, limit)
			}
			// Once the buckets refill they may go, and new keys get places.
			clock.Advance(2 * time.Second)
			if d, _ := m.Allow(ctx, "ip:newcomer", r); !d.Allowed || d.Remaining != r.Burst-1 {
				t.Errorf("a new key after the buckets refilled = %+v, want its own full bucket", d)
			}
		})
	}
}

// TestMemorySweepFindsFullBuckets: when a sample of a full shard holds no
// full bucket but the shard does, a sweep finds them, so new keys get their
// own buckets rather than the overflow.
func TestMemorySweepFindsFullBuckets(t *testing.T) {
	clock := newFakeClock()
	const maxKeys = 256 // one shard
	m := NewMemory(MemoryOptions{Now: clock.Now, MaxKeys: maxKeys})
	ctx := context.Background()
	slow := Rule{Rate: 1, Per: time.Hour, Burst: 1}
	fast := Rule{Rate: 1, Per: time.Millisecond, Burst: 1}
	for i := range maxKeys {
		r := slow
		if i%16 == 0 { // few full buckets: most samples of 8 miss them all
			r = fast
		}
		m.Allow(ctx, fmt.Sprint("old-", i), r)
	}
	clock.Advance(time.Second)
	for i := range maxKeys / 16 {
		if d, _ := m.Allow(ctx, fmt.Sprint("new-", i), slow); !d.Allowed {
			t.Fatalf("new key %d = %+v, want its own bucket (a full one could be forgotten)", i, d)
		}
	}
	// Beyond the places freed: the overflow bucket of slow, one token.
	if d, _ := m.Allow(ctx, "one-too-many", slow); !d.Allowed {
		t.Fatalf("first key beyond the freed places = %+v, want the overflow bucket's token", d)
	}
	if d, _ := m.Allow(ctx, "two-too-many", slow); d.Allowed {
		t.Fatalf("second key beyond the freed places = %+v, want denied (the overflow bucket is empty)", d)
	}
	for i := range maxKeys {
		if i%16 != 0 {
			if d, _ := m.Allow(ctx, fmt.Sprint("old-", i), slow); d.Allowed {
				t.Fatalf("old key %d (empty bucket) = %+v after the sweep, want still denied", i, d)
			}
		}
	}
}

// TestMemoryOverflowRulesBounded: overflow buckets are bounded too; when
// every one is in use, a key under yet another rule is denied (fail closed),
// not allowed.
func TestMemoryOverflowRulesBounded(t *testing.T) {
	clock := newFakeClock()
	m := NewMemory(MemoryOptions{Now: clock.Now, MaxKeys: 1})
	ctx := context.Background()
	hold := Rule{Rate: 1, Per: time.Hour, Burst: 1}
	m.Allow(ctx, "holder", hold) // the only place, empty for an hour
	for i := range maxOverflowRules {
		r := Rule{Rate: 1, Per: time.Hour, Burst: 2 + i}
		if d, _ := m.Allow(ctx, fmt.Sprint("k-", i), r); !d.Allowed {
			t.Fatalf("rule %d: %+v, want its overflow bucket's first token", i, d)
		}
	}
	d, err := m.Allow(ctx, "one-rule-too-many", Rule{Rate: 1, Per: time.Hour, Burst: 1000})
	if err != nil || d.Allowed || d.RetryAfter <= 0 {
		t.Fatalf("a rule beyond the overflow bound = %+v, %v; want denied with a Retry-After", d, err)
	}
	clock.Advance(2 * time.Hour) // every overflow bucket is full again: they may go
	if d, _ := m.Allow(ctx, "later", Rule{Rate: 1, Per: time.Hour, Burst: 1000}); !d.Allowed {
		t.Fatalf("after the buckets refilled = %+v, want allowed", d)
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

// TestMemoryNewcomersNotSqueezed: when the limiter is full of buckets that
// are each a token short of full (a crowd of one-request clients), a new
// client still gets its own bucket and its whole burst, not a share of the
// overflow bucket; a client being limited keeps its bucket.
func TestMemoryNewcomersNotSqueezed(t *testing.T) {
	clock := newFakeClock()
	m := NewMemory(MemoryOptions{Now: clock.Now, MaxKeys: 256})
	ctx := context.Background()
	r := Rule{Rate: 1, Per: time.Minute, Burst: 5}
	for range r.Burst {
		m.Allow(ctx, "ip:limited", r)
	}
	for i := range 2000 {
		m.Allow(ctx, fmt.Sprintf("ip:crowd-%d", i), r)
	}
	for i := range 50 {
		key := fmt.Sprintf("ip:newcomer-%d", i)
		for j := range r.Burst {
			if d, _ := m.Allow(ctx, key, r); !d.Allowed {
				t.Fatalf("newcomer %d request %d = %+v, want its own burst", i, j, d)
			}
		}
	}
	if d, _ := m.Allow(ctx, "ip:limited", r); d.Allowed {
		t.Fatalf("a limited client was reset by the crowd: %+v", d)
	}
}
