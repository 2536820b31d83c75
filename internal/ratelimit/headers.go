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
	// Canonical keys assigned directly: this runs on every admitted
	// request, and Header.Set would canonicalize each name again.
	h["Ratelimit-Limit"] = []string{smallItoa(int64(max(d.Limit, 0)))}
	h["Ratelimit-Remaining"] = []string{smallItoa(int64(max(d.Remaining, 0)))}
	h["Ratelimit-Reset"] = []string{smallItoa(ceilSeconds(d.Reset))}
	if !d.Allowed {
		h["Retry-After"] = []string{smallItoa(max(ceilSeconds(d.RetryAfter), 1))}
	}
}

// small holds the decimal strings of 0..1023, the usual header values.
var small = func() (s [1024]string) {
	for i := range s {
		s[i] = strconv.Itoa(i)
	}
	return s
}()

func smallItoa(n int64) string {
	if n >= 0 && n < int64(len(small)) {
		return small[n]
	}
	return strconv.FormatInt(n, 10)
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
