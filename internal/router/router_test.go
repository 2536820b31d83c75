package router

import (
	"net/http/httptest"
	"strings"
	"testing"

	"warden/internal/manifest"
)

func entry(owner, pattern string) Entry[string] {
	return Entry[string]{Owner: owner, Route: manifest.Route{Pattern: pattern}, Target: owner + " " + pattern}
}

func TestMatch(t *testing.T) {
	tab, err := Build([]Entry[string]{entry("a", "GET /ping"), entry("b", "POST /orders/{id}"), entry("c", "/any")})
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		method, path string
		want         string
		status       int
	}{
		{"GET", "/ping", "a GET /ping", 0},
		{"HEAD", "/ping", "a GET /ping", 0},
		{"POST", "/orders/7", "b POST /orders/{id}", 0},
		{"DELETE", "/any", "c /any", 0},
		{"POST", "/ping", "", 405},
		{"GET", "/nothing", "", 404},
		{"GET", "/a/../ping", "", 307},
	}
	for _, c := range cases {
		t.Run(c.method+" "+c.path, func(t *testing.T) {
			r := httptest.NewRequest(c.method, "https://x"+c.path, nil)
			r.URL.Path = c.path
			e, ok, status, _ := tab.Match(r)
			if ok != (c.want != "") || e.Target != c.want || (!ok && status != c.status) {
				t.Fatalf("Match(%s %s) = %q, %v, %d; want %q, status %d", c.method, c.path, e.Target, ok, status, c.want, c.status)
			}
		})
	}
}

func TestConflicts(t *testing.T) {
	cases := []struct {
		a, b string
		want string
	}{
		{"GET /x", "GET /x", "already served by"},
		{"GET /items/{id}", "GET /items/{name}", "conflicts"},
		{"/x", "GET /x", ""},
		{"GET /a/", "GET /a/b", ""},
	}
	for _, c := range cases {
		t.Run(c.a+" vs "+c.b, func(t *testing.T) {
			_, err := Build([]Entry[string]{entry("first", c.a), entry("second", c.b)})
			if c.want == "" && err != nil || c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)) {
				t.Fatalf("Build = %v, want %q", err, c.want)
			}
			if err != nil && !strings.Contains(err.Error(), "second") {
				t.Fatalf("conflict %q does not name the newcomer", err)
			}
		})
	}
}

func BenchmarkMatch(b *testing.B) {
	var es []Entry[string]
	for i := range 500 {
		es = append(es, entry("f", "GET /fn-"+strings.Repeat("x", i%7)+string(rune('a'+i%26))+"/"+itoa(i)))
	}
	es = append(es, entry("ping", "GET /ping"))
	tab, err := Build(es)
	if err != nil {
		b.Fatal(err)
	}
	r := httptest.NewRequest("GET", "https://x/ping", nil)
	b.ReportAllocs()
	for b.Loop() {
		if _, ok, _, _ := tab.Match(r); !ok {
			b.Fatal("no match")
		}
	}
}

func itoa(i int) string {
	if i == 0 {
		return "0"
	}
	var b []byte
	for ; i > 0; i /= 10 {
		b = append([]byte{byte('0' + i%10)}, b...)
	}
	return string(b)
}
