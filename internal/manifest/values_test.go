package manifest

import (
	"strings"
	"testing"
	"time"
)

func TestParseSize(t *testing.T) {
	tests := []struct {
		in      string
		want    int64
		wantErr string // substring of the error; "" means success
	}{
		{"0", 0, ""},
		{"1048576", 1 << 20, ""},
		{"512B", 512, ""},
		{"512KiB", 512 << 10, ""},
		{"64MiB", 64 << 20, ""},
		{"1GiB", 1 << 30, ""},
		{"4GiB", 4 << 30, ""},
		{"0064MiB", 64 << 20, ""},
		{"8589934591GiB", 8589934591 << 30, ""},
		{"64MB", 0, `"64MB" is not a size; use a unit like 64MiB`},
		{"64mb", 0, "use a unit like 64MiB"},
		{"1KB", 0, "use a unit like 1MiB"},
		{"1G", 0, "not a size"},
		{"64mib", 0, "not a size"},
		{"64 MiB", 0, "write it without a space: 64MiB"},
		{"1.5MiB", 0, "so write 1536KiB"},
		{"0.5KiB", 0, "so write 512 bytes"},
		{"1.3B", 0, "sizes are whole numbers"},
		{"", 0, "not a size"},
		{"MiB", 0, "not a size"},
		{"-1", 0, "not a size"},
		{"+1", 0, "not a size"},
		{" 1", 0, "not a size"},
		{"1_000", 0, "not a size"},
		{"0x10", 0, "not a size"},
		{"9223372036854775807", 1<<63 - 1, ""},
		{"9223372036854775808", 0, "too large"},
		{"99999999999999999999999", 0, "too large"},
		{"8589934592GiB", 0, "too large"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := parseSize(tt.in)
			if tt.wantErr == "" {
				if err != nil || got != tt.want {
					t.Errorf("parseSize(%q) = %v, %v, want %v, nil", tt.in, got, err, tt.want)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("parseSize(%q) = %v, %v, want an error containing %q", tt.in, got, err, tt.wantErr)
			}
		})
	}
}

func TestFormatSize(t *testing.T) {
	tests := []struct {
		in   int64
		want string
	}{
		{0, "0 bytes"},
		{1, "1 byte"},
		{1000, "1000 bytes"},
		{1024, "1KiB"},
		{1088 << 10, "1088KiB"},
		{64 << 20, "64MiB"},
		{4 << 30, "4GiB"},
	}
	for _, tt := range tests {
		t.Run(tt.want, func(t *testing.T) {
			if got := formatSize(tt.in); got != tt.want {
				t.Errorf("formatSize(%d) = %q, want %q", tt.in, got, tt.want)
			}
			if tt.in > 1 {
				// What formatSize writes, parseSize reads back.
				if back, err := parseSize(strings.TrimSuffix(tt.want, " bytes")); err != nil || back != tt.in {
					t.Errorf("parseSize(%q) = %v, %v, want %v", tt.want, back, err, tt.in)
				}
			}
		})
	}
}

func TestParseDuration(t *testing.T) {
	tests := []struct {
		in      string
		want    time.Duration
		wantErr string
	}{
		{"5s", 5 * time.Second, ""},
		{"250ms", 250 * time.Millisecond, ""},
		{"1m30s", 90 * time.Second, ""},
		{"1.5s", 1500 * time.Millisecond, ""},
		{"15m", 15 * time.Minute, ""},
		{"0", 0, "use a unit like 0s"},
		{"5", 0, `"5" is not a duration; use a unit like 5s or 5ms`},
		{"5 s", 0, "not a duration"},
		{"5sec", 0, "not a duration"},
		{"", 0, "not a duration"},
		{"1d", 0, "not a duration"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := parseDuration(tt.in)
			if tt.wantErr == "" {
				if err != nil || got != tt.want {
					t.Errorf("parseDuration(%q) = %v, %v, want %v, nil", tt.in, got, err, tt.want)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("parseDuration(%q) = %v, %v, want an error containing %q", tt.in, got, err, tt.wantErr)
			}
		})
	}
}

func TestFormatDuration(t *testing.T) {
	tests := []struct {
		in   time.Duration
		want string
	}{
		{time.Millisecond, "1ms"},
		{15 * time.Minute, "15m"},
		{90 * time.Second, "1m30s"},
		{2 * time.Hour, "2h"},
		{2*time.Hour + 30*time.Second, "2h0m30s"},
	}
	for _, tt := range tests {
		t.Run(tt.want, func(t *testing.T) {
			if got := formatDuration(tt.in); got != tt.want {
				t.Errorf("formatDuration(%v) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

func TestParseRate(t *testing.T) {
	tests := []struct {
		in      string
		n       int
		per     time.Duration
		wantErr string
	}{
		{"20/s", 20, time.Second, ""},
		{"100/m", 100, time.Minute, ""},
		{"1000/h", 1000, time.Hour, ""},
		{"1/s", 1, time.Second, ""},
		{"1000000/s", 1000000, time.Second, ""},
		{"0/s", 0, 0, "allows no requests"},
		{"1000001/s", 0, 0, "too large"},
		{"99999999999999999999/s", 0, 0, "too large"},
		{"20/sec", 0, 0, "not a rate"},
		{"20/d", 0, 0, "not a rate"},
		{"20", 0, 0, "not a rate"},
		{"/s", 0, 0, "not a rate"},
		{"-1/s", 0, 0, "not a rate"},
		{"1.5/s", 0, 0, "not a rate"},
		{"20 /s", 0, 0, "not a rate"},
		{"20/S", 0, 0, "not a rate"},
		{"", 0, 0, "not a rate"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			n, per, err := parseRate(tt.in)
			if tt.wantErr == "" {
				if err != nil || n != tt.n || per != tt.per {
					t.Errorf("parseRate(%q) = %v, %v, %v, want %v, %v, nil", tt.in, n, per, err, tt.n, tt.per)
				}
				if back := formatRate(n, per); back != tt.in {
					t.Errorf("formatRate(%v, %v) = %q, want %q", n, per, back, tt.in)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("parseRate(%q) = %v, %v, %v, want an error containing %q", tt.in, n, per, err, tt.wantErr)
			}
		})
	}
}

func TestParseOrigin(t *testing.T) {
	tests := []struct {
		in      string
		want    string // canonical form
		wantErr string
	}{
		{"https://api.stripe.com", "https://api.stripe.com", ""},
		{"https://api.stripe.com:443", "https://api.stripe.com", ""},
		{"http://api.stripe.com:80", "http://api.stripe.com", ""},
		{"http://api.stripe.com:443", "http://api.stripe.com:443", ""},
		{"http://localhost:8080", "http://localhost:8080", ""},
		{"https://*.example.com", "https://*.example.com", ""},
		{"https://10.0.0.1", "https://10.0.0.1", ""},
		{"https://10.0.0.1:8443", "https://10.0.0.1:8443", ""},
		{"http://[::1]:9000", "http://[::1]:9000", ""},
		{"http://[0:0::1]", "http://[::1]", ""},
		{"https://xn--bcher-kva.example", "https://xn--bcher-kva.example", ""},
		{"https://a-b.c-d.example", "https://a-b.c-d.example", ""},
		{"", "", "origin is empty"},
		{"*", "", "would allow every host"},
		{"https://*", "", "would allow every host"},
		{"https://*.com", "", "too broad"},
		{"https://*.*.example.com", "", `only one leading "*." label`},
		{"https://a*.example.com", "", `only one leading "*." label`},
		{"https://user@host.example", "", "user info"},
		{"https://user:pw@host.example:443/x", "", "user info"},
		{"https://host.example/path", "", "must not have a path"},
		{"https://host.example/", "", "write https://host.example"},
		{"https://host.example?q", "", "must not have a path, query or fragment"},
		{"https://host.example#f", "", "must not have a path, query or fragment"},
		{"https://bücher.example", "", "punycode"},
		{"https://ｅxample.com", "", "punycode"},
		{"api.stripe.com", "", "like https://api.stripe.com"},
		{"//api.stripe.com", "", "not an origin"},
		{"ftp://host.example", "", `scheme "ftp" is not allowed`},
		{"wss://host.example", "", "use https or http"},
		{"HTTPS://host.example", "", "write the scheme in lowercase"},
		{"https://Host.example", "", "write the host in lowercase: host.example"},
		{"https://", "", "no host"},
		{"https://:443", "", "no host"},
		{"https://host.example:", "", "not a port"},
		{"https://host.example:0", "", "not a port"},
		{"https://host.example:08080", "", "not a port"},
		{"https://host.example:65536", "", "not a port"},
		{"https://host.example:http", "", "not a port"},
		{"https://[::1", "", "missing ]"},
		{"https://[::1]x", "", "expected :port"},
		{"https://[1.2.3.4]", "", "not an IPv6 address"},
		{"https://[fe80::1%eth0]", "", "not an IPv6 address"},
		{"https://::1", "", "in brackets"},
		{"https://1.2.3.256", "", "neither an IP address nor a DNS name"},
		{"https://01.2.3.4", "", "neither an IP address nor a DNS name"},
		{"https://*.1.2.3.4", "", "wildcard cannot be combined with an IP"},
		{"https://host..example", "", "empty label"},
		{"https://host.example.", "", "empty label"},
		{"https://-host.example", "", "starts or ends with a hyphen"},
		{"https://host_1.example", "", "only letters, digits and hyphens"},
		{"https://" + strings.Repeat("a", 64) + ".example", "", "longer than 63"},
		{"https://" + strings.Repeat("a.", 127) + "example", "", "longer than 253"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := parseOrigin(tt.in)
			if tt.wantErr == "" {
				if err != nil || got != tt.want {
					t.Errorf("parseOrigin(%q) = %q, %v, want %q, nil", tt.in, got, err, tt.want)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("parseOrigin(%q) = %q, %v, want an error containing %q", tt.in, got, err, tt.wantErr)
			}
		})
	}
}

func TestParsePattern(t *testing.T) {
	tests := []struct {
		in           string
		method, path string
		wantErr      string
	}{
		{"/", "", "/", ""},
		{"/orders", "", "/orders", ""},
		{"POST /orders", "POST", "/orders", ""},
		{"GET /orders/{id}", "GET", "/orders/{id}", ""},
		{"GET /files/{path...}", "GET", "/files/{path...}", ""},
		{"GET /{$}", "GET", "/{$}", ""},
		{"PROPFIND /dav/", "PROPFIND", "/dav/", ""},
		{"GET /café", "GET", "/café", ""},
		{"", "", "", "route is empty"},
		{" GET /a", "", "", "leading or trailing spaces"},
		{"GET /a ", "", "", "leading or trailing spaces"},
		{"GET  /a", "", "", "one space"},
		{"GET\t/a", "", "", "one space"},
		{"get /a", "", "", "uppercase: GET"},
		{"G3T /a", "", "", "not an HTTP method"},
		{"GET example.com/a", "", "", "must not name a host (example.com)"},
		{"example.com/a", "", "", "must not name a host"},
		{"localhost/a", "", "", "must not name a host"},
		{"orders", "", "", "must start with /"},
		{"GET orders", "", "", "must start with /"},
		{"GET /a b", "", "", "space or control character"},
		{"GET /a\x00", "", "", "space or control character"},
		{"GET /a?b", "", "", "must not contain ? or #"},
		{"GET /a#b", "", "", "must not contain ? or #"},
		{"GET /a//b", "", "", "not clean"},
		{"GET /a/./b", "", "", "not clean"},
		{"GET /a/..", "", "", "not clean"},
		{"GET /{id", "", "", "bad wildcard segment"},
		{"GET /{a-b}", "", "", "bad wildcard name"},
		{"GET /{x}/{x}", "", "", "duplicate wildcard name"},
		{"GET /{x...}/y", "", "", "not at end"},
		{"GET /a{x}", "", "", "bad wildcard segment"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			method, path, err := parsePattern(tt.in)
			if tt.wantErr == "" {
				if err != nil || method != tt.method || path != tt.path {
					t.Errorf("parsePattern(%q) = %q, %q, %v, want %q, %q, nil", tt.in, method, path, err, tt.method, tt.path)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("parsePattern(%q) = %q, %q, %v, want an error containing %q", tt.in, method, path, err, tt.wantErr)
			}
		})
	}
}

func TestCheckNames(t *testing.T) {
	tests := []struct {
		check string
		fn    func(string) error
		in    string
		ok    bool
	}{
		{"name", func(s string) error { return checkName(s, false) }, "orders", true},
		{"name", func(s string) error { return checkName(s, false) }, "a", true},
		{"name", func(s string) error { return checkName(s, false) }, "a-1-b", true},
		{"name", func(s string) error { return checkName(s, false) }, strings.Repeat("a", 63), true},
		{"name", func(s string) error { return checkName(s, false) }, strings.Repeat("a", 64), false},
		{"name", func(s string) error { return checkName(s, false) }, "", false},
		{"name", func(s string) error { return checkName(s, false) }, "1a", false},
		{"name", func(s string) error { return checkName(s, false) }, "a-", false},
		{"name", func(s string) error { return checkName(s, false) }, "A", false},
		{"name", func(s string) error { return checkName(s, false) }, "a_b", false},
		{"bucket", func(s string) error { return checkName(s, true) }, "a_b-c", true},
		{"bucket", func(s string) error { return checkName(s, true) }, "_a", false},
		{"secret", checkSecretName, "STRIPE_KEY", true},
		{"secret", checkSecretName, "A1", true},
		{"secret", checkSecretName, "_A", false},
		{"secret", checkSecretName, "a", false},
		{"secret", checkSecretName, "A-B", false},
		{"scope", checkScope, "orders:write", true},
		{"scope", checkScope, "0.a_b-c", true},
		{"scope", checkScope, ":a", false},
		{"scope", checkScope, "A", false},
		{"scope", checkScope, "a b", false},
		{"env", checkEnvKey, "CURRENCY", true},
		{"env", checkEnvKey, "_x9", true},
		{"env", checkEnvKey, "9x", false},
		{"env", checkEnvKey, "A-B", false},
		{"env", checkEnvKey, "WARDEN_X", false},
		{"env", checkEnvKey, "warden_x", false},
		{"env", checkEnvKey, "WARDENX", true},
		{"path", checkRelPath, "orders.wasm", true},
		{"path", checkRelPath, "./build/orders.wasm", true},
		{"path", checkRelPath, "../shared/orders.wasm", true},
		{"path", checkRelPath, "", false},
		{"path", checkRelPath, "/abs.wasm", false},
		{"path", checkRelPath, `C:\x.wasm`, false},
		{"path", checkRelPath, "c:x.wasm", false},
		{"path", checkRelPath, `a\b.wasm`, false},
		{"path", checkRelPath, "https://x/y.wasm", false},
		{"path", checkRelPath, "build/", false},
		{"path", checkRelPath, ".", false},
		{"path", checkRelPath, "a\nb", false},
	}
	for _, tt := range tests {
		t.Run(tt.check+"/"+tt.in, func(t *testing.T) {
			err := tt.fn(tt.in)
			if (err == nil) != tt.ok {
				t.Errorf("check %s(%q) = %v, want ok=%v", tt.check, tt.in, err, tt.ok)
			}
		})
	}
}

func TestSuggest(t *testing.T) {
	tests := []struct {
		in, want string
	}{
		{"limts", "limits"},
		{"Limits", "limits"},
		{"ratelimit", "rateLimit"},
		{"request_body", "requestBody"},
		{"replicas", ""},
		{"", ""},
		{strings.Repeat("x", 1000), ""},
	}
	known := append(append([]string{}, topFields...), append(limitFields, routeFields...)...)
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			if got := suggest(tt.in, known); got != tt.want {
				t.Errorf("suggest(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}
