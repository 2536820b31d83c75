package scan

import (
	"slices"
	"strings"
	"testing"

	"warden/internal/manifest"
)

func TestLint(t *testing.T) {
	type want struct {
		rule string
		sev  Severity
		loc  string
	}
	tests := []struct {
		name string
		http string // YAML under http:
		want []want
	}{
		{"POST without auth", "  - route: \"POST /orders\"\n    auth: none\n", []want{
			{"lint.auth-none-write", High, "warden.yaml:6 (http[0].auth)"},
			{"lint.no-rate-limit", Medium, "warden.yaml:5 (http[0])"},
		}},
		{"any method without auth", "  - route: /hook\n    auth: none\n    rateLimit: {rate: 5/s}\n", []want{
			{"lint.auth-none-write", High, "warden.yaml:6 (http[0].auth)"},
		}},
		{"DELETE, second route", "  - route: \"GET /a\"\n  - {route: \"DELETE /a/{id}\", auth: none, rateLimit: {rate: 1/s}}\n", []want{
			{"lint.auth-none-write", High, "warden.yaml:6 (http[1].auth)"},
		}},
		{"GET without auth, rate limited", "  - route: \"GET /ping\"\n    auth: none\n    rateLimit: {rate: 20/s, burst: 40}\n", nil},
		{"GET without auth, no rate limit", "  - route: \"GET /ping\"\n    auth: none\n", []want{
			{"lint.no-rate-limit", Medium, "warden.yaml:5 (http[0])"},
		}},
		{"PUT with an API key", "  - route: \"PUT /orders/{id}\"\n    auth: apikey\n", nil},
		{"PATCH with JWT, DLP off", "  - route: \"PATCH /orders/{id}\"\n    auth: jwt:corp\n    dlp: \"off\"\n", []want{
			{"lint.dlp-off", Medium, "warden.yaml:7 (http[0].dlp)"},
		}},
		{"DLP block", "  - route: \"POST /x\"\n    dlp: block\n", nil},
	}
	lintRules := func(r *Report) []Finding {
		var out []Finding
		for _, f := range r.Findings {
			if f.Kind == KindLint {
				out = append(out, f)
			}
		}
		return out
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			raw, m := manifestYAML(t, "wagi", "http:\n"+tt.http)
			r := mustScan(t, Input{Wasm: (testModule{funcs: wagiFuncs(), exportMemory: true}).bytes(), Manifest: m, ManifestRaw: raw})
			got := lintRules(r)
			if len(got) != len(tt.want) {
				t.Fatalf("lint findings = %+v, want %+v", got, tt.want)
			}
			for _, w := range tt.want {
				if !slices.ContainsFunc(got, func(f Finding) bool { return f.Rule == w.rule && f.Severity == w.sev && f.Location == w.loc }) {
					t.Errorf("no %s (%s) at %q in %+v", w.rule, w.sev, w.loc, got)
				}
			}
		})
	}
}

// TestLintEgress covers wildcards the manifest parser refuses as well as
// the one it accepts: scan must not rely on the parser.
func TestLintEgress(t *testing.T) {
	tests := []struct {
		origin string
		rule   string
		sev    Severity
	}{
		{"https://*", "lint.egress-wildcard", High},
		{"*", "lint.egress-wildcard", High},
		{"https://*.com", "lint.egress-wildcard", High},
		{"http://*.io:8080", "lint.egress-wildcard", High},
		{"https://*.example.com", "lint.egress-subdomain-wildcard", Medium},
		{"https://*.api.example.com:443", "lint.egress-subdomain-wildcard", Medium},
		{"https://api.example.com", "", ""},
		{"http://[::1]:8080", "", ""},
		{"https://10.0.0.1", "", ""},
	}
	for _, tt := range tests {
		m := &manifest.Manifest{Name: "fn", ABI: manifest.ABIWagi, Permissions: manifest.Permissions{Egress: []string{tt.origin}}}
		tm := testModule{funcs: wagiFuncs(), exportMemory: true, imports: []testFunc{host("http_request")}}
		r := mustScan(t, Input{Wasm: tm.bytes(), Manifest: m})
		var got []Finding
		for _, f := range r.Findings {
			if strings.HasPrefix(f.Rule, "lint.egress") {
				got = append(got, f)
			}
		}
		switch {
		case tt.rule == "" && len(got) != 0:
			t.Errorf("egress %q: findings %+v, want none", tt.origin, got)
		case tt.rule != "" && (len(got) != 1 || got[0].Rule != tt.rule || got[0].Severity != tt.sev):
			t.Errorf("egress %q: findings %+v, want one %s (%s)", tt.origin, got, tt.rule, tt.sev)
		case tt.rule != "" && (got[0].Location != "warden.yaml (permissions.egress[0])" || !strings.Contains(got[0].Message, tt.origin)):
			t.Errorf("egress %q: finding %+v, want the origin named and located without a line (no raw manifest)", tt.origin, got[0])
		}
	}
	// From YAML, the accepted wildcard gets its line.
	raw, m := manifestYAML(t, "wagi", "permissions:\n  egress:\n    - https://api.example.com\n    - https://*.example.com\n")
	tm := testModule{funcs: wagiFuncs(), exportMemory: true, imports: []testFunc{host("http_request")}}
	r := mustScan(t, Input{Wasm: tm.bytes(), Manifest: m, ManifestRaw: raw, ManifestName: "fn/warden.yaml"})
	fs := findRule(r, "lint.egress-subdomain-wildcard")
	if len(fs) != 1 || fs[0].Location != "fn/warden.yaml:7 (permissions.egress[1])" {
		t.Errorf("subdomain wildcard findings = %+v, want one at fn/warden.yaml:7 (permissions.egress[1])", fs)
	}
}

func TestLocator(t *testing.T) {
	raw := []byte("name: fn\nhttp:\n  - route: /a\n    auth: none\n  - {route: /b, dlp: \"off\"}\npermissions:\n  kv:\n    b-1: read\n")
	l := newLocator(raw)
	tests := []struct {
		path string
		want int
	}{
		{"name", 1}, {"http", 2}, {"http[0]", 3}, {"http[0].auth", 4}, {"http[1].dlp", 5},
		{"permissions.kv.b-1", 8}, {"http[2]", 0}, {"nope", 0}, {"http[0].auth.x", 0},
	}
	for _, tt := range tests {
		if got := l.line(tt.path); got != tt.want {
			t.Errorf("line(%q) = %d, want %d", tt.path, got, tt.want)
		}
	}
	for _, bad := range []string{"", "[", "a: [", "\t- x", strings.Repeat("[", 1000)} {
		if got := newLocator([]byte(bad)).line("a"); got != 0 {
			t.Errorf("line(a) in %q = %d, want 0", bad, got)
		}
	}
}
