package ratelimit

import (
	"net/http"
	"strconv"
	"time"
)

// SetHeaders reports d in h: RateLimit-Limit, RateLimit-Remaining and
// RateLimit-Reset (seconds, rounded up) as in the IETF httpapi ratelimit
// headers draft, and, when d is a denial, Retry-After (seconds, rounded up,
// at least 1, so a client never retries at once). Negative values count as 0.
// Existing values of these headers are replaced; others are untouched.
func SetHeaders(h http.Header, d Decision) {
	h.Set("RateLimit-Limit", strconv.Itoa(max(d.Limit, 0)))
	h.Set("RateLimit-Remaining", strconv.Itoa(max(d.Remaining, 0)))
	h.Set("RateLimit-Reset", strconv.FormatInt(ceilSeconds(d.Reset), 10))
	if !d.Allowed {
		h.Set("Retry-After", strconv.FormatInt(max(ceilSeconds(d.RetryAfter), 1), 10))
	}
}

// ceilSeconds returns d in whole seconds, rounded up; 0 for d <= 0.
func ceilSeconds(d time.Duration) int64 {
	if d <= 0 {
		return 0
	}
	s := int64(d / time.Second)
	if d%time.Second != 0 {
		s++
	}
	return s
}
