package egress

import (
	"net/url"
	"strings"
	"testing"
)

var fuzzGrants = []string{
	"https://allowed.com",
	"https://*.example.com:8443",
	"http://10.0.0.5",
	"http://[::1]:8080",
}

// FuzzCheck: Check never panics; anything it allows matches a grant, agrees
// with net/url about the host, and is allowed again when re-checked.
func FuzzCheck(f *testing.F) {
	for _, s := range []string{
		"https://allowed.com/x?y=1", "https://a.example.com:8443/", "http://10.0.0.5/",
		"http://[::1]:8080/", "https://allowed.com@evil.com/", "http://2130706433/",
		"http://0177.0.0.1/", "http://0x7f.1/", "https://аpple.com/", "HTTPS://ALLOWED.COM./",
		"https://allowed.com.evil.com/", `https://allowed.com\@evil`, "http://[::ffff:10.0.0.5]/",
	} {
		f.Add(s)
	}
	p := mustPolicy(f, fuzzGrants...)
	f.Fuzz(func(t *testing.T, raw string) {
		got, err := p.Check(raw)
		if err != nil {
			return
		}
		o := got.Origin
		if !hostMatches(got.Grant, o.Host, got.Addr.IsValid()) || got.Grant.Scheme != o.Scheme || got.Grant.Port != o.Port {
			t.Fatalf("Check(%q) allowed %s via grant %s, which does not match", raw, o, got.Grant)
		}
		granted := false
		for _, g := range p.Grants() {
			granted = granted || g == got.Grant
		}
		if !granted {
			t.Fatalf("Check(%q) returned grant %s, not one of the policy's", raw, got.Grant)
		}
		u, err := url.Parse(raw)
		if err != nil {
			t.Fatalf("Check(%q) allowed a URL net/url rejects: %v", raw, err)
		}
		if h := strings.TrimSuffix(strings.ToLower(u.Hostname()), "."); h != o.Host && !got.Addr.IsValid() {
			t.Fatalf("Check(%q) checked host %q, net/url sees %q", raw, o.Host, h)
		}
		again, err := p.Check(got.URL.String())
		if err != nil || again.Origin != o {
			t.Fatalf("Check(%q) = %s, but re-checking %q = %v, %v", raw, o, got.URL, again.Origin, err)
		}
	})
}

func BenchmarkCheck(b *testing.B) {
	p := mustPolicy(b, "https://api.stripe.com", "https://*.example.com", "http://10.0.0.5", "https://hooks.slack.com")
	for _, bc := range []struct{ name, url string }{
		{"allowed", "https://api.stripe.com/v1/charges?limit=10"},
		{"wildcard", "https://eu.api.example.com/v2/items"},
		{"denied", "https://evil.com/steal"},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				p.Check(bc.url)
			}
		})
	}
}
