// Package egress owns deciding whether a function may reach a network
// destination and making that connection safely: it parses the origins a
// manifest grants (permissions.egress), checks request URLs against them,
// resolves granted names through an injected resolver, refuses internal and
// special-purpose addresses, and dials the exact address it checked.
//
// egress never resolves or connects to a destination that was not granted,
// never connects to a name's address without checking every address the name
// resolved to, never follows a redirect to an origin that was not
// granted, and never carries a caller's headers (other than a few safe
// ones) or a Referer to another origin on a redirect.
//
// # Notes
//
//   - Every refusal wraps ErrDenied and is a *DenyError naming the origin
//     (scheme://host[:port]); no error built here contains a URL's path,
//     query, fragment or user info, where credentials live.
//   - An IP-literal destination is allowed only when that exact address (and
//     port) is granted as an IP origin; that grant is the only way to reach a
//     loopback, private, link-local or metadata address. A granted name that
//     resolves to such an address is refused even when the address itself is
//     also granted: the exception belongs to the IP origin, not to whatever
//     name happens to point at it (otherwise one IP grant would turn every
//     granted name into a DNS-rebinding target).
//   - When any resolved address is refused, the whole connection is refused.
//   - A Policy is immutable after NewPolicy and safe for concurrent use.
package egress
