package health

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"
)

func TestHandler(t *testing.T) {
	var fail error
	c := Checks{"events": func(context.Context) error { return fail }, "store": func(context.Context) error { return nil }}
	get := func(method string) (*httptest.ResponseRecorder, Report) {
		w := httptest.NewRecorder()
		c.Handler().ServeHTTP(w, httptest.NewRequest(method, Path, nil))
		var rep Report
		if method == "GET" {
			if err := json.Unmarshal(w.Body.Bytes(), &rep); err != nil {
				t.Fatal(err)
			}
		}
		return w, rep
	}
	if w, rep := get("GET"); w.Code != 200 || rep.Status != "ok" || len(rep.Checks) != 0 {
		t.Fatalf("healthy: %d %+v", w.Code, rep)
	}
	fail = errors.New("the event store stalled")
	w, rep := get("GET")
	if w.Code != http.StatusServiceUnavailable || rep.Status != "unavailable" || rep.Checks["events"] != "the event store stalled" || len(rep.Checks) != 1 {
		t.Fatalf("unhealthy: %d %+v, want 503 naming events only", w.Code, rep)
	}
	if w.Header().Get("Cache-Control") != "no-store" || w.Header().Get("Retry-After") == "" {
		t.Errorf("headers %v", w.Header())
	}
	if w, _ := get("HEAD"); w.Code != http.StatusServiceUnavailable || w.Body.Len() != 0 {
		t.Errorf("HEAD = %d with %d bytes", w.Code, w.Body.Len())
	}
	if w, _ := get("POST"); w.Code != http.StatusMethodNotAllowed {
		t.Errorf("POST = %d, want 405", w.Code)
	}
}

func TestCheckBounded(t *testing.T) {
	c := Checks{"slow": func(ctx context.Context) error { <-ctx.Done(); return errors.New("timed out") }}
	if rep := c.Run(context.Background(), 1); rep.Status != "unavailable" {
		t.Fatalf("a check that never returns by itself: %+v", rep)
	}
}
