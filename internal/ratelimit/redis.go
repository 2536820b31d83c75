package ratelimit

import (
	"context"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

// DefaultRedisPrefix is RedisOptions.Prefix when it is empty.
const DefaultRedisPrefix = "warden:ratelimit:"

// redisExpiryMargin is how long a key outlives the moment its bucket is full
// again. A missing key is a full bucket, so the key could go at that moment;
// the margin absorbs a caller clock (RedisOptions.Now) that runs slower than
// Redis's, so that a key never expires before its bucket is full by the
// clock that filled it.
const redisExpiryMargin = 10 * time.Second

// RedisOptions configure [NewRedis]. The zero value is usable.
type RedisOptions struct {
	// Prefix is put before every key; "" means DefaultRedisPrefix.
	Prefix string
	// Now is the clock sent to the script. Nil (the default) means the
	// script reads the Redis server's TIME, so nodes need no synchronized
	// clocks. When set, every node sharing the Redis must keep its clock
	// roughly synchronized with the others.
	Now func() time.Time
}

// Redis is a Limiter whose buckets live in Redis, shared by every node that
// uses the same Redis and prefix.
//
// # Notes
//
//   - Each Allow is one round trip: an atomic Lua script (EVALSHA, falling
//     back to EVAL when Redis does not have it cached) reads the bucket,
//     refills it, takes a token and writes it back with an expiry.
//   - A bucket is one hash (fields l, t, p) at Prefix+key. It expires a
//     little after the bucket would be full again, so idle buckets vanish.
//   - Safe for concurrent use, as the client is. Errors from Redis are
//     returned wrapped and never contain the key; see [NewFallback] to keep
//     deciding while Redis is unreachable.
type Redis struct {
	client redis.UniversalClient
	prefix string
	now    func() time.Time
}

var _ Limiter = (*Redis)(nil)

// NewRedis returns a Limiter keeping buckets in Redis through client, which
// the caller owns and closes.
func NewRedis(client redis.UniversalClient, opt RedisOptions) *Redis {
	if opt.Prefix == "" {
		opt.Prefix = DefaultRedisPrefix
	}
	return &Redis{client: client, prefix: opt.Prefix, now: opt.Now}
}

// bucketScript is step (bucket.go) in Lua. Redis's Lua numbers are float64:
// every value stays under 2^52 (Rule.params checks), divisions are corrected
// to be exact, and numbers are written with %.0f so that no Redis version's
// number-to-string conversion (14 significant digits before Redis 7) can
// round a microsecond timestamp.
//
// KEYS[1] bucket; ARGV rate, per, cap, burst, now (µs; -1: Redis TIME),
// margin (ms). Returns {allowed (0|1), remaining, retry (µs), reset (µs)}.
var bucketScript = redis.NewScript(`
local rate = tonumber(ARGV[1])
local per = tonumber(ARGV[2])
local cap = tonumber(ARGV[3])
local burst = tonumber(ARGV[4])
local now = tonumber(ARGV[5])
local margin = tonumber(ARGV[6])
if now < 0 then
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000000 + tonumber(t[2])
end

local function idiv(a, b)
  local q = math.floor(a / b)
  while q * b > a do q = q - 1 end
  while (q + 1) * b <= a do q = q + 1 end
  return q
end
local function cdiv(a, b)
  local q = idiv(a, b)
  if q * b < a then q = q + 1 end
  return q
end

local v = redis.call('HMGET', KEYS[1], 'l', 't', 'p')
local level, last, sper = tonumber(v[1]), tonumber(v[2]), tonumber(v[3])
if level == nil or last == nil or sper == nil then
  level, last, sper = cap, now, per
else
  if sper ~= per or level < 0 or sper <= 0 then
    local tokens = 0
    if sper > 0 and level > 0 then tokens = idiv(level, sper) end
    level = math.min(tokens, burst) * per
    sper = per
  end
  if level > cap then level = cap end
  if now > last then
    if now - last >= cdiv(cap - level, rate) then
      level = cap
    else
      level = level + (now - last) * rate
    end
    last = now
  end
end

local allowed, retry = 0, 0
if level >= per then
  allowed = 1
  level = level - per
else
  retry = cdiv(per - level, rate)
end
local remaining = idiv(level, per)
local reset = cdiv(cap - level, rate)

redis.call('HSET', KEYS[1], 'l', string.format('%.0f', level), 't', string.format('%.0f', last), 'p', string.format('%.0f', per))
redis.call('PEXPIRE', KEYS[1], string.format('%.0f', cdiv(reset, 1000) + margin))
return {allowed, remaining, retry, reset}
`)

// Allow implements [Limiter].
func (r *Redis) Allow(ctx context.Context, key string, rule Rule) (Decision, error) {
	p, err := rule.params()
	if err != nil {
		return Decision{}, fmt.Errorf("redis limiter: %w: %+v", err, rule)
	}
	now := int64(-1)
	if r.now != nil {
		now = r.now().UnixMicro()
	}
	res, err := bucketScript.Run(ctx, r.client, []string{r.prefix + key},
		p.rate, p.per, p.cap, p.burst, now, redisExpiryMargin.Milliseconds()).Int64Slice()
	if err != nil {
		return Decision{}, fmt.Errorf("redis limiter: %w", err)
	}
	if len(res) != 4 {
		return Decision{}, fmt.Errorf("redis limiter: script returned %d values, want 4", len(res))
	}
	return Decision{
		Allowed:    res[0] == 1,
		Limit:      int(p.burst),
		Remaining:  int(res[1]),
		RetryAfter: time.Duration(res[2]) * time.Microsecond,
		Reset:      time.Duration(res[3]) * time.Microsecond,
	}, nil
}
