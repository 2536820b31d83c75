package ratelimit

import (
	"context"
	"fmt"
	"net/netip"
	"testing"
	"time"
)

func TestAddrKey(t *testing.T) {
	tests := []struct {
		ip     string
		prefix int
		want   string
	}{
		{"192.0.2.1", 64, "192.0.2.1"},
		{"192.0.2.1", 128, "192.0.2.1"},
		{"::ffff:192.0.2.1", 64, "192.0.2.1"},
		{"::ffff:c000:201", 48, "192.0.2.1"},
		{"2001:db8:1:2:3:4:5:6", 64, "2001:db8:1:2::/64"},
		{"2001:db8:1:2:ffff:ffff:ffff:ffff", 64, "2001:db8:1:2::/64"},
		{"2001:DB8:1:2::1", 64, "2001:db8:1:2::/64"},
		{"2001:db8:1:2:3:4:5:6", 48, "2001:db8:1::/48"},
		{"2001:db8:1:2:3:4:5:6", 56, "2001:db8:1::/56"},
		{"2001:db8:1:2:3:4:5:6", 128, "2001:db8:1:2:3:4:5:6/128"},
		{"2001:db8:1:2:3:4:5:6", 0, "2001:db8:1:2::/64"},   // default
		{"2001:db8:1:2:3:4:5:6", 129, "2001:db8:1:2::/64"}, // default
		{"2001:db8:1:2:3:4:5:6", -1, "2001:db8:1:2::/64"},  // default
		{"fe80::1%eth0", 64, "fe80::/64"},
		{"::1", 64, "::/64"},
		{"::", 64, "::/64"},
		{"not an ip", 64, "not an ip"},
		{"", 64, ""},
		{"[2001:db8::1]:443", 64, "[2001:db8::1]:443"}, // with a port: not an address, unchanged
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%s/%d", tt.ip, tt.prefix), func(t *testing.T) {
			if got := AddrKey(tt.ip, tt.prefix); got != tt.want {
				t.Errorf("AddrKey(%q, %d) = %q, want %q", tt.ip, tt.prefix, got, tt.want)
			}
		})
	}
}

// FuzzAddrKey: for any 16 bytes and prefix length, every address of the
// network gets the network's key, an address outside it another key, and
// an IPv4-mapped address the key of the IPv4 address.
func FuzzAddrKey(f *testing.F) {
	f.Add([]byte("\x20\x01\x0d\xb8\x00\x01\x00\x02\x00\x03\x00\x04\x00\x05\x00\x06"), 64, uint8(70))
	f.Add([]byte("\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\xff\xff\xc0\x00\x02\x01"), 64, uint8(100))
	f.Add([]byte("\xfe\x80\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x01"), 128, uint8(127))
	f.Fuzz(func(t *testing.T, b []byte, prefix int, flip uint8) {
		if len(b) != 16 {
			return
		}
		a := netip.AddrFrom16([16]byte(b))
		key := AddrKey(a.String(), prefix)
		if a.Is4In6() {
			if want := a.Unmap().String(); key != want {
				t.Fatalf("AddrKey(%s) = %q, want %q", a, key, want)
			}
			return
		}
		bits := prefix
		if bits < 1 || bits > 128 {
			bits = DefaultIPv6Prefix
		}
		// Flip one bit: inside the prefix changes the key, outside does not.
		i := int(flip) % 128
		c := a.As16()
		c[i/8] ^= 0x80 >> (i % 8)
		other := netip.AddrFrom16(c)
		if other.Is4In6() {
			return
		}
		same := AddrKey(other.String(), prefix) == key
		if inside := i < bits; inside == same {
			t.Fatalf("AddrKey(%s, %d) = %q, AddrKey(%s, %d) = %q: bit %d flipped (inside the /%d: %v)",
				a, prefix, key, other, prefix, AddrKey(other.String(), prefix), i, bits, inside)
		}
	})
}

// TestAddrKeySharesBucket, from the attacker's side: every address of one
// /64 draws from one bucket, so rotating through them gains nothing.
func TestAddrKeySharesBucket(t *testing.T) {
	clock := newFakeClock()
	m := NewMemory(MemoryOptions{Now: clock.Now})
	r := Rule{Rate: 1, Per: time.Second, Burst: 10}
	allowed := 0
	for i := range 1000 {
		ip := fmt.Sprintf("2001:db8:1:2:%x:%x:%x:%x", i, i*7, i*13, i*31)
		if d, _ := m.Allow(context.Background(), "ip:"+AddrKey(ip, DefaultIPv6Prefix), r); d.Allowed {
			allowed++
		}
	}
	if allowed != r.Burst {
		t.Fatalf("1000 addresses of one /64: %d requests allowed, want %d (one bucket)", allowed, r.Burst)
	}
	if d, _ := m.Allow(context.Background(), "ip:"+AddrKey("2001:db8:1:3::1", DefaultIPv6Prefix), r); !d.Allowed {
		t.Fatalf("an address of the next /64 = %+v, want its own bucket", d)
	}
}

func BenchmarkAddrKey(b *testing.B) {
	for _, ip := range []string{"192.0.2.1", "2001:db8:1:2:3:4:5:6", "::ffff:192.0.2.1"} {
		b.Run(ip, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				AddrKey(ip, DefaultIPv6Prefix)
			}
		})
	}
}
