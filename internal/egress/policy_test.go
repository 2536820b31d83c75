package egress

import (
	"errors"
	"net/netip"
	"strings"
	"testing"
)

func mustPolicy(t testing.TB, grants ...string) *Policy {
	t.Helper()
	p, err := NewPolicy(grants)
	if err != nil {
		t.Fatalf("NewPolicy(%q): %v", grants, err)
	}
	return p
}

var testGrants = []string{
	"https://allowed.com",
	"https://api.stripe.com",
	"https://*.example.com:8443",
	"http://plain.example.org",
	"http://10.0.0.5",
	"https://[2606:4700::1111]",
}

func TestCheckAllowed(t *testing.T) {
	p := mustPolicy(t, testGrants...)
	tests := []struct {
		name, in, origin, url string
	}{
		{"exact", "https://api.stripe.com/v1/charges?x=1", "https://api.stripe.com", "https://api.stripe.com/v1/charges?x=1"},
		{"explicit default port", "https://api.stripe.com:443/", "https://api.stripe.com", "https://api.stripe.com/"},
		{"uppercase host", "https://API.Stripe.COM/", "https://api.stripe.com", "https://api.stripe.com/"},
		{"uppercase scheme", "HTTPS://api.stripe.com/", "https://api.stripe.com", "https://api.stripe.com/"},
		{"trailing dot", "https://api.stripe.com./", "https://api.stripe.com", "https://api.stripe.com/"},
		{"no path", "https://allowed.com", "https://allowed.com", "https://allowed.com"},
		{"wildcard subdomain", "https://a.example.com:8443/x", "https://a.example.com:8443", "https://a.example.com:8443/x"},
		{"wildcard deep subdomain", "https://a.b.example.com:8443/", "https://a.b.example.com:8443", "https://a.b.example.com:8443/"},
		{"granted http", "http://plain.example.org/", "http://plain.example.org", "http://plain.example.org/"},
		{"granted ip", "http://10.0.0.5/", "http://10.0.0.5", "http://10.0.0.5/"},
		{"granted ip trailing dot", "http://10.0.0.5./", "http://10.0.0.5", "http://10.0.0.5/"},
		{"granted ipv6 other spelling", "https://[2606:4700:0::1111]/", "https://[2606:4700::1111]", "https://[2606:4700::1111]/"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := p.Check(tt.in)
			if err != nil {
				t.Fatalf("Check(%q) = %v, want allowed", tt.in, err)
			}
			if s := got.Origin.String(); s != tt.origin {
				t.Errorf("Check(%q).Origin = %q, want %q", tt.in, s, tt.origin)
			}
			if s := got.URL.String(); s != tt.url {
				t.Errorf("Check(%q).URL = %q, want %q", tt.in, s, tt.url)
			}
		})
	}
}

func TestCheckDenied(t *testing.T) {
	p := mustPolicy(t, testGrants...)
	tests := []struct{ name, in string }{
		// userinfo tricks
		{"userinfo to evil", "https://allowed.com@evil.com/"},
		{"userinfo with password", "https://allowed.com:443@evil.com/"},
		{"userinfo on allowed host", "https://user:pw@allowed.com/"},
		{"encoded at", "https://allowed.com%40evil.com/"},
		{"backslash authority", `https://allowed.com\@evil.com/`},
		{"backslash path", `https://evil.com\allowed.com`},
		// lookalikes and suffixes
		{"idn cyrillic a", "https://аpple.com/"},
		{"idn in allowed", "https://аllowed.com/"},
		{"suffix of allowed", "https://allowed.com.evil.com/"},
		{"prefix of allowed", "https://evilallowed.com/"},
		{"wildcard apex", "https://example.com:8443/"},
		{"wildcard lookalike", "https://evilexample.com:8443/"},
		{"wildcard wrong port", "https://a.example.com/"},
		{"percent in host", "https://allowed%2ecom/"},
		{"fullwidth dot", "https://allowed．com/"},
		// scheme and port
		{"http when https granted", "http://api.stripe.com/"},
		{"https when http granted", "https://plain.example.org/"},
		{"other port", "https://api.stripe.com:8443/"},
		{"port zero", "https://api.stripe.com:0/"},
		{"port too big", "https://api.stripe.com:65536/"},
		{"port overflow", "https://api.stripe.com:99999999999999999999/"},
		{"port leading zero", "https://api.stripe.com:0443/"},
		{"port empty", "https://api.stripe.com:/"},
		{"port sign", "https://api.stripe.com:+443/"},
		{"ftp", "ftp://api.stripe.com/"},
		{"javascript", "javascript:alert(1)"},
		{"file", "file:///etc/passwd"},
		// malformed
		{"empty", ""},
		{"relative", "/v1/charges"},
		{"scheme relative", "//api.stripe.com/"},
		{"single slash", "https:/api.stripe.com/"},
		{"no slash", "https:api.stripe.com"},
		{"empty host", "https:///v1"},
		{"empty host with port", "https://:443/"},
		{"control char", "https://api.stripe.com/\x00"},
		{"newline", "https://api.stripe.com/\r\nHost: evil"},
		{"tab in host", "https://api.\tstripe.com/"},
		{"space", "https://api.stripe.com /"},
		{"double trailing dot", "https://api.stripe.com../"},
		{"leading dot", "https://.api.stripe.com/"},
		{"underscore", "https://api_stripe.com/"},
		{"too long", "https://api.stripe.com/" + strings.Repeat("a", maxURLLength)},
		// IP literals
		{"loopback", "http://127.0.0.1/"},
		{"ipv6 loopback", "http://[::1]/"},
		{"ipv6 loopback long", "http://[0:0:0:0:0:0:0:1]/"},
		{"ipv4 mapped loopback", "http://[::ffff:127.0.0.1]/"},
		{"ipv4 mapped granted ip", "http://[::ffff:10.0.0.5]/"},
		{"ipv6 zone", "http://[fe80::1%25eth0]/"},
		{"decimal", "http://2130706433/"},
		{"decimal granted ip", "http://167772165/"},
		{"octal", "http://0177.0.0.1/"},
		{"octal granted ip", "http://012.0.0.05/"},
		{"hex", "http://0x7f.1/"},
		{"hex full", "http://0x7f000001/"},
		{"hex dotted", "http://0x7f.0x0.0x0.0x1/"},
		{"short", "http://127.1/"},
		{"short granted ip", "http://10.5/"},
		{"metadata", "http://169.254.169.254/latest/meta-data/"},
		{"metadata v6", "http://[fd00:ec2::254]/"},
		{"unspecified", "http://0.0.0.0/"},
		{"unbracketed v6", "http://::1/"},
		{"v4 in brackets", "http://[127.0.0.1]/"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := p.Check(tt.in)
			if err == nil {
				t.Fatalf("Check(%q) = %v, want denied", tt.in, got.Origin)
			}
			if !errors.Is(err, ErrDenied) {
				t.Errorf("Check(%q) = %v, want it to wrap ErrDenied", tt.in, err)
			}
			var de *DenyError
			if !errors.As(err, &de) {
				t.Errorf("Check(%q) error %T is not a *DenyError", tt.in, err)
			}
		})
	}
}

// TestCheckErrorHidesSecrets checks that refusals name the origin and
// never the user info, path or query.
func TestCheckErrorHidesSecrets(t *testing.T) {
	p := mustPolicy(t, "https://allowed.com")
	tests := []struct{ name, in, origin string }{
		{"query token", "https://evil.com/x?api_key=SECRET123", "https://evil.com"},
		{"path token", "https://evil.com:8443/SECRET123/", "https://evil.com:8443"},
		{"userinfo", "https://allowed.com:SECRET123@evil.com/", ""},
		{"userinfo user", "https://SECRET123@allowed.com/", ""},
		{"malformed with token", "https://evil.com/\x00SECRET123", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := p.Check(tt.in)
			var de *DenyError
			if !errors.As(err, &de) {
				t.Fatalf("Check(%q) = %v, want a *DenyError", tt.in, err)
			}
			if strings.Contains(err.Error(), "SECRET123") {
				t.Errorf("Check(%q) error %q contains the secret", tt.in, err)
			}
			if de.Origin != tt.origin {
				t.Errorf("Check(%q) error origin = %q, want %q", tt.in, de.Origin, tt.origin)
			}
			if tt.origin != "" && !strings.Contains(err.Error(), tt.origin) {
				t.Errorf("Check(%q) error %q does not name %s", tt.in, err, tt.origin)
			}
		})
	}
}

func TestCheckHTTPHint(t *testing.T) {
	p := mustPolicy(t, "https://api.stripe.com")
	_, err := p.Check("http://api.stripe.com/")
	if err == nil || !strings.Contains(err.Error(), "only https") {
		t.Errorf("Check(http://api.stripe.com/) = %v, want a hint that only https is granted", err)
	}
}

func TestWithResolverLeavesOriginal(t *testing.T) {
	p := mustPolicy(t, "https://allowed.com")
	r := &fakeResolver{}
	q := p.WithResolver(r)
	if p.resolver == Resolver(r) {
		t.Error("WithResolver changed the original policy's resolver")
	}
	if q.resolver != Resolver(r) {
		t.Error("WithResolver did not set the copy's resolver")
	}
	g := p.Grants()
	g[0].Host = "evil.com"
	if _, err := p.Check("https://allowed.com/"); err != nil {
		t.Errorf("mutating Grants() changed the policy: %v", err)
	}
}

func TestAddrReason(t *testing.T) {
	tests := []struct {
		addr string
		want string // "" means allowed
	}{
		{"8.8.8.8", ""},
		{"93.184.216.34", ""},
		{"2606:4700:4700::1111", ""},
		{"::ffff:8.8.8.8", ""},
		{"64:ff9b::808:808", ""},
		{"127.0.0.1", "loopback"},
		{"127.255.255.254", "loopback"},
		{"10.1.2.3", "private"},
		{"172.16.0.1", "private"},
		{"172.31.255.255", "private"},
		{"192.168.1.1", "private"},
		{"169.254.169.254", "cloud metadata"},
		{"169.254.1.1", "link-local"},
		{"100.64.0.1", "shared (CGNAT)"},
		{"100.100.100.200", "shared (CGNAT)"},
		{"198.18.0.1", "benchmarking"},
		{"198.19.255.255", "benchmarking"},
		{"192.0.2.1", "documentation"},
		{"198.51.100.1", "documentation"},
		{"203.0.113.1", "documentation"},
		{"224.0.0.1", "multicast"},
		{"239.255.255.250", "multicast"},
		{"255.255.255.255", "reserved"},
		{"0.0.0.0", "unspecified (this network)"},
		{"192.0.0.192", "IETF protocol assignment"},
		{"::", "unspecified"},
		{"::1", "loopback"},
		{"::ffff:127.0.0.1", "loopback"},
		{"::ffff:169.254.169.254", "cloud metadata"},
		{"::ffff:10.0.0.1", "private"},
		{"::ffff:0:7f00:1", "IPv4-translated"},
		{"::127.0.0.1", "reserved"},
		{"64:ff9b::7f00:1", "NAT64 form of a loopback"},
		{"64:ff9b::a9fe:a9fe", "NAT64 form of a cloud metadata"},
		{"64:ff9b:1::1", "local-use NAT64"},
		{"fd00:ec2::254", "cloud metadata"},
		{"fc00::1", "private (unique local)"},
		{"fd12:3456::1", "private (unique local)"},
		{"fe80::1", "link-local"},
		{"fe80::1%eth0", "scoped (zone)"},
		{"fec0::1", "site-local"},
		{"ff02::1", "multicast"},
		{"2001:db8::1", "documentation"},
		{"3fff::1", "documentation"},
		{"2002:7f00:1::1", "6to4"},
		{"2001::1", "IETF protocol assignment"},
		{"100::1", "discard-only"},
		{"4000::1", "reserved"},
	}
	for _, tt := range tests {
		t.Run(tt.addr, func(t *testing.T) {
			if got := addrReason(netip.MustParseAddr(tt.addr)); got != tt.want {
				t.Errorf("addrReason(%q) = %q, want %q", tt.addr, got, tt.want)
			}
		})
	}
	if got := addrReason(netip.Addr{}); got == "" {
		t.Error("addrReason(zero Addr) = \"\", want refused")
	}
}
