// Package router owns the public route table: which function version serves
// which net/http ServeMux pattern. A Table is immutable once built; the deploy
// service builds a new one whenever the set of active versions changes and
// swaps it in whole, so a request sees either the old routes or the new ones.
//
// router never runs functions and never decides who may call them.
package router

import (
	"fmt"
	"net/http"

	"warden/internal/manifest"
)

// Entry is one route of one function. Owner names the function
// ("namespace/name") in conflict messages.
type Entry[T any] struct {
	Owner  string
	Route  manifest.Route
	Target T
}

// Table maps requests to entries. Safe for concurrent use; immutable.
type Table[T any] struct {
	mux     *http.ServeMux
	entries []Entry[T]
}

type entryHandler struct{ i int }

func (entryHandler) ServeHTTP(http.ResponseWriter, *http.Request) {}

// Build returns a table for entries, or an error naming both owners when two
// patterns conflict (net/http's rules: neither is more specific than the
// other, or they are equal).
func Build[T any](entries []Entry[T]) (t *Table[T], err error) {
	t = &Table[T]{mux: http.NewServeMux(), entries: entries}
	seen := make(map[string]string, len(entries))
	for i, e := range entries {
		if prev, ok := seen[e.Route.Pattern]; ok {
			return nil, fmt.Errorf("route %q of %s is already served by %s", e.Route.Pattern, e.Owner, prev)
		}
		seen[e.Route.Pattern] = e.Owner
		if err := register(t.mux, e.Route.Pattern, entryHandler{i}); err != nil {
			return nil, fmt.Errorf("route %q of %s: %v", e.Route.Pattern, e.Owner, err)
		}
	}
	return t, nil
}

func register(mux *http.ServeMux, pattern string, h http.Handler) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("%v", p)
		}
	}()
	mux.Handle(pattern, h)
	return nil
}

// Match finds the entry serving r. When none does it returns ok=false and
// the status net/http would answer (404, 405 with allow set, or a redirect
// to the cleaned path with location set).
func (t *Table[T]) Match(r *http.Request) (e Entry[T], ok bool, status int, hdr http.Header) {
	h, _ := t.mux.Handler(r)
	if eh, isEntry := h.(entryHandler); isEntry {
		return t.entries[eh.i], true, 0, nil
	}
	rec := &statusRecorder{hdr: http.Header{}}
	h.ServeHTTP(rec, r)
	return e, false, rec.status, rec.hdr
}

// Len is the number of routes.
func (t *Table[T]) Len() int { return len(t.entries) }

// statusRecorder captures what net/http's own fallback handlers answer,
// without their plain-text bodies.
type statusRecorder struct {
	hdr    http.Header
	status int
}

func (s *statusRecorder) Header() http.Header { return s.hdr }
func (s *statusRecorder) Write(b []byte) (int, error) {
	if s.status == 0 {
		s.status = http.StatusOK
	}
	return len(b), nil
}
func (s *statusRecorder) WriteHeader(code int) {
	if s.status == 0 {
		s.status = code
	}
}
