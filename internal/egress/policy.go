package egress

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"slices"
	"strings"
	"time"
)

// ErrDenied is wrapped by every refusal: a destination that is not
// granted, a malformed URL, or a name that resolves to a refused address.
// Test with errors.Is; errors.As with *DenyError gives the details.
var ErrDenied = errors.New("egress denied")

// DenyError describes one refusal. Its Error text is safe to show the
// function's author: it names at most the origin and a reason, never a
// path, query or user info.
type DenyError struct {
	// Origin is scheme://host[:port] (host:port from the dialer), or ""
	// when the URL was too malformed to name one.
	Origin string
	// Reason says why, e.g. "not granted" or "resolves to a loopback address".
	Reason string
	// Addr is the refused resolved address, when there was one. It is
	// left out of Error: internal addresses are for the operator's log.
	Addr netip.Addr
}

func (e *DenyError) Error() string {
	if e.Origin == "" {
		return "egress denied: " + e.Reason
	}
	return "egress to " + e.Origin + " denied: " + e.Reason
}

// Unwrap returns ErrDenied.
func (e *DenyError) Unwrap() error { return ErrDenied }

// Resolver looks up a host's addresses. *net.Resolver satisfies it; tests
// inject answers.
type Resolver interface {
	LookupIPAddr(ctx context.Context, host string) ([]net.IPAddr, error)
}

var _ Resolver = (*net.Resolver)(nil)

// dialTimeout bounds one TCP connect.
const dialTimeout = 10 * time.Second

// Policy decides which destinations one function version may reach. It is
// immutable and safe for concurrent use.
type Policy struct {
	grants   []Origin // never mutated after NewPolicy; shared by copies
	resolver Resolver
	// dial connects to an already-checked "ip:port"; tests replace it.
	dial func(ctx context.Context, network, addr string) (net.Conn, error)
}

// NewPolicy parses grants (permissions.egress entries, see ParseGrant).
// No grants means every destination is denied. Duplicate grants are
// accepted. The policy resolves names with net.DefaultResolver until
// WithResolver says otherwise.
func NewPolicy(grants []string) (*Policy, error) {
	p := &Policy{resolver: net.DefaultResolver}
	for i, g := range grants {
		o, err := ParseGrant(g)
		if err != nil {
			return nil, fmt.Errorf("egress grant %d: %w", i+1, err)
		}
		p.grants = append(p.grants, o)
	}
	d := &net.Dialer{Timeout: dialTimeout, KeepAlive: 30 * time.Second}
	p.dial = d.DialContext
	return p, nil
}

// WithResolver returns a copy of p that resolves names with r; p is
// unchanged.
func (p *Policy) WithResolver(r Resolver) *Policy {
	c := *p
	c.resolver = r
	return &c
}

// Grants returns a copy of the parsed grants.
func (p *Policy) Grants() []Origin { return slices.Clone(p.grants) }

// Target is a URL that Check allowed.
type Target struct {
	// URL is the parsed URL with its scheme and host normalized (lowercase,
	// no trailing dot, canonical IP spelling, default port left out). Build
	// the outgoing request from it, not from the raw string.
	URL *url.URL
	// Origin is the destination's origin, Port always set.
	Origin Origin
	// Grant is the grant that allowed it.
	Grant Origin
	// Addr is the destination address when the host is an IP literal.
	Addr netip.Addr
}

// Check parses rawURL strictly and reports whether its origin is granted.
// It never resolves a name: the addresses a name resolves to are checked
// when DialContext connects.
//
// Refused, with an error wrapping ErrDenied: a scheme other than http or
// https; anything but "scheme://" before the host; user info; a backslash,
// space or control character anywhere; percent-encoding or a non-ASCII
// byte in the host (IDN must be punycode); an empty host; a port outside
// 1-65535 or with leading zeros; an IPv6 zone; an IPv4 address in any
// spelling but four decimal numbers; and any origin that no grant matches.
// An https URL matches only https grants, so http is allowed only where an
// http:// origin is granted.
func (p *Policy) Check(rawURL string) (Target, error) {
	scheme, authority, err := splitURL(rawURL)
	if err != nil {
		return Target{}, &DenyError{Reason: err.Error()}
	}
	host, bracketed, port, err := splitAuthority(authority)
	if err != nil {
		return Target{}, &DenyError{Reason: err.Error()}
	}
	name, addr, err := normalizeHost(host, bracketed)
	if err != nil {
		return Target{}, &DenyError{Reason: err.Error()}
	}
	explicitPort := port != 0
	if !explicitPort {
		port = defaultPort(scheme)
	}
	o := Origin{Scheme: scheme, Host: name, Port: port}
	g, ok := p.match(o, addr.IsValid())
	if !ok {
		return Target{}, &DenyError{Origin: o.String(), Reason: p.notGrantedReason(o)}
	}
	// An IP literal matches only a grant of that exact address, which is
	// the one exception to the address rules, so there is nothing more to
	// check here.
	u, err := url.Parse(rawURL)
	if err != nil || u.Host != authority || u.User != nil || u.Opaque != "" {
		// splitURL and net/url disagree about the host: refuse rather
		// than guess which one the HTTP client would use.
		return Target{}, &DenyError{Origin: o.String(), Reason: "malformed URL"}
	}
	u.Scheme = scheme
	u.Host = hostPort(o, explicitPort && port != defaultPort(scheme))
	return Target{URL: u, Origin: o, Grant: g, Addr: addr}, nil
}

// hostPort writes o's host (IPv6 in brackets) and, when withPort, its port.
func hostPort(o Origin, withPort bool) string {
	s := Origin{Host: o.Host, Port: o.Port}.String() // host:port
	if withPort {
		return s
	}
	return s[:strings.LastIndexByte(s, ':')]
}

// splitURL checks the characters of raw and returns its lowercase scheme
// (http or https) and the authority between "://" and the first /, ? or #.
func splitURL(raw string) (scheme, authority string, err error) {
	if len(raw) > maxURLLength {
		return "", "", fmt.Errorf("the URL is longer than %d bytes", maxURLLength)
	}
	for i := 0; i < len(raw); i++ {
		if c := raw[i]; c <= ' ' || c == 0x7f || c == '\\' {
			return "", "", errors.New("the URL contains a space, backslash or control character")
		}
	}
	colon := strings.IndexByte(raw, ':')
	if colon < 0 || !strings.HasPrefix(raw[colon:], "://") {
		return "", "", errors.New("the URL must be absolute: scheme://host/...")
	}
	switch scheme = toLowerASCII(raw[:colon]); scheme {
	case "https", "http":
	default:
		return "", "", errors.New("the scheme must be https or http")
	}
	rest := raw[colon+3:]
	authority = rest
	if i := strings.IndexAny(rest, "/?#"); i >= 0 {
		authority = rest[:i]
	}
	for i := 0; i < len(authority); i++ {
		switch c := authority[i]; {
		case c == '@':
			return "", "", errors.New("user info (user@host) is not allowed in the URL; put credentials in a secret")
		case c == '%':
			return "", "", errors.New("percent-encoding is not allowed in the host")
		case c >= 0x80:
			return "", "", errors.New("the host must be ASCII; an internationalized name must be written in punycode (xn--...)")
		}
	}
	return scheme, authority, nil
}

// match returns the first grant that allows o. A wildcard matches names
// strictly below its domain, never the domain itself nor an IP address.
func (p *Policy) match(o Origin, isIP bool) (Origin, bool) {
	for _, g := range p.grants {
		if (o.Scheme == "" || g.Scheme == o.Scheme) && g.Port == o.Port && hostMatches(g, o.Host, isIP) {
			return g, true
		}
	}
	return Origin{}, false
}

func hostMatches(g Origin, host string, isIP bool) bool {
	if !g.Wildcard {
		return host == g.Host
	}
	n := len(host) - len(g.Host)
	return !isIP && n > 1 && host[n-1] == '.' && host[n:] == g.Host
}

// notGrantedReason explains a miss, pointing out a scheme mismatch.
func (p *Policy) notGrantedReason(o Origin) string {
	if o.Scheme == "http" {
		other := o
		other.Scheme, other.Port = "https", 443
		if o.Port == 80 {
			if _, ok := p.match(other, false); ok {
				return "not granted (only https is granted for this host)"
			}
		}
	}
	return "not granted"
}
