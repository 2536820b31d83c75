package sandbox

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"warden/internal/manifest"
)

// Guests built once by TestMain: name -> wasm path.
var (
	wasmDir   string
	cacheDir  string // shared compilation cache: tests after the first one load, not compile
	wasmBytes sync.Map
)

type guest struct {
	name, pkg string
	reactor   bool
}

var guests = []guest{
	{"hello", "../../examples/hello", false},
	{"ping", "../../examples/ping", true},
	{"echo-json", "../../examples/echo-json", true},
	{"attack", "./testdata/guests/attack", false},
	{"reactor", "./testdata/guests/reactor", true},
	{"caps", "./testdata/guests/caps", true},
	{"secret-hmac", "../../examples/secret-hmac", true},
	{"kv-counter", "../../examples/kv-counter", true},
	{"egress-fetch", "../../examples/egress-fetch", true},
}

func TestMain(m *testing.M) {
	os.Exit(runMain(m))
}

func runMain(m *testing.M) int {
	flag.Parse()
	tmp, err := os.MkdirTemp("", "sandbox-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(tmp)
	wasmDir, cacheDir = filepath.Join(tmp, "wasm"), filepath.Join(tmp, "cache")
	// Compiled code is keyed by module hash, wazero version and CPU, so a
	// cache kept across runs is safe and saves recompiling the guests (slow
	// under -race). Set WARDEN_TEST_FRESH_CACHE=1 to start empty.
	if dir, err := os.UserCacheDir(); err == nil && os.Getenv("WARDEN_TEST_FRESH_CACHE") == "" {
		cacheDir = filepath.Join(dir, "warden-test", "wazero")
	}
	start := time.Now()
	if err := buildGuests(wasmDir); err != nil {
		fmt.Fprintln(os.Stderr, "building test guests:", err)
		return 1
	}
	if testing.Verbose() {
		fmt.Printf("built test guests in %v\n", time.Since(start).Round(time.Millisecond))
	}
	return m.Run()
}

func goTool() string {
	if p, err := exec.LookPath("go"); err == nil {
		return p
	}
	return filepath.Join(runtime.GOROOT(), "bin", "go")
}

// buildGuests builds every guest with GOOS=wasip1 GOARCH=wasm, reactors
// with -buildmode=c-shared.
func buildGuests(dir string) error {
	var wg sync.WaitGroup
	errs := make([]error, len(guests))
	for i, g := range guests {
		wg.Add(1)
		go func() {
			defer wg.Done()
			args := []string{"build", "-o", filepath.Join(dir, g.name+".wasm")}
			if g.reactor {
				args = append(args, "-buildmode=c-shared")
			}
			cmd := exec.Command(goTool(), append(args, g.pkg)...)
			cmd.Env = append(os.Environ(), "GOOS=wasip1", "GOARCH=wasm", "CGO_ENABLED=0")
			if out, err := cmd.CombinedOutput(); err != nil {
				errs[i] = fmt.Errorf("%s: %v\n%s", g.name, err, out)
			}
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

func wasmOf(t testing.TB, name string) []byte {
	t.Helper()
	if b, ok := wasmBytes.Load(name); ok {
		return b.([]byte)
	}
	b, err := os.ReadFile(filepath.Join(wasmDir, name+".wasm"))
	if err != nil {
		t.Fatal(err)
	}
	wasmBytes.Store(name, b)
	return b
}

// logBuffer is a concurrency-safe slog destination tests can inspect.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

func newEngine(t testing.TB, cfg Config) (*Engine, *logBuffer) {
	t.Helper()
	logs := &logBuffer{}
	if cfg.CacheDir == "" {
		cfg.CacheDir = cacheDir
	}
	cfg.Logger = slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	e, err := New(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := e.Close(ctx); err != nil {
			t.Errorf("Engine.Close: %v", err)
		}
	})
	return e, logs
}

var loads atomic.Int64 // Spec.Load calls, across tests

func spec(t testing.TB, guestName string, version int, lim manifest.Limits) Spec {
	abi := manifest.ABIWagi
	for _, g := range guests {
		if g.name == guestName && g.reactor {
			abi = manifest.ABIReactor
		}
	}
	wasm := wasmOf(t, guestName)
	return Spec{
		Namespace: "default",
		Name:      guestName,
		Version:   version,
		Digest:    fmt.Sprintf("%s-%d", guestName, version),
		ABI:       abi,
		Limits:    lim,
		Load: func(context.Context) ([]byte, error) {
			loads.Add(1)
			return wasm, nil
		},
	}
}

func get(path, query string) *Request {
	return &Request{
		Method: "GET", Path: path, RawQuery: query, Host: "example.test:8443", Scheme: "https",
		RemoteAddr: "192.0.2.7:5555", RequestID: "req-1", Header: map[string][]string{},
	}
}

func invoke(t testing.TB, f *Function, req *Request) *Response {
	t.Helper()
	resp, err := f.Invoke(context.Background(), req)
	if err != nil {
		t.Fatalf("Invoke(%s %s?%s) error: %v", req.Method, req.Path, req.RawQuery, err)
	}
	return resp
}

func invokeErr(t testing.TB, f *Function, req *Request, want ErrorKind) *Error {
	t.Helper()
	resp, err := f.Invoke(context.Background(), req)
	var se *Error
	if !errors.As(err, &se) {
		body := ""
		if resp != nil {
			body = string(resp.Body)
		}
		t.Fatalf("Invoke(%s?%s) = %v (body %.200q), want *Error of kind %v", req.Path, req.RawQuery, err, body, want)
	}
	if se.Kind != want {
		t.Fatalf("Invoke(%s?%s) kind = %v (%v), want %v", req.Path, req.RawQuery, se.Kind, err, want)
	}
	return se
}

// eventually polls cond until it holds or the deadline passes.
func eventually(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.NewTimer(d)
	defer deadline.Stop()
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	for !cond() {
		select {
		case <-deadline.C:
			t.Fatalf("timed out after %v waiting for %s", d, what)
		case <-tick.C:
		}
	}
}
