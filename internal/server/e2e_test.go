package server_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"warden/internal/cli"
	"warden/internal/config"
	"warden/internal/events"
	"warden/internal/pki"
	"warden/internal/problem"
	"warden/internal/sandbox"
	"warden/internal/server"
	"warden/internal/testguest"
)

// guests are the test guests, built and compiled once per machine and source
// version by package testguest; every server the tests start shares
// guests.CacheDir, so a deploy loads compiled code instead of compiling.
var guests *testguest.Set

func TestMain(m *testing.M) {
	// The crash test re-executes this binary as a warden server process.
	if args := os.Getenv("WARDEN_TEST_SERVER_ARGS"); args != "" {
		os.Exit(cli.Main(strings.Split(args, "\x1f"), os.Stdout, os.Stderr))
	}
	code := func() int {
		// Set WARDEN_TEST_FRESH_CACHE=1 to start from empty caches.
		set, err := testguest.Prepare("hello", "echo-json", "ping", "attack", "caps")
		if err != nil {
			fmt.Fprintln(os.Stderr, "preparing test guests:", err)
			return 1
		}
		defer set.Close()
		guests = set
		return m.Run()
	}()
	os.Exit(code)
}

// fixture writes a function directory: its warden.yaml (with the artifact
// path rewritten to the built module) next to a copy of the module.
func fixture(t *testing.T, example string, edit func(string) string) string {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join("../../examples", example, "warden.yaml"))
	switch example {
	case "attack":
		raw, err = []byte(attackManifest), nil
	case "caps":
		raw, err = []byte(capsManifest), nil
	}
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	wasm, err := os.ReadFile(guests.Path(example))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, example+".wasm"), wasm, 0o644); err != nil {
		t.Fatal(err)
	}
	m := string(raw)
	if edit != nil {
		m = edit(m)
	}
	path := filepath.Join(dir, "warden.yaml")
	if err := os.WriteFile(path, []byte(m), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// instance is a server running in-process on port 0.
type instance struct {
	t      *testing.T
	data   string
	srv    *server.Server
	done   chan error
	client *http.Client
	token  string
	once   sync.Once
}

func start(t *testing.T, data string) *instance {
	t.Helper()
	return startWith(t, data, nil)
}

// startWith starts a server whose configuration edit may change.
func startWith(t *testing.T, data string, edit func(*config.Config)) *instance {
	t.Helper()
	cfg := config.Default()
	cfg.DataDir = data
	cfg.Listen = "127.0.0.1:0"
	cfg.AdminListen = "127.0.0.1:0"
	if edit != nil {
		edit(&cfg)
	}
	srv, err := server.New(context.Background(), cfg, server.Options{Sandbox: sandbox.Config{CacheDir: guests.CacheDir}})
	if err != nil {
		t.Fatalf("server.New: %v", err)
	}
	in := &instance{t: t, data: data, srv: srv, done: make(chan error, 1)}
	go func() { in.done <- srv.Serve() }()
	in.setClient(t)
	t.Cleanup(func() { in.stop() })
	// The development policy on namespace default, as make run sets it:
	// these tests are not about the two-person rule (approvals_test.go is).
	in.mustCLI("policy", "set", "default", "../../scripts/dev-policy.rego")
	return in
}

// setClient makes an HTTPS client trusting the data dir's CA and reads the
// admin token.
func (in *instance) setClient(t *testing.T) {
	t.Helper()
	pool, err := pki.CertPool(filepath.Join(in.data, "tls", pki.CAFile))
	if err != nil {
		t.Fatal(err)
	}
	in.client = &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}, Timeout: 30 * time.Second}
	tok, err := os.ReadFile(filepath.Join(in.data, "admin.token"))
	if err != nil {
		t.Fatal(err)
	}
	in.token = strings.TrimSpace(string(tok))
}

func (in *instance) stop() { in.once.Do(in.shutdown) }

func (in *instance) shutdown() {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := in.srv.Shutdown(ctx); err != nil {
		in.t.Errorf("shutdown: %v", err)
	}
	if err := <-in.done; err != nil {
		in.t.Errorf("serve: %v", err)
	}
	in.client.CloseIdleConnections()
}

// cli runs the warden command line against this instance.
func (in *instance) cli(args ...string) (stdout, stderr string, code int) {
	return in.cliAt(in.srv.AdminAddr(), args...)
}

// stdinMu guards os.Stdin, which cliStdin swaps while tests run in
// parallel: cli.Main reads it, so a command line runs under the read lock
// and a swap holds the write lock.
var stdinMu sync.RWMutex

// cliAt runs the command line against the admin API at addr.
func (in *instance) cliAt(addr string, args ...string) (stdout, stderr string, code int) {
	stdinMu.RLock()
	defer stdinMu.RUnlock()
	return in.cliAtLocked(addr, args...)
}

// cliAtLocked is cliAt for a caller holding stdinMu.
func (in *instance) cliAtLocked(addr string, args ...string) (stdout, stderr string, code int) {
	var o, e bytes.Buffer
	full := append([]string{"--server", "https://" + addr, "--data-dir", in.data}, args...)
	code = cli.Main(full, &o, &e)
	return o.String(), e.String(), code
}

func (in *instance) mustCLI(args ...string) string {
	in.t.Helper()
	out, errOut, code := in.cli(args...)
	if code != 0 {
		in.t.Fatalf("warden %s: exit %d\n%s%s", strings.Join(args, " "), code, out, errOut)
	}
	return out
}

func (in *instance) public(method, path string, body io.Reader, hdr map[string]string) *http.Response {
	in.t.Helper()
	req, _ := http.NewRequest(method, "https://"+in.srv.PublicAddr()+path, body)
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := in.client.Do(req)
	if err != nil {
		in.t.Fatalf("%s %s: %v", method, path, err)
	}
	return resp
}

func (in *instance) admin(method, path, token string, body io.Reader) *http.Response {
	in.t.Helper()
	req, _ := http.NewRequest(method, "https://"+in.srv.AdminAddr()+path, body)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := in.client.Do(req)
	if err != nil {
		in.t.Fatalf("%s %s: %v", method, path, err)
	}
	return resp
}

func readBody(t *testing.T, resp *http.Response) string {
	t.Helper()
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// wantProblem asserts a problem+json answer with a request id matching the header.
func wantProblem(t *testing.T, resp *http.Response, status int) problem.Details {
	t.Helper()
	body := readBody(t, resp)
	if resp.StatusCode != status {
		t.Fatalf("status = %d, want %d; body %s", resp.StatusCode, status, body)
	}
	if ct := resp.Header.Get("Content-Type"); ct != problem.ContentType {
		t.Fatalf("Content-Type = %q, want %q", ct, problem.ContentType)
	}
	var p problem.Details
	if err := json.Unmarshal([]byte(body), &p); err != nil {
		t.Fatalf("problem body %q: %v", body, err)
	}
	if p.RequestID == "" || p.RequestID != resp.Header.Get("X-Request-Id") {
		t.Fatalf("problem requestId %q, header %q: want equal and non-empty", p.RequestID, resp.Header.Get("X-Request-Id"))
	}
	return p
}

// eventsOf returns the stored events of a type (exact or "prefix.").
func (in *instance) eventsOf(typ string) []events.Event {
	in.t.Helper()
	out := in.mustCLI("events", "--json", "--type", typ)
	var evs []events.Event
	dec := json.NewDecoder(strings.NewReader(out))
	for dec.More() {
		var e events.Event
		if err := dec.Decode(&e); err != nil {
			in.t.Fatal(err)
		}
		evs = append(evs, e)
	}
	return evs
}

// waitEvent polls until an event matching ok is stored.
func (in *instance) waitEvent(typ string, ok func(events.Event) bool) events.Event {
	in.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		for _, e := range in.eventsOf(typ) {
			if ok(e) {
				return e
			}
		}
		if time.Now().After(deadline) {
			in.t.Fatalf("no %s event matched within 10s", typ)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// attackManifest deploys the sandbox's hostile test guest with tight limits.
const attackManifest = `name: attack
abi: wagi
artifact: ./attack.wasm
limits: {memory: 32MiB, timeout: 3s, concurrency: 2, requestBody: 1KiB, responseBody: 64KiB}
http:
  - route: "/attack"
    auth: none
env: {VISIBLE: yes}
`
