package ratelimit

import (
	"net/http"
	"testing"
	"time"
)

func TestSetHeaders(t *testing.T) {
	tests := []struct {
		name                         string
		d                            Decision
		limit, remaining, reset, ret string // ret "" means no Retry-After
	}{
		{"allowed, reset rounds up", Decision{Allowed: true, Limit: 40, Remaining: 39, Reset: 50 * time.Millisecond}, "40", "39", "1", ""},
		{"allowed, whole seconds stay", Decision{Allowed: true, Limit: 3, Remaining: 0, Reset: 2 * time.Second}, "3", "0", "2", ""},
		{"allowed, full bucket", Decision{Allowed: true, Limit: 3, Remaining: 3}, "3", "3", "0", ""},
		{"denied, just over a second", Decision{Limit: 20, RetryAfter: time.Second + time.Nanosecond, Reset: 2*time.Second + 1}, "20", "0", "3", "2"},
		{"denied, exact seconds", Decision{Limit: 20, RetryAfter: 3 * time.Second, Reset: 3 * time.Second}, "20", "0", "3", "3"},
		{"denied, tiny wait is at least 1", Decision{Limit: 1, RetryAfter: time.Microsecond, Reset: time.Microsecond}, "1", "0", "1", "1"},
		{"denied, zero wait is at least 1", Decision{Limit: 1}, "1", "0", "0", "1"},
		{"negative values are 0", Decision{Limit: -1, Remaining: -5, Reset: -time.Second, RetryAfter: -time.Second}, "0", "0", "0", "1"},
		{"long waits", Decision{Limit: 5, RetryAfter: 36*time.Hour - time.Millisecond, Reset: 60 * time.Hour}, "5", "0", "216000", "129600"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := http.Header{}
			h.Set("Content-Type", "application/problem+json")
			SetHeaders(h, tt.d)
			for _, c := range []struct{ name, want string }{
				{"RateLimit-Limit", tt.limit},
				{"RateLimit-Remaining", tt.remaining},
				{"RateLimit-Reset", tt.reset},
				{"Retry-After", tt.ret},
			} {
				if got := h.Get(c.name); got != c.want {
					t.Errorf("SetHeaders(%+v): %s = %q, want %q", tt.d, c.name, got, c.want)
				}
				if n := len(h.Values(c.name)); c.want != "" && n != 1 {
					t.Errorf("SetHeaders(%+v): %d %s values, want 1", tt.d, n, c.name)
				}
			}
			if h.Get("Content-Type") != "application/problem+json" {
				t.Errorf("SetHeaders changed an unrelated header")
			}
		})
	}
}

func TestSetHeadersReplaces(t *testing.T) {
	h := http.Header{}
	SetHeaders(h, Decision{Limit: 10, RetryAfter: 5 * time.Second})
	SetHeaders(h, Decision{Limit: 10, RetryAfter: 2 * time.Second})
	if got := h.Values("Retry-After"); len(got) != 1 || got[0] != "2" {
		t.Errorf("Retry-After after two SetHeaders = %q, want [\"2\"]", got)
	}
}
