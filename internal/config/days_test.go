package config

import (
	"testing"
	"time"
)

func TestParseDays(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want time.Duration
		ok   bool
	}{
		{"30d", 30 * 24 * time.Hour, true},
		{"720h", 720 * time.Hour, true},
		{"1d", 24 * time.Hour, true},
		{"0d", 0, false},
		{"-1d", 0, false},
		{"3651d", 0, false},
		{"xd", 0, false},
		{"d", 0, false},
		{"forever", 0, false},
	} {
		got, err := ParseDays(tc.in)
		if (err == nil) != tc.ok || tc.ok && got != tc.want {
			t.Errorf("ParseDays(%q) = %v, %v; want %v, ok %v", tc.in, got, err, tc.want, tc.ok)
		}
	}
}
