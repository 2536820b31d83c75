// Package secheaders owns the security headers every response of both
// listeners carries, and the per-request id. It is the outermost middleware.
//
// secheaders never reads request bodies and never trusts a request id sent by
// a client.
package secheaders

import (
	"net/http"

	"warden/internal/reqid"
)

// Wrap sets a fresh request id in the context and the X-Request-Id header,
// and the security headers: HSTS, nosniff, no referrer, no framing and a
// deny-all CSP (functions that serve HTML set their own).
func Wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := reqid.New()
		h := w.Header()
		h[reqid.Header] = []string{id}
		for _, kv := range fixed {
			h[kv.k] = kv.v
		}
		next.ServeHTTP(w, r.WithContext(reqid.With(r.Context(), id)))
	})
}

// fixed are the constant headers. The value slices are shared between
// responses, so they have no spare capacity: a handler that appends to one
// gets a copy, and h.Set replaces the slice rather than writing into it.
var fixed = []struct {
	k string
	v []string
}{
	{"Strict-Transport-Security", []string{"max-age=63072000; includeSubDomains"}},
	{"X-Content-Type-Options", []string{"nosniff"}},
	{"Referrer-Policy", []string{"no-referrer"}},
	{"X-Frame-Options", []string{"DENY"}},
	{"Content-Security-Policy", []string{"default-src 'none'; frame-ancestors 'none'"}},
}

// ClientIP is the address of the peer, without the port. warden is the edge:
// forwarding headers are not trusted.
func ClientIP(r *http.Request) string {
	addr := r.RemoteAddr
	for i := len(addr) - 1; i >= 0; i-- {
		if addr[i] == ':' {
			addr = addr[:i]
			break
		}
	}
	if len(addr) > 1 && addr[0] == '[' && addr[len(addr)-1] == ']' {
		addr = addr[1 : len(addr)-1]
	}
	return addr
}
