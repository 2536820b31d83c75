// Package ratelimit owns rate-limit decisions: token buckets kept in memory
// ([Memory], the single-node default) or shared by several nodes through Redis
// ([Redis]), a [Fallback] that keeps deciding locally while Redis is
// unreachable, the HTTP headers that report a decision ([SetHeaders]) and a
// [Throttle] that lets the gateway emit one event per window per client.
//
// It must never block a request waiting for tokens (a denied call returns at
// once with a RetryAfter), never answer "allow all" or "deny all" because a
// backend is down, and never log or return limiter keys in errors. Keys are
// ids and IP addresses chosen by the caller, never credentials.
//
// # The bucket
//
// A [Rule] {Rate, Per, Burst} is a bucket holding at most Burst tokens that
// refills at Rate tokens per Per; every [Limiter.Allow] takes one token or is
// denied. Both backends run the same integer arithmetic (see step in
// bucket.go and the Lua script in redis.go): the level is kept in units of
// 1/Per-in-microseconds of a token, so refills are exact and the same
// sequence of calls at the same times gets the same decisions from either
// backend; a shared test suite proves it. An absent bucket is a full bucket,
// so forgetting a bucket that has refilled loses nothing: Memory forgets
// only full buckets (never one whose client is being limited: see [Memory]
// for what a new key gets when every bucket held is in use), and Redis keys
// expire shortly after their bucket is full.
//
// # Client addresses
//
// [AddrKey] turns a client IP into the address part of a key: an IPv4
// address as it is, an IPv6 address as its /64 (or another prefix), since
// one subscriber holds a whole /64 and could otherwise mint a bucket per
// address. Every per-address limit (requests and connections) keys by it.
//
// # Time
//
// Time is used at microsecond resolution. [Memory] uses MemoryOptions.Now
// (default time.Now). [Redis] uses the Redis server's TIME by default, so
// nodes sharing a Redis need no synchronized clocks; when RedisOptions.Now is
// set (tests do, to share a fake clock), the caller's clock is sent to the
// script instead and nodes must then keep their clocks roughly synchronized
// (NTP): a node whose clock is behind sees no refill until it catches up,
// because a bucket's clock never moves backwards.
//
// # Notes
//
//   - Limits: Rate >= 1, Burst >= 1, Per >= 1µs, and Burst*Per/µs + Rate must
//     stay under 2^52 (for example Burst up to about 52,000 with Per of a
//     day), because Redis's Lua counts in float64 and must stay exact.
//     Anything else is [ErrInvalidRule].
//   - A key should be used with one Rule. If the Rule changes, whole tokens
//     carry over (clamped to the new Burst) and fractions are dropped.
//   - While degraded, [Fallback] decides with the local limiter: with N nodes
//     the effective limit is up to N times the rule until Redis returns.
package ratelimit
