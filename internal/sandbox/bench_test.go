package sandbox

import (
	"context"
	"os"
	"runtime"
	"testing"

	"warden/internal/manifest"
)

func benchInvoke(b *testing.B, name string, req *Request) {
	e, _ := newEngine(b, Config{})
	f := e.Function(spec(b, name, 1, manifest.Limits{}))
	ctx := context.Background()
	if _, err := f.Invoke(ctx, req); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		resp, err := f.Invoke(ctx, req)
		if err != nil || resp.Status != 200 {
			b.Fatalf("Invoke = %v, %v", resp, err)
		}
	}
}

// BenchmarkInvokePing is a warm reactor call into examples/ping (target < 50 µs/op).
func BenchmarkInvokePing(b *testing.B) { benchInvoke(b, "ping", get("/ping", "")) }

func BenchmarkInvokeEchoJSON(b *testing.B) {
	req := get("/echo", "")
	req.Method = "POST"
	req.Header = map[string][]string{"Content-Type": {"application/json"}}
	req.Body = []byte(`{"name":"warden","tags":["a","b","c"],"n":42,"nested":{"ok":true}}`)
	benchInvoke(b, "echo-json", req)
}

// BenchmarkInvokeHelloWagi: a fresh instance (Go runtime start) per request.
func BenchmarkInvokeHelloWagi(b *testing.B) { benchInvoke(b, "hello", get("/hello", "name=bench")) }

// BenchmarkInstantiate measures creating a reactor instance (instantiate +
// _initialize) of an already compiled module, and reports the memory a
// pooled instance holds: its linear memory plus the Go heap it adds.
func BenchmarkInstantiate(b *testing.B) {
	for _, name := range []string{"ping", "echo-json"} {
		b.Run(name, func(b *testing.B) {
			e, _ := newEngine(b, Config{})
			f := e.Function(spec(b, name, 1, manifest.Limits{}))
			ctx := context.Background()
			m, err := f.load(ctx, true)
			if err != nil {
				b.Fatal(err)
			}
			defer f.unlease(m)
			ctx = context.WithValue(ctx, callStateKey{}, &callState{inv: f.inv})
			b.ReportAllocs()
			var mem uint64
			for b.Loop() {
				inst, ierr := f.newInstance(ctx, m)
				if ierr != nil {
					b.Fatal(ierr)
				}
				mem = uint64(inst.mem.Size())
				_ = inst.mod.Close(ctx)
			}
			b.StopTimer()
			// Memory per pooled instance: hold n instances, measure the heap.
			const n = 8
			runtime.GC()
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			insts := make([]*instance, n)
			for i := range insts {
				inst, ierr := f.newInstance(ctx, m)
				if ierr != nil {
					b.Fatal(ierr)
				}
				insts[i] = inst
			}
			runtime.GC()
			runtime.ReadMemStats(&after)
			heap := (int64(after.HeapInuse) - int64(before.HeapInuse)) / n
			for _, inst := range insts {
				_ = inst.mod.Close(ctx)
			}
			b.ReportMetric(float64(mem), "guest-mem-bytes/instance")
			b.ReportMetric(float64(heap), "heap-bytes/instance")
		})
	}
}

// BenchmarkColdStartCached: a new engine on a warm CacheDir, Prepare, and
// the first invocation (target < 60 ms for a 4 MB Go module).
func BenchmarkColdStartCached(b *testing.B) {
	warm, _ := newEngine(b, Config{})
	if err := warm.Check(context.Background(), manifest.ABIReactor, wasmOf(b, "echo-json")); err != nil {
		b.Fatal(err)
	}
	coldStart(b, cacheDir)
}

// BenchmarkColdStartUncached: the same with an empty cache every time.
func BenchmarkColdStartUncached(b *testing.B) { coldStart(b, "") }

func coldStart(b *testing.B, dir string) {
	b.ReportAllocs()
	ctx := context.Background()
	req := get("/echo", "")
	req.Body = []byte(`{"a":1}`)
	for b.Loop() {
		d := dir
		if d == "" {
			var err error
			if d, err = os.MkdirTemp("", "sandbox-cold-"); err != nil {
				b.Fatal(err)
			}
		}
		e, err := New(ctx, Config{CacheDir: d})
		if err != nil {
			b.Fatal(err)
		}
		f := e.Function(spec(b, "echo-json", 1, manifest.Limits{}))
		if err := f.Prepare(ctx); err != nil {
			b.Fatal(err)
		}
		if _, err := f.Invoke(ctx, req); err != nil {
			b.Fatal(err)
		}
		if err := e.Close(ctx); err != nil {
			b.Fatal(err)
		}
		if dir == "" {
			os.RemoveAll(d)
		}
	}
}

// benchHost answers SecretGet with a fixed 32-byte value and nothing else.
type benchHost struct{ Host }

var benchSecret = []byte("0123456789abcdef0123456789abcdef")

func (benchHost) SecretGet(context.Context, Invocation, string) ([]byte, error) {
	return benchSecret, nil // the sandbox only reads it
}

// BenchmarkInvokeHostCall: a warm reactor invocation of the caps guest
// that makes no host call, one secret_get, and 100 (through warden.Secret,
// warden.AppendSecret and the bare import), with a trivial Host, so the
// cost of a host call, and of the SDK around it, is visible.
func BenchmarkInvokeHostCall(b *testing.B) {
	for _, bc := range []struct{ name, path string }{
		{"none", "/bench/none"},
		{"secret_get", "/bench/secret"},
		{"secret_get_x100", "/bench/secret100"},
		{"append_secret_x100", "/bench/append100"}, // warden.AppendSecret into a reused buffer
		{"raw_secret_get_x100", "/bench/raw100"},   // the import called directly, no SDK
	} {
		b.Run(bc.name, func(b *testing.B) {
			e, _ := newEngine(b, Config{})
			s := spec(b, "caps", 1, manifest.Limits{})
			s.Host = benchHost{}
			f := e.Function(s)
			ctx := context.Background()
			req := get(bc.path, "")
			if resp, err := f.Invoke(ctx, req); err != nil || resp.Status != 200 {
				b.Fatalf("Invoke = %v, %v", resp, err)
			}
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				resp, err := f.Invoke(ctx, req)
				if err != nil || resp.Status != 200 {
					b.Fatalf("Invoke = %v, %v", resp, err)
				}
			}
		})
	}
}
