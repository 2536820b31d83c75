package ratelimit

import (
	"net/netip"
	"strconv"
	"strings"
)

// DefaultIPv6Prefix is the prefix length [AddrKey] groups IPv6 clients by
// unless told otherwise: a /64 is the smallest network a subscriber is
// given (RFC 6177), and SLAAC lets any host in it pick any of its 2^64
// addresses.
const DefaultIPv6Prefix = 64

// AddrKey returns the key under which per-address limits count the client
// at ip, an address without port (as secheaders.ClientIP returns it):
//
//   - IPv4, and IPv4-mapped IPv6 ("::ffff:192.0.2.1"): the IPv4 address in
//     dotted decimal, "192.0.2.1".
//   - IPv6: the network of its first v6Prefix bits in CIDR notation, zone
//     dropped: "2001:db8:1:2::/64"; with 128, "2001:db8::1/128".
//   - v6Prefix outside 1..128 means [DefaultIPv6Prefix].
//   - Anything that is not an IP address is returned unchanged.
//
// Keys of the two families never collide (only IPv6 keys hold a '/'). It is
// safe for concurrent use and allocates nothing for IPv4.
func AddrKey(ip string, v6Prefix int) string {
	if strings.IndexByte(ip, ':') < 0 {
		return ip // IPv4 (or not an address): as it is
	}
	a, err := netip.ParseAddr(ip)
	if err != nil || a.Is4() {
		return ip
	}
	if a.Is4In6() {
		return a.Unmap().String()
	}
	if v6Prefix < 1 || v6Prefix > 128 {
		v6Prefix = DefaultIPv6Prefix
	}
	p, err := a.WithZone("").Prefix(v6Prefix)
	if err != nil { // unreachable: an IPv6 address and a length in 1..128
		return ip
	}
	// p.String() is the same text, built about three times slower.
	var buf [64]byte
	b := p.Addr().AppendTo(buf[:0])
	b = append(b, '/')
	b = strconv.AppendInt(b, int64(v6Prefix), 10)
	return string(b)
}
