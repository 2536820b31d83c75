package ratelimit

import (
	"context"
	"errors"
	"time"
)

// Rule is a token bucket: at most Burst tokens, refilled at Rate tokens per
// Per. A new (or long idle) bucket is full.
type Rule struct {
	Rate  int
	Per   time.Duration
	Burst int
}

// Decision is the outcome of one [Limiter.Allow]: enough for a 429 with
// Retry-After and the RateLimit-Limit, -Remaining and -Reset headers.
type Decision struct {
	// Allowed reports whether a token was taken.
	Allowed bool
	// Limit is the rule's Burst.
	Limit int
	// Remaining is the number of whole tokens left after this call.
	Remaining int
	// RetryAfter is how long until one token is available; zero when Allowed.
	RetryAfter time.Duration
	// Reset is how long until the bucket is full again.
	Reset time.Duration
}

// Limiter decides whether a request may proceed.
type Limiter interface {
	// Allow takes one token from the bucket named key under rule. Safe for
	// concurrent use. It never waits for tokens: a denied call returns at
	// once with Decision.RetryAfter. An error means no decision was made
	// (invalid rule, backend unreachable); the caller must not treat it as
	// "allowed".
	Allow(ctx context.Context, key string, rule Rule) (Decision, error)
}

// ErrInvalidRule is returned (wrapped) by every Limiter for a Rule outside
// the limits documented in the package comment.
var ErrInvalidRule = errors.New("ratelimit: invalid rule")

// maxExact bounds every quantity the bucket arithmetic handles so that the
// Lua script, which counts in float64, computes exactly what Go computes.
const maxExact = int64(1) << 52

// params is a validated Rule in the bucket's integer units: time in
// microseconds, levels in 1/per of a token.
type params struct {
	rate  int64 // units added per microsecond (= Rule.Rate)
	per   int64 // units in one token (= Rule.Per in microseconds)
	cap   int64 // units in a full bucket (= Burst*per)
	burst int64
}

func (r Rule) params() (params, error) {
	if r.Rate < 1 || r.Burst < 1 || r.Per < time.Microsecond {
		return params{}, ErrInvalidRule
	}
	rate, burst, per := int64(r.Rate), int64(r.Burst), r.Per.Microseconds()
	if rate >= maxExact || burst > (maxExact-rate)/per {
		return params{}, ErrInvalidRule
	}
	return params{rate: rate, per: per, cap: burst * per, burst: burst}, nil
}

// bucketState is what a backend stores per key. An absent bucket is full.
type bucketState struct {
	level int64 // units
	last  int64 // microseconds since the Unix epoch
	per   int64 // the per of the rule the level is counted in
}

// ceilDiv returns ⌈a/b⌉ for a >= 0, b > 0.
func ceilDiv(a, b int64) int64 { return (a + b - 1) / b }

// step takes one token at now from s (found=false: a new, full bucket) and
// returns the decision and the state to store. The Lua script in redis.go
// is a line-by-line copy; keep them identical.
func step(s bucketState, found bool, now int64, p params) (Decision, bucketState) {
	if !found {
		s = bucketState{level: p.cap, last: now, per: p.per}
	} else {
		if s.per != p.per || s.level < 0 || s.per <= 0 {
			// The rule changed: carry whole tokens over.
			tokens := int64(0)
			if s.per > 0 && s.level > 0 {
				tokens = s.level / s.per
			}
			s.level = min(tokens, p.burst) * p.per
			s.per = p.per
		}
		if s.level > p.cap {
			s.level = p.cap
		}
		if now > s.last {
			if now-s.last >= ceilDiv(p.cap-s.level, p.rate) {
				s.level = p.cap
			} else {
				s.level += (now - s.last) * p.rate
			}
			s.last = now
		}
	}
	d := Decision{Limit: int(p.burst)}
	if s.level >= p.per {
		d.Allowed = true
		s.level -= p.per
	} else {
		d.RetryAfter = time.Duration(ceilDiv(p.per-s.level, p.rate)) * time.Microsecond
	}
	d.Remaining = int(s.level / p.per)
	d.Reset = time.Duration(ceilDiv(p.cap-s.level, p.rate)) * time.Microsecond
	return d, s
}

// nearlyFull reports whether s, refilled to now, holds at least one token
// and lacks at most one: forgetting it gives its client at most one
// request more, and never to a client being limited (it has a token).
func (s *bucketState) nearlyFull(now int64, p params) bool {
	if s.per != p.per {
		return false
	}
	level := s.level
	if now > s.last {
		level = min(p.cap, level+(now-s.last)*p.rate)
	}
	return level >= p.per && level >= p.cap-p.per
}

// full reports whether s has refilled completely by now, that is whether
// forgetting it changes no future decision.
func (s *bucketState) full(now int64, p params) bool {
	if s.per != p.per {
		return false
	}
	if s.level >= p.cap {
		return true
	}
	return now > s.last && now-s.last >= ceilDiv(p.cap-s.level, p.rate)
}
