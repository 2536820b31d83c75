package egress

import "net/netip"

// special is a refused address range and the reason given for it.
type special struct {
	prefix netip.Prefix
	reason string
}

func mustPrefixes(pairs ...string) []special {
	out := make([]special, 0, len(pairs)/2)
	for i := 0; i < len(pairs); i += 2 {
		out = append(out, special{netip.MustParsePrefix(pairs[i]), pairs[i+1]})
	}
	return out
}

// refused4 lists every IPv4 range that is not globally reachable (IANA
// IPv4 Special-Purpose Address Registry), plus the metadata address first so
// that it gets its own reason. The first match wins.
var refused4 = mustPrefixes(
	"169.254.169.254/32", "cloud metadata",
	"0.0.0.0/8", "unspecified (this network)",
	"10.0.0.0/8", "private",
	"100.64.0.0/10", "shared (CGNAT)",
	"127.0.0.0/8", "loopback",
	"169.254.0.0/16", "link-local",
	"172.16.0.0/12", "private",
	"192.0.0.0/24", "IETF protocol assignment",
	"192.0.2.0/24", "documentation",
	"192.88.99.0/24", "6to4 relay",
	"192.168.0.0/16", "private",
	"198.18.0.0/15", "benchmarking",
	"198.51.100.0/24", "documentation",
	"203.0.113.0/24", "documentation",
	"224.0.0.0/4", "multicast",
	"240.0.0.0/4", "reserved",
)

// refused6 lists refused IPv6 ranges inside or near global unicast.
// Anything outside 2000::/3 is refused as well (see addrReason), which
// covers ::/8 (unspecified, loopback, IPv4-compatible and -translated
// forms), 100::/64, fc00::/7, fe80::/10, fec0::/10 and ff00::/8; they are
// listed here only to give a precise reason.
var refused6 = mustPrefixes(
	"fd00:ec2::254/128", "cloud metadata",
	"::/128", "unspecified",
	"::1/128", "loopback",
	"::ffff:0:0:0/96", "IPv4-translated",
	"64:ff9b:1::/48", "local-use NAT64",
	"100::/64", "discard-only",
	"2001::/23", "IETF protocol assignment",
	"2001:db8::/32", "documentation",
	"2002::/16", "6to4",
	"3fff::/20", "documentation",
	"5f00::/16", "segment routing",
	"fc00::/7", "private (unique local)",
	"fe80::/10", "link-local",
	"fec0::/10", "site-local",
	"ff00::/8", "multicast",
)

var (
	globalUnicast6 = netip.MustParsePrefix("2000::/3")
	nat64          = netip.MustParsePrefix("64:ff9b::/96")
)

// addrReason returns why a is refused as a destination ("loopback",
// "private", ...), or "" when it is a globally reachable unicast address.
// IPv4-mapped addresses (::ffff:a.b.c.d) and the well-known NAT64 prefix
// are judged by the IPv4 address they carry. A zone is refused outright.
func addrReason(a netip.Addr) string {
	if !a.IsValid() {
		return "invalid"
	}
	if a.Zone() != "" {
		return "scoped (zone)"
	}
	if a.Is4In6() {
		a = a.Unmap()
	}
	if a.Is4() {
		for _, s := range refused4 {
			if s.prefix.Contains(a) {
				return s.reason
			}
		}
		return ""
	}
	if nat64.Contains(a) {
		b := a.As16()
		if r := addrReason(netip.AddrFrom4([4]byte{b[12], b[13], b[14], b[15]})); r != "" {
			return "NAT64 form of a " + r
		}
		return ""
	}
	for _, s := range refused6 {
		if s.prefix.Contains(a) {
			return s.reason
		}
	}
	if !globalUnicast6.Contains(a) {
		return "reserved"
	}
	return ""
}
