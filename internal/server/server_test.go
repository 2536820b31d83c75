package server_test

import (
	"context"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"warden/internal/events"
)

// TestEndToEnd walks the platform core as a user would: deploy the examples,
// call them over HTTPS and through the CLI, deploy a new version, roll back,
// restart on the same data dir and find everything still there.
func TestEndToEnd(t *testing.T) {
	t.Parallel()
	data := t.TempDir()
	in := start(t, data)

	if fi, err := os.Stat(filepath.Join(data, "admin.token")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("admin.token: %v, mode %v, want 0600", err, fi.Mode().Perm())
	}

	out := in.mustCLI("deploy", "-f", fixture(t, "hello", nil))
	if !strings.Contains(out, "deployed default/hello version 1") {
		t.Fatalf("deploy output %q, want version 1", out)
	}
	in.mustCLI("deploy", "-f", fixture(t, "echo-json", nil))
	in.mustCLI("deploy", "-f", fixture(t, "ping", nil))

	// HTTPS on the public listener, trusting the generated CA.
	resp := in.public("GET", "/hello?name=tester", nil, nil)
	body := readBody(t, resp)
	if resp.StatusCode != 200 || !strings.Contains(body, "tester") {
		t.Fatalf("GET /hello = %d %q, want 200 greeting tester", resp.StatusCode, body)
	}
	if resp.Header.Get("Strict-Transport-Security") == "" || resp.Header.Get("X-Content-Type-Options") != "nosniff" {
		t.Fatalf("security headers missing: %v", resp.Header)
	}
	resp = in.public("POST", "/echo", strings.NewReader(`{"order":42,"item":"tea"}`), map[string]string{"Content-Type": "application/json"})
	body = readBody(t, resp)
	if resp.StatusCode != 200 || !strings.Contains(body, `"order":42`) {
		t.Fatalf("POST /echo = %d %q, want the echo", resp.StatusCode, body)
	}
	resp = in.public("GET", "/ping", nil, nil)
	if body = readBody(t, resp); resp.StatusCode != 200 || strings.TrimSpace(body) != `{"ok":true}` {
		t.Fatalf("GET /ping = %d %q", resp.StatusCode, body)
	}
	// The same through the admin API's invoke.
	if out := in.mustCLI("invoke", "echo-json", "--data", `{"x":1}`); !strings.Contains(out, `"x":1`) {
		t.Fatalf("invoke echo-json = %q", out)
	}

	// A second version with a different greeting; then roll back.
	v2 := fixture(t, "hello", func(m string) string {
		return strings.Replace(m, "env: {GREETING: Hello}", "env: {GREETING: Bonjour}", 1)
	})
	if out := in.mustCLI("deploy", "-f", v2); !strings.Contains(out, "version 2") {
		t.Fatalf("deploy v2 output %q", out)
	}
	if body := readBody(t, in.public("GET", "/hello?name=a", nil, nil)); !strings.Contains(body, "Bonjour") {
		t.Fatalf("after v2 GET /hello = %q, want Bonjour", body)
	}
	// Deploying identical content again changes nothing.
	if out := in.mustCLI("deploy", "-f", v2); !strings.Contains(out, "unchanged") {
		t.Fatalf("redeploy output %q, want unchanged", out)
	}
	if out := in.mustCLI("rollback", "hello"); !strings.Contains(out, "version 1 is active (was 2)") {
		t.Fatalf("rollback output %q", out)
	}
	if body := readBody(t, in.public("GET", "/hello?name=a", nil, nil)); strings.Contains(body, "Bonjour") {
		t.Fatalf("after rollback GET /hello = %q, want the v1 greeting", body)
	}
	in.mustCLI("rollback", "hello", "--to", "2")
	if body := readBody(t, in.public("GET", "/hello?name=a", nil, nil)); !strings.Contains(body, "Bonjour") {
		t.Fatalf("after rollback --to 2 GET /hello = %q", body)
	}

	var fns []struct {
		Name          string `json:"name"`
		ActiveVersion int    `json:"activeVersion"`
	}
	if err := json.Unmarshal([]byte(in.mustCLI("functions", "ls", "--json")), &fns); err != nil || len(fns) != 3 {
		t.Fatalf("functions ls: %v, %+v, want 3 functions", err, fns)
	}
	get := in.mustCLI("functions", "get", "hello")
	if !strings.Contains(get, "GET /hello") || !strings.Contains(get, "* 2") {
		t.Fatalf("functions get hello = %q, want its route and version 2 active", get)
	}

	for _, typ := range []string{events.TypeFunctionDeploy, events.TypeFunctionRollback, events.TypeAdminAuth} {
		if len(in.eventsOf(typ)) == 0 {
			t.Errorf("no %s event stored", typ)
		}
	}

	// Restart on the same data dir: nothing lost, same token works.
	in.stop()
	in2 := start(t, data)
	if in2.srv.BootstrapToken != "" {
		t.Fatal("restart created a new bootstrap token")
	}
	if body := readBody(t, in2.public("GET", "/hello?name=b", nil, nil)); !strings.Contains(body, "Bonjour") {
		t.Fatalf("after restart GET /hello = %q, want v2 still active", body)
	}
	if body := readBody(t, in2.public("GET", "/ping", nil, nil)); !strings.Contains(body, "ok") {
		t.Fatalf("after restart GET /ping = %q", body)
	}
	if n := len(in2.eventsOf(events.TypeFunctionRollback)); n != 2 {
		t.Fatalf("after restart %d rollback events, want 2", n)
	}
	in2.mustCLI("functions", "rm", "echo-json")
	wantProblem(t, in2.public("POST", "/echo", strings.NewReader("{}"), nil), http.StatusNotFound)
	if _, _, code := in2.cli("functions", "get", "echo-json"); code != 1 {
		t.Fatalf("functions get of a deleted function: exit %d, want 1", code)
	}
}

// TestAdminRequiresCredential: every admin route refuses a missing, malformed,
// forged or unknown token with 401 problem+json, and each attempt is an event.
func TestAdminRequiresCredential(t *testing.T) {
	t.Parallel()
	in := start(t, t.TempDir())
	forged := in.token[:len(in.token)-4] + "AAAA"
	if forged == in.token {
		forged = in.token[:len(in.token)-4] + "BBBB"
	}
	tokens := map[string]string{
		"none":      "",
		"garbage":   "hello",
		"forged":    forged,
		"unknown":   "wdn_adm_000000000000_" + strings.Repeat("A", 43),
		"truncated": in.token[:20],
	}
	paths := []struct{ method, path string }{
		{"GET", "/v1/functions"}, {"POST", "/v1/functions"}, {"GET", "/v1/events"},
		{"GET", "/v1/openapi.json"}, {"POST", "/v1/functions/default/x/invoke"},
		{"DELETE", "/v1/functions/default/x"}, {"GET", "/v1/nope"},
	}
	for name, tok := range tokens {
		for _, p := range paths {
			t.Run(name+" "+p.method+" "+p.path, func(t *testing.T) {
				p := wantProblem(t, in.admin(p.method, p.path, tok, nil), http.StatusUnauthorized)
				if strings.Contains(p.Detail, tok) && tok != "" {
					t.Fatalf("problem echoes the token: %q", p.Detail)
				}
			})
		}
	}
	fails := 0
	for _, e := range in.eventsOf(events.TypeAdminAuth) {
		if e.Outcome == events.OutcomeFailure {
			fails++
		}
		b, _ := json.Marshal(e)
		if strings.Contains(string(b), forged[len(forged)-43:]) || strings.Contains(string(b), in.token[len(in.token)-43:]) {
			t.Fatalf("event holds a token secret: %s", b)
		}
	}
	if want := len(tokens) * len(paths); fails < want {
		t.Fatalf("%d admin.auth failure events, want at least %d", fails, want)
	}
	// The admin API is not reachable on the function listener.
	wantProblem(t, in.public("GET", "/v1/functions", nil, map[string]string{"Authorization": "Bearer " + in.token}), http.StatusNotFound)
	// And a valid token works.
	if resp := in.admin("GET", "/v1/openapi.json", in.token, nil); resp.StatusCode != 200 {
		t.Fatalf("openapi with token: %d", resp.StatusCode)
	}
}

// TestDenyByDefault: a route whose auth is not none answers 401 to every
// request until keys and issuers exist, and says so in an event.
func TestDenyByDefault(t *testing.T) {
	t.Parallel()
	in := start(t, t.TempDir())
	for _, auth := range []string{"apikey", "jwt:corp", "mtls"} {
		t.Run(auth, func(t *testing.T) {
			path := fixture(t, "ping", func(m string) string { return strings.Replace(m, "auth: none", "auth: "+auth, 1) })
			in.mustCLI("deploy", "-f", path)
			for _, hdr := range []map[string]string{nil, {"Authorization": "Bearer anything"}, {"X-API-Key": "k"}} {
				wantProblem(t, in.public("GET", "/ping", nil, hdr), http.StatusUnauthorized)
			}
		})
	}
	// A route without auth at all defaults to apikey.
	path := fixture(t, "ping", func(m string) string { return strings.Replace(m, "    auth: none\n", "", 1) })
	in.mustCLI("deploy", "-f", path)
	wantProblem(t, in.public("GET", "/ping", nil, nil), http.StatusUnauthorized)
	if n := occurrences(in.eventsOf(events.TypeRouteAuth)); n < 10 {
		t.Fatalf("%d route.auth events, want at least 10", n)
	}
}

// TestCLIExitCodes: 0 on success, 1 on a failure the server reported, 2 on bad usage.
func TestCLIExitCodes(t *testing.T) {
	t.Parallel()
	in := start(t, t.TempDir())
	cases := []struct {
		args []string
		code int
	}{
		{[]string{"functions", "ls"}, 0},
		{[]string{"functions", "get", "missing"}, 1},
		{[]string{"rollback", "missing"}, 1},
		{[]string{"functions", "get"}, 2},
		{[]string{"deploy", "--bogus"}, 2},
		{[]string{"deploy", "-f", "/nonexistent/warden.yaml"}, 2},
		{[]string{"nosuchcommand"}, 2},
		{[]string{"--token", "wrong", "functions", "ls"}, 1},
	}
	for _, c := range cases {
		t.Run(strings.Join(c.args, " "), func(t *testing.T) {
			out, errOut, code := in.cli(c.args...)
			if code != c.code {
				t.Fatalf("exit %d, want %d\n%s%s", code, c.code, out, errOut)
			}
			if code != 0 && (errOut == "" || strings.Contains(errOut, "goroutine")) {
				t.Fatalf("stderr %q: want a message and no stack trace", errOut)
			}
		})
	}
}

// TestBadDeploys: a malformed manifest names file, line and field; a module
// that is not wasm is refused at deploy with the reason; a route already
// served by another function is a conflict. Nothing is activated.
func TestBadDeploys(t *testing.T) {
	t.Parallel()
	in := start(t, t.TempDir())
	in.mustCLI("deploy", "-f", fixture(t, "ping", nil))

	bad := fixture(t, "ping", func(m string) string { return m + "colour: blue\n" })
	_, errOut, code := in.cli("deploy", "-f", bad)
	if code != 2 || !strings.Contains(errOut, "warden.yaml:") || !strings.Contains(errOut, "colour") {
		t.Fatalf("unknown field: exit %d, %q; want 2 naming file, line and field", code, errOut)
	}

	notWasm := fixture(t, "ping", nil)
	os.WriteFile(filepath.Join(filepath.Dir(notWasm), "ping.wasm"), []byte("\x00asm garbage"), 0o644)
	notWasm2 := fixture(t, "ping", func(m string) string { return strings.Replace(m, "name: ping", "name: ping2", 1) })
	os.WriteFile(filepath.Join(filepath.Dir(notWasm2), "ping.wasm"), []byte("\x00asm garbage"), 0o644)
	_, errOut, code = in.cli("deploy", "-f", notWasm2)
	if code != 1 || !strings.Contains(errOut, "step scan") || !strings.Contains(errOut, "module is malformed") {
		t.Fatalf("garbage module: exit %d, %q; want 1 with the step and the reason", code, errOut)
	}

	conflict := fixture(t, "ping", func(m string) string { return strings.Replace(m, "name: ping", "name: other", 1) })
	_, errOut, code = in.cli("deploy", "-f", conflict)
	if code != 1 || !strings.Contains(errOut, "already served by default/ping") {
		t.Fatalf("route conflict: exit %d, %q", code, errOut)
	}
	var fns []json.RawMessage
	json.Unmarshal([]byte(in.mustCLI("functions", "ls", "--json")), &fns)
	if len(fns) != 1 {
		t.Fatalf("%d functions after refused deploys, want 1", len(fns))
	}
	failures := 0
	for _, e := range in.eventsOf(events.TypeFunctionDeploy) {
		if e.Outcome == events.OutcomeFailure {
			failures++
		}
	}
	if failures != 2 { // the manifest error never left the CLI
		t.Fatalf("%d failed deploy events, want 2", failures)
	}
}

// TestEventsFollow: a following stream delivers events stored after it
// started, newline-delimited, and the query filters work.
func TestEventsFollow(t *testing.T) {
	t.Parallel()
	in := start(t, t.TempDir())
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", "https://"+in.srv.AdminAddr()+"/v1/events?follow=true&type=function.", nil)
	req.Header.Set("Authorization", "Bearer "+in.token)
	resp, err := in.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); resp.StatusCode != 200 || ct != "application/x-ndjson" {
		t.Fatalf("follow: %d %q", resp.StatusCode, ct)
	}
	in.mustCLI("deploy", "-f", fixture(t, "ping", nil))
	dec := json.NewDecoder(resp.Body)
	var e events.Event
	if err := dec.Decode(&e); err != nil {
		t.Fatalf("follow stream: %v", err)
	}
	if e.Type != events.TypeFunctionDeploy || e.Function != "ping" || e.Outcome != events.OutcomeSuccess || e.ID == 0 {
		t.Fatalf("followed event %+v, want the deploy of ping", e)
	}
	cancel()

	if out := in.mustCLI("events", "--since", "1h", "--type", "function.deploy"); !strings.Contains(out, "function.deploy") {
		t.Fatalf("events --since 1h = %q", out)
	}
	if out := in.mustCLI("events", "--since", "2006-01-02T15:04:05Z", "--type", "limit."); strings.TrimSpace(out) != "" {
		t.Fatalf("events of type limit. = %q, want none", out)
	}
	wantProblem(t, in.admin("GET", "/v1/events?since=yesterday", in.token, nil), http.StatusBadRequest)
	wantProblem(t, in.admin("GET", "/v1/events?limit=0", in.token, nil), http.StatusBadRequest)
	if _, _, code := in.cli("events", "--since", "soon"); code != 2 {
		t.Fatalf("events --since soon: exit %d, want 2", code)
	}
}

// TestCredentialInEnvRefused: a manifest whose plain env holds something
// shaped like a credential is refused at deploy, naming the key and the
// kind, never the value.
func TestCredentialInEnvRefused(t *testing.T) {
	t.Parallel()
	in := start(t, t.TempDir())
	secret := "sk_" + "live_" + strings.Repeat("4eC39HqLyjWDarjtT1zdp7dc", 1)
	path := fixture(t, "hello", func(m string) string {
		return strings.Replace(m, "env: {GREETING: Hello}", "env: {GREETING: Hello, PAYMENTS: "+secret+"}", 1)
	})
	_, errOut, code := in.cli("deploy", "-f", path)
	if code != 1 || !strings.Contains(errOut, "env.PAYMENTS looks like a credential (stripe_key)") || strings.Contains(errOut, secret) {
		t.Fatalf("deploy with a key in env: exit %d, %q", code, errOut)
	}
	for _, e := range in.eventsOf(events.TypeFunctionDeploy) {
		b, _ := json.Marshal(e)
		if strings.Contains(string(b), secret) {
			t.Fatal("an event holds the credential")
		}
	}
}
