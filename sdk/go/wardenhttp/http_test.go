package wardenhttp

import (
	"io"
	"net/http"
	"testing"

	warden "warden/sdk/go"
)

func TestAdapt(t *testing.T) {
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		w.Header().Set("X-Seen", r.Method+" "+r.URL.Path+"?"+r.URL.RawQuery+" "+r.Header.Get("X-Request-Id"))
		w.WriteHeader(http.StatusCreated)
		w.Write(append([]byte("got:"), body...))
	})
	resp := Adapt(h)(&warden.Request{Method: "POST", Path: "/a", Query: "b=1", RequestID: "r1", Body: []byte("x")})
	if resp.Status != 201 || string(resp.Body) != "got:x" || resp.Header.Get("X-Seen") != "POST /a?b=1 r1" {
		t.Errorf("Adapt = %d %q %v", resp.Status, resp.Body, resp.Header)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "text/plain; charset=utf-8" {
		t.Errorf("Content-Type = %q, want sniffed text/plain", ct)
	}
}
