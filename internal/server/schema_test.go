package server_test

import (
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"warden/internal/events"
)

const orderSchema = `{
  "type": "object",
  "required": ["item", "qty"],
  "additionalProperties": false,
  "properties": {"item": {"type": "string"}, "qty": {"type": "integer", "minimum": 1}}
}`

// TestSchemaValidation: a route's schema travels with the deploy, bodies
// that do not match are refused before the function runs (400 listing the
// failing places, never the values), a type other than JSON gets 415, and a
// bad schema refuses the deploy.
func TestSchemaValidation(t *testing.T) {
	t.Parallel()
	data := t.TempDir()
	in := start(t, data)
	withSchema := func(schema string) string {
		path := fixture(t, "echo-json", func(m string) string {
			return strings.Replace(m, "    auth: none\n", "    auth: none\n    schema: ./order.schema.json\n", 1)
		})
		os.WriteFile(filepath.Join(filepath.Dir(path), "order.schema.json"), []byte(schema), 0o644)
		return path
	}
	in.mustCLI("deploy", "-f", withSchema(orderSchema))
	post := func(ct, body string) *http.Response {
		return in.public("POST", "/echo", strings.NewReader(body), map[string]string{"Content-Type": ct})
	}
	if resp := post("application/json", `{"item":"tea","qty":2}`); resp.StatusCode != 200 {
		t.Fatalf("valid body: %d %s", resp.StatusCode, readBody(t, resp))
	}
	p := wantProblem(t, post("application/json", `{"item":"SECRET-ITEM-NAME","qty":0,"admin":true}`), http.StatusBadRequest)
	joined := strings.Join(p.Errors, "\n")
	if !strings.Contains(joined, "/qty: minimum") || !strings.Contains(joined, "/: additionalProperties") || strings.Contains(joined, "SECRET") {
		t.Fatalf("problems %q: want the failing places and no values", p.Errors)
	}
	wantProblem(t, post("application/json", `{"item":`), http.StatusBadRequest)
	wantProblem(t, post("text/plain", `{"item":"tea","qty":2}`), http.StatusUnsupportedMediaType)
	if n := occurrences(in.eventsOf(events.TypeRequestInvalid)); n != 3 {
		t.Fatalf("%d request.invalid events, want 3", n)
	}

	// A changed schema is a new version; an invalid one refuses the deploy.
	if out := in.mustCLI("deploy", "-f", withSchema(strings.Replace(orderSchema, `"minimum": 1`, `"minimum": 5`, 1))); !strings.Contains(out, "version 2") {
		t.Fatalf("deploy with a changed schema: %q", out)
	}
	wantProblem(t, post("application/json", `{"item":"tea","qty":2}`), http.StatusBadRequest)
	_, errOut, code := in.cli("deploy", "-f", withSchema(`{"type": 12}`))
	if code != 1 || !strings.Contains(errOut, "invalid schema") {
		t.Fatalf("bad schema: exit %d %q", code, errOut)
	}
	_, errOut, code = in.cli("deploy", "-f", withSchema(`{"$ref": "file:///etc/passwd"}`))
	if code != 1 || !strings.Contains(errOut, "invalid schema") {
		t.Fatalf("schema with an external $ref: exit %d %q", code, errOut)
	}

	// Rollback restores the old schema; a restart compiles it from the store.
	in.mustCLI("rollback", "echo-json")
	if resp := post("application/json", `{"item":"tea","qty":2}`); resp.StatusCode != 200 {
		t.Fatalf("after rollback: %d", resp.StatusCode)
	}
	in.stop()
	in2 := start(t, data)
	resp := in2.public("POST", "/echo", strings.NewReader(`{"qty":2}`), map[string]string{"Content-Type": "application/json"})
	wantProblem(t, resp, http.StatusBadRequest)
}
