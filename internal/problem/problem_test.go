package problem_test

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"

	"warden/internal/problem"
	"warden/internal/reqid"
)

const testID = "0123456789abcdef0123456789abcdef"

// request is a request as the listeners hand it on: with a request id in
// its context (secheaders.Wrap puts it there).
func request(path string) *http.Request {
	r := &http.Request{Method: http.MethodGet, URL: &url.URL{Path: path}, Header: http.Header{}}
	return r.WithContext(reqid.With(r.Context(), testID))
}

// decoded is a problem document read back, with the raw body kept for
// checks on the encoding.
type decoded struct {
	problem.Details
	raw    []byte
	fields map[string]json.RawMessage
}

// check asserts what every problem answer must hold, whatever was asked:
// the status, the media type, no caching, a Content-Length that matches, a
// single line of valid JSON whose status is the response's, and a body with
// nothing a browser or a log could misread (no raw control characters, no
// raw HTML metacharacters).
func check(t testing.TB, rec *httptest.ResponseRecorder, wantStatus int) decoded {
	t.Helper()
	res := rec.Result()
	if res.StatusCode != wantStatus {
		t.Fatalf("status = %d, want %d", res.StatusCode, wantStatus)
	}
	if got := res.Header.Get("Content-Type"); got != problem.ContentType {
		t.Errorf("Content-Type = %q, want %q", got, problem.ContentType)
	}
	if got := res.Header.Get("Cache-Control"); got != "no-store" {
		t.Errorf("Cache-Control = %q, want %q", got, "no-store")
	}
	if got := res.Header.Values("Content-Encoding"); len(got) != 0 {
		t.Errorf("Content-Encoding = %q, want none (the body is not encoded)", got)
	}
	body := rec.Body.Bytes()
	if got, want := res.Header.Get("Content-Length"), strconv.Itoa(len(body)); got != want {
		t.Errorf("Content-Length = %q, want %q (the body's length)", got, want)
	}
	if !bytes.HasSuffix(body, []byte("\n")) || bytes.Count(body, []byte("\n")) != 1 {
		t.Errorf("body %q, want one line ending in a newline", body)
	}
	line := bytes.TrimSuffix(body, []byte("\n"))
	for i, c := range line {
		if c < 0x20 { // JSON allows DEL and C1 characters raw
			t.Errorf("body byte %d = %#x, want no raw control character in %q", i, c, body)
		}
		if c == '<' || c == '>' || c == '&' {
			t.Errorf("body byte %d = %q, want HTML metacharacters escaped in %q", i, c, body)
		}
	}
	if !utf8.Valid(line) {
		t.Errorf("body %q is not valid UTF-8", body)
	}
	var d decoded
	d.raw = body
	if err := json.Unmarshal(line, &d.Details); err != nil {
		t.Fatalf("json.Unmarshal(%q) = %v, want a problem document", body, err)
	}
	if err := json.Unmarshal(line, &d.fields); err != nil {
		t.Fatalf("json.Unmarshal(%q) = %v, want a JSON object", body, err)
	}
	if d.Status != res.StatusCode {
		t.Errorf("body status = %d, want the response's %d", d.Status, res.StatusCode)
	}
	return d
}

func TestWriteStatus(t *testing.T) {
	tests := []struct {
		name   string
		status int
		want   int
		title  string
	}{
		{"bad request", http.StatusBadRequest, 400, "Bad Request"},
		{"unauthorized", http.StatusUnauthorized, 401, "Unauthorized"},
		{"forbidden", http.StatusForbidden, 403, "Forbidden"},
		{"not found", http.StatusNotFound, 404, "Not Found"},
		{"conflict", http.StatusConflict, 409, "Conflict"},
		{"too large", http.StatusRequestEntityTooLarge, 413, "Request Entity Too Large"},
		{"unsupported media type", http.StatusUnsupportedMediaType, 415, "Unsupported Media Type"},
		{"unprocessable", http.StatusUnprocessableEntity, 422, "Unprocessable Entity"},
		{"too many requests", http.StatusTooManyRequests, 429, "Too Many Requests"},
		{"client closed (nonstandard)", 499, 499, ""},
		{"internal", http.StatusInternalServerError, 500, "Internal Server Error"},
		{"bad gateway", http.StatusBadGateway, 502, "Bad Gateway"},
		{"unavailable", http.StatusServiceUnavailable, 503, "Service Unavailable"},
		{"gateway timeout", http.StatusGatewayTimeout, 504, "Gateway Timeout"},
		{"last 5xx", 599, 599, ""},
		// A problem is an error answer. A status that is not one must not
		// pass as success (2xx), as a redirect without a Location (3xx), as
		// an informational answer followed by an implicit 200 (1xx), or
		// panic in net/http (out of range): it becomes 500.
		{"zero", 0, 500, "Internal Server Error"},
		{"negative", -1, 500, "Internal Server Error"},
		{"below range", 99, 500, "Internal Server Error"},
		{"continue", http.StatusContinue, 500, "Internal Server Error"},
		{"early hints", http.StatusEarlyHints, 500, "Internal Server Error"},
		{"ok", http.StatusOK, 500, "Internal Server Error"},
		{"no content", http.StatusNoContent, 500, "Internal Server Error"},
		{"found", http.StatusFound, 500, "Internal Server Error"},
		{"not modified", http.StatusNotModified, 500, "Internal Server Error"},
		{"600", 600, 500, "Internal Server Error"},
		{"1000", 1000, 500, "Internal Server Error"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := httptest.NewRecorder()
			problem.Write(rec, request("/x"), tt.status, "detail")
			d := check(t, rec, tt.want)
			if d.Title != tt.title {
				t.Errorf("Write(status %d): title = %q, want %q", tt.status, d.Title, tt.title)
			}
		})
	}
}

// TestWriteFields checks the RFC 9457 members and warden's request id.
func TestWriteFields(t *testing.T) {
	rec := httptest.NewRecorder()
	problem.Write(rec, request("/v1/fn"), http.StatusNotFound, "no function serves this route")
	d := check(t, rec, http.StatusNotFound)
	want := problem.Details{
		Type: "about:blank", Title: "Not Found", Status: 404, Detail: "no function serves this route",
		Instance: "/v1/fn", RequestID: testID,
	}
	if !detailsEqual(d.Details, want) {
		t.Errorf("Write() = %+v, want %+v", d.Details, want)
	}
	for _, k := range []string{"type", "title", "status", "detail", "instance", "requestId"} {
		if _, ok := d.fields[k]; !ok {
			t.Errorf("member %q missing from %s", k, d.raw)
		}
	}
	if _, ok := d.fields["errors"]; ok {
		t.Errorf("member %q present in %s, want it omitted when there are none", "errors", d.raw)
	}
}

func detailsEqual(a, b problem.Details) bool {
	return a.Type == b.Type && a.Title == b.Title && a.Status == b.Status && a.Detail == b.Detail &&
		a.Instance == b.Instance && a.RequestID == b.RequestID && slices.Equal(a.Errors, b.Errors)
}

func TestWriteWithoutRequestID(t *testing.T) {
	rec := httptest.NewRecorder()
	r := &http.Request{Method: http.MethodGet, URL: &url.URL{Path: "/"}, Header: http.Header{}}
	r.Header.Set(reqid.Header, "client-chosen") // a request header is never the id
	problem.Write(rec, r, http.StatusBadRequest, "bad")
	d := check(t, rec, http.StatusBadRequest)
	if _, ok := d.fields["requestId"]; ok || d.RequestID != "" {
		t.Errorf("requestId = %q, want omitted without an id in the context (%s)", d.RequestID, d.raw)
	}
}

func TestWriteNilURL(t *testing.T) {
	rec := httptest.NewRecorder()
	r := request("/")
	r.URL = nil
	problem.Write(rec, r, http.StatusBadRequest, "bad")
	if d := check(t, rec, http.StatusBadRequest); d.Instance != "" {
		t.Errorf("instance = %q, want omitted for a request without a URL", d.Instance)
	}
}

// TestWriteHeaders checks what Write does to headers set before it: a
// content coding no longer applies and is removed; a stale Content-Type,
// Content-Length or Cache-Control is replaced; the others (a challenge, a
// retry hint, the security headers) stay.
func TestWriteHeaders(t *testing.T) {
	rec := httptest.NewRecorder()
	h := rec.Header()
	h.Set("Content-Encoding", "gzip")
	h.Set("Content-Type", "text/html")
	h.Set("Content-Length", "99999")
	h.Set("Cache-Control", "public, max-age=3600")
	h.Set("WWW-Authenticate", `Bearer realm="warden"`)
	h.Set("Retry-After", "1")
	h.Set("X-Content-Type-Options", "nosniff")
	problem.Write(rec, request("/"), http.StatusTooManyRequests, "slow down")
	check(t, rec, http.StatusTooManyRequests) // Content-Type, Content-Length, Cache-Control, Content-Encoding
	for k, want := range map[string]string{"WWW-Authenticate": `Bearer realm="warden"`, "Retry-After": "1", "X-Content-Type-Options": "nosniff"} {
		if got := rec.Result().Header.Get(k); got != want {
			t.Errorf("%s = %q, want %q kept", k, got, want)
		}
	}
}

// TestWriteDetails checks that the members a caller sets are kept and only
// the empty ones are filled, and the errors list.
func TestWriteDetails(t *testing.T) {
	tests := []struct {
		name string
		in   problem.Details
		want problem.Details
	}{
		{
			"defaults filled",
			problem.Details{Status: 400, Detail: "invalid manifest", Errors: []string{"routes[0].path: required", "name: too long"}},
			problem.Details{Type: "about:blank", Title: "Bad Request", Status: 400, Detail: "invalid manifest",
				Instance: "/v1/deploy", RequestID: testID, Errors: []string{"routes[0].path: required", "name: too long"}},
		},
		{
			"caller's members kept",
			problem.Details{Type: "https://warden.dev/problems/quota", Title: "Quota exceeded", Status: 429,
				Instance: "/quota/1", RequestID: "given"},
			problem.Details{Type: "https://warden.dev/problems/quota", Title: "Quota exceeded", Status: 429,
				Instance: "/quota/1", RequestID: "given"},
		},
		{
			"empty errors omitted",
			problem.Details{Status: 422, Errors: []string{}},
			problem.Details{Type: "about:blank", Title: "Unprocessable Entity", Status: 422, Instance: "/v1/deploy", RequestID: testID},
		},
		{
			"hostile errors kept verbatim",
			problem.Details{Status: 400, Errors: []string{`"},"status":200,"x":{"`, "<script>alert(1)</script>", "line\nINFO forged", "\x00\x1b[31m"}},
			problem.Details{Type: "about:blank", Title: "Bad Request", Status: 400, Instance: "/v1/deploy", RequestID: testID,
				Errors: []string{`"},"status":200,"x":{"`, "<script>alert(1)</script>", "line\nINFO forged", "\x00\x1b[31m"}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := httptest.NewRecorder()
			problem.WriteDetails(rec, request("/v1/deploy"), tt.in)
			d := check(t, rec, tt.want.Status)
			if !detailsEqual(d.Details, tt.want) {
				t.Errorf("WriteDetails(%+v) = %+v, want %+v", tt.in, d.Details, tt.want)
			}
		})
	}
}

// hostile are strings an attacker may get into a detail, an error or a path:
// JSON breakouts, HTML, log-line forgery, terminal escapes, line and
// paragraph separators (which end a JavaScript string), invalid UTF-8.
var hostile = []struct{ name, s string }{
	{"plain", "the body does not match the route's schema"},
	{"quotes", `say "hi" and 'bye'`},
	{"json breakout", `","status":200,"detail":"ok`},
	{"backslash", `C:\path\to\"file\"`},
	{"html", `<script>alert(document.cookie)</script>`},
	{"html entities", `&lt;&amp;&gt; </title><img src=x onerror=alert(1)>`},
	{"newline log forgery", "ok\nlevel=INFO msg=\"admin login\" user=root"},
	{"crlf", "a\r\nSet-Cookie: session=evil"},
	{"nul and controls", "a\x00b\x01c\x07d\x08e\x0bf\x0cg\x1bh\x1fi\x7fj"},
	{"tab", "a\tb"},
	{"ansi escape", "\x1b[2J\x1b[31mred"},
	{"line separators", "a\u2028b\u2029c"},
	{"non-ascii", "función ☃ 𝄞 日本語"},
	{"bom and rtl override", "\ufeffabc\u202etxt.exe"},
	{"long", strings.Repeat("A\"<", 10000)},
}

func TestWriteEscapesDetail(t *testing.T) {
	for _, tt := range hostile {
		t.Run(tt.name, func(t *testing.T) {
			rec := httptest.NewRecorder()
			problem.Write(rec, request("/"), http.StatusBadRequest, tt.s)
			d := check(t, rec, http.StatusBadRequest)
			if d.Detail != tt.s {
				t.Errorf("Write(detail %q): detail = %q, want it back unchanged", tt.s, d.Detail)
			}
			if len(d.fields) != 6 {
				t.Errorf("Write(detail %q): %d members in %s, want 6 (nothing injected)", tt.s, len(d.fields), d.raw)
			}
		})
	}
}

func TestWriteInvalidUTF8(t *testing.T) {
	in := "a\xffb\xc3(c" // invalid bytes become U+FFFD: the body stays valid UTF-8
	rec := httptest.NewRecorder()
	problem.Write(rec, request("/"), http.StatusBadRequest, in)
	d := check(t, rec, http.StatusBadRequest)
	if want := "a\ufffdb\ufffd(c"; d.Detail != want {
		t.Errorf("Write(detail %q): detail = %q, want %q", in, d.Detail, want)
	}
}

// TestWriteInstance checks that the instance, which echoes the request's
// path, is a URI reference (RFC 9457 §3.1.5): the path percent-encoded, so
// that it holds no space, control character or quote, and decodes back to
// the path.
func TestWriteInstance(t *testing.T) {
	tests := []struct {
		name, path, want string
	}{
		{"root", "/", "/"},
		{"plain", "/v1/functions/ns/fn", "/v1/functions/ns/fn"},
		{"space", "/a b", "/a%20b"},
		{"newline", "/a\nINFO forged", "/a%0AINFO%20forged"},
		{"quote and angle", `/"><script>`, "/%22%3E%3Cscript%3E"},
		{"percent", "/100%", "/100%25"},
		{"non-ascii", "/función", "/funci%C3%B3n"},
		{"query-like", "/a?b#c", "/a%3Fb%23c"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := httptest.NewRecorder()
			problem.Write(rec, request(tt.path), http.StatusNotFound, "no function serves this route")
			d := check(t, rec, http.StatusNotFound)
			if d.Instance != tt.want {
				t.Errorf("Write(path %q): instance = %q, want %q", tt.path, d.Instance, tt.want)
			}
			if back, err := url.PathUnescape(d.Instance); err != nil || back != tt.path {
				t.Errorf("url.PathUnescape(%q) = %q, %v, want %q, <nil>", d.Instance, back, err, tt.path)
			}
		})
	}
}

// TestWriteRawPath keeps the client's own encoding of the path when it is a
// valid one (a %2F inside a segment stays %2F).
func TestWriteRawPath(t *testing.T) {
	u, err := url.Parse("/files/a%2Fb")
	if err != nil {
		t.Fatal(err)
	}
	r := request("/")
	r.URL = u
	rec := httptest.NewRecorder()
	problem.Write(rec, r, http.StatusNotFound, "x")
	if d := check(t, rec, http.StatusNotFound); d.Instance != "/files/a%2Fb" {
		t.Errorf("Write(path %q): instance = %q, want %q", u.RawPath, d.Instance, "/files/a%2Fb")
	}
}

func TestWriteHead(t *testing.T) {
	// Over a real connection: a HEAD answer carries the headers but no body.
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		problem.Write(w, r.WithContext(reqid.With(r.Context(), testID)), http.StatusNotFound, "no")
	}))
	defer srv.Close()
	for _, method := range []string{http.MethodHead, http.MethodGet} {
		t.Run(method, func(t *testing.T) {
			req, err := http.NewRequest(method, srv.URL+"/x", nil)
			if err != nil {
				t.Fatal(err)
			}
			res, err := srv.Client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer res.Body.Close()
			var buf bytes.Buffer
			buf.ReadFrom(res.Body)
			if res.StatusCode != 404 || res.Header.Get("Content-Type") != problem.ContentType {
				t.Errorf("%s: status %d, Content-Type %q, want 404, %q", method, res.StatusCode, res.Header.Get("Content-Type"), problem.ContentType)
			}
			if method == http.MethodGet {
				if int64(buf.Len()) != res.ContentLength || !json.Valid(buf.Bytes()) {
					t.Errorf("GET: body %q (%d bytes), Content-Length %d, want valid JSON of that length", buf.Bytes(), buf.Len(), res.ContentLength)
				}
			} else if buf.Len() != 0 {
				t.Errorf("HEAD: body %q, want none", buf.Bytes())
			}
		})
	}
}

// FuzzWrite feeds untrusted text (a detail, an error, a path) through Write
// and wants a well-formed problem every time: valid single-line JSON with no
// raw control or HTML characters, the detail and error back unchanged (up to
// invalid UTF-8), and an instance that decodes back to the path.
func FuzzWrite(f *testing.F) {
	for _, h := range hostile[:len(hostile)-1] {
		f.Add(h.s, h.s, "/"+h.s, 400)
	}
	f.Add("x", "", "/a\xffb", 0)
	f.Add("", "", "", 200)
	f.Add("\u2028", "\x00", "//evil.example/x", 503)
	f.Fuzz(func(t *testing.T, detail, errText, path string, status int) {
		r := request(path)
		rec := httptest.NewRecorder()
		problem.WriteDetails(rec, r, problem.Details{Status: status, Detail: detail, Errors: []string{errText}})
		want := status
		if status < 400 || status > 599 {
			want = 500
		}
		d := check(t, rec, want)
		if got, w := d.Detail, jsonValid(detail); got != w {
			t.Errorf("detail = %q, want %q", got, w)
		}
		if len(d.Errors) != 1 || d.Errors[0] != jsonValid(errText) {
			t.Errorf("errors = %q, want [%q]", d.Errors, errText)
		}
		if path != "" {
			if back, err := url.PathUnescape(d.Instance); err != nil || back != path {
				t.Errorf("url.PathUnescape(instance %q) = %q, %v, want %q, <nil>", d.Instance, back, err, path)
			}
		}
		if d.RequestID != testID {
			t.Errorf("requestId = %q, want %q", d.RequestID, testID)
		}
	})
}

// jsonValid is s as encoding/json writes it: each byte that is not part of
// valid UTF-8 becomes U+FFFD (strings.ToValidUTF8 would merge a run of them).
func jsonValid(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b.WriteRune(utf8.RuneError)
		} else {
			b.WriteString(s[i : i+size])
		}
		i += size
	}
	return b.String()
}

func BenchmarkWrite(b *testing.B) {
	r := request("/v1/functions/ns/fn")
	b.ReportAllocs()
	for b.Loop() {
		rec := httptest.NewRecorder()
		problem.Write(rec, r, http.StatusTooManyRequests, "rate limit exceeded")
	}
}
