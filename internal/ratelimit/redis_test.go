package ratelimit

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

const redisAddr = "127.0.0.1:6379"

// redisClient connects to the real Redis the Redis backend is tested
// against. An unreachable Redis fails the test with instructions, unless
// WARDEN_SKIP_REDIS=1 says to skip it.
func redisClient(tb testing.TB) *redis.Client {
	tb.Helper()
	c := redis.NewClient(&redis.Options{Addr: redisAddr, DialTimeout: 2 * time.Second})
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	if err := c.Ping(ctx).Err(); err != nil {
		c.Close()
		if os.Getenv("WARDEN_SKIP_REDIS") == "1" {
			tb.Skipf("skipping: Redis at %s is unreachable (%v) and WARDEN_SKIP_REDIS=1 is set", redisAddr, err)
		}
		tb.Fatalf("Redis at %s is unreachable: %v\n"+
			"The Redis rate limiter is tested against a real Redis: start redis-server on %s, "+
			"or set WARDEN_SKIP_REDIS=1 to skip these tests deliberately.", redisAddr, err, redisAddr)
	}
	tb.Cleanup(func() { c.Close() })
	return c
}

// testPrefix returns a key prefix no other test uses and deletes its keys
// when the test ends.
func testPrefix(tb testing.TB, c *redis.Client) string {
	tb.Helper()
	prefix := fmt.Sprintf("warden-test:ratelimit:%016x:", rand.Uint64())
	tb.Cleanup(func() {
		ctx := context.Background()
		keys, err := c.Keys(ctx, prefix+"*").Result()
		if err != nil {
			tb.Errorf("cleaning up %s*: %v", prefix, err)
			return
		}
		if len(keys) > 0 {
			if err := c.Del(ctx, keys...).Err(); err != nil {
				tb.Errorf("cleaning up %s*: %v", prefix, err)
			}
		}
	})
	return prefix
}

func TestRedisLimiter(t *testing.T) {
	c := redisClient(t)
	testLimiter(t, func(t *testing.T, now func() time.Time) Limiter {
		return NewRedis(c, RedisOptions{Prefix: testPrefix(t, c), Now: now})
	})
}

// TestBackendsAgree runs one random sequence of calls through both backends
// on one fake clock and requires identical decisions.
func TestBackendsAgree(t *testing.T) {
	c := redisClient(t)
	clock := newFakeClock()
	mem := NewMemory(MemoryOptions{Now: clock.Now})
	red := NewRedis(c, RedisOptions{Prefix: testPrefix(t, c), Now: clock.Now})
	rules := []Rule{
		{Rate: 10, Per: time.Second, Burst: 3},
		{Rate: 10, Per: time.Second, Burst: 7},
		{Rate: 3, Per: time.Second, Burst: 2},
		{Rate: 7, Per: 300 * time.Millisecond, Burst: 5},
		{Rate: 100, Per: time.Minute, Burst: 20},
		{Rate: 1, Per: 24 * time.Hour, Burst: 50_000},
	}
	keys := []string{"a", "b", "c", "198.51.100.1", "key_2x9"}
	rng := rand.New(rand.NewPCG(1, 2))
	ctx := context.Background()
	allowed := 0
	const n = 3000
	for i := range n {
		switch r := rng.IntN(100); {
		case r < 3:
			clock.Advance(-time.Duration(rng.IntN(2000)) * time.Millisecond)
		case r < 40:
			// same instant
		default:
			clock.Advance(time.Duration(rng.Int64N(int64(400 * time.Millisecond))))
		}
		key := keys[rng.IntN(len(keys))]
		// Mostly a key's own rule, sometimes another to exercise changes.
		rule := rules[(len(key)+i/500)%len(rules)]
		if rng.IntN(20) == 0 {
			rule = rules[rng.IntN(len(rules))]
		}
		dm, err := mem.Allow(ctx, key, rule)
		if err != nil {
			t.Fatalf("call %d: memory: %v", i, err)
		}
		dr, err := red.Allow(ctx, key, rule)
		if err != nil {
			t.Fatalf("call %d: redis: %v", i, err)
		}
		if dm != dr {
			t.Fatalf("call %d at %v: Allow(%q, %+v): memory = %+v, redis = %+v", i, clock.Now(), key, rule, dm, dr)
		}
		if dm.Allowed {
			allowed++
		}
	}
	// The sequence must exercise both outcomes to prove anything.
	if allowed < n/10 || allowed > n*9/10 {
		t.Fatalf("%d of %d calls allowed; the sequence should mix allows and denials", allowed, n)
	}
}

// TestRedisServerTime checks the default clock: the Redis server's TIME.
func TestRedisServerTime(t *testing.T) {
	c := redisClient(t)
	l := NewRedis(c, RedisOptions{Prefix: testPrefix(t, c)})
	r := Rule{Rate: 1, Per: time.Hour, Burst: 2}
	ctx := context.Background()
	for i, want := range []bool{true, true, false} {
		d, err := l.Allow(ctx, "k", r)
		if err != nil {
			t.Fatalf("call %d: %v", i, err)
		}
		if d.Allowed != want {
			t.Fatalf("call %d: Allowed = %v, want %v (%+v)", i, d.Allowed, want, d)
		}
		if !want && (d.RetryAfter <= 59*time.Minute || d.RetryAfter > time.Hour) {
			t.Errorf("RetryAfter = %v, want just under 1h", d.RetryAfter)
		}
	}
}

// TestRedisKeys checks where buckets live and that they expire.
func TestRedisKeys(t *testing.T) {
	c := redisClient(t)
	prefix := testPrefix(t, c)
	l := NewRedis(c, RedisOptions{Prefix: prefix})
	ctx := context.Background()
	if _, err := l.Allow(ctx, "client-9", Rule{Rate: 10, Per: time.Second, Burst: 3}); err != nil {
		t.Fatal(err)
	}
	ttl, err := c.PTTL(ctx, prefix+"client-9").Result()
	if err != nil {
		t.Fatal(err)
	}
	// The bucket is full again 100ms later; the key lives that long plus the margin.
	if max := 100*time.Millisecond + redisExpiryMargin; ttl <= 0 || ttl > max {
		t.Errorf("PTTL = %v, want in (0, %v]", ttl, max)
	}
	if def := NewRedis(c, RedisOptions{}); def.prefix != DefaultRedisPrefix {
		t.Errorf("default prefix = %q, want %q", def.prefix, DefaultRedisPrefix)
	}
}

// TestRedisScriptNotCached checks the EVAL fallback when Redis has not
// cached the script (a restart, a failover, SCRIPT FLUSH).
func TestRedisScriptNotCached(t *testing.T) {
	c := redisClient(t)
	l := NewRedis(c, RedisOptions{Prefix: testPrefix(t, c)})
	ctx := context.Background()
	r := Rule{Rate: 1, Per: time.Hour, Burst: 1}
	if _, err := l.Allow(ctx, "k", r); err != nil {
		t.Fatal(err)
	}
	if err := c.ScriptFlush(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	d, err := l.Allow(ctx, "k", r)
	if err != nil {
		t.Fatalf("Allow after SCRIPT FLUSH: %v", err)
	}
	if d.Allowed {
		t.Errorf("Allow after SCRIPT FLUSH = %+v, want denied (bucket state kept)", d)
	}
}

// TestRedisUnreachable: no decision, an error that does not name the key.
func TestRedisUnreachable(t *testing.T) {
	l := NewRedis(deadRedis(t), RedisOptions{})
	d, err := l.Allow(context.Background(), "secret-looking-key", Rule{Rate: 1, Per: time.Second, Burst: 1})
	if err == nil {
		t.Fatalf("Allow with Redis down = %+v, nil; want an error", d)
	}
	if d.Allowed {
		t.Errorf("Allow with Redis down reported Allowed")
	}
	if strings.Contains(err.Error(), "secret-looking-key") {
		t.Errorf("error %q contains the key", err)
	}
}

// deadRedis returns a client for a port nothing listens on.
func deadRedis(t *testing.T) *redis.Client {
	c := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1", DialTimeout: 500 * time.Millisecond, MaxRetries: -1})
	t.Cleanup(func() { c.Close() })
	return c
}
