// Package warden is the guest SDK for warden reactor functions: it
// implements the guest side of the reactor ABI (docs/abi.md), so a Go
// function is a handler registered from init:
//
//	func init() {
//		warden.Handle(func(r *warden.Request) *warden.Response {
//			return &warden.Response{Body: []byte("hello")}
//		})
//	}
//
//	func main() {}
//
// Build with GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared. In that
// mode main is not run; init functions run once per instance, when warden
// calls _initialize. An instance serves one request at a time and is reused
// for later requests of the same function version, so package variables
// persist between requests of one instance (use them as caches, never for
// data that must survive: instances are recycled at any time).
//
// The SDK imports nothing from warden's internals and keeps the hot path
// free of reflection: request and response use a compact binary encoding,
// and its buffers are reused between requests. For net/http handlers see the
// wardenhttp subpackage.
//
// A guest can do only what its manifest grants: it has no files, no
// sockets, and no environment other than the manifest's env (see Env).
// Secrets, KV buckets and outbound HTTP are capabilities (Secret, KVGet,
// KVSet, KVDelete, KVList, Fetch, and wardenhttp.Transport), each call
// checked by warden against the manifest's permissions. Outside
// WebAssembly they fail with ErrUnavailable, so handlers still build and
// run in native tests.
package warden

import "os"

// ABIVersion is the reactor ABI version this SDK implements; the guest
// exports it as warden_abi_version.
const ABIVersion = 1

// Field is one header field (or one var): a name and a value.
type Field struct{ Name, Value string }

// Header is a list of HTTP header fields in order; a name appears once per
// value. Names in a Request are canonical ("Content-Type"); lookups are
// case-insensitive. A slice, not a map: building and walking maps is among
// the most expensive things Go compiled to wasm does.
type Header []Field

// Get returns the first value for name (case-insensitive), or "".
func (h Header) Get(name string) string {
	for _, f := range h {
		if equalFold(f.Name, name) {
			return f.Value
		}
	}
	return ""
}

// Values returns every value for name (case-insensitive), in order.
func (h Header) Values(name string) []string {
	var out []string
	for _, f := range h {
		if equalFold(f.Name, name) {
			out = append(out, f.Value)
		}
	}
	return out
}

// Set replaces the values of name with value.
func (h *Header) Set(name, value string) {
	h.Del(name)
	*h = append(*h, Field{canonicalKey(name), value})
}

// Add appends a value for name.
func (h *Header) Add(name, value string) { *h = append(*h, Field{canonicalKey(name), value}) }

// Del removes every value for name.
func (h *Header) Del(name string) {
	out := (*h)[:0]
	for _, f := range *h {
		if !equalFold(f.Name, name) {
			out = append(out, f)
		}
	}
	clear((*h)[len(out):])
	*h = out
}

// Vars is metadata warden passes to a function (route, verified identity…).
type Vars []Field

// Get returns the value of key, or "".
func (v Vars) Get(key string) string {
	for _, f := range v {
		if f.Name == key {
			return f.Value
		}
	}
	return ""
}

// equalFold reports whether a and b are equal ignoring ASCII case.
func equalFold(a, b string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := 0; i < len(a); i++ {
		x, y := a[i], b[i]
		if x == y {
			continue
		}
		if 'A' <= x && x <= 'Z' {
			x += 'a' - 'A'
		}
		if 'A' <= y && y <= 'Z' {
			y += 'a' - 'A'
		}
		if x != y {
			return false
		}
	}
	return true
}

// Request is one HTTP request as the gateway passed it on, after
// authentication, rate limits and validation.
//
// # Notes
//   - The Request and everything in it belong to the handler; the SDK does
//     not reuse them after the handler returns.
type Request struct {
	Method     string
	Path       string
	Query      string // raw query, without '?'
	Host       string
	Scheme     string // "https" or "http"
	RemoteAddr string
	RequestID  string // also in the X-Request-Id response header
	Header     Header
	Vars       Vars // metadata from warden (route, verified identity, …)
	Body       []byte
}

// Response is a handler's answer. Status 0 means 200.
type Response struct {
	Status int
	Header Header
	Body   []byte
}

// HandlerFunc handles one request. It must not return before it is done
// with the request: the instance serves the next request only after it
// returns. A panic ends the instance; warden answers the request with an
// error and starts a fresh instance for the next one.
type HandlerFunc func(*Request) *Response

var handler HandlerFunc

// Handle registers h as the function's handler. Call it from init (main
// does not run in a reactor). A later call replaces the handler.
func Handle(h HandlerFunc) { handler = h }

// Env returns the value of the manifest's env entry key, or "". A guest
// sees only its manifest's env, never the host environment.
func Env(key string) string { return os.Getenv(key) }

// Level is a log level for Log.
type Level int32

// Log levels; the values are the wire values of warden.log.
const (
	LevelDebug Level = 0
	LevelInfo  Level = 1
	LevelWarn  Level = 2
	LevelError Level = 3
)

// canonicalKey returns the canonical form of an HTTP header name
// ("content-type" → "Content-Type"), without allocating when it already is.
func canonicalKey(s string) string {
	upper := true
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c == ' ' || c >= 0x80 {
			return s // not a valid token: leave as is, like net/http
		}
		if upper && 'a' <= c && c <= 'z' || !upper && 'A' <= c && c <= 'Z' {
			return canonicalSlow(s)
		}
		upper = c == '-'
	}
	return s
}

func canonicalSlow(s string) string {
	for i := 0; i < len(s); i++ {
		if s[i] == ' ' || s[i] >= 0x80 {
			return s
		}
	}
	b := []byte(s)
	upper := true
	for i, c := range b {
		if upper && 'a' <= c && c <= 'z' {
			b[i] = c - 'a' + 'A'
		} else if !upper && 'A' <= c && c <= 'Z' {
			b[i] = c - 'A' + 'a'
		}
		upper = c == '-'
	}
	return string(b)
}
