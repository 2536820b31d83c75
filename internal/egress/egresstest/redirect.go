// Package egresstest is the redirect suite every client built on
// egress.Policy.Client runs (the egress package's own client, and the
// capability host that performs a guest's http_request), so that both keep
// the contract documented on Policy.Client: a caller's headers never follow
// a redirect to another origin, except a few safe ones, and no Referer is
// added on a redirect.
//
// egresstest starts its servers on loopback only, never prints a header's
// value (only its name), and is imported by tests only.
package egresstest

import (
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// Redirector is two loopback servers, A and B (two origins: same address,
// different ports), that follow a chain written in the request path:
// /hop/B/A/B redirects to B's /hop/A/B, and so on; /hop/ answers 200 with
// "landed at X". The query carries the redirect status (code=307); the
// default is 302. Every request either server receives is recorded.
type Redirector struct {
	A, B *httptest.Server

	mu   sync.Mutex
	hits []Hit
}

// Hit is one request a server of the Redirector received.
type Hit struct {
	Server string // "A" or "B"
	Path   string
	Header http.Header
}

// NewRedirector starts A and B; they stop when t ends. Grant both origins
// (Origins) to the client under test.
func NewRedirector(t testing.TB) *Redirector {
	t.Helper()
	r := &Redirector{}
	r.A = httptest.NewServer(r.handler("A"))
	t.Cleanup(r.A.Close)
	r.B = httptest.NewServer(r.handler("B"))
	t.Cleanup(r.B.Close)
	return r
}

// Origins returns the origins of A and B, as a manifest grants them.
func (r *Redirector) Origins() []string { return []string{r.A.URL, r.B.URL} }

func (r *Redirector) handler(name string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		io.Copy(io.Discard, req.Body)
		r.mu.Lock()
		r.hits = append(r.hits, Hit{Server: name, Path: req.URL.Path, Header: req.Header.Clone()})
		r.mu.Unlock()
		rest, ok := strings.CutPrefix(req.URL.Path, "/hop/")
		if !ok {
			http.NotFound(w, req)
			return
		}
		if rest == "" {
			io.WriteString(w, "landed at "+name)
			return
		}
		next, rest, _ := strings.Cut(rest, "/")
		var base string
		switch next {
		case "A":
			base = r.A.URL
		case "B":
			base = r.B.URL
		default:
			http.NotFound(w, req)
			return
		}
		code := http.StatusFound
		if c, err := strconv.Atoi(req.URL.Query().Get("code")); err == nil {
			code = c
		}
		loc := base + "/hop/" + rest
		if req.URL.RawQuery != "" {
			loc += "?" + req.URL.RawQuery
		}
		http.Redirect(w, req, loc, code)
	})
}

func (r *Redirector) takeHits() []Hit {
	r.mu.Lock()
	defer r.mu.Unlock()
	h := r.hits
	r.hits = nil
	return h
}

// Do sends one request the way the client under test sends a caller's
// request, and returns the final status and body. RunRedirects never
// prints err's text beyond what Do returns, so Do must not put header
// values in it.
type Do func(t *testing.T, method, url string, header http.Header, body []byte) (status int, respBody []byte, err error)

// Guest headers the suite sends on the first request. Values are fake
// credentials; failure messages name headers, never values.
var (
	// secretHeaders must never reach another origin, nor come back to A
	// once the chain has left it.
	secretHeaders = http.Header{
		"X-Api-Key":      {"guest-api-key-for-A"},
		"Authorization":  {"Bearer guest-token-for-A"},
		"Cookie":         {"session=guest-session-for-A"},
		"X-Custom-Token": {"guest-custom-token-for-A"},
	}
	// safeHeaders follow every hop.
	safeHeaders = http.Header{
		"Accept":          {"application/json"},
		"Accept-Language": {"de-CH"},
		"User-Agent":      {"guest-agent/1"},
	}
)

// RunRedirects runs the suite: a caller sets credentials and safe headers on
// a request to A, which redirects along a chain; whatever the depth and
// however the chain goes back and forth, B never sees a credential or a
// Referer, A sees the credentials only until the chain first leaves it,
// and the safe headers reach every hop.
func RunRedirects(t *testing.T, r *Redirector, do Do) {
	tests := []struct {
		name   string
		hops   []string // servers after A, in order
		method string
		code   int
		ref    bool // the caller sets its own Referer on the first request
	}{
		{"same origin A-A", []string{"A"}, "GET", 302, false},
		{"1 hop A-B", []string{"B"}, "GET", 302, false},
		{"2 hops A-B-B", []string{"B", "B"}, "GET", 302, false},
		{"3 hops A-B-B-B", []string{"B", "B", "B"}, "GET", 302, false},
		{"A-A-B", []string{"A", "B"}, "GET", 302, false},
		{"back A-B-A", []string{"B", "A"}, "GET", 302, false},
		{"back and forth A-B-A-B", []string{"B", "A", "B"}, "GET", 302, false},
		{"back and forth A-B-B-A-B", []string{"B", "B", "A", "B"}, "GET", 302, false},
		{"back and forth A-B-A-A-B", []string{"B", "A", "A", "B"}, "GET", 302, false},
		{"307 POST A-B-B", []string{"B", "B"}, "POST", 307, false},
		{"308 POST A-B-A-B", []string{"B", "A", "B"}, "POST", 308, false},
		{"own Referer A-A-B", []string{"A", "B"}, "GET", 302, true},
		{"own Referer A-B-A-B", []string{"B", "A", "B"}, "GET", 302, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r.takeHits()
			hdr := secretHeaders.Clone()
			for k, v := range safeHeaders {
				hdr[k] = slices.Clone(v)
			}
			if tt.ref {
				hdr.Set("Referer", r.A.URL+"/page?session=guest-referer-for-A")
			}
			var body []byte
			if tt.method == "POST" {
				hdr.Set("Content-Type", "application/json")
				body = []byte(`{"n":1}`)
			}
			url := r.A.URL + "/hop/" + strings.Join(tt.hops, "/") + "?code=" + strconv.Itoa(tt.code)
			status, got, err := do(t, tt.method, url, hdr, body)
			last := tt.hops[len(tt.hops)-1]
			if err != nil || status != http.StatusOK || string(got) != "landed at "+last {
				t.Fatalf("%s %s = %d, %q, %v, want 200 %q", tt.method, tt.name, status, got, err, "landed at "+last)
			}
			hits := r.takeHits()
			if len(hits) != len(tt.hops)+1 {
				t.Fatalf("servers saw %d requests, want %d", len(hits), len(tt.hops)+1)
			}
			servers := append([]string{"A"}, tt.hops...)
			left := false
			for i, h := range hits {
				where := fmt.Sprintf("request %d (%s %s)", i, h.Server, h.Path)
				if h.Server != servers[i] {
					t.Fatalf("%s: want server %s", where, servers[i])
				}
				left = left || h.Server != "A"
				for _, k := range slices.Sorted(maps.Keys(secretHeaders)) {
					switch {
					case left && h.Server != "A" && len(h.Header.Values(k)) > 0:
						t.Errorf("%s carried the caller's %s to another origin", where, k)
					case left && len(h.Header.Values(k)) > 0:
						t.Errorf("%s carried the caller's %s back to A after the chain had left A", where, k)
					case !left && !slices.Equal(h.Header.Values(k), hdr.Values(k)):
						t.Errorf("%s lacks the caller's %s on the first origin", where, k)
					}
				}
				safe := []string{"Accept", "Accept-Language", "User-Agent"}
				if tt.code == 307 || tt.code == 308 {
					safe = append(safe, "Content-Type") // the body follows
				}
				for _, k := range safe {
					if !slices.Equal(h.Header.Values(k), hdr.Values(k)) {
						t.Errorf("%s: the caller's %s did not follow; want the safe headers on every hop", where, k)
					}
				}
				switch ref := h.Header.Values("Referer"); {
				case !left && tt.ref:
					if !slices.Equal(ref, hdr.Values("Referer")) {
						t.Errorf("%s lacks the caller's Referer on the first origin", where)
					}
				case len(ref) > 0:
					names := ""
					if strings.Contains(strings.Join(ref, " "), strings.TrimPrefix(r.A.URL, "http://")) {
						names = ", naming A's URL"
					}
					t.Errorf("%s carried a Referer%s; want none added on a redirect, and the caller's only while the chain stays on A", where, names)
				}
			}
		})
	}
}
