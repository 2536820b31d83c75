package secheaders_test

import (
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"

	"warden/internal/problem"
	"warden/internal/reqid"
	"warden/internal/secheaders"
)

// security are the headers every answer of both listeners carries, whatever
// the handler did: success, error, 404, a handler that writes nothing.
var security = map[string]string{
	"Strict-Transport-Security": "max-age=63072000; includeSubDomains",
	"X-Content-Type-Options":    "nosniff",
	"Referrer-Policy":           "no-referrer",
	"X-Frame-Options":           "DENY",
	"Content-Security-Policy":   "default-src 'none'; frame-ancestors 'none'",
}

func isID(s string) bool {
	if len(s) != 32 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

// checkSecurity asserts the security headers and a fresh request id.
func checkSecurity(t testing.TB, h http.Header) {
	t.Helper()
	for k, want := range security {
		if got := h.Values(k); len(got) != 1 || got[0] != want {
			t.Errorf("%s = %q, want [%q]", k, got, want)
		}
	}
	if got := h.Values(reqid.Header); len(got) != 1 || !isID(got[0]) {
		t.Errorf("%s = %q, want one id of 32 hex digits", reqid.Header, got)
	}
}

// TestWrapHeaders runs Wrap around handlers that answer in every way a
// handler can, and wants the security headers on each; error answers
// written as problems are also not cacheable and carry the request id in
// their body.
func TestWrapHeaders(t *testing.T) {
	tests := []struct {
		name    string
		h       http.HandlerFunc
		status  int
		problem bool
	}{
		{"ok", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "hello") }, 200, false},
		{"no write", func(w http.ResponseWriter, r *http.Request) {}, 200, false},
		{"no content", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusNoContent) }, 204, false},
		{"redirect", func(w http.ResponseWriter, r *http.Request) { http.Redirect(w, r, "/b", http.StatusPermanentRedirect) }, 308, false},
		{"net/http 404", http.NotFound, 404, false},
		{"net/http error", func(w http.ResponseWriter, r *http.Request) { http.Error(w, "boom", 500) }, 500, false},
		{"bare 500", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(500) }, 500, false},
		{"html body", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/html")
			io.WriteString(w, "<script>alert(1)</script>")
		}, 200, false},
		{"problem 400", func(w http.ResponseWriter, r *http.Request) { problem.Write(w, r, 400, "bad") }, 400, true},
		{"problem 401", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("WWW-Authenticate", `Bearer realm="warden"`)
			problem.Write(w, r, 401, "authentication required")
		}, 401, true},
		{"problem 404", func(w http.ResponseWriter, r *http.Request) {
			problem.Write(w, r, 404, "no function serves this route")
		}, 404, true},
		{"problem 413", func(w http.ResponseWriter, r *http.Request) { problem.Write(w, r, 413, "too large") }, 413, true},
		{"problem 429", func(w http.ResponseWriter, r *http.Request) { problem.Write(w, r, 429, "slow down") }, 429, true},
		{"problem 502", func(w http.ResponseWriter, r *http.Request) { problem.Write(w, r, 502, "the function failed") }, 502, true},
		{"problem 503", func(w http.ResponseWriter, r *http.Request) { problem.Write(w, r, 503, "unavailable") }, 503, true},
		{"problem with errors", func(w http.ResponseWriter, r *http.Request) {
			problem.WriteDetails(w, r, problem.Details{Status: 400, Errors: []string{"a", "b"}})
		}, 400, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := httptest.NewRecorder()
			secheaders.Wrap(tt.h).ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/a", nil))
			res := rec.Result()
			if res.StatusCode != tt.status {
				t.Fatalf("status = %d, want %d", res.StatusCode, tt.status)
			}
			checkSecurity(t, res.Header)
			if !tt.problem {
				return
			}
			if got := res.Header.Get("Cache-Control"); got != "no-store" {
				t.Errorf("Cache-Control = %q, want %q on an error", got, "no-store")
			}
			if got := res.Header.Get("Content-Type"); got != problem.ContentType {
				t.Errorf("Content-Type = %q, want %q", got, problem.ContentType)
			}
			var p problem.Details
			if err := json.Unmarshal(rec.Body.Bytes(), &p); err != nil {
				t.Fatalf("json.Unmarshal(%q) = %v", rec.Body.Bytes(), err)
			}
			if id := res.Header.Get(reqid.Header); p.RequestID != id {
				t.Errorf("body requestId = %q, want the %s header %q", p.RequestID, reqid.Header, id)
			}
		})
	}
}

// TestWrapHeaderStrength pins the strength of the policies, not only their
// presence: HSTS of at least a year over subdomains, a CSP that denies every
// source and every framing.
func TestWrapHeaderStrength(t *testing.T) {
	rec := httptest.NewRecorder()
	secheaders.Wrap(http.NotFoundHandler()).ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/", nil))
	h := rec.Result().Header
	hsts := h.Get("Strict-Transport-Security")
	maxAge := -1
	for _, part := range strings.Split(hsts, ";") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(part), "max-age="); ok {
			maxAge, _ = strconv.Atoi(v)
		}
	}
	if maxAge < 365*24*3600 || !strings.Contains(hsts, "includeSubDomains") {
		t.Errorf("Strict-Transport-Security = %q, want max-age of a year or more and includeSubDomains", hsts)
	}
	csp := h.Get("Content-Security-Policy")
	for _, want := range []string{"default-src 'none'", "frame-ancestors 'none'"} {
		if !strings.Contains(csp, want) {
			t.Errorf("Content-Security-Policy = %q, want it to contain %q", csp, want)
		}
	}
}

// TestWrapRequestID sends request ids of every kind a client could forge,
// and wants each ignored: the id in the context and the response header is
// warden's own, fresh, and the same in both; the handler does not see the
// client's header, so nothing downstream (a guest, a log) can take it for
// warden's id.
func TestWrapRequestID(t *testing.T) {
	forged := []struct {
		name   string
		values []string
	}{
		{"none", nil},
		{"well-formed", []string{"0123456789abcdef0123456789abcdef"}},
		{"empty", []string{""}},
		{"another request's", []string{"ffffffffffffffffffffffffffffffff"}},
		{"log injection", []string{"x\nlevel=INFO msg=\"admin login\" user=root"}},
		{"header injection", []string{"x\r\nSet-Cookie: session=evil"}},
		{"control characters", []string{"\x00\x1b[31m\x7f"}},
		{"non-ascii", []string{"función-☃-\u202e"}},
		{"too long", []string{strings.Repeat("a", 64<<10)}},
		{"several", []string{"one", "two"}},
	}
	for _, tt := range forged {
		t.Run(tt.name, func(t *testing.T) {
			var ctxID string
			var seen []string
			h := secheaders.Wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				ctxID = reqid.From(r.Context())
				seen = r.Header.Values(reqid.Header)
			}))
			req := httptest.NewRequest(http.MethodGet, "/", nil)
			req.Header[reqid.Header] = tt.values
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			got := rec.Result().Header.Values(reqid.Header)
			if len(got) != 1 || !isID(got[0]) {
				t.Fatalf("%s = %q, want one fresh id of 32 hex digits", reqid.Header, got)
			}
			for _, v := range tt.values {
				if got[0] == v {
					t.Errorf("%s = %q, want an id not chosen by the client", reqid.Header, got[0])
				}
			}
			if ctxID != got[0] {
				t.Errorf("reqid.From(ctx) = %q, want the response's %q", ctxID, got[0])
			}
			if len(seen) != 0 {
				t.Errorf("handler saw request header %s = %.80q, want the client's id removed", reqid.Header, seen)
			}
		})
	}
}

func TestWrapFreshID(t *testing.T) {
	h := secheaders.Wrap(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	seen := map[string]bool{}
	for range 1000 {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/", nil))
		id := rec.Result().Header.Get(reqid.Header)
		if seen[id] {
			t.Fatalf("%s = %q twice, want a fresh id per request", reqid.Header, id)
		}
		seen[id] = true
	}
}

// TestWrapHandlerChanges checks that a handler may change the headers of its
// own answer (a function serving HTML sets its own CSP) and that no change
// reaches another answer: Wrap shares the value slices between responses.
// Run under -race, the concurrent part also checks that sharing them is not
// a data race.
func TestWrapHandlerChanges(t *testing.T) {
	mutate := secheaders.Wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Add("Content-Security-Policy", "script-src 'self'")
		h["Strict-Transport-Security"] = append(h["Strict-Transport-Security"], "max-age=0")
		h.Set("X-Frame-Options", "SAMEORIGIN")
		h.Del("Referrer-Policy")
		h.Set(reqid.Header, "handler's")
	}))
	plain := secheaders.Wrap(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))

	rec := httptest.NewRecorder()
	mutate.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/", nil))
	h := rec.Result().Header
	if got := h.Values("Content-Security-Policy"); len(got) != 2 || got[1] != "script-src 'self'" {
		t.Errorf("Content-Security-Policy = %q, want the handler's value added", got)
	}
	if got := h.Get("X-Frame-Options"); got != "SAMEORIGIN" {
		t.Errorf("X-Frame-Options = %q, want the handler's %q", got, "SAMEORIGIN")
	}

	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 200 {
				mutate.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, "/", nil))
			}
		})
		wg.Go(func() {
			for range 200 {
				rec := httptest.NewRecorder()
				plain.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/", nil))
				checkSecurity(t, rec.Result().Header)
			}
		})
	}
	wg.Wait()
	rec = httptest.NewRecorder()
	plain.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/", nil))
	checkSecurity(t, rec.Result().Header)
}

func TestClientIP(t *testing.T) {
	tests := []struct {
		name, remote, want string
	}{
		{"ipv4", "192.0.2.1:1234", "192.0.2.1"},
		{"ipv4 high port", "203.0.113.250:65535", "203.0.113.250"},
		{"ipv6", "[2001:db8::1]:443", "2001:db8::1"},
		{"ipv6 loopback", "[::1]:8080", "::1"},
		{"ipv6 full", "[2001:0db8:0000:0000:0000:ff00:0042:8329]:1", "2001:0db8:0000:0000:0000:ff00:0042:8329"},
		{"ipv6 zone", "[fe80::1%eth0]:443", "fe80::1%eth0"},
		{"ipv6 numeric zone", "[fe80::1%2]:443", "fe80::1%2"},
		{"ipv4-mapped ipv6", "[::ffff:192.0.2.1]:80", "::ffff:192.0.2.1"},
		{"empty port", "192.0.2.1:", "192.0.2.1"},
		{"hostname", "localhost:80", "localhost"},
		// Never produced by net/http over TCP. Without a port the address
		// is returned whole: a part of it would name another client.
		{"empty", "", ""},
		{"ipv4 without port", "192.0.2.1", "192.0.2.1"},
		{"ipv6 without port", "2001:db8::1", "2001:db8::1"},
		{"bracketed ipv6 without port", "[2001:db8::1]", "[2001:db8::1]"},
		{"ipv6 loopback without port", "::1", "::1"},
		{"unix socket", "@", "@"},
		{"unclosed bracket", "[::1:80", "[::1:80"},
		{"junk after bracket", "[::1]x:80", "[::1]x:80"},
		{"colon only", ":", ""},
		{"port only", ":80", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest(http.MethodGet, "/", nil)
			r.RemoteAddr = tt.remote
			if got := secheaders.ClientIP(r); got != tt.want {
				t.Errorf("ClientIP(%q) = %q, want %q", tt.remote, got, tt.want)
			}
		})
	}
}

// spoofing are the headers clients and proxies use to name an address.
// warden is the edge and has no trusted-proxy setting: none is believed.
var spoofing = []string{
	"X-Forwarded-For", "Forwarded", "X-Real-Ip", "X-Client-Ip", "True-Client-Ip",
	"Cf-Connecting-Ip", "Fastly-Client-Ip", "X-Cluster-Client-Ip", "X-Forwarded", "Forwarded-For",
	"X-Originating-Ip", "X-Remote-Ip", "X-Remote-Addr",
}

func TestClientIPIgnoresForwarding(t *testing.T) {
	values := []struct{ name, v string }{
		{"loopback", "127.0.0.1"},
		{"private", "10.0.0.1"},
		{"list", "127.0.0.1, 198.51.100.7"},
		{"rfc 7239", "for=127.0.0.1;proto=https"},
		{"rfc 7239 ipv6", `for="[::1]:80"`},
		{"garbage", "\x00not an address"},
	}
	for _, v := range values {
		t.Run(v.name, func(t *testing.T) {
			r := httptest.NewRequest(http.MethodGet, "/", nil)
			r.RemoteAddr = "203.0.113.9:5555"
			for _, k := range spoofing {
				r.Header.Set(k, v.v)
			}
			if got := secheaders.ClientIP(r); got != "203.0.113.9" {
				t.Errorf("ClientIP(%q with forwarding headers %q) = %q, want the peer %q", r.RemoteAddr, v.v, got, "203.0.113.9")
			}
		})
	}
}

// TestOverTCP serves Wrap on real loopback listeners (TLS, as warden does;
// IPv4 and, where the host has it, IPv6) and sends forged forwarding headers
// and a forged request id: the handler sees the TCP peer, and every answer,
// 404 included, carries the security headers.
func TestOverTCP(t *testing.T) {
	for _, tc := range []struct{ name, network, addr, want string }{
		{"ipv4", "tcp4", "127.0.0.1:0", "127.0.0.1"},
		{"ipv6", "tcp6", "[::1]:0", "::1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ln, err := net.Listen(tc.network, tc.addr)
			if err != nil {
				t.Skipf("no %s loopback on this host: %v", tc.name, err)
			}
			var (
				mu  sync.Mutex
				ips []string
			)
			mux := http.NewServeMux()
			mux.HandleFunc("/ok", func(w http.ResponseWriter, r *http.Request) {
				mu.Lock()
				ips = append(ips, secheaders.ClientIP(r))
				mu.Unlock()
				io.WriteString(w, "ok")
			})
			mux.HandleFunc("/fail", func(w http.ResponseWriter, r *http.Request) {
				problem.Write(w, r, http.StatusServiceUnavailable, "unavailable")
			})
			srv := httptest.NewUnstartedServer(secheaders.Wrap(mux))
			srv.Listener.Close()
			srv.Listener = ln
			srv.StartTLS()
			defer srv.Close()

			for _, path := range []string{"/ok", "/missing", "/fail"} {
				req, err := http.NewRequest(http.MethodGet, srv.URL+path, nil)
				if err != nil {
					t.Fatal(err)
				}
				for _, k := range spoofing {
					req.Header.Set(k, "10.9.8.7")
				}
				req.Header.Set(reqid.Header, "0123456789abcdef0123456789abcdef")
				res, err := srv.Client().Do(req)
				if err != nil {
					t.Fatal(err)
				}
				body, _ := io.ReadAll(res.Body)
				res.Body.Close()
				checkSecurity(t, res.Header)
				if got := res.Header.Get(reqid.Header); got == "0123456789abcdef0123456789abcdef" {
					t.Errorf("GET %s: %s = %q, want warden's id, not the client's", path, reqid.Header, got)
				}
				if path == "/fail" {
					var p problem.Details
					if err := json.Unmarshal(body, &p); err != nil || p.RequestID != res.Header.Get(reqid.Header) {
						t.Errorf("GET /fail: body %q (%v), want requestId = the %s header", body, err, reqid.Header)
					}
				}
			}
			mu.Lock()
			defer mu.Unlock()
			if len(ips) != 1 || ips[0] != tc.want {
				t.Errorf("ClientIP over %s = %q, want [%q] (the TCP peer)", tc.network, ips, tc.want)
			}
		})
	}
}

// FuzzClientIP feeds arbitrary peer addresses. ClientIP must not panic,
// must return the host exactly as net.SplitHostPort splits it when the
// address has one, and must otherwise return the address whole.
func FuzzClientIP(f *testing.F) {
	for _, s := range []string{
		"192.0.2.1:1234", "[2001:db8::1]:443", "[fe80::1%eth0]:443", "", ":", "[", "]", "[]:", "[::1]",
		"::1", "1.2.3.4", "[::1]]:80", "[[::1]:80", "a:b:c", "@", "[::1]:80:90", "\x00:\xff",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, remote string) {
		r := &http.Request{RemoteAddr: remote}
		got := secheaders.ClientIP(r)
		want := remote
		if host, _, err := net.SplitHostPort(remote); err == nil {
			want = host
		}
		if got != want {
			t.Errorf("ClientIP(%q) = %q, want %q", remote, got, want)
		}
	})
}

// FuzzWrapRequestID sends arbitrary client request ids: none is ever
// adopted, and the handler never sees one.
func FuzzWrapRequestID(f *testing.F) {
	for _, s := range []string{"", "0123456789abcdef0123456789abcdef", "x\nINFO forged", "\r\n", "☃"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, forged string) {
		var ctxID string
		var seen int
		h := secheaders.Wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			ctxID = reqid.From(r.Context())
			seen = len(r.Header.Values(reqid.Header))
		}))
		r := &http.Request{Method: http.MethodGet, Header: http.Header{reqid.Header: {forged}}}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, r)
		got := rec.Header().Get(reqid.Header)
		if !isID(got) || got == forged || ctxID != got || seen != 0 {
			t.Errorf("Wrap with client id %q: header %q, context %q, handler saw %d client ids; want a fresh id in both, none seen", forged, got, ctxID, seen)
		}
	})
}

func BenchmarkWrap(b *testing.B) {
	h := secheaders.Wrap(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	r := httptest.NewRequest(http.MethodGet, "/", nil)
	w := httptest.NewRecorder()
	b.ReportAllocs()
	for b.Loop() {
		clear(w.HeaderMap)
		h.ServeHTTP(w, r)
	}
}

func BenchmarkClientIP(b *testing.B) {
	for _, remote := range []string{"192.0.2.1:1234", "[2001:db8::1]:443"} {
		b.Run(remote, func(b *testing.B) {
			r := &http.Request{RemoteAddr: remote}
			b.ReportAllocs()
			for b.Loop() {
				_ = secheaders.ClientIP(r)
			}
		})
	}
}
