package sandbox

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/tetratelabs/wazero"

	"warden/internal/manifest"
)

// wasmModule assembles a module exporting its memory and, as _start, the
// last of funcs. Every function has type types[typeOf[i]]; bodies are the
// raw expressions (locals declaration included).
type wasmModule struct {
	types   [][]byte // encoded functypes (without the 0x60)
	typeOf  []uint32
	bodies  [][]byte
	imports []byte // raw import entries (count added)
	nImp    int
}

func vec(n int, b ...byte) []byte { return append(binary.AppendUvarint(nil, uint64(n)), b...) }

func sec(id byte, body []byte) []byte {
	return append(append([]byte{id}, binary.AppendUvarint(nil, uint64(len(body)))...), body...)
}

func (m wasmModule) bytes() []byte {
	b := []byte("\x00asm\x01\x00\x00\x00")
	var types []byte
	for _, t := range m.types {
		types = append(append(types, 0x60), t...)
	}
	b = append(b, sec(1, vec(len(m.types), types...))...)
	if m.nImp > 0 {
		b = append(b, sec(2, vec(m.nImp, m.imports...))...)
	}
	var fs []byte
	for _, t := range m.typeOf {
		fs = binary.AppendUvarint(fs, uint64(t))
	}
	b = append(b, sec(3, vec(len(m.typeOf), fs...))...)
	b = append(b, sec(5, []byte{1, 0, 1})...) // one memory, min 1 page
	start := uint64(m.nImp + len(m.bodies) - 1)
	exp := append(name("memory"), 2, 0)
	exp = append(append(exp, name("_start")...), 0)
	exp = binary.AppendUvarint(exp, start)
	b = append(b, sec(7, vec(2, exp...))...)
	var code []byte
	for _, body := range m.bodies {
		code = append(code, binary.AppendUvarint(nil, uint64(len(body)))...)
		code = append(code, body...)
	}
	return append(b, sec(10, vec(len(m.bodies), code...))...)
}

var (
	typeVoid = []byte{0, 0}       // () -> ()
	typeI32  = []byte{1, 0x7f, 0} // (i32) -> ()
)

// Guests that never end, each in a way wazero's own checks handle
// differently: a tight loop, recursion without any loop (which wazero's
// loop-header checks never stop), and a loop whose body is long.
func neverEnding() map[string][]byte {
	long := []byte{0, 0x03, 0x40} // no locals; loop
	for range 5000 {
		long = append(long, 0x01) // nop
	}
	long = append(long, 0x0c, 0x00, 0x0b, 0x0b) // br 0; end; end
	return map[string][]byte{
		"tight loop": wasmModule{types: [][]byte{typeVoid}, typeOf: []uint32{0},
			bodies: [][]byte{{0, 0x03, 0x40, 0x0c, 0x00, 0x0b, 0x0b}}}.bytes(),
		// f(n) { if n { f(n-1); f(n-1) } }; _start() { f(40) }: 2^40 calls.
		"recursion without loops": wasmModule{types: [][]byte{typeI32, typeVoid}, typeOf: []uint32{0, 1},
			bodies: [][]byte{
				{0, 0x20, 0, 0x04, 0x40, 0x20, 0, 0x41, 1, 0x6b, 0x10, 0, 0x20, 0, 0x41, 1, 0x6b, 0x10, 0, 0x0b, 0x0b},
				{0, 0x41, 40, 0x10, 0, 0x0b},
			}}.bytes(),
		"long loop body": wasmModule{types: [][]byte{typeVoid}, typeOf: []uint32{0}, bodies: [][]byte{long}}.bytes(),
	}
}

// Every guest the tests build is instrumented (so it runs without wazero's
// per-loop exits), deterministically, and still compiles.
func TestFuelInstrumentsGuests(t *testing.T) {
	ctx := context.Background()
	// The instrumented code is what prepare gives the sandbox, which
	// testguest precompiled into the shared cache: through it, compiling is
	// a load instead of minutes of wazero's compiler under -race.
	cache, err := wazero.NewCompilationCacheWithDir(cacheDir)
	if err != nil {
		t.Fatal(err)
	}
	defer cache.Close(ctx)
	for _, g := range guests {
		t.Run(g.name, func(t *testing.T) {
			wasm := wasmOf(t, g.name)
			a, err := instrument(wasm, fuelOptions{Module: fuelModule, Name: fuelYield, Budget: fuelBudget})
			if err != nil {
				t.Fatalf("instrument(%s) error: %v", g.name, err)
			}
			b, err := instrument(wasm, fuelOptions{Module: fuelModule, Name: fuelYield, Budget: fuelBudget})
			if err != nil || !bytes.Equal(a.Wasm, b.Wasm) {
				t.Fatalf("instrument(%s) is not deterministic (%v)", g.name, err)
			}
			if a.Checks < a.Functions || a.Functions == 0 {
				t.Errorf("instrument(%s): %d checks in %d functions, want at least one per function", g.name, a.Checks, a.Functions)
			}
			c, err := prepare(wasm)
			if err != nil || !c.metered {
				t.Fatalf("prepare(%s) = metered %v, %v; want metered", g.name, c.metered, err)
			}
			rt := wazero.NewRuntimeWithConfig(ctx, wazero.NewRuntimeConfig().WithCloseOnContextDone(false).WithCompilationCache(cache))
			defer rt.Close(ctx)
			if _, err := rt.CompileModule(ctx, a.Wasm); err != nil {
				t.Fatalf("instrumented %s does not compile: %v", g.name, err)
			}
		})
	}
}

// A guest that never ends is stopped at its deadline, whichever way it
// avoids ending.
func TestFuelStopsGuests(t *testing.T) {
	e, _ := newEngine(t, Config{})
	for name, wasm := range neverEnding() {
		t.Run(name, func(t *testing.T) {
			if err := e.Check(context.Background(), manifest.ABIWagi, wasm); err != nil {
				t.Fatalf("Check: %v", err)
			}
			c, err := prepare(wasm)
			if err != nil || !c.metered {
				t.Fatalf("prepare = metered %v, %v; want metered", c.metered, err)
			}
			lim := manifest.Limits{Timeout: 200 * time.Millisecond}
			f := e.Function(Spec{Namespace: "default", Name: "never", Version: 1, Digest: name, ABI: manifest.ABIWagi, Limits: lim,
				Load: func(context.Context) ([]byte, error) { return wasm, nil }})
			defer f.Close()
			start := time.Now()
			invokeErr(t, f, get("/", ""), KindTimeout)
			// The guest stops at its first yield past the deadline: the
			// fuel budget bounds the overshoot (~4 ms measured; the
			// bound leaves room for a loaded machine).
			if d := time.Since(start); d > lim.Timeout+500*time.Millisecond {
				t.Errorf("stopped after %v, want within 500ms of a %v deadline", d, lim.Timeout)
			}
		})
	}
}

// Engine.Close past its deadline stops metered guests that never end.
func TestFuelTerminate(t *testing.T) {
	e, err := New(context.Background(), Config{CacheDir: cacheDir})
	if err != nil {
		t.Fatal(err)
	}
	wasm := neverEnding()["tight loop"]
	f := e.Function(Spec{Namespace: "default", Name: "never", Version: 1, Digest: "terminate", ABI: manifest.ABIWagi,
		Limits: manifest.Limits{Timeout: time.Hour}, Load: func(context.Context) ([]byte, error) { return wasm, nil }})
	errc := make(chan error, 1)
	go func() {
		_, err := f.Invoke(context.Background(), get("/", ""))
		errc <- err
	}()
	eventually(t, 5*time.Second, "the guest to run", func() bool { return e.Stats().BusyInstances == 1 })
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := e.Close(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Close = %v, want %v", err, context.DeadlineExceeded)
	}
	select {
	case err := <-errc:
		if err == nil {
			t.Error("Invoke of a terminated guest returned no error")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Invoke still running 5s after Close returned")
	}
}

// No module may import the fuel module itself: instrumented code is the
// only code compiled without wazero's checks, and this is how the two are
// told apart in the shared compilation cache.
func TestFuelReservedImport(t *testing.T) {
	e, _ := newEngine(t, Config{})
	imp := append(append(name(fuelModule), name(fuelYield)...), 0x00, 0x00)
	wasm := wasmModule{types: [][]byte{typeVoid}, typeOf: []uint32{0}, imports: imp, nImp: 1,
		bodies: [][]byte{{0, 0x0b}}}.bytes()
	if _, err := prepare(wasm); err == nil || !strings.Contains(err.Error(), "reserved") {
		t.Errorf("prepare(import %s.%s) = %v, want an error saying it is reserved", fuelModule, fuelYield, err)
	}
	if err := e.Check(context.Background(), manifest.ABIWagi, wasm); err == nil {
		t.Errorf("Check(import %s.%s) = nil, want an error", fuelModule, fuelYield)
	}
}

// Code naming a global the module does not have was invalid; it must not
// become valid by naming the fuel global (and so resetting its fuel).
func TestFuelRefusesFuelGlobal(t *testing.T) {
	for name, body := range map[string][]byte{
		"global.set": {0, 0x41, 0, 0x24, 0, 0x0b},
		"global.get": {0, 0x23, 0, 0x1a, 0x0b},
	} {
		wasm := wasmModule{types: [][]byte{typeVoid}, typeOf: []uint32{0}, bodies: [][]byte{body}}.bytes()
		if res, err := instrument(wasm, fuelOptions{Module: fuelModule, Name: fuelYield, Budget: 1000}); err == nil {
			t.Errorf("instrument(%s of a global the module lacks) = %d bytes, want an error", name, len(res.Wasm))
		}
	}
}

// FuzzInstrument: any input either is refused or gives a module; a module
// wazero compiles still compiles once instrumented.
func FuzzInstrument(f *testing.F) {
	for _, w := range neverEnding() {
		f.Add(w)
	}
	f.Add(wasmModule{types: [][]byte{typeVoid}, typeOf: []uint32{0}, bodies: [][]byte{{0, 0x0b}}}.bytes())
	f.Add([]byte("\x00asm\x01\x00\x00\x00"))
	ctx := context.Background()
	f.Fuzz(func(t *testing.T, wasm []byte) {
		res, err := instrument(wasm, fuelOptions{Module: fuelModule, Name: fuelYield, Budget: 1000})
		if err != nil {
			return
		}
		rt := wazero.NewRuntimeWithConfig(ctx, wazero.NewRuntimeConfig().WithCloseOnContextDone(false))
		defer rt.Close(ctx)
		if _, err := rt.CompileModule(ctx, wasm); err != nil {
			return
		}
		if _, err := rt.CompileModule(ctx, res.Wasm); err != nil {
			t.Fatalf("input compiles, instrumented output does not: %v", err)
		}
	})
}

func TestAppendSLEB(t *testing.T) {
	for _, tc := range []struct {
		v    int64
		want []byte
	}{
		{0, []byte{0}}, {1, []byte{1}}, {63, []byte{0x3f}}, {64, []byte{0xc0, 0}}, {-1, []byte{0x7f}},
		{-64, []byte{0x40}}, {1000, []byte{0xe8, 0x07}}, {1 << 20, []byte{0x80, 0x80, 0xc0, 0}},
	} {
		if got := appendSLEB(nil, tc.v); !bytes.Equal(got, tc.want) {
			t.Errorf("appendSLEB(%d) = % x, want % x", tc.v, got, tc.want)
		}
	}
}

// BenchmarkInstrument: the rewrite runs on every load of a module (a
// cold start), so it must stay small next to loading compiled code.
func BenchmarkInstrument(b *testing.B) {
	wasm := wasmOf(b, "echo-json")
	b.SetBytes(int64(len(wasm)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := instrument(wasm, fuelOptions{Module: fuelModule, Name: fuelYield, Budget: fuelBudget}); err != nil {
			b.Fatal(err)
		}
	}
}
