package egress

import (
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
)

const (
	maxURLLength = 8192
	maxDNSName   = 253
	maxDNSLabel  = 63
)

// Origin is a granted destination: a scheme, a host and a port.
//
// Host is a lowercase ASCII DNS name, or an IP address in its canonical
// netip spelling (IPv6 without brackets). When Wildcard is set, Host is the
// domain under the "*." label and the origin matches every name strictly
// below it, never Host itself. Port is always set: the scheme's default
// (443 or 80) when the grant names none.
type Origin struct {
	Scheme   string
	Host     string
	Port     int
	Wildcard bool
}

// String writes o the way a manifest would: scheme://host[:port], with the
// default port left out, IPv6 in brackets and a wildcard as "*.". An
// Origin with no Scheme is written host:port.
func (o Origin) String() string {
	var b strings.Builder
	b.Grow(len(o.Scheme) + len(o.Host) + 12)
	if o.Scheme != "" {
		b.WriteString(o.Scheme)
		b.WriteString("://")
	}
	if o.Wildcard {
		b.WriteString("*.")
	}
	if strings.IndexByte(o.Host, ':') >= 0 {
		b.WriteByte('[')
		b.WriteString(o.Host)
		b.WriteByte(']')
	} else {
		b.WriteString(o.Host)
	}
	if o.Scheme == "" || o.Port != defaultPort(o.Scheme) {
		b.WriteByte(':')
		b.WriteString(strconv.Itoa(o.Port))
	}
	return b.String()
}

// isIP reports whether o names an IP address rather than a DNS name.
func (o Origin) isIP() bool {
	_, err := netip.ParseAddr(o.Host)
	return !o.Wildcard && err == nil
}

func defaultPort(scheme string) int {
	if scheme == "http" {
		return 80
	}
	return 443
}

// ParseGrant parses one permissions.egress entry: scheme://host[:port] with
// scheme https or http. The host is a lowercase ASCII DNS name (an
// internationalized name in punycode, xn--...), optionally with one leading
// "*." label over at least two more labels, or an IP literal: IPv4 as four
// decimal numbers, IPv6 in brackets without a zone. A bare "*", a path,
// query, fragment, user info or percent-encoding is refused. The returned
// error does not wrap ErrDenied: a bad grant is a manifest error.
func ParseGrant(s string) (Origin, error) {
	switch {
	case s == "":
		return Origin{}, errors.New("egress grant is empty")
	case s == "*" || strings.HasSuffix(s, "://*"):
		return Origin{}, fmt.Errorf("%q would allow every host; list each origin, like https://api.example.com", s)
	case len(s) > maxURLLength:
		return Origin{}, fmt.Errorf("egress grant is longer than %d bytes", maxURLLength)
	}
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c >= 0x80:
			return Origin{}, fmt.Errorf("%q: the host must be ASCII; write an internationalized name in punycode (xn--...)", s)
		case c <= ' ' || c == 0x7f || c == '\\':
			return Origin{}, fmt.Errorf("%q contains a space, backslash or control character", s)
		}
	}
	scheme, rest, ok := strings.Cut(s, "://")
	if !ok {
		return Origin{}, fmt.Errorf("%q is not an origin; write scheme://host[:port], like https://api.example.com", s)
	}
	if scheme != "https" && scheme != "http" {
		return Origin{}, fmt.Errorf("%q: the scheme must be https or http, in lowercase", s)
	}
	if i := strings.IndexAny(rest, "/?#@%"); i >= 0 {
		switch rest[i] {
		case '@':
			return Origin{}, fmt.Errorf("%q must not contain user info (user@); put credentials in a secret", s)
		case '%':
			return Origin{}, fmt.Errorf("%q must not contain percent-encoding", s)
		}
		return Origin{}, fmt.Errorf("%q must not have a path, query or fragment; write %s://%s", s, scheme, rest[:i])
	}
	host, bracketed, port, err := splitAuthority(rest)
	if err != nil {
		return Origin{}, fmt.Errorf("%q: %w", s, err)
	}
	if port == 0 {
		port = defaultPort(scheme)
	}
	o := Origin{Scheme: scheme, Port: port}
	if bracketed {
		a, err := parseIPv6(host)
		if err != nil {
			return Origin{}, fmt.Errorf("%q: %w", s, err)
		}
		o.Host = a.String()
		return o, nil
	}
	name, wildcard := strings.CutPrefix(host, "*.")
	switch {
	case name == "":
		return Origin{}, fmt.Errorf("%q has no host", s)
	case strings.Contains(name, "*"):
		return Origin{}, fmt.Errorf("%q: only one leading \"*.\" label may be a wildcard", s)
	case strings.ToLower(name) != name:
		return Origin{}, fmt.Errorf("%q: write the host in lowercase: %s", s, strings.ToLower(host))
	}
	if a, err := netip.ParseAddr(name); err == nil {
		if wildcard {
			return Origin{}, fmt.Errorf("%q: a wildcard cannot be combined with an IP address", s)
		}
		o.Host = a.String()
		return o, nil
	}
	if endsInNumber(name) {
		return Origin{}, fmt.Errorf("%q: %q is not a canonical IPv4 address; write four decimal numbers like 10.0.0.5", s, name)
	}
	if err := checkDNSName(name); err != nil {
		return Origin{}, fmt.Errorf("%q: %w", s, err)
	}
	if wildcard && strings.Count(name, ".") < 1 {
		return Origin{}, fmt.Errorf("%q is too broad; a wildcard must cover a registered domain, like *.example.com", s)
	}
	o.Host, o.Wildcard = name, wildcard
	return o, nil
}

// splitAuthority splits host[:port] or [ipv6][:port]. port is 0 when
// absent. The host is returned without brackets and is not yet checked.
func splitAuthority(a string) (host string, bracketed bool, port int, err error) {
	portStr, hasPort := "", false
	host = a
	if strings.HasPrefix(a, "[") {
		end := strings.IndexByte(a, ']')
		if end < 0 {
			return "", false, 0, errors.New("missing ] after the IPv6 address")
		}
		host, bracketed = a[1:end], true
		if after := a[end+1:]; after != "" {
			if after[0] != ':' {
				return "", false, 0, errors.New("expected :port after the IPv6 address")
			}
			portStr, hasPort = after[1:], true
		}
	} else if i := strings.LastIndexByte(a, ':'); i >= 0 {
		host, portStr, hasPort = a[:i], a[i+1:], true
		if strings.IndexByte(host, ':') >= 0 {
			return "", false, 0, errors.New("an IPv6 address must be written in brackets")
		}
	}
	if hasPort {
		if port, err = parsePort(portStr); err != nil {
			return "", false, 0, err
		}
	}
	return host, bracketed, port, nil
}

// parsePort accepts 1-65535 in decimal without sign or leading zeros.
func parsePort(p string) (int, error) {
	if p == "" || len(p) > 5 || p[0] == '0' || strings.Trim(p, "0123456789") != "" {
		return 0, errors.New("the port is not a number from 1 to 65535")
	}
	n, _ := strconv.Atoi(p) // cannot fail: at most 5 digits
	if n > 65535 {
		return 0, errors.New("the port is not a number from 1 to 65535")
	}
	return n, nil
}

// parseIPv6 parses the inside of [...]: an IPv6 address without a zone.
func parseIPv6(s string) (netip.Addr, error) {
	a, err := netip.ParseAddr(s)
	switch {
	case err != nil || !a.Is6():
		return netip.Addr{}, errors.New("the bracketed host is not an IPv6 address")
	case a.Zone() != "":
		return netip.Addr{}, errors.New("an IPv6 zone (%zone) is not allowed")
	}
	return a, nil
}

// normalizeHost turns a URL host (brackets removed) into its canonical
// form: a lowercase DNS name without a trailing dot, or an IP address.
// Legacy IPv4 spellings (decimal, octal, hex, fewer than four parts), which
// some resolvers and parsers still read as addresses, are refused rather
// than guessed at: any host whose last label is a number is an IP address
// in WHATWG URL terms, and only the strict dotted-quad form is accepted.
func normalizeHost(host string, bracketed bool) (string, netip.Addr, error) {
	if bracketed {
		a, err := parseIPv6(host)
		if err != nil {
			return "", netip.Addr{}, err
		}
		return a.String(), a, nil
	}
	if host == "" {
		return "", netip.Addr{}, errors.New("the URL has no host")
	}
	for i := 0; i < len(host); i++ {
		if host[i] >= 0x80 {
			return "", netip.Addr{}, errors.New("the host must be ASCII; an internationalized name must be written in punycode (xn--...)")
		}
	}
	name := toLowerASCII(host)
	name = strings.TrimSuffix(name, ".")
	if a, err := netip.ParseAddr(name); err == nil && a.Is4() {
		return a.String(), a, nil
	}
	if endsInNumber(name) {
		return "", netip.Addr{}, errors.New("the host is not a canonical IPv4 address (decimal, octal, hex and short forms are refused)")
	}
	if err := checkDNSName(name); err != nil {
		return "", netip.Addr{}, err
	}
	return name, netip.Addr{}, nil
}

// toLowerASCII lowercases s without allocating when it is already lowercase.
func toLowerASCII(s string) string {
	for i := 0; i < len(s); i++ {
		if 'A' <= s[i] && s[i] <= 'Z' {
			return strings.ToLower(s)
		}
	}
	return s
}

// endsInNumber reports whether the last label of name is all decimal
// digits or 0x followed by hex digits: the WHATWG URL test for "this host
// is an IPv4 address".
func endsInNumber(name string) bool {
	last := name[strings.LastIndexByte(name, '.')+1:]
	if last == "" {
		return false
	}
	if hex, ok := strings.CutPrefix(last, "0x"); ok {
		return strings.Trim(hex, "0123456789abcdef") == ""
	}
	return strings.Trim(last, "0123456789") == ""
}

// checkDNSName checks a lowercase DNS name: 1-253 characters, labels of
// 1-63 letters, digits and hyphens not starting or ending with a hyphen.
func checkDNSName(name string) error {
	if name == "" {
		return errors.New("the URL has no host")
	}
	if len(name) > maxDNSName {
		return fmt.Errorf("the host is longer than %d characters", maxDNSName)
	}
	start := 0
	for i := 0; i <= len(name); i++ {
		if i < len(name) && name[i] != '.' {
			c := name[i]
			if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-') {
				return errors.New("the host may contain only letters, digits, hyphens and dots")
			}
			continue
		}
		label := name[start:i]
		switch {
		case label == "":
			return errors.New("the host has an empty label (a leading or doubled dot)")
		case len(label) > maxDNSLabel:
			return fmt.Errorf("a host label is longer than %d characters", maxDNSLabel)
		case label[0] == '-' || label[len(label)-1] == '-':
			return errors.New("a host label starts or ends with a hyphen")
		}
		start = i + 1
	}
	return nil
}
