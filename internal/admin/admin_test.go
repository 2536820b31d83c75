package admin

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// TestRoutesDeclarePermissions: every admin route names a permission, and
// the OpenAPI document lists every route with it.
func TestRoutesDeclarePermissions(t *testing.T) {
	a := New(Config{})
	doc := a.OpenAPI()
	paths := doc["paths"].(map[string]any)
	for _, rt := range a.Routes() {
		if rt.Permission == "" {
			t.Errorf("%s declares no permission", rt.Pattern)
		}
		if !allowed("admin", rt.Permission) {
			t.Errorf("%s needs %q, which the admin role lacks", rt.Pattern, rt.Permission)
		}
		if allowed("", rt.Permission) || allowed("viewer", rt.Permission) {
			t.Errorf("%s: a role with no permissions is allowed", rt.Pattern)
		}
		method, path, _ := strings.Cut(rt.Pattern, " ")
		item, ok := paths[path].(map[string]any)
		if !ok {
			t.Errorf("OpenAPI lacks %s", path)
			continue
		}
		op, ok := item[strings.ToLower(method)].(map[string]any)
		if !ok || op["x-warden-permission"] != rt.Permission {
			t.Errorf("OpenAPI %s: operation %v, want permission %s", rt.Pattern, op, rt.Permission)
		}
	}
}

func TestBearer(t *testing.T) {
	cases := map[string]struct {
		h    string
		want string
		ok   bool
	}{
		"ok":         {"Bearer abc", "abc", true},
		"lowercase":  {"bearer abc", "abc", true},
		"basic":      {"Basic abc", "", false},
		"empty":      {"", "", false},
		"no token":   {"Bearer ", "", false},
		"no space":   {"Bearerabc", "", false},
		"short junk": {"B", "", false},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			r := newReq(c.h)
			got, ok := bearer(r)
			if got != c.want || ok != c.ok {
				t.Fatalf("bearer(%q) = %q, %v; want %q, %v", c.h, got, ok, c.want, c.ok)
			}
		})
	}
}

func newReq(auth string) *http.Request {
	r := httptest.NewRequest("GET", "https://x/v1/functions", nil)
	if auth != "" {
		r.Header.Set("Authorization", auth)
	}
	return r
}
