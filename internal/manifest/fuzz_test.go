package manifest

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/goccy/go-yaml"
)

// FuzzParse feeds Parse arbitrary bytes, seeded with every manifest in
// testdata. It checks that Parse never panics; that a manifest it accepts
// satisfies every documented invariant and survives a round trip through
// YAML unchanged; and that a manifest it refuses gets positioned errors.
func FuzzParse(f *testing.F) {
	seeds, err := filepath.Glob("testdata/*/*.yaml")
	if err != nil {
		f.Fatal(err)
	}
	for _, s := range seeds {
		data, err := os.ReadFile(s)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		checkParse(t, data)
	})
}

// FuzzFields reaches the accepted path far more often than FuzzParse: it
// puts arbitrary strings into the values of a valid manifest, so that the
// value checkers, not the YAML syntax, decide. A value Parse accepts must
// come back exactly as written.
func FuzzFields(f *testing.F) {
	f.Add("GET /orders/{id}", "https://api.example.com", "EUR", "64MiB", "5s", "20/s", "jwt:idp")
	f.Add("/", "http://[::1]:80", "", "1048576", "15m", "1/h", "none")
	f.Add("get /a", "*", "x\ny", "64MB", "5", "0/s", "jwt")
	f.Fuzz(func(t *testing.T, route, origin, value, memory, timeout, rate, auth string) {
		q := func(s string) string { b, _ := json.Marshal(s); return string(b) } // a JSON string is a YAML string
		in := fmt.Sprintf("name: f\nartifact: f.wasm\nabi: reactor\nlimits: {memory: %s, timeout: %s}\n"+
			"http:\n  - route: %s\n    auth: %s\n    rateLimit: {rate: %s}\n"+
			"permissions: {egress: [%s]}\nenv: {V: %s}\n",
			q(memory), q(timeout), q(route), q(auth), q(rate), q(origin), q(value))
		m := checkParse(t, []byte(in))
		if m == nil || !utf8.ValidString(route+origin+value) {
			return
		}
		if m.HTTP[0].Pattern != route || m.Permissions.Egress[0] != origin || m.Env["V"] != value {
			t.Fatalf("values changed: route %q, origin %q, env %q; got %+v", route, origin, value, m)
		}
	})
}

// checkParse runs Parse on data and checks the result: positioned errors on
// failure; on success, the invariants and an unchanged round trip. It
// returns the manifest, or nil.
func checkParse(t *testing.T, data []byte) *Manifest {
	t.Helper()
	m, err := Parse("fuzz.yaml", data)
	if err != nil {
		if m != nil {
			t.Fatalf("Parse returned both %+v and %v", m, err)
		}
		checkErrors(t, data, err)
		return nil
	}
	if err := invariants(m); err != nil {
		t.Fatalf("Parse accepted a manifest that breaks an invariant: %v\n%+v", err, m)
	}
	again := render(t, m)
	m2, err := Parse("fuzz.yaml", again)
	if err != nil {
		t.Fatalf("re-parsing the rendered manifest: %v\n%s", err, again)
	}
	if !reflect.DeepEqual(m, m2) {
		t.Fatalf("round trip changed the manifest:\nfirst:  %+v\nsecond: %+v\nrendered:\n%s", m, m2, again)
	}
	return m
}

// checkErrors asserts that err is an *Error or an ErrorList of them, sorted
// by position, and that every problem has a line except when the input
// was too large to look at.
func checkErrors(t *testing.T, data []byte, err error) {
	t.Helper()
	var list ErrorList
	switch e := err.(type) {
	case *Error:
		list = ErrorList{e}
	case ErrorList:
		if len(e) < 2 {
			t.Fatalf("ErrorList with %d errors; a single problem is returned as *Error", len(e))
		}
		list = e
	default:
		t.Fatalf("Parse error is %T (%v), want *Error or ErrorList", err, err)
	}
	if len(list) > maxErrors+1 {
		t.Fatalf("Parse returned %d errors, want at most %d", len(list), maxErrors+1)
	}
	for i, e := range list {
		if e.File != "fuzz.yaml" || e.Msg == "" {
			t.Fatalf("error %d = %#v, want File fuzz.yaml and a message", i, e)
		}
		if len(data) <= MaxSize && e.Line < 1 {
			t.Fatalf("error %d has no line: %v", i, e)
		}
		if e.Line > 0 && e.Column < 1 {
			t.Fatalf("error %d has a line but no column: %v", i, e)
		}
		if i > 0 && list[i-1].Line > e.Line {
			t.Fatalf("errors not sorted by line: %v", list)
		}
	}
}

// invariants re-checks a parsed manifest against the documented rules,
// independently of how Parse reached it.
func invariants(m *Manifest) error {
	var problems []string
	check := func(ok bool, what string) {
		if !ok {
			problems = append(problems, what)
		}
	}
	check(checkName(m.Name, false) == nil, "name")
	check(checkName(m.Namespace, false) == nil, "namespace")
	check(m.Artifact != "" && !strings.HasPrefix(m.Artifact, "/"), "artifact")
	check(m.ABI == ABIReactor || m.ABI == ABIWagi, "abi")
	l := m.Limits
	check(l.Memory >= MinMemory && l.Memory <= MaxMemory && l.Memory%MemoryPage == 0, "limits.memory")
	check(l.Timeout >= MinTimeout && l.Timeout <= MaxTimeout, "limits.timeout")
	check(l.Concurrency >= MinConcurrency && l.Concurrency <= MaxConcurrency, "limits.concurrency")
	check(l.RequestBody > 0 && l.RequestBody <= MaxBody, "limits.requestBody")
	check(l.ResponseBody > 0 && l.ResponseBody <= MaxBody, "limits.responseBody")
	check(m.HTTP == nil || len(m.HTTP) > 0, "http is empty but not nil")
	patterns := map[string]bool{}
	for _, r := range m.HTTP {
		check(!patterns[r.Pattern], "duplicate route "+r.Pattern)
		patterns[r.Pattern] = true
		if r.Method == "" {
			check(r.Pattern == r.Path, "route without method")
		} else {
			check(r.Pattern == r.Method+" "+r.Path, "route split")
		}
		check(strings.HasPrefix(r.Path, "/"), "route path")
		switch r.Auth {
		case AuthAPIKey, AuthNone, AuthMTLS:
			check(r.Issuer == "", "issuer without jwt")
		case AuthJWT:
			check(checkName(r.Issuer, false) == nil, "jwt issuer")
		default:
			check(false, "auth "+r.Auth)
		}
		check(r.Auth != AuthNone || len(r.Scopes) == 0, "scopes with auth none")
		check(r.Scopes == nil || len(r.Scopes) > 0, "scopes empty but not nil")
		for _, s := range r.Scopes {
			check(checkScope(s) == nil, "scope "+s)
		}
		if rl := r.RateLimit; rl != nil {
			check(rl.Rate >= 1 && rl.Rate <= MaxRateCount, "rate")
			check(rl.Per == ratePer["s"] || rl.Per == ratePer["m"] || rl.Per == ratePer["h"], "rate period")
			check(rl.Burst >= 1 && rl.Burst <= MaxRateCount, "burst")
			check(rl.By == "client" || rl.By == "ip" || rl.By == "key", "by")
		}
		check(r.Schema == "" || checkRelPath(r.Schema) == nil, "schema")
		check(r.DLP == "redact" || r.DLP == "block" || r.DLP == "off", "dlp")
	}
	check(m.WAF.Mode == "block" || m.WAF.Mode == "detect" || m.WAF.Mode == "off", "waf.mode")
	check(m.WAF.Paranoia >= 1 && m.WAF.Paranoia <= MaxParanoia, "waf.paranoia")
	p := m.Permissions
	check(p.Secrets == nil || len(p.Secrets) > 0, "secrets empty but not nil")
	for _, s := range p.Secrets {
		check(checkSecretName(s) == nil, "secret "+s)
	}
	check(p.KV == nil || len(p.KV) > 0, "kv empty but not nil")
	for b, mode := range p.KV {
		check(checkName(b, true) == nil && (mode == "read" || mode == "write"), "kv "+b)
	}
	origins := map[string]bool{}
	for _, o := range p.Egress {
		c, err := parseOrigin(o)
		check(err == nil && !origins[c], "egress "+o)
		origins[c] = true
	}
	check(m.Env == nil || len(m.Env) > 0, "env empty but not nil")
	for k, v := range m.Env {
		check(checkEnvKey(k) == nil && !strings.ContainsRune(v, 0), "env "+k)
	}
	if len(problems) > 0 {
		return errors.New(strings.Join(problems, ", "))
	}
	return nil
}

// render writes m back as a manifest, every field spelled out in its
// canonical form, for the round trip.
func render(t *testing.T, m *Manifest) []byte {
	t.Helper()
	var routes []any
	for _, r := range m.HTTP {
		route := yaml.MapSlice{{Key: "route", Value: r.Pattern}}
		auth := r.Auth
		if r.Auth == AuthJWT {
			auth += ":" + r.Issuer
		}
		route = append(route, yaml.MapItem{Key: "auth", Value: auth})
		if r.Scopes != nil {
			route = append(route, yaml.MapItem{Key: "scopes", Value: r.Scopes})
		}
		if rl := r.RateLimit; rl != nil {
			route = append(route, yaml.MapItem{Key: "rateLimit", Value: yaml.MapSlice{
				{Key: "rate", Value: formatRate(rl.Rate, rl.Per)},
				{Key: "burst", Value: rl.Burst},
				{Key: "by", Value: rl.By},
			}})
		}
		if r.Schema != "" {
			route = append(route, yaml.MapItem{Key: "schema", Value: r.Schema})
		}
		route = append(route, yaml.MapItem{Key: "dlp", Value: r.DLP})
		routes = append(routes, route)
	}
	perms := yaml.MapSlice{}
	if m.Permissions.Secrets != nil {
		perms = append(perms, yaml.MapItem{Key: "secrets", Value: m.Permissions.Secrets})
	}
	if m.Permissions.KV != nil {
		perms = append(perms, yaml.MapItem{Key: "kv", Value: m.Permissions.KV})
	}
	if m.Permissions.Egress != nil {
		perms = append(perms, yaml.MapItem{Key: "egress", Value: m.Permissions.Egress})
	}
	doc := yaml.MapSlice{
		{Key: "name", Value: m.Name},
		{Key: "namespace", Value: m.Namespace},
		{Key: "artifact", Value: m.Artifact},
		{Key: "abi", Value: string(m.ABI)},
		{Key: "limits", Value: yaml.MapSlice{
			{Key: "memory", Value: m.Limits.Memory},
			{Key: "timeout", Value: m.Limits.Timeout.String()},
			{Key: "concurrency", Value: m.Limits.Concurrency},
			{Key: "requestBody", Value: m.Limits.RequestBody},
			{Key: "responseBody", Value: m.Limits.ResponseBody},
		}},
		{Key: "http", Value: routes},
		{Key: "waf", Value: yaml.MapSlice{{Key: "mode", Value: m.WAF.Mode}, {Key: "paranoia", Value: m.WAF.Paranoia}}},
		{Key: "permissions", Value: perms},
		{Key: "env", Value: m.Env},
	}
	out, err := yaml.Marshal(doc)
	if err != nil {
		t.Fatalf("render: %v", err)
	}
	return out
}

func BenchmarkParse(b *testing.B) {
	data, err := os.ReadFile("testdata/valid/full.yaml")
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		if _, err := Parse("warden.yaml", data); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkParseLargest measures the most expensive manifest Parse accepts
// to look at: just under the token limit.
func BenchmarkParseLargest(b *testing.B) {
	data := []byte(minimal + "env:\n" + strings.Repeat("  K: v\n", maxTokens/3-10))
	b.ReportAllocs()
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		_, err := Parse("warden.yaml", data)
		if err == nil || !strings.Contains(err.Error(), "duplicate key") {
			b.Fatalf("Parse() = %.200v, want duplicate key errors", err)
		}
	}
}
