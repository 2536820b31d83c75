package reqid_test

import (
	"context"
	"encoding/hex"
	"math/bits"
	"sync"
	"testing"

	"warden/internal/reqid"
)

// isID reports whether s has the shape New promises: 32 lowercase hex digits.
func isID(s string) bool {
	if len(s) != 32 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

func TestNewShape(t *testing.T) {
	for i := range 1000 {
		id := reqid.New()
		if !isID(id) {
			t.Fatalf("New() = %q (call %d), want 32 lowercase hex digits", id, i)
		}
		if b, err := hex.DecodeString(id); err != nil || len(b) != 16 {
			t.Fatalf("hex.DecodeString(New() = %q) = %d bytes, %v, want 16 bytes, <nil>", id, len(b), err)
		}
	}
}

// TestNewUnique draws ids from several goroutines at once, as the two
// listeners do, and wants no two equal.
func TestNewUnique(t *testing.T) {
	const workers, each = 8, 10000
	ids := make([][]string, workers)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			out := make([]string, each)
			for i := range out {
				out[i] = reqid.New()
			}
			ids[w] = out
		})
	}
	wg.Wait()
	seen := make(map[string]bool, workers*each)
	for _, out := range ids {
		for _, id := range out {
			if seen[id] {
				t.Fatalf("New() = %q twice in %d ids, want every id unique", id, workers*each)
			}
			seen[id] = true
		}
	}
}

// TestNewUnpredictable guards against an id that is a counter, a clock or
// has a fixed part: such an id lets a client guess the ids of other clients'
// requests. Every hex digit must occur at every position, and the bits must
// be balanced. Both hold for random ids with overwhelming probability (a
// digit missing at a position: 512 × (15/16)^2000 < 1e-50; the bit count is
// tested at 20 standard deviations).
func TestNewUnpredictable(t *testing.T) {
	const n = 2000
	var seen [32][16]bool
	ones := 0
	for range n {
		id := reqid.New()
		b, err := hex.DecodeString(id)
		if err != nil {
			t.Fatalf("hex.DecodeString(New() = %q): %v", id, err)
		}
		for i := range id {
			d := id[i] - '0'
			if id[i] >= 'a' {
				d = id[i] - 'a' + 10
			}
			seen[i][d] = true
		}
		for _, x := range b {
			ones += bits.OnesCount8(x)
		}
	}
	for pos := range seen {
		for d, ok := range seen[pos] {
			if !ok {
				t.Errorf("hex digit %x never at position %d of %d ids from New(), want every digit everywhere (a fixed or sequential part)", d, pos, n)
			}
		}
	}
	const total = n * 128
	if lo, hi := total/2-total/40, total/2+total/40; ones < lo || ones > hi {
		t.Errorf("%d of %d bits set in %d ids from New(), want within [%d, %d]", ones, total, n, lo, hi)
	}
}

type otherKey struct{}

func TestWithFrom(t *testing.T) {
	bg := context.Background()
	cancelled, cancel := context.WithCancel(reqid.With(bg, "inherited"))
	cancel()
	tests := []struct {
		name string
		ctx  context.Context
		want string
	}{
		{"none", bg, ""},
		{"set", reqid.With(bg, "abc"), "abc"},
		{"empty", reqid.With(bg, ""), ""},
		{"latest wins", reqid.With(reqid.With(bg, "first"), "second"), "second"},
		{"child context", context.WithValue(reqid.With(bg, "parent"), otherKey{}, "x"), "parent"},
		{"cancelled child", cancelled, "inherited"},
		// Another package's value under a look-alike key is not a request id.
		{"string key", context.WithValue(bg, reqid.Header, "forged"), ""},
		{"other key type", context.WithValue(bg, otherKey{}, "forged"), ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := reqid.From(tt.ctx); got != tt.want {
				t.Errorf("From(%q) = %q, want %q", tt.name, got, tt.want)
			}
		})
	}
}

func TestHeader(t *testing.T) {
	if reqid.Header != "X-Request-Id" {
		t.Errorf("Header = %q, want %q (clients and the SDK read this name)", reqid.Header, "X-Request-Id")
	}
}

func BenchmarkNew(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		_ = reqid.New()
	}
}
