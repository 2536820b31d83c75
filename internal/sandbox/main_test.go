package sandbox

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"warden/internal/manifest"
	"warden/internal/testguest"
)

// The guests, built and compiled once per machine and source version by
// package testguest (TestMain).
var (
	guestSet  *testguest.Set
	cacheDir  string // shared compilation cache: tests load compiled code, never compile
	wasmBytes sync.Map
)

type guest struct {
	name    string
	reactor bool
}

// guests are every test guest (testguest.Guests).
var guests = func() []guest {
	gs := make([]guest, len(testguest.Guests))
	for i, g := range testguest.Guests {
		gs[i] = guest{g.Name, g.Reactor}
	}
	return gs
}()

func TestMain(m *testing.M) {
	os.Exit(runMain(m))
}

func runMain(m *testing.M) int {
	flag.Parse()
	start := time.Now()
	// Set WARDEN_TEST_FRESH_CACHE=1 to start from empty caches.
	set, err := testguest.Prepare()
	if err != nil {
		fmt.Fprintln(os.Stderr, "preparing test guests:", err)
		return 1
	}
	defer set.Close()
	guestSet, cacheDir = set, set.CacheDir
	if testing.Verbose() {
		fmt.Printf("prepared test guests in %v\n", time.Since(start).Round(time.Millisecond))
	}
	return m.Run()
}

func wasmOf(t testing.TB, name string) []byte {
	t.Helper()
	if b, ok := wasmBytes.Load(name); ok {
		return b.([]byte)
	}
	b, err := os.ReadFile(guestSet.Path(name))
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
