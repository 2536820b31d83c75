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
		h.Set(reqid.Header, id)
		h.Set("Strict-Transport-Security", "max-age=63072000; includeSubDomains")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("X-Frame-Options", "DENY")
		h.Set("Content-Security-Policy", "default-src 'none'; frame-ancestors 'none'")
		next.ServeHTTP(w, r.WithContext(reqid.With(r.Context(), id)))
	})
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
