// Package secheaders owns the security headers every response of both
// listeners carries, and the per-request id. It is the outermost middleware.
//
// secheaders never reads request bodies and never trusts a request id sent by
// a client.
package secheaders

import (
	"net"
	"net/http"

	"warden/internal/reqid"
)

// Wrap sets a fresh request id in the context and the X-Request-Id header,
// and the security headers: HSTS, nosniff, no referrer, no framing and a
// deny-all CSP (functions that serve HTML set their own).
//
// An X-Request-Id sent by the client is removed from the request, so that
// nothing behind Wrap (a log, a guest, the SDK) can take it for warden's.
func Wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		delete(r.Header, reqid.Header)
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
//
// It is the host of r.RemoteAddr as net.SplitHostPort splits it (an IPv6
// address without brackets, a zone kept). A RemoteAddr that is not
// host:port, which net/http over TCP never sets, is returned whole: a part
// of it could name another client.
func ClientIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}
