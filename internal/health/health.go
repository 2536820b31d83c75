// Package health owns warden's health report: named checks of the parts a
// node needs to make decisions (the event pipeline, the store), served as
// GET /healthz on both listeners, so a load balancer stops sending traffic
// to a node that can only refuse it and an operator sees which part failed.
//
// health never reports a secret, a credential or an internal error's text:
// a check's error must be safe to show, as events.ErrUnavailable's are.
package health

import (
	"context"
	"encoding/json"
	"maps"
	"net/http"
	"slices"
	"time"
)

// Path is where both listeners serve the report.
const Path = "/healthz"

// Check reports whether one part works: nil, or an error whose text is
// safe to show and says what is wrong.
type Check func(ctx context.Context) error

// Checks are the named checks of a node. Safe for concurrent use when each
// check is.
type Checks map[string]Check

// Report is the body of GET /healthz.
type Report struct {
	Status string            `json:"status"`           // "ok" or "unavailable"
	Checks map[string]string `json:"checks,omitempty"` // failing part -> reason
}

// Run runs every check (each bounded by timeout) and returns the report.
func (c Checks) Run(ctx context.Context, timeout time.Duration) Report {
	rep := Report{Status: "ok"}
	for _, name := range slices.Sorted(maps.Keys(c)) {
		cctx, cancel := context.WithTimeout(ctx, timeout)
		err := c[name](cctx)
		cancel()
		if err != nil {
			if rep.Checks == nil {
				rep.Checks = map[string]string{}
			}
			rep.Status, rep.Checks[name] = "unavailable", err.Error()
		}
	}
	return rep
}

// Handler serves the report: 200 when every check passes, else 503 with
// the failing parts. It answers GET and HEAD only, and is never cached.
func (c Checks) Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			w.WriteHeader(http.StatusMethodNotAllowed)
			return
		}
		rep := c.Run(r.Context(), 2*time.Second)
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		status := http.StatusOK
		if rep.Status != "ok" {
			status = http.StatusServiceUnavailable
			w.Header().Set("Retry-After", "1")
		}
		w.WriteHeader(status)
		if r.Method == http.MethodGet {
			json.NewEncoder(w).Encode(rep)
		}
	})
}
